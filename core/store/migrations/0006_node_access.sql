-- The access record: one row per node command the assistant or an operator ran on a device
-- (or that the host refused on the device's behalf). Who asked, which command, when, how long
-- and what came of it; never the params or the payload. Times are ms since the Unix epoch.
--
-- `requester` says which kind of asker a row has: a chat turn (`session_key`, `turn_id`) or an
-- operator (`operator_device_id` when the operator connection proved a device key, and the
-- client's `operator_label`). The CHECKs keep the two shapes apart.
CREATE TABLE node_access (
    id                 INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    device_id          TEXT    NOT NULL,
    at_ms              BIGINT  NOT NULL,
    duration_ms        BIGINT  NOT NULL CHECK (duration_ms >= 0),
    command            TEXT    NOT NULL,
    requester          TEXT    NOT NULL CHECK (requester IN ('turn', 'operator')),
    session_key        TEXT,
    turn_id            TEXT,
    operator_device_id TEXT,
    operator_label     TEXT,
    outcome            TEXT    NOT NULL CHECK (outcome IN ('ok', 'failed', 'refused')),
    error_code         TEXT,
    CHECK ((requester = 'turn' AND session_key IS NOT NULL AND turn_id IS NOT NULL
            AND operator_device_id IS NULL AND operator_label IS NULL)
        OR (requester = 'operator' AND operator_label IS NOT NULL
            AND session_key IS NULL AND turn_id IS NULL)),
    CHECK ((outcome = 'ok') = (error_code IS NULL))
);

-- "The latest N for device X, before cursor": a range scan of one device's rows by id.
CREATE INDEX node_access_by_device ON node_access (device_id, id);
-- Retention by age.
CREATE INDEX node_access_by_time ON node_access (at_ms);

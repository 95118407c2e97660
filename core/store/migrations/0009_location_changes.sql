-- Location changes a device reported on its own (`location.changed`: a first fix, a move, a
-- named place entered or left), kept only as the device's sharing precision allowed when it
-- arrived: a place or city and time zone always, coordinates only at 'exact' (the CHECK holds
-- it). Read by the assistant in its next turn (`seen_at_ms`), bounded per device.
CREATE TABLE location_changes (
    id            INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    device_id     TEXT    NOT NULL,
    display_name  TEXT    NOT NULL,
    at_ms         BIGINT  NOT NULL,
    trigger       TEXT    NOT NULL,
    precision     TEXT    NOT NULL CHECK (precision IN ('exact', 'city')),
    place_name    TEXT,
    city          TEXT,
    timezone      TEXT,
    lat           DOUBLE PRECISION,
    lon           DOUBLE PRECISION,
    seen_at_ms    BIGINT,
    CHECK (precision = 'exact' OR (lat IS NULL AND lon IS NULL)),
    CHECK ((lat IS NULL) = (lon IS NULL))
);

CREATE INDEX location_changes_unseen ON location_changes (seen_at_ms, id);
CREATE INDEX location_changes_by_device ON location_changes (device_id, id);

-- A change the assistant read is audited like any other read for a prompt: a third path.
-- SQLite cannot widen a CHECK in place, so the audit table is rebuilt with its rows.
CREATE TABLE location_audit_v2 (
    id          INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    at_ms       BIGINT  NOT NULL,
    device_id   TEXT    NOT NULL,
    session_key TEXT    NOT NULL,
    precision   TEXT    NOT NULL CHECK (precision IN ('exact', 'city', 'off')),
    outcome     TEXT    NOT NULL
                CHECK (outcome IN ('included', 'stale', 'dropped', 'off', 'unavailable')),
    place_name  TEXT,
    city        TEXT,
    path        TEXT    NOT NULL DEFAULT 'context' CHECK (path IN ('context', 'tool', 'change'))
);
INSERT INTO location_audit_v2 (id, at_ms, device_id, session_key, precision, outcome,
                               place_name, city, path)
    SELECT id, at_ms, device_id, session_key, precision, outcome, place_name, city, path
    FROM location_audit;
DROP TABLE location_audit;
ALTER TABLE location_audit_v2 RENAME TO location_audit;
CREATE INDEX location_audit_by_time ON location_audit (at_ms);

-- Devices, pairing requests and device tokens: who may connect to this host, and as what.
-- Times are milliseconds since the Unix epoch. BIGINT is INTEGER affinity in SQLite and
-- 64-bit in Postgres, so the same text works on both.

-- A device that was approved at least once. Revoking keeps the row (for the audit trail and
-- so the UI can show it) but deletes its tokens.
CREATE TABLE devices (
    device_id     TEXT   NOT NULL PRIMARY KEY,
    public_key    TEXT   NOT NULL,
    display_name  TEXT   NOT NULL,
    platform      TEXT   NOT NULL,
    device_family TEXT,
    role          TEXT   NOT NULL CHECK (role IN ('operator', 'node')),
    status        TEXT   NOT NULL CHECK (status IN ('paired', 'revoked')),
    paired_at_ms  BIGINT NOT NULL,
    revoked_at_ms BIGINT,
    last_seen_ms  BIGINT,
    commands      TEXT   NOT NULL DEFAULT '[]'
);

-- A device asking to be paired in a role. Decided requests stay as history.
CREATE TABLE pairing_requests (
    request_id      TEXT   NOT NULL PRIMARY KEY,
    device_id       TEXT   NOT NULL,
    public_key      TEXT   NOT NULL,
    role            TEXT   NOT NULL CHECK (role IN ('operator', 'node')),
    display_name    TEXT   NOT NULL,
    platform        TEXT   NOT NULL,
    device_family   TEXT,
    remote_addr     TEXT,
    requested_at_ms BIGINT NOT NULL,
    updated_at_ms   BIGINT NOT NULL,
    status          TEXT   NOT NULL CHECK (status IN ('pending', 'approved', 'rejected', 'expired')),
    decided_at_ms   BIGINT
);

-- Retries of the same device and role reuse one pending request instead of piling up.
CREATE UNIQUE INDEX pairing_requests_one_pending
    ON pairing_requests (device_id, role)
    WHERE status = 'pending';

CREATE INDEX pairing_requests_by_status_time
    ON pairing_requests (status, requested_at_ms);

-- The hash (hex SHA-256) of the bearer token a paired device presents on reconnect.
-- The plaintext token is shown to the device once and never stored.
CREATE TABLE device_tokens (
    device_id    TEXT   NOT NULL,
    role         TEXT   NOT NULL CHECK (role IN ('operator', 'node')),
    token_hash   TEXT   NOT NULL,
    issued_at_ms BIGINT NOT NULL,
    PRIMARY KEY (device_id, role),
    FOREIGN KEY (device_id) REFERENCES devices (device_id) ON DELETE CASCADE
);

-- Host-wide key/value settings, starting with the host id.
CREATE TABLE host_meta (
    key   TEXT NOT NULL PRIMARY KEY,
    value TEXT NOT NULL
);

-- Location-aware prompts: the user's named places, per-device sharing consent, and the audit
-- trail of every location read made for a prompt. Times are ms since the Unix epoch.

-- A place the user named ("Home", "Office"). `name_key` is the lower-cased name, computed in
-- Rust (Unicode-aware and portable, unlike SQLite's ASCII-only NOCASE), so "home" and "Home"
-- are the same place; `name` keeps the spelling the user chose.
CREATE TABLE places (
    name_key      TEXT             NOT NULL PRIMARY KEY,
    name          TEXT             NOT NULL,
    lat           DOUBLE PRECISION NOT NULL CHECK (lat >= -90 AND lat <= 90),
    lon           DOUBLE PRECISION NOT NULL CHECK (lon >= -180 AND lon <= 180),
    radius_m      BIGINT           NOT NULL CHECK (radius_m >= 1 AND radius_m <= 100000),
    created_at_ms BIGINT           NOT NULL
);

-- How precisely a device's location may reach a prompt. No row means 'off': sharing is
-- opt-in. Turning sharing off keeps the row (with its time) rather than deleting it.
CREATE TABLE location_sharing (
    device_id     TEXT   NOT NULL PRIMARY KEY,
    precision     TEXT   NOT NULL CHECK (precision IN ('exact', 'city', 'off')),
    updated_at_ms BIGINT NOT NULL
);

-- One row per location read made for a prompt, whatever came of it. Deliberately holds no
-- coordinates at any precision: only what the prompt was told (a place name, a city).
CREATE TABLE location_audit (
    id          INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    at_ms       BIGINT  NOT NULL,
    device_id   TEXT    NOT NULL,
    session_key TEXT    NOT NULL,
    precision   TEXT    NOT NULL CHECK (precision IN ('exact', 'city', 'off')),
    outcome     TEXT    NOT NULL
                CHECK (outcome IN ('included', 'stale', 'dropped', 'off', 'unavailable')),
    place_name  TEXT,
    city        TEXT
);

CREATE INDEX location_audit_by_time ON location_audit (at_ms);

-- Sessions and their transcripts. A turn's messages are written together in one
-- transaction, so a transcript never holds half a turn.
CREATE TABLE sessions (
    session_key   TEXT PRIMARY KEY,
    created_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL,
    input_tokens  BIGINT NOT NULL DEFAULT 0,
    output_tokens BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE messages (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    session_key   TEXT NOT NULL REFERENCES sessions (session_key) ON DELETE CASCADE,
    seq           BIGINT NOT NULL,
    turn_id       TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('user', 'assistant', 'tool', 'error')),
    content       TEXT NOT NULL,
    tool_calls    TEXT NULL,
    tool_call_id  TEXT NULL,
    tool_name     TEXT NULL,
    is_error      BOOLEAN NOT NULL DEFAULT FALSE,
    input_tokens  BIGINT NULL,
    output_tokens BIGINT NULL,
    created_at_ms BIGINT NOT NULL,
    UNIQUE (session_key, seq)
);

CREATE INDEX messages_by_session ON messages (session_key, seq);

-- Bootstrap tokens: the single-use secret inside a setup code that lets a new node pair
-- without an operator approving it. Only the hex SHA-256 of a token is stored. A used token
-- keeps its row (who used it, when) until `prune` removes it a day later.
CREATE TABLE bootstrap_tokens (
    token_hash     TEXT   NOT NULL PRIMARY KEY,
    created_at_ms  BIGINT NOT NULL,
    expires_at_ms  BIGINT NOT NULL,
    used_at_ms     BIGINT,
    used_by_device TEXT,
    CHECK ((used_at_ms IS NULL) = (used_by_device IS NULL))
);

CREATE INDEX bootstrap_tokens_by_expiry ON bootstrap_tokens (expires_at_ms);

-- The pairing verification code is no longer a function of the two keys alone: it covers a
-- secret the device committed to before the host's challenge (protocol verification.rs), so the
-- host keeps the code it showed for each request. `code_sets` counts how often a request's code
-- was set; the host stops changing it after a few, so a man in the middle cannot keep retrying
-- until a code matches. NULL: the client made no commitment (an OpenClaw node); no code is shown.
ALTER TABLE pairing_requests ADD COLUMN verification_code TEXT;
ALTER TABLE pairing_requests ADD COLUMN code_sets INTEGER NOT NULL DEFAULT 0;

-- Location reaches a model by more than the device-context block: a node tool's result
-- (`location.get`) is read, reduced to the sharing precision and audited too. `path` says which
-- way a read went; rows written before this migration were all device-context reads.
ALTER TABLE location_audit
    ADD COLUMN path TEXT NOT NULL DEFAULT 'context' CHECK (path IN ('context', 'tool'));

-- Replies to notifications a device showed (`system.notify.reply` node events): what the user
-- tapped or typed, kept until the assistant has read it in a turn (`seen_at_ms`) and then for
-- a while after, bounded per device. `reply_id` is the node's own id, so a resend after a lost
-- answer is one row. Times are ms since the Unix epoch.
CREATE TABLE notify_replies (
    id              INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    device_id       TEXT    NOT NULL,
    reply_id        TEXT    NOT NULL,
    notification_id TEXT    NOT NULL,
    display_name    TEXT    NOT NULL,
    title           TEXT,
    action_id       TEXT,
    text            TEXT,
    received_at_ms  BIGINT  NOT NULL,
    seen_at_ms      BIGINT,
    CHECK (action_id IS NOT NULL OR text IS NOT NULL),
    UNIQUE (device_id, reply_id)
);

-- "What has the assistant not read yet", oldest first.
CREATE INDEX notify_replies_unseen ON notify_replies (seen_at_ms, id);

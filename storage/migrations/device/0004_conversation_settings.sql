-- Device store, version 4: do-not-disturb modes and pinned messages.

-- A conversation's do-not-disturb mode: which messages notify ('all',
-- 'mentions_only', 'none') and an optional quiet time during which none do:
-- until a time, or a daily window (minutes of the day at a UTC offset).
-- The old flag stays, as "a mode other than all is set".
ALTER TABLE conversations ADD COLUMN remind TEXT NOT NULL DEFAULT 'all';
ALTER TABLE conversations ADD COLUMN quiet_until_ms INTEGER;
ALTER TABLE conversations ADD COLUMN quiet_start_minute INTEGER;
ALTER TABLE conversations ADD COLUMN quiet_end_minute INTEGER;
ALTER TABLE conversations ADD COLUMN quiet_utc_offset_minutes INTEGER;
UPDATE conversations SET remind = 'none' WHERE do_not_disturb = 1;

-- Projection: messages pinned in a conversation, with when.
CREATE TABLE pinned_messages (
    conversation TEXT    NOT NULL,
    message      TEXT    NOT NULL,
    pinned_at_ms INTEGER NOT NULL,
    PRIMARY KEY (conversation, message)
) STRICT;

-- Device store, version 1. One file per account per device.

-- The device's identity: exactly one row, written at first open.
CREATE TABLE identity (
    id            INTEGER PRIMARY KEY CHECK (id = 1),
    account       TEXT    NOT NULL,
    device_id     BLOB    NOT NULL CHECK (length(device_id) = 16),
    device_name   TEXT    NOT NULL,
    platform      TEXT    NOT NULL,
    created_at_ms INTEGER NOT NULL
) STRICT;

-- Small named counters and cursors (next local operation number, relay cursor).
CREATE TABLE meta (
    key   TEXT    PRIMARY KEY,
    value INTEGER NOT NULL
) STRICT;

-- The account document: at most one snapshot plus the changes made since it.
CREATE TABLE doc_chunks (
    id    INTEGER PRIMARY KEY,
    kind  TEXT    NOT NULL CHECK (kind IN ('snapshot', 'change')),
    bytes BLOB    NOT NULL
) STRICT;

-- Every delta this device knows, its own and other devices'. Own deltas with
-- no relay_seq are the outbox. applied = 0 marks a delta whose document change
-- waits for a change it depends on.
CREATE TABLE deltas (
    local_seq   INTEGER PRIMARY KEY AUTOINCREMENT,
    content_id  BLOB    NOT NULL UNIQUE CHECK (length(content_id) = 32),
    origin      BLOB    NOT NULL CHECK (length(origin) = 16),
    origin_seq  INTEGER NOT NULL,
    made_at_ms  INTEGER NOT NULL,
    bytes       BLOB    NOT NULL,
    relay_seq   INTEGER,
    applied     INTEGER NOT NULL CHECK (applied IN (0, 1)),
    UNIQUE (origin, origin_seq)
) STRICT;
CREATE INDEX deltas_outbox ON deltas (local_seq) WHERE relay_seq IS NULL;
CREATE INDEX deltas_pending ON deltas (local_seq) WHERE applied = 0;

-- The message log: immutable records, a grow-only set by id.
CREATE TABLE messages (
    id           TEXT    PRIMARY KEY,
    conversation TEXT    NOT NULL,
    sender       TEXT    NOT NULL,
    sent_at_ms   INTEGER NOT NULL,
    body         TEXT    NOT NULL
) STRICT;
-- sender is in the index so the unread count never reads the table rows.
CREATE INDEX messages_by_conversation ON messages (conversation, sent_at_ms, id, sender);

-- The mutable parts of a message, each merged monotonically. A row may exist
-- before its message arrives (a recall can overtake the message).
CREATE TABLE message_flags (
    id       TEXT    PRIMARY KEY,
    recalled INTEGER NOT NULL DEFAULT 0 CHECK (recalled IN (0, 1)),
    deleted  INTEGER NOT NULL DEFAULT 0 CHECK (deleted IN (0, 1)),
    receipt  INTEGER NOT NULL DEFAULT 0 CHECK (receipt IN (0, 1, 2))
) STRICT;

-- Projection: one row per conversation the device has heard of.
CREATE TABLE conversations (
    id               TEXT    PRIMARY KEY,
    pinned           INTEGER NOT NULL DEFAULT 0,
    do_not_disturb   INTEGER NOT NULL DEFAULT 0,
    marks            TEXT    NOT NULL DEFAULT '',
    cleared_up_to_ms INTEGER NOT NULL DEFAULT 0,
    read_at_ms       INTEGER NOT NULL DEFAULT 0,
    read_message     TEXT    NOT NULL DEFAULT '',
    last_message     TEXT,
    last_activity_ms INTEGER NOT NULL DEFAULT 0,
    unread           INTEGER NOT NULL DEFAULT 0,
    listed           INTEGER NOT NULL DEFAULT 0
) STRICT;
CREATE INDEX conversations_listed ON conversations (pinned DESC, last_activity_ms DESC, id) WHERE listed = 1;

CREATE TABLE contacts (
    user_id     TEXT    PRIMARY KEY,
    status      TEXT    NOT NULL,
    remark      TEXT    NOT NULL,
    since_ms    INTEGER NOT NULL
) STRICT;

CREATE TABLE blocklist (
    user_id  TEXT    PRIMARY KEY,
    since_ms INTEGER NOT NULL
) STRICT;

CREATE TABLE groups (
    id               TEXT    PRIMARY KEY,
    state            TEXT    NOT NULL,
    name             TEXT    NOT NULL,
    description      TEXT    NOT NULL,
    announcement     TEXT    NOT NULL,
    owner            TEXT    NOT NULL,
    messages_blocked INTEGER NOT NULL,
    mute_all         INTEGER NOT NULL
) STRICT;

-- Users attached to a group: members with their role and mute, and the ban
-- and allow lists.
CREATE TABLE group_users (
    group_id       TEXT    NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    list           TEXT    NOT NULL CHECK (list IN ('member', 'banned', 'allowed')),
    user_id        TEXT    NOT NULL,
    role           TEXT    NOT NULL,
    muted_until_ms INTEGER NOT NULL,
    PRIMARY KEY (group_id, list, user_id)
) STRICT;

CREATE TABLE group_member_attributes (
    group_id TEXT NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    user_id  TEXT NOT NULL,
    key      TEXT NOT NULL,
    value    TEXT NOT NULL,
    PRIMARY KEY (group_id, user_id, key)
) STRICT;

CREATE TABLE threads (
    id       TEXT PRIMARY KEY,
    group_id TEXT NOT NULL,
    name     TEXT NOT NULL
) STRICT;

CREATE TABLE thread_members (
    thread_id TEXT NOT NULL REFERENCES threads (id) ON DELETE CASCADE,
    user_id   TEXT NOT NULL,
    PRIMARY KEY (thread_id, user_id)
) STRICT;

-- The multi-device events journal: one row per operation merged from another
-- device (or payload received from one), in the order it was merged. The
-- content id names what the row is about, so nothing is journaled twice.
CREATE TABLE events (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    content_id BLOB    NOT NULL UNIQUE,
    origin     BLOB    NOT NULL,
    made_at_ms INTEGER NOT NULL,
    body       BLOB    NOT NULL
) STRICT;

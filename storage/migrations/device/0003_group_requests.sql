-- Device store, version 3: requests waiting on an answer in a group.
-- 'invited': a user this account invited, not a member until they accept.
-- 'applicant': a user who asked to join, until an owner or admin answers.
-- (This account's own invitation is the group's state, 'invited'.)
CREATE TABLE group_requests (
    group_id TEXT NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    kind     TEXT NOT NULL CHECK (kind IN ('invited', 'applicant')),
    user_id  TEXT NOT NULL,
    PRIMARY KEY (group_id, kind, user_id)
) STRICT;

-- Device store, version 6: group read receipts (the reference SDKs' group
-- message acks): a member read a group message. A grow-only set; a
-- member's read mark is their newest acknowledged message, so it only
-- rises. A row may exist before its message arrives.
CREATE TABLE group_acks (
    message TEXT NOT NULL,
    member  TEXT NOT NULL,
    PRIMARY KEY (message, member)
) STRICT;

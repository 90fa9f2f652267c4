-- Device store, version 5: a group the IM service disabled (it keeps the
-- group but nobody can use it until it is enabled again).
ALTER TABLE groups ADD COLUMN disabled INTEGER NOT NULL DEFAULT 0;

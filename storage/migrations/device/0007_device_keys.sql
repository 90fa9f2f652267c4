-- Device store, version 7 (protocol 2): the device's signing key and what
-- it knows of its credentials at the relay.

-- The 32-byte seed of the device's ed25519 key. NULL only in a store made
-- by an older build, until the engine opens it and makes one.
ALTER TABLE identity ADD COLUMN signing_key BLOB
    CHECK (signing_key IS NULL OR length(signing_key) = 32);

-- Exactly one row: the relay addresses the device uses (one per line, in
-- order of preference), and its enrollment as the relay last told it.
CREATE TABLE credentials (
    id              INTEGER PRIMARY KEY CHECK (id = 1),
    relays          TEXT    NOT NULL DEFAULT '',
    -- The login token the device enrolled with; NULL before any enrollment.
    token_id        BLOB    CHECK (token_id IS NULL OR length(token_id) = 16),
    enrolled_at_ms  INTEGER,
    expires_at_ms   INTEGER,
    -- 0 once the device learned that the enrollment no longer logs it in
    -- (kicked, logged out, expired…).
    active          INTEGER NOT NULL DEFAULT 0 CHECK (active IN (0, 1)),
    CHECK ((token_id IS NULL) = (expires_at_ms IS NULL))
) STRICT;
INSERT INTO credentials (id) VALUES (1);

-- Relay store, schema 1: accounts, their devices, revoked credentials, the
-- per-account delta log, and device-addressed payloads waiting for an ack.

CREATE TABLE accounts (
    account   TEXT PRIMARY KEY NOT NULL,
    -- The seq of the newest delta; seqs are dense, 1..=head_seq.
    head_seq  INTEGER NOT NULL DEFAULT 0 CHECK (head_seq >= 0)
) STRICT;

CREATE TABLE devices (
    account         TEXT NOT NULL REFERENCES accounts (account),
    device          BLOB NOT NULL CHECK (length(device) = 16),
    name            TEXT NOT NULL,
    platform        TEXT NOT NULL,
    first_login_ms  INTEGER NOT NULL,
    last_seen_ms    INTEGER NOT NULL,
    -- blake3 of the token of the device's latest login: what a kick revokes.
    token_hash      BLOB NOT NULL CHECK (length(token_hash) = 32),
    -- The highest seq the device says it has persisted.
    cursor          INTEGER NOT NULL DEFAULT 0 CHECK (cursor >= 0),
    PRIMARY KEY (account, device)
) STRICT;

CREATE TABLE revoked (
    account     TEXT NOT NULL,
    device      BLOB NOT NULL,
    token_hash  BLOB NOT NULL CHECK (length(token_hash) = 32),
    PRIMARY KEY (account, device, token_hash),
    FOREIGN KEY (account, device) REFERENCES devices (account, device)
) STRICT;

CREATE TABLE log (
    account     TEXT NOT NULL REFERENCES accounts (account),
    seq         INTEGER NOT NULL CHECK (seq >= 1),
    content_id  BLOB NOT NULL CHECK (length(content_id) = 32),
    origin      BLOB NOT NULL,
    bytes       BLOB NOT NULL,
    PRIMARY KEY (account, seq),
    UNIQUE (account, content_id),
    FOREIGN KEY (account, origin) REFERENCES devices (account, device)
) STRICT;

CREATE TABLE payloads (
    account    TEXT NOT NULL,
    recipient  BLOB NOT NULL,
    id         BLOB NOT NULL CHECK (length(id) = 16),
    sender     BLOB NOT NULL,
    bytes      BLOB NOT NULL,
    sent_ms    INTEGER NOT NULL,
    PRIMARY KEY (account, recipient, id),
    FOREIGN KEY (account, recipient) REFERENCES devices (account, device),
    FOREIGN KEY (account, sender) REFERENCES devices (account, device)
) STRICT;

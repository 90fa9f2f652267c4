-- Relay store on PostgreSQL, schema 1: the schema's version, accounts, their
-- devices, revoked credentials, the per-account delta log, and
-- device-addressed payloads waiting for an ack. The same tables as the
-- SQLite store; seqs and times are BIGINT (at most 2^63 - 1, checked by the
-- store before writing).
--
-- Ordering invariant: an account's log seqs are dense, 1..=accounts.head_seq.
-- Only an append changes them, and it does so holding the account's row
-- lock: it locks the row, reads the head, inserts rows at head+1.. and
-- writes the new head in one transaction, so appends to one account, from
-- any number of connections, are one total order without gaps.

CREATE TABLE schema_version (
    version     INTEGER PRIMARY KEY CHECK (version >= 1),
    applied_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE accounts (
    account   TEXT PRIMARY KEY,
    -- The seq of the newest delta; seqs are dense, 1..=head_seq.
    head_seq  BIGINT NOT NULL DEFAULT 0 CHECK (head_seq >= 0)
);

CREATE TABLE devices (
    account         TEXT NOT NULL REFERENCES accounts (account),
    device          BYTEA NOT NULL CHECK (length(device) = 16),
    name            TEXT NOT NULL,
    platform        TEXT NOT NULL,
    first_login_ms  BIGINT NOT NULL,
    last_seen_ms    BIGINT NOT NULL,
    -- blake3 of the token of the device's latest login: what a kick revokes.
    token_hash      BYTEA NOT NULL CHECK (length(token_hash) = 32),
    -- The highest seq the device says it has persisted.
    cursor          BIGINT NOT NULL DEFAULT 0 CHECK (cursor >= 0),
    PRIMARY KEY (account, device)
);

CREATE TABLE revoked (
    account     TEXT NOT NULL,
    device      BYTEA NOT NULL,
    token_hash  BYTEA NOT NULL CHECK (length(token_hash) = 32),
    PRIMARY KEY (account, device, token_hash),
    FOREIGN KEY (account, device) REFERENCES devices (account, device)
);

CREATE TABLE log (
    account     TEXT NOT NULL REFERENCES accounts (account),
    seq         BIGINT NOT NULL CHECK (seq >= 1),
    content_id  BYTEA NOT NULL CHECK (length(content_id) = 32),
    origin      BYTEA NOT NULL,
    -- Opaque (and later end-to-end encrypted) bytes: compressing them is
    -- wasted work, so large ones are stored out of line as they are.
    bytes       BYTEA NOT NULL,
    PRIMARY KEY (account, seq),
    -- Each delta once per account.
    UNIQUE (account, content_id),
    FOREIGN KEY (account, origin) REFERENCES devices (account, device)
);
ALTER TABLE log ALTER COLUMN bytes SET STORAGE EXTERNAL;

CREATE TABLE payloads (
    -- Arrival order, for "oldest first" (SQLite's rowid).
    pos        BIGINT GENERATED ALWAYS AS IDENTITY,
    account    TEXT NOT NULL,
    recipient  BYTEA NOT NULL,
    id         BYTEA NOT NULL CHECK (length(id) = 16),
    sender     BYTEA NOT NULL,
    bytes      BYTEA NOT NULL,
    sent_ms    BIGINT NOT NULL,
    PRIMARY KEY (account, recipient, id),
    FOREIGN KEY (account, recipient) REFERENCES devices (account, device),
    FOREIGN KEY (account, sender) REFERENCES devices (account, device)
);
CREATE INDEX payloads_by_arrival ON payloads (account, recipient, pos);

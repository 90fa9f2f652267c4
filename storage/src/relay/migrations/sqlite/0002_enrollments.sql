-- Relay store, schema 2 (protocol 2): devices enroll with a public key,
-- login tokens are single use, accounts can be banned or removed.
--
-- A protocol-1 relay kept, per device, the hash of its account token and a
-- table of revoked (device, token hash) pairs. Account tokens are retired:
-- both go. Devices known from protocol 1 keep their rows (name, platform,
-- cursor, payloads) and have no enrollment until they log in once more
-- with a login token.

ALTER TABLE accounts ADD COLUMN status TEXT NOT NULL DEFAULT 'active'
    CHECK (status IN ('active', 'banned', 'removed'));

-- One per device that ever enrolled. The public key never changes: a
-- device id is bound to its first key for good. Revoked rows stay, with
-- their reason, so that the device learns why at its next login.
CREATE TABLE enrollments (
    account              TEXT    NOT NULL,
    device               BLOB    NOT NULL,
    public_key           BLOB    NOT NULL CHECK (length(public_key) = 32),
    -- The login token of the latest (re-)enrollment.
    token_id             BLOB    NOT NULL CHECK (length(token_id) = 16),
    enrolled_at_ms       INTEGER NOT NULL,
    expires_at_ms        INTEGER NOT NULL,
    revoked_kind         TEXT CHECK (revoked_kind IN
        ('kicked_by_device', 'displaced', 'logged_out', 'operator', 'all_credentials')),
    revoked_by           BLOB CHECK (revoked_by IS NULL OR length(revoked_by) = 16),
    revoked_by_name      TEXT,
    revoked_by_platform  TEXT,
    revoked_at_ms        INTEGER,
    PRIMARY KEY (account, device),
    FOREIGN KEY (account, device) REFERENCES devices (account, device),
    CHECK ((revoked_kind IS NULL) = (revoked_at_ms IS NULL))
) STRICT;

-- Login tokens used so far, kept until they expire (then nobody can
-- present them successfully, and they are purged).
CREATE TABLE used_tokens (
    account        TEXT    NOT NULL,
    token_id       BLOB    NOT NULL CHECK (length(token_id) = 16),
    device         BLOB    NOT NULL CHECK (length(device) = 16),
    expires_at_ms  INTEGER NOT NULL,
    PRIMARY KEY (account, token_id)
) STRICT;
CREATE INDEX used_tokens_by_expiry ON used_tokens (expires_at_ms);

DROP TABLE revoked;
ALTER TABLE devices DROP COLUMN token_hash;

-- Relay store on PostgreSQL, schema 2 (protocol 2): devices enroll with a
-- public key, login tokens are single use, accounts can be banned or
-- removed. The same change as the SQLite store's migration 2.
--
-- A protocol-1 relay kept, per device, the hash of its account token and a
-- table of revoked (device, token hash) pairs. Account tokens are retired:
-- both go. Devices known from protocol 1 keep their rows and have no
-- enrollment until they log in once more with a login token.

ALTER TABLE accounts ADD COLUMN status TEXT NOT NULL DEFAULT 'active'
    CHECK (status IN ('active', 'banned', 'removed'));

-- One per device that ever enrolled. The public key never changes.
CREATE TABLE enrollments (
    account              TEXT   NOT NULL,
    device               BYTEA  NOT NULL,
    public_key           BYTEA  NOT NULL CHECK (length(public_key) = 32),
    token_id             BYTEA  NOT NULL CHECK (length(token_id) = 16),
    enrolled_at_ms       BIGINT NOT NULL,
    expires_at_ms        BIGINT NOT NULL,
    revoked_kind         TEXT CHECK (revoked_kind IN
        ('kicked_by_device', 'displaced', 'logged_out', 'operator', 'all_credentials')),
    revoked_by           BYTEA CHECK (revoked_by IS NULL OR length(revoked_by) = 16),
    revoked_by_name      TEXT,
    revoked_by_platform  TEXT,
    revoked_at_ms        BIGINT,
    PRIMARY KEY (account, device),
    FOREIGN KEY (account, device) REFERENCES devices (account, device),
    CHECK ((revoked_kind IS NULL) = (revoked_at_ms IS NULL))
);

CREATE TABLE used_tokens (
    account        TEXT   NOT NULL,
    token_id       BYTEA  NOT NULL CHECK (length(token_id) = 16),
    device         BYTEA  NOT NULL CHECK (length(device) = 16),
    expires_at_ms  BIGINT NOT NULL,
    PRIMARY KEY (account, token_id)
);
CREATE INDEX used_tokens_by_expiry ON used_tokens (expires_at_ms);

DROP TABLE revoked;
ALTER TABLE devices DROP COLUMN token_hash;

-- Relay store on PostgreSQL, schema 4: epochs (docs/design-epochs-e2ee.md
-- §2.2, §7.4). The same change as the SQLite store's migration 3 (the
-- numbers differ: PostgreSQL's 3 is the nodes' sessions).
--
-- Ordering invariant, extended: an envelope append and an epoch publish
-- both lock the account's row (FOR NO KEY UPDATE, in a statement of their
-- own, first), so of a publish and an append on one account one comes
-- wholly before the other on every node, and of two publishes of the same
-- epoch exactly one finds the condition true.
--
-- Old rows migrate as epoch 0 (nothing published) with floor 0.

ALTER TABLE accounts
    ADD COLUMN epoch BIGINT NOT NULL DEFAULT 0 CHECK (epoch >= 0),
    ADD COLUMN generation BIGINT NOT NULL DEFAULT 0
        CHECK (generation BETWEEN 0 AND 4294967295),
    ADD COLUMN epoch_base_seq BIGINT NOT NULL DEFAULT 0 CHECK (epoch_base_seq >= 0),
    ADD COLUMN log_floor_seq BIGINT NOT NULL DEFAULT 0 CHECK (log_floor_seq >= 0),
    ADD COLUMN tail_bytes BIGINT NOT NULL DEFAULT 0 CHECK (tail_bytes >= 0);
UPDATE accounts SET tail_bytes =
    (SELECT coalesce(sum(octet_length(bytes)), 0) FROM log WHERE log.account = accounts.account);

ALTER TABLE log
    ADD COLUMN epoch BIGINT NOT NULL DEFAULT 0 CHECK (epoch >= 0),
    ADD COLUMN appended_at_ms BIGINT NOT NULL DEFAULT 0 CHECK (appended_at_ms >= 0);

CREATE TABLE chains (
    account    TEXT   NOT NULL,
    device     BYTEA  NOT NULL,
    chain_pos  BIGINT NOT NULL CHECK (chain_pos >= 1),
    head       BYTEA  NOT NULL CHECK (length(head) = 32),
    PRIMARY KEY (account, device),
    FOREIGN KEY (account, device) REFERENCES devices (account, device)
);

CREATE TABLE epochs (
    account          TEXT   NOT NULL REFERENCES accounts (account),
    epoch            BIGINT NOT NULL CHECK (epoch >= 1),
    generation       BIGINT NOT NULL CHECK (generation BETWEEN 0 AND 4294967295),
    base_seq         BIGINT NOT NULL CHECK (base_seq >= 0),
    snapshot_id      BYTEA  NOT NULL CHECK (length(snapshot_id) = 32),
    manifest         BYTEA  NOT NULL,
    chunks           BIGINT NOT NULL CHECK (chunks BETWEEN 0 AND 4294967295),
    published_by     BYTEA  NOT NULL CHECK (length(published_by) = 16),
    published_at_ms  BIGINT NOT NULL CHECK (published_at_ms >= 0),
    PRIMARY KEY (account, epoch)
);

CREATE TABLE snapshot_chunks (
    account       TEXT    NOT NULL REFERENCES accounts (account),
    snapshot_id   BYTEA   NOT NULL CHECK (length(snapshot_id) = 32),
    idx           BIGINT  NOT NULL CHECK (idx BETWEEN 0 AND 4294967295),
    hash          BYTEA   NOT NULL CHECK (length(hash) = 32),
    -- Ciphertext: compressing it is wasted work (as the log's bytes).
    bytes         BYTEA   NOT NULL,
    committed     BOOLEAN NOT NULL DEFAULT FALSE,
    staged_at_ms  BIGINT  NOT NULL CHECK (staged_at_ms >= 0),
    PRIMARY KEY (account, snapshot_id, idx)
);
ALTER TABLE snapshot_chunks ALTER COLUMN bytes SET STORAGE EXTERNAL;

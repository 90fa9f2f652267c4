-- Relay store, schema 3: epochs (docs/design-epochs-e2ee.md §2.2, §7.4).
-- The log holds sealed envelopes (format 2) beside today's opaque deltas;
-- each account has a current epoch, published by compare-and-swap on
-- (epoch, head_seq) under the same write lock as appends; each device's
-- envelopes form a hash chain the store enforces at append; snapshots are
-- staged in chunks and committed by the publish.
--
-- Old rows migrate as epoch 0 (nothing published) with floor 0 (nothing
-- deleted), every old delta in the tail.

-- The current epoch (0: none published), its key generation and base B:
-- the tail is (epoch_base_seq, head_seq].
ALTER TABLE accounts ADD COLUMN epoch INTEGER NOT NULL DEFAULT 0 CHECK (epoch >= 0);
ALTER TABLE accounts ADD COLUMN generation INTEGER NOT NULL DEFAULT 0
    CHECK (generation BETWEEN 0 AND 4294967295);
ALTER TABLE accounts ADD COLUMN epoch_base_seq INTEGER NOT NULL DEFAULT 0
    CHECK (epoch_base_seq >= 0);
-- The highest seq deleted from the log (retention, a later step); 0: none.
ALTER TABLE accounts ADD COLUMN log_floor_seq INTEGER NOT NULL DEFAULT 0
    CHECK (log_floor_seq >= 0);
-- Bytes of the log's rows after epoch_base_seq.
ALTER TABLE accounts ADD COLUMN tail_bytes INTEGER NOT NULL DEFAULT 0 CHECK (tail_bytes >= 0);
UPDATE accounts SET tail_bytes =
    (SELECT coalesce(sum(length(bytes)), 0) FROM log WHERE log.account = accounts.account);

-- The epoch an envelope was sealed in (0 for plaintext deltas) and when
-- the relay appended it (0: before this schema).
ALTER TABLE log ADD COLUMN epoch INTEGER NOT NULL DEFAULT 0 CHECK (epoch >= 0);
ALTER TABLE log ADD COLUMN appended_at_ms INTEGER NOT NULL DEFAULT 0
    CHECK (appended_at_ms >= 0);

-- Each device's chain head: its newest envelope's position and content id.
CREATE TABLE chains (
    account    TEXT    NOT NULL,
    device     BLOB    NOT NULL,
    chain_pos  INTEGER NOT NULL CHECK (chain_pos >= 1),
    head       BLOB    NOT NULL CHECK (length(head) = 32),
    PRIMARY KEY (account, device),
    FOREIGN KEY (account, device) REFERENCES devices (account, device)
) STRICT;

-- Every published epoch of an account (retention, a later step, drops the
-- ones older than the previous).
CREATE TABLE epochs (
    account          TEXT    NOT NULL REFERENCES accounts (account),
    epoch            INTEGER NOT NULL CHECK (epoch >= 1),
    generation       INTEGER NOT NULL CHECK (generation BETWEEN 0 AND 4294967295),
    base_seq         INTEGER NOT NULL CHECK (base_seq >= 0),
    snapshot_id      BLOB    NOT NULL CHECK (length(snapshot_id) = 32),
    -- Opaque to the store, as the publisher signed it.
    manifest         BLOB    NOT NULL,
    chunks           INTEGER NOT NULL CHECK (chunks BETWEEN 0 AND 4294967295),
    published_by     BLOB    NOT NULL CHECK (length(published_by) = 16),
    published_at_ms  INTEGER NOT NULL CHECK (published_at_ms >= 0),
    PRIMARY KEY (account, epoch)
) STRICT;

-- Snapshot chunks, staged under their snapshot's id before the publish
-- (committed = 0; they expire) and committed by it.
CREATE TABLE snapshot_chunks (
    account       TEXT    NOT NULL REFERENCES accounts (account),
    snapshot_id   BLOB    NOT NULL CHECK (length(snapshot_id) = 32),
    idx           INTEGER NOT NULL CHECK (idx BETWEEN 0 AND 4294967295),
    -- blake3 of bytes, computed by the store at staging.
    hash          BLOB    NOT NULL CHECK (length(hash) = 32),
    bytes         BLOB    NOT NULL,
    committed     INTEGER NOT NULL DEFAULT 0 CHECK (committed IN (0, 1)),
    staged_at_ms  INTEGER NOT NULL CHECK (staged_at_ms >= 0),
    PRIMARY KEY (account, snapshot_id, idx)
) STRICT;

-- Device store, version 8 (end-to-end encryption, docs/design-epochs-e2ee.md
-- §5.1 and §7.3): the account's key generations this device holds, and the
-- link session a new device keeps while it waits for a grant.

-- One row per key generation: its 32-byte root, how this device got it
-- ('created': this device made the account's key; 'linked': another device
-- granted it), the epoch (and its snapshot id, all zeros for epoch 0,
-- which has no snapshot) the device was told to adopt with it, and who
-- granted it.
CREATE TABLE account_keys (
    generation  INTEGER PRIMARY KEY CHECK (generation BETWEEN 0 AND 4294967295),
    root        BLOB    NOT NULL CHECK (length(root) = 32),
    source      TEXT    NOT NULL CHECK (source IN ('created', 'linked')),
    epoch       INTEGER NOT NULL CHECK (epoch >= 0),
    snapshot_id BLOB    NOT NULL CHECK (length(snapshot_id) = 32),
    granted_by  BLOB    CHECK (granted_by IS NULL OR length(granted_by) = 16),
    added_at_ms INTEGER NOT NULL,
    CHECK ((source = 'linked') = (granted_by IS NOT NULL))
) STRICT;

-- At most one row: the link session of a device that showed a link code and
-- waits for the grant (its X25519 seed and the code's pre-shared key).
-- Deleted when a grant is accepted, so a replayed grant opens nothing.
CREATE TABLE link_session (
    id            INTEGER PRIMARY KEY CHECK (id = 1),
    kem_seed      BLOB    NOT NULL CHECK (length(kem_seed) = 32),
    psk           BLOB    NOT NULL CHECK (length(psk) = 32),
    created_at_ms INTEGER NOT NULL,
    expires_at_ms INTEGER NOT NULL
) STRICT;

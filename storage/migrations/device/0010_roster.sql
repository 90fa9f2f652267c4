-- Device store, version 10 (end-to-end encryption, docs/design-epochs-e2ee.md
-- §13 item 1): the account's roster, and this device's own KEM key.

-- One row per device linked to the account, as the roster's Link
-- operations say: its ed25519 signing key (what every other device checks
-- its envelopes against) and its X25519 KEM key (what a new key
-- generation is sealed to), and the operation that linked it (device,
-- operation number, that device's clock). A register per device: of two
-- Link operations for the same device the one with the smallest
-- (linked_at_ms, linked_by, linked_seq) holds, on every device alike.
CREATE TABLE roster (
    device       BLOB    PRIMARY KEY CHECK (length(device) = 16),
    sign_pk      BLOB    NOT NULL CHECK (length(sign_pk) = 32),
    kem_pk       BLOB    NOT NULL CHECK (length(kem_pk) = 32),
    linked_by    BLOB    NOT NULL CHECK (length(linked_by) = 16),
    linked_seq   INTEGER NOT NULL CHECK (linked_seq >= 1),
    linked_at_ms INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

-- At most one row: the seed of this device's X25519 KEM key, whose public
-- half its roster entry carries. Made with the account key on the first
-- device; on a linked device, the link session's key, kept when the grant
-- is accepted.
CREATE TABLE device_kem (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    kem_seed    BLOB    NOT NULL CHECK (length(kem_seed) = 32),
    added_at_ms INTEGER NOT NULL
) STRICT;

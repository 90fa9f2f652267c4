-- Device store, version 11 (end-to-end encryption, docs/design-epochs-e2ee.md
-- §13 item 2): the sealed envelope is the unit on the wire, the delta stays
-- the unit in the store.

-- Every envelope this device sealed or opened. Its own keep their bytes,
-- to push again unchanged (a resent envelope must have the same content
-- id), and the store position of the last delta they seal, which orders
-- the outbox; received ones keep only where they stand in their origin's
-- chain (their operations are in deltas). A chain position holds one
-- envelope per origin: a second one there is a fork, refused.
CREATE TABLE envelopes (
    content_id        BLOB    PRIMARY KEY CHECK (length(content_id) = 32),
    origin            BLOB    NOT NULL CHECK (length(origin) = 16),
    chain_pos         INTEGER NOT NULL CHECK (chain_pos >= 1),
    prev              BLOB    NOT NULL CHECK (length(prev) = 32),
    epoch             INTEGER NOT NULL CHECK (epoch >= 0),
    bytes             BLOB,
    through_local_seq INTEGER,
    relay_seq         INTEGER,
    own               INTEGER NOT NULL CHECK (own IN (0, 1)),
    CHECK ((own = 1) = (bytes IS NOT NULL AND through_local_seq IS NOT NULL)),
    UNIQUE (origin, chain_pos)
) STRICT, WITHOUT ROWID;

-- The envelope outbox: own envelopes no relay has acknowledged, in order.
CREATE INDEX envelopes_outbox ON envelopes (through_local_seq)
    WHERE own = 1 AND relay_seq IS NULL;

-- The envelope a delta travelled in (sealed in, or opened from); NULL for
-- a delta that travelled in the clear (format 1) or is not sealed yet.
ALTER TABLE deltas ADD COLUMN envelope BLOB
    CHECK (envelope IS NULL OR length(envelope) = 32);

-- Own deltas not sealed yet: what the next seal takes.
CREATE INDEX deltas_unsealed ON deltas (local_seq)
    WHERE relay_seq IS NULL AND envelope IS NULL;

-- An envelope's deltas, for its acknowledgement.
CREATE INDEX deltas_by_envelope ON deltas (envelope) WHERE envelope IS NOT NULL;

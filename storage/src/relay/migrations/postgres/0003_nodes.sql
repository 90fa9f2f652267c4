-- Relay store on PostgreSQL, schema 3: several relay nodes tell each other
-- what they changed (LISTEN/NOTIFY). Each store instance draws a node id
-- here when it opens, and names itself with it in its notifications, so
-- that it can tell its own from the others'. SQLite has no counterpart: one
-- relay process writes a SQLite store.
CREATE SEQUENCE relay_node_ids AS BIGINT MINVALUE 1;

-- Which devices are online on which node, so that the online-device limit
-- holds across nodes: a login counts the account's sessions on the other
-- nodes under the account's row lock. A node renews its lease while it
-- runs; the sessions of a node whose lease ran out (it crashed, or lost
-- the database) no longer count.
CREATE TABLE relay_nodes (
    node            BIGINT PRIMARY KEY,
    lease_until_ms  BIGINT NOT NULL
);

CREATE TABLE sessions (
    account         TEXT   NOT NULL,
    device          BYTEA  NOT NULL CHECK (length(device) = 16),
    node            BIGINT NOT NULL,
    -- The node's connection: a later connection of the same device
    -- replaces the row, and an earlier one closing leaves it.
    conn            BIGINT NOT NULL,
    platform        TEXT   NOT NULL,
    last_active_ms  BIGINT NOT NULL,
    enrolled_at_ms  BIGINT NOT NULL,
    PRIMARY KEY (account, device)
);
CREATE INDEX sessions_by_node ON sessions (node);

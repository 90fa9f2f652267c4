-- Relay store on PostgreSQL, schema 3: several relay nodes tell each other
-- what they changed (LISTEN/NOTIFY). Each store instance draws a node id
-- here when it opens, and names itself with it in its notifications, so
-- that it can tell its own from the others'. SQLite has no counterpart: one
-- relay process writes a SQLite store.
CREATE SEQUENCE relay_node_ids AS BIGINT MINVALUE 1;

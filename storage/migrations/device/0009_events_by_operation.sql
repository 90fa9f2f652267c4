-- Device store, version 9: the events journal names a merged operation by
-- its origin and number, not only by its delta's content id. Once an
-- operation can travel in more than one form (sealed again in a later
-- epoch, docs/design-epochs-e2ee.md D7), its content id is no longer one
-- value, and a journal keyed by it alone would tell the app twice.
-- Payloads and connection events have no number (NULL) and stay keyed by
-- their content id.
ALTER TABLE events ADD COLUMN origin_seq INTEGER
    CHECK (origin_seq IS NULL OR origin_seq >= 1);
-- Every journaled operation's delta is in `deltas`, whose (origin,
-- origin_seq) is unique, so the index below cannot fail on old rows.
UPDATE events SET origin_seq =
    (SELECT d.origin_seq FROM deltas d WHERE d.content_id = events.content_id);
CREATE UNIQUE INDEX events_by_operation ON events (origin, origin_seq)
    WHERE origin_seq IS NOT NULL;

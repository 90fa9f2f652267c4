-- Device store, version 2: positions an earlier build wrapped into negative
-- numbers. Operation numbers and relay positions are at most i64::MAX, and
-- are now refused above it rather than stored as `value as i64`; a negative
-- one read back is corrupt data. Repair what earlier builds may have left:

-- A delta whose operation number was 2^63 or more never merged (its
-- device's previous operation can never be found) and is refused now.
DELETE FROM deltas WHERE origin_seq < 0 AND applied = 0;

-- A relay position of 2^63 or more was no position: the delta goes back to
-- the outbox (if it is this device's own), and pushing it again is
-- idempotent at the relay.
UPDATE deltas SET relay_seq = NULL WHERE relay_seq < 0;

-- A negative relay cursor read as 0 before; make it 0.
UPDATE meta SET value = 0 WHERE key = 'relay_cursor' AND value < 0;

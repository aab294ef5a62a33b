-- Events are delivered from a position per endpoint instead of a row per event and endpoint:
-- the payment's transaction writes its event and nothing for the endpoints, and a delivered
-- batch moves its endpoint's position once. `deliveries` keeps the exceptions: events given
-- up after the retry window (failed) and events queued again by a replay.
--
-- An event's position is (xid, seq), as in PostgreSQL; SQLite commits one write transaction
-- at a time, in the order of seq, so xid stays 0 here and seq alone orders.
ALTER TABLE events ADD COLUMN xid BIGINT NOT NULL DEFAULT 0;
CREATE INDEX events_by_position ON events (xid, seq);

-- after_*: the last position this endpoint is done with; from_*: where it began (events
-- before it were written before the endpoint existed). delivered counts its accepted events.
ALTER TABLE endpoints ADD COLUMN after_xid BIGINT NOT NULL DEFAULT 0;
ALTER TABLE endpoints ADD COLUMN after_seq BIGINT NOT NULL DEFAULT 0;
ALTER TABLE endpoints ADD COLUMN from_xid BIGINT NOT NULL DEFAULT 0;
ALTER TABLE endpoints ADD COLUMN from_seq BIGINT NOT NULL DEFAULT 0;
ALTER TABLE endpoints ADD COLUMN delivered BIGINT NOT NULL DEFAULT 0;

-- Existing endpoints: what they had waiting stays in deliveries (sent as a replay is) and
-- their position starts after the last event written.
UPDATE endpoints SET
    after_seq = (SELECT COALESCE(MAX(seq), 0) FROM events),
    from_seq = (SELECT COALESCE(MAX(seq), 0) FROM events),
    delivered = (SELECT COUNT(*) FROM deliveries d
                 WHERE d.endpoint_id = endpoints.id AND d.status = 'delivered');

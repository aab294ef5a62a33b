-- Signed events for the operator's backend: the outbox of events, the endpoints that subscribe
-- to them, and one delivery per event and endpoint.

-- Every change of the books that the operator's backend may want to hear of, written in the
-- transaction of the change: an event exists if and only if its change committed.
CREATE TABLE events (
    seq        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,   -- the order events were written in
    id         TEXT   NOT NULL UNIQUE,    -- evt_…, what receivers deduplicate by
    type       TEXT   NOT NULL,           -- payment.credited, debit.created, …
    user_id    BIGINT   NOT NULL,
    body       TEXT   NOT NULL,           -- the JSON object POSTed, exactly as signed
    created_at BIGINT   NOT NULL
);
CREATE INDEX events_by_time ON events (created_at);

-- Where events are POSTed. The secret signs them; after a rotation the previous one signs
-- too until previous_until.
CREATE TABLE endpoints (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    url             TEXT    NOT NULL,
    secret          TEXT    NOT NULL,
    previous_secret TEXT,
    previous_until  BIGINT,
    created_at      BIGINT    NOT NULL,
    -- Deliveries to one endpoint go in order: one instance at a time holds its lease.
    locked_until    BIGINT    NOT NULL DEFAULT 0,
    -- After a failed attempt nothing is sent to it before retry_at (backoff with jitter).
    retry_at        BIGINT    NOT NULL DEFAULT 0,
    failures        BIGINT    NOT NULL DEFAULT 0,   -- attempts failed in a row
    last_success_at BIGINT,
    last_error      TEXT
);

-- The event types each endpoint receives.
CREATE TABLE subscriptions (
    endpoint_id BIGINT NOT NULL,
    event_type  TEXT NOT NULL,
    PRIMARY KEY (event_type, endpoint_id)
);

-- One event for one endpoint: pending until a 2xx (delivered), or failed after the retry
-- window. Written with the event (for the endpoints subscribed then) or by a replay.
CREATE TABLE deliveries (
    endpoint_id  BIGINT   NOT NULL,
    event_seq    BIGINT   NOT NULL,
    status       TEXT   NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts     BIGINT   NOT NULL DEFAULT 0,
    queued_at    BIGINT   NOT NULL,             -- written or replayed: the retry window starts here
    last_status  BIGINT,                        -- the receiver's HTTP status, if it answered
    last_error   TEXT,
    delivered_at BIGINT,
    PRIMARY KEY (endpoint_id, event_seq)
);
CREATE INDEX deliveries_pending ON deliveries (endpoint_id, event_seq) WHERE status = 'pending';
CREATE INDEX deliveries_failed ON deliveries (event_seq) WHERE status = 'failed';

-- The service API: keys for the operator's other services, holds (NDN reserved now, spent or
-- released later), and the answers of money-moving requests under their idempotency keys.

-- NDN reserved by active holds: cache of their sum, moved in the same transaction.
ALTER TABLE users ADD COLUMN held INTEGER NOT NULL DEFAULT 0 CHECK (held >= 0);

-- The client's own reference and metadata of a transfer made through the API.
ALTER TABLE transfers ADD COLUMN external_reference TEXT;
ALTER TABLE transfers ADD COLUMN metadata TEXT;

CREATE TABLE api_keys (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    name         TEXT    NOT NULL,
    key_hash     TEXT    NOT NULL UNIQUE,       -- SHA-256 of the key; the key is never stored
    scopes       TEXT    NOT NULL,              -- comma-separated: read, spend, grant
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER,
    revoked_at   INTEGER
);
CREATE UNIQUE INDEX api_keys_active_name ON api_keys (name) WHERE revoked_at IS NULL;

CREATE TABLE holds (
    id         TEXT    PRIMARY KEY,
    user_id    INTEGER NOT NULL,
    amount     INTEGER NOT NULL CHECK (amount > 0),
    status     TEXT    NOT NULL CHECK (status IN ('active', 'captured', 'voided', 'expired')),
    captured   INTEGER CHECK (captured > 0 AND captured <= amount), -- NDN spent when captured
    reason     TEXT,
    external_reference TEXT,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    closed_at  INTEGER
);
CREATE INDEX holds_to_expire ON holds (expires_at) WHERE status = 'active';
CREATE INDEX holds_by_user ON holds (user_id, created_at);

CREATE TABLE api_requests (
    api_key_id      INTEGER NOT NULL,
    idempotency_key TEXT    NOT NULL,
    fingerprint     TEXT    NOT NULL,           -- SHA-256 of method, path and canonical body
    receipt         TEXT    NOT NULL,           -- what the request did, answered again on a retry
    created_at      INTEGER NOT NULL,
    PRIMARY KEY (api_key_id, idempotency_key)
);
CREATE INDEX api_requests_by_age ON api_requests (created_at);

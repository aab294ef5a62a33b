-- Double-entry books. Every movement of NDN is a transfer of a positive amount from one account
-- to another, written once and never changed. A buyer's account is their Telegram user id
-- (users.balance caches the sum of its transfers, moved in the same transaction); the system
-- accounts have negative ids and take the other side, so the books always sum to zero.
CREATE TABLE system_accounts (
    id   INTEGER PRIMARY KEY CHECK (id < 0),
    name TEXT    NOT NULL UNIQUE
);
INSERT INTO system_accounts (id, name) VALUES
    (-1, 'sales'),    -- NDN issued against Stars received
    (-2, 'refunds'),  -- NDN taken back when Stars were refunded
    (-3, 'grants'),   -- NDN given by the operator
    (-4, 'spent');    -- NDN consumed in the operator's product

CREATE TABLE transfers (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    debit_account  INTEGER NOT NULL,            -- NDN leave this account
    credit_account INTEGER NOT NULL,            -- and arrive in this one
    amount         INTEGER NOT NULL CHECK (amount > 0),
    kind           TEXT    NOT NULL CHECK (kind IN ('purchase', 'refund', 'grant', 'spend')),
    reference      TEXT    NOT NULL,            -- the charge id, or the operation's own key
    stars          INTEGER NOT NULL DEFAULT 0 CHECK (stars >= 0), -- received or given back
    reason         TEXT,
    created_at     INTEGER NOT NULL,
    CHECK (debit_account <> credit_account),
    UNIQUE (kind, reference)                    -- a charge is credited once and refunded once
);
-- A buyer's statement: their side of each transfer. System accounts are read by kind instead,
-- so each transfer enters one of these two indexes, not both.
CREATE INDEX transfers_by_debit ON transfers (debit_account, id) WHERE debit_account > 0;
CREATE INDEX transfers_by_credit ON transfers (credit_account, id) WHERE credit_account > 0;

-- The single-entry ledger of schema 1, converted in order: a payment became sales → buyer, a
-- refund buyer → refunds, each with the Stars of its payment. Cached balances are unchanged.
INSERT INTO transfers (debit_account, credit_account, amount, kind, reference, stars, created_at)
SELECT CASE l.kind WHEN 'payment' THEN -1 ELSE l.user_id END,
       CASE l.kind WHEN 'payment' THEN l.user_id ELSE -2 END,
       ABS(l.delta),
       CASE l.kind WHEN 'payment' THEN 'purchase' ELSE 'refund' END,
       l.charge_id,
       COALESCE((SELECT p.stars FROM payments p WHERE p.charge_id = l.charge_id), 0),
       l.created_at
FROM ledger l ORDER BY l.id;
DROP TABLE ledger;

-- Balance changes a command-line run made (`server refund`, `server reconcile`), read by the
-- one server that serves the live streams; kept for a minute. (PostgreSQL uses NOTIFY.)
CREATE TABLE live_relay (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id    INTEGER NOT NULL,
    event      TEXT    NOT NULL,
    created_at INTEGER NOT NULL
);

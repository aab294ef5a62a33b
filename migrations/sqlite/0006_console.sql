-- The operator console: what operators did, and the indexes its views read by.

-- One row per operator action, written in the transaction of its effect. The id comes from the
-- operator's tap, so a repeated tap finds the row and changes nothing twice.
CREATE TABLE operator_actions (
    id          TEXT    PRIMARY KEY,
    operator_id INTEGER NOT NULL,             -- the operator's Telegram user id
    action      TEXT    NOT NULL,             -- credit, refund, grant, retry, revoke, reconcile
    target      TEXT    NOT NULL,             -- the charge, buyer, message or key acted on
    result      TEXT    NOT NULL,             -- what happened, in words
    created_at  INTEGER NOT NULL
);
CREATE INDEX operator_actions_by_time ON operator_actions (created_at);

-- The overview's periods, its chart and the export read transfers by time.
CREATE INDEX transfers_by_time ON transfers (created_at);
-- Held payments wait for the operator.
CREATE INDEX payments_held ON payments (created_at) WHERE status = 'held';

-- The open orders of a buyer, for the pending-order limit (a count per invoice request).
CREATE INDEX orders_open ON orders (user_id, expires_at) WHERE status = 'pending';

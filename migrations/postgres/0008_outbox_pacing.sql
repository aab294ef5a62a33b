-- The paced notifier claims the head of each chat (its oldest waiting message) and only a
-- second after the chat's last delivery; a chat may have sent thousands before, so both are
-- looked up in indexes of the waiting and of the sent messages alone. The oldest waiting
-- message (for the metrics) is read from the first.
CREATE INDEX outbox_waiting_by_chat ON outbox (chat_id, id) WHERE status = 'pending';
CREATE INDEX outbox_sent_by_chat ON outbox (chat_id, sent_at) WHERE status = 'sent';
CREATE INDEX outbox_waiting ON outbox (id) WHERE status = 'pending';

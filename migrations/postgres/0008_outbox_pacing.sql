-- The paced notifier: it claims a chat's messages in order, and only a second after the chat's
-- last message went out, so it looks up a chat's messages; and it reads the waiting messages
-- oldest first even when millions were sent before them.
CREATE INDEX outbox_by_chat ON outbox (chat_id, id);
CREATE INDEX outbox_waiting ON outbox (id) WHERE status = 'pending';

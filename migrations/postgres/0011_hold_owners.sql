-- The API key that made a hold: only it may capture or void the hold. Holds made before have
-- none, and any key with the spend scope may settle them.
ALTER TABLE holds ADD COLUMN api_key_id BIGINT;

-- An endpoint may take its events several to a POST: a JSON array of up to batch_size events,
-- signed as one body. 1 (the default) is one event per POST, its id and type in the headers.
ALTER TABLE endpoints ADD COLUMN batch_size BIGINT NOT NULL DEFAULT 1 CHECK (batch_size BETWEEN 1 AND 1000);

-- The API key that made a hold: only it may capture or void it. Holds made before have none,
-- and any key with the spend scope may settle them.
ALTER TABLE holds ADD COLUMN api_key_id INTEGER;

-- An integer sum that overflows becomes a REAL in SQLite; PostgreSQL refuses it ("bigint out of
-- range"). The rules refuse such a change before it is written; this makes SQLite refuse too,
-- should anything slip past them, instead of storing a rounded balance.
CREATE TRIGGER users_balance_stays_integer BEFORE UPDATE OF balance, held ON users
WHEN typeof(NEW.balance) <> 'integer' OR typeof(NEW.held) <> 'integer'
BEGIN
    SELECT RAISE(ABORT, 'a balance out of the integer range');
END;

-- Events older than EVENTS_RETENTION_DAYS that no endpoint needs any more are deleted; this
-- row counts them, so that `server events list` and a replay of a pruned id can say so. The
-- newest event is never deleted: `events.seq` is a rowid without AUTOINCREMENT, and SQLite
-- numbers the next row after the largest one left.
CREATE TABLE events_pruned (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    pruned  INTEGER NOT NULL DEFAULT 0,   -- events deleted so far
    last_at INTEGER                        -- when the last of them was deleted (Unix ms)
);
INSERT INTO events_pruned (id, pruned) VALUES (1, 0);

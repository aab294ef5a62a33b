-- Small durable values of the bot itself, e.g. the getUpdates offset in polling mode.
CREATE TABLE bot_state (
    key   TEXT    PRIMARY KEY,
    value BIGINT NOT NULL
);

-- Users, orders, payments, the append-only ledger, processed updates and the outbox.
-- Times are Unix milliseconds; money is whole NDN and whole Stars.

CREATE TABLE users (
    id            BIGINT  PRIMARY KEY,          -- Telegram user id
    first_name    TEXT    NOT NULL DEFAULT '',
    username      TEXT,
    language_code TEXT    NOT NULL DEFAULT 'en',
    balance       BIGINT  NOT NULL DEFAULT 0,   -- cache of SUM(ledger.delta), same transaction
    created_at    BIGINT  NOT NULL,
    updated_at    BIGINT  NOT NULL
);

CREATE TABLE orders (
    id          TEXT    PRIMARY KEY,            -- the invoice payload
    user_id     BIGINT  NOT NULL REFERENCES users (id),
    package_id  TEXT    NOT NULL,
    ndn         BIGINT  NOT NULL CHECK (ndn > 0),
    stars       BIGINT  NOT NULL CHECK (stars > 0),
    status      TEXT    NOT NULL CHECK (status IN ('pending', 'paid', 'refunded', 'expired', 'failed')),
    invoice_url TEXT,
    created_at  BIGINT  NOT NULL,
    expires_at  BIGINT  NOT NULL,
    paid_at     BIGINT
);
CREATE INDEX orders_by_user ON orders (user_id, created_at DESC);

CREATE TABLE payments (
    charge_id          TEXT    PRIMARY KEY,     -- telegram_payment_charge_id: one row per charge
    provider_charge_id TEXT,
    user_id            BIGINT  NOT NULL,
    order_id           TEXT,
    payload            TEXT    NOT NULL,
    currency           TEXT    NOT NULL,
    stars              BIGINT  NOT NULL,
    ndn                BIGINT  NOT NULL,        -- NDN credited; 0 when held
    status             TEXT    NOT NULL CHECK (status IN ('credited', 'held', 'refunded')),
    hold_reason        TEXT,
    created_at         BIGINT  NOT NULL,
    refunded_at        BIGINT
);
CREATE INDEX payments_by_user ON payments (user_id, created_at DESC);

CREATE TABLE ledger (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id    BIGINT  NOT NULL,
    delta      BIGINT  NOT NULL,
    kind       TEXT    NOT NULL CHECK (kind IN ('payment', 'refund')),
    charge_id  TEXT    NOT NULL,
    created_at BIGINT  NOT NULL,
    UNIQUE (charge_id, kind)                    -- a charge is credited once and refunded once
);
CREATE INDEX ledger_by_user ON ledger (user_id);

CREATE TABLE outbox (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    dedupe_key      TEXT    NOT NULL UNIQUE,    -- e.g. payment:<charge id>, update:<update id>
    chat_id         BIGINT  NOT NULL,
    text            TEXT    NOT NULL,
    reply_markup    TEXT,
    status          TEXT    NOT NULL CHECK (status IN ('pending', 'sent', 'failed')),
    attempts        BIGINT  NOT NULL DEFAULT 0,
    next_attempt_at BIGINT  NOT NULL,
    locked_until    BIGINT  NOT NULL DEFAULT 0, -- lease of the worker that is sending it
    last_error      TEXT,
    created_at      BIGINT  NOT NULL,
    sent_at         BIGINT
);
CREATE INDEX outbox_due ON outbox (status, next_attempt_at);

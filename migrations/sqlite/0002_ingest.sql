-- Ingest: every store webhook as received, customers, the canonical order per store order id,
-- and one sync task per (order, destination).

-- Every delivery, kept raw for replay. A delivery whose webhook id or event id was seen before is
-- still recorded (duplicate = 1) for the duplicate rate and the order's timeline; the partial
-- unique indexes make "first one wins" a database rule, also for concurrent posts.
CREATE TABLE webhook_events (
    id               INTEGER PRIMARY KEY,
    webhook_id       TEXT NOT NULL,
    event_id         TEXT,
    topic            TEXT NOT NULL,
    shop_domain      TEXT,
    api_version      TEXT,
    triggered_at     TEXT,
    received_at      TEXT NOT NULL,
    body             BLOB NOT NULL,
    duplicate        BOOLEAN NOT NULL DEFAULT 0,
    -- accepted | duplicate | superseded | unknown_topic | unreadable | applied
    outcome          TEXT NOT NULL,
    store_order_id   INTEGER,
    order_updated_at TEXT,
    note             TEXT
);
CREATE UNIQUE INDEX webhook_events_first_webhook_id ON webhook_events (webhook_id) WHERE duplicate = 0;
CREATE UNIQUE INDEX webhook_events_first_event_id ON webhook_events (event_id) WHERE duplicate = 0 AND event_id IS NOT NULL;
CREATE INDEX webhook_events_order ON webhook_events (store_order_id, id);

CREATE TABLE customers (
    id                INTEGER PRIMARY KEY,
    store_customer_id INTEGER UNIQUE,
    email             TEXT UNIQUE,
    phone             TEXT,
    first_name        TEXT,
    last_name         TEXT,
    created_at        TEXT NOT NULL,
    updated_at        TEXT NOT NULL
);

-- The canonical order: the newest state the store has told us, versioned by the store's
-- updated_at; `version` counts the states applied (and is what sync tasks aim at).
CREATE TABLE orders (
    store_order_id   INTEGER PRIMARY KEY,
    name             TEXT NOT NULL,
    store_updated_at TEXT NOT NULL,
    version          INTEGER NOT NULL,
    customer_id      INTEGER REFERENCES customers (id),
    email            TEXT,
    lifecycle        TEXT NOT NULL,
    currency         TEXT NOT NULL,
    total            TEXT NOT NULL,
    data             TEXT NOT NULL,
    first_seen_at    TEXT NOT NULL,
    updated_at       TEXT NOT NULL
);
CREATE INDEX orders_name ON orders (name);
CREATE INDEX orders_email ON orders (email);

CREATE TABLE sync_tasks (
    id               INTEGER PRIMARY KEY,
    store_order_id   INTEGER NOT NULL REFERENCES orders (store_order_id),
    destination      TEXT NOT NULL CHECK (destination IN ('crm', 'erp')),
    state            TEXT NOT NULL CHECK (state IN ('pending', 'running', 'retrying', 'blocked', 'synced', 'dead', 'skipped')),
    target_version   INTEGER NOT NULL,
    synced_version   INTEGER,
    attempt          INTEGER NOT NULL DEFAULT 0,
    scheduled_at     TEXT NOT NULL,
    armed_at         TEXT NOT NULL,
    lease_token      TEXT,
    lease_expires_at TEXT,
    external_id      TEXT,
    blocked_on       TEXT,
    last_error       TEXT,
    updated_at       TEXT NOT NULL,
    UNIQUE (store_order_id, destination)
);
CREATE INDEX sync_tasks_due ON sync_tasks (state, scheduled_at);

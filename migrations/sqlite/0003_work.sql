-- Working the sync tasks: attempts, exceptions, SKU mappings, destination pauses.

-- Every attempt to deliver a task, kept for the order's timeline and the KPIs.
CREATE TABLE sync_attempts (
    id             INTEGER PRIMARY KEY,
    task_id        INTEGER NOT NULL REFERENCES sync_tasks (id),
    store_order_id INTEGER NOT NULL,
    destination    TEXT NOT NULL,
    version        INTEGER NOT NULL,
    attempt        INTEGER NOT NULL,
    started_at     TEXT NOT NULL,
    duration_ms    INTEGER NOT NULL,
    -- synced | transient | needs_action | auth | fenced
    outcome        TEXT NOT NULL,
    status         INTEGER,
    message        TEXT,
    request_id     TEXT,
    -- For synced attempts: from the moment the version was armed to its acknowledgement.
    lag_ms         INTEGER
);
CREATE INDEX sync_attempts_task ON sync_attempts (task_id, id);
CREATE INDEX sync_attempts_time ON sync_attempts (started_at);

-- What the engine could not settle. One open exception per task (or per destination-wide cause
-- such as rejected credentials, which has no task).
CREATE TABLE exceptions (
    id             INTEGER PRIMARY KEY,
    task_id        INTEGER REFERENCES sync_tasks (id),
    store_order_id INTEGER,
    destination    TEXT NOT NULL,
    code           TEXT NOT NULL,
    kind           TEXT NOT NULL CHECK (kind IN ('needs_action', 'transient', 'exhausted')),
    fingerprint    TEXT NOT NULL,
    message        TEXT NOT NULL,
    action         TEXT NOT NULL,
    fields         TEXT NOT NULL,
    status         TEXT NOT NULL CHECK (status IN ('open', 'snoozed', 'resolved', 'skipped')),
    assignee_id    INTEGER REFERENCES users (id),
    snoozed_until  TEXT,
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL,
    resolved_at    TEXT,
    resolved_by    TEXT,
    resolution     TEXT
);
CREATE UNIQUE INDEX exceptions_one_open_per_task ON exceptions (task_id) WHERE status IN ('open', 'snoozed') AND task_id IS NOT NULL;
CREATE UNIQUE INDEX exceptions_one_open_per_cause ON exceptions (fingerprint) WHERE status IN ('open', 'snoozed') AND task_id IS NULL;
CREATE INDEX exceptions_by_cause ON exceptions (status, fingerprint, created_at);

CREATE TABLE sku_mappings (
    sku        TEXT PRIMARY KEY,
    item_code  TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    updated_by TEXT NOT NULL
);

-- A destination that rejected our credentials is paused: nothing is sent to it until they are
-- renewed, and one exception says so instead of one per order.
CREATE TABLE destinations (
    name          TEXT PRIMARY KEY CHECK (name IN ('crm', 'erp')),
    paused        BOOLEAN NOT NULL DEFAULT 0,
    paused_reason TEXT,
    paused_at     TEXT,
    updated_at    TEXT NOT NULL
);
INSERT INTO destinations (name, paused, updated_at) VALUES ('crm', 0, '2026-01-01T00:00:00+00:00'), ('erp', 0, '2026-01-01T00:00:00+00:00');

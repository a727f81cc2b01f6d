-- Payload edits: an operator's corrected copy of what one destination gets for one version of an
-- order. Copy-on-write: the computed payload (`original`) is kept next to the edit, edits are
-- only ever added, and the worker sends the newest edit for the version it delivers. A newer
-- version of the order is mapped afresh from the store's data.
CREATE TABLE payload_edits (
    id             INTEGER PRIMARY KEY,
    store_order_id INTEGER NOT NULL REFERENCES orders (store_order_id),
    destination    TEXT NOT NULL,
    version        INTEGER NOT NULL,
    original       TEXT NOT NULL,
    payload        TEXT NOT NULL,
    created_by     TEXT NOT NULL,
    created_at     TEXT NOT NULL
);
CREATE INDEX payload_edits_by_version ON payload_edits (store_order_id, destination, version, id);

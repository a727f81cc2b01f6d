-- Triage: finding exceptions and orders by SKU, by assignee, and paging the open queue fast.

-- The SKUs each order contains (as ever seen: an edit that removes a line leaves its SKU here,
-- so a search still finds the order it was once on).
CREATE TABLE order_skus (
    store_order_id INTEGER NOT NULL REFERENCES orders (store_order_id),
    sku            TEXT NOT NULL,
    PRIMARY KEY (store_order_id, sku)
);
CREATE INDEX order_skus_sku ON order_skus (sku, store_order_id);
INSERT OR IGNORE INTO order_skus (store_order_id, sku)
SELECT o.store_order_id, json_extract(l.value, '$.sku')
FROM orders o, json_each(o.data, '$.lines') l
WHERE json_extract(l.value, '$.sku') IS NOT NULL;

CREATE INDEX exceptions_by_status ON exceptions (status, id);
CREATE INDEX exceptions_by_assignee ON exceptions (assignee_id, status);
CREATE INDEX exceptions_by_order ON exceptions (store_order_id, id);
CREATE INDEX exceptions_snoozed ON exceptions (snoozed_until) WHERE status = 'snoozed';

-- The orders list (newest change first) and finding an order by number.
CREATE INDEX orders_updated ON orders (updated_at);
-- Exceptions by cause without a status (search by SKU), and the queue's groups read from the
-- index alone (count, oldest, destinations, code, kind and action of each cause).
CREATE INDEX exceptions_by_fingerprint ON exceptions (fingerprint, id);
CREATE INDEX exceptions_groups ON exceptions (status, fingerprint, created_at, destination, code, kind, action, id);

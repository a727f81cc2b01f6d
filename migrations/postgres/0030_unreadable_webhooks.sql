-- An order or refund the store sent in a form SyncDesk cannot read opens an exception of the
-- store's (`destination = 'store'`, `code = 'unreadable_webhook'`, no task: there is no order
-- state to send). `order_as_of` is how recent the unread state was (the order's `updated_at`,
-- when that much of it could be read): the exception resolves by itself once SyncDesk holds a
-- state of the order at least that recent. The sweep that looks for those reads the few open
-- ones through the partial index.
ALTER TABLE exceptions ADD COLUMN order_as_of TIMESTAMPTZ;
CREATE INDEX exceptions_unreadable_open ON exceptions (store_order_id)
    WHERE code = 'unreadable_webhook' AND status IN ('open', 'snoozed');

-- An order or refund the store sent in a form SyncDesk cannot read opens an exception of the
-- store's (`destination = 'store'`, `code = 'unreadable_webhook'`, no task: there is no order
-- state to send). `order_as_of` is how recent the unread state was (the order's `updated_at`,
-- when that much of it could be read): the exception resolves by itself once SyncDesk holds a
-- state of the order at least that recent. The sweep that looks for those reads the few open
-- ones through the partial index.
ALTER TABLE exceptions ADD COLUMN order_as_of TIMESTAMPTZ;
-- When the last unread state arrived (SyncDesk's clock): with no `order_as_of`, any state of the
-- order taken in after it resolves the exception. Its own column, since assigning or snoozing
-- moves `updated_at`.
ALTER TABLE exceptions ADD COLUMN unread_at TIMESTAMPTZ;
CREATE INDEX exceptions_unreadable_open ON exceptions (store_order_id)
    WHERE code = 'unreadable_webhook' AND status IN ('open', 'snoozed');

-- A destination-wide exception (rejected credentials) is never snoozed any more: out of sight, a
-- paused destination raises no other exception. One snoozed before is open again.
UPDATE exceptions SET status = 'open', snoozed_until = NULL
WHERE task_id IS NULL AND destination IN ('crm', 'erp') AND status = 'snoozed';

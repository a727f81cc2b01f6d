-- Saving a SKU mapping releases the tasks blocked on its cause (`blocked_on =
-- 'missing_sku:erp:<sku>'`); without an index each release read every task ever made, and a
-- CSV import of thousands of mappings did so once per row while it held its transaction open.
-- Only blocked tasks are in it, so the deliveries' writes rarely touch it.
CREATE INDEX sync_tasks_blocked_on ON sync_tasks (blocked_on) WHERE state = 'blocked';

-- The hot tables' rows are written without foreign-key checks, and a delivery attempt is kept
-- under one index instead of two.
--
-- Every new order wrote ~7 rows that named a parent through a foreign key: its two sync tasks
-- and its SKUs (the order), the order itself (its customer), and then the two attempts of its
-- deliveries (their tasks). PostgreSQL checks each such row with a query of its own, run by a
-- trigger after the statement: `SELECT … FROM orders WHERE … FOR KEY SHARE`. It reads the parent
-- through its index and locks it, and the lock is a write: the parent's page is dirtied again
-- and the lock logged (~5 lock records an order: a parent already locked by the transaction
-- is not locked again). In the benchmark that was 74,000 queries in 10,000 orders.
--
-- These checks guard against a bug, not against data: the parents are written first, in the
-- same transaction, by the same function (`syncdesk_ingest_orders`, `syncdesk_complete_synced`)
-- or the same Rust transaction, and nothing deletes an order, a task or a customer. So the
-- constraints go, on PostgreSQL only; SQLite keeps them (its checks are an index probe inside
-- the one writer, and they keep the test suite watching for orphans). The integration tests
-- look for orphans on both backends after their workloads of new orders, updates, duplicates,
-- deliveries, retries and released SKUs (`assert_every_row_has_its_parent`).
ALTER TABLE sync_tasks DROP CONSTRAINT sync_tasks_store_order_id_fkey;
ALTER TABLE order_skus DROP CONSTRAINT order_skus_store_order_id_fkey;
ALTER TABLE orders DROP CONSTRAINT orders_customer_id_fkey;
ALTER TABLE sync_attempts DROP CONSTRAINT sync_attempts_task_id_fkey;

-- Attempts are only ever read by their task, newest first (an order's timeline, the API's
-- order view); nothing reads one by its id alone. The key is now (task, id), which is the
-- index those reads used, and the index on the id alone goes: two index entries fewer an
-- order.
ALTER TABLE sync_attempts DROP CONSTRAINT sync_attempts_pkey;
DROP INDEX sync_attempts_task;
ALTER TABLE sync_attempts ADD PRIMARY KEY (task_id, id);

-- Nothing reads delivery attempts by time: `/metrics` adds up `attempt_counts` (migration 0012)
-- and an order's timeline reads its tasks' attempts by task. The index cost the writer two
-- entries an order.
DROP INDEX sync_attempts_time;

-- The claims' index holds only the tasks a claim can take: pending, retrying, or running (an
-- expired lease is rescued). A task that settles (synced, blocked, dead, skipped) leaves it, so
-- recording a synced delivery writes one index entry fewer, and the index stays the size of
-- the queue rather than of every task ever synced. The claims name one state each
-- (`state = 'pending'`, …), which PostgreSQL knows to be inside this index's condition.
-- (SQLite keeps the full index: its planner does not use a partial index for a query whose
-- condition is not written the same way.)
DROP INDEX sync_tasks_due;
CREATE INDEX sync_tasks_due ON sync_tasks (state, scheduled_at) WHERE state IN ('pending', 'retrying', 'running');

-- The orders list filtered by a destination's state ("retrying", "needs action", "synced") reads
-- the tasks in that state, most recently changed first, straight from this index instead of
-- collecting every order in the state and sorting them.
CREATE INDEX sync_tasks_by_state_change ON sync_tasks (state, updated_at);

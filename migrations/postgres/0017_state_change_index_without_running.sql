-- A claim moves each task it takes to 'running' for the moment its delivery lasts, and the
-- completion moves it on. Every such move wrote an entry into this index that nothing reads:
-- the orders list asks for running tasks so rarely, and they are so few, that it finds them
-- through `sync_tasks_due` (which holds them) and sorts them. The orders list writes the state
-- into its statement, so the planner can see that any other state is in this index.
DROP INDEX sync_tasks_by_state_change;
CREATE INDEX sync_tasks_by_state_change ON sync_tasks (state, updated_at) WHERE state <> 'running';

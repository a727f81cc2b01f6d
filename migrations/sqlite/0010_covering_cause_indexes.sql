-- The grouped queue narrowed to the unassigned or by age counts, per summary row, the exceptions
-- the filter leaves out, and looks up again the oldest and newest ones left in: each an index
-- range within one cause. With the assignee and the age in these indexes, no exception row is
-- read. exceptions_by_age (migration 0008) served the earlier way of counting the recent ones,
-- and goes.
DROP INDEX exceptions_groups;
CREATE INDEX exceptions_groups ON exceptions (status, fingerprint, created_at, destination, code, kind, action, id, assignee_id);
DROP INDEX exceptions_cause_tasks;
CREATE INDEX exceptions_cause_tasks ON exceptions (status, fingerprint, id, task_id, assignee_id, created_at);
DROP INDEX exceptions_by_age;

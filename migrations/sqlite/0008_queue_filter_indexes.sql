-- The grouped queue narrowed to the unassigned, or to exceptions older than an age, reads the
-- per-cause summary less what the filter leaves out: the assigned ones and the recent ones,
-- each read here in summary-row order from an index that holds every column it needs, instead
-- of from every open exception.
CREATE INDEX exceptions_assigned ON exceptions (status, fingerprint, destination, code, kind, action, assignee_id)
    WHERE assignee_id IS NOT NULL;
CREATE INDEX exceptions_by_age ON exceptions (status, created_at, fingerprint, destination, code, kind, action, assignee_id);

-- The queue's causes, counted as exceptions change: the grouped queue reads a few thousand rows
-- here instead of aggregating every open exception.

-- Per cause and status that has open or snoozed exceptions (a cause whose last one closes has no
-- row). Exact at every commit: the triggers below change it in the same transaction as the
-- exceptions, whoever writes them (workers, triage, a SKU mapping's release, the snooze sweep,
-- renewed credentials).
--
-- PostgreSQL splits each cause over 8 slots so that concurrent workers do not queue on one row;
-- SQLite has one writer at a time, so every cause has the one slot 0.
CREATE TABLE exception_causes (
    status      TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    destination TEXT NOT NULL,
    code        TEXT NOT NULL,
    kind        TEXT NOT NULL,
    action      TEXT NOT NULL,
    slot        INTEGER NOT NULL,
    -- How many exceptions of the slot have exactly this cause and status.
    exceptions  INTEGER NOT NULL,
    -- The oldest one's created_at, and the newest one's id (whose sentence stands for the group).
    -- A minimum cannot be kept by subtracting: when the row holding it leaves, it is read again
    -- from the index (one lookup).
    oldest      TEXT NOT NULL,
    newest_id   INTEGER NOT NULL,
    PRIMARY KEY (status, fingerprint, destination, code, kind, action, slot)
) WITHOUT ROWID;

-- Each cause's exceptions in id order, with their tasks: a cause's newest exception, and a bulk
-- action's counts, come from the index alone. It starts like exceptions_groups, which serves every
-- query exceptions_by_cause did, so that one goes.
CREATE INDEX exceptions_cause_tasks ON exceptions (status, fingerprint, id, task_id);
DROP INDEX exceptions_by_cause;

-- SQLite has only row triggers; with its single writer, one summary row change per exception
-- change is cheap and cannot deadlock. "Leaves" and "joins" are written separately so that an
-- exception whose cause changes (a retry failing for another reason) moves between rows.
CREATE TRIGGER exception_causes_insert AFTER INSERT ON exceptions
WHEN NEW.status IN ('open', 'snoozed')
BEGIN
    INSERT INTO exception_causes (status, fingerprint, destination, code, kind, action, slot, exceptions, oldest, newest_id)
    VALUES (NEW.status, NEW.fingerprint, NEW.destination, NEW.code, NEW.kind, NEW.action, 0, 1, NEW.created_at, NEW.id)
    ON CONFLICT (status, fingerprint, destination, code, kind, action, slot) DO UPDATE SET
        exceptions = exceptions + 1,
        oldest = min(oldest, excluded.oldest),
        newest_id = max(newest_id, excluded.newest_id);
END;

CREATE TRIGGER exception_causes_join AFTER UPDATE OF status, fingerprint, destination, code, kind, action, created_at ON exceptions
WHEN NEW.status IN ('open', 'snoozed')
 AND (NEW.status <> OLD.status OR NEW.fingerprint <> OLD.fingerprint OR NEW.destination <> OLD.destination
      OR NEW.code <> OLD.code OR NEW.kind <> OLD.kind OR NEW.action <> OLD.action OR NEW.created_at <> OLD.created_at)
BEGIN
    INSERT INTO exception_causes (status, fingerprint, destination, code, kind, action, slot, exceptions, oldest, newest_id)
    VALUES (NEW.status, NEW.fingerprint, NEW.destination, NEW.code, NEW.kind, NEW.action, 0, 1, NEW.created_at, NEW.id)
    ON CONFLICT (status, fingerprint, destination, code, kind, action, slot) DO UPDATE SET
        exceptions = exceptions + 1,
        oldest = min(oldest, excluded.oldest),
        newest_id = max(newest_id, excluded.newest_id);
END;

CREATE TRIGGER exception_causes_leave AFTER UPDATE OF status, fingerprint, destination, code, kind, action, created_at ON exceptions
WHEN OLD.status IN ('open', 'snoozed')
 AND (NEW.status <> OLD.status OR NEW.fingerprint <> OLD.fingerprint OR NEW.destination <> OLD.destination
      OR NEW.code <> OLD.code OR NEW.kind <> OLD.kind OR NEW.action <> OLD.action OR NEW.created_at <> OLD.created_at)
BEGIN
    UPDATE exception_causes SET exceptions = exceptions - 1
    WHERE status = OLD.status AND fingerprint = OLD.fingerprint AND destination = OLD.destination
      AND code = OLD.code AND kind = OLD.kind AND action = OLD.action;
    DELETE FROM exception_causes
    WHERE status = OLD.status AND fingerprint = OLD.fingerprint AND destination = OLD.destination
      AND code = OLD.code AND kind = OLD.kind AND action = OLD.action AND exceptions <= 0;
    UPDATE exception_causes SET
        oldest = CASE WHEN oldest >= OLD.created_at THEN COALESCE((
            SELECT MIN(e.created_at) FROM exceptions e INDEXED BY exceptions_groups
            WHERE e.status = OLD.status AND e.fingerprint = OLD.fingerprint AND e.destination = OLD.destination
              AND e.code = OLD.code AND e.kind = OLD.kind AND e.action = OLD.action), oldest) ELSE oldest END,
        newest_id = CASE WHEN newest_id <= OLD.id THEN COALESCE((
            SELECT MAX(e.id) FROM exceptions e INDEXED BY exceptions_cause_tasks
            WHERE e.status = OLD.status AND e.fingerprint = OLD.fingerprint AND e.destination = OLD.destination
              AND e.code = OLD.code AND e.kind = OLD.kind AND e.action = OLD.action), newest_id) ELSE newest_id END
    WHERE status = OLD.status AND fingerprint = OLD.fingerprint AND destination = OLD.destination
      AND code = OLD.code AND kind = OLD.kind AND action = OLD.action
      AND (oldest >= OLD.created_at OR newest_id <= OLD.id);
END;

CREATE TRIGGER exception_causes_delete AFTER DELETE ON exceptions
WHEN OLD.status IN ('open', 'snoozed')
BEGIN
    UPDATE exception_causes SET exceptions = exceptions - 1
    WHERE status = OLD.status AND fingerprint = OLD.fingerprint AND destination = OLD.destination
      AND code = OLD.code AND kind = OLD.kind AND action = OLD.action;
    DELETE FROM exception_causes
    WHERE status = OLD.status AND fingerprint = OLD.fingerprint AND destination = OLD.destination
      AND code = OLD.code AND kind = OLD.kind AND action = OLD.action AND exceptions <= 0;
    UPDATE exception_causes SET
        oldest = CASE WHEN oldest >= OLD.created_at THEN COALESCE((
            SELECT MIN(e.created_at) FROM exceptions e INDEXED BY exceptions_groups
            WHERE e.status = OLD.status AND e.fingerprint = OLD.fingerprint AND e.destination = OLD.destination
              AND e.code = OLD.code AND e.kind = OLD.kind AND e.action = OLD.action), oldest) ELSE oldest END,
        newest_id = CASE WHEN newest_id <= OLD.id THEN COALESCE((
            SELECT MAX(e.id) FROM exceptions e INDEXED BY exceptions_cause_tasks
            WHERE e.status = OLD.status AND e.fingerprint = OLD.fingerprint AND e.destination = OLD.destination
              AND e.code = OLD.code AND e.kind = OLD.kind AND e.action = OLD.action), newest_id) ELSE newest_id END
    WHERE status = OLD.status AND fingerprint = OLD.fingerprint AND destination = OLD.destination
      AND code = OLD.code AND kind = OLD.kind AND action = OLD.action
      AND (oldest >= OLD.created_at OR newest_id <= OLD.id);
END;

-- What is open today. The migration holds the write lock, so no change slips between this and
-- the triggers.
INSERT INTO exception_causes (status, fingerprint, destination, code, kind, action, slot, exceptions, oldest, newest_id)
SELECT status, fingerprint, destination, code, kind, action, 0, COUNT(*), MIN(created_at), MAX(id)
FROM exceptions
WHERE status IN ('open', 'snoozed')
GROUP BY status, fingerprint, destination, code, kind, action;

-- The queue's causes, counted as exceptions change: the grouped queue reads a few thousand rows
-- here instead of aggregating every open exception.

-- Per cause and status that has open or snoozed exceptions (a cause whose last one closes has no
-- row). Exact at every commit: the triggers below change it in the same transaction as the
-- exceptions, whoever writes them (workers, triage, a SKU mapping's release, the snooze sweep,
-- renewed credentials).
--
-- Each cause is split over up to 8 slots by exception id (slot = id % 8); readers add them up.
-- A summary row stays locked from the change to the commit, so with one row per cause every
-- worker opening an exception of the same cause (a new SKU in a busy sale) would commit after
-- the other; concurrent inserts take consecutive ids, so they land in different slots.
CREATE TABLE exception_causes (
    status      TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    destination TEXT NOT NULL,
    code        TEXT NOT NULL,
    kind        TEXT NOT NULL,
    action      TEXT NOT NULL,
    slot        SMALLINT NOT NULL,
    -- How many exceptions of the slot have exactly this cause and status.
    exceptions  BIGINT NOT NULL,
    -- The oldest one's created_at, and the newest one's id (whose sentence stands for the group).
    -- A minimum cannot be kept by subtracting: when the row holding it leaves, it is read again
    -- from the index (one lookup).
    oldest      TIMESTAMPTZ NOT NULL,
    newest_id   BIGINT NOT NULL,
    PRIMARY KEY (status, fingerprint, destination, code, kind, action, slot)
);

-- Each cause's exceptions in id order, with their tasks: a cause's newest exception, and a bulk
-- action's counts, come from the index alone. It starts like exceptions_groups, which serves every
-- query exceptions_by_cause did, so that one goes.
CREATE INDEX exceptions_cause_tasks ON exceptions (status, fingerprint, id, task_id);
DROP INDEX exceptions_by_cause;

-- What one statement did to one summary row: exceptions that joined minus those that left, and
-- the oldest / newest among each (NULL: none).
CREATE TYPE exception_cause_change AS (
    status        TEXT,
    fingerprint   TEXT,
    destination   TEXT,
    code          TEXT,
    kind          TEXT,
    action        TEXT,
    slot          SMALLINT,
    delta         BIGINT,
    joined_oldest TIMESTAMPTZ,
    joined_newest BIGINT,
    left_oldest   TIMESTAMPTZ,
    left_newest   BIGINT
);

-- Statement triggers with transition tables: a bulk action on 5,000 exceptions of one cause is
-- one write per slot, not 5,000. Each statement changes the summary rows it touches in key
-- order, so two transactions cannot lock them in opposite orders (no deadlock between
-- statements), and each sees the other's committed count.
CREATE FUNCTION exception_causes_follow() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    changes exception_cause_change[];
    change exception_cause_change;
BEGIN
    -- Statement triggers fire for statements that change no row too, e.g. each delivery's
    -- "resolve this task's open exception", which usually has none: leave those at once.
    IF TG_OP = 'DELETE' THEN
        IF NOT EXISTS (SELECT FROM old_exceptions) THEN
            RETURN NULL;
        END IF;
    ELSIF NOT EXISTS (SELECT FROM new_exceptions) THEN
        RETURN NULL;
    END IF;

    IF TG_OP = 'INSERT' THEN
        SELECT array_agg(c) INTO changes FROM (
            SELECT ROW(status, fingerprint, destination, code, kind, action, id % 8,
                       COUNT(*), MIN(created_at), MAX(id), NULL, NULL)::exception_cause_change AS c
            FROM new_exceptions
            WHERE status IN ('open', 'snoozed')
            GROUP BY status, fingerprint, destination, code, kind, action, id % 8) s;
    ELSIF TG_OP = 'DELETE' THEN
        SELECT array_agg(c) INTO changes FROM (
            SELECT ROW(status, fingerprint, destination, code, kind, action, id % 8,
                       -COUNT(*), NULL, NULL, MIN(created_at), MAX(id))::exception_cause_change AS c
            FROM old_exceptions
            WHERE status IN ('open', 'snoozed')
            GROUP BY status, fingerprint, destination, code, kind, action, id % 8) s;
    ELSE
        -- Only rows whose cause, status or age changed move (an assignment or a new sentence
        -- does not). Ids never change.
        SELECT array_agg(c) INTO changes FROM (
            SELECT ROW(status, fingerprint, destination, code, kind, action, id % 8,
                       SUM(delta), MIN(joined_at), MAX(joined_id), MIN(left_at), MAX(left_id))::exception_cause_change AS c
            FROM (
                SELECT o.id, o.status, o.fingerprint, o.destination, o.code, o.kind, o.action, -1 AS delta,
                       NULL::timestamptz AS joined_at, NULL::bigint AS joined_id, o.created_at AS left_at, o.id AS left_id
                FROM old_exceptions o JOIN new_exceptions n ON n.id = o.id
                WHERE o.status IN ('open', 'snoozed')
                  AND (o.status, o.fingerprint, o.destination, o.code, o.kind, o.action, o.created_at)
                      IS DISTINCT FROM (n.status, n.fingerprint, n.destination, n.code, n.kind, n.action, n.created_at)
                UNION ALL
                SELECT n.id, n.status, n.fingerprint, n.destination, n.code, n.kind, n.action, 1,
                       n.created_at, n.id, NULL, NULL
                FROM old_exceptions o JOIN new_exceptions n ON n.id = o.id
                WHERE n.status IN ('open', 'snoozed')
                  AND (o.status, o.fingerprint, o.destination, o.code, o.kind, o.action, o.created_at)
                      IS DISTINCT FROM (n.status, n.fingerprint, n.destination, n.code, n.kind, n.action, n.created_at)
            ) moved
            GROUP BY status, fingerprint, destination, code, kind, action, id % 8) s;
    END IF;
    IF changes IS NULL THEN
        RETURN NULL;
    END IF;

    -- Counts, in key order. A row that only lost exceptions exists already, so it is updated;
    -- 'infinity' and 0 leave its oldest and newest to the recount below.
    INSERT INTO exception_causes AS s (status, fingerprint, destination, code, kind, action, slot, exceptions, oldest, newest_id)
    SELECT c.status, c.fingerprint, c.destination, c.code, c.kind, c.action, c.slot, c.delta,
           COALESCE(c.joined_oldest, 'infinity'), COALESCE(c.joined_newest, 0)
    FROM unnest(changes) c
    ORDER BY c.status, c.fingerprint, c.destination, c.code, c.kind, c.action, c.slot
    ON CONFLICT (status, fingerprint, destination, code, kind, action, slot) DO UPDATE SET
        exceptions = s.exceptions + excluded.exceptions,
        oldest = LEAST(s.oldest, excluded.oldest),
        newest_id = GREATEST(s.newest_id, excluded.newest_id);

    -- Where exceptions left: a row left empty goes, and where the oldest or the newest left it
    -- is read again (from exceptions_groups and exceptions_cause_tasks: a few index entries).
    -- One row at a time, by its key (a join would read the whole summary for a single change);
    -- these rows are locked above already, so the order does not matter. Separate statements:
    -- they see every change committed while the lock was awaited.
    FOREACH change IN ARRAY changes LOOP
        CONTINUE WHEN change.left_oldest IS NULL;
        DELETE FROM exception_causes
        WHERE status = change.status AND fingerprint = change.fingerprint AND destination = change.destination
          AND code = change.code AND kind = change.kind AND action = change.action AND slot = change.slot
          AND exceptions <= 0;
        UPDATE exception_causes s SET
            oldest = CASE WHEN change.left_oldest <= s.oldest THEN COALESCE((
                SELECT MIN(e.created_at) FROM exceptions e
                WHERE e.status = s.status AND e.fingerprint = s.fingerprint AND e.destination = s.destination
                  AND e.code = s.code AND e.kind = s.kind AND e.action = s.action AND e.id % 8 = s.slot),
                s.oldest) ELSE s.oldest END,
            newest_id = CASE WHEN change.left_newest >= s.newest_id THEN COALESCE((
                SELECT MAX(e.id) FROM exceptions e
                WHERE e.status = s.status AND e.fingerprint = s.fingerprint AND e.destination = s.destination
                  AND e.code = s.code AND e.kind = s.kind AND e.action = s.action AND e.id % 8 = s.slot),
                s.newest_id) ELSE s.newest_id END
        WHERE s.status = change.status AND s.fingerprint = change.fingerprint AND s.destination = change.destination
          AND s.code = change.code AND s.kind = change.kind AND s.action = change.action AND s.slot = change.slot
          AND (change.left_oldest <= s.oldest OR change.left_newest >= s.newest_id);
    END LOOP;
    RETURN NULL;
END;
$$;

-- Transition tables allow one event per trigger. INSERT … ON CONFLICT DO UPDATE fires both the
-- insert trigger (rows inserted) and the update trigger (rows updated).
CREATE TRIGGER exception_causes_insert AFTER INSERT ON exceptions
    REFERENCING NEW TABLE AS new_exceptions
    FOR EACH STATEMENT EXECUTE FUNCTION exception_causes_follow();
CREATE TRIGGER exception_causes_update AFTER UPDATE ON exceptions
    REFERENCING OLD TABLE AS old_exceptions NEW TABLE AS new_exceptions
    FOR EACH STATEMENT EXECUTE FUNCTION exception_causes_follow();
CREATE TRIGGER exception_causes_delete AFTER DELETE ON exceptions
    REFERENCING OLD TABLE AS old_exceptions
    FOR EACH STATEMENT EXECUTE FUNCTION exception_causes_follow();

CREATE FUNCTION exception_causes_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM exception_causes;
    RETURN NULL;
END;
$$;
CREATE TRIGGER exception_causes_truncate AFTER TRUNCATE ON exceptions
    FOR EACH STATEMENT EXECUTE FUNCTION exception_causes_truncate();

-- What is open today. Creating the triggers locked the table against writes until this
-- migration commits, so no change slips between this count and the triggers.
INSERT INTO exception_causes (status, fingerprint, destination, code, kind, action, slot, exceptions, oldest, newest_id)
SELECT status, fingerprint, destination, code, kind, action, id % 8, COUNT(*), MIN(created_at), MAX(id)
FROM exceptions
WHERE status IN ('open', 'snoozed')
GROUP BY status, fingerprint, destination, code, kind, action, id % 8;

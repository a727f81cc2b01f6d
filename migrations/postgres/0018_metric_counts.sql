-- `/metrics`' counters, kept as the rows they count are written. A scrape used to count every
-- delivery attempt and every webhook ever received (`GROUP BY` over the whole of
-- `sync_attempts` and `webhook_events`), so its cost grew with history without end; it now adds
-- up these few rows. They count the rows ever written: deleting attempts or webhooks (nothing
-- does) would not lower them, as a Prometheus counter never goes down.
--
-- Exact at every commit: statement triggers change the counts in the same statement as the rows
-- they count, whoever writes those (the workers' batches, the ingest, an operator's action).
-- Each connection keeps its own rows (slot = its backend pid): a counter row stays locked from
-- the change to the commit, and an ingest transaction runs several statements that also lock
-- orders, customers and tasks, so two connections sharing a counter row could each wait for the
-- other. With a row per live connection, no writer ever waits for another's counters. Rows of
-- connections that have closed are added into slot 0 from time to time
-- (`Store::fold_metric_counts`), so the tables stay a few rows per open connection. Readers add
-- the slots up.

-- Delivery attempts by destination and outcome, and, for synced attempts with a lag, the
-- histogram bucket the lag falls in.
CREATE TABLE attempt_counts (
    destination TEXT NOT NULL,
    outcome     TEXT NOT NULL,
    -- The upper bound, in milliseconds, of the lag's bucket (the bounds of
    -- `LAG_BUCKETS_SECONDS` in store/api_views.rs); 9223372036854775807 past the last bound;
    -- -1 for an attempt without a lag (any outcome but synced).
    lag_le_ms   BIGINT NOT NULL,
    -- The writing connection's backend pid; 0 for counts folded from closed connections.
    slot        INTEGER NOT NULL,
    attempts    BIGINT NOT NULL,
    -- The lags of those attempts, summed (0 without a lag).
    lag_sum_ms  BIGINT NOT NULL,
    PRIMARY KEY (destination, outcome, lag_le_ms, slot)
);

-- Webhook deliveries by outcome. The ingest records a delivery as applied and rewrites the
-- outcome in the same transaction when it ends otherwise, so a committed count never goes down.
CREATE TABLE webhook_counts (
    outcome  TEXT NOT NULL,
    slot     INTEGER NOT NULL,
    webhooks BIGINT NOT NULL,
    PRIMARY KEY (outcome, slot)
);

-- The bucket bound of an attempt (see `attempt_counts.lag_le_ms`); inlined where it is called.
CREATE FUNCTION syncdesk_lag_le_ms(outcome TEXT, lag_ms BIGINT) RETURNS BIGINT
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN outcome <> 'synced' OR lag_ms IS NULL THEN -1
        WHEN lag_ms <= 50 THEN 50
        WHEN lag_ms <= 100 THEN 100
        WHEN lag_ms <= 250 THEN 250
        WHEN lag_ms <= 500 THEN 500
        WHEN lag_ms <= 1000 THEN 1000
        WHEN lag_ms <= 2500 THEN 2500
        WHEN lag_ms <= 5000 THEN 5000
        WHEN lag_ms <= 10000 THEN 10000
        WHEN lag_ms <= 30000 THEN 30000
        WHEN lag_ms <= 60000 THEN 60000
        ELSE 9223372036854775807
    END
$$;

-- Attempts are only ever inserted. One write per count the statement touched, into this
-- connection's rows.
CREATE FUNCTION attempt_counts_follow() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO attempt_counts AS c (destination, outcome, lag_le_ms, slot, attempts, lag_sum_ms)
    SELECT a.destination, a.outcome, a.lag_le_ms, pg_backend_pid(), COUNT(*),
           COALESCE(SUM(a.lag_ms) FILTER (WHERE a.lag_le_ms >= 0), 0)
    FROM (SELECT destination, outcome, lag_ms, syncdesk_lag_le_ms(outcome, lag_ms) AS lag_le_ms
          FROM new_attempts) a
    GROUP BY a.destination, a.outcome, a.lag_le_ms
    ORDER BY a.destination, a.outcome, a.lag_le_ms
    ON CONFLICT (destination, outcome, lag_le_ms, slot) DO UPDATE SET
        attempts = c.attempts + excluded.attempts,
        lag_sum_ms = c.lag_sum_ms + excluded.lag_sum_ms;
    RETURN NULL;
END
$$;

CREATE TRIGGER attempt_counts_insert AFTER INSERT ON sync_attempts
REFERENCING NEW TABLE AS new_attempts
FOR EACH STATEMENT EXECUTE FUNCTION attempt_counts_follow();

-- Webhook deliveries are inserted, and their outcome rewritten by the ingest that inserted them.
CREATE FUNCTION webhook_counts_follow() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO webhook_counts AS c (outcome, slot, webhooks)
        SELECT outcome, pg_backend_pid(), COUNT(*) FROM new_events GROUP BY outcome ORDER BY outcome
        ON CONFLICT (outcome, slot) DO UPDATE SET webhooks = c.webhooks + excluded.webhooks;
    ELSE
        -- A rewrite moves a delivery from its old outcome to its new one. Rows whose outcome
        -- stayed cancel out (and a statement that changed none writes nothing).
        INSERT INTO webhook_counts AS c (outcome, slot, webhooks)
        SELECT outcome, pg_backend_pid(), SUM(delta) FROM (
            SELECT outcome, -1 AS delta FROM old_events
            UNION ALL
            SELECT outcome, 1 FROM new_events
        ) moved
        GROUP BY outcome HAVING SUM(delta) <> 0 ORDER BY outcome
        ON CONFLICT (outcome, slot) DO UPDATE SET webhooks = c.webhooks + excluded.webhooks;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER webhook_counts_insert AFTER INSERT ON webhook_events
REFERENCING NEW TABLE AS new_events
FOR EACH STATEMENT EXECUTE FUNCTION webhook_counts_follow();

-- (A trigger with transition tables cannot name columns: it fires for every update, and only the
-- ingest updates deliveries.)
CREATE TRIGGER webhook_counts_update AFTER UPDATE ON webhook_events
REFERENCING OLD TABLE AS old_events NEW TABLE AS new_events
FOR EACH STATEMENT EXECUTE FUNCTION webhook_counts_follow();

-- What is there already, counted once, in slot 0. Creating the triggers above locked out writes
-- to both tables until this migration commits, so nothing is missed or counted twice (writers
-- wait that long: under a second at 2M attempts and 1M webhooks).
INSERT INTO attempt_counts (destination, outcome, lag_le_ms, slot, attempts, lag_sum_ms)
SELECT destination, outcome, lag_le_ms, 0, COUNT(*), COALESCE(SUM(lag_ms) FILTER (WHERE lag_le_ms >= 0), 0)
FROM (SELECT destination, outcome, lag_ms, syncdesk_lag_le_ms(outcome, lag_ms) AS lag_le_ms FROM sync_attempts) a
GROUP BY destination, outcome, lag_le_ms;

INSERT INTO webhook_counts (outcome, slot, webhooks)
SELECT outcome, 0, COUNT(*) FROM webhook_events GROUP BY outcome;

-- `/metrics`' counters, kept as the rows they count are written (see PostgreSQL's migration
-- 0018): a scrape adds up these few rows instead of counting every attempt and every webhook
-- ever received. SQLite has only row triggers and one writer at a time, so each count has the
-- one slot 0 and each counted row changes it once.

CREATE TABLE attempt_counts (
    destination TEXT NOT NULL,
    outcome     TEXT NOT NULL,
    -- The upper bound, in milliseconds, of the lag's bucket (the bounds of
    -- `LAG_BUCKETS_SECONDS` in store/api_views.rs); 9223372036854775807 past the last bound;
    -- -1 for an attempt without a lag (any outcome but synced).
    lag_le_ms   INTEGER NOT NULL,
    slot        INTEGER NOT NULL,
    attempts    INTEGER NOT NULL,
    -- The lags of those attempts, summed (0 without a lag).
    lag_sum_ms  INTEGER NOT NULL,
    PRIMARY KEY (destination, outcome, lag_le_ms, slot)
) WITHOUT ROWID;

CREATE TABLE webhook_counts (
    outcome  TEXT NOT NULL,
    slot     INTEGER NOT NULL,
    webhooks INTEGER NOT NULL,
    PRIMARY KEY (outcome, slot)
) WITHOUT ROWID;

CREATE TRIGGER attempt_counts_insert AFTER INSERT ON sync_attempts
BEGIN
    INSERT INTO attempt_counts (destination, outcome, lag_le_ms, slot, attempts, lag_sum_ms)
    VALUES (NEW.destination, NEW.outcome,
        CASE
            WHEN NEW.outcome <> 'synced' OR NEW.lag_ms IS NULL THEN -1
            WHEN NEW.lag_ms <= 50 THEN 50
            WHEN NEW.lag_ms <= 100 THEN 100
            WHEN NEW.lag_ms <= 250 THEN 250
            WHEN NEW.lag_ms <= 500 THEN 500
            WHEN NEW.lag_ms <= 1000 THEN 1000
            WHEN NEW.lag_ms <= 2500 THEN 2500
            WHEN NEW.lag_ms <= 5000 THEN 5000
            WHEN NEW.lag_ms <= 10000 THEN 10000
            WHEN NEW.lag_ms <= 30000 THEN 30000
            WHEN NEW.lag_ms <= 60000 THEN 60000
            ELSE 9223372036854775807
        END,
        0, 1,
        CASE WHEN NEW.outcome = 'synced' AND NEW.lag_ms IS NOT NULL THEN NEW.lag_ms ELSE 0 END)
    ON CONFLICT (destination, outcome, lag_le_ms, slot) DO UPDATE SET
        attempts = attempts + 1,
        lag_sum_ms = lag_sum_ms + excluded.lag_sum_ms;
END;

CREATE TRIGGER webhook_counts_insert AFTER INSERT ON webhook_events
BEGIN
    INSERT INTO webhook_counts (outcome, slot, webhooks) VALUES (NEW.outcome, 0, 1)
    ON CONFLICT (outcome, slot) DO UPDATE SET webhooks = webhooks + 1;
END;

-- The ingest rewrites a delivery's outcome when it ends otherwise than applied.
CREATE TRIGGER webhook_counts_update AFTER UPDATE OF outcome ON webhook_events
WHEN NEW.outcome <> OLD.outcome
BEGIN
    UPDATE webhook_counts SET webhooks = webhooks - 1 WHERE outcome = OLD.outcome AND slot = 0;
    INSERT INTO webhook_counts (outcome, slot, webhooks) VALUES (NEW.outcome, 0, 1)
    ON CONFLICT (outcome, slot) DO UPDATE SET webhooks = webhooks + 1;
END;

-- What is there already, counted once.
INSERT INTO attempt_counts (destination, outcome, lag_le_ms, slot, attempts, lag_sum_ms)
SELECT destination, outcome, lag_le_ms, 0, COUNT(*),
       COALESCE(SUM(CASE WHEN lag_le_ms >= 0 THEN lag_ms END), 0)
FROM (
    SELECT destination, outcome, lag_ms,
        CASE
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
        END AS lag_le_ms
    FROM sync_attempts
) a
GROUP BY destination, outcome, lag_le_ms;

INSERT INTO webhook_counts (outcome, slot, webhooks)
SELECT outcome, 0, COUNT(*) FROM webhook_events GROUP BY outcome;

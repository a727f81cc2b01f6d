-- A version that arrived while an older one was being delivered is due once that attempt ends;
-- its lag (`syncdesk_sync_lag_seconds`, `sync_attempts.lag_ms`) now runs from when it arrived,
-- the order's last change, instead of from the end of the attempt, which left out the time it
-- waited for that attempt. Otherwise the function of migration 0021, unchanged.
CREATE OR REPLACE FUNCTION syncdesk_complete_synced(
    p_id BIGINT[], p_lease_token TEXT[], p_version BIGINT[], p_external_id TEXT[], p_attempt BIGINT[],
    p_started_at TIMESTAMPTZ[], p_duration_ms BIGINT[], p_outcome TEXT[], p_status INT[], p_message TEXT[],
    p_request_id TEXT[], p_lag_ms BIGINT[], p_open_exception BOOLEAN[], p_now TIMESTAMPTZ
) RETURNS TABLE (id BIGINT, lease_token TEXT)
LANGUAGE plpgsql
SET enable_hashjoin = off
SET enable_mergejoin = off
AS $$
#variable_conflict use_column
DECLARE
    done_ids BIGINT[];
    done_tokens TEXT[];
    to_resolve BIGINT[];
BEGIN
    -- Each task is locked in id order (two batches cannot deadlock each other); marked synced,
    -- or pending again when a newer version arrived meanwhile; its attempt recorded. Only the
    -- tasks still held under the lease token they were claimed with are written: a stale
    -- worker's completion may share a batch with the new lease holder's.
    WITH input AS (
        SELECT * FROM unnest(p_id, p_lease_token, p_version, p_external_id, p_attempt, p_started_at,
                             p_duration_ms, p_outcome, p_status, p_message, p_request_id, p_lag_ms, p_open_exception)
            AS i(id, lease_token, version, external_id, attempt, started_at, duration_ms, outcome, status,
                 message, request_id, lag_ms, open_exception)),
    -- The deliveries whose task is still held under their lease token, each row locked, in id
    -- order as written (materialized: never folded into the update and joined in another order).
    held AS MATERIALIZED (
        SELECT i.* FROM (SELECT * FROM input ORDER BY input.id) i
        CROSS JOIN LATERAL (SELECT t.id FROM sync_tasks t WHERE t.id = i.id AND t.lease_token = i.lease_token
                            LIMIT 1 FOR UPDATE) t),
    done AS (
        UPDATE sync_tasks t SET synced_version = h.version, external_id = h.external_id, lease_token = NULL,
            lease_expires_at = NULL, last_error = NULL, blocked_on = NULL,
            state = CASE WHEN t.target_version > h.version THEN 'pending' ELSE 'synced' END,
            attempt = 0, scheduled_at = p_now,
            armed_at = CASE WHEN t.target_version > h.version
                THEN COALESCE((SELECT o.updated_at FROM orders o WHERE o.store_order_id = t.store_order_id), p_now)
                ELSE t.armed_at END,
            updated_at = p_now
        FROM held h
        WHERE t.id = h.id AND t.lease_token = h.lease_token
        RETURNING t.id, t.store_order_id, t.destination, h.lease_token, h.version, h.attempt, h.started_at,
            h.duration_ms, h.outcome, h.status, h.message, h.request_id, h.lag_ms, h.open_exception),
    attempt AS (
        INSERT INTO sync_attempts (task_id, store_order_id, destination, version, attempt, started_at,
            duration_ms, outcome, status, message, request_id, lag_ms)
        SELECT d.id, d.store_order_id, d.destination, d.version, d.attempt, d.started_at, d.duration_ms,
            d.outcome, d.status, d.message, d.request_id, d.lag_ms
        FROM done d)
    SELECT array_agg(d.id), array_agg(d.lease_token), array_agg(d.id) FILTER (WHERE d.open_exception)
    INTO done_ids, done_tokens, to_resolve
    FROM done d;

    -- Only when a task had an open exception: an `UPDATE exceptions` that changes nothing would
    -- still fire the statement triggers that keep the per-cause summary.
    IF to_resolve IS NOT NULL THEN
        UPDATE exceptions x SET status = 'resolved', resolved_at = p_now, resolved_by = 'engine',
            resolution = 'Synced on a later attempt', updated_at = p_now
        WHERE x.task_id IN (SELECT unnest(to_resolve)) AND x.status IN ('open', 'snoozed');
    END IF;

    RETURN QUERY SELECT d.id, d.lease_token FROM unnest(done_ids, done_tokens) AS d(id, lease_token);
END
$$;

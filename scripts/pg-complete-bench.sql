-- Times `syncdesk_complete_synced` inside the server, without HTTP, SyncDesk or the commit: the
-- tasks of `orders` new orders inserted as the ingest's handoff leaves them (running under a
-- lease, an order's two at a time), then completed as synced in calls of `per` orders' tasks.
-- Answers the milliseconds spent in the completions. Used for docs/PERFORMANCE.md (migration
-- 0023). On a scratch database, new for each run (the table's pages are what is measured):
--
--   createdb -h 127.0.0.1 -U postgres complete_bench
--   for f in migrations/postgres/*.sql; do psql -q -h 127.0.0.1 -U postgres -v ON_ERROR_STOP=1 -f "$f" complete_bench; done
--   psql -q -h 127.0.0.1 -U postgres -f scripts/pg-complete-bench.sql complete_bench
--   psql -h 127.0.0.1 -U postgres -c "SELECT bench_complete(6000, 13)" complete_bench
--
-- To compare with the tables before a migration, apply the migrations only up to it on a
-- second database, and alternate runs on copies (`createdb -T`) of the two.
CREATE OR REPLACE FUNCTION bench_complete(p_orders INT, p_per INT) RETURNS FLOAT8 LANGUAGE plpgsql AS $$
DECLARE
  t0 TIMESTAMPTZ; total FLOAT8 := 0; ids BIGINT[]; n INT;
  base BIGINT := coalesce((SELECT max(store_order_id) FROM sync_tasks), 0);
BEGIN
  INSERT INTO sync_tasks (store_order_id, destination, state, target_version, attempt, claims, scheduled_at,
      armed_at, lease_token, lease_expires_at, updated_at)
  SELECT base + g, v.destination, 'running', 1, 1, 1, now(), now(), 'lease', now() + interval '1 minute', now()
  FROM generate_series(1, p_orders) AS g CROSS JOIN (VALUES ('crm'), ('erp')) AS v(destination)
  ORDER BY g, v.destination;
  FOR ids IN SELECT array_agg(id ORDER BY id) FROM sync_tasks WHERE store_order_id > base
             GROUP BY (store_order_id - base - 1) / p_per LOOP
    n := cardinality(ids);
    t0 := clock_timestamp();
    PERFORM syncdesk_complete_synced(ids, array_fill('lease'::TEXT, ARRAY[n]), array_fill(1::BIGINT, ARRAY[n]),
      array_fill('EXT-1'::TEXT, ARRAY[n]), array_fill(1::BIGINT, ARRAY[n]), array_fill(now(), ARRAY[n]),
      array_fill(12::BIGINT, ARRAY[n]), array_fill('synced'::TEXT, ARRAY[n]), array_fill(200, ARRAY[n]),
      array_fill('OK'::TEXT, ARRAY[n]), array_fill('req-1'::TEXT, ARRAY[n]), array_fill(40::BIGINT, ARRAY[n]),
      array_fill(FALSE, ARRAY[n]), now());
    total := total + extract(epoch FROM clock_timestamp() - t0) * 1000;
  END LOOP;
  RETURN total;
END $$;

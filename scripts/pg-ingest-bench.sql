-- Times `syncdesk_ingest_orders` inside the server, without HTTP, SyncDesk or the commit: calls
-- of `per` new orders (~2 KB documents and bodies, two SKUs, a customer each), `batches` of them
-- in one transaction. Answers the milliseconds spent in the calls and the orders applied.
-- Used for docs/PERFORMANCE.md (migration 0015). On a scratch database:
--
--   createdb -h 127.0.0.1 -U postgres ingest_bench
--   for f in migrations/postgres/*.sql; do psql -q -h 127.0.0.1 -U postgres -v ON_ERROR_STOP=1 -f "$f" ingest_bench; done
--   psql -q -h 127.0.0.1 -U postgres -f scripts/pg-ingest-bench.sql ingest_bench
--   psql -h 127.0.0.1 -U postgres -c "SELECT * FROM bench_ingest(200, 29, 1000000)" ingest_bench
--
-- (each run needs a new base order id, the third argument); to compare with the function
-- before a migration, apply the migrations only up to it on a second database.
CREATE OR REPLACE FUNCTION bench_ingest(p_batches INT, p_per INT, p_base BIGINT) RETURNS TABLE (ms FLOAT8, applied BIGINT) LANGUAGE plpgsql AS $$
DECLARE
  t0 TIMESTAMPTZ; total FLOAT8 := 0; n BIGINT := 0;
  w TEXT[]; e TEXT[]; tp TEXT[]; sd TEXT[]; av TEXT[]; tr TIMESTAMPTZ[]; nw TIMESTAMPTZ[]; body BYTEA[];
  oid BIGINT[]; upd TIMESTAMPTZ[]; nm TEXT[]; em TEXT[]; lc TEXT[]; cur TEXT[]; tot TEXT[]; dat JSON[]; sk JSONB[];
  cu BOOLEAN[]; scid BIGINT[]; cem TEXT[]; ph TEXT[]; fn TEXT[]; ln TEXT[];
  id BIGINT; doc TEXT; r RECORD;
BEGIN
  FOR b IN 1..p_batches LOOP
    w := '{}'; e := '{}'; tp := '{}'; sd := '{}'; av := '{}'; tr := '{}'; nw := '{}'; body := '{}'; oid := '{}'; upd := '{}';
    nm := '{}'; em := '{}'; lc := '{}'; cur := '{}'; tot := '{}'; dat := '{}'; sk := '{}'; cu := '{}'; scid := '{}'; cem := '{}'; ph := '{}'; fn := '{}'; ln := '{}';
    FOR j IN 1..p_per LOOP
      id := p_base + (b-1)*p_per + j;
      doc := '{"id":' || id || ',"name":"#' || id || '","lines":[' || repeat('{"sku":"SKU-' || (id % 50) || '","title":"Widget ' || md5(id::text) || '","qty":2,"price":"19.99","tax":"3.80"},', 12) || '{}]}';
      w := w || ('wh-' || id); e := e || ('ev-' || id); tp := tp || 'orders/create'::text; sd := sd || 'shop.example'::text; av := av || '2024-10'::text;
      tr := tr || now(); nw := nw || clock_timestamp(); body := body || convert_to(doc, 'UTF8'); oid := oid || id; upd := upd || now();
      nm := nm || ('#' || id); em := em || ('c' || (id % 700) || '@example.com'); lc := lc || 'paid'::text; cur := cur || 'EUR'::text; tot := tot || '99.90'::text;
      dat := dat || doc::json; sk := sk || jsonb_build_array('SKU-' || (id % 50), 'SKU-' || (id % 37 + 100));
      cu := cu || true; scid := scid || (id % 700); cem := cem || ('c' || (id % 700) || '@example.com'); ph := ph || '+4915112345678'::text; fn := fn || 'Ada'::text; ln := ln || 'Lovelace'::text;
    END LOOP;
    t0 := clock_timestamp();
    FOR r IN SELECT * FROM syncdesk_ingest_orders(w, e, tp, sd, av, tr, nw, body, oid, upd, nm, em, lc, cur, tot, dat, sk, cu, scid, cem, ph, fn, ln) LOOP
      IF r.outcome = 'applied' THEN n := n + 1; END IF;
    END LOOP;
    total := total + extract(epoch FROM clock_timestamp() - t0) * 1000;
  END LOOP;
  ms := total; applied := n; RETURN NEXT;
END $$;

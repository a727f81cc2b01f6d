-- The canonical order document is stored as JSON (its text, checked to be JSON) instead of
-- JSONB. SyncDesk writes the document whole and reads it whole, for each delivery; nothing
-- queries inside it. JSONB cost the server a parse into its binary form on every write and a
-- conversion back to text on every read, twice per order (the CRM's and the ERP's claim):
-- ~19 µs and ~13 µs a 2 KB order here, against ~5 µs for each with JSON (docs/PERFORMANCE.md).
-- Operators can still query it with -> and ->>, and cast to JSONB where they need its
-- operators.
--
-- Changing the type rewrites the table under an exclusive lock: on a large orders table, run
-- this migration in a quiet hour.
ALTER TABLE orders ALTER COLUMN data TYPE JSON USING data::json;
DO $$
BEGIN
    ALTER TABLE orders ALTER COLUMN data SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported THEN
    RAISE NOTICE 'this server has no lz4: order documents stay compressed with pglz';
END
$$;

-- The ingest of migration 0012 takes the document as JSON now. A function's argument types
-- cannot be altered, so `syncdesk_ingest_orders` is dropped and created again, and it now runs
-- each delivery's steps in its own loop: `syncdesk_ingest_order` and `syncdesk_arm_tasks`,
-- called for each delivery, cost a function call and a query each, about a tenth of the
-- server's time per order. The steps, their order and their locks are those of 0012.
-- (`syncdesk_arm_tasks` stays: the Rust path calls it for refunds.)
DROP FUNCTION syncdesk_ingest_orders(TEXT[], TEXT[], TEXT[], TEXT[], TEXT[], TIMESTAMPTZ[], TIMESTAMPTZ[],
    BYTEA[], BIGINT[], TIMESTAMPTZ[], TEXT[], TEXT[], TEXT[], TEXT[], TEXT[], JSONB[], JSONB[], BOOLEAN[],
    BIGINT[], TEXT[], TEXT[], TEXT[], TEXT[]);
DROP FUNCTION syncdesk_ingest_order(TEXT, TEXT, TEXT, TEXT, TEXT, TIMESTAMPTZ, TIMESTAMPTZ, BYTEA, BIGINT,
    TIMESTAMPTZ, TEXT, TEXT, TEXT, TEXT, TEXT, JSONB, TEXT[], BOOLEAN, BIGINT, TEXT, TEXT, TEXT, TEXT);

-- Many orders' deliveries in one call and one transaction, in the order given (a later delivery
-- sees an earlier one's rows: two deliveries of one webhook, or of one order state, still make
-- one applied and one duplicate). Row `ordinal` answers the `ordinal`-th delivery: 'applied'
-- with the order's version, 'duplicate' or 'superseded'. For each delivery: the event (first
-- delivery of a webhook id / event id wins, by the partial unique indexes), the customer, the
-- order versioned by the store's updated_at (the row locked, so concurrent versions of one
-- order apply one after the other), the tasks and SKUs. The SKUs of each come as a JSON array.
CREATE FUNCTION syncdesk_ingest_orders(
    p_webhook_id TEXT[], p_event_id TEXT[], p_topic TEXT[], p_shop_domain TEXT[], p_api_version TEXT[],
    p_triggered_at TIMESTAMPTZ[], p_now TIMESTAMPTZ[], p_body BYTEA[],
    p_store_order_id BIGINT[], p_updated_at TIMESTAMPTZ[], p_name TEXT[], p_email TEXT[], p_lifecycle TEXT[],
    p_currency TEXT[], p_total TEXT[], p_data JSON[], p_skus JSONB[],
    p_customer BOOLEAN[], p_store_customer_id BIGINT[], p_customer_email TEXT[], p_phone TEXT[],
    p_first_name TEXT[], p_last_name TEXT[]
) RETURNS TABLE (ordinal INT, outcome TEXT, version BIGINT) LANGUAGE plpgsql AS $$
DECLARE
    event_row BIGINT;
    customer BIGINT;
    stored_at TIMESTAMPTZ;
    event_note TEXT;
    order_id BIGINT;
    arrived TIMESTAMPTZ;
BEGIN
    FOR i IN 1 .. coalesce(cardinality(p_webhook_id), 0) LOOP
        ordinal := i;
        outcome := NULL;
        version := NULL;
        customer := NULL;
        order_id := p_store_order_id[i];
        arrived := p_now[i];

        -- Recorded as applied, the usual end, so that only another end rewrites the row.
        INSERT INTO webhook_events (webhook_id, event_id, topic, shop_domain, api_version, triggered_at,
            received_at, body, duplicate, outcome, note, store_order_id, order_updated_at)
        VALUES (p_webhook_id[i], p_event_id[i], p_topic[i], p_shop_domain[i], p_api_version[i], p_triggered_at[i],
            arrived, p_body[i], FALSE, 'applied', NULL, order_id, p_updated_at[i])
        ON CONFLICT DO NOTHING RETURNING id INTO event_row;
        IF event_row IS NULL THEN
            -- Kept too, for the duplicate rate and the order's timeline.
            INSERT INTO webhook_events (webhook_id, event_id, topic, shop_domain, api_version, triggered_at,
                received_at, body, duplicate, outcome, note, store_order_id, order_updated_at)
            VALUES (p_webhook_id[i], p_event_id[i], p_topic[i], p_shop_domain[i], p_api_version[i], p_triggered_at[i],
                arrived, p_body[i], TRUE, 'duplicate', 'webhook or event id seen before', order_id, p_updated_at[i]);
            outcome := 'duplicate';
            RETURN NEXT;
            CONTINUE;
        END IF;

        IF p_customer[i] THEN
            customer := syncdesk_link_customer(p_store_customer_id[i], p_customer_email[i], p_phone[i],
                p_first_name[i], p_last_name[i], arrived);
        END IF;

        INSERT INTO orders AS o (store_order_id, name, store_updated_at, version, customer_id, email, lifecycle,
            currency, total, data, first_seen_at, updated_at)
        VALUES (order_id, p_name[i], p_updated_at[i], 1, customer, p_email[i], p_lifecycle[i], p_currency[i],
            p_total[i], p_data[i], arrived, arrived)
        ON CONFLICT (store_order_id) DO NOTHING RETURNING o.version INTO version;
        IF version IS NULL THEN
            SELECT o.store_updated_at, o.version INTO stored_at, version FROM orders o
            WHERE o.store_order_id = order_id FOR UPDATE;
            IF p_updated_at[i] > stored_at THEN
                version := version + 1;
                UPDATE orders o SET name = p_name[i], store_updated_at = p_updated_at[i],
                    version = syncdesk_ingest_orders.version, customer_id = COALESCE(customer, o.customer_id),
                    email = p_email[i], lifecycle = p_lifecycle[i], currency = p_currency[i], total = p_total[i],
                    data = p_data[i], updated_at = arrived
                WHERE o.store_order_id = order_id;
            ELSE
                version := NULL;
                IF p_updated_at[i] = stored_at THEN
                    outcome := 'duplicate';
                    event_note := 'this order state was received before';
                ELSE
                    outcome := 'superseded';
                    -- As chrono's `to_rfc3339` writes it, like the notes SQLite's path writes.
                    event_note := 'older than the state applied ('
                        || to_char(stored_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS')
                        || CASE WHEN extract(microseconds FROM stored_at)::BIGINT % 1000000 = 0 THEN ''
                                WHEN extract(microseconds FROM stored_at)::BIGINT % 1000 = 0
                                    THEN to_char(stored_at AT TIME ZONE 'UTC', '.MS')
                                ELSE to_char(stored_at AT TIME ZONE 'UTC', '.US') END
                        || '+00:00)';
                END IF;
                UPDATE webhook_events e SET outcome = syncdesk_ingest_orders.outcome, note = event_note
                WHERE e.id = event_row;
                RETURN NEXT;
                CONTINUE;
            END IF;
        END IF;

        -- The order's task for every destination armed (or re-aimed) at this version, and its
        -- SKUs kept: `syncdesk_arm_tasks`' statements. A new order has neither tasks nor SKUs
        -- yet, so they are plainly inserted (an insert that may conflict costs the server a
        -- probe of the unique index and a speculative insertion for each row).
        IF version = 1 THEN
            INSERT INTO sync_tasks (store_order_id, destination, state, target_version, attempt, scheduled_at,
                armed_at, updated_at)
            VALUES (order_id, 'crm', 'pending', 1, 0, arrived, arrived, arrived),
                   (order_id, 'erp', 'pending', 1, 0, arrived, arrived, arrived);
            -- The SKUs come without repeats (`order_skus` in store/ingest/mod.rs).
            INSERT INTO order_skus (store_order_id, sku)
            SELECT order_id, jsonb_array_elements_text(p_skus[i]);
        ELSE
            INSERT INTO sync_tasks AS t (store_order_id, destination, state, target_version, attempt, scheduled_at,
                armed_at, updated_at)
            VALUES (order_id, 'crm', 'pending', syncdesk_ingest_orders.version, 0, arrived, arrived, arrived),
                   (order_id, 'erp', 'pending', syncdesk_ingest_orders.version, 0, arrived, arrived, arrived)
            ON CONFLICT (store_order_id, destination) DO UPDATE SET
                target_version = excluded.target_version,
                state = CASE WHEN t.state IN ('synced', 'dead', 'blocked') THEN 'pending' ELSE t.state END,
                attempt = CASE WHEN t.state IN ('synced', 'dead', 'blocked') THEN 0 ELSE t.attempt END,
                scheduled_at = CASE WHEN t.state IN ('synced', 'dead', 'blocked') THEN excluded.scheduled_at ELSE t.scheduled_at END,
                armed_at = CASE WHEN t.state = 'synced' THEN excluded.armed_at ELSE t.armed_at END,
                blocked_on = NULL,
                updated_at = excluded.updated_at;
            INSERT INTO order_skus (store_order_id, sku)
            SELECT order_id, jsonb_array_elements_text(p_skus[i]) ON CONFLICT DO NOTHING;
        END IF;
        outcome := 'applied';
        RETURN NEXT;
    END LOOP;
END
$$;

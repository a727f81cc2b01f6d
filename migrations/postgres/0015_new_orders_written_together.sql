-- The ingest of migration 0013, with a shortcut for the usual delivery: a new order's first
-- state. Such a delivery runs no step that another delivery could change (nothing stored or in
-- the same call shares its webhook id, event id or order), so its end is known before it runs:
-- event recorded as applied, order at version 1, tasks and SKUs plainly inserted. Those rows are
-- now written for all such deliveries of a call with one statement per table, where the loop ran
-- four statements per delivery. Measured in the server (scripts/pg-ingest-bench.sql), per new
-- order: ~110 → ~85–95 µs in calls of 10 to 29 deliveries (the unpaced benchmark's calls carry
-- ~28); calls of fewer than 10 take the loop as before. Every other delivery takes the steps of
-- 0013 unchanged, in the same loop and order. The arguments are 0013's: the function is replaced
-- in place.

CREATE OR REPLACE FUNCTION syncdesk_ingest_orders(
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
    deliveries INT := coalesce(cardinality(p_webhook_id), 0);
    fresh BOOLEAN[];
    fresh_customer BIGINT[] := array_fill(NULL::BIGINT, ARRAY[deliveries]);
BEGIN
    -- A new order's first state whose webhook id, event id and order no other delivery of this
    -- call and nothing stored shares ("fresh") ends the way the steps below would end it: its
    -- event, its order at version 1, its tasks and SKUs plainly inserted. Those are written
    -- together after the loop, a statement for all of them per table instead of four per
    -- delivery. Only their customers are linked in the loop, in delivery order, as customers are
    -- what deliveries of different orders share. Another process writing one of those ids
    -- between this check and the inserts makes an insert fail on its unique index: the call
    -- fails as a whole, and SyncDesk writes each delivery again alone (store/ingest/postgres.rs).
    -- Calls of fewer than ten deliveries (a quiet shop sends one or two a call) take the loop
    -- only: below ten, the check and the planning of the statements over the arrays cost more
    -- than writing the rows together saves (measured with scripts/pg-ingest-bench.sql).
    IF deliveries >= 10 THEN
        SELECT array_agg(d.is_fresh ORDER BY d.nth) INTO fresh FROM (
            SELECT u.nth,
                count(*) OVER (PARTITION BY u.webhook_id) = 1
                AND (u.event_id IS NULL OR count(*) OVER (PARTITION BY u.event_id) = 1)
                AND count(*) OVER (PARTITION BY u.store_order_id) = 1
                AND by_webhook.seen IS NULL AND by_event.seen IS NULL AND by_order.seen IS NULL AS is_fresh
            FROM unnest(p_webhook_id, p_event_id, p_store_order_id) WITH ORDINALITY AS u(webhook_id, event_id, store_order_id, nth)
            -- One index probe per delivery and key, whatever the tables' size when the plan was
            -- made: as NOT EXISTS, a plan made while the tables were small (a new database) read
            -- them whole into a hash table for every call, ever longer as they grew.
            LEFT JOIN LATERAL (SELECT TRUE AS seen FROM webhook_events e
                               WHERE e.webhook_id = u.webhook_id AND NOT e.duplicate LIMIT 1) by_webhook ON TRUE
            LEFT JOIN LATERAL (SELECT TRUE AS seen FROM webhook_events e
                               WHERE e.event_id = u.event_id AND NOT e.duplicate LIMIT 1) by_event ON TRUE
            LEFT JOIN LATERAL (SELECT TRUE AS seen FROM orders o
                               WHERE o.store_order_id = u.store_order_id LIMIT 1) by_order ON TRUE
        ) d;
    END IF;

    FOR i IN 1 .. deliveries LOOP
        IF fresh[i] THEN
            IF p_customer[i] THEN
                fresh_customer[i] := syncdesk_link_customer(p_store_customer_id[i], p_customer_email[i], p_phone[i],
                    p_first_name[i], p_last_name[i], p_now[i]);
            END IF;
            CONTINUE;
        END IF;
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

    -- The fresh deliveries, together, in delivery order.
    IF fresh IS NULL OR NOT (TRUE = ANY (fresh)) THEN
        RETURN;
    END IF;
    INSERT INTO webhook_events (webhook_id, event_id, topic, shop_domain, api_version, triggered_at,
        received_at, body, duplicate, outcome, note, store_order_id, order_updated_at)
    SELECT u.webhook_id, u.event_id, u.topic, u.shop_domain, u.api_version, u.triggered_at, u.received_at, u.body,
        FALSE, 'applied', NULL, u.store_order_id, u.updated_at
    FROM unnest(p_webhook_id, p_event_id, p_topic, p_shop_domain, p_api_version, p_triggered_at, p_now, p_body,
            p_store_order_id, p_updated_at, fresh)
        WITH ORDINALITY AS u(webhook_id, event_id, topic, shop_domain, api_version, triggered_at, received_at, body,
            store_order_id, updated_at, is_fresh, nth)
    WHERE u.is_fresh ORDER BY u.nth;
    INSERT INTO orders (store_order_id, name, store_updated_at, version, customer_id, email, lifecycle,
        currency, total, data, first_seen_at, updated_at)
    SELECT u.store_order_id, u.name, u.updated_at, 1, u.customer_id, u.email, u.lifecycle, u.currency, u.total,
        u.data, u.received_at, u.received_at
    FROM unnest(p_store_order_id, p_name, p_updated_at, fresh_customer, p_email, p_lifecycle, p_currency, p_total,
            p_data, p_now, fresh)
        WITH ORDINALITY AS u(store_order_id, name, updated_at, customer_id, email, lifecycle, currency, total,
            data, received_at, is_fresh, nth)
    WHERE u.is_fresh ORDER BY u.nth;
    INSERT INTO sync_tasks (store_order_id, destination, state, target_version, attempt, scheduled_at,
        armed_at, updated_at)
    SELECT u.store_order_id, t.destination, 'pending', 1, 0, u.received_at, u.received_at, u.received_at
    FROM unnest(p_store_order_id, p_now, fresh) WITH ORDINALITY AS u(store_order_id, received_at, is_fresh, nth)
        CROSS JOIN (VALUES ('crm'), ('erp')) AS t(destination)
    WHERE u.is_fresh ORDER BY u.nth, t.destination;
    INSERT INTO order_skus (store_order_id, sku)
    SELECT u.store_order_id, jsonb_array_elements_text(u.skus)
    FROM unnest(p_store_order_id, p_skus, fresh) AS u(store_order_id, skus, is_fresh)
    WHERE u.is_fresh;
    RETURN QUERY SELECT u.nth::INT, 'applied'::TEXT, 1::BIGINT
        FROM unnest(fresh) WITH ORDINALITY AS u(is_fresh, nth) WHERE u.is_fresh;
END
$$;

-- Customers' details versioned by the store's time (docs/ARCHITECTURE.md, "What each topic
-- does"). A customer's phone and names were written by whatever delivery came last: a late
-- customers/update, or an order paid or shipped later that still carried its checkout's
-- details, put back what the store had since changed. `details_as_of` keeps how recent the held
-- details are: the `updated_at` of the customer record they came from, or, for an order that
-- gives none (a guest checkout), when it was placed. Older details are not written. NULL for
-- records kept before: the first details to arrive set it.
--
-- `syncdesk_link_customer` takes that time as a new last argument, and `syncdesk_ingest_orders`
-- (migration 0019, with 0021's settings) an array of them, each with a default, so a process
-- still on the previous release keeps calling both during a rolling upgrade (its details are
-- written as before, without moving `details_as_of`). Both functions are otherwise unchanged.

ALTER TABLE customers ADD COLUMN details_as_of TIMESTAMPTZ;

DROP FUNCTION syncdesk_ingest_orders(TEXT[], TEXT[], TEXT[], TEXT[], TEXT[], TIMESTAMPTZ[], TIMESTAMPTZ[], BYTEA[],
    BIGINT[], TIMESTAMPTZ[], TEXT[], TEXT[], TEXT[], TEXT[], TEXT[], JSON[], JSONB[], BOOLEAN[], BIGINT[], TEXT[],
    TEXT[], TEXT[], TEXT[], TEXT, TIMESTAMPTZ, INT);
DROP FUNCTION syncdesk_link_customer(BIGINT, TEXT, TEXT, TEXT, TEXT, TIMESTAMPTZ);

-- Finds or creates the customer an order or customer record refers to, deterministically: by the
-- store's customer id, else by normalised email. NULL when it carries neither key.
CREATE FUNCTION syncdesk_link_customer(
    p_store_customer_id BIGINT, p_email TEXT, p_phone TEXT, p_first_name TEXT, p_last_name TEXT,
    p_now TIMESTAMPTZ, p_as_of TIMESTAMPTZ DEFAULT NULL
) RETURNS BIGINT LANGUAGE plpgsql AS $$
DECLARE
    by_store customers%ROWTYPE;
    by_email customers%ROWTYPE;
    matched customers%ROWTYPE;
    email_taken BOOLEAN := FALSE;
    new_email TEXT;
    linked BIGINT;
BEGIN
    IF p_store_customer_id IS NULL AND p_email IS NULL THEN
        RETURN NULL;
    END IF;
    IF p_store_customer_id IS NOT NULL THEN
        SELECT * INTO by_store FROM customers WHERE store_customer_id = p_store_customer_id;
    END IF;
    IF p_email IS NOT NULL THEN
        SELECT * INTO by_email FROM customers WHERE email = p_email;
    END IF;

    IF by_store.id IS NOT NULL THEN
        matched := by_store;
    ELSIF by_email.id IS NOT NULL THEN
        IF by_email.store_customer_id IS NULL AND p_store_customer_id IS NOT NULL THEN
            -- A guest checkout by the same email, now with a store account: link them.
            UPDATE customers SET store_customer_id = p_store_customer_id WHERE id = by_email.id;
            matched := by_email;
        ELSIF p_store_customer_id IS NULL THEN
            matched := by_email;
        ELSE
            -- The email belongs to another store account's record.
            email_taken := TRUE;
        END IF;
    END IF;

    IF matched.id IS NULL THEN
        -- Two store accounts sharing one email keep separate records (the second without the
        -- email). Two deliveries for one new customer can race here: the loser's insert does
        -- nothing (it waits for the winner's commit), and it goes on with the winner's row,
        -- whose details may be older than its own.
        new_email := CASE WHEN email_taken THEN NULL ELSE p_email END;
        INSERT INTO customers (store_customer_id, email, phone, first_name, last_name, details_as_of, created_at,
            updated_at)
        VALUES (p_store_customer_id, new_email, p_phone, p_first_name, p_last_name, p_as_of, p_now, p_now)
        ON CONFLICT DO NOTHING RETURNING id INTO linked;
        IF linked IS NOT NULL THEN
            RETURN linked;
        END IF;
        SELECT * INTO matched FROM customers
        WHERE store_customer_id = p_store_customer_id OR (store_customer_id IS NULL AND email = new_email)
        ORDER BY id LIMIT 1;
        IF matched.id IS NULL THEN
            RETURN NULL;
        END IF;
    END IF;

    -- The details are written when they are at least as recent as those held and bring a detail
    -- the record lacks or holds differently, or are more recent. Judged first on the row as
    -- read, so that a delivery with nothing to write writes nothing (no row lock held to the
    -- commit, no log written); then again by the update, on the row as it stands once locked,
    -- should another transaction have written it since: the details held only move forward in
    -- the store's time.
    IF (p_as_of IS NULL OR matched.details_as_of IS NULL OR p_as_of >= matched.details_as_of)
        AND ((p_phone IS NOT NULL AND p_phone IS DISTINCT FROM matched.phone)
            OR (p_first_name IS NOT NULL AND p_first_name IS DISTINCT FROM matched.first_name)
            OR (p_last_name IS NOT NULL AND p_last_name IS DISTINCT FROM matched.last_name)
            OR p_as_of > matched.details_as_of
            OR (p_as_of IS NOT NULL AND matched.details_as_of IS NULL)) THEN
        UPDATE customers SET phone = COALESCE(p_phone, phone), first_name = COALESCE(p_first_name, first_name),
            last_name = COALESCE(p_last_name, last_name), details_as_of = COALESCE(p_as_of, details_as_of),
            updated_at = CASE WHEN (p_phone IS NOT NULL AND p_phone IS DISTINCT FROM phone)
                    OR (p_first_name IS NOT NULL AND p_first_name IS DISTINCT FROM first_name)
                    OR (p_last_name IS NOT NULL AND p_last_name IS DISTINCT FROM last_name) THEN p_now
                ELSE updated_at END
        WHERE id = matched.id AND (p_as_of IS NULL OR details_as_of IS NULL OR p_as_of >= details_as_of);
    END IF;
    RETURN matched.id;
END
$$;

-- The ingest of migration 0019, passing each delivery's `customer_details_as_of`.
CREATE FUNCTION syncdesk_ingest_orders(
    p_webhook_id TEXT[], p_event_id TEXT[], p_topic TEXT[], p_shop_domain TEXT[], p_api_version TEXT[],
    p_triggered_at TIMESTAMPTZ[], p_now TIMESTAMPTZ[], p_body BYTEA[],
    p_store_order_id BIGINT[], p_updated_at TIMESTAMPTZ[], p_name TEXT[], p_email TEXT[], p_lifecycle TEXT[],
    p_currency TEXT[], p_total TEXT[], p_data JSON[], p_skus JSONB[],
    p_customer BOOLEAN[], p_store_customer_id BIGINT[], p_customer_email TEXT[], p_phone TEXT[],
    p_first_name TEXT[], p_last_name TEXT[],
    p_lease_token TEXT DEFAULT NULL, p_lease_expires_at TIMESTAMPTZ DEFAULT NULL, p_lease_room INT DEFAULT 0,
    p_customer_as_of TIMESTAMPTZ[] DEFAULT NULL
) RETURNS TABLE (ordinal INT, outcome TEXT, version BIGINT, crm_task BIGINT, erp_task BIGINT, item_codes JSONB)
LANGUAGE plpgsql
-- As migration 0021 set it: each SKU's item code is one probe of the mappings' primary key.
SET enable_hashjoin = off
SET enable_mergejoin = off
AS $$
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
    -- New orders whose tasks the loop leased, and whether it leases this one's.
    leased INT := 0;
    lease_this BOOLEAN;
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
                    p_first_name[i], p_last_name[i], p_now[i], p_customer_as_of[i]);
            END IF;
            CONTINUE;
        END IF;
        ordinal := i;
        outcome := NULL;
        version := NULL;
        crm_task := NULL;
        erp_task := NULL;
        item_codes := NULL;
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
                p_first_name[i], p_last_name[i], arrived, p_customer_as_of[i]);
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
            -- Leased while there is room, as the fresh deliveries' below.
            lease_this := p_lease_token IS NOT NULL AND leased < coalesce(p_lease_room, 0);
            WITH inserted AS (
                INSERT INTO sync_tasks (store_order_id, destination, state, target_version, attempt, claims,
                    scheduled_at, armed_at, lease_token, lease_expires_at, updated_at)
                SELECT order_id, d.destination, CASE WHEN d.leased THEN 'running' ELSE 'pending' END, 1,
                    d.leased::INT, d.leased::INT, arrived, arrived, CASE WHEN d.leased THEN p_lease_token END,
                    CASE WHEN d.leased THEN p_lease_expires_at END, arrived
                FROM (SELECT v.destination, lease_this AND NOT EXISTS (
                          SELECT 1 FROM destinations p WHERE p.name = v.destination AND p.paused) AS leased
                      FROM (VALUES ('crm'), ('erp')) AS v(destination)) d
                ORDER BY d.destination
                RETURNING sync_tasks.id, sync_tasks.destination, sync_tasks.state = 'running' AS leased)
            SELECT max(t.id) FILTER (WHERE t.destination = 'crm' AND t.leased),
                   max(t.id) FILTER (WHERE t.destination = 'erp' AND t.leased)
            INTO crm_task, erp_task FROM inserted t;
            IF lease_this THEN
                leased := leased + 1;
            END IF;
            IF erp_task IS NOT NULL THEN
                SELECT jsonb_object_agg(m.sku, m.item_code) INTO item_codes
                FROM jsonb_array_elements_text(p_skus[i]) AS s(sku) JOIN sku_mappings m ON m.sku = s.sku;
            END IF;
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
    INSERT INTO order_skus (store_order_id, sku)
    SELECT u.store_order_id, jsonb_array_elements_text(u.skus)
    FROM unnest(p_store_order_id, p_skus, fresh) AS u(store_order_id, skus, is_fresh)
    WHERE u.is_fresh;
    -- The first fresh deliveries, as many as there is room left for (none without a token),
    -- have their tasks leased, but for a paused destination, as the claim skips those.
    RETURN QUERY
    WITH fresh_orders AS (
        SELECT u.store_order_id, u.received_at, u.skus, u.nth,
            p_lease_token IS NOT NULL AND row_number() OVER (ORDER BY u.nth) <= coalesce(p_lease_room, 0) - leased AS lease
        FROM unnest(p_store_order_id, p_now, p_skus, fresh) WITH ORDINALITY
            AS u(store_order_id, received_at, skus, is_fresh, nth)
        WHERE u.is_fresh),
    tasks AS (
        INSERT INTO sync_tasks (store_order_id, destination, state, target_version, attempt, claims, scheduled_at,
            armed_at, lease_token, lease_expires_at, updated_at)
        SELECT f.store_order_id, t.destination, CASE WHEN t.leased THEN 'running' ELSE 'pending' END, 1,
            t.leased::INT, t.leased::INT, f.received_at, f.received_at,
            CASE WHEN t.leased THEN p_lease_token END, CASE WHEN t.leased THEN p_lease_expires_at END,
            f.received_at
        FROM fresh_orders f
            CROSS JOIN LATERAL (SELECT d.destination, f.lease AND NOT EXISTS (
                    SELECT 1 FROM destinations p WHERE p.name = d.destination AND p.paused) AS leased
                FROM (VALUES ('crm'), ('erp')) AS d(destination)) t
        ORDER BY f.nth, t.destination
        RETURNING sync_tasks.id, sync_tasks.store_order_id, sync_tasks.destination, sync_tasks.state = 'running' AS leased)
    SELECT f.nth::INT, 'applied'::TEXT, 1::BIGINT, crm.id, erp.id,
        CASE WHEN erp.id IS NOT NULL THEN
            (SELECT jsonb_object_agg(m.sku, m.item_code) FROM jsonb_array_elements_text(f.skus) AS s(sku)
                JOIN sku_mappings m ON m.sku = s.sku) END
    FROM fresh_orders f
        LEFT JOIN tasks crm ON crm.store_order_id = f.store_order_id AND crm.destination = 'crm' AND crm.leased
        LEFT JOIN tasks erp ON erp.store_order_id = f.store_order_id AND erp.destination = 'erp' AND erp.leased
    ORDER BY f.nth;
END
$$;

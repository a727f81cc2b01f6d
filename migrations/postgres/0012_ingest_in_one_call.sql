-- An order's webhook applied in one round trip. On PostgreSQL the ingest transaction took ~7
-- round trips (BEGIN, the event, the customer read, a customer insert, the order, the tasks and
-- SKUs, COMMIT), each a wake-up of the server and of SyncDesk on two shared cores. These
-- functions run the same steps, in the same order and with the same locks, inside the server:
-- `syncdesk_ingest_order` is called as one statement, in a transaction of its own.
--
-- They mirror `src/store/ingest.rs` (`apply_delivery`, `link_customer!`, `arm_tasks!`), which
-- SQLite runs and PostgreSQL still runs for refunds and customer records; the ingest tests run
-- every rule on both backends, so the two cannot drift apart unnoticed.

-- Finds or creates the customer an order or customer record refers to, deterministically: by the
-- store's customer id, else by normalised email. NULL when it carries neither key.
CREATE FUNCTION syncdesk_link_customer(
    p_store_customer_id BIGINT, p_email TEXT, p_phone TEXT, p_first_name TEXT, p_last_name TEXT,
    p_now TIMESTAMPTZ
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

    IF matched.id IS NOT NULL THEN
        -- Written only when the order brings a detail the record lacks or holds differently.
        IF (p_phone IS NOT NULL AND p_phone IS DISTINCT FROM matched.phone)
            OR (p_first_name IS NOT NULL AND p_first_name IS DISTINCT FROM matched.first_name)
            OR (p_last_name IS NOT NULL AND p_last_name IS DISTINCT FROM matched.last_name) THEN
            UPDATE customers SET phone = COALESCE(p_phone, phone), first_name = COALESCE(p_first_name, first_name),
                last_name = COALESCE(p_last_name, last_name), updated_at = p_now
            WHERE id = matched.id;
        END IF;
        RETURN matched.id;
    END IF;

    -- Two store accounts sharing one email keep separate records (the second without the
    -- email). Two deliveries for one new customer can race here: the loser's insert does nothing
    -- (it waits for the winner's commit) and reads the winner's row.
    new_email := CASE WHEN email_taken THEN NULL ELSE p_email END;
    INSERT INTO customers (store_customer_id, email, phone, first_name, last_name, created_at, updated_at)
    VALUES (p_store_customer_id, new_email, p_phone, p_first_name, p_last_name, p_now, p_now)
    ON CONFLICT DO NOTHING RETURNING id INTO linked;
    IF linked IS NULL THEN
        SELECT id INTO linked FROM customers
        WHERE store_customer_id = p_store_customer_id OR (store_customer_id IS NULL AND email = new_email)
        ORDER BY id LIMIT 1;
    END IF;
    RETURN linked;
END
$$;

-- Arms (or re-aims) the order's task for every destination at `p_version` and keeps its SKUs;
-- the rules are `arm_tasks!`'s.
CREATE FUNCTION syncdesk_arm_tasks(
    p_store_order_id BIGINT, p_version BIGINT, p_now TIMESTAMPTZ, p_skus TEXT[]
) RETURNS VOID LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO sync_tasks (store_order_id, destination, state, target_version, attempt, scheduled_at, armed_at, updated_at)
    VALUES (p_store_order_id, 'crm', 'pending', p_version, 0, p_now, p_now, p_now),
           (p_store_order_id, 'erp', 'pending', p_version, 0, p_now, p_now, p_now)
    ON CONFLICT (store_order_id, destination) DO UPDATE SET
        target_version = excluded.target_version,
        state = CASE WHEN sync_tasks.state IN ('synced', 'dead', 'blocked') THEN 'pending' ELSE sync_tasks.state END,
        attempt = CASE WHEN sync_tasks.state IN ('synced', 'dead', 'blocked') THEN 0 ELSE sync_tasks.attempt END,
        scheduled_at = CASE WHEN sync_tasks.state IN ('synced', 'dead', 'blocked') THEN excluded.scheduled_at ELSE sync_tasks.scheduled_at END,
        armed_at = CASE WHEN sync_tasks.state = 'synced' THEN excluded.armed_at ELSE sync_tasks.armed_at END,
        blocked_on = NULL,
        updated_at = excluded.updated_at;
    IF cardinality(p_skus) > 0 THEN
        INSERT INTO order_skus (store_order_id, sku) SELECT p_store_order_id, unnest(p_skus) ON CONFLICT DO NOTHING;
    END IF;
END
$$;

-- Records a delivery of an order (orders/* topics) and applies it: the event (first delivery of
-- a webhook id / event id wins, by the partial unique indexes), the customer, the order
-- versioned by the store's updated_at (the row locked, so concurrent versions of one order
-- apply one after the other), the tasks and SKUs. Returns what became of it — 'applied' with
-- the order's version, 'duplicate' or 'superseded' — and the event's note.
CREATE FUNCTION syncdesk_ingest_order(
    p_webhook_id TEXT, p_event_id TEXT, p_topic TEXT, p_shop_domain TEXT, p_api_version TEXT,
    p_triggered_at TIMESTAMPTZ, p_now TIMESTAMPTZ, p_body BYTEA,
    p_store_order_id BIGINT, p_updated_at TIMESTAMPTZ, p_name TEXT, p_email TEXT, p_lifecycle TEXT,
    p_currency TEXT, p_total TEXT, p_data JSONB, p_skus TEXT[],
    p_customer BOOLEAN, p_store_customer_id BIGINT, p_customer_email TEXT, p_phone TEXT,
    p_first_name TEXT, p_last_name TEXT,
    OUT outcome TEXT, OUT version BIGINT, OUT note TEXT
) LANGUAGE plpgsql AS $$
DECLARE
    event_row BIGINT;
    customer BIGINT;
    stored_at TIMESTAMPTZ;
BEGIN
    -- Recorded as applied, the usual end, so that only another end rewrites the row.
    INSERT INTO webhook_events (webhook_id, event_id, topic, shop_domain, api_version, triggered_at,
        received_at, body, duplicate, outcome, note, store_order_id, order_updated_at)
    VALUES (p_webhook_id, p_event_id, p_topic, p_shop_domain, p_api_version, p_triggered_at,
        p_now, p_body, FALSE, 'applied', NULL, p_store_order_id, p_updated_at)
    ON CONFLICT DO NOTHING RETURNING id INTO event_row;
    IF event_row IS NULL THEN
        -- Kept too, for the duplicate rate and the order's timeline.
        note := 'webhook or event id seen before';
        INSERT INTO webhook_events (webhook_id, event_id, topic, shop_domain, api_version, triggered_at,
            received_at, body, duplicate, outcome, note, store_order_id, order_updated_at)
        VALUES (p_webhook_id, p_event_id, p_topic, p_shop_domain, p_api_version, p_triggered_at,
            p_now, p_body, TRUE, 'duplicate', note, p_store_order_id, p_updated_at);
        outcome := 'duplicate';
        RETURN;
    END IF;

    IF p_customer THEN
        customer := syncdesk_link_customer(p_store_customer_id, p_customer_email, p_phone, p_first_name,
            p_last_name, p_now);
    END IF;

    INSERT INTO orders AS o (store_order_id, name, store_updated_at, version, customer_id, email, lifecycle,
        currency, total, data, first_seen_at, updated_at)
    VALUES (p_store_order_id, p_name, p_updated_at, 1, customer, p_email, p_lifecycle, p_currency, p_total,
        p_data, p_now, p_now)
    ON CONFLICT (store_order_id) DO NOTHING RETURNING o.version INTO version;
    IF version IS NULL THEN
        SELECT o.store_updated_at, o.version INTO stored_at, version FROM orders o
        WHERE o.store_order_id = p_store_order_id FOR UPDATE;
        IF p_updated_at > stored_at THEN
            version := version + 1;
            UPDATE orders SET name = p_name, store_updated_at = p_updated_at, version = syncdesk_ingest_order.version,
                customer_id = COALESCE(customer, customer_id), email = p_email, lifecycle = p_lifecycle,
                currency = p_currency, total = p_total, data = p_data, updated_at = p_now
            WHERE store_order_id = p_store_order_id;
        ELSE
            version := NULL;
            IF p_updated_at = stored_at THEN
                outcome := 'duplicate';
                note := 'this order state was received before';
            ELSE
                outcome := 'superseded';
                -- As chrono's `to_rfc3339` writes it, like the notes SQLite's path writes.
                note := 'older than the state applied ('
                    || to_char(stored_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS')
                    || CASE WHEN extract(microseconds FROM stored_at)::BIGINT % 1000000 = 0 THEN ''
                            WHEN extract(microseconds FROM stored_at)::BIGINT % 1000 = 0
                                THEN to_char(stored_at AT TIME ZONE 'UTC', '.MS')
                            ELSE to_char(stored_at AT TIME ZONE 'UTC', '.US') END
                    || '+00:00)';
            END IF;
            UPDATE webhook_events SET outcome = syncdesk_ingest_order.outcome, note = syncdesk_ingest_order.note
            WHERE id = event_row;
            RETURN;
        END IF;
    END IF;

    PERFORM syncdesk_arm_tasks(p_store_order_id, version, p_now, p_skus);
    outcome := 'applied';
END
$$;

-- Many orders' deliveries in one call and one transaction: `syncdesk_ingest_order` for each, in
-- the order given (a later delivery sees an earlier one's rows: two deliveries of one webhook,
-- or of one order state, still make one applied and one duplicate). Row `ordinal` answers the
-- `ordinal`-th delivery. The SKUs of each come as a JSON array.
CREATE FUNCTION syncdesk_ingest_orders(
    p_webhook_id TEXT[], p_event_id TEXT[], p_topic TEXT[], p_shop_domain TEXT[], p_api_version TEXT[],
    p_triggered_at TIMESTAMPTZ[], p_now TIMESTAMPTZ[], p_body BYTEA[],
    p_store_order_id BIGINT[], p_updated_at TIMESTAMPTZ[], p_name TEXT[], p_email TEXT[], p_lifecycle TEXT[],
    p_currency TEXT[], p_total TEXT[], p_data JSONB[], p_skus JSONB[],
    p_customer BOOLEAN[], p_store_customer_id BIGINT[], p_customer_email TEXT[], p_phone TEXT[],
    p_first_name TEXT[], p_last_name TEXT[]
) RETURNS TABLE (ordinal INT, outcome TEXT, version BIGINT) LANGUAGE plpgsql AS $$
BEGIN
    FOR i IN 1 .. coalesce(cardinality(p_webhook_id), 0) LOOP
        ordinal := i;
        SELECT r.outcome, r.version INTO outcome, version
        FROM syncdesk_ingest_order(p_webhook_id[i], p_event_id[i], p_topic[i], p_shop_domain[i], p_api_version[i],
            p_triggered_at[i], p_now[i], p_body[i], p_store_order_id[i], p_updated_at[i], p_name[i], p_email[i],
            p_lifecycle[i], p_currency[i], p_total[i], p_data[i],
            ARRAY(SELECT jsonb_array_elements_text(p_skus[i])),
            p_customer[i], p_store_customer_id[i], p_customer_email[i], p_phone[i], p_first_name[i],
            p_last_name[i]) r;
        RETURN NEXT;
    END LOOP;
END
$$;

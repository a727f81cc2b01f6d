//! Orders' webhooks arriving together. PostgreSQL records those that queued in one call
//! (`store::ingest::postgres`), SQLite in one group commit (`store::writer`); either way a
//! delivery the database refuses fails alone — answered 503, nothing of it stored, so the store
//! delivers it again — and the others are recorded and armed.

use reqwest::StatusCode;
use serde_json::{Value, json};
use syncdesk::engine::ingest::accept;
use syncdesk::simulate::shopify::OrderFactory;
use syncdesk::store::{Backend, Db, Delivery, IngestOutcome, Store};

use crate::harness::TestApp;
use crate::webhooks::{Post, later, order_id};

on_both_backends! {
    one_refused_delivery_among_many_fails_alone => one_refused_delivery_among_many_fails_alone_sqlite, one_refused_delivery_among_many_fails_alone_postgres;
    several_processes_record_the_same_new_customers_at_once => several_processes_record_the_same_new_customers_at_once_sqlite, several_processes_record_the_same_new_customers_at_once_postgres;
    deliveries_of_every_kind_written_together_end_as_they_would_alone => deliveries_of_every_kind_written_together_end_as_they_would_alone_sqlite, deliveries_of_every_kind_written_together_end_as_they_would_alone_postgres;
    a_webhooks_raw_body_is_kept_byte_for_byte_in_its_row => a_webhooks_raw_body_is_kept_byte_for_byte_in_its_row_sqlite, a_webhooks_raw_body_is_kept_byte_for_byte_in_its_row_postgres;
    an_order_of_a_thousand_skus_keeps_every_one => an_order_of_a_thousand_skus_keeps_every_one_sqlite, an_order_of_a_thousand_skus_keeps_every_one_postgres;
}

pub fn delivery_of(order: &Value) -> Delivery {
    Delivery {
        webhook_id: uuid::Uuid::new_v4().to_string(),
        event_id: None,
        topic: "orders/create".into(),
        shop_domain: None,
        api_version: None,
        triggered_at: None,
        body: serde_json::to_vec(order).expect("json"),
    }
}

/// The distinct SKUs of an order's lines.
fn skus_of(order: &Value) -> std::collections::BTreeSet<String> {
    order["line_items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|line| line["sku"].as_str())
        .filter(|sku| !sku.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Deliveries of every kind written together, in one PostgreSQL call (one SQLite transaction):
/// two new orders of one new customer and a guest checkout by the same email, a webhook
/// delivered twice, a new order then a newer and an older state of it, a known order's newer
/// state, and a webhook recorded earlier. Each ends as it would alone and in turn. (PostgreSQL
/// writes a call's new orders together and runs the others' steps one by one, migration 0015:
/// the two must not change an outcome.)
async fn deliveries_of_every_kind_written_together_end_as_they_would_alone(app: TestApp) {
    let known = OrderFactory::new(700).order();
    let known_first = delivery_of(&known);
    assert!(matches!(
        accept(&app.store, known_first.clone())
            .await
            .expect("recorded"),
        IngestOutcome::Applied { version: 1, .. }
    ));
    let customer = |seed: u64, with_id: bool| {
        let mut order = OrderFactory::new(seed).order();
        let email = "together@example.com";
        order["customer"] = if with_id {
            json!({"id": 516_000, "email": email, "first_name": "Tog", "last_name": "Ether"})
        } else {
            Value::Null
        };
        order["email"] = json!(email);
        order
    };
    let (first, second, guest) = (
        customer(701, true),
        customer(702, true),
        customer(703, false),
    );
    let twice = OrderFactory::new(704).order();
    let changing = OrderFactory::new(705).order();
    let (newer, older) = (later(&changing, 5), later(&changing, -5));
    let twice_delivery = delivery_of(&twice);
    let (plain, plainer) = (
        OrderFactory::new(707).order(),
        OrderFactory::new(708).order(),
    );
    let deliveries = [
        (delivery_of(&first), "applied 1"),
        (twice_delivery.clone(), "applied 1"),
        (delivery_of(&second), "applied 1"),
        (twice_delivery, "duplicate"),
        (delivery_of(&changing), "applied 1"),
        (delivery_of(&newer), "applied 2"),
        (delivery_of(&guest), "applied 1"),
        (delivery_of(&older), "superseded"),
        (delivery_of(&later(&known, 10)), "applied 2"),
        (known_first, "duplicate"),
        (delivery_of(&plain), "applied 1"),
        (delivery_of(&plainer), "applied 1"),
    ];
    // PostgreSQL writes new orders together in calls of 10 deliveries or more.
    assert!(deliveries.len() >= 10);

    // Held writes make the deliveries queue: a first one waits on the lock, and all these are
    // written together after it, in the order they queued.
    let calls_before = app.store.ingest_batch_counts();
    let held = hold_writes(&app).await;
    let waiting = {
        let store = app.store.clone();
        let pilot = delivery_of(&OrderFactory::new(706).order());
        tokio::spawn(async move { accept(&store, pilot).await })
    };
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let mut answers = Vec::new();
    for (delivery, _) in &deliveries {
        let (store, delivery) = (app.store.clone(), delivery.clone());
        answers.push(tokio::spawn(async move { accept(&store, delivery).await }));
        tokio::time::sleep(std::time::Duration::from_millis(30)).await;
    }
    held.release().await;
    assert!(matches!(
        waiting.await.expect("task").expect("recorded"),
        IngestOutcome::Applied { version: 1, .. }
    ));
    let mut outcomes = Vec::new();
    for answer in answers {
        outcomes.push(match answer.await.expect("task").expect("recorded") {
            IngestOutcome::Applied { version, .. } => format!("applied {version}"),
            IngestOutcome::Duplicate => "duplicate".into(),
            IngestOutcome::Superseded { .. } => "superseded".into(),
            other => format!("{other:?}"),
        });
    }
    let expected: Vec<&str> = deliveries.iter().map(|(_, outcome)| *outcome).collect();
    assert_eq!(outcomes, expected);
    if let (Some((calls, _)), Some((calls_after, _))) =
        (calls_before, app.store.ingest_batch_counts())
    {
        assert_eq!(
            calls_after - calls,
            2,
            "the pilot's call, then one for all the others"
        );
    }

    // One customer for the two orders of the account and the guest checkout by its email.
    let customer_of = |order: &Value| {
        format!(
            "SELECT customer_id FROM orders WHERE store_order_id = {}",
            order_id(order)
        )
    };
    let linked = app.count(&customer_of(&first)).await;
    assert_eq!(app.count(&customer_of(&second)).await, linked);
    assert_eq!(app.count(&customer_of(&guest)).await, linked);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM customers WHERE email = 'together@example.com'")
            .await,
        1
    );
    // The changing order holds its newest state; the known order its second.
    let version_of = |order: &Value| {
        format!(
            "SELECT version FROM orders WHERE store_order_id = {}",
            order_id(order)
        )
    };
    assert_eq!(app.count(&version_of(&changing)).await, 2);
    assert_eq!(app.count(&version_of(&known)).await, 2);
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) FROM webhook_events WHERE store_order_id = {} AND outcome = 'superseded'
             AND note LIKE 'older than the state applied (%'",
            order_id(&changing)
        ))
        .await,
        1
    );
    // Every order's tasks armed at its version, every SKU kept, every delivery recorded.
    let orders = [
        &known, &first, &second, &guest, &twice, &changing, &plain, &plainer,
    ];
    for order in orders {
        let id = order_id(order);
        assert_eq!(
            app.count(&format!(
                "SELECT COUNT(*) FROM sync_tasks t JOIN orders o ON o.store_order_id = t.store_order_id
                 WHERE t.store_order_id = {id} AND t.state = 'pending' AND t.target_version = o.version"
            ))
            .await,
            2,
            "tasks of order {id}"
        );
        assert_eq!(
            app.count(&format!(
                "SELECT COUNT(*) FROM order_skus WHERE store_order_id = {id}"
            ))
            .await,
            skus_of(order).len() as i64,
            "SKUs of order {id}"
        );
    }
    assert_eq!(
        app.count("SELECT COUNT(*) FROM webhook_events").await,
        1 + 1 + deliveries.len() as i64
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM webhook_events WHERE duplicate")
            .await,
        2
    );
    // The metrics' counters followed the deliveries written together, and their rewrites.
    app.assert_metric_counters_match_the_rows().await;
    app.assert_every_row_has_its_parent().await;
}

/// A transaction on another connection that holds every write of the ingest until released:
/// PostgreSQL's `webhook_events` locked against inserts, SQLite's write lock taken.
pub struct HeldWrites(HeldConnection);

enum HeldConnection {
    Sqlite(sqlx::pool::PoolConnection<sqlx::Sqlite>),
    Postgres(sqlx::pool::PoolConnection<sqlx::Postgres>),
}

pub async fn hold_writes(app: &TestApp) -> HeldWrites {
    use sqlx::Executor;
    HeldWrites(match app.store.db() {
        syncdesk::store::Db::Sqlite(pool) => {
            let mut conn = pool.acquire().await.expect("connection");
            conn.execute("BEGIN IMMEDIATE").await.expect("write lock");
            HeldConnection::Sqlite(conn)
        }
        syncdesk::store::Db::Postgres(pool) => {
            let mut conn = pool.acquire().await.expect("connection");
            conn.execute("BEGIN").await.expect("begin");
            conn.execute("LOCK TABLE webhook_events IN EXCLUSIVE MODE")
                .await
                .expect("lock");
            HeldConnection::Postgres(conn)
        }
    })
}

impl HeldWrites {
    pub async fn release(self) {
        use sqlx::Executor;
        match self.0 {
            HeldConnection::Sqlite(mut conn) => conn.execute("COMMIT").await.map(drop),
            HeldConnection::Postgres(mut conn) => conn.execute("COMMIT").await.map(drop),
        }
        .expect("release");
    }
}

async fn one_refused_delivery_among_many_fails_alone(app: TestApp) {
    let orders: Vec<Value> = (300..324)
        .map(|seed| OrderFactory::new(seed).order())
        .collect();
    let refused = order_id(&orders[9]);
    // The database refuses this one order, as a broken rule or a full disk would.
    match app.store.backend() {
        Backend::Postgres => {
            app.execute(
                "CREATE FUNCTION refuse_order() RETURNS trigger LANGUAGE plpgsql AS $$
                 BEGIN RAISE EXCEPTION 'refused for the test'; END $$",
            )
            .await;
            app.execute(&format!(
                "CREATE TRIGGER refuse_order BEFORE INSERT ON orders FOR EACH ROW
                 WHEN (NEW.store_order_id = {refused}) EXECUTE FUNCTION refuse_order()"
            ))
            .await;
        }
        Backend::Sqlite => {
            app.execute(&format!(
                "CREATE TRIGGER refuse_order BEFORE INSERT ON orders WHEN NEW.store_order_id = {refused}
                 BEGIN SELECT RAISE(ABORT, 'refused for the test'); END"
            ))
            .await;
        }
    }

    let posts: Vec<Post> = orders
        .iter()
        .map(|o| Post::new("orders/create", o))
        .collect();
    let mut together = tokio::task::JoinSet::new();
    for (order, post) in orders.iter().zip(&posts) {
        let (id, post, base) = (order_id(order), post.clone(), app.base.clone());
        together.spawn(async move { (id, post.send_to(base).await) });
    }
    while let Some(done) = together.join_next().await {
        let (id, (status, body)) = done.expect("request task");
        if id == refused {
            assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        } else {
            assert_eq!(
                (status, body["outcome"].as_str()),
                (StatusCode::OK, Some("applied")),
                "{body}"
            );
        }
    }
    let others = orders.len() as i64 - 1;
    assert_eq!(app.count("SELECT COUNT(*) FROM orders").await, others);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM sync_tasks WHERE state = 'pending'")
            .await,
        2 * others
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM webhook_events").await,
        others
    );
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) FROM webhook_events WHERE store_order_id = {refused}"
        ))
        .await,
        0,
        "nothing of the refused delivery is kept: it was not acknowledged"
    );

    // The store delivers it again once the database takes it: recorded like the others.
    app.execute(match app.store.backend() {
        Backend::Postgres => "DROP TRIGGER refuse_order ON orders",
        Backend::Sqlite => "DROP TRIGGER refuse_order",
    })
    .await;
    let (status, body) = posts[9].send(&app).await;
    assert_eq!(
        (status, body["outcome"].as_str()),
        (StatusCode::OK, Some("applied")),
        "{body}"
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM orders").await, others + 1);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM sync_tasks").await,
        2 * (others + 1)
    );
}

/// Three processes, each with its own pool and its own writer (web nodes behind one load
/// balancer), record at once six orders of each of three new customers, and one webhook that
/// every process receives: each customer is created once, every order applied once, the webhook
/// applied once. On PostgreSQL two processes' batches can meet on a new customer's row; one
/// waits for the other, or, deadlocked, is undone and written again.
async fn several_processes_record_the_same_new_customers_at_once(app: TestApp) {
    let url = app.database_url();
    let mut stores = vec![app.store.clone()];
    for _ in 0..2 {
        stores.push(Store::connect_with(&url, 3).await.expect("own pool"));
    }
    let delivery = |order: &Value| Delivery {
        webhook_id: uuid::Uuid::new_v4().to_string(),
        event_id: None,
        topic: "orders/create".into(),
        shop_domain: None,
        api_version: None,
        triggered_at: None,
        body: serde_json::to_vec(order).expect("json"),
    };
    let mut together = tokio::task::JoinSet::new();
    for n in 0..18u64 {
        let customer = 515_000 + n % 3;
        let mut order = OrderFactory::new(900 + n).order();
        let email = format!("new.customer.{customer}@example.com");
        order["customer"] =
            json!({"id": customer, "email": email, "first_name": "New", "last_name": "Customer"});
        order["email"] = json!(email);
        let (store, delivery) = (stores[n as usize % 3].clone(), delivery(&order));
        together.spawn(async move { accept(&store, delivery).await });
    }
    let everywhere = delivery(&OrderFactory::new(950).order());
    for store in &stores {
        let (store, delivery) = (store.clone(), everywhere.clone());
        together.spawn(async move { accept(&store, delivery).await });
    }
    let (mut applied, mut duplicates) = (0, 0);
    while let Some(done) = together.join_next().await {
        match done.expect("ingest task").expect("recorded") {
            IngestOutcome::Applied { .. } => applied += 1,
            IngestOutcome::Duplicate => duplicates += 1,
            other => panic!("{other:?}"),
        }
    }
    assert_eq!((applied, duplicates), (19, 2));
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM customers WHERE store_customer_id BETWEEN 515000 AND 515002"
        )
        .await,
        3
    );
    assert_eq!(
        app.count(
            "SELECT COUNT(DISTINCT customer_id) FROM orders WHERE email LIKE 'new.customer.%'"
        )
        .await,
        3
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM orders").await, 19);
    assert_eq!(app.count("SELECT COUNT(*) FROM sync_tasks").await, 38);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM webhook_events WHERE duplicate")
            .await,
        2
    );
}

/// The raw body of every delivery is kept for replay, byte for byte. On PostgreSQL, a store's
/// order webhook of a few kilobytes stays in its row, compressed (migration 0020): nothing goes
/// to the table's TOAST relation, which cost two more rows and two more index entries a webhook.
async fn a_webhooks_raw_body_is_kept_byte_for_byte_in_its_row(app: TestApp) {
    let mut deliveries = Vec::new();
    for seed in 0..20 {
        let delivery = delivery_of(&OrderFactory::new(900 + seed).order());
        assert!(matches!(
            accept(&app.store, delivery.clone())
                .await
                .expect("recorded"),
            IngestOutcome::Applied { .. }
        ));
        deliveries.push(delivery);
    }
    let largest = deliveries.iter().map(|d| d.body.len()).max().unwrap_or(0);
    assert!(
        largest > 4096,
        "the factory's orders are a few kilobytes: {largest}"
    );
    for delivery in &deliveries {
        let sql = match app.store.db() {
            Db::Sqlite(_) => "SELECT body FROM webhook_events WHERE webhook_id = ?",
            Db::Postgres(_) => "SELECT body FROM webhook_events WHERE webhook_id = $1",
        };
        let stored: Vec<u8> = match app.store.db() {
            Db::Sqlite(pool) => {
                sqlx::query_scalar(sql)
                    .bind(&delivery.webhook_id)
                    .fetch_one(pool)
                    .await
            }
            Db::Postgres(pool) => {
                sqlx::query_scalar(sql)
                    .bind(&delivery.webhook_id)
                    .fetch_one(pool)
                    .await
            }
        }
        .expect("the body");
        assert_eq!(stored, delivery.body, "kept byte for byte");
    }
    if let Db::Postgres(pool) = app.store.db() {
        let (out_of_line, compressed): (i64, bool) = sqlx::query_as(
            "SELECT (SELECT pg_relation_size(reltoastrelid) FROM pg_class WHERE oid = 'webhook_events'::regclass),
                    bool_and(pg_column_size(body) < octet_length(body)) FILTER (WHERE octet_length(body) > 4096)
             FROM webhook_events",
        )
        .fetch_one(pool)
        .await
        .expect("sizes");
        assert_eq!(out_of_line, 0, "no body went out of line");
        assert!(compressed, "every body past 4 KB is compressed in its row");
    }
}

/// SQLite keeps an order's SKUs in inserts of up to 500, the first in the call that arms its
/// tasks: an order of 1,203 SKUs takes three.
async fn an_order_of_a_thousand_skus_keeps_every_one(app: TestApp) {
    let mut order = OrderFactory::new(1700).order();
    let line = order["line_items"][0].clone();
    let lines: Vec<Value> = (0..1203)
        .map(|n| {
            let mut line = line.clone();
            line["id"] = json!(9_000_000 + n);
            line["sku"] = json!(format!("BULK-{n:04}"));
            line
        })
        .collect();
    order["line_items"] = Value::Array(lines);
    let id = order_id(&order);
    assert!(matches!(
        accept(&app.store, delivery_of(&order))
            .await
            .expect("recorded"),
        IngestOutcome::Applied { version: 1, .. }
    ));
    for (sql, want) in [
        ("SELECT COUNT(*) FROM order_skus", 1203),
        ("SELECT COUNT(DISTINCT sku) FROM order_skus", 1203),
        ("SELECT COUNT(*) FROM sync_tasks", 2),
    ] {
        assert_eq!(
            app.count(&format!("{sql} WHERE store_order_id = {id}"))
                .await,
            want,
            "{sql}"
        );
    }
}

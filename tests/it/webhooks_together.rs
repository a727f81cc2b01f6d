//! Orders' webhooks arriving together. PostgreSQL records those that queued in one call
//! (`store::ingest::postgres`), SQLite in one group commit (`store::writer`); either way a
//! delivery the database refuses fails alone — answered 503, nothing of it stored, so the store
//! delivers it again — and the others are recorded and armed.

use reqwest::StatusCode;
use serde_json::{Value, json};
use syncdesk::engine::ingest::accept;
use syncdesk::simulate::shopify::OrderFactory;
use syncdesk::store::{Backend, Delivery, IngestOutcome, Store};

use crate::harness::TestApp;
use crate::webhooks::{Post, order_id};

on_both_backends! {
    one_refused_delivery_among_many_fails_alone => one_refused_delivery_among_many_fails_alone_sqlite, one_refused_delivery_among_many_fails_alone_postgres;
    several_processes_record_the_same_new_customers_at_once => several_processes_record_the_same_new_customers_at_once_sqlite, several_processes_record_the_same_new_customers_at_once_postgres;
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

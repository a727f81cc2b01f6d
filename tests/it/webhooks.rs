//! `POST /webhooks/shopify`: signature, bad input, duplicates (also concurrent), late and stale
//! updates, the sync tasks a new order state arms, and a delivery PostgreSQL undid to break a
//! deadlock, written again.

use std::time::Duration;

use base64::Engine;
use hmac::{Hmac, Mac};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::Sha256;
use syncdesk::simulate::shopify::OrderFactory;

use crate::harness::{TestApp, WEBHOOK_SECRET};

on_both_backends! {
    the_same_order_state_under_different_webhook_ids_posted_concurrently_is_applied_once => the_same_order_state_under_different_webhook_ids_posted_concurrently_is_applied_once_sqlite, the_same_order_state_under_different_webhook_ids_posted_concurrently_is_applied_once_postgres;
    a_signed_order_is_stored_and_armed_for_every_destination => a_signed_order_is_stored_and_armed_for_every_destination_sqlite, a_signed_order_is_stored_and_armed_for_every_destination_postgres;
    bad_signatures_bad_json_and_oversized_bodies_change_nothing => bad_signatures_bad_json_and_oversized_bodies_change_nothing_sqlite, bad_signatures_bad_json_and_oversized_bodies_change_nothing_postgres;
    shopify_headers_in_any_case_are_read_and_kept_with_the_event => shopify_headers_in_any_case_are_read_and_kept_with_the_event_sqlite, shopify_headers_in_any_case_are_read_and_kept_with_the_event_postgres;
    unknown_topics_and_unreadable_bodies_are_acknowledged_and_kept => unknown_topics_and_unreadable_bodies_are_acknowledged_and_kept_sqlite, unknown_topics_and_unreadable_bodies_are_acknowledged_and_kept_postgres;
    the_same_delivery_posted_concurrently_is_applied_once => the_same_delivery_posted_concurrently_is_applied_once_sqlite, the_same_delivery_posted_concurrently_is_applied_once_postgres;
    a_late_older_update_is_superseded_not_applied => a_late_older_update_is_superseded_not_applied_sqlite, a_late_older_update_is_superseded_not_applied_postgres;
    a_newer_state_re_arms_a_synced_task => a_newer_state_re_arms_a_synced_task_sqlite, a_newer_state_re_arms_a_synced_task_postgres;
    orders_of_one_new_customer_posted_together_all_apply => orders_of_one_new_customer_posted_together_all_apply_sqlite, orders_of_one_new_customer_posted_together_all_apply_postgres;
    customers_are_linked_by_store_account_then_by_email => customers_are_linked_by_store_account_then_by_email_sqlite, customers_are_linked_by_store_account_then_by_email_postgres;
}

/// The deterministic linking rules, in the order a shop meets them: a guest by email, the same
/// guest again, the guest opening an account, a second account with the same email (kept apart,
/// for a data steward), and each account found again by its id.
async fn customers_are_linked_by_store_account_then_by_email(app: TestApp) {
    let order_by = |seed: u64, customer: Value| {
        let mut order = OrderFactory::new(seed).order();
        // Placed in the order of their seeds: the details they carry (without a customer
        // `updated_at`) are as recent as their checkouts.
        let placed = format!("2024-10-01T10:{:02}:00Z", seed - 900);
        order["created_at"] = json!(placed);
        order["updated_at"] = json!(placed);
        order["email"] = json!("Pat.Doe@Example.com");
        // The customer's phone is the one it carries, if any.
        order["phone"] = Value::Null;
        order["customer"] = customer;
        order
    };
    let customer_of = |seed: u64| {
        let order = OrderFactory::new(seed).order();
        format!(
            "SELECT customer_id FROM orders WHERE store_order_id = {}",
            order_id(&order)
        )
    };
    let app = &app;
    let post = |order: Value| async move {
        let (status, body) = Post::new("orders/create", &order).send(app).await;
        assert_eq!(
            (status, body["outcome"].as_str()),
            (StatusCode::OK, Some("applied")),
            "{body}"
        );
    };
    post(order_by(900, Value::Null)).await;
    post(order_by(901, json!({"email": " pat.doe@example.COM "}))).await;
    let guest = app.count(&customer_of(900)).await;
    assert_eq!(
        app.count(&customer_of(901)).await,
        guest,
        "the same guest, by email"
    );
    assert_eq!(
        app.count(&format!("SELECT COUNT(*) FROM customers WHERE id = {guest} AND email = 'pat.doe@example.com' AND store_customer_id IS NULL")).await,
        1
    );

    post(order_by(
        902,
        json!({"id": 555, "email": "pat.doe@example.com", "first_name": "Pat"}),
    ))
    .await;
    assert_eq!(
        app.count(&customer_of(902)).await,
        guest,
        "the guest's record takes the account"
    );
    assert_eq!(
        app.count(&format!("SELECT COUNT(*) FROM customers WHERE id = {guest} AND store_customer_id = 555 AND first_name = 'Pat'")).await,
        1
    );

    post(order_by(
        903,
        json!({"id": 556, "email": "pat.doe@example.com"}),
    ))
    .await;
    let other = app.count(&customer_of(903)).await;
    assert_ne!(
        other, guest,
        "another account with the same email is another record"
    );
    assert_eq!(
        app.count(&format!("SELECT COUNT(*) FROM customers WHERE id = {other} AND store_customer_id = 556 AND email IS NULL")).await,
        1,
        "without the email, which the first record holds"
    );

    post(order_by(904, json!({"id": 556}))).await;
    post(order_by(
        905,
        json!({"id": 555, "email": "pat.doe@example.com", "last_name": "Doe"}),
    ))
    .await;
    assert_eq!(app.count(&customer_of(904)).await, other);
    assert_eq!(app.count(&customer_of(905)).await, guest);
    assert_eq!(app.count("SELECT COUNT(*) FROM customers").await, 2);
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) FROM customers WHERE id = {guest} AND last_name = 'Doe'"
        ))
        .await,
        1,
        "a later order fills in what it carries"
    );

    // An order bringing nothing new leaves the details as they are (`updated_at`, when SyncDesk
    // last changed them, does not move); one bringing a new phone number updates them.
    let pat = |phone: &str| json!({"id": 555, "email": "pat.doe@example.com", "first_name": "Pat", "last_name": "Doe", "phone": phone});
    post(order_by(906, pat("+44 20 7946 0958"))).await;
    app.count(&format!(
        "UPDATE customers SET updated_at = '2000-01-01T00:00:00Z' WHERE id = {guest} RETURNING CAST(1 AS BIGINT)"
    ))
    .await;
    let untouched =
        format!("SELECT COUNT(*) FROM customers WHERE id = {guest} AND updated_at < '2001-01-01'");
    post(order_by(907, pat("+442079460958"))).await;
    assert_eq!(
        app.count(&untouched).await,
        1,
        "nothing new, no detail rewritten"
    );
    assert_eq!(app.count(&customer_of(907)).await, guest);
    post(order_by(908, pat("+44 20 7946 0959"))).await;
    assert_eq!(
        app.count(&untouched).await,
        0,
        "a new phone number is written"
    );
    assert_eq!(
        app.text(&format!("SELECT phone FROM customers WHERE id = {guest}"))
            .await,
        "+442079460959"
    );
    post(order_by(
        909,
        json!({"id": 555, "email": "pat.doe@example.com", "last_name": "Doe"}),
    ))
    .await;
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) FROM customers WHERE id = {guest} AND phone = '+442079460959' AND last_name = 'Doe'"
        ))
        .await,
        1,
        "and what the order leaves out is kept"
    );
}

/// Found by the benchmark: two deliveries creating the same new customer raced on PostgreSQL
/// and one was refused (503).
async fn orders_of_one_new_customer_posted_together_all_apply(app: TestApp) {
    let mut racing = tokio::task::JoinSet::new();
    for seed in 0..8u64 {
        let mut order = OrderFactory::new(700 + seed).order();
        order["customer"] = json!({"id": 424242, "email": "same.person@example.com", "first_name": "Sam", "last_name": "Same"});
        order["email"] = json!("same.person@example.com");
        let (post, base) = (Post::new("orders/create", &order), app.base.clone());
        racing.spawn(async move { post.send_to(base).await });
    }
    while let Some(done) = racing.join_next().await {
        let (status, body) = done.expect("request task");
        assert_eq!(
            (status, body["outcome"].as_str()),
            (StatusCode::OK, Some("applied")),
            "{body}"
        );
    }
    assert_eq!(
        app.count("SELECT COUNT(*) FROM customers WHERE store_customer_id = 424242")
            .await,
        1
    );
    assert_eq!(
        app.count(
            "SELECT COUNT(DISTINCT customer_id) FROM orders WHERE email = 'same.person@example.com'"
        )
        .await,
        1
    );
}

fn sign(body: &[u8], secret: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(body);
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

#[derive(Clone)]
pub struct Post {
    topic: String,
    webhook_id: String,
    event_id: Option<String>,
    body: Vec<u8>,
    signature: Option<String>,
}

impl Post {
    pub fn new(topic: &str, body: &Value) -> Post {
        let body = serde_json::to_vec(body).expect("json");
        Post {
            topic: topic.to_string(),
            webhook_id: uuid::Uuid::new_v4().to_string(),
            event_id: None,
            signature: Some(sign(&body, WEBHOOK_SECRET)),
            body,
        }
    }

    pub async fn send(&self, app: &TestApp) -> (StatusCode, Value) {
        self.send_to(app.base.clone()).await
    }

    pub async fn send_to(&self, base: String) -> (StatusCode, Value) {
        let mut req = reqwest::Client::new()
            .post(format!("{base}/webhooks/shopify"))
            .header("Content-Type", "application/json")
            // (reqwest sends header names lower-cased, whatever case is written here; the
            // case test writes its request by hand.)
            .header("X-Shopify-Topic", &self.topic)
            .header("x-shopify-shop-domain", "demo.myshopify.com")
            .header("X-Shopify-API-Version", "2024-10")
            .header("X-Shopify-Webhook-Id", &self.webhook_id)
            .header("X-Shopify-Triggered-At", "2024-10-01T12:00:00Z")
            .body(self.body.clone());
        if let Some(sig) = &self.signature {
            req = req.header("X-SHOPIFY-HMAC-SHA256", sig);
        }
        if let Some(event) = &self.event_id {
            req = req.header("X-Shopify-Event-Id", event);
        }
        let res = req.send().await.expect("webhook request");
        let status = res.status();
        let body = res.json::<Value>().await.unwrap_or(Value::Null);
        (status, body)
    }
}

pub fn order_id(order: &Value) -> i64 {
    order["id"].as_i64().expect("order id")
}

/// The same order, `minutes` later in the store's clock.
pub fn later(order: &Value, minutes: i64) -> Value {
    let mut next = order.clone();
    let at =
        chrono::DateTime::parse_from_rfc3339(order["updated_at"].as_str().expect("updated_at"))
            .expect("rfc3339");
    next["updated_at"] = json!((at + chrono::Duration::minutes(minutes)).to_rfc3339());
    next
}

async fn a_signed_order_is_stored_and_armed_for_every_destination(app: TestApp) {
    let order = OrderFactory::new(1).order();
    let id = order_id(&order);
    let (status, body) = Post::new("orders/create", &order).send(&app).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["outcome"], "applied");

    assert_eq!(
        app.count(&format!(
            "SELECT version FROM orders WHERE store_order_id = {id}"
        ))
        .await,
        1
    );
    assert_eq!(
        app.text(&format!(
            "SELECT name FROM orders WHERE store_order_id = {id}"
        ))
        .await,
        order["name"].as_str().unwrap()
    );
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) FROM sync_tasks WHERE store_order_id = {id} AND state = 'pending' AND target_version = 1"
        ))
        .await,
        2,
        "one pending task for the CRM and one for the ERP"
    );
    // The raw event is kept for replay, byte for byte.
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM webhook_events WHERE outcome = 'applied' AND duplicate = FALSE"
        )
        .await,
        1
    );
}

async fn bad_signatures_bad_json_and_oversized_bodies_change_nothing(app: TestApp) {
    let order = OrderFactory::new(2).order();

    let mut forged = Post::new("orders/create", &order);
    forged.signature = Some(sign(&forged.body, "not-the-secret"));
    assert_eq!(forged.send(&app).await.0, StatusCode::UNAUTHORIZED);

    let mut unsigned = Post::new("orders/create", &order);
    unsigned.signature = None;
    let (status, body) = unsigned.send(&app).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        body["error"]
            .as_str()
            .unwrap_or_default()
            .contains("X-Shopify-Hmac-Sha256"),
        "{body}"
    );

    // A body changed after signing fails too.
    let mut tampered = Post::new("orders/create", &order);
    tampered.body = serde_json::to_vec(&later(&order, 5)).unwrap();
    assert_eq!(tampered.send(&app).await.0, StatusCode::UNAUTHORIZED);

    let mut malformed = Post::new("orders/create", &order);
    malformed.body = b"{\"id\": 1, \"line_items\": [".to_vec();
    malformed.signature = Some(sign(&malformed.body, WEBHOOK_SECRET));
    let (status, body) = malformed.send(&app).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"]
            .as_str()
            .unwrap_or_default()
            .contains("not valid JSON"),
        "{body}"
    );

    let mut huge = Post::new("orders/create", &order);
    huge.body = format!("{{\"note\": \"{}\"}}", "x".repeat(3 * 1024 * 1024)).into_bytes();
    huge.signature = Some(sign(&huge.body, WEBHOOK_SECRET));
    assert_eq!(huge.send(&app).await.0, StatusCode::PAYLOAD_TOO_LARGE);

    assert_eq!(
        app.count("SELECT COUNT(*) FROM webhook_events").await,
        0,
        "nothing refused is stored"
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM orders").await, 0);

    // Nothing is stored, so the refusals are counted where /metrics reads them.
    let metrics = reqwest::get(format!("{}/metrics", app.base))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text");
    for line in [
        r#"syncdesk_webhooks_rejected_total{reason="signature"} 3"#,
        r#"syncdesk_webhooks_rejected_total{reason="malformed"} 1"#,
        r#"syncdesk_webhooks_rejected_total{reason="too_large"} 1"#,
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} in:\n{metrics}");
    }
}

/// Shopify's header names arrive in whatever case a proxy leaves them: written on the wire by
/// hand (an HTTP client would lower-case them), each is still read and kept with the event; a
/// `X-Shopify-Triggered-At` that is not a time is left out rather than refusing the webhook.
async fn shopify_headers_in_any_case_are_read_and_kept_with_the_event(app: TestApp) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let raw = |order: &Value, webhook_id: &str, triggered_at: &str| {
        let body = serde_json::to_vec(order).expect("json");
        let mut request = format!(
            "POST /webhooks/shopify HTTP/1.1\r\nHost: syncdesk\r\nContent-Type: application/json\r\n\
             x-SHOPIFY-topic: orders/create\r\nX-Shopify-Shop-Domain: north-shop.myshopify.com\r\n\
             X-SHOPIFY-API-VERSION: 2024-10\r\nx-shopify-webhook-id: {webhook_id}\r\n\
             X-Shopify-EVENT-Id: evt-{webhook_id}\r\nX-shopify-triggered-AT: {triggered_at}\r\n\
             X-Shopify-Hmac-SHA256: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            sign(&body, WEBHOOK_SECRET),
            body.len()
        )
        .into_bytes();
        request.extend_from_slice(&body);
        request
    };
    let address = app.base.trim_start_matches("http://").to_string();
    for (seed, webhook_id, triggered_at) in [
        (31, "0b7e6c1a-1", "2024-10-01T12:00:00Z"),
        (32, "0b7e6c1a-2", "yesterday at noon"),
    ] {
        let mut stream = tokio::net::TcpStream::connect(&address)
            .await
            .expect("connect");
        let order = OrderFactory::new(seed).order();
        stream
            .write_all(&raw(&order, webhook_id, triggered_at))
            .await
            .expect("write");
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.expect("read");
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.contains(r#""outcome":"applied""#), "{answer}");
        assert_eq!(
            app.text(&format!(
                "SELECT topic || '|' || shop_domain || '|' || api_version || '|' || event_id
                 FROM webhook_events WHERE webhook_id = '{webhook_id}'"
            ))
            .await,
            format!("orders/create|north-shop.myshopify.com|2024-10|evt-{webhook_id}")
        );
    }
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM webhook_events WHERE webhook_id = '0b7e6c1a-1'
             AND triggered_at IS NOT NULL AND triggered_at < received_at"
        )
        .await,
        1,
        "the time the store says it sent the webhook is kept"
    );
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM webhook_events WHERE webhook_id = '0b7e6c1a-2' AND triggered_at IS NULL"
        )
        .await,
        1
    );
}

async fn unknown_topics_and_unreadable_bodies_are_acknowledged_and_kept(app: TestApp) {
    let (status, body) = Post::new("products/update", &json!({"id": 7}))
        .send(&app)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["outcome"], "recorded");

    let mut order = OrderFactory::new(3).order();
    order["line_items"][0]["price"] = json!("twelve");
    let (status, body) = Post::new("orders/create", &order).send(&app).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "a readable-JSON order is acknowledged even when a field is wrong"
    );
    assert_eq!(body["outcome"], "recorded");
    let note = app
        .text("SELECT note FROM webhook_events WHERE topic = 'orders/create'")
        .await;
    assert!(
        note.contains("line_items[0].price"),
        "the note names the field: {note}"
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM webhook_events").await, 2);
    assert_eq!(app.count("SELECT COUNT(*) FROM orders").await, 0);

    // A NUL character, which PostgreSQL cannot store in text or JSON: kept and named too,
    // instead of failing (503) on every delivery until the store gives up.
    let mut order = OrderFactory::new(5).order();
    order["line_items"][0]["name"] = json!("Gift card\u{0}");
    let (status, body) = Post::new("orders/create", &order).send(&app).await;
    assert_eq!(
        (status, &body["outcome"]),
        (StatusCode::OK, &json!("recorded")),
        "{body}"
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM webhook_events WHERE note LIKE '%line_items[0].name%NUL%'")
            .await,
        1
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM webhook_events").await, 3);
    assert_eq!(app.count("SELECT COUNT(*) FROM orders").await, 0);
    app.assert_metric_counters_match_the_rows().await;
    app.assert_every_row_has_its_parent().await;
}

/// The store may send one change as several deliveries (each with its own webhook id): the
/// order id and `updated_at` make them duplicates, also when they arrive at once.
async fn the_same_order_state_under_different_webhook_ids_posted_concurrently_is_applied_once(
    app: TestApp,
) {
    let order = OrderFactory::new(14).order();
    let id = order_id(&order);
    let mut racing = tokio::task::JoinSet::new();
    for n in 0..8 {
        let topic = if n % 2 == 0 {
            "orders/create"
        } else {
            "orders/updated"
        };
        let (post, base) = (Post::new(topic, &order), app.base.clone());
        racing.spawn(async move { post.send_to(base).await });
    }
    let mut outcomes = Vec::new();
    while let Some(done) = racing.join_next().await {
        let (status, body) = done.expect("request task");
        assert_eq!(status, StatusCode::OK, "{body}");
        outcomes.push(body["outcome"].as_str().unwrap_or_default().to_string());
    }
    outcomes.sort();
    assert_eq!(
        outcomes,
        [
            "applied",
            "duplicate",
            "duplicate",
            "duplicate",
            "duplicate",
            "duplicate",
            "duplicate",
            "duplicate"
        ]
    );
    assert_eq!(
        app.count("SELECT COUNT(DISTINCT webhook_id) FROM webhook_events")
            .await,
        8,
        "eight deliveries, each kept"
    );
    assert_eq!(
        app.count(&format!(
            "SELECT version FROM orders WHERE store_order_id = {id}"
        ))
        .await,
        1
    );
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) FROM sync_tasks WHERE store_order_id = {id} AND target_version = 1"
        ))
        .await,
        2,
        "one task per destination, armed once"
    );
    app.assert_metric_counters_match_the_rows().await;
    app.assert_every_row_has_its_parent().await;
}

async fn the_same_delivery_posted_concurrently_is_applied_once(app: TestApp) {
    let order = OrderFactory::new(4).order();
    let id = order_id(&order);
    let post = Post::new("orders/create", &order);
    let mut racing = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let (post, base) = (post.clone(), app.base.clone());
        racing.spawn(async move { post.send_to(base).await });
    }
    let mut outcomes = Vec::new();
    while let Some(done) = racing.join_next().await {
        let (status, body) = done.expect("request task");
        assert_eq!(status, StatusCode::OK, "{body}");
        outcomes.push(body["outcome"].as_str().unwrap_or_default().to_string());
    }
    assert_eq!(
        outcomes.iter().filter(|o| *o == "applied").count(),
        1,
        "{outcomes:?}"
    );
    assert_eq!(
        outcomes.iter().filter(|o| *o == "duplicate").count(),
        7,
        "{outcomes:?}"
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM webhook_events WHERE duplicate = TRUE")
            .await,
        7
    );
    // Every delivery is the order's, so its timeline shows the duplicates too; one applied.
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) FROM webhook_events WHERE store_order_id = {id}"
        ))
        .await,
        8
    );
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) FROM webhook_events WHERE store_order_id = {id} AND outcome = 'applied'"
        ))
        .await,
        1
    );
    assert_eq!(
        app.count(&format!(
            "SELECT version FROM orders WHERE store_order_id = {id}"
        ))
        .await,
        1
    );

    // Same event id under a new webhook id: still a duplicate.
    let mut again = Post::new("orders/create", &order);
    again.event_id = Some("evt-1".into());
    assert_eq!(
        again.send(&app).await.1["outcome"],
        "duplicate",
        "same order state under a new webhook id"
    );
    let mut same_event = Post::new("orders/updated", &later(&order, 1));
    same_event.event_id = Some("evt-1".into());
    assert_eq!(same_event.send(&app).await.1["outcome"], "duplicate");
    assert_eq!(
        app.count(&format!(
            "SELECT version FROM orders WHERE store_order_id = {id}"
        ))
        .await,
        1
    );
}

async fn a_late_older_update_is_superseded_not_applied(app: TestApp) {
    let created = OrderFactory::new(5).order();
    let id = order_id(&created);
    let mut paid = later(&created, 10);
    paid["financial_status"] = json!("paid");
    // With a fraction of a second, which the late event's note repeats.
    let at = chrono::DateTime::parse_from_rfc3339(paid["updated_at"].as_str().expect("updated_at"))
        .expect("rfc3339");
    paid["updated_at"] = json!((at + chrono::Duration::microseconds(123_456)).to_rfc3339());

    assert_eq!(
        Post::new("orders/paid", &paid).send(&app).await.1["outcome"],
        "applied"
    );
    // The create arrives a day late, after the newer state.
    assert_eq!(
        Post::new("orders/create", &created).send(&app).await.1["outcome"],
        "superseded"
    );
    assert_eq!(
        app.text(&format!(
            "SELECT lifecycle FROM orders WHERE store_order_id = {id}"
        ))
        .await,
        "paid"
    );
    assert_eq!(
        app.count(&format!(
            "SELECT version FROM orders WHERE store_order_id = {id}"
        ))
        .await,
        1
    );
    assert_eq!(
        app.count(&format!("SELECT COUNT(*) FROM webhook_events WHERE store_order_id = {id} AND outcome = 'superseded'")).await,
        1,
        "the late event stays in the order's timeline"
    );
    // The note names the state it lost to, written alike by both backends (PostgreSQL's in
    // the server: migration 0012).
    let applied_at: chrono::DateTime<chrono::Utc> = paid["updated_at"]
        .as_str()
        .and_then(|at| at.parse().ok())
        .expect("the factory writes updated_at");
    assert_eq!(
        app.text(&format!(
            "SELECT note FROM webhook_events WHERE store_order_id = {id} AND outcome = 'superseded'"
        ))
        .await,
        format!("older than the state applied ({})", applied_at.to_rfc3339())
    );

    // The same state again under a new webhook id (the business key): a duplicate.
    assert_eq!(
        Post::new("orders/updated", &paid).send(&app).await.1["outcome"],
        "duplicate"
    );
    assert_eq!(
        app.text(&format!(
            "SELECT note FROM webhook_events WHERE store_order_id = {id} AND outcome = 'duplicate'"
        ))
        .await,
        "this order state was received before"
    );
}

async fn a_newer_state_re_arms_a_synced_task(app: TestApp) {
    let order = OrderFactory::new(6).order();
    let id = order_id(&order);
    Post::new("orders/create", &order).send(&app).await;
    app.count(&format!(
        "UPDATE sync_tasks SET state = 'synced', synced_version = 1 WHERE store_order_id = {id} RETURNING target_version"
    ))
    .await;

    let mut cancelled = later(&order, 30);
    cancelled["cancelled_at"] = cancelled["updated_at"].clone();
    cancelled["cancel_reason"] = json!("customer");
    assert_eq!(
        Post::new("orders/cancelled", &cancelled).send(&app).await.1["outcome"],
        "applied"
    );
    assert_eq!(
        app.text(&format!(
            "SELECT lifecycle FROM orders WHERE store_order_id = {id}"
        ))
        .await,
        "cancelled"
    );
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) FROM sync_tasks WHERE store_order_id = {id} AND state = 'pending' AND target_version = 2 AND synced_version = 1"
        ))
        .await,
        2
    );
}

/// PostgreSQL undoes one side of a deadlock. When that side is a delivery written on its own (a
/// refund here, which locks its order and then the order's tasks), SyncDesk writes it again
/// instead of answering 503: the store's refund is applied once. PostgreSQL only: SQLite's one
/// writer never meets another in a deadlock.
#[tokio::test]
async fn a_delivery_undone_to_break_a_deadlock_is_written_again_postgres() {
    let app = TestApp::start(crate::harness::Backend::Postgres).await;
    let mut factory = OrderFactory::new(880);
    let order = factory.order();
    let (status, body) = Post::new("orders/create", &order).send(&app).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let id = order_id(&order);
    let refunded = factory.refunded(&order, rust_decimal::Decimal::new(1000, 2));
    let refund = syncdesk::simulate::shopify::latest_refund(&refunded).expect("a refund");

    // Another transaction (a worker's, say) holds the order's tasks and will want the order. It
    // waits 30 s before looking for a deadlock, so PostgreSQL undoes the refund's side (1 s).
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(&app.database_url())
        .await
        .expect("a connection");
    let mut other = pool.begin().await.expect("begin");
    sqlx::query("SET LOCAL deadlock_timeout = '30s'")
        .execute(&mut *other)
        .await
        .expect("set");
    sqlx::query(&format!(
        "SELECT id FROM sync_tasks WHERE store_order_id = {id} FOR UPDATE"
    ))
    .fetch_all(&mut *other)
    .await
    .expect("lock the tasks");
    let holder = async {
        // Once the refund waits for the tasks, ask for its order, then let go.
        let waiting = "SELECT COUNT(*) FROM pg_stat_activity
                       WHERE wait_event_type = 'Lock' AND datname = current_database()";
        for _ in 0..200 {
            if app.count(waiting).await > 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        sqlx::query(&format!(
            "SELECT store_order_id FROM orders WHERE store_order_id = {id} FOR UPDATE"
        ))
        .fetch_all(&mut *other)
        .await
        .expect("the order, once the refund's side is undone");
        other.commit().await.expect("commit");
    };
    let post = Post::new("refunds/create", &refund);
    let ((status, body), ()) = tokio::join!(post.send(&app), holder);
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        app.count(&format!(
            "SELECT version FROM orders WHERE store_order_id = {id}"
        ))
        .await,
        2,
        "the refund is applied once"
    );
    assert_eq!(
        app.text("SELECT outcome FROM webhook_events WHERE topic = 'refunds/create'")
            .await,
        "applied"
    );
}

//! Webhooks as a receiver sees them: a tiny axum endpoint (not SyncDesk) that checks the
//! signature, records every attempt and can be told to fail.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use chrono::DateTime;
use serde_json::{Value, json};
use url::Url;

use super::*;
use crate::domain::shopify::{parse_customer, parse_order, parse_refund};
use crate::secret::Secret;

const SECRET: &str = "shpss_test_secret";

/// How the test receiver answers.
#[derive(Clone, Copy, Debug)]
pub(super) enum Mode {
    /// 200 every time.
    Ok,
    /// 503 on a webhook's first attempt, 200 after.
    FailFirst,
    /// Answers a webhook's first attempt only after this long.
    SlowFirst(Duration),
    /// 500 every time.
    AlwaysFail,
}

/// One request the receiver got.
#[derive(Clone, Debug)]
pub(super) struct Hit {
    pub(super) headers: HeaderMap,
    pub(super) body: Bytes,
    pub(super) signature_ok: bool,
    pub(super) attempt: u32,
}

impl Hit {
    pub(super) fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    pub(super) fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

#[derive(Clone)]
pub(super) struct Receiver {
    mode: Mode,
    hits: Arc<Mutex<Vec<Hit>>>,
    attempts: Arc<Mutex<HashMap<String, u32>>>,
}

impl Receiver {
    pub(super) fn hits(&self) -> Vec<Hit> {
        self.hits.lock().unwrap().clone()
    }
}

async fn receive(
    State(rx): State<Receiver>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, String) {
    let id = headers
        .get("x-shopify-webhook-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let attempt = {
        let mut attempts = rx.attempts.lock().unwrap();
        let n = attempts.entry(id).or_default();
        *n += 1;
        *n
    };
    let signature = headers
        .get("x-shopify-hmac-sha256")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let signature_ok = verify(SECRET.as_bytes(), &body, signature);
    rx.hits.lock().unwrap().push(Hit {
        headers,
        body,
        signature_ok,
        attempt,
    });
    match rx.mode {
        Mode::AlwaysFail => return (StatusCode::INTERNAL_SERVER_ERROR, "{}".into()),
        Mode::FailFirst if attempt == 1 => return (StatusCode::SERVICE_UNAVAILABLE, "{}".into()),
        Mode::SlowFirst(wait) if attempt == 1 => tokio::time::sleep(wait).await,
        _ => {}
    }
    (StatusCode::OK, json!({ "outcome": "applied" }).to_string())
}

/// Checks `signature` the way a receiver must: base64 HMAC-SHA256 of the raw body, compared
/// in constant time. Written here, apart from the sender's code, so the two can disagree.
fn verify(secret: &[u8], body: &[u8], signature: &str) -> bool {
    use base64::Engine;
    use hmac::Mac;
    let Ok(expected) = base64::engine::general_purpose::STANDARD.decode(signature) else {
        return false;
    };
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret).unwrap();
    mac.update(body);
    mac.verify_slice(&expected).is_ok()
}

/// A receiver on loopback and its URL.
pub(super) async fn receiver(mode: Mode) -> (Url, Receiver) {
    let rx = Receiver {
        mode,
        hits: Arc::default(),
        attempts: Arc::default(),
    };
    let app = Router::new()
        .route("/webhooks/shopify", post(receive))
        .with_state(rx.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let url = Url::parse(&format!("http://{addr}/webhooks/shopify")).unwrap();
    (url, rx)
}

pub(super) fn quick_retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 4,
        timeout: Duration::from_millis(300),
        first_backoff: Duration::from_millis(5),
        max_backoff: Duration::from_millis(20),
    }
}

pub(super) fn traffic(url: &Url, orders: &OrderBook, seed: u64, mix: Misbehaviour) -> Traffic {
    let sender = WebhookSender::new(url.clone(), Secret::new(SECRET))
        .unwrap()
        .with_retry(quick_retry());
    Traffic::new(sender, orders.clone(), seed).with_misbehaviour(mix)
}

#[tokio::test]
async fn every_webhook_is_signed_and_carries_shopify_headers() {
    let (url, rx) = receiver(Mode::Ok).await;
    let book = OrderBook::new();
    let report = traffic(&url, &book, 1, Misbehaviour::default())
        .burst(40)
        .await
        .unwrap();
    let hits = rx.hits();
    assert_eq!(hits.len() as u64, report.stats.sent());
    assert_eq!(
        report.stats.by_outcome.get("applied"),
        Some(&report.stats.sent())
    );
    for hit in &hits {
        assert!(
            hit.signature_ok,
            "bad signature on {}",
            hit.header("x-shopify-topic")
        );
        assert!(
            Topic::ALL
                .iter()
                .any(|t| t.as_str() == hit.header("x-shopify-topic"))
        );
        assert_eq!(hit.header("x-shopify-shop-domain"), DEFAULT_SHOP_DOMAIN);
        assert_eq!(hit.header("x-shopify-api-version"), "2024-10");
        assert_eq!(hit.header("content-type"), "application/json");
        let webhook_id = uuid::Uuid::parse_str(hit.header("x-shopify-webhook-id")).unwrap();
        assert_eq!(webhook_id.get_version_num(), 4);
        uuid::Uuid::parse_str(hit.header("x-shopify-event-id")).unwrap();
        DateTime::parse_from_rfc3339(hit.header("x-shopify-triggered-at")).unwrap();
    }
    // Signed with another secret, nothing verifies.
    let hit = &hits[0];
    let signature = hit.header("x-shopify-hmac-sha256");
    assert!(!verify(b"another secret", &hit.body, signature));
}

#[tokio::test]
async fn every_topic_is_sent_and_parses() {
    let (url, rx) = receiver(Mode::Ok).await;
    let book = OrderBook::new();
    let report = traffic(&url, &book, 7, Misbehaviour::default())
        .burst(150)
        .await
        .unwrap();
    let mut seen = BTreeSet::new();
    for hit in rx.hits() {
        let topic = hit.header("x-shopify-topic").to_owned();
        let parsed = match topic.as_str() {
            "refunds/create" => parse_refund(&hit.body).map(|r| r.order_id),
            "customers/create" | "customers/update" => parse_customer(&hit.body).map(|c| c.id),
            _ => parse_order(&hit.body).map(|o| o.store_order_id),
        };
        assert!(parsed.is_ok(), "{topic}: {parsed:?}\n{}", hit.json());
        seen.insert(topic);
    }
    let all: BTreeSet<String> = Topic::ALL.iter().map(|t| t.as_str().to_owned()).collect();
    assert_eq!(seen, all);
    assert_eq!(report.stats.orders, 150);
    assert_eq!(report.expected.len(), 150);
}

#[tokio::test]
async fn duplicates_carry_the_same_webhook_id_event_and_body() {
    let (url, rx) = receiver(Mode::Ok).await;
    let mix = Misbehaviour {
        duplicate: 0.5,
        ..Misbehaviour::none()
    };
    let report = traffic(&url, &OrderBook::new(), 3, mix)
        .burst(20)
        .await
        .unwrap();
    let mut by_id: HashMap<String, Vec<Hit>> = HashMap::new();
    for hit in rx.hits() {
        by_id
            .entry(hit.header("x-shopify-webhook-id").to_owned())
            .or_default()
            .push(hit);
    }
    let repeated: Vec<&Vec<Hit>> = by_id.values().filter(|hits| hits.len() > 1).collect();
    assert!(!repeated.is_empty());
    assert_eq!(repeated.len() as u64, report.stats.duplicates);
    for hits in repeated {
        assert_eq!(hits.len(), 2);
        assert_eq!(hits[0].body, hits[1].body);
        for header in [
            "x-shopify-event-id",
            "x-shopify-triggered-at",
            "x-shopify-topic",
        ] {
            assert_eq!(hits[0].header(header), hits[1].header(header));
        }
    }
}

#[tokio::test]
async fn out_of_order_and_late_deliveries_send_older_states_after_newer_ones() {
    let (url, rx) = receiver(Mode::Ok).await;
    let mix = Misbehaviour {
        out_of_order: 0.3,
        late: 0.1,
        ..Misbehaviour::none()
    };
    let book = OrderBook::new();
    let report = traffic(&url, &book, 11, mix).burst(60).await.unwrap();
    assert!(report.stats.out_of_order > 0 && report.stats.late > 0);
    // Per order, in arrival order: some state arrives after a newer one.
    let mut newest: HashMap<i64, DateTime<chrono::Utc>> = HashMap::new();
    let mut older_after_newer = 0;
    for hit in rx.hits() {
        if !hit.header("x-shopify-topic").starts_with("orders/") {
            continue;
        }
        let order = parse_order(&hit.body).unwrap();
        let top = newest
            .entry(order.store_order_id)
            .or_insert(order.updated_at);
        if order.updated_at < *top {
            older_after_newer += 1;
        }
        *top = (*top).max(order.updated_at);
    }
    assert!(older_after_newer > 0);
    // The store holds every order's final version, and it is what the burst promised.
    assert_eq!(book.versions(), report.expected);
    let mut received: Vec<(i64, DateTime<chrono::Utc>)> = newest.into_iter().collect();
    received.sort_unstable();
    assert_eq!(received, report.expected);
}

#[tokio::test]
async fn a_failed_or_unanswered_first_attempt_is_delivered_again() {
    for mode in [Mode::FailFirst, Mode::SlowFirst(Duration::from_millis(600))] {
        let (url, rx) = receiver(mode).await;
        let report = traffic(&url, &OrderBook::new(), 5, Misbehaviour::none())
            .burst(6)
            .await
            .unwrap();
        let hits = rx.hits();
        let ids: BTreeSet<&str> = hits
            .iter()
            .map(|h| h.header("x-shopify-webhook-id"))
            .collect();
        assert_eq!(ids.len() as u64, report.stats.sent(), "{mode:?}");
        assert_eq!(report.stats.retries, report.stats.sent(), "{mode:?}");
        for id in ids {
            let attempts: Vec<&Hit> = hits
                .iter()
                .filter(|h| h.header("x-shopify-webhook-id") == id)
                .collect();
            assert_eq!(attempts.len(), 2, "{mode:?}");
            assert_eq!(attempts[0].body, attempts[1].body);
            assert_eq!(attempts[1].attempt, 2);
        }
    }
}

#[tokio::test]
async fn a_burst_that_is_never_acknowledged_fails_with_the_count() {
    let (url, _rx) = receiver(Mode::AlwaysFail).await;
    let err = traffic(&url, &OrderBook::new(), 2, Misbehaviour::none())
        .burst(3)
        .await
        .unwrap_err();
    assert_eq!(err.failed, err.report.stats.sent());
    assert_eq!(err.report.stats.unacknowledged, err.failed);
    assert!(matches!(err.first, SendError::GaveUp { attempts: 4, .. }));
    assert!(err.to_string().contains("never acknowledged"), "{err}");
}

#[tokio::test]
async fn the_same_seed_replays_the_same_burst() {
    let mut runs = Vec::new();
    for _ in 0..2 {
        let (url, rx) = receiver(Mode::Ok).await;
        let report = traffic(&url, &OrderBook::new(), 42, Misbehaviour::default())
            .burst(25)
            .await
            .unwrap();
        let mut sent: Vec<(String, Bytes)> = rx
            .hits()
            .into_iter()
            .map(|h| (h.header("x-shopify-webhook-id").to_owned(), h.body))
            .collect();
        sent.sort();
        runs.push((report.expected, sent));
    }
    assert_eq!(runs[0], runs[1]);
}

#[tokio::test]
async fn live_traffic_follows_the_wall_clock_and_stops_on_drop() {
    let (url, rx) = receiver(Mode::Ok).await;
    let store = spawn_store(StoreSimConfig::default()).await.unwrap();
    let started = chrono::Utc::now();
    let handle =
        Traffic::spawn(url, Secret::new(SECRET), &store, Rate::per_second(20.0), 9).unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let stats = handle.stats();
    assert!(stats.orders >= 5, "{stats}");
    assert!(
        stats.by_topic.get("orders/create").copied().unwrap_or(0) >= 5,
        "{stats}"
    );
    for (_, updated_at) in store.orders().versions() {
        assert!(updated_at >= started - chrono::Duration::seconds(1));
        assert!(updated_at <= chrono::Utc::now() + chrono::Duration::seconds(1));
    }
    // Nothing is stamped in the future, returning customers included.
    let now = chrono::Utc::now() + chrono::Duration::seconds(1);
    for hit in rx.hits() {
        let (created, updated) = match hit.header("x-shopify-topic") {
            "customers/create" | "customers/update" => {
                let customer = parse_customer(&hit.body).unwrap();
                (customer.created_at, customer.updated_at)
            }
            "refunds/create" => continue,
            _ => {
                let order = parse_order(&hit.body).unwrap();
                if let Some(since) = hit.json()["customer"]["created_at"].as_str() {
                    assert!(
                        DateTime::parse_from_rfc3339(since).unwrap() <= now,
                        "{since}"
                    );
                }
                (order.created_at, order.updated_at)
            }
        };
        assert!(created <= updated && updated <= now, "{created} {updated}");
    }
    handle.set_rate(Rate::per_second(0.0));
    assert_eq!(handle.rate(), Rate::per_second(0.0));
    drop(handle);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let after_stop = rx.hits().len();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(rx.hits().len(), after_stop);
}

#[test]
fn rates_read_like_people_write_them() {
    assert_eq!("5/s".parse::<Rate>(), Ok(Rate::per_second(5.0)));
    assert_eq!("30/min".parse::<Rate>(), Ok(Rate::per_minute(30.0)));
    assert_eq!("60".parse::<Rate>(), Ok(Rate::per_minute(60.0)));
    assert_eq!("3600/h".parse::<Rate>(), Ok(Rate::per_second(1.0)));
    assert!("fast".parse::<Rate>().is_err());
    assert!("5/week".parse::<Rate>().is_err());
    assert!("-1/s".parse::<Rate>().is_err());
    assert_eq!(Rate::per_minute(30.0).to_string(), "30/min");
}

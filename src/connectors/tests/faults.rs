//! Faults, as the connector sees them: every failure classified for the engine.

use std::time::{Duration, Instant};

use super::{config, crm, erp, order};
use crate::connectors::{
    ApiToken, CrmApi, CrmContact, DeliveryError, ErpApi, HttpErp, TransientKind,
};
use crate::simulate::faults::Faults;

fn someone() -> CrmContact {
    CrmContact {
        email: "sam@example.com".to_owned(),
        first_name: None,
        last_name: None,
        phone: None,
        store_customer_id: None,
    }
}

#[tokio::test]
async fn a_429_is_rate_limited_with_retry_after_and_holds_back_the_next_request() {
    let (sim, crm) = crm().await;
    sim.faults().update(|f| {
        f.rate_limit_rate = 1.0;
        f.retry_after_secs = 7;
    });
    let error = crm
        .upsert_contact(&someone(), "k")
        .await
        .expect_err("limited");
    assert_eq!(error.retry_after(), Some(Duration::from_secs(7)));
    assert!(matches!(
        &error,
        DeliveryError::Transient {
            kind: TransientKind::RateLimited { .. },
            ..
        }
    ));
    assert!(error.to_string().contains("7 s"), "{error}");

    // The connector does not knock again before the destination said it may.
    let seen = sim.faults().requests_seen();
    let held = crm
        .upsert_contact(&someone(), "k")
        .await
        .expect_err("held back");
    assert!(
        held.retry_after()
            .is_some_and(|w| w > Duration::from_secs(5)),
        "{held:?}"
    );
    assert_eq!(sim.faults().requests_seen(), seen);
}

#[tokio::test]
async fn a_wrong_token_or_revoked_credentials_are_auth_failures() {
    let (sim, _erp) = erp().await;
    let mut wrong = config(&sim);
    wrong.token = ApiToken::new("not-the-token");
    let erp = HttpErp::new(&wrong).expect("client");
    let error = erp.item_exists("ABC-1").await.expect_err("refused");
    assert!(
        matches!(error, DeliveryError::Auth { status: 401, .. }),
        "{error:?}"
    );
    assert_eq!(format!("{:?}", wrong.token), "ApiToken(redacted)");

    let right = HttpErp::new(&config(&sim)).expect("client");
    sim.faults().revoke_credentials();
    let error = right
        .upsert_sales_order(&order("1"), "k")
        .await
        .expect_err("revoked");
    assert_eq!(error.code(), "auth");
    sim.faults().restore_credentials();
    right
        .upsert_sales_order(&order("1"), "k")
        .await
        .expect("accepted again");
}

#[tokio::test]
async fn server_errors_and_refused_connections_are_transient() {
    let (sim, erp) = erp().await;
    sim.faults().update(|f| f.error_rate = 1.0);
    let error = erp
        .upsert_sales_order(&order("2"), "k")
        .await
        .expect_err("5xx");
    assert!(
        matches!(
            error,
            DeliveryError::Transient {
                kind: TransientKind::Server { status: 500..=503 },
                ..
            }
        ),
        "{error:?}"
    );
    assert!(sim.ledger().is_empty());

    let mut gone = config(&sim);
    drop(sim);
    tokio::time::sleep(Duration::from_millis(50)).await;
    gone.timeout = Duration::from_millis(500);
    let error = HttpErp::new(&gone)
        .expect("client")
        .item_exists("ABC-1")
        .await
        .expect_err("down");
    assert!(
        matches!(
            error,
            DeliveryError::Transient {
                kind: TransientKind::Connect,
                ..
            }
        ),
        "{error:?}"
    );
}

#[tokio::test]
async fn latency_is_added_and_the_local_rate_limit_spaces_requests() {
    let (sim, _erp) = erp().await;
    sim.faults().update(|f| f.latency_ms = 150);
    let mut limited = config(&sim);
    limited.rate_limit = Some(crate::connectors::RateLimit {
        per_second: 10.0,
        burst: 1,
    });
    let erp = HttpErp::new(&limited).expect("client");
    let started = Instant::now();
    erp.item_exists("ABC-1").await.expect("first");
    assert!(started.elapsed() >= Duration::from_millis(150));
    sim.faults().set(Faults::default());
    let started = Instant::now();
    for _ in 0..3 {
        erp.item_exists("ABC-1").await.expect("spaced");
    }
    // Burst of one at 10/s: the three wait about 100 ms each, less what the first call took.
    assert!(
        started.elapsed() >= Duration::from_millis(150),
        "{:?}",
        started.elapsed()
    );
}

/// A `Retry-After` past any date (or days long) is honoured for a day at most: the time a
/// delivery is due again must stay a time, and a destination is asked again within a day.
#[test]
fn a_retry_after_is_honoured_for_a_day_at_most() {
    use reqwest::header::HeaderValue;

    use crate::connectors::http::{MAX_RETRY_AFTER, parse_retry_after};

    let read = |text: &'static str| parse_retry_after(&HeaderValue::from_static(text));
    assert_eq!(read("30"), Some(std::time::Duration::from_secs(30)));
    assert_eq!(
        read("2.0"),
        Some(std::time::Duration::from_secs(2)),
        "as Shopify says it"
    );
    assert_eq!(read("10000000000000"), Some(MAX_RETRY_AFTER));
    assert_eq!(read("18446744073709551615"), Some(MAX_RETRY_AFTER));
    assert_eq!(read("Fri, 31 Dec 9999 23:59:59 GMT"), Some(MAX_RETRY_AFTER));
    assert_eq!(
        read("Thu, 01 Jan 1970 00:00:00 GMT"),
        Some(std::time::Duration::ZERO)
    );
    assert_eq!(read("soon"), None);
    let due = chrono::Utc::now()
        + chrono::TimeDelta::from_std(MAX_RETRY_AFTER).expect("a day is a time delta");
    assert!(due > chrono::Utc::now());
}

//! Pacing: SyncDesk's own rate limit holding deliveries back, a destination's 429 and its
//! `Retry-After`, and the deadline a delivery must end by — against the simulated CRM and ERP,
//! with their ledgers proving nothing sent twice.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use syncdesk::connectors::RateLimit;
use syncdesk::simulate::ledger::DocumentKind;

use crate::harness::TestApp;
use crate::sync::{clean_order, drain, rig};
use crate::webhooks::{Post, later, order_id};

on_both_backends! {
    a_429_holds_the_delivery_for_its_retry_after => a_429_holds_the_delivery_for_its_retry_after_sqlite, a_429_holds_the_delivery_for_its_retry_after_postgres;
    a_backlog_held_back_by_our_rate_limit_spends_no_attempts => a_backlog_held_back_by_our_rate_limit_spends_no_attempts_sqlite, a_backlog_held_back_by_our_rate_limit_spends_no_attempts_postgres;
    a_delivery_held_back_part_way_spends_its_attempt => a_delivery_held_back_part_way_spends_its_attempt_sqlite, a_delivery_held_back_part_way_spends_its_attempt_postgres;
    a_delivery_that_outlasts_its_share_of_the_lease_is_stopped_and_tried_again => a_delivery_that_outlasts_its_share_of_the_lease_is_stopped_and_tried_again_sqlite, a_delivery_that_outlasts_its_share_of_the_lease_is_stopped_and_tried_again_postgres;
}

/// Held back part-way (the sales order looked up, its update refused by our own limiter), a
/// delivery has sent something: the attempt is spent like any transient failure's, so one that
/// could never get all its requests through ends as a dead letter rather than going round for
/// ever. Held back before its first request, a task that had failed before waits as `retrying`
/// with the attempts it had.
async fn a_delivery_held_back_part_way_spends_its_attempt(app: TestApp) {
    let rig = rig(&app, Duration::from_secs(5)).await;
    let limit = RateLimit {
        per_second: 0.5,
        burst: 1,
    };
    let worker = rig.worker_limited(&app.store, "erp", limit, |_| {});
    let mut order = clean_order(895);
    order["financial_status"] = json!("authorized");
    order["fulfillments"] = json!([]);
    order["refunds"] = json!([]);
    order["cancelled_at"] = Value::Null;
    let id = order_id(&order);
    Post::new("orders/create", &order).send(&app).await;
    drain(&worker, &app, Duration::from_secs(5)).await;
    let task =
        format!("SELECT id FROM sync_tasks WHERE store_order_id = {id} AND destination = 'erp'");
    assert_eq!(
        app.text(&format!("SELECT state FROM sync_tasks WHERE id = ({task})"))
            .await,
        "synced",
        "a new order's sales order is one request"
    );

    // Paid: a find and an update. After 2 s the bucket holds one token: the find takes it and
    // the update is held back.
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    let mut paid = later(&order, 5);
    paid["financial_status"] = json!("paid");
    Post::new("orders/paid", &paid).send(&app).await;
    worker.run_once().await.unwrap();
    let transient = format!(
        "SELECT COUNT(*) FROM sync_attempts WHERE task_id = ({task}) AND outcome = 'transient' AND message LIKE 'Holding back requests to the ERP%'"
    );
    assert_eq!(app.count(&transient).await, 1, "the attempt is spent");
    assert_eq!(
        app.text(&format!(
            "SELECT state || ' ' || attempt FROM sync_tasks WHERE id = ({task})"
        ))
        .await,
        "retrying 1"
    );

    // Due again at once, with the bucket empty: held back before its first request.
    tokio::time::sleep(Duration::from_millis(200)).await;
    worker.run_once().await.unwrap();
    assert_eq!(app.count(&transient).await, 1, "no attempt recorded");
    assert_eq!(
        app.text(&format!(
            "SELECT state || ' ' || attempt FROM sync_tasks WHERE id = ({task})"
        ))
        .await,
        "retrying 1",
        "it waits as it was, its attempt given back"
    );

    // Workers whose ERP limit lets both requests through deliver it.
    drain(&rig.worker(&app.store), &app, Duration::from_secs(10)).await;
    assert_eq!(
        app.text(&format!("SELECT state FROM sync_tasks WHERE id = ({task})"))
            .await,
        "synced"
    );
    let erp = rig.erp.ledger().check();
    assert_eq!(erp.count(DocumentKind::SalesOrder, &id.to_string()), 1);
    assert_eq!(erp.extra_documents(), 0);
}

/// A delivery slower than 40% of its lease is stopped there and recorded while the lease is
/// still held, so the claims' rescue never starts a second delivery of the order beside it; the
/// next attempt goes through, and the CRM holds one deal.
async fn a_delivery_that_outlasts_its_share_of_the_lease_is_stopped_and_tried_again(app: TestApp) {
    let rig = rig(&app, Duration::from_secs(10)).await;
    let worker = rig.worker_with(&app.store, |c| c.lease = Duration::from_secs(5));
    rig.crm.faults().update(|f| f.latency_ms = 4_500);
    let order = clean_order(890);
    let id = order_id(&order);
    Post::new("orders/create", &order).send(&app).await;
    let started = Instant::now();
    worker.run_once().await.unwrap();
    let took = started.elapsed();
    assert!(
        took < Duration::from_millis(4_000),
        "stopped at its deadline (2 s), not after the CRM's 4.5 s: {took:?}"
    );
    let task =
        format!("SELECT id FROM sync_tasks WHERE store_order_id = {id} AND destination = 'crm'");
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) FROM sync_attempts WHERE task_id = ({task}) AND outcome = 'transient' AND message LIKE '%took longer than 2 s%'"
        ))
        .await,
        1,
        "the attempt is recorded under the lease it held"
    );
    assert_eq!(
        app.text(&format!("SELECT state FROM sync_tasks WHERE id = ({task})"))
            .await,
        "retrying"
    );
    rig.crm.faults().reset();
    drain(&worker, &app, Duration::from_secs(10)).await;
    assert_eq!(
        app.text(&format!("SELECT state FROM sync_tasks WHERE id = ({task})"))
            .await,
        "synced"
    );
    let crm = rig.crm.ledger().check();
    assert_eq!(crm.count(DocumentKind::Deal, &id.to_string()), 1);
    assert_eq!(crm.extra_documents(), 0);
}

/// A backlog bigger than the CRM's rate limit lets through at once: the deliveries SyncDesk's own
/// limiter holds back wait their turn without spending attempts, so with two attempts allowed
/// none is dead-lettered; the CRM gets each deal once, and no attempt or exception records a
/// request that was never sent.
async fn a_backlog_held_back_by_our_rate_limit_spends_no_attempts(app: TestApp) {
    let rig = rig(&app, Duration::from_secs(5)).await;
    let limit = RateLimit {
        per_second: 1.0,
        burst: 1,
    };
    let worker = rig.worker_limited(&app.store, "crm", limit, |c| c.retry.max_attempts = 2);
    let mut ids = Vec::new();
    for seed in 880..886 {
        let order = clean_order(seed);
        Post::new("orders/create", &order).send(&app).await;
        ids.push(order_id(&order));
    }
    worker.run_once().await.unwrap();
    let held_back = app
        .count(
        "SELECT COUNT(*) FROM sync_tasks WHERE destination = 'crm' AND state = 'pending' AND attempt = 0 AND claims = 1",
    )
    .await;
    assert!(
        held_back >= 4,
        "a burst of one at 1/s sends one of six at once; {held_back} were held back with their attempt given back"
    );
    drain(&worker, &app, Duration::from_secs(30)).await;
    assert_eq!(
        app.count("SELECT COUNT(*) FROM sync_tasks WHERE destination = 'crm' AND state = 'synced'")
            .await,
        6,
        "every deal is delivered; none is dead-lettered for waiting its turn"
    );
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM sync_attempts WHERE destination = 'crm' AND outcome <> 'synced'"
        )
        .await,
        0,
        "a request held back is not an attempt"
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM exceptions").await,
        0,
        "waiting for the rate limit is nothing a person must do"
    );
    let crm = rig.crm.ledger().check();
    for id in ids {
        assert_eq!(crm.count(DocumentKind::Deal, &id.to_string()), 1);
    }
    assert_eq!(crm.extra_documents(), 0);
    app.assert_metric_counters_match_the_rows().await;
}

/// A CRM answering 429 with `Retry-After: 2`: the delivery waits those 2 seconds (not the
/// retry policy's milliseconds), is not counted against anything a person must do, and goes
/// through once the CRM takes requests again.
async fn a_429_holds_the_delivery_for_its_retry_after(app: TestApp) {
    let rig = rig(&app, Duration::from_secs(2)).await;
    let worker = rig.worker(&app.store);
    rig.crm.faults().update(|f| {
        f.rate_limit_rate = 1.0;
        f.retry_after_secs = 2;
    });
    let order = clean_order(75);
    let id = order_id(&order);
    Post::new("orders/create", &order).send(&app).await;
    let task =
        format!("SELECT id FROM sync_tasks WHERE store_order_id = {id} AND destination = 'crm'");
    let started = Instant::now();
    worker.run_once().await.unwrap();
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) FROM sync_attempts WHERE task_id = ({task}) AND outcome = 'transient' AND status = 429 AND request_id LIKE 'req_%'"
        ))
        .await,
        1
    );
    assert_eq!(
        app.text(&format!("SELECT state FROM sync_tasks WHERE id = ({task})"))
            .await,
        "retrying"
    );
    rig.crm.faults().reset();
    // The policy alone would retry within 300 ms; the CRM asked for 2 s.
    while started.elapsed() < Duration::from_millis(1_500) {
        worker.run_once().await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) FROM sync_attempts WHERE task_id = ({task})"
        ))
        .await,
        1,
        "nothing is sent before the Retry-After has passed"
    );
    drain(&worker, &app, Duration::from_secs(10)).await;
    assert_eq!(
        app.text(&format!("SELECT state FROM sync_tasks WHERE id = ({task})"))
            .await,
        "synced"
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM exceptions WHERE status = 'open'")
            .await,
        0,
        "a rate limit is the engine's to wait out, not a person's"
    );
    assert_eq!(rig.crm.ledger().check().extra_documents(), 0);
}

//! Reconciliation and backfill through the store's Admin API (the simulated store, over HTTP):
//! orders whose webhooks never came are found and synced, orders already known at the store's
//! state are left alone (a second pass writes nothing), scheduled passes are claimed by one
//! process at a time, and a pass that cannot read the store says so and loses its place.

use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use serde_json::{Value, json};
use syncdesk::connectors::ShopAdmin;
use syncdesk::engine::reconcile::{Reconciled, Reconciler, SETTLE, reconcile_since};

use crate::harness::TestApp;
use crate::sync::{clean_order, drain, rig};
use crate::webhooks::{Post, later, order_id};

on_both_backends! {
    a_pass_takes_in_missing_and_stale_orders_once_and_they_sync => a_pass_takes_in_missing_and_stale_orders_once_and_they_sync_sqlite, a_pass_takes_in_missing_and_stale_orders_once_and_they_sync_postgres;
    scheduled_passes_are_claimed_once_and_record_what_they_found => scheduled_passes_are_claimed_once_and_record_what_they_found_sqlite, scheduled_passes_are_claimed_once_and_record_what_they_found_postgres;
    a_pass_waits_out_the_store_s_call_limit_instead_of_starting_over => a_pass_waits_out_the_store_s_call_limit_instead_of_starting_over_sqlite, a_pass_waits_out_the_store_s_call_limit_instead_of_starting_over_postgres;
    a_scheduled_pass_that_stops_partway_keeps_how_far_it_read => a_scheduled_pass_that_stops_partway_keeps_how_far_it_read_sqlite, a_scheduled_pass_that_stops_partway_keeps_how_far_it_read_postgres;
}

fn admin(app: &TestApp) -> ShopAdmin {
    ShopAdmin::new(
        app.shop.base_url().clone(),
        app.shop.access_token(),
        Duration::from_secs(5),
    )
    .expect("Admin API client")
}

fn updated_at(order: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(order["updated_at"].as_str().expect("updated_at"))
        .expect("RFC 3339")
        .with_timezone(&Utc)
}

/// An order the store changed a few minutes ago.
fn recent_order(seed: u64) -> Value {
    let mut order = clean_order(seed);
    let now = (Utc::now() - TimeDelta::minutes(3)).to_rfc3339_opts(SecondsFormat::Secs, true);
    order["created_at"] = json!(now);
    order["updated_at"] = json!(now);
    order
}

async fn a_pass_takes_in_missing_and_stale_orders_once_and_they_sync(app: TestApp) {
    let rig = rig(&app, Duration::from_secs(5)).await;
    let worker = rig.worker(&app.store);
    let shop = admin(&app);
    // Known and current: its webhook came.
    let current = clean_order(801);
    // Known, but the store changed it since and that webhook never came.
    let stale = clean_order(802);
    // Never heard of.
    let missing = clean_order(803);
    for order in [&current, &stale] {
        app.shop.orders().put(order).expect("store has it");
        Post::new("orders/create", order).send(&app).await;
    }
    drain(&worker, &app, Duration::from_secs(10)).await;
    let mut cancelled = later(&stale, 30);
    cancelled["cancelled_at"] = cancelled["updated_at"].clone();
    cancelled["cancel_reason"] = json!("customer");
    app.shop.orders().put(&cancelled).expect("newer state");
    app.shop.orders().put(&missing).expect("store has it");

    let since = [&current, &stale, &missing]
        .into_iter()
        .map(updated_at)
        .min()
        .expect("orders")
        - TimeDelta::minutes(1);
    let found = reconcile_since(&app.store, &shop, since, SETTLE, None)
        .await
        .expect("pass");
    assert_eq!(
        found,
        Reconciled {
            checked: 3,
            missing: 1,
            behind: 1,
            newest: [&current, &cancelled, &missing]
                .into_iter()
                .map(updated_at)
                .max(),
        }
    );
    drain(&worker, &app, Duration::from_secs(10)).await;
    for (order, version) in [(&current, 1), (&stale, 2), (&missing, 1)] {
        let id = order_id(order);
        assert_eq!(
            app.count(&format!(
                "SELECT COUNT(*) FROM sync_tasks WHERE store_order_id = {id} AND state = 'synced' AND synced_version = {version}"
            ))
            .await,
            2,
            "order {id} synced at version {version} at both destinations"
        );
    }
    let document = rig
        .erp_api()
        .find_sales_order(&order_id(&stale).to_string())
        .await
        .expect("ERP answers")
        .expect("document");
    assert_eq!(document.status, syncdesk::connectors::ErpStatus::Cancelled);

    // A second pass finds everything known: nothing is recorded, nothing is sent again.
    let events = app.count("SELECT COUNT(*) FROM webhook_events").await;
    let attempts = app.count("SELECT COUNT(*) FROM sync_attempts").await;
    let again = reconcile_since(&app.store, &shop, since, SETTLE, None)
        .await
        .expect("second pass");
    assert_eq!((again.checked, again.missing, again.behind), (3, 0, 0));
    drain(&worker, &app, Duration::from_secs(5)).await;
    assert_eq!(
        app.count("SELECT COUNT(*) FROM webhook_events").await,
        events
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM sync_attempts").await,
        attempts
    );

    // A change from a moment ago is left to its webhook (usually on its way).
    let mut just_now = clean_order(804);
    let now = Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true);
    just_now["created_at"] = json!(now);
    just_now["updated_at"] = json!(now);
    app.shop.orders().put(&just_now).expect("store has it");
    let settling = reconcile_since(&app.store, &shop, since, SETTLE, None)
        .await
        .expect("third pass");
    assert_eq!(
        (settling.checked, settling.missing, settling.behind),
        (3, 0, 0)
    );
    assert!(
        settling.newest < Some(updated_at(&just_now)),
        "an order left to its webhook does not carry the next pass past it"
    );
    assert_eq!(settling.newest, again.newest);

    // A late webhook for the state the pass took in is a duplicate, not a second version.
    Post::new("orders/updated", &missing).send(&app).await;
    assert_eq!(
        app.count(&format!(
            "SELECT CAST(version AS BIGINT) FROM orders WHERE store_order_id = {}",
            order_id(&missing)
        ))
        .await,
        1
    );
}

async fn scheduled_passes_are_claimed_once_and_record_what_they_found(app: TestApp) {
    let rig = rig(&app, Duration::from_secs(5)).await;
    let worker = rig.worker(&app.store);
    let now = Utc::now();
    let every = TimeDelta::minutes(10);

    // Claims: the first reads from the look-back, a second before the period is refused.
    let first = app
        .store
        .claim_reconciliation(now, every, now - TimeDelta::days(1))
        .await
        .expect("claim");
    assert_eq!(
        first.map(|w| w.timestamp()),
        Some((now - TimeDelta::days(1)).timestamp())
    );
    assert_eq!(
        app.store
            .claim_reconciliation(now + TimeDelta::minutes(1), every, now)
            .await
            .expect("claim"),
        None,
        "not due yet"
    );
    app.store
        .finish_reconciliation(now, Err("The store's Admin API could not be read: refused"))
        .await
        .expect("finish");
    let status = app
        .store
        .reconciliation_status()
        .await
        .expect("status")
        .expect("a pass ran");
    assert_eq!(status.passes, 1);
    assert!(status.last_error.is_some());
    assert_eq!(
        status.watermark.timestamp(),
        (now - TimeDelta::days(1)).timestamp(),
        "a failed pass keeps its place"
    );
    let _ = app
        .count("UPDATE reconciliation SET next_at = watermark RETURNING CAST(0 AS BIGINT)")
        .await;

    // The schedule runs (its pass is due), finds the order whose webhook never came, and the
    // workers sync it; the metrics show what it found.
    let unheard = recent_order(811);
    app.shop.orders().put(&unheard).expect("store has it");
    let reconciler = Reconciler::spawn(
        &app.store,
        admin(&app),
        Duration::from_millis(200),
        syncdesk::engine::wake::Wake::local(),
    );
    let id = order_id(&unheard);
    let started = Instant::now();
    while app
        .count(&format!(
            "SELECT COUNT(*) FROM orders WHERE store_order_id = {id}"
        ))
        .await
        == 0
    {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the pass never took the order in"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut status = app
        .store
        .reconciliation_status()
        .await
        .expect("status")
        .expect("row");
    while status.passes < 2 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the pass never finished"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
        status = app
            .store
            .reconciliation_status()
            .await
            .expect("status")
            .expect("row");
    }
    reconciler.shutdown().await;
    assert_eq!(status.last_error, None);
    assert_eq!((status.last_missing, status.last_behind), (1, 0));
    assert!(
        status.watermark >= updated_at(&unheard) - TimeDelta::minutes(5),
        "the next pass starts near the newest change it saw"
    );
    drain(&worker, &app, Duration::from_secs(10)).await;
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) FROM sync_tasks WHERE store_order_id = {id} AND state = 'synced'"
        ))
        .await,
        2
    );
    let metrics = reqwest::get(format!("{}/metrics", app.base))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("syncdesk_reconciliation_delta{kind=\"missing\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("syncdesk_reconciliation_failing 0"),
        "{metrics}"
    );
}

/// A store whose call limit is spent answers 429 with `Retry-After`, as Shopify does (a backfill
/// over thousands of known orders reads pages faster than a standard shop's 2 calls a second):
/// the pass waits and asks again for that page, instead of failing and starting over from its
/// first page next time.
async fn a_pass_waits_out_the_store_s_call_limit_instead_of_starting_over(app: TestApp) {
    use syncdesk::simulate::store::{CallLimit, StoreSimConfig, spawn_store};

    let shop_sim = spawn_store(StoreSimConfig {
        call_limit: Some(CallLimit {
            bucket_size: 1,
            leak_per_second: 0.5,
        }),
        ..StoreSimConfig::default()
    })
    .await
    .expect("a store with a small call limit");
    let page_size = syncdesk::connectors::shop::PAGE_SIZE;
    let orders: Vec<Value> = (0..=page_size as u64)
        .map(|n| clean_order(5_000 + n))
        .collect();
    for order in &orders {
        shop_sim.orders().put(order).expect("store has it");
    }
    let shop = ShopAdmin::new(
        shop_sim.base_url().clone(),
        shop_sim.access_token(),
        Duration::from_secs(5),
    )
    .expect("Admin API client");
    let since = orders.iter().map(updated_at).min().expect("orders") - TimeDelta::minutes(1);
    let started = Instant::now();
    let found = reconcile_since(&app.store, &shop, since, TimeDelta::zero(), None)
        .await
        .expect("the pass waits for the store and finishes");
    assert_eq!(
        (found.checked, found.missing, found.behind),
        (orders.len() as i64, orders.len() as i64, 0),
        "two pages, the second after a 429"
    );
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "it waited for the store's Retry-After ({:?})",
        started.elapsed()
    );
}

/// A scheduled pass the store stops partway (a page it refuses for good) keeps how far it read:
/// the next one goes on from the last page it took in (less the overlap), instead of reading
/// every page again from the start, for ever if a long catch-up keeps failing late.
async fn a_scheduled_pass_that_stops_partway_keeps_how_far_it_read(app: TestApp) {
    use syncdesk::simulate::store::{StoreSimConfig, build_store};

    let shop = build_store(StoreSimConfig::default());
    let page_size = syncdesk::connectors::shop::PAGE_SIZE;
    let first_change = Utc::now() - TimeDelta::hours(2);
    let orders: Vec<Value> = (0..=page_size as u64)
        .map(|n| {
            let mut order = clean_order(9_000 + n);
            let at = (first_change + TimeDelta::seconds(n as i64))
                .to_rfc3339_opts(SecondsFormat::Secs, true);
            order["created_at"] = json!(at);
            order["updated_at"] = json!(at);
            order
        })
        .collect();
    for order in &orders {
        shop.orders.put(order).expect("the store has it");
    }
    // The first page is served; every page after it is refused.
    let url = crate::harness::serve_refusing_after_the_first(shop.router).await;
    let admin = ShopAdmin::new(
        url::Url::parse(&url).expect("url"),
        &shop.access_token,
        Duration::from_secs(5),
    )
    .expect("Admin API client");

    let reconciler = Reconciler::spawn(
        &app.store,
        admin,
        Duration::from_secs(3600),
        syncdesk::engine::wake::Wake::local(),
    );
    let started = Instant::now();
    let status = loop {
        let status = app.store.reconciliation_status().await.expect("status");
        if let Some(status) = status.filter(|s| s.last_error.is_some()) {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the pass never stopped"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    reconciler.shutdown().await;
    let last_of_first_page = updated_at(&orders[page_size - 1]);
    assert_eq!(
        status.watermark,
        last_of_first_page - TimeDelta::minutes(5),
        "the next pass goes on from the first page's last change, less the overlap"
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM orders").await,
        page_size as i64,
        "what the first page listed was taken in"
    );
}

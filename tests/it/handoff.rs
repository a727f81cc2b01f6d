//! The handoff (`store::handoff`): a new order's tasks are leased to this process's workers in
//! the write that records the order (PostgreSQL: in the call that writes it, alone or with
//! others; SQLite: in its own write, in the writer's group commit), and start without a claim.
//! Tasks handed off and never started are put back to pending on a clean stop, and rescued by
//! the claims when the process dies holding them.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use syncdesk::audit::Actor;
use syncdesk::engine::ingest::accept;
use syncdesk::simulate::ledger::DocumentKind;
use syncdesk::store::{AttemptRecord, IngestOutcome, NewException, Store};

use crate::harness::TestApp;
use crate::sync::{UNMAPPED, clean_order, drain, rig};
use crate::webhooks::order_id;
use crate::webhooks_together::{delivery_of, hold_writes};

on_both_backends! {
    new_orders_start_without_a_claim => new_orders_start_without_a_claim_sqlite, new_orders_start_without_a_claim_postgres;
    handed_off_tasks_never_started_are_released_or_rescued => handed_off_tasks_never_started_are_released_or_rescued_sqlite, handed_off_tasks_never_started_are_released_or_rescued_postgres;
    a_destination_that_refuses_our_credentials_gets_none_of_the_queued_tasks => a_destination_that_refuses_our_credentials_gets_none_of_the_queued_tasks_sqlite, a_destination_that_refuses_our_credentials_gets_none_of_the_queued_tasks_postgres;
    tasks_leased_as_the_workers_stop_go_back_to_pending => tasks_leased_as_the_workers_stop_go_back_to_pending_sqlite, tasks_leased_as_the_workers_stop_go_back_to_pending_postgres;
    with_no_room_left_new_orders_wait_for_a_claim => with_no_room_left_new_orders_wait_for_a_claim_sqlite, with_no_room_left_new_orders_wait_for_a_claim_postgres;
    a_sender_that_hangs_up_loses_none_of_the_tasks => a_sender_that_hangs_up_loses_none_of_the_tasks_sqlite, a_sender_that_hangs_up_loses_none_of_the_tasks_postgres;
}

/// Ingests `orders` as new orders written together: `pilot` waits on held writes, alone, and
/// the others queue behind it and go in one call (PostgreSQL) or one group commit (SQLite). Returns each one's outcome, the pilot's first.
async fn ingest_together(app: &TestApp, pilot: &Value, orders: &[Value]) -> Vec<IngestOutcome> {
    assert!(orders.len() >= 10);
    let held = hold_writes(app).await;
    let pilot = {
        let store = app.store.clone();
        let delivery = delivery_of(pilot);
        tokio::spawn(async move { accept(&store, delivery).await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut answers = Vec::new();
    for order in orders {
        let (store, delivery) = (app.store.clone(), delivery_of(order));
        answers.push(tokio::spawn(async move { accept(&store, delivery).await }));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    held.release().await;
    let mut outcomes = vec![pilot.await.expect("task").expect("recorded")];
    for answer in answers {
        outcomes.push(answer.await.expect("task").expect("recorded"));
    }
    outcomes
}

fn ids_of(orders: &[Value]) -> String {
    orders
        .iter()
        .map(|o| order_id(o).to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Waits until `sql` counts `want`.
async fn until(app: &TestApp, sql: &str, want: i64, limit: Duration) {
    let started = Instant::now();
    loop {
        let got = app.count(sql).await;
        if got == want {
            return;
        }
        assert!(
            started.elapsed() < limit,
            "{sql}: {got}, not {want}, after {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn new_orders_start_without_a_claim(app: TestApp) {
    let rig = rig(&app, Duration::from_secs(10)).await;
    app.store.start_handoff(Duration::from_secs(30), 64);
    // A first order alone, then eleven together with one whose SKU has no item code (its ERP
    // task is handed off too, and blocks), then one more alone.
    let pilot = clean_order(1300);
    let mut together: Vec<Value> = (1301..1312).map(clean_order).collect();
    let mut unmapped = clean_order(1312);
    unmapped["line_items"][0]["sku"] = json!(UNMAPPED);
    together.push(unmapped.clone());
    let alone = clean_order(1313);

    let mut outcomes = ingest_together(&app, &pilot, &together).await;
    outcomes.push(
        accept(&app.store, delivery_of(&alone))
            .await
            .expect("recorded"),
    );
    for outcome in &outcomes {
        match outcome {
            IngestOutcome::Applied {
                version: 1,
                handed_off,
                ..
            } => assert!(*handed_off, "{outcome:?}"),
            other => panic!("expected applied, got {other:?}"),
        }
    }
    let mut orders = vec![pilot];
    orders.extend(together);
    orders.push(alone.clone());
    let ids = ids_of(&orders);
    // Written as a claim leaves a task: running under a lease, its first attempt and claim.
    let leased = format!(
        "SELECT COUNT(*) FROM sync_tasks WHERE store_order_id IN ({ids}) AND state = 'running'
         AND attempt = 1 AND claims = 1 AND lease_token IS NOT NULL AND lease_expires_at > CURRENT_TIMESTAMP"
    );
    assert_eq!(app.count(&leased).await, 28);
    let pending = format!(
        "SELECT COUNT(*) FROM sync_tasks WHERE store_order_id IN ({ids}) AND state = 'pending'
         AND attempt = 0 AND claims = 0 AND lease_token IS NULL"
    );
    assert_eq!(app.count(&pending).await, 0);

    // A worker takes them and delivers each once.
    let worker = rig.worker(&app.store);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let running = tokio::spawn(worker.run(stopped));
    until(
        &app,
        &format!(
            "SELECT COUNT(*) FROM sync_tasks WHERE store_order_id IN ({ids}) AND claims = 1
             AND (state = 'synced' OR (state = 'blocked' AND store_order_id = {} AND destination = 'erp'))",
            order_id(&unmapped)
        ),
        28,
        Duration::from_secs(20),
    )
    .await;
    stop.send(true).expect("stop");
    running.await.expect("worker");
    let (_, claimed) = app.store.claim_counts();
    assert_eq!(claimed, 0, "tasks claimed");
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) FROM exceptions WHERE store_order_id = {} AND status = 'open'
             AND fingerprint = 'missing_sku:erp:{UNMAPPED}'",
            order_id(&unmapped)
        ))
        .await,
        1,
        "the unmapped SKU is named"
    );
    let (crm, erp) = (rig.crm.ledger().check(), rig.erp.ledger().check());
    for order in orders.iter().filter(|o| **o != unmapped) {
        let id = order_id(order).to_string();
        assert_eq!(crm.count(DocumentKind::Deal, &id), 1, "order {id}'s deal");
        assert_eq!(erp.count(DocumentKind::SalesOrder, &id), 1, "order {id}");
    }
    assert_eq!(crm.extra_documents() + erp.extra_documents(), 0);
    // The sales orders carry what the webhooks said, with the item codes the ingest read (alone
    // and together).
    for order in [&orders[0], &orders[1]] {
        let document = rig
            .erp_api()
            .find_sales_order(&order_id(order).to_string())
            .await
            .expect("find")
            .expect("a sales order");
        let lines = &document.order.lines;
        assert_eq!(
            lines.len(),
            order["line_items"].as_array().map_or(0, Vec::len)
        );
        assert!(lines.iter().all(|line| line.item_code == "ERP-TEE-BLK-M"));
        assert_eq!(
            Some(document.order.currency.as_str()),
            order["currency"].as_str()
        );
    }
    app.assert_metric_counters_match_the_rows().await;
    app.assert_every_row_has_its_parent().await;
}

async fn handed_off_tasks_never_started_are_released_or_rescued(app: TestApp) {
    let rig = rig(&app, Duration::from_secs(10)).await;

    // A clean stop with tasks still queued puts them back to pending. The CRM is paused: its
    // tasks are not handed off, as a claim would not take them.
    app.execute("UPDATE destinations SET paused = TRUE WHERE name = 'crm'")
        .await;
    app.store.start_handoff(Duration::from_secs(30), 64);
    let stopped: Vec<Value> = (1399..1412).map(clean_order).collect();
    ingest_together(&app, &stopped[0], &stopped[1..]).await;
    let ids = ids_of(&stopped);
    let state_of = |destination: &str, state: &str| {
        format!(
            "SELECT COUNT(*) FROM sync_tasks WHERE store_order_id IN ({ids})
             AND destination = '{destination}' AND state = '{state}'"
        )
    };
    assert_eq!(app.count(&state_of("crm", "pending")).await, 13);
    assert_eq!(app.count(&state_of("erp", "running")).await, 13);
    let released = app.store.stop_handoff().await.expect("released");
    assert_eq!(released, 13);
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) FROM sync_tasks WHERE store_order_id IN ({ids}) AND state = 'pending'
             AND attempt = 0 AND claims = 0 AND lease_token IS NULL AND lease_expires_at IS NULL"
        ))
        .await,
        26
    );
    app.execute("UPDATE destinations SET paused = FALSE WHERE name = 'crm'")
        .await;

    // This process dies with tasks handed off and never started (nothing takes them from its
    // queue). Another process's worker rescues them once their lease has run out.
    app.store.start_handoff(Duration::from_secs(30), 64);
    let lost: Vec<Value> = (1419..1432).map(clean_order).collect();
    ingest_together(&app, &lost[0], &lost[1..]).await;
    let lost_ids = ids_of(&lost);
    // What it held: each task as a claim would have answered it, the ERP's with the item codes
    // of the order's SKUs.
    let held = app.store.take_handed_off(100);
    assert_eq!(held.len(), 26);
    for mut task in held {
        let codes = task.take_item_codes();
        match task.destination.as_str() {
            "erp" => assert_eq!(
                codes,
                Some([("TEE-BLK-M".to_string(), "ERP-TEE-BLK-M".to_string())].into()),
                "{task:?}"
            ),
            _ => assert_eq!(codes, None),
        }
        assert_eq!((task.attempt, task.claims, task.target_version), (1, 1, 1));
        let (order, version, edited) = task.take_snapshot().expect("the order");
        assert_eq!(
            (order.store_order_id, version, edited),
            (task.store_order_id, 1, false)
        );
    }
    let other = Store::connect(&app.database_url())
        .await
        .expect("another process");
    let worker = rig.worker(&other);
    assert_eq!(
        worker.run_once().await.expect("claim"),
        26,
        "the released tasks are claimed; the lost ones' leases still hold"
    );
    // Their leases run out.
    app.execute(&format!(
        "UPDATE sync_tasks SET lease_expires_at = '2000-01-01T00:00:00+00:00'
         WHERE store_order_id IN ({lost_ids}) AND state = 'running'"
    ))
    .await;
    drain(&worker, &app, Duration::from_secs(20)).await;
    let synced_with = |ids: &str, claims: i64| {
        format!(
            "SELECT COUNT(*) FROM sync_tasks WHERE store_order_id IN ({ids}) AND state = 'synced'
             AND claims = {claims}"
        )
    };
    assert_eq!(app.count(&synced_with(&ids, 1)).await, 26);
    // A rescue is a task's second claim, so its ERP delivery looks for the document first.
    assert_eq!(app.count(&synced_with(&lost_ids, 2)).await, 26);
    let (crm, erp) = (rig.crm.ledger().check(), rig.erp.ledger().check());
    for order in stopped.iter().chain(&lost) {
        let id = order_id(order).to_string();
        assert_eq!(crm.count(DocumentKind::Deal, &id), 1, "order {id}'s deal");
        assert_eq!(erp.count(DocumentKind::SalesOrder, &id), 1, "order {id}");
    }
    assert_eq!(crm.extra_documents() + erp.extra_documents(), 0);
    app.assert_metric_counters_match_the_rows().await;
    app.assert_every_row_has_its_parent().await;
}

async fn a_destination_that_refuses_our_credentials_gets_none_of_the_queued_tasks(app: TestApp) {
    app.store.start_handoff(Duration::from_secs(30), 64);
    let orders: Vec<Value> = (1500..1513).map(clean_order).collect();
    ingest_together(&app, &orders[0], &orders[1..]).await;
    let ids = ids_of(&orders);
    // A worker's ERP delivery is refused for its credentials.
    let mut started = app.store.take_handed_off(2);
    let erp = started
        .iter()
        .position(|t| t.destination == "erp")
        .map(|at| started.swap_remove(at))
        .expect("the first order's ERP task");
    let refused = AttemptRecord {
        version: 1,
        started_at: chrono::Utc::now(),
        duration_ms: 3,
        outcome: "auth",
        status: Some(401),
        message: Some("invalid token".into()),
        request_id: None,
    };
    let exception = NewException {
        code: "credentials_rejected".into(),
        kind: "needs_action",
        fingerprint: "auth:erp".into(),
        message: "The ERP rejected SyncDesk's credentials.".into(),
        action: "Renew the ERP token".into(),
        fields: Vec::new(),
    };
    assert!(
        app.store
            .pause_destination(&erp, &refused, &exception, "0123456789abcdef")
            .await
            .expect("paused")
    );
    // Every ERP task of these orders waits, pending, for the credentials; none is left running
    // in this process's queue to go out with the ones the ERP refuses. The CRM's are untouched.
    let state_of = |destination: &str, state: &str| {
        format!(
            "SELECT COUNT(*) FROM sync_tasks WHERE store_order_id IN ({ids})
             AND destination = '{destination}' AND state = '{state}'"
        )
    };
    assert_eq!(app.count(&state_of("erp", "pending")).await, 13);
    assert_eq!(app.count(&state_of("crm", "running")).await, 13);
    let queued = app.store.take_handed_off(100);
    assert_eq!(queued.len(), 12);
    assert!(queued.iter().all(|t| t.destination == "crm"), "{queued:?}");

    // While it is paused, a new order's ERP task waits pending; once the credentials are
    // renewed and the ERP resumed, a new order's tasks are both handed to the workers again.
    let paused_order = clean_order(1520);
    accept(&app.store, delivery_of(&paused_order))
        .await
        .expect("recorded");
    let handed: Vec<_> = app.store.take_handed_off(100);
    assert_eq!(
        handed
            .iter()
            .map(|t| t.destination.as_str())
            .collect::<Vec<_>>(),
        ["crm"]
    );
    assert!(
        app.store
            .resume_destination("erp", &Actor::System)
            .await
            .expect("resumed")
    );
    let resumed_order = clean_order(1521);
    accept(&app.store, delivery_of(&resumed_order))
        .await
        .expect("recorded");
    let mut handed: Vec<String> = app
        .store
        .take_handed_off(100)
        .into_iter()
        .map(|t| t.destination)
        .collect();
    handed.sort();
    assert_eq!(handed, ["crm", "erp"]);
}

async fn tasks_leased_as_the_workers_stop_go_back_to_pending(app: TestApp) {
    app.store.start_handoff(Duration::from_secs(30), 64);
    // The write takes its leases, then waits for the database while this process's workers
    // stop: nothing is left running under a lease no worker will take.
    let held = hold_writes(&app).await;
    let order = clean_order(1600);
    let written = {
        let (store, delivery) = (app.store.clone(), delivery_of(&order));
        tokio::spawn(async move { accept(&store, delivery).await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(app.store.stop_handoff().await.expect("stopped"), 0);
    held.release().await;
    let outcome = written.await.expect("task").expect("recorded");
    assert!(
        matches!(outcome, IngestOutcome::Applied { version: 1, .. }),
        "{outcome:?}"
    );
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) FROM sync_tasks WHERE store_order_id = {} AND state = 'pending'
             AND attempt = 0 AND claims = 0 AND lease_token IS NULL AND lease_expires_at IS NULL",
            order_id(&order)
        ))
        .await,
        2
    );
    assert!(app.store.take_handed_off(10).is_empty());
}

async fn with_no_room_left_new_orders_wait_for_a_claim(app: TestApp) {
    // Room for two orders' tasks: the rest are written pending, for a claim.
    app.store.start_handoff(Duration::from_secs(30), 4);
    let orders: Vec<Value> = (1700..1705).map(clean_order).collect();
    let mut handed_off = 0;
    for order in &orders {
        match accept(&app.store, delivery_of(order))
            .await
            .expect("recorded")
        {
            IngestOutcome::Applied {
                version: 1,
                handed_off: true,
                ..
            } => handed_off += 1,
            IngestOutcome::Applied {
                version: 1,
                handed_off: false,
                ..
            } => {}
            other => panic!("expected applied, got {other:?}"),
        }
    }
    assert_eq!(handed_off, 2);
    let ids = ids_of(&orders);
    let count = |state: &str| {
        format!(
            "SELECT COUNT(*) FROM sync_tasks WHERE store_order_id IN ({ids}) AND state = '{state}'"
        )
    };
    assert_eq!(app.count(&count("running")).await, 4);
    assert_eq!(app.count(&count("pending")).await, 6);
    // A worker that takes the queue makes room again.
    assert_eq!(app.store.take_handed_off(10).len(), 4);
    let more = clean_order(1705);
    let outcome = accept(&app.store, delivery_of(&more))
        .await
        .expect("recorded");
    assert!(
        matches!(
            outcome,
            IngestOutcome::Applied {
                handed_off: true,
                ..
            }
        ),
        "{outcome:?}"
    );
}

async fn a_sender_that_hangs_up_loses_none_of_the_tasks(app: TestApp) {
    let rig = rig(&app, Duration::from_secs(10)).await;
    app.store.start_handoff(Duration::from_secs(30), 64);
    // The webhook's request is dropped while its write waits for the database (a sender that
    // hangs up): the write still commits, its tasks leased, and they are queued for the
    // workers whatever became of the request (PostgreSQL's batcher writes and queues them;
    // SQLite's write finishes on a task of its own).
    let held = hold_writes(&app).await;
    let order = clean_order(1800);
    let id = order_id(&order);
    let request = {
        let (store, delivery) = (app.store.clone(), delivery_of(&order));
        tokio::spawn(async move { accept(&store, delivery).await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    request.abort();
    assert!(request.await.is_err(), "the request was dropped");
    held.release().await;
    let leased = format!(
        "SELECT COUNT(*) FROM sync_tasks WHERE store_order_id = {id} AND state = 'running' AND claims = 1"
    );
    until(&app, &leased, 2, Duration::from_secs(10)).await;
    let started = Instant::now();
    let mut queued = Vec::new();
    while queued.len() < 2 {
        queued.extend(app.store.take_handed_off(10));
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "queued {queued:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(queued.iter().all(|t| t.store_order_id == id));
    // Whoever took them died: once the lease runs out, each document is delivered once.
    app.execute(&format!(
        "UPDATE sync_tasks SET lease_expires_at = '2000-01-01T00:00:00+00:00' WHERE store_order_id = {id}"
    ))
    .await;
    let worker = rig.worker(&app.store);
    drain(&worker, &app, Duration::from_secs(20)).await;
    let (crm, erp) = (rig.crm.ledger().check(), rig.erp.ledger().check());
    assert_eq!(crm.count(DocumentKind::Deal, &id.to_string()), 1);
    assert_eq!(erp.count(DocumentKind::SalesOrder, &id.to_string()), 1);
    assert_eq!(crm.extra_documents() + erp.extra_documents(), 0);
}

//! When a worker claims: under load it waits for half its delivery slots to be free, so one
//! claim takes many tasks (`engine::worker::claim_now`), but never for long: deliveries held up
//! by a slow destination must not leave the free slots idle while other work waits.

use std::time::{Duration, Instant};

use crate::harness::TestApp;
use crate::sync::{clean_order, rig};
use crate::webhooks::{Post, order_id};

on_both_backends! {
    a_slow_destination_does_not_leave_the_free_slots_idle => a_slow_destination_does_not_leave_the_free_slots_idle_sqlite, a_slow_destination_does_not_leave_the_free_slots_idle_postgres;
}

/// Waits until `sql` counts `want`, for at most `limit`; returns how long it took.
async fn until(app: &TestApp, sql: &str, want: i64, limit: Duration) -> Duration {
    let started = Instant::now();
    while app.count(sql).await != want {
        assert!(
            started.elapsed() < limit,
            "{sql} did not reach {want} in {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    started.elapsed()
}

async fn a_slow_destination_does_not_leave_the_free_slots_idle(app: TestApp) {
    let rig = rig(&app, Duration::from_secs(20)).await;
    // Every ERP call takes 3 s; the CRM answers at once.
    rig.erp.faults().update(|f| f.latency_ms = 3_000);
    let worker = rig.worker_with(&app.store, |c| c.concurrency = 6);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let running = tokio::spawn(worker.run(stopped));

    // Four orders: their CRM deliveries finish, their four ERP deliveries hold four of the six
    // slots — two are free, fewer than half.
    for seed in 1200..1204 {
        Post::new("orders/create", &clean_order(seed))
            .send(&app)
            .await;
    }
    // (Counted together: a claim may take an order's CRM task a moment before its ERP task.)
    until(
        &app,
        "SELECT COUNT(*) FROM sync_tasks
         WHERE (destination = 'crm' AND state = 'synced') OR (destination = 'erp' AND state = 'running')",
        8,
        Duration::from_secs(5),
    )
    .await;

    // A fifth order reaches the CRM in a moment, not after the ERP's 3 s.
    let order = clean_order(1210);
    Post::new("orders/create", &order).send(&app).await;
    let took = until(
        &app,
        &format!(
            "SELECT COUNT(*) FROM sync_tasks WHERE store_order_id = {} AND destination = 'crm' AND state = 'synced'",
            order_id(&order)
        ),
        1,
        Duration::from_secs(10),
    )
    .await;
    assert!(
        took < Duration::from_millis(1_500),
        "the CRM waited {took:?} for the ERP"
    );

    let _ = stop.send(true);
    running.await.expect("worker stops");
}

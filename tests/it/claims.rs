//! When a worker claims: under load it waits for half its delivery slots to be free, so one
//! claim takes many tasks (`engine::worker::claim_now`), but never for long: deliveries held up
//! by a slow destination must not leave the free slots idle while other work waits. An idle
//! worker polls less and less often, and is woken when work is armed — on PostgreSQL also by
//! another process (`engine::wake`).

use std::time::{Duration, Instant};

use syncdesk::engine::Workers;
use syncdesk::engine::wake::Wake;
use syncdesk::engine::worker::WorkerConfig;
use syncdesk::store::Store;

use crate::harness::{Backend, TestApp};
use crate::sync::{clean_order, rig};
use crate::webhooks::{Post, order_id};

on_both_backends! {
    a_slow_destination_does_not_leave_the_free_slots_idle => a_slow_destination_does_not_leave_the_free_slots_idle_sqlite, a_slow_destination_does_not_leave_the_free_slots_idle_postgres;
    an_idle_worker_polls_less_and_less_often => an_idle_worker_polls_less_and_less_often_sqlite, an_idle_worker_polls_less_and_less_often_postgres;
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

/// Counts `order`'s synced tasks (those that also match `and`, say "AND destination = 'crm'").
fn synced_tasks(order: &serde_json::Value, and: &str) -> String {
    format!(
        "SELECT COUNT(*) FROM sync_tasks WHERE store_order_id = {} AND state = 'synced' {and}",
        order_id(order)
    )
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
        &synced_tasks(&order, "AND destination = 'crm'"),
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

async fn an_idle_worker_polls_less_and_less_often(app: TestApp) {
    let rig = rig(&app, Duration::from_secs(5)).await;
    // A worker process of its own, so that its claims are counted apart.
    let store = Store::connect_with(&app.database_url(), 3)
        .await
        .expect("own pool");
    let config = WorkerConfig::default();
    let workers = Workers::spawn(
        &store,
        rig.destinations(),
        config.clone(),
        Wake::for_store(&store),
        1,
    );
    // Polled every 100 ms, 3 s idle made ~30 claims; now 100, 200, 400, 800 ms, then every 1 s.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (idle_claims, _) = store.claim_counts();
    assert!(
        (3..=7).contains(&idle_claims),
        "{idle_claims} claims in 3 s of an idle queue"
    );
    // A task coming due is still found within the longest wait.
    let order = clean_order(1220);
    syncdesk::engine::ingest::accept(&app.store, crate::webhooks_together::delivery_of(&order))
        .await
        .expect("recorded");
    let took = until(&app, &synced_tasks(&order, ""), 2, Duration::from_secs(10)).await;
    assert!(
        took < config.idle_poll_max + Duration::from_millis(1_500),
        "found after {took:?}"
    );
    workers.shutdown().await;
    store.close().await;
}

/// A web process with no workers, and a worker process that would not poll again for a minute:
/// the order the web process takes in reaches the worker at once, by PostgreSQL's `NOTIFY`.
#[tokio::test]
async fn work_armed_in_one_process_wakes_the_idle_workers_of_another_postgres() {
    let app = TestApp::start(Backend::Postgres).await;
    let rig = rig(&app, Duration::from_secs(5)).await;
    let store = Store::connect_with(&app.database_url(), 3)
        .await
        .expect("own pool");
    let minute = Duration::from_secs(60);
    let workers = Workers::spawn(
        &store,
        rig.destinations(),
        WorkerConfig {
            idle_poll: minute,
            idle_poll_max: minute,
            ..WorkerConfig::default()
        },
        Wake::for_store(&store),
        2,
    );
    // Both workers have claimed, found nothing, and wait.
    let started = Instant::now();
    while store.claim_counts().0 < 2 {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the workers never claimed"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    for seed in [1230, 1231] {
        let order = clean_order(seed);
        Post::new("orders/create", &order).send(&app).await;
        let took = until(&app, &synced_tasks(&order, ""), 2, Duration::from_secs(10)).await;
        assert!(
            took < Duration::from_secs(3),
            "order {seed} waited {took:?}"
        );
    }
    workers.shutdown().await;
    store.close().await;
}

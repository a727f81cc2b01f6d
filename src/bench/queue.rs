//! `syncdesk bench --queue`: the operators' screens at scale. A fresh database is filled, inside
//! the database itself, with `orders` orders (two sync tasks each, one SKU each) of which
//! `exceptions` have an open ERP exception spread over causes the way real queues look (a few
//! big SKU groups, a long tail); then the store calls behind each screen are timed, each many
//! times, and their P50/P95 printed: the grouped queue, the first page of the list, a group
//! expanded, the orders list, an order found by number, by email and by SKU, a bulk retry's
//! dry-run count, and what a `/metrics` scrape reads (each order also has its webhook, and each
//! task one attempt).

use std::time::Instant;

use super::{discard, fresh_database, percentile};
use crate::audit::Actor;
use crate::store::{Assignee, Db, ExceptionFilter, ExceptionScope, Store, TriageAction};

/// What to seed and how often to time each call.
#[derive(Clone, Debug)]
pub struct QueueBenchOptions {
    /// A PostgreSQL server URL, or `None` for SQLite.
    pub postgres: Option<String>,
    /// Orders in the database.
    pub orders: i64,
    /// Open exceptions among them.
    pub exceptions: i64,
    /// Timed runs of each call.
    pub samples: usize,
}

/// Causes, all `missing_sku_mapping` at the ERP: the even orders spread over 10 SKUs
/// (`HOT-0` … `HOT-18`, 5,000 exceptions each at 100,000), the odd ones over 1,000 SKUs (50 each).
fn seed_sql(postgres: bool, orders: i64, exceptions: i64) -> Vec<String> {
    let series = if postgres {
        format!("SELECT i FROM generate_series(1, {orders}) AS g(i)")
    } else {
        format!(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {orders}) SELECT i FROM n"
        )
    };
    // The i-th order changed (orders - i) seconds ago.
    let at = |expr: &str| {
        if postgres {
            format!("(TIMESTAMPTZ '2026-11-01 00:00:00+00' + ({expr}) * INTERVAL '1 second')")
        } else {
            format!(
                "strftime('%Y-%m-%dT%H:%M:%S+00:00', '2026-11-01', '+' || ({expr}) || ' seconds')"
            )
        }
    };
    let (data, fields) = if postgres {
        ("'{}'::jsonb", "'[]'::jsonb")
    } else {
        ("'{}'", "'[]'")
    };
    let t = at("i");
    let t0 = at("0");
    let (true_, false_) = if postgres {
        ("TRUE", "FALSE")
    } else {
        ("1", "0")
    };
    let body = if postgres {
        "'\\x7b7d'::bytea"
    } else {
        "X'7b7d'"
    };
    let sku = "CASE WHEN i % 2 = 0 THEN 'HOT-' || (i % 20) ELSE 'SKU-' || (i % 2000) END";
    vec![
        format!(
            "INSERT INTO orders (store_order_id, name, store_updated_at, version, email, lifecycle, currency, total, data, first_seen_at, updated_at)
             SELECT i, '#' || (100000 + i), {t}, 1, 'customer' || (i % 250000) || '@example.com', 'paid', 'USD', '54.00', {data}, {t}, {t}
             FROM ({series}) s"
        ),
        format!(
            "INSERT INTO order_skus (store_order_id, sku) SELECT i, {sku} FROM ({series}) s"
        ),
        format!(
            "INSERT INTO sync_tasks (store_order_id, destination, state, target_version, synced_version, attempt, scheduled_at, armed_at, updated_at)
             SELECT i, 'crm', 'synced', 1, 1, 0, {t}, {t}, {t} FROM ({series}) s"
        ),
        format!(
            "INSERT INTO sync_tasks (store_order_id, destination, state, target_version, synced_version, attempt, scheduled_at, armed_at, blocked_on, updated_at)
             SELECT i, 'erp', CASE WHEN i <= {exceptions} THEN 'blocked' ELSE 'synced' END, 1,
                    CASE WHEN i <= {exceptions} THEN NULL ELSE 1 END, 0, {t}, {t},
                    CASE WHEN i <= {exceptions} THEN 'missing_sku:erp:' || {sku} END, {t}
             FROM ({series}) s"
        ),
        format!(
            "INSERT INTO exceptions (task_id, store_order_id, destination, code, kind, fingerprint, message, action, fields, status, created_at, updated_at)
             SELECT t.id, t.store_order_id, 'erp', 'missing_sku_mapping', 'needs_action', t.blocked_on,
                    'SKU ' || substr(t.blocked_on, 17) || ' has no ERP item code, so order #' || (100000 + t.store_order_id) || ' can''t be created in the ERP.',
                    'Map SKU', {fields}, 'open', t.updated_at, t.updated_at
             FROM sync_tasks t WHERE t.destination = 'erp' AND t.state = 'blocked'"
        ),
        // Each order's webhook and each task's one attempt (the blocked ones' needs action),
        // with lags spread over the histogram: what `/metrics` counts.
        format!(
            "INSERT INTO webhook_events (webhook_id, event_id, topic, shop_domain, api_version, triggered_at,
                 received_at, body, duplicate, outcome, store_order_id, order_updated_at)
             SELECT 'wh-' || i, 'ev-' || i, 'orders/create', 'bench.myshopify.com', '2025-10', {t}, {t}, {body},
                    {false_}, 'applied', i, {t}
             FROM ({series}) s"
        ),
        "INSERT INTO sync_attempts (task_id, store_order_id, destination, version, attempt, started_at,
             duration_ms, outcome, status, lag_ms)
         SELECT id, store_order_id, destination, 1, 1, updated_at, 40,
                CASE WHEN state = 'blocked' THEN 'needs_action' ELSE 'synced' END,
                CASE WHEN state = 'blocked' THEN 422 ELSE 201 END,
                CASE WHEN state = 'blocked' THEN NULL ELSE id % 3000 END
         FROM sync_tasks"
            .to_string(),
        // One person has taken every 20th exception (5% of the queue).
        format!(
            "INSERT INTO users (id, email, display_name, password_hash, active, created_at, updated_at)
             VALUES (1, 'operator@example.com', 'Bench Operator', '-', {true_}, {t0}, {t0})"
        ),
        "UPDATE exceptions SET assignee_id = 1 WHERE id % 20 = 0".to_string(),
    ]
}

async fn execute(store: &Store, sql: &str) -> anyhow::Result<()> {
    match store.db() {
        Db::Sqlite(pool) => {
            sqlx::query(sql).execute(pool).await?;
        }
        Db::Postgres(pool) => {
            sqlx::query(sql).execute(pool).await?;
        }
    }
    Ok(())
}

/// Times `call` `samples` times; P50 and P95 in milliseconds.
async fn time<F, Fut, T>(samples: usize, mut call: F) -> anyhow::Result<(f64, f64)>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, crate::store::StoreError>>,
{
    // One untimed run warms the caches, as a screen in use has them warm.
    call().await?;
    let mut took = Vec::with_capacity(samples);
    for _ in 0..samples {
        let started = Instant::now();
        call().await?;
        took.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    took.sort_by(f64::total_cmp);
    Ok((percentile(&took, 50.0), percentile(&took, 95.0)))
}

/// Seeds, times, prints.
pub async fn run(options: QueueBenchOptions) -> anyhow::Result<()> {
    let (url, drop_after) = fresh_database(options.postgres.as_deref()).await?;
    let store = Store::connect_with(&url, 4).await?;
    store.migrate().await?;
    let postgres = matches!(store.db(), Db::Postgres(_));
    println!(
        "Seeding {} orders and {} open exceptions on {} …",
        options.orders,
        options.exceptions,
        if postgres { "PostgreSQL" } else { "SQLite" }
    );
    let seeding = Instant::now();
    for sql in seed_sql(postgres, options.orders, options.exceptions) {
        execute(&store, &sql).await?;
    }
    // Statistics for the planner; PostgreSQL is also vacuumed, as autovacuum keeps a database
    // in use (index-only scans need its visibility map).
    execute(
        &store,
        if postgres {
            "VACUUM ANALYZE"
        } else {
            "ANALYZE"
        },
    )
    .await?;
    println!("  seeded in {:.1} s", seeding.elapsed().as_secs_f64());
    let causes: i64 = match store.db() {
        Db::Sqlite(pool) => {
            sqlx::query_scalar("SELECT COUNT(*) FROM exception_causes")
                .fetch_one(pool)
                .await?
        }
        Db::Postgres(pool) => {
            sqlx::query_scalar("SELECT COUNT(*) FROM exception_causes")
                .fetch_one(pool)
                .await?
        }
    };
    println!("  {causes} rows in the per-cause summary (exception_causes)");

    let open = ExceptionScope {
        status: Some("open".into()),
        ..ExceptionScope::default()
    };
    let page = |scope: ExceptionScope| ExceptionFilter {
        scope,
        before_id: None,
        oldest_first: false,
        limit: 50,
    };
    let group = ExceptionScope {
        fingerprint: Some("missing_sku:erp:HOT-4".into()),
        status: Some("open".into()),
        ..ExceptionScope::default()
    };
    let by_number = ExceptionScope {
        search: Some(format!("#{}", 100000 + options.exceptions / 2)),
        status: Some("open".into()),
        ..ExceptionScope::default()
    };
    let n = options.samples;
    let mut rows: Vec<(&str, (f64, f64))> = Vec::new();
    let all_open = ExceptionScope::default();
    rows.push((
        "queue: groups by cause",
        time(n, || store.exception_groups(&all_open, false, 200)).await?,
    ));
    // The grouped queue with filters the per-cause summary does not hold: these aggregate the
    // exceptions themselves.
    let mine = ExceptionScope {
        assignee: Some(Assignee::User(1)),
        ..ExceptionScope::default()
    };
    rows.push((
        "queue: groups, assigned to one person",
        time(n, || store.exception_groups(&mine, false, 200)).await?,
    ));
    let nobody = ExceptionScope {
        assignee: Some(Assignee::Nobody),
        ..ExceptionScope::default()
    };
    rows.push((
        "queue: groups, unassigned (95%)",
        time(n, || store.exception_groups(&nobody, false, 200)).await?,
    ));
    let old = ExceptionScope {
        created_before: Some(chrono::Utc::now() - chrono::TimeDelta::hours(1)),
        ..ExceptionScope::default()
    };
    rows.push((
        "queue: groups, older than an hour (all)",
        time(n, || store.exception_groups(&old, false, 200)).await?,
    ));
    // The i-th exception was opened i seconds after 2026-11-01: all but the newest 5% are older
    // than this.
    let seeded = chrono::DateTime::parse_from_rfc3339("2026-11-01T00:00:00Z")?.to_utc();
    let older = ExceptionScope {
        created_before: Some(seeded + chrono::TimeDelta::seconds(options.exceptions * 95 / 100)),
        ..ExceptionScope::default()
    };
    rows.push((
        "queue: groups, all but the newest 5%",
        time(n, || store.exception_groups(&older, false, 200)).await?,
    ));
    let both = ExceptionScope {
        assignee: Some(Assignee::Nobody),
        ..older.clone()
    };
    rows.push((
        "queue: groups, unassigned and not the newest 5%",
        time(n, || store.exception_groups(&both, false, 200)).await?,
    ));
    let sku = ExceptionScope {
        search: Some("HOT-4".into()),
        ..ExceptionScope::default()
    };
    rows.push((
        "queue: groups, search for a SKU",
        time(n, || store.exception_groups(&sku, false, 200)).await?,
    ));
    rows.push(("queue: first page of the list", {
        let first = page(open.clone());
        time(n, || store.exceptions(&first)).await?
    }));
    rows.push(("queue: a deep page of the list", {
        let deep = ExceptionFilter {
            before_id: Some(options.exceptions * 3 / 4),
            ..page(open.clone())
        };
        time(n, || store.exceptions(&deep)).await?
    }));
    rows.push(("queue: a group expanded", {
        let expanded = page(group.clone());
        time(n, || store.exceptions(&expanded)).await?
    }));
    rows.push(("queue: search by order number", {
        let found = page(by_number.clone());
        time(n, || store.exceptions(&found)).await?
    }));
    rows.push((
        "queue: bulk retry dry run (group)",
        time(n, || {
            store.triage(&group, &TriageAction::Retry, true, &Actor::System)
        })
        .await?,
    ));
    rows.push((
        "orders: latest 100",
        time(n, || store.recent_orders(None, 100)).await?,
    ));
    rows.push((
        "orders: needing action (100k)",
        time(n, || store.find_orders(None, Some("blocked"), 100)).await?,
    ));
    rows.push((
        "orders: synced somewhere (1M)",
        time(n, || store.find_orders(None, Some("synced"), 100)).await?,
    ));
    rows.push((
        "orders: dead (none)",
        time(n, || store.find_orders(None, Some("dead"), 100)).await?,
    ));
    rows.push((
        "orders: in flight (none)",
        time(n, || store.find_orders(None, Some("running"), 100)).await?,
    ));
    rows.push((
        "metrics: one scrape's counts",
        time(n, || store.metric_counts()).await?,
    ));
    let number = format!("#{}", 100000 + options.orders / 3);
    rows.push((
        "orders: find by number",
        time(n, || store.recent_orders(Some(&number), 100)).await?,
    ));
    let email = "customer1234@example.com".to_string();
    rows.push((
        "orders: find by email",
        time(n, || store.recent_orders(Some(&email), 100)).await?,
    ));
    rows.push((
        "orders: find by SKU (≈ 500 orders)",
        time(n, || store.recent_orders(Some("SKU-7"), 100)).await?,
    ));

    println!(
        "\n{} orders, {} open exceptions, {n} timed runs each (server time of the store call):",
        options.orders, options.exceptions
    );
    println!("  {:<42} {:>9} {:>9}", "call", "P50 ms", "P95 ms");
    for (name, (p50, p95)) in &rows {
        println!("  {name:<42} {p50:>9.2} {p95:>9.2}");
    }
    let worst = rows.iter().map(|(_, (_, p95))| *p95).fold(0.0, f64::max);
    println!(
        "  target P95 < 50 ms: {}",
        if worst < 50.0 { "met" } else { "NOT met" }
    );

    store.close().await;
    discard(&url, drop_after).await
}

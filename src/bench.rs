//! `syncdesk bench`: end-to-end throughput and latency on loopback. SyncDesk (web + workers)
//! runs on a fresh database next to the simulated CRM and ERP; signed order webhooks are posted
//! to it; the run ends when every order is acknowledged by both destinations. It prints orders/s,
//! sync lag P50/P95/P99, webhook ack P50/P99, CPU time per order (SyncDesk, PostgreSQL, the
//! load, the rest of the machine), peak memory, the durability settings in force, and the
//! ledgers' verdict (lost, duplicated).

mod cpu;
pub mod queue;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use tokio::net::TcpListener;

use crate::audit::Actor;
use crate::engine::worker::{Destinations, WorkerConfig};
use crate::engine::{DestinationSettings, Workers};
use crate::secret::Secret;
use crate::simulate::crm::{CrmSimConfig, spawn_crm};
use crate::simulate::erp::{ErpCatalogue, ErpSimConfig, spawn_erp};
use crate::simulate::ledger::DocumentKind;
use crate::simulate::shopify::{CATALOGUE, OrderFactory};
use crate::store::{Db, Store, on_pool};
use crate::web::{self, AppState, WebSettings};

/// What to run.
#[derive(Clone, Debug)]
pub struct BenchOptions {
    /// A PostgreSQL server URL (a fresh database is created on it and dropped after), or `None`
    /// for a fresh SQLite file.
    pub postgres: Option<String>,
    /// Orders to send.
    pub orders: usize,
    /// Orders per second to send at, or `None` for as fast as SyncDesk acknowledges.
    pub rate: Option<f64>,
    /// Webhook requests in flight at once.
    pub concurrency: usize,
    /// Workers.
    pub workers: usize,
    /// Deliveries each worker keeps in flight.
    pub deliveries_per_worker: usize,
    /// Database connections of the SyncDesk under test (SQLite: at most 8).
    pub connections: u32,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// Peak resident memory of this process (`VmHWM`), in MiB.
fn peak_memory_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// An order both destinations accept: lines with catalogue SKUs, a postal code, a street the
/// ERP takes. (Orders that need a person are measured by the tests, not here.)
fn clean(mut order: Value) -> Value {
    if let Some(lines) = order["line_items"].as_array_mut() {
        lines.retain(|l| l["sku"].as_str().is_some_and(|s| !s.is_empty()));
        if lines.is_empty() {
            return Value::Null;
        }
    }
    for which in ["shipping_address", "billing_address"] {
        if order[which].is_object() {
            if order[which]["address1"]
                .as_str()
                .is_none_or(|s| s.chars().count() > 60)
            {
                order[which]["address1"] = json!("12 Harbour Street");
            }
            if order[which]["zip"].as_str().is_none_or(str::is_empty) {
                order[which]["zip"] = json!("10001");
            }
        }
    }
    order
}

async fn fresh_database(
    postgres: Option<&str>,
) -> anyhow::Result<(String, Option<(String, String)>)> {
    match postgres {
        None => {
            let dir = std::env::temp_dir()
                .join(format!("syncdesk-bench-{}", uuid::Uuid::new_v4().simple()));
            std::fs::create_dir_all(&dir)?;
            Ok((format!("sqlite://{}", dir.join("bench.db").display()), None))
        }
        Some(server) => {
            let mut admin =
                url::Url::parse(server).context("--postgres must be a postgres:// URL")?;
            admin.set_path("/postgres");
            let name = format!("syncdesk_bench_{}", uuid::Uuid::new_v4().simple());
            let admin_store = Store::connect_with(admin.as_str(), 1).await?;
            if let Db::Postgres(pool) = admin_store.db() {
                sqlx::query(&format!("CREATE DATABASE {name}"))
                    .execute(pool)
                    .await?;
            }
            let mut url = admin.clone();
            url.set_path(&format!("/{name}"));
            Ok((url.to_string(), Some((admin.to_string(), name))))
        }
    }
}

/// Removes the benchmark's database: the PostgreSQL database it created, or the SQLite file's
/// directory (a seeded queue benchmark leaves most of a gigabyte).
async fn discard(url: &str, drop_after: Option<(String, String)>) -> anyhow::Result<()> {
    if let Some((admin, name)) = drop_after {
        let admin_store = Store::connect_with(&admin, 1).await?;
        if let Db::Postgres(pool) = admin_store.db() {
            sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .execute(pool)
                .await?;
        }
    } else if let Some(file) = url.strip_prefix("sqlite://")
        && let Some(dir) = std::path::Path::new(file).parent()
        && dir
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("syncdesk-bench-"))
    {
        std::fs::remove_dir_all(dir)?;
    }
    Ok(())
}

async fn durability(store: &Store) -> anyhow::Result<String> {
    Ok(match store.db() {
        Db::Sqlite(pool) => {
            let journal: String = sqlx::query_scalar("PRAGMA journal_mode")
                .fetch_one(pool)
                .await?;
            let sync: i64 = sqlx::query_scalar("PRAGMA synchronous")
                .fetch_one(pool)
                .await?;
            let sync = match sync {
                0 => "OFF",
                1 => "NORMAL",
                2 => "FULL",
                _ => "EXTRA",
            };
            format!("SQLite journal_mode={journal} synchronous={sync}")
        }
        Db::Postgres(pool) => {
            let commit: String = sqlx::query_scalar("SHOW synchronous_commit")
                .fetch_one(pool)
                .await?;
            let fsync: String = sqlx::query_scalar("SHOW fsync").fetch_one(pool).await?;
            format!("PostgreSQL synchronous_commit={commit} fsync={fsync}")
        }
    })
}

async fn synced(store: &Store) -> anyhow::Result<i64> {
    let sql = "SELECT COUNT(*) FROM sync_tasks WHERE state = 'synced'";
    Ok(on_pool!(store.db(), pool => sqlx::query_scalar(sql).fetch_one(pool).await?))
}

/// Whether a task is still on its way: what the bench polls, 50 times a second, while it waits.
/// A few probes of the due index; counting the synced tasks instead read every task each time,
/// which on PostgreSQL was a fifth of the server's work during a run (`pg_stat_statements`).
async fn in_flight(store: &Store) -> anyhow::Result<bool> {
    let sql = "SELECT EXISTS (SELECT 1 FROM sync_tasks WHERE state IN ('pending', 'retrying', 'running'))";
    Ok(on_pool!(store.db(), pool => sqlx::query_scalar(sql).fetch_one(pool).await?))
}

async fn lags(store: &Store) -> anyhow::Result<Vec<f64>> {
    let sql = "SELECT lag_ms FROM sync_attempts WHERE outcome = 'synced' AND lag_ms IS NOT NULL";
    let mut lags: Vec<i64> =
        on_pool!(store.db(), pool => sqlx::query_scalar(sql).fetch_all(pool).await?);
    lags.sort_unstable();
    Ok(lags.into_iter().map(|l| l as f64).collect())
}

/// The runtime the simulators and the load generator run on. Dropped (also on an early error
/// return) without waiting for its tasks: a runtime may not block inside another one.
struct LoadRuntime(Option<tokio::runtime::Runtime>);

impl LoadRuntime {
    fn start() -> std::io::Result<LoadRuntime> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name(cpu::LOAD_THREADS)
            .enable_all()
            .build()?;
        Ok(LoadRuntime(Some(runtime)))
    }

    fn spawn<F>(&self, future: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: std::future::Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.0
            .as_ref()
            .expect("running until dropped")
            .spawn(future)
    }
}

impl Drop for LoadRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

/// Whether a PostgreSQL URL names a server on this machine (whose processes can be measured):
/// a loopback host, or a Unix socket's directory, written as the host (`%2Fvar%2Frun%2Fpostgresql`)
/// or as the `host` parameter, which wins over the URL's host as it does for sqlx and libpq.
fn on_this_machine(url: &str) -> bool {
    fn local(host: &str) -> bool {
        let socket =
            host.starts_with('/') || host.get(..3).is_some_and(|h| h.eq_ignore_ascii_case("%2f"));
        socket || matches!(host, "" | "localhost" | "127.0.0.1" | "[::1]" | "::1")
    }
    let Ok(url) = url::Url::parse(url) else {
        return false;
    };
    if let Some((_, host)) = url.query_pairs().find(|(key, _)| key == "host") {
        return local(&host);
    }
    url.host_str().is_none_or(local)
}

/// Posts every signed body, `concurrency` at a time (at `rate` orders/s when given), and returns
/// each acknowledgement's time in ms. Fails if any webhook is not acknowledged.
async fn send_all(
    target: url::Url,
    bodies: Vec<(Vec<u8>, String)>,
    rate: Option<f64>,
    concurrency: usize,
    started: Instant,
) -> anyhow::Result<Vec<f64>> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()?;
    let gate = Arc::new(tokio::sync::Semaphore::new(concurrency));
    let mut sends = tokio::task::JoinSet::new();
    let total = bodies.len();
    for (n, (body, signature)) in bodies.into_iter().enumerate() {
        if let Some(rate) = rate {
            let due = started + Duration::from_secs_f64(n as f64 / rate);
            tokio::time::sleep_until(due.into()).await;
        }
        let permit = gate.clone().acquire_owned().await?;
        let (client, target) = (client.clone(), target.clone());
        sends.spawn(async move {
            let sent = Instant::now();
            let res = client
                .post(target)
                // Every header Shopify sends, so the event id's duplicate check is paid for as
                // it is for a real delivery.
                .header("X-Shopify-Topic", "orders/create")
                .header("X-Shopify-Hmac-Sha256", signature)
                .header("X-Shopify-Webhook-Id", uuid::Uuid::new_v4().to_string())
                .header("X-Shopify-Event-Id", uuid::Uuid::new_v4().to_string())
                .header(
                    "X-Shopify-Triggered-At",
                    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                )
                .header("X-Shopify-API-Version", crate::simulate::store::API_VERSION)
                .header("X-Shopify-Shop-Domain", "bench.myshopify.com")
                .header("Content-Type", "application/json")
                .body(body)
                .send()
                .await;
            drop(permit);
            let ok = res.is_ok_and(|r| r.status().is_success());
            (ok, sent.elapsed().as_secs_f64() * 1000.0)
        });
    }
    let mut acks = Vec::with_capacity(total);
    while let Some(done) = sends.join_next().await {
        let (ok, ms) = done?;
        if !ok {
            bail!("a webhook was not acknowledged");
        }
        acks.push(ms);
    }
    Ok(acks)
}

/// Runs the benchmark and prints its report.
pub async fn run(options: BenchOptions) -> anyhow::Result<()> {
    // Before anything else runs, on a core of its own.
    let yardstick = tokio::task::spawn_blocking(cpu::yardstick).await??;
    let (url, drop_after) = fresh_database(options.postgres.as_deref()).await?;
    // The database goes, whatever the run's outcome: a failed run used to leave it behind.
    let measured = measure(&url, yardstick, options).await;
    let discarded = discard(&url, drop_after).await;
    let clean = measured?;
    discarded?;
    if !clean {
        bail!("the ledgers found lost or duplicated orders");
    }
    Ok(())
}

/// Runs the benchmark on the fresh database at `url` and prints its report; whether the
/// ledgers found every order once.
async fn measure(url: &str, yardstick: f64, options: BenchOptions) -> anyhow::Result<bool> {
    let store = Store::connect_with(url, options.connections).await?;
    store.migrate().await?;

    // The simulators and the load generator run on a runtime of their own, so that the CPU
    // time of SyncDesk's threads can be told apart from theirs.
    let load = LoadRuntime::start()?;
    let crm = load.spawn(spawn_crm(CrmSimConfig::default())).await??;
    let codes: Vec<String> = CATALOGUE
        .iter()
        .filter(|p| !p.sku.is_empty())
        .map(|p| format!("ERP-{}", p.sku))
        .collect();
    let erp = load
        .spawn(spawn_erp(ErpSimConfig {
            catalogue: ErpCatalogue::from_codes(codes),
            ..Default::default()
        }))
        .await??;
    // The ERP keeps a second document for the same order rather than refusing it (409), so
    // the ledger's "duplicated" counts every second create SyncDesk makes.
    erp.faults().update(|f| f.allow_duplicates = true);
    for product in CATALOGUE.iter().filter(|p| !p.sku.is_empty()) {
        store
            .save_sku_mapping(product.sku, &format!("ERP-{}", product.sku), &Actor::System)
            .await?;
    }
    let settings = DestinationSettings {
        crm_url: crm.base_url().clone(),
        crm_token: Secret::new(crm.token()),
        erp_url: erp.base_url().clone(),
        erp_token: Secret::new(erp.token()),
        requests_per_second: None,
    };
    let destinations: Destinations = settings.connect()?;

    let secret = format!("bench-{}", uuid::Uuid::new_v4().simple());
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let web_settings = WebSettings {
        shopify_webhook_secret: Some(Secret::new(secret.clone())),
        ..Default::default()
    };
    let state = AppState::new(store.clone(), web_settings, addr);
    let wake = state.wake.clone();
    tokio::spawn(web::serve(listener, state, std::future::pending()));
    let workers = Workers::spawn(
        &store,
        destinations,
        WorkerConfig {
            concurrency: options.deliveries_per_worker,
            ..WorkerConfig::default()
        },
        wake,
        options.workers,
    );

    // Orders are generated and signed before the clock starts.
    let mut factory = OrderFactory::new(42);
    let mut bodies = Vec::with_capacity(options.orders);
    let mut ids = Vec::with_capacity(options.orders);
    while bodies.len() < options.orders {
        let order = clean(factory.order());
        if order.is_null() {
            continue;
        }
        ids.push(order["id"].as_i64().unwrap_or_default().to_string());
        let body = serde_json::to_vec(&order)?;
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes())?;
        mac.update(&body);
        let signature =
            base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
        bodies.push((body, signature));
    }

    // Parsed once: as a string, each post parsed it again (~3% of the load's CPU).
    let target = url::Url::parse(&format!("http://{addr}/webhooks/shopify"))?;
    let postgres_local = options.postgres.as_deref().is_some_and(on_this_machine);
    let cpu_before = cpu::sample(postgres_local);
    let writer_before = store.group_commit_counts();
    let started = Instant::now();
    let (rate, concurrency) = (options.rate, options.concurrency);
    let mut acks = load
        .spawn(send_all(target, bodies, rate, concurrency, started))
        .await??;
    let sent_in = started.elapsed();

    let expected = 2 * options.orders as i64;
    let deadline = Instant::now() + Duration::from_secs(600);
    // Every webhook was acknowledged, so every task exists: waiting for none to be on its way
    // is waiting for the last delivery.
    while in_flight(&store).await? {
        if Instant::now() > deadline {
            bail!("not every order was synced within 10 minutes");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = started.elapsed();
    let cpu_after = cpu::sample(postgres_local);
    let writer_after = store.group_commit_counts();
    let done = synced(&store).await?;
    if done != expected {
        bail!("{done} of {expected} deliveries synced; the rest are blocked or dead-lettered");
    }
    workers.shutdown().await;
    drop(load);

    acks.sort_by(f64::total_cmp);
    let lags = lags(&store).await?;
    let crm_check = crm.ledger().check();
    let erp_check = erp.ledger().check();
    let lost = crm_check
        .missing(DocumentKind::Deal, ids.iter().map(String::as_str))
        .len()
        + erp_check
            .missing(DocumentKind::SalesOrder, ids.iter().map(String::as_str))
            .len();
    let duplicated = crm_check.extra_documents() + erp_check.extra_documents();

    println!("SyncDesk end-to-end benchmark");
    println!("  durability      {}", durability(&store).await?);
    println!(
        "  machine speed   {} store orders read and written as JSON by one core in {yardstick:.0} ms (to compare machines: docs/PERFORMANCE.md)",
        cpu::YARDSTICK_ORDERS
    );
    println!(
        "  orders          {} ({} workers of {} deliveries, {} database connections, {} webhooks in flight{})",
        options.orders,
        options.workers,
        options.deliveries_per_worker,
        options.connections,
        options.concurrency,
        options
            .rate
            .map(|r| format!(", paced at {r} orders/s"))
            .unwrap_or_default()
    );
    println!(
        "  throughput      {:.0} orders/s end to end (webhook in → CRM and ERP acknowledged → state committed); all sent in {:.2} s, all synced in {:.2} s",
        options.orders as f64 / elapsed.as_secs_f64(),
        sent_in.as_secs_f64(),
        elapsed.as_secs_f64()
    );
    println!(
        "  sync lag        P50 {:.0} ms, P95 {:.0} ms, P99 {:.0} ms",
        percentile(&lags, 50.0),
        percentile(&lags, 95.0),
        percentile(&lags, 99.0)
    );
    println!(
        "  webhook ack     P50 {:.1} ms, P99 {:.1} ms",
        percentile(&acks, 50.0),
        percentile(&acks, 99.0)
    );
    if let (Some(before), Some(after)) = (cpu_before, cpu_after) {
        let cpu = before.per_order(&after, options.orders);
        println!(
            "  CPU per order   SyncDesk {:.2} ms, PostgreSQL {}, simulators and load generator {:.2} ms, rest of the machine {:.2} ms ({} CPUs, {:.0}% busy)",
            cpu.syncdesk,
            cpu.postgres
                .map(|ms| format!("{ms:.2} ms"))
                .unwrap_or_else(|| if options.postgres.is_some() {
                    "not on this machine".into()
                } else {
                    "none".into()
                }),
            cpu.load,
            cpu.rest,
            cpu.cpus,
            cpu.busy * 100.0
        );
    }
    println!(
        "  peak memory     {} (whole process: SyncDesk, simulators and load generator)",
        peak_memory_mib()
            .map(|m| format!("{m:.0} MiB"))
            .unwrap_or_else(|| "unknown".into())
    );
    println!("  ledger          lost = {lost}, duplicated = {duplicated}");
    println!(
        "  requests        {:.2} to the CRM and {:.2} to the ERP per order",
        crm.faults().requests_seen() as f64 / options.orders as f64,
        erp.faults().requests_seen() as f64 / options.orders as f64
    );
    if let (Some(before), Some(after)) = (writer_before, writer_after) {
        let (commits, writes) = (after.commits - before.commits, after.writes - before.writes);
        println!(
            "  group commit    {writes} writes in {commits} SQLite transactions ({:.1} per commit); the one writer busy {:.0}% of the run",
            writes as f64 / commits.max(1) as f64,
            100.0 * (after.busy - before.busy).as_secs_f64() / elapsed.as_secs_f64()
        );
    }
    if let Some((statements, completions)) = store.completion_batch_counts() {
        println!(
            "  completions     {completions} synced deliveries in {statements} PostgreSQL statements ({:.1} per statement)",
            completions as f64 / statements.max(1) as f64
        );
    }
    let (claims, claimed) = store.claim_counts();
    let handed_off = store.handed_off_count();
    println!(
        "  claims          {claims} claims took {claimed} tasks ({:.1} per claim); {handed_off} tasks handed off at ingest",
        claimed as f64 / claims.max(1) as f64
    );
    if let Some((calls, webhooks)) = store.ingest_batch_counts() {
        println!(
            "  ingest          {webhooks} orders' webhooks in {calls} PostgreSQL calls ({:.1} per call)",
            webhooks as f64 / calls.max(1) as f64
        );
    }

    store.close().await;
    Ok(lost == 0 && duplicated == 0)
}

#[cfg(test)]
mod tests {
    use super::on_this_machine;

    #[test]
    fn a_server_by_loopback_or_unix_socket_is_on_this_machine() {
        for url in [
            "postgres://postgres@127.0.0.1:5432/",
            "postgres://postgres@localhost/",
            "postgres:///syncdesk",
            "postgres://postgres@%2Fvar%2Frun%2Fpostgresql/",
            "postgres:///?host=/var/run/postgresql&user=postgres",
        ] {
            assert!(on_this_machine(url), "{url}");
        }
        for url in [
            "postgres://postgres@db.internal:5432/",
            "postgres://postgres@127.0.0.1/?host=db.internal",
            "not a url",
        ] {
            assert!(!on_this_machine(url), "{url}");
        }
    }
}

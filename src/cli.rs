//! Command-line interface: every flag can also come from the environment.

use std::io::{BufRead, IsTerminal};
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, bail};
use app::model::Role;
use clap::builder::TypedValueParser;
use clap::{Args, Parser, Subcommand};
use tokio::net::TcpListener;

use crate::accounts::{Accounts, ThrottlePolicy, new_token};
use crate::audit::Actor;
use crate::engine::DestinationSettings;
use crate::engine::Workers;
use crate::engine::reconcile::{Reconciler, reconcile_since};
use crate::engine::worker::WorkerConfig;
use crate::secret::Secret;
use crate::store::Store;
use crate::web::{self, AppState, WebSettings};

/// SyncDesk keeps ecommerce orders consistent across a store, a CRM and an ERP.
#[derive(Debug, Parser)]
#[command(name = "syncdesk", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

// Parsed once at start-up; the size difference between subcommands costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the web app and API, and run the background work.
    Serve(ServeArgs),
    /// Run only the workers (no web server): for scaling workers apart from the web.
    Worker(WorkerArgs),
    /// Apply database migrations and exit.
    Migrate(DatabaseArgs),
    /// Start a demo on a fresh SQLite database with a simulated store, CRM and ERP, and live
    /// order traffic; sign-in details are printed.
    Demo(DemoArgs),
    /// Run the simulated store (signed webhooks to --target, Admin API), CRM and ERP on loopback.
    Simulate(SimulateArgs),
    /// Measure end-to-end throughput and latency on loopback (simulated CRM and ERP, fresh
    /// database); prints the figures, the durability settings and the ledgers' verdict.
    Bench(BenchArgs),
    /// Take in every order the store changed since a date, through its Admin API (orders
    /// SyncDesk already has at the store's state are left alone); running workers sync them.
    Backfill(BackfillArgs),
    /// Manage user accounts.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage API bearer tokens.
    #[command(subcommand)]
    Token(TokenCommand),
}

#[derive(Debug, Clone, Args)]
struct DatabaseArgs {
    /// Database to use: a `sqlite:` URL (file created on first use) or a `postgres:` URL.
    #[arg(long, env = "DATABASE_URL", default_value = "sqlite:syncdesk.db")]
    database_url: String,
    /// Connections this process may open to the database.
    #[arg(long, env = "SYNCDESK_DATABASE_MAX_CONNECTIONS", default_value_t = 16)]
    database_max_connections: u32,
}

#[derive(Debug, Clone, Args)]
struct WebArgs {
    /// Address to serve on.
    #[arg(long, env = "SYNCDESK_LISTEN", default_value = "127.0.0.1:3000")]
    listen: SocketAddr,
    /// Public URL people reach SyncDesk at; an `https:` URL marks cookies Secure and sends HSTS.
    #[arg(long, env = "SYNCDESK_PUBLIC_URL")]
    public_url: Option<url::Url>,
    /// Take client addresses from X-Forwarded-For (only behind a proxy you control).
    #[arg(long, env = "SYNCDESK_TRUST_PROXY", default_value_t = false)]
    trust_proxy: bool,
    /// Folder with the compiled site (cargo-leptos output).
    #[arg(long, env = "LEPTOS_SITE_ROOT", default_value = "target/site")]
    site_root: String,
    /// Shared secret the store signs webhooks with.
    #[arg(
        long,
        env = "SHOPIFY_WEBHOOK_SECRET",
        hide_env_values = true,
        hide_default_value = true
    )]
    shopify_webhook_secret: Option<String>,
    #[command(flatten)]
    shop: ShopArgs,
}

#[derive(Debug, Clone, Args)]
struct ShopArgs {
    /// Base URL of the store's Admin API, for "resync from the store" and reconciliation
    /// (optional).
    #[arg(long, env = "SYNCDESK_STORE_URL")]
    store_url: Option<url::Url>,
    /// The store's Admin API access token.
    #[arg(long, env = "SYNCDESK_STORE_TOKEN", hide_env_values = true)]
    store_token: Option<String>,
    /// Seconds between reconciliation passes, which read the orders the store changed through
    /// its Admin API and take in those whose webhooks never came (0: no passes).
    #[arg(long, env = "SYNCDESK_RECONCILE_EVERY", default_value_t = 600)]
    reconcile_every: u64,
}

impl ShopArgs {
    /// The Admin API client, when both its URL and token are given.
    fn admin(&self) -> anyhow::Result<Option<crate::connectors::ShopAdmin>> {
        match (&self.store_url, &self.store_token) {
            (Some(url), Some(token)) => Ok(Some(crate::connectors::ShopAdmin::new(
                url.clone(),
                token,
                std::time::Duration::from_secs(10),
            )?)),
            (None, None) => Ok(None),
            _ => bail!(
                "the store's Admin API needs both SYNCDESK_STORE_URL and SYNCDESK_STORE_TOKEN"
            ),
        }
    }

    /// Starts scheduled reconciliation, when the Admin API is configured and passes are on.
    fn reconciler(
        &self,
        store: &Store,
        wake: Arc<tokio::sync::Notify>,
    ) -> anyhow::Result<Option<Reconciler>> {
        let Some(shop) = self.admin()? else {
            return Ok(None);
        };
        if self.reconcile_every == 0 {
            return Ok(None);
        }
        let every = std::time::Duration::from_secs(self.reconcile_every);
        Ok(Some(Reconciler::spawn(store, shop, every, wake)))
    }
}

#[derive(Debug, Clone, Args)]
struct DestinationArgs {
    /// Base URL of the CRM's API.
    #[arg(long, env = "SYNCDESK_CRM_URL")]
    crm_url: Option<url::Url>,
    /// Bearer token for the CRM.
    #[arg(long, env = "SYNCDESK_CRM_TOKEN", hide_env_values = true)]
    crm_token: Option<String>,
    /// Base URL of the ERP's API.
    #[arg(long, env = "SYNCDESK_ERP_URL")]
    erp_url: Option<url::Url>,
    /// Bearer token for the ERP.
    #[arg(long, env = "SYNCDESK_ERP_TOKEN", hide_env_values = true)]
    erp_token: Option<String>,
    /// Workers in this process (4 keep the sync lag low at 500 orders/s on 2 cores; see
    /// docs/PERFORMANCE.md).
    #[arg(long, env = "SYNCDESK_WORKERS", default_value_t = 4)]
    workers: usize,
    /// Deliveries each worker keeps in flight at once; a worker claims again once half of
    /// them are done, so this also sets how many tasks a claim takes.
    #[arg(long, env = "SYNCDESK_DELIVERIES_PER_WORKER", default_value_t = WorkerConfig::default().concurrency, value_parser = clap::value_parser!(u16).range(1..=1024).map(usize::from))]
    deliveries_per_worker: usize,
    /// Requests per second sent to each destination (0: no client-side limit).
    #[arg(long, env = "SYNCDESK_DESTINATION_RATE_LIMIT", default_value_t = 50.0)]
    destination_rate_limit: f64,
}

impl DestinationArgs {
    /// How each worker of this process is tuned.
    fn worker_config(&self) -> WorkerConfig {
        WorkerConfig {
            concurrency: self.deliveries_per_worker,
            ..WorkerConfig::default()
        }
    }

    /// The destinations, when all four settings are given; an error naming what is missing
    /// when only some are.
    fn settings(&self) -> anyhow::Result<Option<DestinationSettings>> {
        match (
            &self.crm_url,
            &self.crm_token,
            &self.erp_url,
            &self.erp_token,
        ) {
            (None, None, None, None) => Ok(None),
            (Some(crm_url), Some(crm_token), Some(erp_url), Some(erp_token)) => {
                Ok(Some(DestinationSettings {
                    crm_url: crm_url.clone(),
                    crm_token: Secret::new(crm_token.clone()),
                    erp_url: erp_url.clone(),
                    erp_token: Secret::new(erp_token.clone()),
                    requests_per_second: (self.destination_rate_limit > 0.0)
                        .then_some(self.destination_rate_limit),
                }))
            }
            _ => bail!(
                "destinations need all four of SYNCDESK_CRM_URL, SYNCDESK_CRM_TOKEN, SYNCDESK_ERP_URL and SYNCDESK_ERP_TOKEN"
            ),
        }
    }
}

#[derive(Debug, Args)]
struct ServeArgs {
    #[command(flatten)]
    database: DatabaseArgs,
    #[command(flatten)]
    web: WebArgs,
    #[command(flatten)]
    destinations: DestinationArgs,
}

#[derive(Debug, Args)]
struct BenchArgs {
    /// Run on PostgreSQL: a server URL; a fresh database is created on it and dropped after.
    /// Without it, a fresh SQLite file.
    #[arg(long)]
    postgres: Option<String>,
    /// Orders to send.
    #[arg(long, default_value_t = 5000)]
    orders: usize,
    /// Orders per second to send at (default: as fast as SyncDesk acknowledges).
    #[arg(long)]
    rate: Option<f64>,
    /// Webhook requests in flight at once.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Workers.
    #[arg(long, default_value_t = 4)]
    workers: usize,
    /// Deliveries each worker keeps in flight (as SYNCDESK_DELIVERIES_PER_WORKER).
    #[arg(long, default_value_t = WorkerConfig::default().concurrency, value_parser = clap::value_parser!(u16).range(1..=1024).map(usize::from))]
    deliveries_per_worker: usize,
    /// Database connections of the SyncDesk under test.
    #[arg(long, default_value_t = 16)]
    connections: u32,
    /// Time the operators' screens instead: seed --orders orders with --exceptions open
    /// exceptions, then time the queue, group, list and search calls.
    #[arg(long, default_value_t = false)]
    queue: bool,
    /// With --queue: open exceptions to seed.
    #[arg(long, default_value_t = 100_000)]
    exceptions: i64,
    /// With --queue: timed runs of each call.
    #[arg(long, default_value_t = 50)]
    samples: usize,
}

#[derive(Debug, Args)]
struct WorkerArgs {
    #[command(flatten)]
    database: DatabaseArgs,
    #[command(flatten)]
    destinations: DestinationArgs,
    #[command(flatten)]
    shop: ShopArgs,
}

#[derive(Debug, Args)]
struct BackfillArgs {
    #[command(flatten)]
    database: DatabaseArgs,
    /// Base URL of the store's Admin API.
    #[arg(long, env = "SYNCDESK_STORE_URL")]
    store_url: url::Url,
    /// The store's Admin API access token.
    #[arg(long, env = "SYNCDESK_STORE_TOKEN", hide_env_values = true)]
    store_token: String,
    /// Take in the orders the store changed at or after this instant (RFC 3339, or a date).
    #[arg(long, value_parser = parse_since)]
    since: chrono::DateTime<chrono::Utc>,
}

/// An RFC 3339 instant, or a date (its midnight, UTC).
fn parse_since(text: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    if let Ok(at) = chrono::DateTime::parse_from_rfc3339(text) {
        return Ok(at.with_timezone(&chrono::Utc));
    }
    chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map(|day| day.and_time(chrono::NaiveTime::MIN).and_utc())
        .map_err(|_| format!("{text:?} is neither a date (2026-11-01) nor an RFC 3339 instant"))
}

#[derive(Debug, Args)]
struct SimulateArgs {
    /// SyncDesk's webhook URL to send the store's orders to.
    #[arg(
        long,
        env = "SYNCDESK_SIMULATE_TARGET",
        default_value = "http://127.0.0.1:3000/webhooks/shopify"
    )]
    target: url::Url,
    /// Shared secret to sign webhooks with (the same SyncDesk checks).
    #[arg(long, env = "SHOPIFY_WEBHOOK_SECRET", hide_env_values = true)]
    shopify_webhook_secret: String,
    /// Orders per minute ("30/min"), per second ("5/s") or per hour ("600/h").
    #[arg(long, env = "SYNCDESK_SIMULATE_RATE", default_value = "30/min")]
    rate: crate::simulate::store::Rate,
    /// Seed of the generated orders.
    #[arg(long, env = "SYNCDESK_SIMULATE_SEED", default_value_t = 1)]
    seed: u64,
    /// Send this many orders as fast as SyncDesk takes them, then stop (instead of a steady rate).
    #[arg(long)]
    burst: Option<usize>,
}

#[derive(Debug, Args)]
struct DemoArgs {
    #[command(flatten)]
    web: WebArgs,
    /// Keep the simulated CRM and ERP but send no orders (post your own signed webhooks).
    #[arg(long, env = "SYNCDESK_DEMO_NO_TRAFFIC", default_value_t = false)]
    no_traffic: bool,
    /// Pace of the demo's orders ("30/min", "5/s").
    #[arg(long, env = "SYNCDESK_DEMO_RATE", default_value = "30/min")]
    rate: crate::simulate::store::Rate,
    /// Where the demo database lives; it is emptied at every start.
    #[arg(long, env = "SYNCDESK_DEMO_DB", default_value = "syncdesk-demo.db")]
    demo_db: std::path::PathBuf,
}

#[derive(Debug, Subcommand)]
enum UserCommand {
    /// Add a user. The password is read from a prompt, or from the first line of standard
    /// input when it is not a terminal — never from the command line.
    Add {
        #[command(flatten)]
        database: DatabaseArgs,
        /// Sign-in email.
        #[arg(long)]
        email: String,
        /// Name shown in the UI (defaults to the email).
        #[arg(long)]
        name: Option<String>,
        /// A role to grant: operator, steward, manager or admin. Repeat for several.
        #[arg(long = "role", value_parser = parse_role, required = true)]
        roles: Vec<Role>,
    },
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Create an API bearer token. It is printed once; only its hash is stored.
    Create {
        #[command(flatten)]
        database: DatabaseArgs,
        /// A name that says what uses the token.
        #[arg(long)]
        name: String,
        /// A role the token carries. Repeat for several.
        #[arg(long = "role", value_parser = parse_role, required = true)]
        roles: Vec<Role>,
    },
}

fn parse_role(s: &str) -> Result<Role, String> {
    Role::parse(s)
        .ok_or_else(|| format!("unknown role {s:?}; use operator, steward, manager or admin"))
}

/// Parses the command line and runs it.
pub fn try_main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_tracing();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run(cli))
}

fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("SYNCDESK_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,tower_sessions=warn"));
    let json = std::env::var("SYNCDESK_LOG_FORMAT").is_ok_and(|f| f == "json");
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.compact().init();
    }
}

async fn open(database: &DatabaseArgs) -> anyhow::Result<Store> {
    let store =
        Store::connect_with(&database.database_url, database.database_max_connections).await?;
    store.migrate().await?;
    Ok(store)
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => {
            let destinations = args.destinations.settings()?;
            let store = open(&args.database).await?;
            if store.user_count().await? == 0 {
                tracing::warn!(
                    "no user accounts yet: create the first admin with `syncdesk user add --role admin`"
                );
            }
            if destinations.is_none() {
                tracing::warn!(
                    "no destinations configured (SYNCDESK_CRM_URL …): orders are received but not delivered"
                );
            }
            let engine = destinations.map(|d| {
                (
                    d,
                    args.destinations.workers,
                    args.destinations.worker_config(),
                )
            });
            serve(store, &args.web, engine).await
        }
        Command::Worker(args) => {
            let Some(destinations) = args.destinations.settings()? else {
                bail!(
                    "a worker needs its destinations: set SYNCDESK_CRM_URL, SYNCDESK_CRM_TOKEN, SYNCDESK_ERP_URL and SYNCDESK_ERP_TOKEN"
                );
            };
            let store = open(&args.database).await?;
            crate::web::run_background(&store);
            let count = args.destinations.workers;
            let wake: Arc<tokio::sync::Notify> = Arc::default();
            let workers = Workers::spawn(
                &store,
                destinations.connect()?,
                args.destinations.worker_config(),
                wake.clone(),
                count,
            );
            let reconciler = args.shop.reconciler(&store, wake)?;
            tracing::info!(workers = count, "workers running; stop with Ctrl-C");
            shutdown_signal().await;
            if let Some(reconciler) = reconciler {
                reconciler.shutdown().await;
            }
            workers.shutdown().await;
            Ok(())
        }
        Command::Backfill(args) => {
            let store = open(&args.database).await?;
            let shop = crate::connectors::ShopAdmin::new(
                args.store_url,
                &args.store_token,
                std::time::Duration::from_secs(30),
            )?;
            let found = reconcile_since(&store, &shop, args.since, None).await?;
            store
                .record(
                    &crate::audit::Change::new(&Actor::System, "orders.backfilled", "store").after(
                        serde_json::json!({
                            "since": args.since,
                            "checked": found.checked,
                            "missing": found.missing,
                            "behind": found.behind,
                        }),
                    ),
                )
                .await?;
            println!("{}", found.summary());
            store.close().await;
            Ok(())
        }
        Command::Bench(args) if args.queue => {
            crate::bench::queue::run(crate::bench::queue::QueueBenchOptions {
                postgres: args.postgres,
                orders: args.orders as i64,
                exceptions: args.exceptions.min(args.orders as i64),
                samples: args.samples.max(1),
            })
            .await
        }
        Command::Bench(args) => {
            crate::bench::run(crate::bench::BenchOptions {
                postgres: args.postgres,
                orders: args.orders,
                rate: args.rate,
                concurrency: args.concurrency,
                workers: args.workers,
                deliveries_per_worker: args.deliveries_per_worker,
                connections: args.connections,
            })
            .await
        }
        Command::Migrate(database) => {
            open(&database).await?;
            println!("Database is up to date.");
            Ok(())
        }
        Command::Simulate(args) => {
            let secret = Secret::new(args.shopify_webhook_secret);
            crate::demo::simulate(args.target, secret, args.rate, args.seed, args.burst).await
        }
        Command::Demo(args) => {
            let mut web = args.web.clone();
            let options = crate::demo::DemoOptions {
                traffic: (!args.no_traffic).then_some(args.rate),
                listen: web.listen,
            };
            crate::demo::run(
                &args.demo_db,
                options,
                |store, destinations, secret, admin| async move {
                    web.shopify_webhook_secret = Some(secret.expose().to_string());
                    web.shop.store_url = Some(admin.url);
                    web.shop.store_token = Some(admin.token.expose().to_string());
                    // The demo loses a webhook now and then; reconcile every minute so a
                    // newcomer sees those orders found.
                    web.shop.reconcile_every = web.shop.reconcile_every.min(60);
                    serve(
                        store,
                        &web,
                        Some((destinations, 2, WorkerConfig::default())),
                    )
                    .await
                },
            )
            .await
        }
        Command::User(UserCommand::Add {
            database,
            email,
            name,
            roles,
        }) => {
            let store = open(&database).await?;
            let password = read_password()?;
            let accounts = Accounts::new(store, ThrottlePolicy::default());
            let name = name.unwrap_or_else(|| email.clone());
            let user = accounts
                .add_user(&email, &name, password, roles, &Actor::System)
                .await?;
            let roles = user
                .roles
                .iter()
                .map(|r| r.as_str())
                .collect::<Vec<_>>()
                .join(", ");
            println!("Added {} ({roles}).", user.email);
            Ok(())
        }
        Command::Token(TokenCommand::Create {
            database,
            name,
            roles,
        }) => {
            let store = open(&database).await?;
            let (secret, hash) = new_token();
            let token = store
                .create_token(&name, &hash, &roles, &Actor::System)
                .await?;
            println!(
                "Token {:?} created (id {}). Copy it now; it is not shown again:\n{secret}",
                token.name, token.id
            );
            Ok(())
        }
    }
}

/// Reads a password without echo from a terminal, or the first line of piped standard input.
fn read_password() -> anyhow::Result<String> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        let first = rpassword::prompt_password("Password (at least 12 characters): ")?;
        let second = rpassword::prompt_password("Repeat it: ")?;
        if first != second {
            bail!("the two passwords differ");
        }
        Ok(first)
    } else {
        let mut line = String::new();
        stdin
            .lock()
            .read_line(&mut line)
            .context("reading the password from standard input")?;
        Ok(line.trim_end_matches(['\r', '\n']).to_string())
    }
}

async fn serve(
    store: Store,
    args: &WebArgs,
    engine: Option<(DestinationSettings, usize, WorkerConfig)>,
) -> anyhow::Result<()> {
    let settings = WebSettings {
        tls: args
            .public_url
            .as_ref()
            .is_some_and(|u| u.scheme() == "https"),
        trust_proxy: args.trust_proxy,
        site_root: args.site_root.clone(),
        throttle: ThrottlePolicy::default(),
        shopify_webhook_secret: args
            .shopify_webhook_secret
            .clone()
            .map(crate::secret::Secret::new),
    };
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
    let engine = match engine {
        Some((settings, count, config)) => Some((settings.connect()?, count, config)),
        None => None,
    };
    let mut state = AppState::new(store.clone(), settings, addr);
    if let Some((destinations, _, _)) = &engine {
        state = state.with_erp(destinations.erp.clone());
    }
    if let Some(shop) = args.shop.admin()? {
        state = state.with_shop(shop);
    }
    tracing::info!(%addr, backend = ?store.backend(), "SyncDesk is serving");
    web::run_background(&store);
    let workers = engine.map(|(destinations, count, config)| {
        Workers::spawn(&store, destinations, config, state.wake.clone(), count)
    });
    // Reconciliation takes orders in; only a process that also syncs them runs it.
    let reconciler = match &workers {
        Some(_) => args.shop.reconciler(&store, state.wake.clone())?,
        None => None,
    };
    web::serve(listener, state, shutdown_signal()).await?;
    if let Some(reconciler) = reconciler {
        reconciler.shutdown().await;
    }
    if let Some(workers) = workers {
        workers.shutdown().await;
    }
    store.close().await;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        if let Ok(mut sig) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            sig.recv().await;
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}

//! The command line's arguments and subcommands (every flag can also come from the environment).

use std::net::SocketAddr;

use anyhow::bail;
use app::model::Role;
use clap::builder::TypedValueParser;
use clap::{Args, Subcommand};

use crate::engine::DestinationSettings;
use crate::engine::reconcile::Reconciler;
use crate::engine::worker::WorkerConfig;
use crate::secret::Secret;
use crate::store::Store;

#[derive(Debug, Clone, Args)]
pub(super) struct DatabaseArgs {
    /// Database to use: a `sqlite:` URL (file created on first use) or a `postgres:` URL.
    #[arg(long, env = "DATABASE_URL", default_value = "sqlite:syncdesk.db")]
    pub(super) database_url: String,
    /// Connections this process may open to the database.
    #[arg(long, env = "SYNCDESK_DATABASE_MAX_CONNECTIONS", default_value_t = 16,
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub(super) database_max_connections: u32,
}

#[derive(Debug, Clone, Args)]
pub(super) struct WebArgs {
    /// Address to serve on.
    #[arg(long, env = "SYNCDESK_LISTEN", default_value = "127.0.0.1:3000")]
    pub(super) listen: SocketAddr,
    /// Public URL people reach SyncDesk at; an `https:` URL marks cookies Secure and sends HSTS.
    #[arg(long, env = "SYNCDESK_PUBLIC_URL")]
    pub(super) public_url: Option<url::Url>,
    /// Take client addresses from X-Forwarded-For (only behind a proxy you control).
    #[arg(long, env = "SYNCDESK_TRUST_PROXY", default_value_t = false)]
    pub(super) trust_proxy: bool,
    /// Folder with the compiled site (cargo-leptos output).
    #[arg(long, env = "LEPTOS_SITE_ROOT", default_value = "target/site")]
    pub(super) site_root: String,
    /// Shared secret the store signs webhooks with. (`serve` refuses an empty one; the demo
    /// makes one for the run.)
    #[arg(
        long,
        env = "SHOPIFY_WEBHOOK_SECRET",
        hide_env_values = true,
        hide_default_value = true
    )]
    pub(super) shopify_webhook_secret: Option<String>,
    #[command(flatten)]
    pub(super) shop: ShopArgs,
}

#[derive(Debug, Clone, Args)]
pub(super) struct ShopArgs {
    /// Base URL of the store's Admin API, for "resync from the store" and reconciliation
    /// (optional).
    #[arg(long, env = "SYNCDESK_STORE_URL")]
    pub(super) store_url: Option<url::Url>,
    /// The store's Admin API access token.
    #[arg(long, env = "SYNCDESK_STORE_TOKEN", value_parser = parse_secret, hide_env_values = true)]
    pub(super) store_token: Option<String>,
    /// Seconds between reconciliation passes, which read the orders the store changed through
    /// its Admin API and take in those whose webhooks never came (0: no passes).
    #[arg(long, env = "SYNCDESK_RECONCILE_EVERY", default_value_t = 600,
          value_parser = clap::value_parser!(u64).range(0..=7 * 24 * 3600))]
    pub(super) reconcile_every: u64,
}

impl ShopArgs {
    /// The Admin API client, when both its URL and token are given.
    pub(super) fn admin(&self) -> anyhow::Result<Option<crate::connectors::ShopAdmin>> {
        match (&self.store_url, &self.store_token) {
            (Some(url), Some(token)) => {
                refuse_control_characters("SYNCDESK_STORE_TOKEN", token)?;
                Ok(Some(crate::connectors::ShopAdmin::new(
                    url.clone(),
                    token,
                    std::time::Duration::from_secs(10),
                )?))
            }
            (None, None) => Ok(None),
            _ => bail!(
                "the store's Admin API needs both SYNCDESK_STORE_URL and SYNCDESK_STORE_TOKEN"
            ),
        }
    }

    /// Starts scheduled reconciliation, when the Admin API is configured and passes are on.
    pub(super) fn reconciler(
        &self,
        store: &Store,
        wake: crate::engine::wake::Wake,
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
pub(super) struct DestinationArgs {
    /// Base URL of the CRM's API.
    #[arg(long, env = "SYNCDESK_CRM_URL")]
    pub(super) crm_url: Option<url::Url>,
    /// Bearer token for the CRM.
    #[arg(long, env = "SYNCDESK_CRM_TOKEN", value_parser = parse_secret, hide_env_values = true)]
    pub(super) crm_token: Option<String>,
    /// Base URL of the ERP's API.
    #[arg(long, env = "SYNCDESK_ERP_URL")]
    pub(super) erp_url: Option<url::Url>,
    /// Bearer token for the ERP.
    #[arg(long, env = "SYNCDESK_ERP_TOKEN", value_parser = parse_secret, hide_env_values = true)]
    pub(super) erp_token: Option<String>,
    /// Workers in this process (4 keep the sync lag low at 500 orders/s on 2 cores; see
    /// docs/PERFORMANCE.md).
    #[arg(long, env = "SYNCDESK_WORKERS", default_value_t = 4)]
    pub(super) workers: usize,
    /// Deliveries each worker keeps in flight at once; a worker claims again once half of
    /// them are done, so this also sets how many tasks a claim takes.
    #[arg(long, env = "SYNCDESK_DELIVERIES_PER_WORKER", default_value_t = WorkerConfig::default().concurrency, value_parser = clap::value_parser!(u16).range(1..=1024).map(usize::from))]
    pub(super) deliveries_per_worker: usize,
    /// Requests per second sent to each destination (0: no client-side limit).
    #[arg(long, env = "SYNCDESK_DESTINATION_RATE_LIMIT", default_value_t = 50.0)]
    pub(super) destination_rate_limit: f64,
    /// Seconds a claimed delivery is held for the worker that claimed it; after that (its
    /// process died, say) another worker takes it over. Keep it well above a request's
    /// timeout (10 s).
    #[arg(long, env = "SYNCDESK_LEASE_SECS", default_value_t = WorkerConfig::default().lease.as_secs(), value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub(super) lease_secs: u64,
}

impl DestinationArgs {
    /// How each worker of this process is tuned.
    pub(super) fn worker_config(&self) -> WorkerConfig {
        WorkerConfig {
            concurrency: self.deliveries_per_worker,
            lease: std::time::Duration::from_secs(self.lease_secs),
            ..WorkerConfig::default()
        }
    }

    /// The destinations, when all four settings are given; an error naming what is missing
    /// when only some are.
    pub(super) fn settings(&self) -> anyhow::Result<Option<DestinationSettings>> {
        match (
            &self.crm_url,
            &self.crm_token,
            &self.erp_url,
            &self.erp_token,
        ) {
            (None, None, None, None) => Ok(None),
            (Some(crm_url), Some(crm_token), Some(erp_url), Some(erp_token)) => {
                refuse_control_characters("SYNCDESK_CRM_TOKEN", crm_token)?;
                refuse_control_characters("SYNCDESK_ERP_TOKEN", erp_token)?;
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
pub(super) struct ServeArgs {
    #[command(flatten)]
    pub(super) database: DatabaseArgs,
    #[command(flatten)]
    pub(super) web: WebArgs,
    #[command(flatten)]
    pub(super) destinations: DestinationArgs,
}

#[derive(Debug, Args)]
pub(super) struct BenchArgs {
    /// Run on PostgreSQL: a server URL; a fresh database is created on it and dropped after.
    /// Without it, a fresh SQLite file.
    #[arg(long)]
    pub(super) postgres: Option<String>,
    /// Orders to send.
    #[arg(long, default_value_t = 5000)]
    pub(super) orders: usize,
    /// Orders per second to send at (default: as fast as SyncDesk acknowledges).
    #[arg(long, value_parser = parse_rate)]
    pub(super) rate: Option<f64>,
    /// Webhook requests in flight at once.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u16).range(1..=4096).map(usize::from))]
    pub(super) concurrency: usize,
    /// Workers.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=256).map(usize::from))]
    pub(super) workers: usize,
    /// Deliveries each worker keeps in flight (as SYNCDESK_DELIVERIES_PER_WORKER).
    #[arg(long, default_value_t = WorkerConfig::default().concurrency, value_parser = clap::value_parser!(u16).range(1..=1024).map(usize::from))]
    pub(super) deliveries_per_worker: usize,
    /// Database connections of the SyncDesk under test.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub(super) connections: u32,
    /// Time the operators' screens instead: seed --orders orders with --exceptions open
    /// exceptions, then time the queue, group, list and search calls.
    #[arg(long, default_value_t = false)]
    pub(super) queue: bool,
    /// With --queue: open exceptions to seed.
    #[arg(long, default_value_t = 100_000)]
    pub(super) exceptions: i64,
    /// With --queue: timed runs of each call.
    #[arg(long, default_value_t = 50)]
    pub(super) samples: usize,
}

#[derive(Debug, Args)]
pub(super) struct WorkerArgs {
    #[command(flatten)]
    pub(super) database: DatabaseArgs,
    #[command(flatten)]
    pub(super) destinations: DestinationArgs,
    #[command(flatten)]
    pub(super) shop: ShopArgs,
}

#[derive(Debug, Args)]
pub(super) struct BackfillArgs {
    #[command(flatten)]
    pub(super) database: DatabaseArgs,
    /// Base URL of the store's Admin API.
    #[arg(long, env = "SYNCDESK_STORE_URL")]
    pub(super) store_url: url::Url,
    /// The store's Admin API access token.
    #[arg(long, env = "SYNCDESK_STORE_TOKEN", value_parser = parse_secret, hide_env_values = true)]
    pub(super) store_token: String,
    /// Take in the orders the store changed at or after this instant (RFC 3339, or a date).
    #[arg(long, value_parser = parse_since)]
    pub(super) since: chrono::DateTime<chrono::Utc>,
}

/// An RFC 3339 instant, or a date (its midnight, UTC).
/// A rate of orders a second: a positive number.
pub(super) fn parse_rate(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(rate) if rate.is_finite() && rate > 0.0 => Ok(rate),
        _ => Err(format!(
            "{text:?} is not a rate: give orders a second, more than 0"
        )),
    }
}

pub(super) fn parse_since(text: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    if let Ok(at) = chrono::DateTime::parse_from_rfc3339(text) {
        return Ok(at.with_timezone(&chrono::Utc));
    }
    chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map(|day| day.and_time(chrono::NaiveTime::MIN).and_utc())
        .map_err(|_| format!("{text:?} is neither a date (2026-11-01) nor an RFC 3339 instant"))
}

#[derive(Debug, Args)]
pub(super) struct SimulateArgs {
    /// SyncDesk's webhook URL to send the store's orders to.
    #[arg(
        long,
        env = "SYNCDESK_SIMULATE_TARGET",
        default_value = "http://127.0.0.1:3000/webhooks/shopify"
    )]
    pub(super) target: url::Url,
    /// Shared secret to sign webhooks with (the same SyncDesk checks).
    #[arg(long, env = "SHOPIFY_WEBHOOK_SECRET", value_parser = parse_secret, hide_env_values = true)]
    pub(super) shopify_webhook_secret: String,
    /// Orders per minute ("30/min"), per second ("5/s") or per hour ("600/h").
    #[arg(long, env = "SYNCDESK_SIMULATE_RATE", default_value = "30/min")]
    pub(super) rate: crate::simulate::store::Rate,
    /// Seed of the generated orders.
    #[arg(long, env = "SYNCDESK_SIMULATE_SEED", default_value_t = 1)]
    pub(super) seed: u64,
    /// Send this many orders as fast as SyncDesk takes them, then stop (instead of a steady rate).
    #[arg(long)]
    pub(super) burst: Option<usize>,
}

#[derive(Debug, Args)]
pub(super) struct DemoArgs {
    #[command(flatten)]
    pub(super) web: WebArgs,
    /// Keep the simulated CRM and ERP but send no orders (post your own signed webhooks).
    #[arg(long, env = "SYNCDESK_DEMO_NO_TRAFFIC", default_value_t = false)]
    pub(super) no_traffic: bool,
    /// Pace of the demo's orders ("30/min", "5/s").
    #[arg(long, env = "SYNCDESK_DEMO_RATE", default_value = "30/min")]
    pub(super) rate: crate::simulate::store::Rate,
    /// Where the demo database lives; it is emptied at every start.
    #[arg(long, env = "SYNCDESK_DEMO_DB", default_value = "syncdesk-demo.db")]
    pub(super) demo_db: std::path::PathBuf,
}

#[derive(Debug, Subcommand)]
pub(super) enum UserCommand {
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
pub(super) enum TokenCommand {
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
    /// List the API tokens: id, name, roles, when made, last used and revoked (never secrets).
    List {
        #[command(flatten)]
        database: DatabaseArgs,
    },
    /// Revoke an API token (by the id `token create` and `token list` print): requests with it
    /// are refused from that moment.
    Revoke {
        #[command(flatten)]
        database: DatabaseArgs,
        /// The token's id.
        #[arg(long)]
        id: i64,
    },
}

/// Refuses a token or secret holding a line break or another control character, the mark of a value
/// copied from a file saved with Windows line endings. Sent as a header it could only go out
/// empty, and the destination, answering 401, would be paused as if the token were wrong.
/// Checked here rather than as the flag is parsed, where the refusal would print the value.
pub(super) fn refuse_control_characters(name: &str, token: &str) -> anyhow::Result<()> {
    if token.chars().any(char::is_control) {
        bail!(
            "{name} contains a line break or another control character (copied from a file saved with Windows line endings?): set the token alone"
        );
    }
    Ok(())
}

/// A secret or token as given: an empty one (or only spaces) is refused, as it would be no
/// secret at all: anyone could sign a webhook with an empty key.
pub(super) fn parse_secret(s: &str) -> Result<String, String> {
    if s.trim().is_empty() {
        return Err("it is empty; set the real value, or leave it unset".into());
    }
    Ok(s.to_owned())
}

pub(super) fn parse_role(s: &str) -> Result<Role, String> {
    Role::parse(s)
        .ok_or_else(|| format!("unknown role {s:?}; use operator, steward, manager or admin"))
}

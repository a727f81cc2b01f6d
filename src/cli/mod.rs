//! Command-line interface: every flag can also come from the environment (the flags and
//! subcommands in `args`, the server in `serve`).

mod args;
mod serve;

use std::io::{BufRead, IsTerminal};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};

use args::{
    BackfillArgs, BenchArgs, DatabaseArgs, DemoArgs, ServeArgs, SimulateArgs, TokenCommand,
    UserCommand, WorkerArgs, refuse_control_characters,
};
use serve::{serve, shutdown_signal};

use crate::accounts::{Accounts, ThrottlePolicy, new_token};
use crate::audit::Actor;
use crate::engine::Workers;
use crate::engine::reconcile::{Reconciled, reconcile_into};
use crate::engine::worker::WorkerConfig;
use crate::secret::Secret;
use crate::store::{Revoked, Store, StoreError, TokenListing};
use app::model::Role;

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

/// Roles as given on the command line, each once (`--role admin --role admin` means admin).
fn distinct(mut roles: Vec<Role>) -> Vec<Role> {
    roles.sort();
    roles.dedup();
    roles
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => {
            if args
                .web
                .shopify_webhook_secret
                .as_ref()
                .is_some_and(|secret| secret.trim().is_empty())
            {
                bail!(
                    "SHOPIFY_WEBHOOK_SECRET is empty, and anyone could sign a webhook with an empty key: set the store's secret, or leave it unset to refuse webhooks"
                );
            }
            if let Some(secret) = &args.web.shopify_webhook_secret {
                refuse_control_characters("SHOPIFY_WEBHOOK_SECRET", secret)?;
            }
            let destinations = args.destinations.settings()?;
            let store = open(&args.database).await?;
            if store.user_count().await? == 0 {
                tracing::warn!(
                    "no user accounts yet: create the first admin with `syncdesk user add --role admin`"
                );
            }
            if args.web.shopify_webhook_secret.is_none() {
                tracing::warn!(
                    "no SHOPIFY_WEBHOOK_SECRET: store webhooks are refused (503) until it is set"
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
            let wake = crate::engine::wake::Wake::for_store(&store);
            let destinations = destinations.connect()?;
            destinations.resume_renewed(&store).await?;
            // Everything that can refuse the configuration does so before a worker claims a
            // task: one ending the process after would leave its claims to wait out their lease.
            let reconciler = args.shop.reconciler(&store, wake.clone())?;
            let workers = Workers::spawn(
                &store,
                destinations,
                args.destinations.worker_config(),
                wake,
                count,
            );
            tracing::info!(workers = count, "workers running; stop with Ctrl-C");
            shutdown_signal().await;
            if let Some(reconciler) = reconciler {
                reconciler.shutdown().await;
            }
            workers.shutdown().await;
            store.close().await;
            Ok(())
        }
        Command::Backfill(args) => {
            refuse_control_characters("SYNCDESK_STORE_TOKEN", &args.store_token)?;
            let store = open(&args.database).await?;
            let shop = crate::connectors::ShopAdmin::new(
                args.store_url,
                &args.store_token,
                std::time::Duration::from_secs(30),
            )?;
            // One pass with none after it: nothing is left to a webhook that may never come.
            // A pass that stops partway has taken in what it read before: audited and said,
            // then the reason it stopped.
            let mut found = Reconciled::default();
            let result = reconcile_into(
                &store,
                &shop,
                args.since,
                chrono::TimeDelta::zero(),
                None,
                &mut found,
            )
            .await;
            let mut after = serde_json::json!({
                "since": args.since,
                "checked": found.checked,
                "missing": found.missing,
                "behind": found.behind,
            });
            if let Err(error) = &result {
                after["stopped"] = serde_json::json!(error.to_string());
            }
            if result.is_err() && found.checked > 0 {
                println!("Stopped partway. {}", found.summary());
            } else if result.is_ok() {
                println!("{}", found.summary());
            }
            let audited = store
                .record(
                    &crate::audit::Change::new(&Actor::System, "orders.backfilled", "store")
                        .after(after),
                )
                .await;
            store.close().await;
            // Why the pass stopped comes first: an unreachable database fails the audit too.
            result?;
            audited?;
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
            refuse_control_characters("SHOPIFY_WEBHOOK_SECRET", &args.shopify_webhook_secret)?;
            let secret = Secret::new(args.shopify_webhook_secret);
            crate::demo::simulate(args.target, secret, args.rate, args.seed, args.burst).await
        }
        Command::Demo(args) => {
            let mut web = args.web.clone();
            let options = crate::demo::DemoOptions {
                traffic: (!args.no_traffic).then_some(args.rate),
                listen: web.listen,
                webhook_secret: web.shopify_webhook_secret.take(),
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
                .add_user(&email, &name, password, distinct(roles), &Actor::System)
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
                .create_token(&name, &hash, &distinct(roles), &Actor::System)
                .await?;
            println!(
                "Token {:?} created (id {}). Copy it now; it is not shown again:\n{secret}",
                token.name, token.id
            );
            Ok(())
        }
        Command::Token(TokenCommand::List { database }) => {
            let store = open(&database).await?;
            print!("{}", token_table(&store.tokens().await?));
            Ok(())
        }
        Command::Token(TokenCommand::Revoke { database, id }) => {
            let store = open(&database).await?;
            match store.revoke_token(id, &Actor::System).await {
                Ok(Revoked::Now { name }) => {
                    println!("Token {name:?} (id {id}) revoked: requests with it are refused.");
                    Ok(())
                }
                Ok(Revoked::Already { name, at }) => {
                    println!(
                        "Token {name:?} (id {id}) was already revoked on {}.",
                        at.format("%Y-%m-%d %H:%M UTC")
                    );
                    Ok(())
                }
                Err(StoreError::NotFound(_)) => Err(anyhow::anyhow!(
                    "There is no token with id {id}; `syncdesk token list` shows them."
                )),
                Err(err) => Err(err.into()),
            }
        }
    }
}

/// The tokens as `token list` prints them: one line each under a header, or a sentence when
/// there are none.
fn token_table(tokens: &[TokenListing]) -> String {
    if tokens.is_empty() {
        return "No API tokens yet; `syncdesk token create` makes one.\n".to_string();
    }
    let when = |t: Option<chrono::DateTime<chrono::Utc>>| {
        t.map_or_else(
            || "-".to_string(),
            |t| t.format("%Y-%m-%d %H:%M").to_string(),
        )
    };
    let rows: Vec<[String; 6]> = tokens
        .iter()
        .map(|t| {
            [
                t.id.to_string(),
                t.name.clone(),
                t.roles
                    .iter()
                    .map(|r| r.as_str())
                    .collect::<Vec<_>>()
                    .join(","),
                when(Some(t.created_at)),
                when(t.last_used_at),
                when(t.revoked_at),
            ]
        })
        .collect();
    let header = [
        "ID",
        "NAME",
        "ROLES",
        "CREATED (UTC)",
        "LAST USED",
        "REVOKED",
    ];
    let mut widths = header.map(str::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: [&str; 6]| {
        let mut out = String::new();
        for (n, (cell, width)) in cells.iter().zip(widths).enumerate() {
            if n + 1 == cells.len() {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<width$}  "));
            }
        }
        out.push('\n');
        out
    };
    let mut table = line(header);
    for row in &rows {
        table.push_str(&line(row.each_ref().map(String::as_str)));
    }
    table
}

/// `err` and its causes in one line, each cause once: the database driver's errors repeat their
/// cause in their own text, which a plain `{err:#}` would print two or three times.
pub fn one_line(err: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
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

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("error returned from database: disk I/O error")]
    struct Driver;

    #[derive(Debug, thiserror::Error)]
    #[error("while executing migration 3: {0}")]
    struct Migration(#[source] Driver);

    #[test]
    fn each_cause_is_said_once() {
        let err = anyhow::Error::new(Migration(Driver)).context("database migration failed");
        assert_eq!(
            one_line(&err),
            "database migration failed: while executing migration 3: error returned from database: disk I/O error"
        );
        let plain = anyhow::anyhow!("the two passwords differ");
        assert_eq!(one_line(&plain), "the two passwords differ");
    }

    /// A rate of nothing used to panic the benchmark, and no requests in flight hang it.
    #[test]
    fn the_benchmark_refuses_rates_and_sizes_it_cannot_run() {
        for bad in [
            &["--rate", "0"][..],
            &["--rate", "-5"],
            &["--rate", "NaN"],
            &["--rate", "inf"],
            &["--concurrency", "0"],
            &["--workers", "0"],
            &["--connections", "0"],
        ] {
            let parsed = Cli::try_parse_from(["syncdesk", "bench"].iter().chain(bad));
            assert!(parsed.is_err(), "{bad:?} should be refused");
        }
        // No connections at all would wait for one that can never open, then blame the server.
        let parsed = Cli::try_parse_from(["syncdesk", "serve", "--database-max-connections", "0"]);
        assert!(
            parsed.is_err(),
            "--database-max-connections 0 should be refused"
        );
        let ok = Cli::try_parse_from(["syncdesk", "bench", "--rate", "500", "--concurrency", "8"]);
        assert!(ok.is_ok(), "{ok:?}");
    }
}

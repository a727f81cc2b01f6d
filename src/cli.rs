//! Command-line interface: every flag can also come from the environment.

use std::io::{BufRead, IsTerminal};
use std::net::SocketAddr;

use anyhow::{Context, bail};
use app::model::Role;
use clap::{Args, Parser, Subcommand};
use tokio::net::TcpListener;

use crate::accounts::{Accounts, ThrottlePolicy, new_token};
use crate::audit::Actor;
use crate::store::Store;
use crate::web::{self, AppState, WebSettings};

/// SyncDesk keeps ecommerce orders consistent across a store, a CRM and an ERP.
#[derive(Debug, Parser)]
#[command(name = "syncdesk", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the web app and API, and run the background work.
    Serve(ServeArgs),
    /// Run only the background work (no web server): for scaling workers apart from the web.
    Worker(DatabaseArgs),
    /// Apply database migrations and exit.
    Migrate(DatabaseArgs),
    /// Start a demo on a fresh SQLite database, with sign-in details printed.
    Demo(DemoArgs),
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
}

#[derive(Debug, Args)]
struct ServeArgs {
    #[command(flatten)]
    database: DatabaseArgs,
    #[command(flatten)]
    web: WebArgs,
}

#[derive(Debug, Args)]
struct DemoArgs {
    #[command(flatten)]
    web: WebArgs,
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
    let store = Store::connect(&database.database_url).await?;
    store.migrate().await?;
    Ok(store)
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => {
            let store = open(&args.database).await?;
            if store.user_count().await? == 0 {
                tracing::warn!(
                    "no user accounts yet: create the first admin with `syncdesk user add --role admin`"
                );
            }
            serve(store, &args.web).await
        }
        Command::Worker(database) => {
            let store = open(&database).await?;
            crate::web::run_background(&store);
            tracing::info!("worker running; stop with Ctrl-C");
            shutdown_signal().await;
            Ok(())
        }
        Command::Migrate(database) => {
            open(&database).await?;
            println!("Database is up to date.");
            Ok(())
        }
        Command::Demo(args) => {
            crate::demo::run(&args.demo_db, |store| serve_owned(store, args.web.clone())).await
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

async fn serve_owned(store: Store, web: WebArgs) -> anyhow::Result<()> {
    serve(store, &web).await
}

async fn serve(store: Store, args: &WebArgs) -> anyhow::Result<()> {
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
    let state = AppState::new(store.clone(), settings, addr);
    tracing::info!(%addr, backend = ?store.backend(), "SyncDesk is serving");
    web::run_background(&store);
    web::serve(listener, state, shutdown_signal()).await?;
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

//! `syncdesk demo`: a fresh SQLite database with one account per role, a simulated store, CRM
//! and ERP on loopback, and live order traffic — so a newcomer sees orders flow and real
//! exceptions appear. Also `syncdesk simulate`, the simulators on their own.

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;

use anyhow::Context;
use app::model::Role;
use base64::Engine;
use rand::RngCore;

use crate::accounts::{Accounts, ThrottlePolicy};
use crate::audit::Actor;
use crate::engine::DestinationSettings;
use crate::secret::Secret;
use crate::simulate::SimHandle;
use crate::simulate::crm::{CrmSimConfig, spawn_crm};
use crate::simulate::erp::{ErpCatalogue, ErpSimConfig, spawn_erp};
use crate::simulate::shopify::CATALOGUE;
use crate::simulate::store::{
    Misbehaviour, Rate, StoreSimConfig, Traffic, WebhookSender, spawn_store,
};
use crate::store::Store;

/// How the demo runs.
#[derive(Clone, Debug)]
pub struct DemoOptions {
    /// Order traffic, or `None` for `--no-traffic`.
    pub traffic: Option<Rate>,
    /// Where SyncDesk listens (the traffic posts its webhooks there).
    pub listen: SocketAddr,
    /// The webhook secret given (`--shopify-webhook-secret` or `SHOPIFY_WEBHOOK_SECRET`);
    /// without one the run makes its own.
    pub webhook_secret: Option<String>,
}

/// The simulated CRM and ERP. The ERP knows `ERP-<sku>` for every catalogue SKU, including the
/// new `NEW-…` products nobody has mapped yet: mapping one in SKU mappings releases its orders.
async fn destinations() -> anyhow::Result<(SimHandle, SimHandle, DestinationSettings)> {
    let crm = spawn_crm(CrmSimConfig::default()).await?;
    let codes = CATALOGUE
        .iter()
        .filter(|p| !p.sku.is_empty())
        .map(|p| format!("ERP-{}", p.sku));
    let erp = spawn_erp(ErpSimConfig {
        catalogue: ErpCatalogue::from_codes(codes),
        ..Default::default()
    })
    .await?;
    let settings = DestinationSettings {
        crm_url: crm.base_url().clone(),
        crm_token: Secret::new(crm.token()),
        erp_url: erp.base_url().clone(),
        erp_token: Secret::new(erp.token()),
        requests_per_second: Some(50.0),
    };
    Ok((crm, erp, settings))
}

fn random_text(bytes: usize) -> String {
    let mut raw = vec![0u8; bytes];
    rand::rngs::OsRng.fill_bytes(&mut raw);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

/// The demo accounts: email, name, roles.
/// Orders the simulated store keeps under live traffic: the most recently changed, about 11
/// hours at the demo's default 30 a minute (each kept as its JSON), which is what backfill and
/// reconciliation read; older ones go, so a demo left running does not grow without end.
const LIVE_ORDERS_KEPT: usize = 20_000;

const ACCOUNTS: [(&str, &str, &[Role]); 4] = [
    (
        "admin@demo.syncdesk.dev",
        "Avery Admin",
        &[Role::Admin, Role::Operator, Role::Steward, Role::Manager],
    ),
    (
        "operator@demo.syncdesk.dev",
        "Olu Operator",
        &[Role::Operator],
    ),
    ("steward@demo.syncdesk.dev", "Sam Steward", &[Role::Steward]),
    ("manager@demo.syncdesk.dev", "Mia Manager", &[Role::Manager]),
];

/// Empties the demo database at `path`, creates the accounts and SKU mappings, starts the
/// simulators (and traffic), prints how to sign in, and hands everything to `serve`.
pub async fn run<F, Fut>(path: &Path, options: DemoOptions, serve: F) -> anyhow::Result<()>
where
    F: FnOnce(Store, DestinationSettings, Secret, StoreAdminSettings) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    for suffix in ["", "-wal", "-shm"] {
        let mut file = path.as_os_str().to_owned();
        file.push(suffix);
        match std::fs::remove_file(&file) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("cannot reset the demo database {}", path.display()));
            }
        }
    }
    let url = format!("sqlite:{}", path.display());
    let store = Store::connect(&url).await?;
    store.migrate().await?;

    // A fresh random password per run: the demo never ships a known credential.
    let password = format!("demo-{}", random_text(9));
    let accounts = Accounts::new(store.clone(), ThrottlePolicy::default());
    for (email, name, roles) in ACCOUNTS {
        accounts
            .add_user(
                email,
                name,
                password.clone(),
                roles.to_vec(),
                &Actor::System,
            )
            .await?;
    }
    for product in CATALOGUE
        .iter()
        .filter(|p| !p.sku.is_empty() && !p.sku.starts_with("NEW-"))
    {
        store
            .save_sku_mapping(product.sku, &format!("ERP-{}", product.sku), &Actor::System)
            .await?;
    }
    let (_crm, _erp, destinations) = destinations().await?;
    let given_secret = options.webhook_secret.filter(|s| !s.trim().is_empty());
    let secret = Secret::new(given_secret.clone().unwrap_or_else(|| random_text(24)));
    let shop = spawn_store(StoreSimConfig {
        keep_orders: Some(LIVE_ORDERS_KEPT),
        ..StoreSimConfig::default()
    })
    .await?;
    let target: url::Url = format!("http://{}/webhooks/shopify", options.listen).parse()?;
    let _traffic = match options.traffic {
        // One webhook in a hundred never arrives, as when Shopify gives up on an endpoint:
        // reconciliation finds those orders through the Admin API.
        Some(rate) => Some(
            Traffic::new(
                WebhookSender::new(target.clone(), secret.clone())?
                    .with_shop_domain(shop.shop_domain()),
                shop.orders().clone(),
                7,
            )
            .with_misbehaviour(Misbehaviour {
                lost: 0.01,
                ..Misbehaviour::default()
            })
            .run(rate),
        ),
        None => None,
    };

    let listen = options.listen;
    println!();
    println!("  SyncDesk demo is starting at  http://{listen}/");
    println!();
    println!("  Sign in as any of these, all with the password  {password}");
    for (email, _, roles) in ACCOUNTS {
        let roles = roles
            .iter()
            .map(|r| r.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        println!("    {email:<30} {roles}");
    }
    println!();
    match options.traffic {
        Some(rate) => {
            println!(
                "  A simulated store sends about {rate} orders; SyncDesk syncs them to a simulated CRM and ERP."
            );
            println!(
                "  One webhook in a hundred is lost on the way; reconciliation finds those orders within a minute."
            )
        }
        None => {
            println!("  No traffic (--no-traffic). Post signed Shopify webhooks to {target}");
            match given_secret {
                Some(_) => println!(
                    "  signed with the secret you gave (--shopify-webhook-secret or SHOPIFY_WEBHOOK_SECRET)."
                ),
                None => println!("  signed with this run's secret: {}", secret.expose()),
            }
        }
    }
    println!(
        "  Simulated CRM at {} and ERP at {}.",
        destinations.crm_url, destinations.erp_url
    );
    println!(
        "  Database: {} (emptied at every demo start). Stop with Ctrl-C.",
        path.display()
    );
    println!();
    let admin = StoreAdminSettings {
        url: shop.base_url().clone(),
        token: Secret::new(shop.access_token()),
    };
    serve(store, destinations, secret, admin).await
}

/// Where the store's Admin API is, and its access token (for "resync from the store").
#[derive(Clone, Debug)]
pub struct StoreAdminSettings {
    /// The shop's base URL.
    pub url: url::Url,
    /// The Admin API access token.
    pub token: Secret,
}

/// `syncdesk simulate`: the store (sending signed webhooks to `target`), CRM and ERP on
/// loopback, until Ctrl-C or, with `burst`, until that many orders were acknowledged.
pub async fn simulate(
    target: url::Url,
    secret: Secret,
    rate: Rate,
    seed: u64,
    burst: Option<usize>,
) -> anyhow::Result<()> {
    let (_crm, _erp, destinations) = destinations().await?;
    // A burst's orders are all kept (a backfill must find every one); live traffic keeps the
    // most recent.
    let shop = spawn_store(StoreSimConfig {
        keep_orders: burst.is_none().then_some(LIVE_ORDERS_KEPT),
        ..StoreSimConfig::default()
    })
    .await?;
    println!(
        "Simulated store Admin API: {} (access token {})",
        shop.base_url(),
        shop.access_token()
    );
    println!(
        "Simulated CRM: SYNCDESK_CRM_URL={} SYNCDESK_CRM_TOKEN={}",
        destinations.crm_url,
        destinations.crm_token.expose()
    );
    println!(
        "Simulated ERP: SYNCDESK_ERP_URL={} SYNCDESK_ERP_TOKEN={}",
        destinations.erp_url,
        destinations.erp_token.expose()
    );
    if let Some(n) = burst {
        let sender = WebhookSender::new(target, secret)?.with_shop_domain(shop.shop_domain());
        let report = Traffic::new(sender, shop.orders().clone(), seed)
            .burst(n)
            .await?;
        println!("{}", report.stats);
        return Ok(());
    }
    let traffic = Traffic::spawn(target.clone(), secret, &shop, rate, seed)?;
    println!("Sending about {rate} orders to {target}. Stop with Ctrl-C.");
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            () = tokio::time::sleep(std::time::Duration::from_secs(30)) => println!("{}", traffic.stats()),
        }
    }
    Ok(())
}

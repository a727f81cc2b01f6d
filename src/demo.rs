//! `syncdesk demo`: a fresh SQLite database with one account per role, sign-in details printed.

use std::future::Future;
use std::path::Path;

use anyhow::Context;
use app::model::Role;
use base64::Engine;
use rand::RngCore;

use crate::accounts::{Accounts, ThrottlePolicy};
use crate::audit::Actor;
use crate::store::Store;

/// The demo accounts: email, name, roles.
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

/// Empties the demo database at `path`, creates the accounts, prints how to sign in, and hands
/// the store to `serve`.
pub async fn run<F, Fut>(path: &Path, serve: F) -> anyhow::Result<()>
where
    F: FnOnce(Store) -> Fut,
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
    let mut bytes = [0u8; 9];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let password = format!(
        "demo-{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    );
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

    let listen = std::env::var("SYNCDESK_LISTEN").unwrap_or_else(|_| "127.0.0.1:3000".into());
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
    println!(
        "  Database: {} (emptied at every demo start). Stop with Ctrl-C.",
        path.display()
    );
    println!();
    serve(store).await
}

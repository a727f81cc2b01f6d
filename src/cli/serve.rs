//! `syncdesk serve` (and the demo's server): the web app, its background work and the workers
//! in one process, until Ctrl-C or SIGTERM.

use anyhow::Context;
use tokio::net::TcpListener;

use super::args::WebArgs;
use crate::accounts::ThrottlePolicy;
use crate::engine::worker::WorkerConfig;
use crate::engine::{DestinationSettings, Workers};
use crate::store::Store;
use crate::web::{self, AppState, WebSettings};

/// Serves the web app on `args.listen` with its background work and, when `engine` names the
/// destinations, that many workers; stops them all on Ctrl-C or SIGTERM.
pub(super) async fn serve(
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
        destinations.resume_renewed(&store).await?;
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
    // Reconciliation takes orders in as webhooks do, so a web-only process runs it too (its
    // tasks go to the workers wherever they run); the passes are claimed in the database, so
    // several processes never run the same one twice.
    let reconciler = args.shop.reconciler(&store, state.wake.clone())?;
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

/// Resolves on Ctrl-C or, on Unix, SIGTERM.
pub(super) async fn shutdown_signal() {
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

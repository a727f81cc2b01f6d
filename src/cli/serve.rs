//! `syncdesk serve` (and the demo's server): the web app, its background work and the workers
//! in one process, until Ctrl-C or SIGTERM.

use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::watch;

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
    // Reconciliation takes orders in as webhooks do, so a web-only process runs it too (its
    // tasks go to the workers wherever they run); the passes are claimed in the database, so
    // several processes never run the same one twice. Made before the workers start, so that
    // a configuration it refuses ends start-up before any task is claimed.
    let reconciler = args.shop.reconciler(&store, state.wake.clone())?;
    tracing::info!(%addr, backend = ?store.backend(), "SyncDesk is serving");
    web::run_background(&store);
    let workers = engine.map(|(destinations, count, config)| {
        Workers::spawn(&store, destinations, config, state.wake.clone(), count)
    });
    // The first Ctrl-C or SIGTERM stops taking requests and lets those under way finish, for
    // at most DRAIN_LIMIT: a client that stalls mid-request must not keep the process (and
    // its workers' leases) up until something kills it. A second signal ends it at once.
    let (stop, stopping) = watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = stop.send(true);
        shutdown_signal().await;
        tracing::warn!(
            "a second signal: stopping at once; tasks being delivered wait out their lease"
        );
        std::process::exit(1);
    });
    let stopped = |mut stopping: watch::Receiver<bool>| async move {
        let _ = stopping.wait_for(|stop| *stop).await;
    };
    let drain_limit = async {
        stopped(stopping.clone()).await;
        tokio::time::sleep(DRAIN_LIMIT).await;
    };
    tokio::select! {
        served = web::serve(listener, state, stopped(stopping.clone())) => served?,
        () = drain_limit => tracing::warn!(
            limit_secs = DRAIN_LIMIT.as_secs(),
            "requests still open after the drain limit were cut off"
        ),
    }
    if let Some(reconciler) = reconciler {
        reconciler.shutdown().await;
    }
    if let Some(workers) = workers {
        workers.shutdown().await;
    }
    store.close().await;
    Ok(())
}

/// How long requests under way may take to finish once SyncDesk is told to stop. A webhook
/// cut off here was not answered, so the store delivers it again; one answered 2xx was
/// committed first.
const DRAIN_LIMIT: Duration = Duration::from_secs(20);

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

//! The sync engine: ingest store events into canonical orders (one task per destination armed
//! at each new version), then workers deliver each order's current state through the
//! connectors, retrying, dead-lettering, or raising exceptions people can act on.

use std::sync::Arc;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::connectors::{ApiToken, ConnectorConfig, HttpCrm, HttpErp};
use crate::secret::Secret;
use crate::store::Store;
use wake::Wake;
use worker::{Destinations, Worker, WorkerConfig};

pub mod edit;
pub mod exception;
pub mod ingest;
pub mod map;
pub mod mappings;
pub mod preview;
pub mod reconcile;
pub mod resync;
pub mod retry;
pub mod validate;
pub mod wake;
pub mod worker;

/// Where the destinations are and how to authenticate.
#[derive(Clone, Debug)]
pub struct DestinationSettings {
    /// The CRM's base URL.
    pub crm_url: url::Url,
    /// The CRM bearer token.
    pub crm_token: Secret,
    /// The ERP's base URL.
    pub erp_url: url::Url,
    /// The ERP bearer token.
    pub erp_token: Secret,
    /// Requests per second SyncDesk sends to each destination (`None`: no client-side limit;
    /// the destination's 429s are honoured either way).
    pub requests_per_second: Option<f64>,
}

impl DestinationSettings {
    /// HTTP connectors for these settings.
    pub fn connect(&self) -> anyhow::Result<Destinations> {
        let config = |url: &url::Url, token: &Secret| {
            let mut config = ConnectorConfig::new(url.clone(), ApiToken::new(token.expose()));
            config.rate_limit =
                self.requests_per_second
                    .map(|per_second| crate::connectors::RateLimit {
                        per_second,
                        burst: (per_second * 2.0).clamp(1.0, 10_000.0) as u32,
                    });
            config
        };
        let crm = HttpCrm::new(&config(&self.crm_url, &self.crm_token))?;
        let erp = HttpErp::new(&config(&self.erp_url, &self.erp_token))?;
        Ok(Destinations {
            crm: Arc::new(crm),
            erp: Arc::new(erp),
        })
    }
}

/// Running workers.
pub struct Workers {
    store: Store,
    stop: watch::Sender<bool>,
    handles: Vec<JoinHandle<()>>,
    /// Hears other processes' work (PostgreSQL).
    listening: JoinHandle<()>,
}

impl Workers {
    /// Starts `count` workers over `store`. `wake` is told when work is armed. On PostgreSQL,
    /// new orders' tasks are handed to them as the ingest writes them (`store::handoff`), and
    /// work armed by other processes wakes them too (`engine::wake`).
    pub fn spawn(
        store: &Store,
        destinations: Destinations,
        config: WorkerConfig,
        wake: Wake,
        count: usize,
    ) -> Workers {
        let (stop, stopped) = watch::channel(false);
        let listening = tokio::spawn(wake.clone().listen(store.clone()));
        let count = count.max(1);
        store.start_handoff(config.lease, count * config.concurrency);
        let handles = (0..count)
            .map(|_| {
                let worker = Worker::new(
                    store.clone(),
                    destinations.clone(),
                    config.clone(),
                    wake.clone(),
                );
                tokio::spawn(worker.run(stopped.clone()))
            })
            .collect();
        Workers {
            store: store.clone(),
            stop,
            handles,
            listening,
        }
    }

    /// Stops claiming, lets deliveries in flight finish and record their outcome, and puts the
    /// tasks handed off but not started back to pending.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        self.listening.abort();
        for handle in self.handles {
            let _ = handle.await;
        }
        if let Err(err) = self.store.stop_handoff().await {
            tracing::error!(error = %err, "releasing handed-off tasks failed; their leases will run out");
        }
    }
}

//! Resync from the store: read the order's current state through the store's Admin API, take it
//! in through the same ingest path a webhook takes (so a state SyncDesk already has, or an older
//! one, changes nothing and is recorded as such in the timeline), then send the order's current
//! state to every destination again. For an order whose webhooks went missing, or whose
//! destinations drifted from it.

use chrono::Utc;
use serde_json::json;

use super::ingest;
use crate::audit::{Actor, Change};
use crate::connectors::ShopAdmin;
use crate::connectors::shop::ADMIN_API_VERSION;
use crate::store::{DESTINATIONS, Delivery, IngestOutcome, RetryOutcome, Store, StoreError};

/// What a resync found and did.
#[derive(Clone, Debug)]
pub struct Resynced {
    /// What ingesting the store's state did (applied a newer state, or found it known).
    pub ingest: IngestOutcome,
    /// Each destination's outcome, in [`DESTINATIONS`] order.
    pub destinations: Vec<(&'static str, RetryOutcome)>,
}

impl Resynced {
    /// The outcome as a sentence.
    pub fn summary(&self) -> String {
        let state = match &self.ingest {
            IngestOutcome::Applied { version, .. } => {
                format!("The store had a newer state; it is version {version} now.")
            }
            IngestOutcome::Duplicate | IngestOutcome::Superseded { .. } => {
                "SyncDesk already had the store's current state.".to_string()
            }
            IngestOutcome::Recorded => {
                "The store's answer could not be read as an order either, so nothing was sent; \
                 it is kept in the order's timeline, and its exception in the queue stays open."
                    .to_string()
            }
        };
        let sends: Vec<String> = self
            .destinations
            .iter()
            .map(|(d, outcome)| {
                let place = d.to_uppercase();
                match outcome {
                    RetryOutcome::Queued => format!("the {place} gets it now"),
                    RetryOutcome::AlreadyApplied => format!("the {place} already has it"),
                    RetryOutcome::InFlight => format!("the {place} is being sent it right now"),
                    RetryOutcome::LeftSkipped => format!(
                        "the {place} was skipped for this order, so nothing goes there (its page's \"Send to the {place} again\" undoes the skip)"
                    ),
                }
            })
            .collect();
        if sends.is_empty() {
            state
        } else {
            format!("{state} Then {}.", sends.join("; "))
        }
    }
}

/// Why a resync did not happen.
#[derive(Debug, thiserror::Error)]
pub enum ResyncError {
    /// No Admin API is configured.
    #[error("Resync needs the store's Admin API: set SYNCDESK_STORE_URL and SYNCDESK_STORE_TOKEN.")]
    NotConfigured,
    /// The store has no such order.
    #[error("The store has no order with id {0}.")]
    NotInStore(i64),
    /// The store could not be asked; the sentence says why.
    #[error("{0}")]
    Unavailable(String),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Resyncs order `store_order_id` from the store; audited as `order.resynced` (each send also as
/// `order.retried`).
pub async fn resync(
    store: &Store,
    shop: Option<&ShopAdmin>,
    store_order_id: i64,
    by: &Actor,
) -> Result<Resynced, ResyncError> {
    let shop = shop.ok_or(ResyncError::NotConfigured)?;
    let body = shop
        .order(store_order_id)
        .await
        .map_err(|e| ResyncError::Unavailable(e.to_string()))?
        .ok_or(ResyncError::NotInStore(store_order_id))?;
    let delivery = Delivery {
        webhook_id: format!("resync-{}", uuid::Uuid::new_v4()),
        event_id: None,
        topic: "orders/updated".into(),
        shop_domain: None,
        api_version: Some(ADMIN_API_VERSION.into()),
        triggered_at: Some(Utc::now()),
        body,
    };
    let outcome = ingest::accept(store, delivery).await?;
    // A state of the store's that SyncDesk could not read before is made good now, if this one
    // was read: its exception closes at once rather than at the workers' next sweep.
    if !matches!(outcome, IngestOutcome::Recorded)
        && let Err(err) = store.settle_unread_states().await
    {
        // The workers' sweep does it within seconds; the resync itself went through.
        tracing::warn!(error = %err, "settling unread order states after a resync failed");
    }
    let mut destinations = Vec::new();
    if !matches!(outcome, IngestOutcome::Recorded) {
        for destination in DESTINATIONS {
            let sent = store
                .retry_order(store_order_id, destination, false, by)
                .await?;
            destinations.push((destination, sent));
        }
    }
    let mut after = json!({ "ingest": outcome.as_str() });
    for (destination, sent) in &destinations {
        after[*destination] = json!(sent.as_str());
    }
    store
        .record(&Change::new(by, "order.resynced", format!("order:{store_order_id}")).after(after))
        .await?;
    Ok(Resynced {
        ingest: outcome,
        destinations,
    })
}

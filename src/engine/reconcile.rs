//! Reconciliation and backfill: read the orders the store changed since an instant through its
//! Admin API (`orders.json`, oldest change first, page after page), and take in, through the same
//! ingest path a webhook takes, every order SyncDesk has never heard of or holds at an older
//! state. Orders it already has at the store's state are only counted: a pass over a quiet store
//! writes nothing. Scheduled passes find webhooks that never came; a backfill is one pass from a
//! chosen date.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::ingest;
use super::wake::Wake;
use crate::connectors::ShopAdmin;
use crate::connectors::shop::{ADMIN_API_VERSION, OrdersPage, OrdersPageRef};
use crate::store::{Delivery, IngestOutcome, Store, StoreError};

/// A scheduled pass re-reads this much before the last change it saw: orders the store changed
/// at the same instant, or committed a little out of order, are not skipped.
pub const OVERLAP: TimeDelta = TimeDelta::minutes(5);

/// A change younger than this is left to its webhook, which is usually on its way; the next
/// pass, reading from before it, looks again.
pub const SETTLE: TimeDelta = TimeDelta::minutes(1);

/// The very first scheduled pass reads this far back (Shopify retries a webhook for about a day).
pub const FIRST_LOOK_BACK: TimeDelta = TimeDelta::days(1);

/// What a pass found and did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reconciled {
    /// Orders the store listed (but those changed in the last [`SETTLE`], left to their
    /// webhooks).
    pub checked: i64,
    /// Of those, orders SyncDesk had never heard of (taken in now).
    pub missing: i64,
    /// Orders SyncDesk held at an older state than the store's (the newer one taken in now).
    pub behind: i64,
    /// The newest change the store listed.
    pub newest: Option<DateTime<Utc>>,
}

impl Reconciled {
    /// The outcome as a sentence.
    pub fn summary(&self) -> String {
        format!(
            "Checked {} orders in the store: {} were missing here and {} were behind the store; \
             those are taken in and will sync.",
            self.checked, self.missing, self.behind
        )
    }
}

/// Why a pass stopped.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// The store could not be read; the sentence says why.
    #[error("{0}")]
    Store(String),
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] StoreError),
}

/// How many times a pass asks again for a page the store refused for now (429, 5xx), waiting
/// as it asks (its `Retry-After`, else a few seconds), before it stops.
const PAGE_TRIES: u32 = 6;

/// One pass over the orders the store changed at or after `since`, leaving to their webhooks
/// the changes younger than `settle` ([`SETTLE`] for scheduled passes; a backfill, one pass with
/// none after it, leaves nothing). `wake` is told when an order was taken in, so idle workers
/// start on it at once.
pub async fn reconcile_since(
    store: &Store,
    shop: &ShopAdmin,
    since: DateTime<Utc>,
    settle: TimeDelta,
    wake: Option<&Wake>,
) -> Result<Reconciled, ReconcileError> {
    let mut found = Reconciled::default();
    reconcile_into(store, shop, since, settle, wake, &mut found).await?;
    Ok(found)
}

/// [`reconcile_since`], counting into `found` as it goes: a pass that stops partway (the store
/// down for good, the database unreachable) leaves in it what was taken in before it stopped,
/// which is in SyncDesk and syncing, and must be said.
pub async fn reconcile_into(
    store: &Store,
    shop: &ShopAdmin,
    since: DateTime<Utc>,
    settle: TimeDelta,
    wake: Option<&Wake>,
    found: &mut Reconciled,
) -> Result<(), ReconcileError> {
    let mut page = OrdersPageRef::Since(since);
    let mut pages_seen = std::collections::HashSet::new();
    loop {
        let listed = page_with_patience(shop, &page).await?;
        let ids: Vec<i64> = listed.orders.iter().map(|o| o.id).collect();
        let known = store.known_store_versions(&ids).await?;
        let settled = Utc::now() - settle;
        for order in listed.orders {
            // Left to its webhook: not counted, and not the pass's newest change either, so the
            // next pass starts before it (a store clock ahead of SyncDesk's, or a time in the
            // far future, cannot carry the next pass past orders this one left).
            if order.updated_at > settled {
                continue;
            }
            found.newest = found.newest.max(Some(order.updated_at));
            found.checked += 1;
            let behind = match known.get(&order.id) {
                Some(have) if *have >= order.updated_at => continue,
                Some(_) => true,
                None => false,
            };
            // One id per store state: two passes (or two processes) finding the same state take
            // it in once.
            let delivery = Delivery {
                webhook_id: format!(
                    "reconcile-{}-{}",
                    order.id,
                    order.updated_at.timestamp_micros()
                ),
                event_id: None,
                topic: "orders/updated".into(),
                shop_domain: None,
                api_version: Some(ADMIN_API_VERSION.into()),
                triggered_at: Some(Utc::now()),
                body: order.body,
            };
            let outcome = ingest::accept(store, delivery).await?;
            // Counted when taken in: a state the store lists but SyncDesk cannot read (kept,
            // with its reason), or one a webhook brought meanwhile, is not "taken in now".
            if matches!(outcome, IngestOutcome::Applied { .. }) {
                if behind {
                    found.behind += 1;
                } else {
                    found.missing += 1;
                }
                if let Some(wake) = wake {
                    wake.all();
                }
            }
        }
        match listed.next {
            Some(next) => {
                if let OrdersPageRef::Next(url) = &next
                    && !pages_seen.insert(url.to_string())
                {
                    return Err(ReconcileError::Store(
                        "The store's Admin API named a page it had already sent as the next one, \
                         so the pass stopped instead of reading it again for ever."
                            .into(),
                    ));
                }
                page = next;
            }
            None => return Ok(()),
        }
    }
}

/// A page of the store's orders, asked for again while the store refuses for now.
async fn page_with_patience(
    shop: &ShopAdmin,
    page: &OrdersPageRef,
) -> Result<OrdersPage, ReconcileError> {
    let mut tries = 0;
    loop {
        tries += 1;
        match shop.orders_page(page).await {
            Ok(listed) => return Ok(listed),
            Err(error) if error.is_transient() && tries < PAGE_TRIES => {
                let wait = error
                    .retry_after()
                    .unwrap_or(Duration::from_secs(2))
                    .min(Duration::from_secs(60));
                tokio::time::sleep(wait).await;
            }
            Err(error) => return Err(ReconcileError::Store(error.to_string())),
        }
    }
}

/// Runs scheduled passes every `every` (whichever process claims a pass runs it) until stopped.
pub struct Reconciler {
    stop: watch::Sender<bool>,
    handle: JoinHandle<()>,
}

impl Reconciler {
    /// Starts the schedule.
    pub fn spawn(store: &Store, shop: ShopAdmin, every: Duration, wake: Wake) -> Reconciler {
        let (stop, mut stopped) = watch::channel(false);
        let store = store.clone();
        let every_delta = TimeDelta::from_std(every).unwrap_or(TimeDelta::minutes(10));
        // Look for a due pass a few times per period, at most every 30 s.
        let tick = (every / 4).clamp(Duration::from_millis(50), Duration::from_secs(30));
        let handle = tokio::spawn(async move {
            loop {
                if let Err(error) =
                    scheduled_pass(&store, &shop, every_delta, &wake, &mut stopped).await
                {
                    tracing::warn!(%error, "reconciliation could not record its pass");
                }
                if *stopped.borrow() {
                    return;
                }
                tokio::select! {
                    () = tokio::time::sleep(tick) => {}
                    _ = stopped.changed() => return,
                }
            }
        });
        Reconciler { stop, handle }
    }

    /// Stops the schedule. A pass under way stops where it is: what it took in stays, how far
    /// it read is kept, and the pass is due again at once, for the next process to start (or
    /// this one, restarted) to go on with.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let mut handle = self.handle;
        if tokio::time::timeout(Duration::from_secs(5), &mut handle)
            .await
            .is_err()
        {
            handle.abort();
            let _ = handle.await;
        }
    }
}

/// Runs the scheduled pass if it is due and this process claims it.
async fn scheduled_pass(
    store: &Store,
    shop: &ShopAdmin,
    every: TimeDelta,
    wake: &Wake,
    stopped: &mut watch::Receiver<bool>,
) -> Result<(), StoreError> {
    let now = Utc::now();
    let Some(since) = store
        .claim_reconciliation(now, every, now - FIRST_LOOK_BACK)
        .await?
    else {
        return Ok(());
    };
    let mut found = Reconciled::default();
    let ended = tokio::select! {
        ended = reconcile_into(store, shop, since, SETTLE, Some(wake), &mut found) => Some(ended),
        _ = stopped.changed() => None,
    };
    // How far the pass read: the store lists the oldest change first, and a pass stops at the
    // first order it cannot take in, so every change before the newest it reached is in
    // SyncDesk (the overlap reads that one again). A pass that stops partway keeps this much,
    // instead of reading every page again from the start next time, for ever if a long
    // catch-up keeps failing at the same late page.
    let reached = found.newest.map(|newest| (newest - OVERLAP).max(since));
    let Some(ended) = ended else {
        // Not a failure (nothing says the store could not be read): how far it read is kept,
        // and the pass is due again at once.
        return store
            .keep_reconciliation_progress(reached, Some(Utc::now()))
            .await;
    };
    if ended.is_err() {
        store.keep_reconciliation_progress(reached, None).await?;
    }
    match ended.map(|()| found) {
        Ok(found) => {
            if found.missing + found.behind > 0 {
                tracing::info!(
                    checked = found.checked,
                    missing = found.missing,
                    behind = found.behind,
                    "reconciliation took in orders whose webhooks never came"
                );
            }
            let next = found
                .newest
                .map_or(since, |newest| newest - OVERLAP)
                .max(since);
            store
                .finish_reconciliation(
                    Utc::now(),
                    Ok((found.checked, found.missing, found.behind, next)),
                )
                .await
        }
        Err(ReconcileError::Storage(error)) => {
            // Said where people look (the metrics' failing flag, the last error), if the
            // database takes it now.
            let reason = format!("SyncDesk could not store what the pass read: {error}");
            tracing::warn!(%reason, "reconciliation pass failed; the next pass goes on from the last order it took in");
            let _ = store.finish_reconciliation(Utc::now(), Err(&reason)).await;
            Err(error)
        }
        Err(error) => {
            let reason = error.to_string();
            tracing::warn!(%reason, "reconciliation pass failed; the next pass goes on from the last order it took in");
            store.finish_reconciliation(Utc::now(), Err(&reason)).await
        }
    }
}

//! One order's history across systems, for its page: every webhook delivery (duplicates and
//! superseded ones included), every delivery attempt at each destination, every exception with
//! how it ended — and the order-level retry behind the page's button.

use chrono::{DateTime, Utc};
use serde_json::json;

use super::actions::RetryOutcome;
use super::audit::insert_audit;
use super::batch::retrying_deadlocks;
use super::{Store, StoreError, on_pool};
use crate::audit::{Actor, Change};

/// How many of each kind of entry the page shows (newest first).
pub const TIMELINE_LIMIT: i64 = 200;

/// A webhook delivery about the order.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct EventEntry {
    /// When it arrived.
    pub received_at: DateTime<Utc>,
    /// Its topic.
    pub topic: String,
    /// accepted, applied, duplicate, superseded, …
    pub outcome: String,
    /// The store's `updated_at` it carried.
    pub order_updated_at: Option<DateTime<Utc>>,
    /// Why it was not applied, when it was not.
    pub note: Option<String>,
}

/// A delivery attempt.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct AttemptEntry {
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// crm or erp.
    pub destination: String,
    /// The order version sent.
    pub version: i64,
    /// Attempt number within its run.
    pub attempt: i64,
    /// synced, transient, needs_action, auth, fenced, manual.
    pub outcome: String,
    /// The destination's HTTP status.
    pub status: Option<i32>,
    /// The destination's message, or ours.
    pub message: Option<String>,
    /// How long it took.
    pub duration_ms: i64,
    /// The destination's request id.
    pub request_id: Option<String>,
}

/// An exception about the order.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct ExceptionEntry {
    /// Exception id.
    pub id: i64,
    /// When it was opened.
    pub created_at: DateTime<Utc>,
    /// crm or erp.
    pub destination: String,
    /// The sentence.
    pub message: String,
    /// open, snoozed, resolved, skipped.
    pub status: String,
    /// When it was closed.
    pub resolved_at: Option<DateTime<Utc>>,
    /// By whom or what.
    pub resolved_by: Option<String>,
    /// How.
    pub resolution: Option<String>,
}

/// An order's history.
#[derive(Clone, Debug, Default)]
pub struct Timeline {
    /// Webhook deliveries, newest first.
    pub events: Vec<EventEntry>,
    /// Attempts, newest first.
    pub attempts: Vec<AttemptEntry>,
    /// Exceptions, newest first.
    pub exceptions: Vec<ExceptionEntry>,
}

impl Store {
    /// The order's history (each part capped at [`TIMELINE_LIMIT`]).
    pub async fn order_timeline(&self, store_order_id: i64) -> Result<Timeline, StoreError> {
        let timeline = on_pool!(&self.db, pool => {
            let events = sqlx::query_as::<_, EventEntry>(
                "SELECT received_at, topic, outcome, order_updated_at, note FROM webhook_events
                 WHERE store_order_id = $1 ORDER BY id DESC LIMIT $2",
            )
            .bind(store_order_id)
            .bind(TIMELINE_LIMIT)
            .fetch_all(pool)
            .await?;
            let attempts = sqlx::query_as::<_, AttemptEntry>(
                "SELECT a.started_at, a.destination, a.version, a.attempt, a.outcome, a.status, a.message, a.duration_ms, a.request_id
                 FROM sync_attempts a JOIN sync_tasks t ON t.id = a.task_id
                 WHERE t.store_order_id = $1 ORDER BY a.id DESC LIMIT $2",
            )
            .bind(store_order_id)
            .bind(TIMELINE_LIMIT)
            .fetch_all(pool)
            .await?;
            let exceptions = sqlx::query_as::<_, ExceptionEntry>(
                "SELECT id, created_at, destination, message, status, resolved_at, resolved_by, resolution FROM exceptions
                 WHERE store_order_id = $1 ORDER BY id DESC LIMIT $2",
            )
            .bind(store_order_id)
            .bind(TIMELINE_LIMIT)
            .fetch_all(pool)
            .await?;
            Ok::<_, StoreError>(Timeline { events, attempts, exceptions })
        })?;
        Ok(timeline)
    }

    /// Sends the order to `destination` again now, whatever stopped it (a retry wait, a block,
    /// a dead letter, and with `undo_skip` a skip). Already at the destination at its current
    /// version → said so; a worker on it right now → in flight; skipped without `undo_skip` →
    /// left skipped (a resync sends to every destination, and must not undo a person's skip:
    /// the order may have been keyed into that destination by hand). A skipped task sent again
    /// is armed now, so its wait and lag count from this send, not from the skip. Audited.
    /// Run again when PostgreSQL undoes it to break a deadlock (nothing of it was written).
    pub async fn retry_order(
        &self,
        store_order_id: i64,
        destination: &str,
        undo_skip: bool,
        by: &Actor,
    ) -> Result<RetryOutcome, StoreError> {
        retrying_deadlocks(|| self.retry_order_once(store_order_id, destination, undo_skip, by))
            .await
    }

    async fn retry_order_once(
        &self,
        store_order_id: i64,
        destination: &str,
        undo_skip: bool,
        by: &Actor,
    ) -> Result<RetryOutcome, StoreError> {
        let now = Utc::now();
        on_pool!(&self.db, pool => {
            let mut tx = pool.begin().await?;
            // The first statement writes, so on SQLite this transaction holds the write lock.
            let queued = sqlx::query(
                "UPDATE sync_tasks SET state = 'pending', attempt = 0, scheduled_at = $3, blocked_on = NULL, updated_at = $3,
                     armed_at = CASE WHEN state = 'skipped' THEN $3 ELSE armed_at END
                 WHERE store_order_id = $1 AND destination = $2
                   AND (state IN ('pending', 'retrying', 'blocked', 'dead') OR (state = 'skipped' AND $4))
                   AND NOT (COALESCE(synced_version, -1) >= target_version)",
            )
            .bind(store_order_id)
            .bind(destination)
            .bind(now)
            .bind(undo_skip)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            let outcome = if queued > 0 {
                RetryOutcome::Queued
            } else {
                let state: Option<(String, i64, Option<i64>)> = sqlx::query_as(
                    "SELECT state, target_version, synced_version FROM sync_tasks WHERE store_order_id = $1 AND destination = $2",
                )
                .bind(store_order_id)
                .bind(destination)
                .fetch_optional(&mut *tx)
                .await?;
                match state {
                    None => return Err(StoreError::NotFound("order")),
                    Some((_, target, Some(synced))) if synced >= target => RetryOutcome::AlreadyApplied,
                    Some((state, _, _)) if state == "skipped" => RetryOutcome::LeftSkipped,
                    Some(_) => RetryOutcome::InFlight,
                }
            };
            let word = outcome.as_str();
            let change = Change::new(by, "order.retried", format!("order:{store_order_id}"))
                .after(json!({ "destination": destination, "outcome": word }));
            insert_audit!(&mut *tx, &change)?;
            tx.commit().await?;
            Ok::<RetryOutcome, StoreError>(outcome)
        })
    }
}

//! What people (and tokens) do to the engine's state: SKU mappings, releasing everything blocked
//! on a cause, retrying, skipping and resolving exceptions, resuming a paused destination. Each
//! mutation writes its audit entry in the same transaction.

use chrono::{DateTime, Utc};
use serde_json::json;

use super::audit::insert_audit;
use super::batch::retrying_deadlocks;
use super::{Store, StoreError, on_pool};
use crate::audit::{Actor, Change};

/// A SKU's ERP item code.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct SkuMapping {
    /// Store SKU.
    pub sku: String,
    /// ERP item code.
    pub item_code: String,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// Who made it.
    pub updated_by: String,
}

/// What releasing a cause did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Released {
    /// Tasks put back in the queue.
    pub tasks: u64,
    /// Exceptions resolved.
    pub exceptions: u64,
}

/// What a retry request found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RetryOutcome {
    /// The task is queued to run now.
    Queued,
    /// The order's current version is already at the destination: nothing to do.
    AlreadyApplied,
    /// A worker is delivering it right now.
    InFlight,
    /// Someone skipped this destination for the order, and the send was not an explicit one
    /// (a resync): left skipped.
    LeftSkipped,
}

impl RetryOutcome {
    /// The stable word the API answers and the audit log records.
    pub fn as_str(&self) -> &'static str {
        match self {
            RetryOutcome::Queued => "queued",
            RetryOutcome::AlreadyApplied => "already_applied",
            RetryOutcome::InFlight => "in_flight",
            RetryOutcome::LeftSkipped => "left_skipped",
        }
    }
}

/// Releases every task blocked on `fingerprint` (due now, attempts reset) and resolves their
/// open exceptions with `resolution`, through `$tx`.
macro_rules! release_blocked {
    ($tx:ident, $fingerprint:expr, $resolution:expr, $by:expr, $now:expr) => {{
        let tasks = sqlx::query(
            "UPDATE sync_tasks SET state = 'pending', attempt = 0, scheduled_at = $2, blocked_on = NULL, updated_at = $2
             WHERE state = 'blocked' AND blocked_on = $1",
        )
        .bind($fingerprint)
        .bind($now)
        .execute(&mut *$tx)
        .await?
        .rows_affected();
        let exceptions = sqlx::query(
            "UPDATE exceptions SET status = 'resolved', resolved_at = $2, resolved_by = $3, resolution = $4, updated_at = $2
             WHERE fingerprint = $1 AND status IN ('open', 'snoozed')",
        )
        .bind($fingerprint)
        .bind($now)
        .bind($by)
        .bind($resolution)
        .execute(&mut *$tx)
        .await?
        .rows_affected();
        Released { tasks, exceptions }
    }};
}
pub(crate) use release_blocked;

impl Store {
    /// One SKU's mapping.
    pub async fn sku_mapping(&self, sku: &str) -> Result<Option<SkuMapping>, StoreError> {
        let row = on_pool!(&self.db, pool => {
            sqlx::query_as::<_, SkuMapping>("SELECT sku, item_code, updated_at, updated_by FROM sku_mappings WHERE sku = $1")
                .bind(sku)
                .fetch_optional(pool)
                .await
        })?;
        Ok(row)
    }

    /// Saves a mapping and releases every order waiting on that SKU: their tasks go back in the
    /// queue and their `missing_sku:erp:<sku>` exceptions resolve, recording the mapping.
    /// Run again when PostgreSQL undoes it to break a deadlock (nothing of it was written).
    pub async fn save_sku_mapping(
        &self,
        sku: &str,
        item_code: &str,
        by: &Actor,
    ) -> Result<(SkuMapping, Released), StoreError> {
        let (mapping, mut released) =
            retrying_deadlocks(|| self.save_sku_mapping_once(sku, item_code, by)).await?;
        // PostgreSQL: a delivery that read no mapping before the save's commit may have
        // finished blocked on the SKU between the release's statements or just after them; its
        // task would wait on a cause already fixed, its exception perhaps closed. Released now,
        // once the save stands, as the CSV import does. (SQLite's one writer puts every finish
        // before or after the save.)
        if let super::Db::Postgres(pool) = &self.db {
            let late = retrying_deadlocks(|| async {
                let fingerprint = format!("missing_sku:erp:{}", mapping.sku);
                let resolution = format!(
                    "SKU {} mapped to ERP item {} by {}",
                    mapping.sku,
                    mapping.item_code,
                    by.label()
                );
                let mut tx = pool.begin().await?;
                let late: Released =
                    release_blocked!(tx, &fingerprint, &resolution, by.label(), Utc::now());
                if late.tasks > 0 || late.exceptions > 0 {
                    let change = Change::new(by, "sku_mapping.late_released", format!("sku:{}", mapping.sku))
                        .after(json!({ "released_tasks": late.tasks, "resolved_exceptions": late.exceptions }));
                    insert_audit!(&mut *tx, &change)?;
                }
                tx.commit().await?;
                Ok::<Released, StoreError>(late)
            })
            .await?;
            released.tasks += late.tasks;
            released.exceptions += late.exceptions;
        }
        Ok((mapping, released))
    }

    async fn save_sku_mapping_once(
        &self,
        sku: &str,
        item_code: &str,
        by: &Actor,
    ) -> Result<(SkuMapping, Released), StoreError> {
        let now = Utc::now();
        let before = self.sku_mapping(sku).await?;
        let fingerprint = format!("missing_sku:erp:{sku}");
        let resolution = format!("SKU {sku} mapped to ERP item {item_code} by {}", by.label());
        let mut change = Change::new(by, "sku_mapping.saved", format!("sku:{sku}"))
            .after(json!({ "item_code": item_code }));
        if let Some(b) = &before {
            change = change.before(json!({ "item_code": b.item_code }));
        }
        let released = on_pool!(&self.db, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query(
                "INSERT INTO sku_mappings (sku, item_code, updated_at, updated_by) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (sku) DO UPDATE SET item_code = excluded.item_code, updated_at = excluded.updated_at,
                     updated_by = excluded.updated_by",
            )
            .bind(sku)
            .bind(item_code)
            .bind(now)
            .bind(by.label())
            .execute(&mut *tx)
            .await?;
            let released = release_blocked!(tx, &fingerprint, &resolution, by.label(), now);
            let change = change.clone().after(json!({
                "item_code": item_code, "released_tasks": released.tasks, "resolved_exceptions": released.exceptions
            }));
            insert_audit!(&mut *tx, &change)?;
            tx.commit().await?;
            Ok::<Released, StoreError>(released)
        })?;
        let mapping = self
            .sku_mapping(sku)
            .await?
            .ok_or(StoreError::NotFound("SKU mapping"))?;
        Ok((mapping, released))
    }

    /// Deletes a SKU's mapping, unless orders may still need it: any order carrying the SKU
    /// that is not skipped at the ERP. A fulfilled, cancelled or refunded order may still be
    /// refunded (again), and every ERP delivery is built with the item codes of the order's
    /// lines, so one such change would block the order on the deleted mapping. Refused with how
    /// many.
    /// Run again when PostgreSQL undoes it to break a deadlock (nothing of it was written).
    pub async fn delete_sku_mapping(&self, sku: &str, by: &Actor) -> Result<(), StoreError> {
        retrying_deadlocks(|| self.delete_sku_mapping_once(sku, by)).await
    }

    async fn delete_sku_mapping_once(&self, sku: &str, by: &Actor) -> Result<(), StoreError> {
        on_pool!(&self.db, pool => {
            let mut tx = pool.begin().await?;
            // The first statement writes, so on SQLite this transaction holds the write lock.
            let before: Option<String> = sqlx::query_scalar("DELETE FROM sku_mappings WHERE sku = $1 RETURNING item_code")
                .bind(sku)
                .fetch_optional(&mut *tx)
                .await?;
            let Some(item_code) = before else {
                return Err(StoreError::NotFound("SKU mapping"));
            };
            let needing: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM order_skus s
                 JOIN orders o ON o.store_order_id = s.store_order_id
                 LEFT JOIN sync_tasks t ON t.store_order_id = s.store_order_id AND t.destination = 'erp'
                 WHERE s.sku = $1 AND (t.state IS NULL OR t.state <> 'skipped')",
            )
            .bind(sku)
            .fetch_one(&mut *tx)
            .await?;
            if needing > 0 {
                tx.rollback().await?;
                let orders = if needing == 1 { "1 order".to_string() } else { format!("{needing} orders") };
                return Err(StoreError::Conflict(format!(
                    "SKU {sku} is on {orders} that may still need its ERP item code: any later change to one of them \
                     (a shipment, a refund, a cancellation) is sent to the ERP with it. Change the mapping instead."
                )));
            }
            let change = Change::new(by, "sku_mapping.deleted", format!("sku:{sku}"))
                .before(json!({ "item_code": item_code }));
            insert_audit!(&mut *tx, &change)?;
            tx.commit().await?;
            Ok::<(), StoreError>(())
        })
    }

    /// Puts an exception's task back in the queue now. Two people clicking at once queue it
    /// once; a task already synced at the order's current version is reported as such.
    /// Run again when PostgreSQL undoes it to break a deadlock (nothing of it was written).
    pub async fn retry_exception(
        &self,
        exception_id: i64,
        by: &Actor,
    ) -> Result<RetryOutcome, StoreError> {
        retrying_deadlocks(|| self.retry_exception_once(exception_id, by)).await
    }

    async fn retry_exception_once(
        &self,
        exception_id: i64,
        by: &Actor,
    ) -> Result<RetryOutcome, StoreError> {
        let now = Utc::now();
        on_pool!(&self.db, pool => {
            let mut tx = pool.begin().await?;
            // The first statement writes, so on SQLite this transaction holds the write lock.
            sqlx::query("UPDATE exceptions SET updated_at = $2 WHERE id = $1").bind(exception_id).bind(now).execute(&mut *tx).await?;
            let row: Option<(Option<i64>, String, String)> =
                sqlx::query_as("SELECT task_id, status, destination FROM exceptions WHERE id = $1")
                    .bind(exception_id)
                    .fetch_optional(&mut *tx)
                    .await?;
            let Some((task_id, status, destination)) = row else {
                return Err(StoreError::NotFound("exception"));
            };
            let Some(task_id) = task_id else {
                if destination == "store" {
                    return Err(StoreError::Conflict(
                        "This is an order the store sent in a form SyncDesk could not read, so there is \
                         nothing to send again. Resync it from the store (the button on its row, or the \
                         order's page): SyncDesk reads its current state through the store's Admin API."
                            .into(),
                    ));
                }
                return Err(StoreError::Conflict(format!(
                    "This exception concerns a whole destination. Restart SyncDesk with renewed credentials \
                     (SYNCDESK_{upper}_TOKEN) and it resumes by itself, or, once they were put right on the \
                     destination's side, resume it: POST /api/v1/destinations/{destination}/resume.",
                    upper = destination.to_uppercase()
                )));
            };
            let (state, target, synced): (String, i64, Option<i64>) =
                sqlx::query_as("SELECT state, target_version, synced_version FROM sync_tasks WHERE id = $1")
                    .bind(task_id)
                    .fetch_one(&mut *tx)
                    .await?;
            let outcome = if synced.is_some_and(|s| s >= target) {
                RetryOutcome::AlreadyApplied
            } else if status == "skipped" || status == "resolved" {
                // Settled by a person (skipped, or done by hand): retrying this one would undo
                // that decision behind its back, as the queue's actions never do.
                return Err(StoreError::Conflict(format!(
                    "This exception was {status} already, so nothing was queued. Retry the order's \
                     open exception, if it has one, or resync the order from the store."
                )));
            } else if state == "running" {
                RetryOutcome::InFlight
            } else {
                let queued = sqlx::query(
                    "UPDATE sync_tasks SET state = 'pending', attempt = 0, scheduled_at = $2, blocked_on = NULL, updated_at = $2
                     WHERE id = $1 AND state IN ('pending', 'retrying', 'blocked', 'dead', 'skipped')",
                )
                .bind(task_id)
                .bind(now)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if queued == 0 {
                    // A worker claimed it between the read and this write (PostgreSQL).
                    RetryOutcome::InFlight
                } else {
                    // Queued now: a snoozed exception is back in the queue, as triage's retry
                    // leaves it.
                    sqlx::query(
                        "UPDATE exceptions SET status = 'open', snoozed_until = NULL, updated_at = $2
                         WHERE id = $1 AND status = 'snoozed'",
                    )
                    .bind(exception_id)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                    RetryOutcome::Queued
                }
            };
            if outcome == RetryOutcome::AlreadyApplied && status != "resolved" {
                sqlx::query(
                    "UPDATE exceptions SET status = 'resolved', resolved_at = $2, resolved_by = $3,
                         resolution = 'Already applied at the destination', updated_at = $2
                     WHERE id = $1 AND status IN ('open', 'snoozed')",
                )
                .bind(exception_id)
                .bind(now)
                .bind(by.label())
                .execute(&mut *tx)
                .await?;
            }
            let word = outcome.as_str();
            let change = Change::new(by, "exception.retried", format!("exception:{exception_id}"))
                .after(json!({ "task": task_id, "outcome": word }));
            insert_audit!(&mut *tx, &change)?;
            tx.commit().await?;
            Ok::<RetryOutcome, StoreError>(outcome)
        })
    }

    /// Resumes a destination paused for rejected credentials (after they were renewed): its
    /// tasks flow again and the destination's exception resolves.
    /// Run again when PostgreSQL undoes it to break a deadlock (nothing of it was written).
    /// Answers [`StoreError::NotFound`] for a destination SyncDesk does not know.
    pub async fn resume_destination(
        &self,
        destination: &str,
        by: &Actor,
    ) -> Result<bool, StoreError> {
        let resumed =
            retrying_deadlocks(|| self.resume_destination_once(destination, by, None)).await?;
        // Not paused now, whether it was or not: its new tasks go to the workers again.
        self.resume_handoff_to(destination);
        Ok(resumed)
    }

    /// Resumes `destination` if it is paused for rejected credentials other than those whose
    /// fingerprint is `credentials` (a process started with renewed ones); audited as SyncDesk
    /// itself. A destination paused before fingerprints were kept resumes too: at worst its
    /// next delivery is refused again and pauses it again, with the same one exception.
    pub async fn resume_if_renewed(
        &self,
        destination: &str,
        credentials: &str,
    ) -> Result<bool, StoreError> {
        let resumed = retrying_deadlocks(|| {
            self.resume_destination_once(destination, &Actor::System, Some(credentials))
        })
        .await?;
        if resumed {
            self.resume_handoff_to(destination);
        }
        Ok(resumed)
    }

    async fn resume_destination_once(
        &self,
        destination: &str,
        by: &Actor,
        renewed: Option<&str>,
    ) -> Result<bool, StoreError> {
        let now = Utc::now();
        let fingerprint = format!("auth:{destination}");
        on_pool!(&self.db, pool => {
            let mut tx = pool.begin().await?;
            // The first statement writes, so on SQLite this transaction holds the write lock.
            let resumed = sqlx::query(
                "UPDATE destinations SET paused = FALSE, paused_reason = NULL, paused_at = NULL,
                     rejected_credentials = NULL, updated_at = $2
                 WHERE name = $1 AND paused
                   AND ($3 IS NULL OR rejected_credentials IS NULL OR rejected_credentials <> $3)",
            )
            .bind(destination)
            .bind(now)
            .bind(renewed)
            .execute(&mut *tx)
            .await?
            .rows_affected()
                > 0;
            if !resumed {
                let known = sqlx::query_scalar::<_, bool>("SELECT paused FROM destinations WHERE name = $1")
                    .bind(destination)
                    .fetch_optional(&mut *tx)
                    .await?;
                if known.is_none() {
                    return Err(StoreError::NotFound("destination"));
                }
                if renewed.is_some() {
                    // Not paused, or paused for the very credentials this process has.
                    return Ok(false);
                }
            }
            let resolution = match renewed {
                Some(_) => "Credentials renewed: SyncDesk started with new ones".to_string(),
                None => format!("Deliveries resumed by {}", by.label()),
            };
            let _ = release_blocked!(tx, &fingerprint, &resolution, by.label(), now);
            let change = Change::new(by, "destination.resumed", format!("destination:{destination}"))
                .before(json!({ "paused": resumed }))
                .after(match renewed {
                    Some(_) => json!({ "paused": false, "credentials": "renewed" }),
                    None => json!({ "paused": false }),
                });
            insert_audit!(&mut *tx, &change)?;
            tx.commit().await?;
            Ok::<bool, StoreError>(resumed)
        })
    }
}

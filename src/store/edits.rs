//! Payload edits (see `engine::edit`): kept beside the computed payload, only ever added; the
//! newest for a version is the one in force.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use sqlx::types::Json;

use super::audit::insert_audit;
use super::batch::retrying_deadlocks;
use super::{RetryOutcome, Store, StoreError, is_postgres, on_pool};
use crate::audit::{Actor, Change};

/// An edit to save.
#[derive(Clone, Debug)]
pub struct NewPayloadEdit {
    /// The order.
    pub store_order_id: i64,
    /// `crm` or `erp`.
    pub destination: String,
    /// The order version it is for.
    pub version: i64,
    /// The payload SyncDesk computed, kept as it was.
    pub original: Value,
    /// What the destination gets instead.
    pub payload: Value,
    /// The fields changed, for the audit log.
    pub changes: Value,
    /// The edit the person saw in force when they edited (0: none), refused as a conflict when
    /// another has been saved since; `None`: not checked.
    pub based_on: Option<i64>,
}

/// A stored edit.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct PayloadEdit {
    /// Its id (part of the idempotency key the worker sends it with).
    pub id: i64,
    /// `crm` or `erp`.
    pub destination: String,
    /// The order version it is for.
    pub version: i64,
    /// The computed payload.
    pub original: Json<Value>,
    /// The edited payload.
    pub payload: Json<Value>,
    /// Who edited.
    pub created_by: String,
    /// When.
    pub created_at: DateTime<Utc>,
    /// Laid onto the order's later versions too (every edit saved since that rule; older
    /// ones were for their version only).
    pub carries: bool,
}

impl Store {
    /// The edit a delivery of `version` lays onto the payload it computes (see
    /// `engine::edit::carry`): the newest for that version or, when there is none, for the
    /// latest version before it that has one.
    pub async fn payload_edit_to_carry(
        &self,
        store_order_id: i64,
        destination: &str,
        version: i64,
    ) -> Result<Option<PayloadEditInForce>, StoreError> {
        let row = on_pool!(&self.db, pool => {
            sqlx::query_as::<_, PayloadEdit>(
                "SELECT id, destination, version, original, payload, created_by, created_at, carries FROM payload_edits
                 WHERE store_order_id = $1 AND destination = $2 AND (version = $3 OR (carries AND version < $3))
                 ORDER BY version DESC, id DESC LIMIT 1",
            )
            .bind(store_order_id)
            .bind(destination)
            .bind(version)
            .fetch_optional(pool)
            .await
        })?;
        Ok(row.map(|r| PayloadEditInForce {
            id: r.id,
            payload: r.payload.0,
            original: r.original.0,
            created_by: r.created_by,
            created_at: r.created_at,
        }))
    }

    /// Every edit of an order, newest first (for its timeline).
    pub async fn payload_edits(&self, store_order_id: i64) -> Result<Vec<PayloadEdit>, StoreError> {
        let rows = on_pool!(&self.db, pool => {
            sqlx::query_as::<_, PayloadEdit>(
                "SELECT id, destination, version, original, payload, created_by, created_at, carries FROM payload_edits
                 WHERE store_order_id = $1 ORDER BY id DESC LIMIT 100",
            )
            .bind(store_order_id)
            .fetch_all(pool)
            .await
        })?;
        Ok(rows)
    }

    /// Saves an edit and queues the order for the destination now, in one transaction with
    /// its audit entry (`payload.edited`, the changed fields before and after). Refused when
    /// the order has moved past `version`, or while a delivery to the destination is in flight
    /// (it would finish with the old payload and count the version as synced).
    /// Run again when PostgreSQL undoes it to break a deadlock (nothing of it was written).
    pub async fn save_payload_edit(
        &self,
        edit: &NewPayloadEdit,
        by: &Actor,
    ) -> Result<RetryOutcome, StoreError> {
        retrying_deadlocks(|| self.save_payload_edit_once(edit, by)).await
    }

    async fn save_payload_edit_once(
        &self,
        edit: &NewPayloadEdit,
        by: &Actor,
    ) -> Result<RetryOutcome, StoreError> {
        let now = Utc::now();
        let place = edit.destination.to_uppercase();
        on_pool!(&self.db, pool => {
            let pg = is_postgres(pool);
            // SQLite: take the write lock first; the checks below decide what is written.
            let mut tx = if pg { pool.begin().await? } else { pool.begin_with("BEGIN IMMEDIATE").await? };
            let version: Option<i64> = sqlx::query_scalar(
                if pg { "SELECT version FROM orders WHERE store_order_id = $1 FOR UPDATE" }
                else { "SELECT version FROM orders WHERE store_order_id = $1" },
            )
            .bind(edit.store_order_id)
            .fetch_optional(&mut *tx)
            .await?;
            match version {
                None => return Err(StoreError::NotFound("order")),
                Some(v) if v != edit.version => {
                    return Err(StoreError::Conflict(format!(
                        "The order changed in the store while you edited (it is at version {v} now), so this edit no longer fits. Reload the order and edit again if it still needs it."
                    )));
                }
                Some(_) => {}
            }
            // Someone else saved an edit since this person opened the order: theirs would be
            // undone unseen. (The order's row is locked, or SQLite's write lock held.)
            if let Some(based_on) = edit.based_on {
                let newest: Option<i64> = sqlx::query_scalar(
                    "SELECT id FROM payload_edits WHERE store_order_id = $1 AND destination = $2
                       AND (version = $3 OR (carries AND version < $3))
                     ORDER BY version DESC, id DESC LIMIT 1",
                )
                .bind(edit.store_order_id)
                .bind(&edit.destination)
                .bind(edit.version)
                .fetch_optional(&mut *tx)
                .await?;
                if newest.unwrap_or(0) != based_on {
                    return Err(StoreError::Conflict(format!(
                        "Someone else edited what the {place} gets since you opened this order. Reload it to see their change, and edit again if it still needs it."
                    )));
                }
            }
            let queued = sqlx::query(
                "UPDATE sync_tasks SET state = 'pending', attempt = 0, scheduled_at = $3, blocked_on = NULL, updated_at = $3
                 WHERE store_order_id = $1 AND destination = $2 AND state <> 'running'",
            )
            .bind(edit.store_order_id)
            .bind(&edit.destination)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if queued == 0 {
                return Err(StoreError::Conflict(format!(
                    "The order is being delivered to the {place} right now. Wait a moment, reload, and save the edit again if it is still needed."
                )));
            }
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO payload_edits (store_order_id, destination, version, original, payload, created_by, created_at, carries)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, TRUE) RETURNING id",
            )
            .bind(edit.store_order_id)
            .bind(&edit.destination)
            .bind(edit.version)
            .bind(Json(&edit.original))
            .bind(Json(&edit.payload))
            .bind(by.label())
            .bind(now)
            .fetch_one(&mut *tx)
            .await?;
            let change = Change::new(by, "payload.edited", format!("order:{}", edit.store_order_id)).after(json!({
                "destination": edit.destination, "version": edit.version, "edit": id, "changes": edit.changes
            }));
            insert_audit!(&mut *tx, &change)?;
            tx.commit().await?;
            Ok::<RetryOutcome, StoreError>(RetryOutcome::Queued)
        })
    }
}

/// The edit the worker sends.
#[derive(Clone, Debug)]
pub struct PayloadEditInForce {
    /// Its id.
    pub id: i64,
    /// The edited payload.
    pub payload: Value,
    /// The computed payload it replaces.
    pub original: Value,
    /// Who edited.
    pub created_by: String,
    /// When.
    pub created_at: DateTime<Utc>,
}

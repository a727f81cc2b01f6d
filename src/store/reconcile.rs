//! Reconciliation's bookkeeping: which orders SyncDesk has at which store version, and the one
//! row that schedules the passes and keeps what the last one found.

use std::collections::HashMap;

use chrono::{DateTime, TimeDelta, Utc};

use super::{Store, StoreError, is_postgres, on_pool};

/// What the last reconciliation pass found, and when the next may start.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct ReconciliationStatus {
    /// No pass starts before this.
    pub next_at: DateTime<Utc>,
    /// The next pass reads orders changed at or after this.
    pub watermark: DateTime<Utc>,
    /// When the last pass started.
    pub last_started_at: Option<DateTime<Utc>>,
    /// When the last pass finished (successfully or not).
    pub last_finished_at: Option<DateTime<Utc>>,
    /// Orders the last successful pass listed.
    pub last_checked: i64,
    /// Of those, how many SyncDesk had never heard of.
    pub last_missing: i64,
    /// And how many it had at an older state than the store's.
    pub last_behind: i64,
    /// Passes finished.
    pub passes: i64,
    /// Why the last pass failed; `None` when it succeeded.
    pub last_error: Option<String>,
}

impl Store {
    /// The store's `updated_at` SyncDesk has applied for each of `ids` it knows.
    pub async fn known_store_versions(
        &self,
        ids: &[i64],
    ) -> Result<HashMap<i64, DateTime<Utc>>, StoreError> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let ids = serde_json::to_string(ids).unwrap_or_else(|_| "[]".to_string());
        let rows: Vec<(i64, DateTime<Utc>)> = on_pool!(&self.db, pool => {
            let sql = if is_postgres(pool) {
                "SELECT store_order_id, store_updated_at FROM orders
                 WHERE store_order_id IN (SELECT CAST(value AS BIGINT) FROM jsonb_array_elements_text(CAST($1 AS JSONB)))"
            } else {
                "SELECT store_order_id, store_updated_at FROM orders
                 WHERE store_order_id IN (SELECT value FROM json_each($1))"
            };
            sqlx::query_as(sql).bind(&ids).fetch_all(pool).await
        })?;
        Ok(rows.into_iter().collect())
    }

    /// Claims the next scheduled pass when it is due at `now`: moves the schedule on by `every`
    /// and returns the watermark to read from. `None` when it is not due, or another process
    /// claimed it first. The first claim ever reads from `first_since`.
    pub async fn claim_reconciliation(
        &self,
        now: DateTime<Utc>,
        every: TimeDelta,
        first_since: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        let watermark = on_pool!(&self.db, pool => {
            sqlx::query(
                "INSERT INTO reconciliation (id, next_at, watermark) VALUES (1, $1, $2)
                 ON CONFLICT (id) DO NOTHING",
            )
            .bind(now)
            .bind(first_since)
            .execute(pool)
            .await?;
            sqlx::query_scalar::<_, DateTime<Utc>>(
                "UPDATE reconciliation SET next_at = $2, last_started_at = $1
                 WHERE id = 1 AND next_at <= $1
                 RETURNING watermark",
            )
            .bind(now)
            .bind(now + every)
            .fetch_optional(pool)
            .await
        })?;
        Ok(watermark)
    }

    /// Records a finished pass: on success what it found and the next watermark (never moved
    /// back), on failure why (how far a failed pass read is kept apart, by
    /// [`Store::keep_reconciliation_progress`]).
    pub async fn finish_reconciliation(
        &self,
        now: DateTime<Utc>,
        outcome: Result<(i64, i64, i64, DateTime<Utc>), &str>,
    ) -> Result<(), StoreError> {
        on_pool!(&self.db, pool => {
            match outcome {
                Ok((checked, missing, behind, watermark)) => {
                    sqlx::query(
                        "UPDATE reconciliation SET last_finished_at = $1, last_checked = $2, last_missing = $3,
                             last_behind = $4, passes = passes + 1, last_error = NULL,
                             watermark = CASE WHEN watermark < $5 THEN $5 ELSE watermark END
                         WHERE id = 1",
                    )
                    .bind(now)
                    .bind(checked)
                    .bind(missing)
                    .bind(behind)
                    .bind(watermark)
                    .execute(pool)
                    .await
                }
                Err(error) => {
                    sqlx::query(
                        "UPDATE reconciliation SET last_finished_at = $1, passes = passes + 1, last_error = $2
                         WHERE id = 1",
                    )
                    .bind(now)
                    .bind(error)
                    .execute(pool)
                    .await
                }
            }
            .map(|_| ())
        })?;
        Ok(())
    }

    /// Keeps how far a pass that stopped partway read (`reached`, never moving the watermark
    /// back), and, when `due_at` is given, makes the next pass due then.
    pub async fn keep_reconciliation_progress(
        &self,
        reached: Option<DateTime<Utc>>,
        due_at: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError> {
        if reached.is_none() && due_at.is_none() {
            return Ok(());
        }
        on_pool!(&self.db, pool => {
            sqlx::query(
                "UPDATE reconciliation SET
                     watermark = CASE WHEN $1 IS NOT NULL AND watermark < $1 THEN $1 ELSE watermark END,
                     next_at = COALESCE($2, next_at)
                 WHERE id = 1",
            )
            .bind(reached)
            .bind(due_at)
            .execute(pool)
            .await
            .map(|_| ())
        })?;
        Ok(())
    }

    /// The schedule and the last pass's findings; `None` before the first pass.
    pub async fn reconciliation_status(&self) -> Result<Option<ReconciliationStatus>, StoreError> {
        let status = on_pool!(&self.db, pool => {
            sqlx::query_as::<_, ReconciliationStatus>(
                "SELECT next_at, watermark, last_started_at, last_finished_at, last_checked, last_missing,
                        last_behind, passes, last_error
                 FROM reconciliation WHERE id = 1",
            )
            .fetch_optional(pool)
            .await
        })?;
        Ok(status)
    }
}

//! Sync tasks: what a worker holds, claiming due tasks under a lease, and what a delivery
//! starts from (the order's snapshot, the ERP's item codes). Recording the outcome is in
//! `outcomes`.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use sqlx::types::Json;

use super::sqlite::{self, Time};
use super::{Store, StoreError, is_postgres, on_pool};
use crate::domain::Order;

/// A task a worker holds a lease on.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct ClaimedTask {
    /// Task id.
    pub id: i64,
    /// The store's order id.
    pub store_order_id: i64,
    /// `crm` or `erp`.
    pub destination: String,
    /// The order version to reach.
    pub target_version: i64,
    /// The version last acknowledged by the destination.
    pub synced_version: Option<i64>,
    /// This attempt's number (1 for the first) since the task was last armed.
    pub attempt: i64,
    /// Claims of this task ever, this one included. Never reset, unlike `attempt`: 1 means no
    /// earlier worker can have sent anything for this order to this destination.
    pub claims: i64,
    /// The destination's id for the order, once known.
    pub external_id: Option<String>,
    /// Fencing token of this lease.
    pub lease_token: String,
    /// When the target version was armed (for lag).
    pub armed_at: DateTime<Utc>,
    /// When it was due: armed, or its retry's time came (a rescued task keeps the time it was
    /// due before the lease it outlived). How long it waited for a worker, with the claim's
    /// time.
    pub scheduled_at: DateTime<Utc>,
    /// Whether the task had an open (or snoozed) exception when claimed. Only the lease holder
    /// opens a task's exception, so none appears while the lease is held.
    pub open_exception: bool,
    // PostgreSQL's claim reads what the delivery needs in the same statement (see `CLAIM_PG`):
    // one read fewer per task, two for the ERP's. SQLite's claim runs on the one writer, which
    // reads nothing it need not; its worker reads these on another connection.
    #[sqlx(default)]
    order_data: Option<Json<Order>>,
    #[sqlx(default)]
    order_version: Option<i64>,
    #[sqlx(default)]
    order_edited: Option<bool>,
    #[sqlx(default)]
    item_codes: Option<Json<HashMap<String, String>>>,
}

impl ClaimedTask {
    /// A new order's task as the ingest leased it (see `store::handoff`): first attempt, first
    /// claim, nothing sent yet, no exception; the order is the one the webhook carried, at
    /// version 1, with no edit, and (ERP) the item codes the ingest read.
    pub(crate) fn handed_off(
        id: i64,
        destination: &str,
        order: &Order,
        lease_token: &str,
        armed_at: DateTime<Utc>,
        item_codes: Option<HashMap<String, String>>,
    ) -> ClaimedTask {
        ClaimedTask {
            id,
            store_order_id: order.store_order_id,
            destination: destination.to_string(),
            target_version: 1,
            synced_version: None,
            attempt: 1,
            claims: 1,
            external_id: None,
            lease_token: lease_token.to_string(),
            armed_at,
            scheduled_at: armed_at,
            open_exception: false,
            order_data: Some(Json(order.clone())),
            order_version: Some(1),
            order_edited: Some(false),
            item_codes: item_codes.map(Json),
        }
    }

    /// The order as the claim read it (PostgreSQL): its state, version, and whether an edit
    /// replaces the payload for that version, as [`Store::delivery_snapshot`] returns them.
    /// `None` when the claim did not read it.
    pub fn take_snapshot(&mut self) -> Option<(Order, i64, bool)> {
        let Json(order) = self.order_data.take()?;
        Some((
            order,
            self.order_version?,
            self.order_edited.unwrap_or(false),
        ))
    }

    /// The ERP item codes mapped to the order's SKUs, as the claim read them (PostgreSQL, ERP
    /// tasks with at least one mapped SKU). A SKU missing here may be unmapped or newer than
    /// the order's SKU list: ask [`Store::item_codes`] before calling it unmapped.
    pub fn take_item_codes(&mut self) -> Option<HashMap<String, String>> {
        self.item_codes.take().map(|Json(codes)| codes)
    }
}

/// One attempt, as the timeline and the KPIs keep it.
#[derive(Clone, Debug)]
pub struct AttemptRecord {
    /// The version that was sent (or would have been).
    pub version: i64,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// How long it took.
    pub duration_ms: i64,
    /// `synced`, `transient`, `needs_action`, `auth`, `exhausted`, or `manual` (recorded by
    /// `triage` when a person resolves the exception of work done by hand).
    pub outcome: &'static str,
    /// The destination's HTTP status, if it answered.
    pub status: Option<i32>,
    /// The destination's message or ours.
    pub message: Option<String>,
    /// The destination's request id.
    pub request_id: Option<String>,
}

/// An exception to open (or refresh) for a task or a destination.
#[derive(Clone, Debug)]
pub struct NewException {
    /// Machine code, e.g. `missing_sku_mapping`.
    pub code: String,
    /// `needs_action`, `transient` or `exhausted`.
    pub kind: &'static str,
    /// Cause fingerprint for grouping and release, e.g. `missing_sku:erp:ABC-123`.
    pub fingerprint: String,
    /// The sentence a person reads.
    pub message: String,
    /// The action that fixes it.
    pub action: String,
    /// Fields concerned.
    pub fields: Vec<String>,
}

// Claiming: due tasks, and running tasks whose lease expired (their worker died), skipping
// paused destinations, oldest first. Each state's due range is read in index order up to the
// limit, and only those are sorted: with one `OR` over the states, both databases sorted every
// due task for each claim (on SQLite, 1.8 ms a claim with a few thousand waiting, a fifth of the
// writer's time). PostgreSQL: FOR UPDATE SKIP LOCKED lets several workers on several machines
// claim disjoint batches without waiting on each other (a range may lock a few more rows than
// the claim takes, for the length of this one statement). SQLite: a single writer, so the
// statement is atomic on its own.
macro_rules! claim_sql {
    ($lock:literal) => {
        concat!(
            "UPDATE sync_tasks SET state = 'running', lease_token = $1, lease_expires_at = $2, attempt = attempt + 1, claims = claims + 1, updated_at = $3
WHERE id IN (
    SELECT id FROM (
        SELECT * FROM (SELECT id, scheduled_at FROM sync_tasks
                       WHERE state = 'pending' AND scheduled_at <= $3
                         AND destination NOT IN (SELECT name FROM destinations WHERE paused)
                       ORDER BY scheduled_at LIMIT $4", $lock, ") pending
        UNION ALL
        SELECT * FROM (SELECT id, scheduled_at FROM sync_tasks
                       WHERE state = 'retrying' AND scheduled_at <= $3
                         AND destination NOT IN (SELECT name FROM destinations WHERE paused)
                       ORDER BY scheduled_at LIMIT $4", $lock, ") retrying
        UNION ALL
        SELECT * FROM (SELECT id, scheduled_at FROM sync_tasks
                       WHERE state = 'running' AND lease_expires_at < $3
                         AND destination NOT IN (SELECT name FROM destinations WHERE paused)
                       ORDER BY scheduled_at LIMIT $4", $lock, ") expired) due
    ORDER BY scheduled_at
    LIMIT $4)
RETURNING id, store_order_id, destination, target_version, synced_version, attempt, claims, external_id, lease_token, armed_at, scheduled_at,
    EXISTS (SELECT 1 FROM exceptions x WHERE x.task_id = sync_tasks.id AND x.status IN ('open', 'snoozed')) AS open_exception"
        )
    };
}
/// PostgreSQL's claim also reads, for each task, the order's current state and version, whether
/// an edit was made for that version or an earlier one (it is laid onto the payload), and (ERP tasks) the item codes of the order's SKUs.
const CLAIM_PG: &str = concat!(
    "WITH claimed AS (",
    claim_sql!(" FOR UPDATE SKIP LOCKED"),
    ")
SELECT c.*, o.data AS order_data, o.version AS order_version,
    EXISTS (SELECT 1 FROM payload_edits p
            WHERE p.store_order_id = c.store_order_id AND p.destination = c.destination
              AND (p.version = o.version OR (p.carries AND p.version < o.version))) AS order_edited,
    CASE WHEN c.destination = 'erp' THEN
        (SELECT jsonb_object_agg(m.sku, m.item_code) FROM order_skus s JOIN sku_mappings m ON m.sku = s.sku
         WHERE s.store_order_id = c.store_order_id) END AS item_codes
FROM claimed c LEFT JOIN orders o ON o.store_order_id = c.store_order_id"
);
const CLAIM_SQLITE: &str = claim_sql!("");

impl Store {
    /// Claims up to `limit` due tasks for `lease`.
    pub async fn claim_tasks(
        &self,
        limit: i64,
        lease: Duration,
    ) -> Result<Vec<ClaimedTask>, StoreError> {
        let now = Utc::now();
        let expires = now + TimeDelta::from_std(lease).unwrap_or(TimeDelta::seconds(60));
        let token = uuid::Uuid::now_v7().to_string();
        if let Some(writer) = &self.writer {
            // An idle queue is polled by every worker; after a claim that found nothing, a read
            // on any connection decides whether the next one is worth a write transaction (and
            // its fsync) on the one writer.
            if writer.idle() && !self.work_due(now).await? {
                self.claims.counted(0);
                return Ok(Vec::new());
            }
            let claimed = writer
                .write(move |conn| claim_on_writer(conn, &token, expires, now, limit))
                .await?;
            writer.set_idle(claimed.is_empty());
            self.claims.counted(claimed.len());
            self.handoff.claimed(&claimed);
            return Ok(claimed);
        }
        // One statement needs no transaction around it.
        let claimed = on_pool!(&self.db, pool => {
            let sql = if is_postgres(pool) { CLAIM_PG } else { CLAIM_SQLITE };
            sqlx::query_as::<_, ClaimedTask>(sql).bind(&token).bind(expires).bind(now).bind(limit).fetch_all(pool).await?
        });
        self.claims.counted(claimed.len());
        self.handoff.claimed(&claimed);
        Ok(claimed)
    }

    /// Whether any task is due for a claim at `now` (SQLite's idle check; a destination's pause
    /// is left to the claim itself).
    async fn work_due(&self, now: DateTime<Utc>) -> Result<bool, StoreError> {
        let due = on_pool!(&self.db, pool => {
            sqlx::query_scalar::<_, bool>(
                "SELECT EXISTS (SELECT 1 FROM sync_tasks WHERE state = 'pending' AND scheduled_at <= $1)
                     OR EXISTS (SELECT 1 FROM sync_tasks WHERE state = 'retrying' AND scheduled_at <= $1)
                     OR EXISTS (SELECT 1 FROM sync_tasks WHERE state = 'running' AND lease_expires_at < $1)",
            )
            .bind(now)
            .fetch_one(pool)
            .await
        })?;
        Ok(due)
    }

    /// The canonical order and its version.
    pub async fn order_snapshot(
        &self,
        store_order_id: i64,
    ) -> Result<Option<(Order, i64)>, StoreError> {
        let row = on_pool!(&self.db, pool => {
            sqlx::query_as::<_, (Json<Order>, i64)>("SELECT data, version FROM orders WHERE store_order_id = $1")
                .bind(store_order_id)
                .fetch_optional(pool)
                .await
        })?;
        Ok(row.map(|(Json(order), version)| (order, version)))
    }

    /// What a delivery of the order to `destination` starts from, in one read: the canonical
    /// order, its version, and whether an operator edited the payload for that version or an
    /// earlier one (then [`Store::payload_edit_to_carry`] has it; edits are refused while a
    /// delivery runs, so the answer holds for the whole attempt).
    pub async fn delivery_snapshot(
        &self,
        store_order_id: i64,
        destination: &str,
    ) -> Result<Option<(Order, i64, bool)>, StoreError> {
        let row = on_pool!(&self.db, pool => {
            sqlx::query_as::<_, (Json<Order>, i64, bool)>(
                "SELECT o.data, o.version, EXISTS (
                     SELECT 1 FROM payload_edits p
                     WHERE p.store_order_id = o.store_order_id AND p.destination = $2
                       AND (p.version = o.version OR (p.carries AND p.version < o.version)))
                 FROM orders o WHERE o.store_order_id = $1",
            )
            .bind(store_order_id)
            .bind(destination)
            .fetch_optional(pool)
            .await
        })?;
        Ok(row.map(|(Json(order), version, edited)| (order, version, edited)))
    }

    /// When the task's current run of attempts began, for attempt number `attempt` of the run
    /// (a retry, a release or a newer version starts the count again): the earliest of the
    /// run's recorded attempts, the latest `attempt - 1` of the task. `None` for a first
    /// attempt. (An attempt a killed worker never recorded lets one older attempt in.)
    pub async fn run_started_at(
        &self,
        task_id: i64,
        attempt: i64,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        let earlier = attempt.saturating_sub(1);
        if earlier <= 0 {
            return Ok(None);
        }
        let started = on_pool!(&self.db, pool => {
            sqlx::query_scalar::<_, Option<DateTime<Utc>>>(
                "SELECT MIN(started_at) FROM (SELECT started_at FROM sync_attempts WHERE task_id = $1
                 ORDER BY id DESC LIMIT $2) AS run",
            )
            .bind(task_id)
            .bind(earlier)
            .fetch_one(pool)
            .await
        })?;
        Ok(started)
    }

    /// The ERP item codes mapped to these SKUs (unmapped SKUs are absent): one query per 500
    /// SKUs, i.e. one for any real order.
    pub async fn item_codes(&self, skus: &[&str]) -> Result<HashMap<String, String>, StoreError> {
        let mut codes = HashMap::new();
        for chunk in skus.chunks(500) {
            let placeholders: Vec<String> = (1..=chunk.len()).map(|n| format!("${n}")).collect();
            let sql = format!(
                "SELECT sku, item_code FROM sku_mappings WHERE sku IN ({})",
                placeholders.join(", ")
            );
            let rows = on_pool!(&self.db, pool => {
                let mut query = sqlx::query_as::<_, (String, String)>(&sql);
                for sku in chunk {
                    query = query.bind(*sku);
                }
                query.fetch_all(pool).await
            })?;
            codes.extend(rows);
        }
        Ok(codes)
    }
}

/// SQLite: claims up to `limit` due tasks under the lease `token`, on the writer's connection
/// (see [`CLAIM_SQLITE`]).
fn claim_on_writer(
    conn: &rusqlite::Connection,
    token: &str,
    expires: DateTime<Utc>,
    now: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<ClaimedTask>, StoreError> {
    sqlite::query(
        conn,
        CLAIM_SQLITE,
        &[&token, &Time(expires), &Time(now), &limit],
        |row| {
            Ok(ClaimedTask {
                id: row.get("id")?,
                store_order_id: row.get("store_order_id")?,
                destination: row.get("destination")?,
                target_version: row.get("target_version")?,
                synced_version: row.get("synced_version")?,
                attempt: row.get("attempt")?,
                claims: row.get("claims")?,
                external_id: row.get("external_id")?,
                lease_token: row.get("lease_token")?,
                armed_at: sqlite::time(row, "armed_at")?,
                scheduled_at: sqlite::time(row, "scheduled_at")?,
                open_exception: row.get("open_exception")?,
                order_data: None,
                order_version: None,
                order_edited: None,
                item_codes: None,
            })
        },
    )
}

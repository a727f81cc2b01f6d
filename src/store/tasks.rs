//! Sync tasks: claiming with leases, and recording each attempt's outcome. Every completion is
//! fenced by the lease token: a worker whose lease expired (and whose task another worker took)
//! cannot overwrite the newer worker's record.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use sqlx::types::Json;

use super::{Store, StoreError, hot_write, is_postgres, on_connection, on_pool};
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
    /// `synced`, `transient`, `needs_action`, `auth` or `exhausted`.
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
RETURNING id, store_order_id, destination, target_version, synced_version, attempt, claims, external_id, lease_token, armed_at,
    EXISTS (SELECT 1 FROM exceptions x WHERE x.task_id = sync_tasks.id AND x.status IN ('open', 'snoozed')) AS open_exception"
        )
    };
}
/// PostgreSQL's claim also reads, for each task, the order's current state and version, whether
/// an edit is in force for that version, and (ERP tasks) the item codes of the order's SKUs.
const CLAIM_PG: &str = concat!(
    "WITH claimed AS (",
    claim_sql!(" FOR UPDATE SKIP LOCKED"),
    ")
SELECT c.*, o.data AS order_data, o.version AS order_version,
    EXISTS (SELECT 1 FROM payload_edits p
            WHERE p.store_order_id = c.store_order_id AND p.destination = c.destination AND p.version = o.version) AS order_edited,
    CASE WHEN c.destination = 'erp' THEN
        (SELECT jsonb_object_agg(m.sku, m.item_code) FROM order_skus s JOIN sku_mappings m ON m.sku = s.sku
         WHERE s.store_order_id = c.store_order_id) END AS item_codes
FROM claimed c LEFT JOIN orders o ON o.store_order_id = c.store_order_id"
);
const CLAIM_SQLITE: &str = claim_sql!("");

/// Records an attempt through `$exec`.
/// A synced delivery's task, fenced by its lease token (`$1` the task, `$2` the token, `$3` the
/// version synced, `$4` the external id, `$5` now).
macro_rules! synced_task {
    () => {
        "UPDATE sync_tasks SET synced_version = $3, external_id = $4, lease_token = NULL, lease_expires_at = NULL,
             last_error = NULL, blocked_on = NULL,
             state = CASE WHEN target_version > $3 THEN 'pending' ELSE 'synced' END,
             attempt = 0, scheduled_at = $5,
             armed_at = CASE WHEN target_version > $3 THEN $5 ELSE armed_at END,
             updated_at = $5
         WHERE id = $1 AND lease_token = $2"
    };
}
const SYNCED_TASK: &str = synced_task!();
/// SQLite: [`SYNCED_TASK`] and its attempt in one call (two statements, sharing the numbered
/// binds): the writer's calls are each a hand-off to the connection's thread and back, and
/// this is the commonest write of all. The attempt is written only when the update was
/// (`changes()`), so a lost lease writes nothing, as before.
const SYNCED_TASK_AND_ATTEMPT_SQLITE: &str = concat!(
    synced_task!(),
    ";
INSERT INTO sync_attempts (task_id, store_order_id, destination, version, attempt, started_at, duration_ms,
    outcome, status, message, request_id, lag_ms)
SELECT $1, $6, $7, $3, $8, $9, $10, $11, $12, $13, $14, $15 WHERE changes() = 1"
);

macro_rules! insert_attempt {
    ($exec:expr, $task:expr, $rec:expr, $lag:expr) => {{
        let task: &ClaimedTask = $task;
        let rec: &AttemptRecord = $rec;
        bind_attempt!(
            sqlx::query(
                "INSERT INTO sync_attempts (task_id, version, store_order_id, destination, attempt, started_at,
                     duration_ms, outcome, status, message, request_id, lag_ms)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
            )
            .bind(task.id)
            .bind(rec.version),
            task,
            rec,
            $lag
        )
        .execute($exec)
        .await
        .map(|_| ())
    }};
}

/// Binds the rest of an attempt's row to `$query`, in this order: the order, the destination,
/// the attempt's number, start, duration, outcome, status, message, request id and lag.
macro_rules! bind_attempt {
    ($query:expr, $task:expr, $rec:expr, $lag:expr) => {
        $query
            .bind($task.store_order_id)
            .bind(&$task.destination)
            .bind($task.attempt)
            .bind($rec.started_at)
            .bind($rec.duration_ms)
            .bind($rec.outcome)
            .bind($rec.status)
            .bind($rec.message.as_deref())
            .bind($rec.request_id.as_deref())
            .bind($lag)
    };
}

/// Opens (or refreshes) the one open exception of a task through `$exec`.
macro_rules! open_task_exception {
    ($exec:expr, $task:expr, $exc:expr, $now:expr) => {{
        let task: &ClaimedTask = $task;
        let exc: &NewException = $exc;
        sqlx::query(
            "INSERT INTO exceptions (task_id, store_order_id, destination, code, kind, fingerprint, message, action, fields,
                 status, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'open', $10, $10)
             ON CONFLICT (task_id) WHERE status IN ('open', 'snoozed') AND task_id IS NOT NULL DO UPDATE SET
                 code = excluded.code, kind = excluded.kind, fingerprint = excluded.fingerprint,
                 message = excluded.message, action = excluded.action, fields = excluded.fields,
                 updated_at = excluded.updated_at",
        )
        .bind(task.id)
        .bind(task.store_order_id)
        .bind(&task.destination)
        .bind(&exc.code)
        .bind(exc.kind)
        .bind(&exc.fingerprint)
        .bind(&exc.message)
        .bind(&exc.action)
        .bind(Json(&exc.fields))
        .bind($now)
        .execute($exec)
        .await
        .map(|_| ())
    }};
}

/// From the moment the version was armed to `now`.
pub(super) fn lag_ms(armed_at: DateTime<Utc>, now: DateTime<Utc>) -> i64 {
    (now - armed_at).num_milliseconds().max(0)
}

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
            let claimed: Vec<ClaimedTask> = hot_write!(self, claim(token, expires, now, limit))?;
            writer.set_idle(claimed.is_empty());
            self.claims.counted(claimed.len());
            return Ok(claimed);
        }
        // One statement needs no transaction around it.
        let claimed = on_pool!(&self.db, pool => {
            let sql = if is_postgres(pool) { CLAIM_PG } else { CLAIM_SQLITE };
            sqlx::query_as::<_, ClaimedTask>(sql).bind(&token).bind(expires).bind(now).bind(limit).fetch_all(pool).await?
        });
        self.claims.counted(claimed.len());
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
    /// order, its version, and whether an operator edited the payload for exactly that version
    /// (then [`Store::payload_edit`] has it; edits are refused while a delivery runs, so the
    /// answer holds for the whole attempt).
    pub async fn delivery_snapshot(
        &self,
        store_order_id: i64,
        destination: &str,
    ) -> Result<Option<(Order, i64, bool)>, StoreError> {
        let row = on_pool!(&self.db, pool => {
            sqlx::query_as::<_, (Json<Order>, i64, bool)>(
                "SELECT o.data, o.version, EXISTS (
                     SELECT 1 FROM payload_edits p
                     WHERE p.store_order_id = o.store_order_id AND p.destination = $2 AND p.version = o.version)
                 FROM orders o WHERE o.store_order_id = $1",
            )
            .bind(store_order_id)
            .bind(destination)
            .fetch_optional(pool)
            .await
        })?;
        Ok(row.map(|(Json(order), version, edited)| (order, version, edited)))
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

    /// The destination acknowledged `version`. The task is synced — or re-armed at once when a
    /// newer version arrived meanwhile — and its open exception resolves itself. Returns false
    /// when the lease was lost (nothing recorded; the new holder sends the same idempotent
    /// upsert).
    pub async fn complete_synced(
        &self,
        task: &ClaimedTask,
        external_id: &str,
        rec: &AttemptRecord,
    ) -> Result<bool, StoreError> {
        if let Some(completions) = &self.completions {
            // PostgreSQL: written together with other workers' completions (see `completions`).
            return super::completions::synced(completions, task, external_id, rec).await;
        }
        let now = Utc::now();
        let (task, external_id, rec) = (task.clone(), external_id.to_string(), rec.clone());
        hot_write!(self, record_synced(task, external_id, rec, now))
    }

    /// A transient failure: try again at `next_at`. When `exception` is given (the task has
    /// been failing for a while) it is opened as a transient exception people can see.
    pub async fn complete_retry(
        &self,
        task: &ClaimedTask,
        next_at: DateTime<Utc>,
        rec: &AttemptRecord,
        exception: Option<&NewException>,
    ) -> Result<bool, StoreError> {
        self.finish(task, "retrying", Some(next_at), None, rec, exception)
            .await
    }

    /// Needs a person: the task is blocked on the exception's fingerprint until released.
    pub async fn complete_blocked(
        &self,
        task: &ClaimedTask,
        rec: &AttemptRecord,
        exception: &NewException,
    ) -> Result<bool, StoreError> {
        self.finish(
            task,
            "blocked",
            None,
            Some(&exception.fingerprint),
            rec,
            Some(exception),
        )
        .await
    }

    /// Out of attempts: dead-lettered with its history.
    pub async fn complete_dead(
        &self,
        task: &ClaimedTask,
        rec: &AttemptRecord,
        exception: &NewException,
    ) -> Result<bool, StoreError> {
        self.finish(task, "dead", None, None, rec, Some(exception))
            .await
    }

    async fn finish(
        &self,
        task: &ClaimedTask,
        state: &'static str,
        next_at: Option<DateTime<Utc>>,
        blocked_on: Option<&str>,
        rec: &AttemptRecord,
        exception: Option<&NewException>,
    ) -> Result<bool, StoreError> {
        let now = Utc::now();
        let (task, rec) = (task.clone(), rec.clone());
        let (blocked_on, exception) = (blocked_on.map(str::to_string), exception.cloned());
        hot_write!(
            self,
            record_finish(task, state, next_at, blocked_on, rec, exception, now)
        )
    }

    /// The destination rejected our credentials: pause it (nothing more is sent until they are
    /// renewed), put the task back untouched, and keep one exception for the destination.
    pub async fn pause_destination(
        &self,
        task: &ClaimedTask,
        rec: &AttemptRecord,
        exception: &NewException,
    ) -> Result<bool, StoreError> {
        let now = Utc::now();
        let paused = on_pool!(&self.db, pool => {
            let mut tx = pool.begin().await?;
            let done = sqlx::query(
                "UPDATE sync_tasks SET state = 'pending', attempt = attempt - 1, lease_token = NULL, lease_expires_at = NULL,
                     updated_at = $3
                 WHERE id = $1 AND lease_token = $2",
            )
            .bind(task.id)
            .bind(&task.lease_token)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() == 0 {
                return Ok(false);
            }
            insert_attempt!(&mut *tx, task, rec, None::<i64>)?;
            sqlx::query("UPDATE destinations SET paused = TRUE, paused_reason = $2, paused_at = $3, updated_at = $3 WHERE name = $1 AND NOT paused")
                .bind(&task.destination)
                .bind(&exception.message)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "INSERT INTO exceptions (task_id, store_order_id, destination, code, kind, fingerprint, message, action, fields,
                     status, created_at, updated_at)
                 VALUES (NULL, NULL, $1, $2, $3, $4, $5, $6, $7, 'open', $8, $8)
                 ON CONFLICT (fingerprint) WHERE status IN ('open', 'snoozed') AND task_id IS NULL DO UPDATE SET
                     message = excluded.message, updated_at = excluded.updated_at",
            )
            .bind(&task.destination)
            .bind(&exception.code)
            .bind(exception.kind)
            .bind(&exception.fingerprint)
            .bind(&exception.message)
            .bind(&exception.action)
            .bind(Json(&exception.fields))
            .bind(now)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok::<bool, StoreError>(true)
        })?;
        if paused {
            // Nothing more goes out with credentials it refuses: the tasks handed off to this
            // process for it and not started go back to pending, as the claims skip it.
            self.release_handed_off_to(&task.destination).await?;
        }
        Ok(paused)
    }

    /// Names of the destinations currently paused.
    pub async fn paused_destinations(&self) -> Result<Vec<String>, StoreError> {
        let names = on_pool!(&self.db, pool => {
            sqlx::query_scalar::<_, String>("SELECT name FROM destinations WHERE paused ORDER BY name").fetch_all(pool).await
        })?;
        Ok(names)
    }
}

on_connection! {
    /// Claims up to `limit` due tasks under the lease `token` (see the claim statements).
    fn claim(conn, pg, token: &str, expires: &DateTime<Utc>, now: &DateTime<Utc>, limit: &i64) -> Result<Vec<ClaimedTask>, StoreError> {
        let sql = if pg { CLAIM_PG } else { CLAIM_SQLITE };
        Ok(sqlx::query_as::<_, ClaimedTask>(sql)
            .bind(token)
            .bind(*expires)
            .bind(*now)
            .bind(*limit)
            .fetch_all(&mut *conn)
            .await?)
    }
}

on_connection! {
    /// [`Store::complete_synced`] inside the caller's transaction.
    fn record_synced(conn, pg, task: &ClaimedTask, external_id: &str, rec: &AttemptRecord, now: &DateTime<Utc>) -> Result<bool, StoreError> {
        let lag = Some(lag_ms(task.armed_at, *now));
        let update = sqlx::query(if pg { SYNCED_TASK } else { SYNCED_TASK_AND_ATTEMPT_SQLITE })
            .bind(task.id)
            .bind(&task.lease_token)
            .bind(rec.version)
            .bind(external_id)
            .bind(now);
        let done = if pg {
            update
        } else {
            // The attempt too, in the same call (see SYNCED_TASK_AND_ATTEMPT_SQLITE).
            bind_attempt!(update, task, rec, lag)
        }
        .execute(&mut *conn)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        if pg {
            insert_attempt!(&mut *conn, task, rec, lag)?;
        }
        if !task.open_exception {
            // Nothing to resolve: one statement fewer on the commonest write of all.
            return Ok(true);
        }
        sqlx::query(
            "UPDATE exceptions SET status = 'resolved', resolved_at = $2, resolved_by = 'engine',
                 resolution = 'Synced on a later attempt', updated_at = $2
             WHERE task_id = $1 AND status IN ('open', 'snoozed')",
        )
        .bind(task.id)
        .bind(now)
        .execute(&mut *conn)
        .await?;
        Ok(true)
    }
}

on_connection! {
    /// [`Store::complete_retry`], [`Store::complete_blocked`] and [`Store::complete_dead`]
    /// inside the caller's transaction.
    fn record_finish(
        conn,
        pg,
        task: &ClaimedTask,
        state: &&'static str,
        next_at: &Option<DateTime<Utc>>,
        blocked_on: &Option<String>,
        rec: &AttemptRecord,
        exception: &Option<NewException>,
        now: &DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE sync_tasks SET state = $3, scheduled_at = COALESCE($4, scheduled_at), blocked_on = $5,
                 last_error = $6, lease_token = NULL, lease_expires_at = NULL, updated_at = $7
             WHERE id = $1 AND lease_token = $2",
        )
        .bind(task.id)
        .bind(&task.lease_token)
        .bind(*state)
        .bind(*next_at)
        .bind(blocked_on.as_deref())
        .bind(rec.message.as_deref())
        .bind(*now)
        .execute(&mut *conn)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        insert_attempt!(&mut *conn, task, rec, None::<i64>)?;
        if let Some(exc) = exception {
            open_task_exception!(&mut *conn, task, exc, *now)?;
        }
        Ok(true)
    }
}

//! The outcome of a delivery, recorded under its lease: synced, retry later, blocked on an
//! exception, dead, or its destination paused. Every completion is fenced by the lease token: a
//! worker whose lease expired (and whose task another worker took) cannot overwrite the newer
//! worker's record, and records no attempt.

use chrono::{DateTime, Utc};
use sqlx::types::Json;

use rusqlite::Connection;

use super::sqlite::{self, Time};
use super::tasks::{AttemptRecord, ClaimedTask, NewException};
use super::writer::not_committed;
use super::{Store, StoreError, hot_write, on_pool};

/// A synced delivery's task, fenced by its lease token (`$1` the task, `$2` the token, `$3` the
/// version synced, `$4` the external id, `$5` now); SQLite's (PostgreSQL writes synced tasks
/// together: see `completions`). A newer version that arrived during the attempt is due now,
/// and its lag runs from when it arrived (the order's last change), not from now.
const SYNCED_TASK: &str = "UPDATE sync_tasks SET synced_version = $3, external_id = $4, lease_token = NULL, lease_expires_at = NULL,
    last_error = NULL, blocked_on = NULL,
    state = CASE WHEN target_version > $3 THEN 'pending' ELSE 'synced' END,
    attempt = 0, scheduled_at = $5,
    armed_at = CASE WHEN target_version > $3
        THEN COALESCE((SELECT o.updated_at FROM orders o WHERE o.store_order_id = sync_tasks.store_order_id), $5)
        ELSE armed_at END,
    updated_at = $5
WHERE id = $1 AND lease_token = $2";

/// An attempt's row (`$1` the task, `$2` the version, then as [`bind_attempt!`] binds them).
const INSERT_ATTEMPT: &str =
    "INSERT INTO sync_attempts (task_id, version, store_order_id, destination, attempt, started_at,
    duration_ms, outcome, status, message, request_id, lag_ms)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)";

/// A task handed back untried, fenced by its lease token (`$1` the task, `$2` the token, `$3`
/// when it is due again, `$4` now): the claim's attempt is given back, and the task waits in the
/// state it was claimed from (`retrying` when attempts had failed before this one).
const HELD_BACK_TASK: &str = "UPDATE sync_tasks SET attempt = attempt - 1,
    state = CASE WHEN attempt > 1 THEN 'retrying' ELSE 'pending' END,
    scheduled_at = $3, lease_token = NULL, lease_expires_at = NULL, updated_at = $4
WHERE id = $1 AND lease_token = $2";

/// A synced task's open exception resolves itself (`$1` the task, `$2` now).
const RESOLVE_SYNCED: &str =
    "UPDATE exceptions SET status = 'resolved', resolved_at = $2, resolved_by = 'engine',
    resolution = 'Synced on a later attempt', updated_at = $2
WHERE task_id = $1 AND status IN ('open', 'snoozed')";

/// A task's outcome other than synced, fenced by its lease token (`$1` the task, `$2` the
/// token, `$3` the state, `$4` when to try again, `$5` the fingerprint it is blocked on, `$6`
/// the error, `$7` now, `$8` the version the attempt sent, `$9` whether the cause it is blocked on
/// was fixed while it ran).
///
/// A newer version armed while the attempt ran (the ingest leaves a running task to its worker)
/// is not left behind a `blocked` or `dead` state that only the attempt's version earned: the
/// task starts afresh, as the ingest starts a blocked or dead task when a newer version arrives
/// a moment later. Its exception stays open until that version syncs (which resolves it) or
/// fails too (which refreshes it). A retry is due anyway and sends the newest version.
/// Likewise a task blocked on a cause fixed during the attempt (a SKU mapped while the ERP was
/// refusing its old item code): the fix's release found it running and passed it by, so it is
/// not blocked now, but tried again.
const FINISH_TASK: &str = "UPDATE sync_tasks SET
    state = CASE WHEN ($3 IN ('blocked', 'dead') AND target_version > $8) OR ($3 = 'blocked' AND $9) THEN 'pending' ELSE $3 END,
    attempt = CASE WHEN ($3 IN ('blocked', 'dead') AND target_version > $8) OR ($3 = 'blocked' AND $9) THEN 0 ELSE attempt END,
    scheduled_at = CASE WHEN ($3 IN ('blocked', 'dead') AND target_version > $8) OR ($3 = 'blocked' AND $9) THEN $7 ELSE COALESCE($4, scheduled_at) END,
    blocked_on = CASE WHEN ($3 IN ('blocked', 'dead') AND target_version > $8) OR ($3 = 'blocked' AND $9) THEN NULL ELSE $5 END,
    last_error = $6, lease_token = NULL, lease_expires_at = NULL, updated_at = $7
WHERE id = $1 AND lease_token = $2";

/// Whether a SKU's mapping was saved at or after `$2` (`$1` the SKU): the fix of a
/// `missing_sku:erp:<sku>` cause, made while an attempt ran.
const MAPPED_SINCE: &str =
    "SELECT COUNT(*) FROM sku_mappings WHERE sku = $1 AND updated_at >= $2 AND item_code <> ''";

/// The SKU of a `missing_sku:erp:<sku>` fingerprint.
fn sku_of_fingerprint(fingerprint: &str) -> Option<&str> {
    fingerprint.strip_prefix("missing_sku:erp:")
}

/// From when a mapping saved fixes what attempt `rec` ran into. The attempt found no mapping
/// before it sent anything (`missing_sku_mapping`, no answer from the ERP): any mapping there
/// now was saved after it looked, however early the save's own clock read (a save that began
/// before the attempt and committed after it). The ERP refused the item code it was sent (same
/// code, with the ERP's status): only a mapping saved since the attempt began can hold another
/// one — counting the mapping it was sent with would send it again, and again.
fn fixed_by_mappings_since(exception: &Option<NewException>, rec: &AttemptRecord) -> DateTime<Utc> {
    match exception {
        Some(e) if e.code == "missing_sku_mapping" && rec.status.is_none() => DateTime::UNIX_EPOCH,
        _ => rec.started_at,
    }
}

/// Opens (or refreshes) the one open exception of a task (`$1` the task, `$2` the order, `$3`
/// the destination, `$4`–`$9` the exception, `$10` now).
const OPEN_TASK_EXCEPTION: &str = "INSERT INTO exceptions (task_id, store_order_id, destination, code, kind, fingerprint, message, action, fields,
    status, created_at, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'open', $10, $10)
ON CONFLICT (task_id) WHERE status IN ('open', 'snoozed') AND task_id IS NOT NULL DO UPDATE SET
    code = excluded.code, kind = excluded.kind, fingerprint = excluded.fingerprint,
    message = excluded.message, action = excluded.action, fields = excluded.fields,
    updated_at = excluded.updated_at";

/// Records an attempt through `$exec`.
macro_rules! insert_attempt {
    ($exec:expr, $task:expr, $rec:expr, $lag:expr) => {{
        let task: &ClaimedTask = $task;
        let rec: &AttemptRecord = $rec;
        bind_attempt!(
            sqlx::query(INSERT_ATTEMPT).bind(task.id).bind(rec.version),
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
        sqlx::query(OPEN_TASK_EXCEPTION)
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
        let Some(writer) = &self.writer else {
            return Err(not_committed("SQLite's writer is not running"));
        };
        let now = Utc::now();
        let (task, external_id, rec) = (task.clone(), external_id.to_string(), rec.clone());
        writer
            .write(move |conn| record_synced(conn, &task, &external_id, &rec, now))
            .await
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

    /// Held back by SyncDesk's own rate limit for the destination, so nothing (or nothing that
    /// decides the outcome) was sent: the task is due again at `next_at`, and the attempt does
    /// not count against the retry policy. No attempt is recorded: the destination had no say.
    pub async fn complete_held_back(
        &self,
        task: &ClaimedTask,
        next_at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let now = Utc::now();
        let task = task.clone();
        hot_write!(
            self,
            held_back_on_writer,
            record_held_back,
            (task, next_at, now)
        )
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
            finish_on_writer,
            record_finish,
            (task, state, next_at, blocked_on, rec, exception, now)
        )
    }

    /// The destination rejected our credentials: pause it (nothing more is sent until they are
    /// renewed), put the task back untouched, and keep one exception for the destination.
    /// `credentials` is the rejected credentials' fingerprint, so that a process started with
    /// other ones can tell they were renewed.
    pub async fn pause_destination(
        &self,
        task: &ClaimedTask,
        rec: &AttemptRecord,
        exception: &NewException,
        credentials: &str,
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
            sqlx::query(
                "UPDATE destinations SET paused = TRUE, paused_reason = $2, paused_at = $3, rejected_credentials = $4,
                     updated_at = $3
                 WHERE name = $1 AND NOT paused",
            )
                .bind(&task.destination)
                .bind(&exception.message)
                .bind(now)
                .bind(credentials)
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

/// SQLite: [`Store::complete_synced`] on the writer's connection.
fn record_synced(
    conn: &Connection,
    task: &ClaimedTask,
    external_id: &str,
    rec: &AttemptRecord,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let done = sqlite::execute(
        conn,
        SYNCED_TASK,
        &[
            &task.id,
            &task.lease_token,
            &rec.version,
            &external_id,
            &Time(now),
        ],
    )?;
    if done == 0 {
        return Ok(false);
    }
    insert_attempt_on_writer(conn, task, rec, Some(lag_ms(task.armed_at, now)))?;
    if task.open_exception {
        sqlite::execute(conn, RESOLVE_SYNCED, &[&task.id, &Time(now)])?;
    }
    Ok(true)
}

/// SQLite: records an attempt on the writer's connection.
fn insert_attempt_on_writer(
    conn: &Connection,
    task: &ClaimedTask,
    rec: &AttemptRecord,
    lag: Option<i64>,
) -> Result<(), StoreError> {
    sqlite::execute(
        conn,
        INSERT_ATTEMPT,
        &[
            &task.id,
            &rec.version,
            &task.store_order_id,
            &task.destination,
            &task.attempt,
            &Time(rec.started_at),
            &rec.duration_ms,
            &rec.outcome,
            &rec.status,
            &rec.message,
            &rec.request_id,
            &lag,
        ],
    )?;
    Ok(())
}

/// SQLite: [`Store::complete_held_back`] on the writer's connection.
fn held_back_on_writer(
    conn: &Connection,
    task: &ClaimedTask,
    next_at: &DateTime<Utc>,
    now: &DateTime<Utc>,
) -> Result<bool, StoreError> {
    let done = sqlite::execute(
        conn,
        HELD_BACK_TASK,
        &[&task.id, &task.lease_token, &Time(*next_at), &Time(*now)],
    )?;
    Ok(done > 0)
}

/// PostgreSQL: [`Store::complete_held_back`] inside the caller's transaction.
async fn record_held_back(
    conn: &mut sqlx::PgConnection,
    task: &ClaimedTask,
    next_at: &DateTime<Utc>,
    now: &DateTime<Utc>,
) -> Result<bool, StoreError> {
    let done = sqlx::query(HELD_BACK_TASK)
        .bind(task.id)
        .bind(&task.lease_token)
        .bind(*next_at)
        .bind(*now)
        .execute(&mut *conn)
        .await?;
    Ok(done.rows_affected() > 0)
}

/// SQLite: [`Store::complete_retry`], [`Store::complete_blocked`] and [`Store::complete_dead`]
/// on the writer's connection.
#[allow(clippy::too_many_arguments)]
fn finish_on_writer(
    conn: &Connection,
    task: &ClaimedTask,
    state: &&'static str,
    next_at: &Option<DateTime<Utc>>,
    blocked_on: &Option<String>,
    rec: &AttemptRecord,
    exception: &Option<NewException>,
    now: &DateTime<Utc>,
) -> Result<bool, StoreError> {
    let fixed_meanwhile = match blocked_on.as_deref().and_then(sku_of_fingerprint) {
        Some(sku) => {
            let since = fixed_by_mappings_since(exception, rec);
            sqlite::query_opt(conn, MAPPED_SINCE, &[&sku, &Time(since)], |row| {
                row.get::<_, i64>(0)
            })?
            .unwrap_or(0)
                > 0
        }
        None => false,
    };
    let done = sqlite::execute(
        conn,
        FINISH_TASK,
        &[
            &task.id,
            &task.lease_token,
            state,
            &next_at.map(Time),
            blocked_on,
            &rec.message,
            &Time(*now),
            &rec.version,
            &fixed_meanwhile,
        ],
    )?;
    if done == 0 {
        return Ok(false);
    }
    insert_attempt_on_writer(conn, task, rec, None)?;
    if let Some(exc) = exception {
        sqlite::execute(
            conn,
            OPEN_TASK_EXCEPTION,
            &[
                &task.id,
                &task.store_order_id,
                &task.destination,
                &exc.code,
                &exc.kind,
                &exc.fingerprint,
                &exc.message,
                &exc.action,
                &sqlite::json(&exc.fields)?,
                &Time(*now),
            ],
        )?;
    }
    Ok(true)
}

/// PostgreSQL: [`Store::complete_retry`], [`Store::complete_blocked`] and
/// [`Store::complete_dead`] inside the caller's transaction.
#[allow(clippy::too_many_arguments)]
async fn record_finish(
    conn: &mut sqlx::PgConnection,
    task: &ClaimedTask,
    state: &&'static str,
    next_at: &Option<DateTime<Utc>>,
    blocked_on: &Option<String>,
    rec: &AttemptRecord,
    exception: &Option<NewException>,
    now: &DateTime<Utc>,
) -> Result<bool, StoreError> {
    let fixed_meanwhile = match blocked_on.as_deref().and_then(sku_of_fingerprint) {
        Some(sku) => {
            let mapped: i64 = sqlx::query_scalar(MAPPED_SINCE)
                .bind(sku)
                .bind(fixed_by_mappings_since(exception, rec))
                .fetch_one(&mut *conn)
                .await?;
            mapped > 0
        }
        None => false,
    };
    let done = sqlx::query(FINISH_TASK)
        .bind(task.id)
        .bind(&task.lease_token)
        .bind(*state)
        .bind(*next_at)
        .bind(blocked_on.as_deref())
        .bind(rec.message.as_deref())
        .bind(*now)
        .bind(rec.version)
        .bind(fixed_meanwhile)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn exception(code: &str) -> Option<NewException> {
        Some(NewException {
            code: code.to_owned(),
            kind: "needs_action",
            fingerprint: "missing_sku:erp:TEE".to_owned(),
            message: String::new(),
            action: String::new(),
            fields: Vec::new(),
        })
    }

    /// An attempt that found no mapping counts any mapping there at its end as the fix, even one
    /// whose save read the clock before the attempt began; an item code the ERP refused (same
    /// code, with the ERP's answer) only a newer one, or it would be sent again and again.
    #[test]
    fn a_missing_mapping_is_fixed_by_any_mapping_found_at_the_end() {
        let mut rec = AttemptRecord {
            version: 1,
            started_at: Utc::now(),
            duration_ms: 3,
            outcome: "needs_action",
            status: None,
            message: None,
            request_id: None,
        };
        let missing = exception("missing_sku_mapping");
        assert_eq!(
            fixed_by_mappings_since(&missing, &rec),
            DateTime::UNIX_EPOCH
        );
        assert_eq!(fixed_by_mappings_since(&None, &rec), rec.started_at);
        rec.status = Some(422);
        assert_eq!(fixed_by_mappings_since(&missing, &rec), rec.started_at);
    }
}

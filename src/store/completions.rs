//! PostgreSQL: synced completions written together (see `batch`). A successful delivery is the
//! commonest write there is (two per order, one per destination), and on its own it costs a
//! round trip, a transaction and a log flush; up to [`MAX_BATCH`] share one statement.
//!
//! The statement is all-or-nothing, so a failed batch loses nothing half-way: every worker in it
//! gets the error, and its task's lease runs out and the delivery runs again (the destination
//! write is idempotent). The rows are locked in id order first, so two batches cannot deadlock
//! each other; an operator's bulk action locking in another order can still meet one, and then
//! PostgreSQL undoes one side and the batch is written again.

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use super::StoreError;
use super::batch::{BatchWrite, Batcher, Written, column, retrying_deadlocks};
use super::outcomes::lag_ms;
use super::tasks::{AttemptRecord, ClaimedTask};
use super::writer::not_committed;

/// The most completions one statement carries.
const MAX_BATCH: usize = 256;

/// One worker's completion, owned.
pub(crate) struct Completion {
    task_id: i64,
    lease_token: String,
    version: i64,
    external_id: String,
    attempt: i64,
    started_at: DateTime<Utc>,
    duration_ms: i64,
    outcome: &'static str,
    status: Option<i32>,
    message: Option<String>,
    request_id: Option<String>,
    armed_at: DateTime<Utc>,
    open_exception: bool,
}

/// Writes the completions that queued together.
pub(crate) struct CompletionWriter {
    pool: PgPool,
}

/// The queue to the completion writer.
pub(crate) type Completions = Batcher<CompletionWriter>;

/// Starts the completion writer on the current runtime.
pub(crate) fn spawn(pool: PgPool) -> Completions {
    Batcher::spawn(CompletionWriter { pool }, MAX_BATCH)
}

/// Queues the completion of `task` and waits for its commit: true when recorded, false when the
/// lease had been lost (nothing written for it).
pub(crate) async fn synced(
    completions: &Completions,
    task: &ClaimedTask,
    external_id: &str,
    rec: &AttemptRecord,
) -> Result<bool, StoreError> {
    completions
        .submit(Completion {
            task_id: task.id,
            lease_token: task.lease_token.clone(),
            version: rec.version,
            external_id: external_id.to_string(),
            attempt: task.attempt,
            started_at: rec.started_at,
            duration_ms: rec.duration_ms,
            outcome: rec.outcome,
            status: rec.status,
            message: rec.message.clone(),
            request_id: rec.request_id.clone(),
            armed_at: task.armed_at,
            open_exception: task.open_exception,
        })
        .await
}

impl BatchWrite for CompletionWriter {
    type Item = Completion;
    type Answer = bool;

    /// Each completion is recorded when its task and lease are among those written. When the
    /// database refuses a value of the call (a data error: one completion's, most likely),
    /// each is written again alone, so that the one it refuses fails alone instead of every
    /// completion that shared its batch, batch after batch as its task comes round again. Any
    /// other failure (the database out of reach) answers every completion with it, at once.
    async fn write(&self, batch: &[Completion]) -> Written<bool> {
        let recorded = |done: &[(i64, String)], completion: &Completion| {
            done.iter()
                .any(|(id, token)| *id == completion.task_id && *token == completion.lease_token)
        };
        match retrying_deadlocks(|| write(&self.pool, batch)).await {
            Ok(done) => Written {
                answers: batch.iter().map(|c| Ok(recorded(&done, c))).collect(),
                together: true,
            },
            Err(err) if !refused_a_value(&err) => Written {
                answers: batch
                    .iter()
                    .map(|_| Err(not_committed(&err.to_string())))
                    .collect(),
                together: false,
            },
            Err(_) => {
                let mut answers = Vec::with_capacity(batch.len());
                for completion in batch {
                    let alone = std::slice::from_ref(completion);
                    answers.push(
                        match retrying_deadlocks(|| write(&self.pool, alone)).await {
                            Ok(done) => Ok(recorded(&done, completion)),
                            Err(err) => Err(not_committed(&err.to_string())),
                        },
                    );
                }
                Written {
                    answers,
                    together: false,
                }
            }
        }
    }
}

/// Whether PostgreSQL refused a value the call carried (SQLSTATE class 22, data exception, or
/// 23, integrity constraint), as opposed to failing as a whole.
fn refused_a_value(err: &sqlx::Error) -> bool {
    err.as_database_error()
        .and_then(|e| e.code())
        .is_some_and(|code| code.starts_with("22") || code.starts_with("23"))
}

/// The whole batch in one call of `syncdesk_complete_synced` (migration 0021): lock the tasks
/// still held under their lease tokens, in id order; mark them synced (or pending again when a
/// newer version arrived meanwhile); record each attempt; and resolve the open exceptions of the
/// tasks that had one. Returns the tasks recorded, with their lease tokens: a stale worker's
/// completion may share a batch with the new lease holder's.
async fn write(pool: &PgPool, batch: &[Completion]) -> Result<Vec<(i64, String)>, sqlx::Error> {
    let now = Utc::now();
    sqlx::query_as(
        "SELECT id, lease_token FROM syncdesk_complete_synced($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
    )
    .bind(column(batch, |c| c.task_id))
    .bind(column(batch, |c| c.lease_token.as_str()))
    .bind(column(batch, |c| c.version))
    .bind(column(batch, |c| c.external_id.as_str()))
    .bind(column(batch, |c| c.attempt))
    .bind(column(batch, |c| c.started_at))
    .bind(column(batch, |c| c.duration_ms))
    .bind(column(batch, |c| c.outcome))
    .bind(column(batch, |c| c.status))
    .bind(column(batch, |c| c.message.as_deref()))
    .bind(column(batch, |c| c.request_id.as_deref()))
    .bind(column(batch, |c| lag_ms(c.armed_at, now)))
    .bind(column(batch, |c| c.open_exception))
    .bind(now)
    .fetch_all(pool)
    .await
}

//! SQLite's group commit. SQLite has one writer at a time and makes every commit durable with an
//! fsync of its log, so the hot writes — webhooks recorded, tasks claimed, deliveries completed
//! — are not each given a transaction of their own: they queue for one writer connection, which
//! runs whatever has queued as one transaction, each write inside a savepoint of its own (a
//! write that fails is undone alone and answered with its error), and answers each only after
//! the commit. Under load a commit carries dozens of writes for one fsync; when idle, a write
//! commits alone at once. Nobody waits on SQLite's busy handler, which sleeps in steps of up to
//! 100 ms when connections compete for the lock.
//!
//! PostgreSQL needs none of this: it takes concurrent writers, and its own group commit spreads
//! the log flushes.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures_util::future::BoxFuture;
use sqlx::{Connection, SqliteConnection, SqlitePool};
use tokio::sync::{mpsc, oneshot};

use super::StoreError;

/// The most writes one transaction carries.
const MAX_BATCH: usize = 128;

/// What a queued write says once the batch is settled: given the commit's failure, if any.
type Answer = Box<dyn FnOnce(Option<&str>) + Send>;

/// A queued write: runs on the writer's connection inside its savepoint; says whether it
/// succeeded (else its savepoint is rolled back) and how to answer its caller.
type Job =
    Box<dyn for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFuture<'c, (bool, Answer)> + Send>;

/// The queue to SQLite's writer connection.
#[derive(Clone)]
pub(crate) struct Writer {
    jobs: mpsc::Sender<Job>,
    pool: SqlitePool,
    counts: Arc<Counts>,
}

/// What the writer has done since it started, for `/metrics`: commits and the writes they
/// carried (their ratio is the batch size).
#[derive(Debug, Default)]
struct Counts {
    commits: AtomicU64,
    writes: AtomicU64,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer").finish_non_exhaustive()
    }
}

impl Writer {
    /// Starts the writer on `pool` (one connection).
    pub(crate) fn spawn(pool: SqlitePool) -> Writer {
        let (jobs, queue) = mpsc::channel(4 * MAX_BATCH);
        let counts = Arc::new(Counts::default());
        tokio::spawn(run(pool.clone(), queue, counts.clone()));
        Writer { jobs, pool, counts }
    }

    /// Transactions committed and the writes they carried, since the start.
    pub(crate) fn counts(&self) -> (u64, u64) {
        (
            self.counts.commits.load(Ordering::Relaxed),
            self.counts.writes.load(Ordering::Relaxed),
        )
    }

    /// Runs `work` in the next batch; its result once that batch is committed. An error from
    /// `work` undoes only its own changes.
    pub(crate) async fn write<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFuture<'c, Result<T, StoreError>>
            + Send
            + 'static,
    {
        let (reply, answer) = oneshot::channel::<Result<T, StoreError>>();
        let job: Job = Box::new(move |conn| {
            Box::pin(async move {
                let result = work(conn).await;
                let ok = result.is_ok();
                let answer: Answer = Box::new(move |failed: Option<&str>| {
                    let _ = reply.send(match failed {
                        Some(why) if ok => Err(not_committed(why)),
                        _ => result,
                    });
                });
                (ok, answer)
            })
        });
        self.jobs
            .send(job)
            .await
            .map_err(|_| not_committed("the writer has stopped"))?;
        answer
            .await
            .map_err(|_| not_committed("the batch was abandoned"))?
    }

    /// Closes the writer's connection.
    pub(crate) async fn close(&self) {
        self.pool.close().await;
    }
}

fn not_committed(why: &str) -> StoreError {
    StoreError::Database(sqlx::Error::Io(std::io::Error::other(format!(
        "the write was not committed: {why}"
    ))))
}

async fn run(pool: SqlitePool, mut queue: mpsc::Receiver<Job>, counts: Arc<Counts>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while queue.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let mut answers = Vec::with_capacity(batch.len());
        let settled = commit(&pool, batch.drain(..), &mut answers).await;
        if settled.is_ok() {
            counts.commits.fetch_add(1, Ordering::Relaxed);
            counts
                .writes
                .fetch_add(answers.len() as u64, Ordering::Relaxed);
        }
        let failed = settled.err().map(|err| {
            tracing::error!(error = %err, writes = answers.len(), "a batch of writes failed to commit");
            err.to_string()
        });
        for answer in answers {
            answer(failed.as_deref());
        }
    }
}

/// One transaction for `batch`. Writes left unrun after a failure are dropped, and their callers
/// told so.
async fn commit(
    pool: &SqlitePool,
    batch: impl Iterator<Item = Job>,
    answers: &mut Vec<Answer>,
) -> Result<(), sqlx::Error> {
    // IMMEDIATE: the write lock from the start, so no statement inside waits for it.
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    for job in batch {
        let mut savepoint = tx.begin().await?;
        let (ok, answer) = job(&mut savepoint).await;
        answers.push(answer);
        if ok {
            savepoint.commit().await?;
        } else {
            savepoint.rollback().await?;
        }
    }
    tx.commit().await
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};

    use super::*;

    async fn database() -> (SqlitePool, Writer, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("syncdesk-writer-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let options =
            SqliteConnectOptions::from_str(&format!("sqlite://{}", dir.join("w.db").display()))
                .unwrap()
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal);
        let readers = SqlitePoolOptions::new()
            .max_connections(2)
            .connect_with(options.clone())
            .await
            .unwrap();
        sqlx::query("CREATE TABLE t (n INTEGER PRIMARY KEY)")
            .execute(&readers)
            .await
            .unwrap();
        let writes = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await
            .unwrap();
        (readers, Writer::spawn(writes), dir)
    }

    async fn insert(writer: &Writer, n: i64, fail_after: bool) -> Result<i64, StoreError> {
        writer
            .write(move |conn| {
                Box::pin(async move {
                    sqlx::query("INSERT INTO t (n) VALUES ($1)")
                        .bind(n)
                        .execute(&mut *conn)
                        .await?;
                    if fail_after {
                        return Err(StoreError::Invalid(format!("write {n} gives up")));
                    }
                    Ok(n)
                })
            })
            .await
    }

    #[tokio::test]
    async fn concurrent_writes_commit_together_and_a_failed_one_is_undone_alone() {
        let (readers, writer, dir) = database().await;
        let writes = (0..40).map(|n| insert(&writer, n, n % 10 == 7));
        let results = futures_util::future::join_all(writes).await;
        for (n, result) in results.iter().enumerate() {
            match result {
                Ok(written) => assert_eq!(*written, n as i64),
                Err(err) => {
                    assert_eq!(n % 10, 7, "only the failing writes fail: {err}");
                    assert_eq!(err.to_string(), format!("write {n} gives up"));
                }
            }
        }
        assert_eq!(results.iter().filter(|r| r.is_err()).count(), 4);
        // Queued together, they shared commits.
        let (commits, carried) = writer.counts();
        assert_eq!(carried, 40);
        assert!(commits < 40, "{commits} commits for 40 writes");
        // Every answer came after its commit: a reader sees exactly the writes that succeeded.
        let rows: Vec<i64> = sqlx::query_scalar("SELECT n FROM t ORDER BY n")
            .fetch_all(&readers)
            .await
            .unwrap();
        let expected: Vec<i64> = (0..40).filter(|n| n % 10 != 7).collect();
        assert_eq!(rows, expected);

        // A write that breaks a constraint is undone alone too, and the writer goes on.
        assert!(insert(&writer, 1, false).await.is_err());
        assert_eq!(insert(&writer, 100, false).await.unwrap(), 100);
        writer.close().await;
        readers.close().await;
        std::fs::remove_dir_all(dir).unwrap();
    }
}

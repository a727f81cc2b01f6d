//! SQLite's group commit. SQLite has one writer at a time and makes every commit durable with an
//! fsync of its log, so the hot writes — webhooks recorded, tasks claimed, deliveries completed
//! — are not each given a transaction of their own: they queue for one writer connection, which
//! runs whatever has queued as one transaction and answers each write only after the commit.
//! Under load a commit carries dozens of writes; when idle, a write commits alone at once.
//! Nobody waits on SQLite's busy handler, which sleeps in steps of up to 100 ms when
//! connections compete for the lock.
//!
//! A write that fails (a storage error, or a bug) must not take the others down with it, and
//! must not leave half its changes in the batch. Savepoints around each write would cost two
//! statements per write — a third of a completion's — so instead the batch is rolled back and
//! each of its writes run again alone, in a transaction of its own: the failing one fails alone,
//! the others commit. Writes are therefore re-runnable: they own their inputs and change only the
//! database.
//!
//! PostgreSQL needs none of this: it takes concurrent writers, and its own group commit spreads
//! the log flushes.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use sqlx::{SqliteConnection, SqlitePool};
use tokio::sync::{mpsc, oneshot};

use super::StoreError;

/// The most writes one transaction carries.
const MAX_BATCH: usize = 128;

/// A queued write: it can run (again, after a rolled-back batch) on the writer's connection,
/// keeping its last result, and is answered once its transaction is settled.
trait Write: Send {
    /// Runs the write; whether it succeeded.
    fn run<'c>(&'c mut self, conn: &'c mut SqliteConnection) -> BoxFuture<'c, bool>;
    /// Answers the caller: its result, or `failed` when the commit did not happen.
    fn answer(self: Box<Self>, failed: Option<&str>);
}

/// A write's work and its caller's reply channel.
struct Pending<T, F> {
    work: F,
    result: Option<Result<T, StoreError>>,
    reply: oneshot::Sender<Result<T, StoreError>>,
}

impl<T, F> Write for Pending<T, F>
where
    T: Send + 'static,
    F: for<'c> Fn(&'c mut SqliteConnection) -> BoxFuture<'c, Result<T, StoreError>> + Send,
{
    fn run<'c>(&'c mut self, conn: &'c mut SqliteConnection) -> BoxFuture<'c, bool> {
        Box::pin(async move {
            let result = (self.work)(conn).await;
            let ok = result.is_ok();
            self.result = Some(result);
            ok
        })
    }

    fn answer(self: Box<Self>, failed: Option<&str>) {
        let answer = match (self.result, failed) {
            // The write's own error stands, committed or not.
            (Some(Err(err)), _) => Err(err),
            (Some(Ok(done)), None) => Ok(done),
            (Some(Ok(_)), Some(why)) | (None, Some(why)) => Err(not_committed(why)),
            (None, None) => Err(not_committed("it never ran")),
        };
        let _ = self.reply.send(answer);
    }
}

type Job = Box<dyn Write>;

/// The queue to SQLite's writer connection.
#[derive(Clone)]
pub(crate) struct Writer {
    jobs: mpsc::Sender<Job>,
    pool: SqlitePool,
    counts: Arc<Counts>,
    /// Whether the last claim found nothing due: the next one reads before it writes.
    idle: Arc<std::sync::atomic::AtomicBool>,
}

/// What the writer has done since it started, for `/metrics`: commits and the writes they
/// carried (their ratio is the batch size), and the time it spent writing.
#[derive(Debug, Default)]
struct Counts {
    commits: AtomicU64,
    writes: AtomicU64,
    busy_micros: AtomicU64,
}

impl Counts {
    /// Adds the time since `since` to the time spent writing, and restarts `since`. Called
    /// before answering, so that a caller who reads the counts after its answer finds its
    /// write's time in them.
    fn add_busy(&self, since: &mut std::time::Instant) {
        let now = std::time::Instant::now();
        let micros = u64::try_from((now - *since).as_micros()).unwrap_or(u64::MAX);
        self.busy_micros.fetch_add(micros, Ordering::Relaxed);
        *since = now;
    }
}

/// SQLite's group commit since the process started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupCommits {
    /// Transactions committed.
    pub commits: u64,
    /// Writes (webhooks, claims, completions) they carried; divided by `commits`, the batch
    /// size.
    pub writes: u64,
    /// Time the writer spent in its transactions, from `BEGIN` to the answers. Its growth over a
    /// span of time, divided by the span, is the share of the time the one writer was busy.
    /// Near 1 with small batches, more load makes the batches grow (one commit's fsync shared
    /// by more writes); near 1 with dozens of writes a commit, the writer is the limit.
    pub busy: std::time::Duration,
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
        // The writer is the one thing every write waits for, and each of its statements is a
        // hand-off to the connection's thread and back: on the shared runtime each return
        // waited its turn behind the web requests. On a thread of its own it is resumed at
        // once.
        let (writes, done) = (pool.clone(), counts.clone());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime for the SQLite writer");
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || runtime.block_on(run(writes, queue, done)))
            .expect("the SQLite writer's thread");
        Writer {
            jobs,
            pool,
            counts,
            idle: Arc::default(),
        }
    }

    /// Whether the last claim of work found nothing due.
    pub(crate) fn idle(&self) -> bool {
        self.idle.load(Ordering::Relaxed)
    }

    /// Records whether a claim of work found nothing due.
    pub(crate) fn set_idle(&self, idle: bool) {
        self.idle.store(idle, Ordering::Relaxed);
    }

    /// Transactions committed, the writes they carried and the time spent writing, since the
    /// start.
    pub(crate) fn counts(&self) -> GroupCommits {
        GroupCommits {
            commits: self.counts.commits.load(Ordering::Relaxed),
            writes: self.counts.writes.load(Ordering::Relaxed),
            busy: std::time::Duration::from_micros(self.counts.busy_micros.load(Ordering::Relaxed)),
        }
    }

    /// Runs `work` in the next batch; its result once that batch is committed. `work` may run
    /// more than once (after a rolled-back batch), each time on a database without the earlier
    /// run's changes; an error from it undoes only its own changes.
    pub(crate) async fn write<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: for<'c> Fn(&'c mut SqliteConnection) -> BoxFuture<'c, Result<T, StoreError>>
            + Send
            + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job = Box::new(Pending {
            work,
            result: None,
            reply,
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

pub(super) fn not_committed(why: &str) -> StoreError {
    StoreError::Database(sqlx::Error::Io(std::io::Error::other(format!(
        "the write was not committed: {why}"
    ))))
}

async fn run(pool: SqlitePool, mut queue: mpsc::Receiver<Job>, counts: Arc<Counts>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while queue.recv_many(&mut batch, MAX_BATCH).await > 0 {
        write_batch(&pool, &mut batch, &counts).await;
    }
}

/// Writes `batch` — together, or each alone when one of them fails — and answers each write.
async fn write_batch(pool: &SqlitePool, batch: &mut Vec<Job>, counts: &Counts) {
    let mut since = std::time::Instant::now();
    let failed = match together(pool, batch).await {
        Ok(true) => {
            counts.commits.fetch_add(1, Ordering::Relaxed);
            counts
                .writes
                .fetch_add(batch.len() as u64, Ordering::Relaxed);
            None
        }
        // A write failed and the batch was rolled back: each one alone.
        Ok(false) if batch.len() > 1 => {
            for mut job in batch.drain(..) {
                let failed = match alone(pool, job.as_mut()).await {
                    Ok(committed) => {
                        if committed {
                            counts.commits.fetch_add(1, Ordering::Relaxed);
                            counts.writes.fetch_add(1, Ordering::Relaxed);
                        }
                        None
                    }
                    Err(err) => {
                        tracing::error!(error = %err, "a write failed to commit");
                        Some(err.to_string())
                    }
                };
                counts.add_busy(&mut since);
                job.answer(failed.as_deref());
            }
            return;
        }
        // The only write failed: its own error stands.
        Ok(false) => None,
        Err(err) => {
            tracing::error!(error = %err, writes = batch.len(), "a batch of writes failed to commit");
            Some(err.to_string())
        }
    };
    counts.add_busy(&mut since);
    for job in batch.drain(..) {
        job.answer(failed.as_deref());
    }
}

/// Runs `batch` as one transaction: `Ok(true)` when every write succeeded and it committed,
/// `Ok(false)` when a write failed and it was rolled back (the writes after it not run).
async fn together(pool: &SqlitePool, batch: &mut [Job]) -> Result<bool, sqlx::Error> {
    // IMMEDIATE: the write lock from the start, so no statement inside waits for it.
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    for job in batch.iter_mut() {
        if !run_guarded(job.as_mut(), &mut tx).await {
            tx.rollback().await?;
            return Ok(false);
        }
    }
    tx.commit().await?;
    Ok(true)
}

/// Runs a write; a panic inside it counts as a failure (logged), so the writer itself lives on.
async fn run_guarded(job: &mut dyn Write, conn: &mut SqliteConnection) -> bool {
    match std::panic::AssertUnwindSafe(job.run(conn))
        .catch_unwind()
        .await
    {
        Ok(ok) => ok,
        Err(_) => {
            tracing::error!("a write panicked; it is answered with an error and rolled back");
            false
        }
    }
}

/// Runs one write in a transaction of its own: `Ok(true)` when it committed, `Ok(false)` when
/// the write failed (its own error stands) and was rolled back.
async fn alone(pool: &SqlitePool, job: &mut dyn Write) -> Result<bool, sqlx::Error> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    if run_guarded(job, &mut tx).await {
        tx.commit().await?;
        Ok(true)
    } else {
        tx.rollback().await?;
        Ok(false)
    }
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
    async fn concurrent_writes_share_commits_and_a_failed_one_fails_alone() {
        let (readers, writer, dir) = database().await;
        // Queued together, they share commits.
        let writes = (0..40).map(|n| insert(&writer, n, false));
        let results = futures_util::future::join_all(writes).await;
        assert!(results.iter().all(Result::is_ok));
        let GroupCommits {
            commits,
            writes,
            busy,
        } = writer.counts();
        assert_eq!(writes, 40);
        assert!(commits < 10, "{commits} commits for 40 writes");
        assert!(
            busy > std::time::Duration::ZERO,
            "the writer's time is counted"
        );

        // Some fail after writing: each failure is answered with its own error and leaves
        // nothing behind; the writes queued with it commit.
        let writes = (100..140).map(|n| insert(&writer, n, n % 10 == 7));
        let results = futures_util::future::join_all(writes).await;
        for (n, result) in (100..140).zip(&results) {
            match result {
                Ok(written) => assert_eq!(*written, n),
                Err(err) => {
                    assert_eq!(n % 10, 7, "only the failing writes fail: {err}");
                    assert_eq!(err.to_string(), format!("write {n} gives up"));
                }
            }
        }
        assert_eq!(results.iter().filter(|r| r.is_err()).count(), 4);
        // Every answer came after its commit: a reader sees exactly the writes that succeeded.
        let rows: Vec<i64> = sqlx::query_scalar("SELECT n FROM t ORDER BY n")
            .fetch_all(&readers)
            .await
            .unwrap();
        let expected: Vec<i64> = (0..40).chain((100..140).filter(|n| n % 10 != 7)).collect();
        assert_eq!(rows, expected);

        // A write that breaks a constraint fails alone too, and the writer goes on.
        let again = futures_util::future::join_all([
            insert(&writer, 1, false),
            insert(&writer, 200, false),
        ])
        .await;
        assert!(again[0].is_err());
        assert_eq!(*again[1].as_ref().unwrap(), 200);

        // A write that panics is answered with an error; the writer goes on.
        let panicking = writer.write(|_conn| Box::pin(async { panic!("a bug in a write") }));
        let (panicked, after) =
            futures_util::future::join(panicking, insert(&writer, 300, false)).await;
        let panicked: Result<(), StoreError> = panicked;
        assert!(panicked.is_err());
        assert_eq!(after.unwrap(), 300);
        assert_eq!(insert(&writer, 301, false).await.unwrap(), 301);
        writer.close().await;
        readers.close().await;
        std::fs::remove_dir_all(dir).unwrap();
    }
}

//! SQLite's group commit. SQLite has one writer at a time and makes every commit durable with an
//! fsync of its log, so the hot writes — webhooks recorded, tasks claimed, deliveries completed
//! — are not each given a transaction of their own: they queue for one writer connection, which
//! runs whatever has queued as one transaction and answers each write only after the commit.
//! Under load a commit carries dozens of writes; when idle, a write commits alone at once.
//! Nobody waits on SQLite's busy handler, which sleeps in steps of up to 100 ms when
//! connections compete for the lock.
//!
//! The writer's connection is its own thread's, and its statements run synchronously on that
//! thread (rusqlite; see `sqlite`). Through sqlx, each statement was a hand-off to the
//! connection's worker thread and back: SQLite itself took ~0.3 ms of each order's ~0.6–0.8 ms
//! of writes, and the one writer, busy 98–99% of an unpaced benchmark, was SQLite's limit. The rest of SyncDesk
//! reads and writes SQLite through sqlx's pool as before.
//!
//! A write that fails (a storage error, or a bug) must not take the others down with it, and
//! must not leave half its changes in the batch. Savepoints around each write would cost two
//! statements per write, so instead the batch is rolled back and each of its writes run again
//! alone, in a transaction of its own: the failing one fails alone, the others commit. Writes are
//! therefore re-runnable: they own their inputs and change only the database.
//!
//! PostgreSQL needs none of this: it takes concurrent writers, and its own group commit spreads
//! the log flushes.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags, TransactionBehavior};
use tokio::sync::{mpsc, oneshot};

use super::StoreError;
use super::finishing::Finishing;

/// The most writes one transaction carries.
const MAX_BATCH: usize = 128;

/// Prepared statements the writer keeps: every hot write's, with room to spare.
const STATEMENT_CACHE: usize = 64;

/// A queued write: it can run (again, after a rolled-back batch) on the writer's connection,
/// keeping its last result, and is answered once its transaction is settled.
trait Write: Send {
    /// Runs the write; whether it succeeded.
    fn run(&mut self, conn: &Connection) -> bool;
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
    F: FnMut(&Connection) -> Result<T, StoreError> + Send,
{
    /// A panic inside the work counts as its failure (logged), so the writer itself lives on.
    fn run(&mut self, conn: &Connection) -> bool {
        // Nothing of an earlier run stands until this one ends: its changes were rolled back.
        self.result = None;
        let work = &mut self.work;
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(conn)))
            .unwrap_or_else(|_| {
                tracing::error!("a write panicked; it is answered with an error and rolled back");
                Err(not_committed("the write panicked"))
            });
        let ok = result.is_ok();
        self.result = Some(result);
        ok
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

/// What the writer's thread is asked to do.
enum Command {
    Write(Job),
    /// Write what came before, close the connection, then say so.
    Close(oneshot::Sender<()>),
}

/// The queue to SQLite's writer connection.
#[derive(Clone)]
pub(crate) struct Writer {
    jobs: mpsc::Sender<Command>,
    counts: Arc<Counts>,
    /// Whether the last claim found nothing due: the next one reads before it writes.
    idle: Arc<AtomicBool>,
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
    fn add_busy(&self, since: &mut Instant) {
        let now = Instant::now();
        let micros = u64::try_from((now - *since).as_micros()).unwrap_or(u64::MAX);
        self.busy_micros.fetch_add(micros, Ordering::Relaxed);
        *since = now;
    }

    fn committed(&self, writes: usize) {
        self.commits.fetch_add(1, Ordering::Relaxed);
        self.writes.fetch_add(writes as u64, Ordering::Relaxed);
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
    /// by more writes); near 1 with dozens of writes a commit, the writer is the limit — or,
    /// when the machine's CPUs are full too, the CPU (this is wall time, waiting for a core
    /// included).
    pub busy: Duration,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer").finish_non_exhaustive()
    }
}

/// Opens the writer's connection to the database file at `path` (created by the pool before),
/// with the settings the pool's connections have: write-ahead log, a full fsync at each commit
/// (see docs/OPERATIONS.md), foreign keys, and a busy timeout for the moments another
/// connection (an operator's action) holds the write lock.
fn open(path: &Path, busy_timeout: Duration) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(busy_timeout)?;
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;",
    )?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(conn)
}

impl Writer {
    /// Opens the database file at `path` and starts the writer on it, on a thread of its own:
    /// the one thing every write waits for is never queued behind the web's requests for a
    /// core, and its connection is opened there (which may wait for the write lock), not on
    /// the caller's runtime.
    pub(crate) async fn spawn(path: PathBuf, busy_timeout: Duration) -> std::io::Result<Writer> {
        let (jobs, queue) = mpsc::channel(4 * MAX_BATCH);
        let counts = Arc::new(Counts::default());
        let done = counts.clone();
        let (opened, open_result) = oneshot::channel();
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || match open(&path, busy_timeout) {
                Ok(conn) => {
                    let _ = opened.send(Ok(()));
                    run(conn, queue, &done);
                }
                Err(err) => {
                    let _ = opened.send(Err(err));
                }
            })?;
        open_result
            .await
            .map_err(|_| std::io::Error::other("the SQLite writer's thread ended at its start"))?
            .map_err(std::io::Error::other)?;
        Ok(Writer {
            jobs,
            counts,
            idle: Arc::default(),
        })
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
            busy: Duration::from_micros(self.counts.busy_micros.load(Ordering::Relaxed)),
        }
    }

    /// Runs `work` in the next batch; its result once that batch is committed. `work` may run
    /// more than once (after a rolled-back batch), each time on a database without the earlier
    /// run's changes; an error from it undoes only its own changes.
    pub(crate) async fn write<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnMut(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        answered(self.queue(work).await?).await
    }

    /// [`Writer::write`], then `then` with its result, whatever becomes of the caller: one that
    /// goes away once the write is queued (an HTTP request whose sender hung up) leaves a task
    /// of its own to await the answer and run `then`, so what must follow a commit — queueing
    /// the tasks it leased — is not left undone. Only a caller that goes away costs a task.
    pub(crate) async fn write_then<T, F, A, Done>(&self, work: F, then: A) -> Done::Output
    where
        T: Send + 'static,
        F: FnMut(&Connection) -> Result<T, StoreError> + Send + 'static,
        A: FnOnce(Result<T, StoreError>) -> Done + Send + 'static,
        Done: Future + Send + 'static,
        Done::Output: Send + 'static,
    {
        let answer = match self.queue(work).await {
            Ok(answer) => answer,
            Err(err) => return then(Err(err)).await,
        };
        Finishing::new(async move { then(answered(answer).await).await }).await
    }

    /// Queues `work` for the next batch; its answer comes once that batch is settled.
    async fn queue<T, F>(&self, work: F) -> Result<Answer<T>, StoreError>
    where
        T: Send + 'static,
        F: FnMut(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job = Box::new(Pending {
            work,
            result: None,
            reply,
        });
        self.jobs
            .send(Command::Write(job))
            .await
            .map_err(|_| not_committed("the writer has stopped"))?;
        Ok(answer)
    }

    /// Writes what has queued, then closes the writer's connection; writes after it fail.
    pub(crate) async fn close(&self) {
        let (closed, done) = oneshot::channel();
        if self.jobs.send(Command::Close(closed)).await.is_ok() {
            let _ = done.await;
        }
    }
}

/// A queued write's answer, to come.
type Answer<T> = oneshot::Receiver<Result<T, StoreError>>;

/// A write's answer, or why there is none.
async fn answered<T>(answer: Answer<T>) -> Result<T, StoreError> {
    answer
        .await
        .map_err(|_| not_committed("the batch was abandoned"))?
}

pub(super) fn not_committed(why: &str) -> StoreError {
    StoreError::Database(sqlx::Error::Io(std::io::Error::other(format!(
        "the write was not committed: {why}"
    ))))
}

/// The writer's thread: takes whatever has queued, up to [`MAX_BATCH`], and writes it. Ends, and
/// closes the connection, when asked to or when every [`Writer`] is gone.
fn run(mut conn: Connection, mut queue: mpsc::Receiver<Command>, counts: &Counts) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut closing = None;
    while closing.is_none() {
        let Some(first) = queue.blocking_recv() else {
            break;
        };
        let mut next = Some(first);
        while let Some(command) = next.take() {
            match command {
                Command::Write(job) => batch.push(job),
                Command::Close(closed) => {
                    closing = Some(closed);
                    break;
                }
            }
            if batch.len() < MAX_BATCH {
                next = queue.try_recv().ok();
            }
        }
        if !batch.is_empty() {
            write_batch(&mut conn, &mut batch, counts);
        }
    }
    queue.close();
    if let Err((_, err)) = conn.close() {
        tracing::error!(error = %err, "the SQLite writer's connection did not close cleanly");
    }
    if let Some(closed) = closing {
        let _ = closed.send(());
    }
}

/// Writes `batch` — together, or each alone when one of them fails — and answers each write.
fn write_batch(conn: &mut Connection, batch: &mut Vec<Job>, counts: &Counts) {
    let mut since = Instant::now();
    let failed = match together(conn, batch) {
        Ok(true) => {
            counts.committed(batch.len());
            None
        }
        // A write failed and the batch was rolled back: each one alone.
        Ok(false) if batch.len() > 1 => {
            for mut job in batch.drain(..) {
                let failed = match alone(conn, job.as_mut()) {
                    Ok(committed) => {
                        if committed {
                            counts.committed(1);
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
fn together(conn: &mut Connection, batch: &mut [Job]) -> rusqlite::Result<bool> {
    // IMMEDIATE: the write lock from the start, so no statement inside waits for it.
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    for job in batch.iter_mut() {
        if !job.run(&tx) {
            rollback(tx)?;
            return Ok(false);
        }
    }
    tx.commit()?;
    Ok(true)
}

/// Runs one write in a transaction of its own: `Ok(true)` when it committed, `Ok(false)` when
/// the write failed (its own error stands) and was rolled back.
fn alone(conn: &mut Connection, job: &mut dyn Write) -> rusqlite::Result<bool> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    if job.run(&tx) {
        tx.commit()?;
        Ok(true)
    } else {
        rollback(tx)?;
        Ok(false)
    }
}

/// Rolls back `tx`, unless SQLite already did: after some errors (a full disk, an I/O error,
/// out of memory) it ends the transaction itself, and a `ROLLBACK` would fail.
fn rollback(tx: rusqlite::Transaction<'_>) -> rusqlite::Result<()> {
    if tx.is_autocommit() {
        // Dropped: nothing to undo.
        return Ok(());
    }
    tx.rollback()
}

#[cfg(test)]
mod tests;

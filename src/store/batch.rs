//! PostgreSQL: hot writes written together. Callers hand their write to one writer task, which
//! writes whatever has queued — up to a batch's limit — in one statement (one round trip, one
//! transaction, one log flush), and answers each caller once it has committed. Nothing waits
//! for a batch to fill: when idle, a write goes alone at once; under load, writes queue while the
//! previous statement runs. Used for the workers' synced completions (`completions`) and the
//! orders' deliveries (`ingest::postgres`).

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::{mpsc, oneshot};

use super::StoreError;
use super::writer::not_committed;

/// How many times a statement PostgreSQL undid to break a deadlock is run again.
const DEADLOCK_RETRIES: usize = 3;

/// What one kind of batch writes.
pub(crate) trait BatchWrite: Send + Sync + 'static {
    /// One caller's write, owned.
    type Item: Send + 'static;
    /// What a caller is answered.
    type Answer: Send + 'static;
    /// Writes `batch`, together when it can, and answers each of its items, in order.
    fn write(&self, batch: &[Self::Item]) -> impl Future<Output = Written<Self::Answer>> + Send;
}

/// How a batch was written.
pub(crate) struct Written<A> {
    /// Each item's answer, in order.
    pub(crate) answers: Vec<Result<A, StoreError>>,
    /// Whether the batch was written in one call; the counts shown in `/metrics` only count
    /// those (not a batch written again item by item after its call failed).
    pub(crate) together: bool,
}

type Queued<W> = (
    <W as BatchWrite>::Item,
    oneshot::Sender<Result<<W as BatchWrite>::Answer, StoreError>>,
);

/// The queue to one writer task.
pub(crate) struct Batcher<W: BatchWrite> {
    queue: mpsc::UnboundedSender<Queued<W>>,
    counts: Arc<Counts>,
}

impl<W: BatchWrite> Clone for Batcher<W> {
    fn clone(&self) -> Self {
        Batcher {
            queue: self.queue.clone(),
            counts: self.counts.clone(),
        }
    }
}

impl<W: BatchWrite> std::fmt::Debug for Batcher<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batcher")
            .field("counts", &self.counts)
            .finish_non_exhaustive()
    }
}

/// Batches written together, and the writes they carried.
#[derive(Debug, Default)]
struct Counts {
    statements: AtomicU64,
    writes: AtomicU64,
}

impl<W: BatchWrite> Batcher<W> {
    /// Starts the writer on the current runtime, writing up to `max` at a time. It stops when
    /// every handle is dropped.
    pub(crate) fn spawn(writer: W, max: usize) -> Batcher<W> {
        let (queue, mut pending) = mpsc::unbounded_channel::<Queued<W>>();
        let counts = Arc::new(Counts::default());
        let written = counts.clone();
        tokio::spawn(async move {
            let mut queued = Vec::with_capacity(max);
            while pending.recv_many(&mut queued, max).await > 0 {
                let (batch, replies): (Vec<_>, Vec<_>) = queued.drain(..).unzip();
                let Written { answers, together } = writer.write(&batch).await;
                if together {
                    written.statements.fetch_add(1, Ordering::Relaxed);
                    written
                        .writes
                        .fetch_add(batch.len() as u64, Ordering::Relaxed);
                }
                for (reply, answer) in replies.into_iter().zip(answers) {
                    let _ = reply.send(answer);
                }
            }
        });
        Batcher { queue, counts }
    }

    /// Batches written together so far in this process, and the writes they carried.
    pub(crate) fn counts(&self) -> (u64, u64) {
        (
            self.counts.statements.load(Ordering::Relaxed),
            self.counts.writes.load(Ordering::Relaxed),
        )
    }

    /// Queues `item` and waits for its answer, given after the commit.
    pub(crate) async fn submit(&self, item: W::Item) -> Result<W::Answer, StoreError> {
        let (reply, answer) = oneshot::channel();
        let stopped = || not_committed("the batch writer has stopped");
        self.queue.send((item, reply)).map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

/// An error that says PostgreSQL undid the transaction to break a deadlock (SQLSTATE 40P01):
/// nothing of it was written, so running it again is safe.
pub(crate) trait Deadlocked {
    /// Whether this is that error.
    fn deadlocked(&self) -> bool;
}

impl Deadlocked for sqlx::Error {
    fn deadlocked(&self) -> bool {
        matches!(self, sqlx::Error::Database(db) if db.code().as_deref() == Some("40P01"))
    }
}

impl Deadlocked for StoreError {
    fn deadlocked(&self) -> bool {
        matches!(self, StoreError::Database(error) if error.deadlocked())
    }
}

/// Runs `write` again when PostgreSQL undid it to break a deadlock, up to
/// [`DEADLOCK_RETRIES`] times: the batch writers (an operator's bulk action may lock the same
/// rows in another order), the operators' transactions (which may meet the batches) and the
/// hot writes, such as a refund's delivery (which may meet a worker's or an operator's).
pub(crate) async fn retrying_deadlocks<T, E, F, Fut>(mut write: F) -> Result<T, E>
where
    E: Deadlocked,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut tries = 0;
    loop {
        match write().await {
            Err(error) if error.deadlocked() && tries < DEADLOCK_RETRIES => {
                tries += 1;
            }
            other => return other,
        }
    }
}

/// One field of every item of a batch, as the array bound to a statement.
pub(crate) fn column<'a, I, T>(batch: &'a [I], field: impl Fn(&'a I) -> T) -> Vec<T> {
    batch.iter().map(field).collect()
}

//! Waking idle workers when work is armed: a new order's tasks, an exception retried, the orders
//! a SKU mapping released. Workers in this process are woken at once. On PostgreSQL the
//! workers of every other SyncDesk process are woken too (`NOTIFY`, see `store::signal`), so a
//! web process with no workers of its own hands new orders to `syncdesk worker` processes
//! without waiting for their poll — which can therefore be slow when the queue is idle.
//!
//! Announcements are coalesced: at most one is in flight, and whatever is armed meanwhile goes
//! out in the next one, at least [`ANNOUNCE_GAP`] later. Under load that is ≤ 20 statements a
//! second whatever the rate of orders (and the workers elsewhere are busy claiming anyway);
//! after a quiet spell the first goes out at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::sync::futures::Notified;

use crate::store::{Store, StoreError};

/// The least time between two announcements from one process.
const ANNOUNCE_GAP: Duration = Duration::from_millis(50);

/// How long the listener waits before listening again after its connection failed.
const LISTEN_AGAIN_AFTER: Duration = Duration::from_secs(1);

/// In [`Announcer::pending`]: the waker was dropped.
const CLOSED: u8 = 4;

/// How many idle workers the armed work is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reach {
    /// One worker: one claim takes a new order's tasks for every destination.
    One = 1,
    /// Every idle worker: a group of exceptions retried, a SKU's orders released.
    All = 2,
}

impl Reach {
    fn as_str(self) -> &'static str {
        match self {
            Reach::One => "one",
            Reach::All => "all",
        }
    }
}

/// Wakes workers when work is armed; cheap to clone (every clone is the same waker).
#[derive(Clone, Default)]
pub struct Wake(Arc<Inner>);

#[derive(Default)]
struct Inner {
    /// This process's idle workers wait on it.
    local: Notify,
    /// Other processes' workers are told through it (PostgreSQL).
    announcer: Option<Announcer>,
    /// This process, in its announcements, so that it ignores its own.
    id: String,
}

/// What is waiting to be announced (a bit per [`Reach`]), and the task that announces it,
/// started with the first announcement (a waker may be built outside a runtime).
struct Announcer {
    store: Store,
    pending: Arc<AtomicU8>,
    ready: Arc<Notify>,
    started: AtomicBool,
}

impl Wake {
    /// A waker for workers of this process only (tests, SQLite).
    pub fn local() -> Wake {
        Wake::default()
    }

    /// A waker that also tells the other processes sharing `store` (PostgreSQL).
    pub fn for_store(store: &Store) -> Wake {
        let announcer = (store.backend() == crate::store::Backend::Postgres).then(|| Announcer {
            store: store.clone(),
            pending: Arc::default(),
            ready: Arc::default(),
            started: AtomicBool::new(false),
        });
        Wake(Arc::new(Inner {
            local: Notify::new(),
            announcer,
            id: uuid::Uuid::new_v4().simple().to_string(),
        }))
    }

    /// Work for one idle worker was armed (a new order's tasks).
    pub fn one(&self) {
        self.0.local.notify_one();
        self.announce(Reach::One);
    }

    /// Work for every idle worker was armed (a group retried, a SKU's orders released).
    pub fn all(&self) {
        self.0.local.notify_waiters();
        self.announce(Reach::All);
    }

    /// Resolves when work is armed in this process, or announced by another.
    pub fn notified(&self) -> Notified<'_> {
        self.0.local.notified()
    }

    fn announce(&self, reach: Reach) {
        if let Some(announcer) = &self.0.announcer {
            announcer.pending.fetch_or(reach as u8, Ordering::AcqRel);
            announcer.start(&self.0.id);
            announcer.ready.notify_one();
        }
    }

    /// Hears the other processes' announcements and wakes this process's workers, until
    /// dropped or the store is closed (PostgreSQL; on SQLite it returns at once).
    /// Announcements missed while its connection is down are found by the workers' poll.
    pub async fn listen(self, store: Store) {
        while let Err(error) = self.hear(&store).await {
            if matches!(error, StoreError::Database(sqlx::Error::PoolClosed)) {
                return;
            }
            tracing::warn!(%error, "listening for other processes' work failed; trying again");
            tokio::time::sleep(LISTEN_AGAIN_AFTER).await;
        }
    }

    /// Listens until the connection fails (never returns on PostgreSQL but by an error).
    async fn hear(&self, store: &Store) -> Result<(), StoreError> {
        let Some(mut listener) = store.listen_for_work().await? else {
            return Ok(());
        };
        loop {
            let payload = listener.next().await?;
            self.heard(&payload);
        }
    }

    /// Wakes this process's workers for another process's announcement `payload`
    /// (`"<process> <one|all>"`); its own are ignored.
    fn heard(&self, payload: &str) {
        let Some((from, reach)) = payload.split_once(' ') else {
            return;
        };
        if from == self.0.id {
            return;
        }
        if reach == Reach::All.as_str() {
            self.0.local.notify_waiters();
        } else {
            self.0.local.notify_one();
        }
    }
}

impl Announcer {
    /// Starts, once, the task that sends what is pending, one announcement at a time.
    fn start(&self, id: &str) {
        if self.started.load(Ordering::Acquire) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if self.started.swap(true, Ordering::AcqRel) {
            return;
        }
        let (store, id) = (self.store.clone(), id.to_owned());
        let (pending, ready) = (self.pending.clone(), self.ready.clone());
        runtime.spawn(async move {
            loop {
                ready.notified().await;
                let reach = match pending.swap(0, Ordering::AcqRel) {
                    0 => continue,
                    bits if bits & CLOSED != 0 => return,
                    bits if bits & Reach::All as u8 != 0 => Reach::All,
                    _ => Reach::One,
                };
                let payload = format!("{id} {}", reach.as_str());
                if let Err(error) = store.announce_work(&payload).await {
                    tracing::warn!(%error, "telling other processes of new work failed; their poll will find it");
                }
                tokio::time::sleep(ANNOUNCE_GAP).await;
            }
        });
    }
}

impl Drop for Announcer {
    /// The last handle to the waker is gone: its task ends.
    fn drop(&mut self) {
        self.pending.fetch_or(CLOSED, Ordering::AcqRel);
        self.ready.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::Wake;
    use std::time::Duration;

    #[tokio::test]
    async fn another_process_wakes_this_ones_workers_but_its_own_announcements_do_not() {
        let wake = Wake::local();
        let within = Duration::from_millis(200);
        // Another process's new order: one worker.
        let woken = wake.notified();
        wake.heard("other one");
        assert!(tokio::time::timeout(within, woken).await.is_ok());
        // Another process's released group: every idle worker.
        let (first, second) = (wake.notified(), wake.notified());
        wake.heard("other all");
        assert!(tokio::time::timeout(within, first).await.is_ok());
        assert!(tokio::time::timeout(within, second).await.is_ok());
        // Its own announcement (its workers were woken when it was made), or a garbled one.
        let wake = Wake(std::sync::Arc::new(super::Inner {
            id: "me".into(),
            ..super::Inner::default()
        }));
        let waiting = wake.notified();
        wake.heard("me one");
        wake.heard("garbled");
        assert!(tokio::time::timeout(within, waiting).await.is_err());
    }
}

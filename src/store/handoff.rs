//! The handoff: a new order's tasks leased to this process's workers in the same write that
//! records the order, so that the commonest delivery of all starts without a claim.
//!
//! While workers run in this process ([`Store::start_handoff`]), the ingest asks for leases on
//! as many tasks as the workers have room for: on PostgreSQL each call of
//! `syncdesk_ingest_orders` (migration 0019) for the orders it carries, on SQLite each new
//! order's write on the one writer ([`Handoff::reserve`], `store::ingest::sqlite`). Those tasks
//! are inserted already running under the lease, as a claim would leave them, with their ids
//! (and the ERP's item codes) answered; once committed they are queued here and the workers
//! take them before they claim. Each such task is written twice (inserted, completed) instead
//! of three times, and the order is not read back: the worker delivers the order the webhook
//! carried.
//!
//! Nothing is lost when the process dies with tasks still queued here: they are running tasks
//! under a lease in the database, and the claims rescue them once it runs out, as they rescue a
//! dead worker's. A write's caller that goes away does not leave them unqueued: PostgreSQL's
//! batcher queues what it wrote whatever becomes of the request, and SQLite's write is finished
//! on a task of its own (`Writer::write_then`). A queued task
//! whose lease has run half its course is put back to pending rather than started late; on a
//! clean stop, the tasks still queued are put back to pending too ([`Store::stop_handoff`]).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use tokio::sync::Notify;

use super::tasks::ClaimedTask;
use super::{Store, StoreError};

/// The most tasks queued here at once, not yet started (and never more than the workers have
/// delivery slots). Beyond it, new orders' tasks are written pending and claimed.
const ROOM: usize = 128;

/// Tasks leased at ingest, waiting for this process's workers.
#[derive(Debug, Default)]
pub(crate) struct Handoff {
    queue: Mutex<Queue>,
    ready: Notify,
    /// Tasks handed off so far, for the benchmark.
    handed_off: AtomicU64,
    /// Whether the workers' last claim said they are behind: work is waiting in the database.
    backlog: AtomicBool,
}

#[derive(Debug, Default)]
struct Queue {
    /// The lease the workers take tasks under; `None` while no worker runs in this process.
    lease: Option<Duration>,
    /// The workers' delivery slots, all together.
    slots: usize,
    tasks: VecDeque<Queued>,
    /// Room held by writes under way that may lease tasks (SQLite: each order's own write; see
    /// [`Handoff::reserve`]).
    reserved: usize,
    /// Destinations this process paused (they refused our credentials), until resumed: a write
    /// that leased one's task before the pause and pushes it after has it refused, so that it
    /// is not sent with credentials the destination refuses.
    paused: Vec<String>,
    /// Tasks taken out of the queue too late to start (half their lease spent), to be put back
    /// to pending rather than left `running` until their lease runs out.
    late: Vec<ClaimedTask>,
}

#[derive(Debug)]
struct Queued {
    task: ClaimedTask,
    /// Past this, half the task's lease is spent: it is put back to pending, not started.
    start_by: DateTime<Utc>,
}

/// Leases the ingest may take now.
pub(crate) struct Leases {
    /// How long each lasts.
    pub(crate) lease: Duration,
    /// How many tasks may be leased.
    pub(crate) room: usize,
}

/// The lease an ingest call put tasks under.
pub(crate) struct Leased {
    /// When it runs out.
    pub(crate) expires_at: DateTime<Utc>,
    /// How long it was.
    pub(crate) lease: Duration,
}

impl Queue {
    /// Tasks that may still be queued: no more than [`ROOM`] nor the workers' slots.
    fn room(&self) -> usize {
        self.slots
            .min(ROOM)
            .saturating_sub(self.tasks.len() + self.reserved)
    }
}

/// Room held in the queue for one write's tasks (see [`Handoff::reserve`]).
pub(crate) struct Reservation {
    handoff: Arc<Handoff>,
    tasks: usize,
    /// The lease token the write puts its tasks under.
    pub(crate) token: String,
    /// And the lease.
    pub(crate) leased: Leased,
}

impl Reservation {
    /// Queues the tasks the write leased (committed), as [`Handoff::push`] does, and gives the
    /// room back.
    #[must_use]
    pub(crate) fn push(self, tasks: Vec<ClaimedTask>) -> Vec<ClaimedTask> {
        self.handoff.push(tasks, &self.leased)
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let mut queue = self.handoff.queue();
        queue.reserved = queue.reserved.saturating_sub(self.tasks);
    }
}

impl Handoff {
    fn queue(&self) -> std::sync::MutexGuard<'_, Queue> {
        // A panic while the lock was held left the queue as it was: take it as it is.
        self.queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The leases an ingest call may ask for: none while no worker runs here; none while work
    /// waits in the database (the last claim said the workers are behind), so that new orders
    /// queue behind it, for a claim, oldest first; else up to [`ROOM`] queued, and no more than
    /// the workers' slots.
    pub(crate) fn leases(&self) -> Option<Leases> {
        let queue = self.queue();
        let lease = queue.lease?;
        let room = if self.backlog.load(Ordering::Relaxed) {
            0
        } else {
            queue.room()
        };
        Some(Leases { lease, room })
    }

    /// Holds room for `tasks` tasks of one write that may lease them (SQLite, where each new
    /// order's write is one of many in the writer's queue), under a lease of its own; `None`
    /// when [`Handoff::leases`] would give no room for them. The room is held until the
    /// reservation is pushed or dropped.
    pub(crate) fn reserve(self: &Arc<Self>, tasks: usize) -> Option<Reservation> {
        let mut queue = self.queue();
        let lease = queue.lease?;
        if self.backlog.load(Ordering::Relaxed) || queue.room() < tasks {
            return None;
        }
        queue.reserved += tasks;
        Some(Reservation {
            handoff: self.clone(),
            tasks,
            token: uuid::Uuid::now_v7().to_string(),
            leased: Leased {
                expires_at: Utc::now()
                    + TimeDelta::from_std(lease).unwrap_or(TimeDelta::seconds(60)),
                lease,
            },
        })
    }

    /// Queues tasks the ingest leased (committed) under `leased` and tells the workers. Once the
    /// handoff has stopped (a call was under way), the tasks are answered back, to be released;
    /// so are those of a destination paused since the write read it was not.
    #[must_use]
    pub(crate) fn push(&self, tasks: Vec<ClaimedTask>, leased: &Leased) -> Vec<ClaimedTask> {
        if tasks.is_empty() {
            return tasks;
        }
        let mut queue = self.queue();
        if queue.lease.is_none() {
            return tasks;
        }
        let (tasks, refused): (Vec<ClaimedTask>, Vec<ClaimedTask>) = if queue.paused.is_empty() {
            (tasks, Vec::new())
        } else {
            let paused = &queue.paused;
            tasks
                .into_iter()
                .partition(|task| !paused.contains(&task.destination))
        };
        if tasks.is_empty() {
            return refused;
        }
        self.handed_off
            .fetch_add(tasks.len() as u64, Ordering::Relaxed);
        let half = TimeDelta::from_std(leased.lease / 2).unwrap_or(TimeDelta::zero());
        let start_by = leased.expires_at - half;
        queue
            .tasks
            .extend(tasks.into_iter().map(|task| Queued { task, start_by }));
        drop(queue);
        self.ready.notify_one();
        refused
    }

    /// Up to `max` queued tasks, oldest first. Tasks whose lease has run half its course are
    /// set aside for [`Store::take_handed_off`] to put back to pending.
    pub(crate) fn take(&self, max: usize) -> Vec<ClaimedTask> {
        let mut queue = self.queue();
        if queue.lease.is_none() {
            return Vec::new();
        }
        let now = Utc::now();
        let mut taken = Vec::new();
        while taken.len() < max {
            let Some(queued) = queue.tasks.pop_front() else {
                break;
            };
            if now <= queued.start_by {
                taken.push(queued.task);
            } else {
                queue.late.push(queued.task);
            }
        }
        if !queue.tasks.is_empty() {
            // Another worker may have room for the rest.
            self.ready.notify_one();
        }
        taken
    }

    /// Takes every queued task for `destination` out of the queue, and refuses its tasks
    /// until it is resumed (it was paused).
    fn pause(&self, destination: &str) -> Vec<ClaimedTask> {
        let mut queue = self.queue();
        if !queue.paused.iter().any(|paused| paused == destination) {
            queue.paused.push(destination.to_owned());
        }
        let (theirs, others) = queue
            .tasks
            .drain(..)
            .partition(|queued| queued.task.destination == destination);
        queue.tasks = others;
        theirs
            .into_iter()
            .map(|queued: Queued| queued.task)
            .collect()
    }

    /// Takes `destination`'s tasks again (it was resumed).
    fn resume(&self, destination: &str) {
        self.queue().paused.retain(|paused| paused != destination);
    }

    /// Told what a claim took: a destination whose tasks a claim took is not paused (the
    /// claims skip paused destinations), whoever resumed it — another process, say.
    pub(crate) fn claimed(&self, tasks: &[ClaimedTask]) {
        if tasks.is_empty() {
            // An idle poll: nothing learned, no lock taken.
            return;
        }
        let mut queue = self.queue();
        if !queue.paused.is_empty() {
            queue
                .paused
                .retain(|paused| !tasks.iter().any(|task| &task.destination == paused));
        }
    }
}

impl Store {
    /// Hands new orders' tasks to this process's workers as the ingest writes them, under
    /// `lease`, no more queued than their `slots` all together. Called when workers start here.
    pub fn start_handoff(&self, lease: Duration, slots: usize) {
        let mut queue = self.handoff.queue();
        queue.lease = Some(lease);
        queue.slots = slots;
    }

    /// Tells the handoff what a worker's claim found: when it says the workers are behind, work
    /// is waiting in the database, and new orders' tasks are written pending behind it.
    pub fn note_claim(&self, behind: bool) {
        self.handoff.backlog.store(behind, Ordering::Relaxed);
    }

    /// Stops the handoff and puts the tasks still queued back to pending, for any worker to
    /// claim (called once this process's workers have stopped). Returns how many.
    pub async fn stop_handoff(&self) -> Result<u64, StoreError> {
        let tasks: Vec<ClaimedTask> = {
            let mut queue = self.handoff.queue();
            queue.lease = None;
            queue.tasks.drain(..).map(|queued| queued.task).collect()
        };
        self.release_unstarted(tasks).await
    }

    /// Puts the tasks queued here for `destination` back to pending, and those pushed later
    /// until it is resumed (it was paused).
    pub(crate) async fn release_handed_off_to(&self, destination: &str) -> Result<u64, StoreError> {
        self.release_unstarted(self.handoff.pause(destination))
            .await
    }

    /// Hands `destination`'s new tasks to the workers again (it was resumed).
    pub(crate) fn resume_handoff_to(&self, destination: &str) {
        self.handoff.resume(destination);
    }

    /// Puts handed-off tasks that no worker started back to pending, as they were before the
    /// ingest leased them (see `store::handoff`); a task whose lease another worker has taken
    /// since is left alone. Returns how many.
    pub(crate) async fn release_unstarted(
        &self,
        tasks: Vec<ClaimedTask>,
    ) -> Result<u64, StoreError> {
        if tasks.is_empty() {
            return Ok(0);
        }
        match (&self.writer, &self.db) {
            (Some(writer), _) => {
                let now = Utc::now();
                writer
                    .write(move |conn| release_on_writer(conn, &tasks, now))
                    .await
            }
            (None, super::Db::Postgres(pool)) => Ok(release_unstarted(pool, &tasks).await?),
            (None, super::Db::Sqlite(_)) => Err(super::writer::not_committed(
                "SQLite's writer is not running",
            )),
        }
    }

    /// Tasks handed off in this process so far.
    pub fn handed_off_count(&self) -> u64 {
        self.handoff.handed_off.load(Ordering::Relaxed)
    }

    /// Up to `max` tasks the ingest leased to this process's workers.
    pub fn take_handed_off(&self, max: usize) -> Vec<ClaimedTask> {
        if max == 0 {
            return Vec::new();
        }
        let taken = self.handoff.take(max);
        // Those that waited too long to start (every slot was busy with a slow destination)
        // go back to pending now, for the next claim: left `running`, they would show as being
        // delivered and wait out the rest of their lease first.
        let late = std::mem::take(&mut self.handoff.queue().late);
        if !late.is_empty() {
            let store = self.clone();
            tokio::spawn(async move {
                if let Err(err) = store.release_unstarted(late).await {
                    tracing::error!(error = %err, "putting back tasks too late to start failed; their leases will run out");
                }
            });
        }
        taken
    }

    /// Resolves when tasks are handed off.
    pub async fn handed_off(&self) {
        self.handoff.ready.notified().await;
    }
}

/// What [`release_on_writer`] does to each task: [`release_unstarted`]'s update, one task at a
/// time.
const RELEASE: &str =
    "UPDATE sync_tasks SET state = 'pending', lease_token = NULL, lease_expires_at = NULL,
    attempt = attempt - 1, claims = claims - 1, updated_at = $3
WHERE id = $1 AND lease_token = $2 AND state = 'running'";

/// [`Store::release_unstarted`] on SQLite's writer.
fn release_on_writer(
    conn: &rusqlite::Connection,
    tasks: &[ClaimedTask],
    now: DateTime<Utc>,
) -> Result<u64, StoreError> {
    let mut released = 0;
    for task in tasks {
        released += super::sqlite::execute(
            conn,
            RELEASE,
            &[&task.id, &task.lease_token, &super::sqlite::Time(now)],
        )?;
    }
    Ok(released as u64)
}

/// [`Store::release_unstarted`] on PostgreSQL's pool.
pub(crate) async fn release_unstarted(
    pool: &sqlx::PgPool,
    tasks: &[ClaimedTask],
) -> Result<u64, sqlx::Error> {
    if tasks.is_empty() {
        return Ok(0);
    }
    let ids: Vec<i64> = tasks.iter().map(|t| t.id).collect();
    let tokens: Vec<&str> = tasks.iter().map(|t| t.lease_token.as_str()).collect();
    let released = sqlx::query(
        "UPDATE sync_tasks t SET state = 'pending', lease_token = NULL, lease_expires_at = NULL,
             attempt = t.attempt - 1, claims = t.claims - 1, updated_at = $3
         FROM unnest($1::bigint[], $2::text[]) AS u(id, lease_token)
         WHERE t.id = u.id AND t.lease_token = u.lease_token AND t.state = 'running'",
    )
    .bind(&ids)
    .bind(&tokens)
    .bind(Utc::now())
    .execute(pool)
    .await?;
    Ok(released.rows_affected())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::shopify::parse_order;
    use crate::simulate::shopify::OrderFactory;

    fn tasks(ids: std::ops::Range<i64>, destination: &str) -> Vec<ClaimedTask> {
        let body = serde_json::to_vec(&OrderFactory::new(7).order()).expect("json");
        let order = parse_order(&body).expect("an order");
        ids.map(|id| ClaimedTask::handed_off(id, destination, &order, "token", Utc::now(), None))
            .collect()
    }

    /// A lease of `lease` that started `ago`.
    fn leased(lease: Duration, ago: Duration) -> Leased {
        let started = Utc::now() - TimeDelta::from_std(ago).expect("a delta");
        Leased {
            expires_at: started + TimeDelta::from_std(lease).expect("a delta"),
            lease,
        }
    }

    fn ids(tasks: &[ClaimedTask]) -> Vec<i64> {
        tasks.iter().map(|t| t.id).collect()
    }

    #[test]
    fn leases_only_while_workers_run_and_only_as_many_as_there_is_room_for() {
        let handoff = Handoff::default();
        let lease = Duration::from_secs(60);
        assert!(handoff.leases().is_none(), "no worker here: no lease");
        let refused = handoff.push(tasks(0..2, "crm"), &leased(lease, Duration::ZERO));
        assert_eq!(
            ids(&refused),
            [0, 1],
            "stopped: answered back, to be released"
        );
        {
            let mut queue = handoff.queue();
            queue.lease = Some(lease);
            queue.slots = 256;
        }
        let leases = handoff.leases().expect("leases");
        assert_eq!((leases.lease, leases.room), (lease, ROOM));
        assert!(
            handoff
                .push(tasks(0..100, "crm"), &leased(lease, Duration::ZERO))
                .is_empty()
        );
        assert_eq!(handoff.leases().expect("leases").room, ROOM - 100);
        assert!(
            handoff
                .push(tasks(100..200, "crm"), &leased(lease, Duration::ZERO))
                .is_empty()
        );
        assert_eq!(handoff.leases().expect("leases").room, 0);
        assert_eq!(handoff.handed_off.load(Ordering::Relaxed), 200);
        // No more than the workers' slots; none while work waits in the database.
        let handoff = Handoff::default();
        {
            let mut queue = handoff.queue();
            queue.lease = Some(lease);
            queue.slots = 10;
        }
        assert!(
            handoff
                .push(tasks(0..3, "crm"), &leased(lease, Duration::ZERO))
                .is_empty()
        );
        assert_eq!(handoff.leases().expect("leases").room, 7);
        handoff.backlog.store(true, Ordering::Relaxed);
        assert_eq!(handoff.leases().expect("leases").room, 0);
    }

    #[test]
    fn a_reservation_holds_its_room_until_it_is_pushed_or_dropped() {
        let handoff = Arc::new(Handoff::default());
        let lease = Duration::from_secs(60);
        assert!(handoff.reserve(2).is_none(), "no worker here: no lease");
        {
            let mut queue = handoff.queue();
            queue.lease = Some(lease);
            queue.slots = 5;
        }
        let first = handoff.reserve(2).expect("room");
        let second = handoff.reserve(2).expect("room");
        assert!(handoff.reserve(2).is_none(), "one slot left");
        assert_eq!(handoff.leases().expect("leases").room, 1);
        assert_ne!(first.token, second.token, "a lease of its own");
        assert!(first.leased.expires_at > Utc::now());
        // A write that leased nothing gives its room back.
        drop(second);
        assert_eq!(handoff.leases().expect("leases").room, 3);
        // Pushed: the room is the queued tasks'.
        assert!(first.push(tasks(0..2, "crm")).is_empty());
        assert_eq!(handoff.leases().expect("leases").room, 3);
        assert_eq!(ids(&handoff.take(10)), [0, 1]);
        assert_eq!(handoff.leases().expect("leases").room, 5);
        // None while work waits in the database; once stopped, what is pushed is answered back.
        handoff.backlog.store(true, Ordering::Relaxed);
        assert!(handoff.reserve(2).is_none());
        handoff.backlog.store(false, Ordering::Relaxed);
        let late = handoff.reserve(2).expect("room");
        handoff.queue().lease = None;
        assert_eq!(ids(&late.push(tasks(2..4, "erp"))), [2, 3]);
        assert_eq!(handoff.queue().reserved, 0);
    }

    #[test]
    fn workers_take_the_oldest_first_and_leave_a_half_spent_lease_to_the_rescue() {
        let handoff = Handoff::default();
        let lease = Duration::from_secs(60);
        handoff.queue().lease = Some(lease);
        assert!(
            handoff
                .push(tasks(0..3, "crm"), &leased(lease, Duration::from_secs(1)))
                .is_empty()
        );
        // Half spent: the call that wrote these waited 31 s for its locks.
        let late = leased(lease, Duration::from_secs(31));
        assert!(handoff.push(tasks(3..5, "crm"), &late).is_empty());
        assert!(
            handoff
                .push(tasks(5..6, "crm"), &leased(lease, Duration::ZERO))
                .is_empty()
        );
        assert_eq!(ids(&handoff.take(2)), [0, 1]);
        assert!(handoff.take(0).is_empty());
        assert_eq!(ids(&handoff.take(10)), [2, 5]);
        assert!(handoff.take(10).is_empty());
    }

    #[test]
    fn a_paused_destinations_tasks_leave_the_queue() {
        let handoff = Handoff::default();
        let lease = Duration::from_secs(60);
        handoff.queue().lease = Some(lease);
        let now = leased(lease, Duration::ZERO);
        assert!(handoff.push(tasks(0..2, "crm"), &now).is_empty());
        assert!(handoff.push(tasks(2..4, "erp"), &now).is_empty());
        assert!(handoff.push(tasks(4..5, "crm"), &now).is_empty());
        assert_eq!(ids(&handoff.pause("erp")), [2, 3]);
        assert_eq!(ids(&handoff.take(10)), [0, 1, 4]);
        // A write that leased before the pause and pushes after: its ERP task is refused, to be
        // released, the CRM's queued.
        let mut late = tasks(5..6, "crm");
        late.extend(tasks(6..7, "erp"));
        assert_eq!(ids(&handoff.push(late, &now)), [6]);
        assert_eq!(ids(&handoff.take(10)), [5]);
        // Until it is resumed.
        handoff.resume("erp");
        assert!(handoff.push(tasks(7..8, "erp"), &now).is_empty());
        assert_eq!(ids(&handoff.take(10)), [7]);
        // Or until a claim takes one of its tasks: the claims skip paused destinations, so
        // someone resumed it (another process).
        assert_eq!(ids(&handoff.pause("erp")), Vec::<i64>::new());
        assert_eq!(ids(&handoff.push(tasks(8..9, "erp"), &now)), [8]);
        handoff.claimed(&tasks(100..101, "crm"));
        assert_eq!(ids(&handoff.push(tasks(9..10, "erp"), &now)), [9]);
        handoff.claimed(&tasks(101..102, "erp"));
        assert!(handoff.push(tasks(10..11, "erp"), &now).is_empty());
    }
}

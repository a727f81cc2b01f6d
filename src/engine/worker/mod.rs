//! The worker: claims due tasks in batches under a lease, sends each order's current state to
//! its destination, and records the outcome — synced, retry later, needs a person, or dead.
//! Several workers (in one process or many, on PostgreSQL) share the queue safely: a task is
//! held by one lease at a time, and a completion is fenced by its lease token.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{TimeDelta, Utc};
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;

use super::exception::{self, Destination, Problem};
use super::map;
use super::retry::RetryPolicy;
use crate::connectors::{Ack, CrmApi, DeliveryError, ErpApi};
use crate::domain::Order;
use crate::store::{AttemptRecord, ClaimedTask, NewException, Store, StoreError};

mod deliver;

/// Tuning of a worker.
#[derive(Clone, Debug)]
pub struct WorkerConfig {
    /// Tasks claimed per batch.
    pub batch: i64,
    /// Deliveries in flight at once.
    pub concurrency: usize,
    /// How long a claim lasts before another worker may take the task over.
    pub lease: Duration,
    /// How long to sleep when the queue is empty (a new order wakes the worker sooner).
    pub idle_poll: Duration,
    /// Retry policy.
    pub retry: RetryPolicy,
    /// From this attempt on, a transient failure is shown as an exception too.
    pub show_transient_from: i64,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            batch: 64,
            // At 64 a claim takes ~30 tasks under load; at 32, ~14, and the claims and
            // completions cost PostgreSQL ~10% more per order (docs/PERFORMANCE.md).
            concurrency: 64,
            lease: Duration::from_secs(60),
            idle_poll: Duration::from_millis(100),
            retry: RetryPolicy::default(),
            show_transient_from: 3,
        }
    }
}

/// The destinations a worker delivers to.
#[derive(Clone)]
pub struct Destinations {
    /// The CRM.
    pub crm: Arc<dyn CrmApi>,
    /// The ERP.
    pub erp: Arc<dyn ErpApi>,
}

/// How often a worker opens snoozed exceptions whose time has come.
const SNOOZE_SWEEP: Duration = Duration::from_secs(15);

/// How one delivery went.
enum Delivery {
    Synced(Ack),
    NeedsAction(Problem),
    Failed(DeliveryError),
}

/// The longest a worker with a free delivery slot waits for half of them to be free before it
/// claims anyway: deliveries held up by a slow destination must not hold up the others'.
const CLAIM_WAIT: Duration = Duration::from_millis(50);

/// Whether a worker claims now, with `free` of its `concurrency` delivery slots free and
/// `since_claim` since its last claim: with any free slot when none is in flight, else once
/// half its slots are free (at most a batch) or [`CLAIM_WAIT`] has passed.
fn claim_now(free: i64, concurrency: usize, batch: i64, since_claim: Duration) -> bool {
    let concurrency = concurrency as i64;
    let enough = (concurrency / 2).clamp(1, batch.max(1));
    free > 0 && (free >= concurrency || free >= enough || since_claim >= CLAIM_WAIT)
}

/// How a worker waits before it looks at the queue again (it also wakes on new work and on
/// shutdown).
#[derive(Debug, PartialEq, Eq)]
struct Wait {
    /// The longest it waits.
    pause: Duration,
    /// Whether a delivery that finishes ends the wait.
    on_finished_delivery: bool,
}

/// What a worker's last claim found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Found {
    /// All it asked for: more may be due.
    All,
    /// Fewer than it asked for: the queue was drained.
    Fewer,
    /// Nothing: the queue was empty.
    Nothing,
}

/// Whether a claim is due whatever woke the worker: at once after one that got all it asked
/// for, [`CLAIM_WAIT`] after one that got fewer, `idle_poll` after one that got nothing.
fn claim_due(last: Found, since_claim: Duration, idle_poll: Duration) -> bool {
    match last {
        Found::All => true,
        Found::Fewer => since_claim >= CLAIM_WAIT,
        Found::Nothing => since_claim >= idle_poll,
    }
}

/// After a turn of the loop (`claim`: it claimed; `idle`: it got nothing this turn; `last`: what
/// its last claim, this turn's or an earlier one, found; `free`: slots free before the claim;
/// `since_claim`: time since the last claim), how the worker waits, or `None` to go on at once:
/// - its claim got all it asked for: at once, more may be due;
/// - every slot is busy: until one delivery finishes;
/// - it waits for slots to free up: until one delivery finishes or [`CLAIM_WAIT`] is over;
/// - its last claim drained the queue and deliveries are in flight: for new work, or until
///   [`CLAIM_WAIT`] after that claim (`idle_poll` when it found nothing at all) — not for each
///   delivery that finishes, which would claim again and find little or nothing, and not from
///   each handoff, which would put the claim off for as long as new orders keep coming (new
///   orders' tasks handed off need no claim, and other new work wakes the worker);
/// - nothing in flight and nothing due: for new work or `idle_poll`.
fn wait_after(
    claim: bool,
    idle: bool,
    last: Found,
    in_flight: bool,
    free: i64,
    since_claim: Duration,
    idle_poll: Duration,
) -> Option<Wait> {
    let drained = last != Found::All;
    if !idle && !drained {
        return None;
    }
    if free <= 0 && in_flight {
        return Some(Wait {
            pause: idle_poll,
            on_finished_delivery: true,
        });
    }
    let pause = match (drained, claim, in_flight) {
        (true, _, _) if last == Found::Nothing => idle_poll.saturating_sub(since_claim),
        (true, _, true) | (_, false, _) => CLAIM_WAIT.saturating_sub(since_claim),
        _ => idle_poll,
    };
    Some(Wait {
        pause,
        on_finished_delivery: in_flight && !drained,
    })
}

/// A worker over a store and destinations.
#[derive(Clone)]
pub struct Worker {
    store: Store,
    destinations: Destinations,
    config: WorkerConfig,
    wake: Arc<Notify>,
}

impl Worker {
    /// A worker; `wake` is notified when new work arrives (ingest), to cut latency.
    pub fn new(
        store: Store,
        destinations: Destinations,
        config: WorkerConfig,
        wake: Arc<Notify>,
    ) -> Worker {
        Worker {
            store,
            destinations,
            config,
            wake,
        }
    }

    /// Works until `stop` turns true.
    pub async fn run(self, mut stop: tokio::sync::watch::Receiver<bool>) {
        let permits = Arc::new(Semaphore::new(self.config.concurrency));
        let mut running = JoinSet::new();
        let mut last_sweep = tokio::time::Instant::now();
        let mut last_claim = last_sweep;
        // What the last claim found: fewer tasks than it asked for means nothing more was due.
        let mut last = Found::All;
        // Whether this turn may claim. Not when handed-off tasks alone woke the worker after a
        // claim that emptied the queue: they need no claim, and one would find nothing.
        let mut may_claim = true;
        while !*stop.borrow() {
            // Snoozed exceptions whose time has come are open again.
            if last_sweep.elapsed() >= SNOOZE_SWEEP {
                last_sweep = tokio::time::Instant::now();
                if let Err(err) = self.store.wake_snoozed().await {
                    tracing::error!(error = %err, "waking snoozed exceptions failed");
                }
            }
            // Claim only as many as can start now, so leases are not spent waiting; and, while
            // deliveries are in flight, only once half of them have finished or a short wait
            // has passed: a claim costs about as much for one task as for a dozen (PostgreSQL
            // under the benchmark: ~1 ms for 8–10 tasks, 0.7 ms for 14), and under load
            // claiming each time one delivery finished made claims of one or two tasks. A claim
            // that is due goes before the handed-off tasks below: retries, updates and rescues
            // wait their turn behind new orders, never for good.
            let free = permits.available_permits() as i64;
            let since_claim = last_claim.elapsed();
            let claim = (may_claim || claim_due(last, since_claim, self.config.idle_poll))
                && claim_now(
                    free,
                    self.config.concurrency,
                    self.config.batch,
                    since_claim,
                );
            let requested = free.min(self.config.batch);
            let claimed = if claim {
                last_claim = tokio::time::Instant::now();
                match self.store.claim_tasks(requested, self.config.lease).await {
                    Ok(tasks) => tasks,
                    Err(err) => {
                        tracing::error!(error = %err, "claiming tasks failed");
                        Vec::new()
                    }
                }
            } else {
                Vec::new()
            };
            // A claim that found fewer tasks than it asked for left nothing due: the next one
            // waits for new work (ingest's wake) or CLAIM_WAIT, rather than following each
            // delivery that finishes with a claim that finds little or nothing (under the
            // benchmark on PostgreSQL that was ~6 claims of ~11 tasks per ingest call).
            if claim {
                last = match claimed.len() as i64 {
                    0 => Found::Nothing,
                    n if n < requested => Found::Fewer,
                    _ => Found::All,
                };
                // Work waits in the database when a claim of half the slots or more came back
                // full (a small claim coming back full says little).
                let slots = i64::try_from(self.config.concurrency).unwrap_or(i64::MAX);
                self.store
                    .note_claim(last == Found::All && requested >= (slots / 2).max(1));
            }
            let idle = claimed.is_empty();
            for task in claimed {
                if !self.start(&permits, &mut running, task).await {
                    return;
                }
            }
            // New orders' tasks the ingest leased to this process's workers, in the slots
            // left (PostgreSQL, `store::handoff`): they need no claim.
            for task in self.store.take_handed_off(permits.available_permits()) {
                if !self.start(&permits, &mut running, task).await {
                    return;
                }
            }
            while running.try_join_next().is_some() {}
            may_claim = true;
            if let Some(wait) = wait_after(
                claim,
                idle,
                last,
                !running.is_empty(),
                free,
                last_claim.elapsed(),
                self.config.idle_poll,
            ) {
                tokio::select! {
                    _ = stop.changed() => {}
                    () = self.wake.notified() => {}
                    () = tokio::time::sleep(wait.pause) => {}
                    // Only with a free slot: a worker with none would take the wake-up
                    // from one that has.
                    () = self.store.handed_off(), if permits.available_permits() > 0 => {
                        may_claim = last == Found::All;
                    }
                    Some(_) = running.join_next(), if wait.on_finished_delivery => {}
                }
            }
        }
        // Let deliveries in flight finish and record their outcome.
        while running.join_next().await.is_some() {}
    }

    /// Starts delivering `task` in a free slot; false once the slots are closed.
    async fn start(
        &self,
        permits: &Arc<Semaphore>,
        running: &mut JoinSet<()>,
        task: ClaimedTask,
    ) -> bool {
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return false;
        };
        let worker = self.clone();
        running.spawn(async move {
            worker.process(task).await;
            drop(permit);
        });
        true
    }

    /// Claims one batch and works it to the end (for tests and tools). Returns how many tasks
    /// were worked.
    pub async fn run_once(&self) -> Result<usize, StoreError> {
        let tasks = self
            .store
            .claim_tasks(self.config.batch, self.config.lease)
            .await?;
        let n = tasks.len();
        let mut running = JoinSet::new();
        for task in tasks {
            let worker = self.clone();
            running.spawn(async move { worker.process(task).await });
        }
        while running.join_next().await.is_some() {}
        Ok(n)
    }

    /// Delivers one task and records the outcome. Never panics; storage errors are logged and
    /// the lease simply expires, so another attempt follows.
    #[tracing::instrument(level = "debug", skip_all, fields(task = task.id, order = task.store_order_id, destination = %task.destination, attempt = task.attempt))]
    async fn process(&self, mut task: ClaimedTask) {
        let (snapshot, codes) = (task.take_snapshot(), task.take_item_codes());
        if let Err(err) = self.try_process(&task, snapshot, codes).await {
            tracing::error!(error = %err, "recording a delivery failed; the lease will expire and the task run again");
        }
    }

    /// `snapshot` and `codes` are what the claim read, if it did.
    async fn try_process(
        &self,
        task: &ClaimedTask,
        snapshot: Option<(Order, i64, bool)>,
        codes: Option<HashMap<String, String>>,
    ) -> Result<(), StoreError> {
        let started_at = Utc::now();
        let clock = Instant::now();
        let snapshot = match snapshot {
            Some(snapshot) => Some(snapshot),
            None => {
                self.store
                    .delivery_snapshot(task.store_order_id, &task.destination)
                    .await?
            }
        };
        let Some((order, version, edited)) = snapshot else {
            return Ok(());
        };
        let Some(destination) = Destination::parse(&task.destination) else {
            tracing::error!("task for an unknown destination");
            return Ok(());
        };
        // An operator's edit for exactly this version replaces the computed payload.
        let edit = if edited {
            self.store
                .payload_edit(task.store_order_id, &task.destination, version)
                .await?
        } else {
            None
        };
        let delivery = match destination {
            Destination::Crm => self.deliver_crm(&order, version, edit.as_ref()).await,
            Destination::Erp => {
                self.deliver_erp(&order, version, edit.as_ref(), codes, task.claims == 1)
                    .await
            }
        };
        let mut rec = AttemptRecord {
            version,
            started_at,
            duration_ms: i64::try_from(clock.elapsed().as_millis()).unwrap_or(i64::MAX),
            outcome: "synced",
            status: None,
            message: None,
            request_id: None,
        };
        let fenced = match delivery {
            Delivery::Synced(ack) => {
                rec.status = Some(i32::from(ack.status));
                rec.request_id = ack.request_id.clone();
                !self
                    .store
                    .complete_synced(task, &ack.external_id, &rec)
                    .await?
            }
            Delivery::NeedsAction(problem) => {
                rec.outcome = "needs_action";
                rec.message = Some(problem.message.clone());
                !self
                    .store
                    .complete_blocked(task, &rec, &new_exception(&problem))
                    .await?
            }
            Delivery::Failed(err) => {
                rec.status = status_of(&err);
                rec.request_id = err.request_id().map(str::to_string);
                rec.message = Some(err.to_string());
                self.record_failure(task, destination, &order, rec, &err)
                    .await?
            }
        };
        if fenced {
            tracing::warn!("lease lost before completion; the newer lease holder's record stands");
        }
        Ok(())
    }

    /// Records a connector failure; returns true when the lease had been lost.
    async fn record_failure(
        &self,
        task: &ClaimedTask,
        destination: Destination,
        order: &Order,
        mut rec: AttemptRecord,
        err: &DeliveryError,
    ) -> Result<bool, StoreError> {
        let retry = &self.config.retry;
        match err {
            DeliveryError::Auth { .. } => {
                rec.outcome = "auth";
                let problem = exception::from_delivery_error(
                    destination,
                    &order.name,
                    err,
                    task.attempt,
                    retry.max_attempts,
                    None,
                );
                Ok(!self
                    .store
                    .pause_destination(task, &rec, &new_exception(&problem))
                    .await?)
            }
            DeliveryError::Rejected {
                code,
                field,
                message,
                ..
            } => {
                rec.outcome = "needs_action";
                let problem = match (destination, code.as_str()) {
                    // Name the store SKU behind the ERP's line, so re-mapping it releases the order.
                    (Destination::Erp, "unknown_item") => {
                        let sku = field
                            .as_deref()
                            .and_then(|f| map::sku_of_erp_field(order, f));
                        Problem::unknown_item(&order.name, sku, field.as_deref(), message)
                    }
                    _ => exception::from_delivery_error(
                        destination,
                        &order.name,
                        err,
                        task.attempt,
                        retry.max_attempts,
                        None,
                    ),
                };
                Ok(!self
                    .store
                    .complete_blocked(task, &rec, &new_exception(&problem))
                    .await?)
            }
            DeliveryError::Transient { .. } if retry.exhausted(task.attempt) => {
                rec.outcome = "exhausted";
                let tried_for = Utc::now() - task.armed_at;
                let problem = exception::dead_letter(
                    destination,
                    &order.name,
                    task.attempt,
                    Some(tried_for),
                    &err.to_string(),
                );
                Ok(!self
                    .store
                    .complete_dead(task, &rec, &new_exception(&problem))
                    .await?)
            }
            DeliveryError::Transient { .. } => {
                rec.outcome = "transient";
                let wait = retry.delay(task.attempt, err.retry_after());
                let next_at =
                    Utc::now() + TimeDelta::from_std(wait).unwrap_or(TimeDelta::seconds(60));
                let shown = (task.attempt >= self.config.show_transient_from).then(|| {
                    new_exception(&exception::from_delivery_error(
                        destination,
                        &order.name,
                        err,
                        task.attempt,
                        retry.max_attempts,
                        Some(next_at),
                    ))
                });
                Ok(!self
                    .store
                    .complete_retry(task, next_at, &rec, shown.as_ref())
                    .await?)
            }
        }
    }
}

fn status_of(err: &DeliveryError) -> Option<i32> {
    match err {
        DeliveryError::Auth { status, .. } | DeliveryError::Rejected { status, .. } => {
            Some(i32::from(*status))
        }
        DeliveryError::Transient {
            kind: crate::connectors::TransientKind::Server { status },
            ..
        } => Some(i32::from(*status)),
        DeliveryError::Transient { .. } => None,
    }
}

fn new_exception(problem: &Problem) -> NewException {
    NewException {
        code: problem.code.to_string(),
        kind: problem.kind.as_str(),
        fingerprint: problem.fingerprint.clone(),
        message: problem.message.clone(),
        action: problem.action.to_string(),
        fields: problem.fields.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::{CLAIM_WAIT, Found, Wait, claim_due, claim_now, wait_after};
    use std::time::Duration;

    #[test]
    fn a_claim_that_empties_the_queue_waits_for_new_work_not_for_each_finished_delivery() {
        let (poll, just) = (Duration::from_millis(100), Duration::from_millis(1));
        // Got all it asked for: claim again at once.
        assert_eq!(
            wait_after(true, false, Found::All, true, 20, just, poll),
            None
        );
        // Got fewer (the queue is drained) with deliveries in flight: new work or CLAIM_WAIT.
        assert_eq!(
            wait_after(true, false, Found::Fewer, true, 40, just, poll),
            Some(Wait {
                pause: CLAIM_WAIT - just,
                on_finished_delivery: false
            })
        );
        // Got nothing with deliveries in flight: new work or the idle poll.
        assert_eq!(
            wait_after(true, true, Found::Nothing, true, 40, just, poll),
            Some(Wait {
                pause: poll - just,
                on_finished_delivery: false
            })
        );
        // Waiting for half the slots: a finished delivery is worth a look.
        assert_eq!(
            wait_after(false, true, Found::All, true, 5, just, poll),
            Some(Wait {
                pause: CLAIM_WAIT - just,
                on_finished_delivery: true
            })
        );
        // Every slot busy: a finished delivery, whatever the time since the last claim.
        assert_eq!(
            wait_after(false, true, Found::All, true, 0, CLAIM_WAIT * 3, poll),
            Some(Wait {
                pause: poll,
                on_finished_delivery: true
            })
        );
        // Nothing in flight, nothing due: the idle poll.
        assert_eq!(
            wait_after(true, true, Found::Nothing, false, 64, Duration::ZERO, poll),
            Some(Wait {
                pause: poll,
                on_finished_delivery: false
            })
        );
    }

    #[test]
    fn handed_off_tasks_do_not_put_off_the_next_claim() {
        let poll = Duration::from_millis(100);
        // Woken by a handoff 30 ms after a claim that drained the queue: the next claim is
        // still due CLAIM_WAIT after that one (the idle poll after one that found nothing),
        // not after this wake.
        let since = Duration::from_millis(30);
        assert_eq!(
            wait_after(false, true, Found::Fewer, true, 40, since, poll),
            Some(Wait {
                pause: CLAIM_WAIT - since,
                on_finished_delivery: false
            })
        );
        assert_eq!(
            wait_after(false, true, Found::Nothing, true, 40, since, poll),
            Some(Wait {
                pause: poll - since,
                on_finished_delivery: false
            })
        );
        // Its time has come: no wait, and the next turn claims.
        assert_eq!(
            wait_after(false, true, Found::Nothing, true, 40, poll * 2, poll),
            Some(Wait {
                pause: Duration::ZERO,
                on_finished_delivery: false
            })
        );
        assert!(claim_now(40, 64, 64, poll * 2));
        // And it claims then even if a handoff, not the timer, is what woke it.
        assert!(!claim_due(Found::Nothing, since, poll));
        assert!(!claim_due(Found::Fewer, since, poll));
        assert!(claim_due(Found::Fewer, CLAIM_WAIT, poll));
        assert!(claim_due(Found::Nothing, poll, poll));
        assert!(claim_due(Found::All, Duration::ZERO, poll));
    }

    #[test]
    fn claims_wait_for_half_the_deliveries_or_a_short_while() {
        let just = Duration::from_millis(1);
        // Nothing in flight: claim whatever is due, even one task.
        assert!(claim_now(32, 32, 64, just));
        // Deliveries in flight: claim once half of them have finished...
        assert!(!claim_now(3, 32, 64, just));
        assert!(!claim_now(15, 32, 64, just));
        assert!(claim_now(16, 32, 64, just));
        // ...or once the wait is over, so a slow destination holds up no one else.
        assert!(claim_now(1, 32, 64, CLAIM_WAIT));
        // Never with no free slot; never waiting for more than a batch.
        assert!(!claim_now(0, 32, 64, CLAIM_WAIT * 10));
        assert!(claim_now(4, 32, 4, just));
        assert!(claim_now(1, 2, 64, just));
    }
}

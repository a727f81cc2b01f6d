//! The worker: claims due tasks in batches under a lease, sends each order's current state to
//! its destination, and records the outcome — synced, retry later, needs a person, or dead.
//! Several workers (in one process or many, on PostgreSQL) share the queue safely: a task is
//! held by one lease at a time, and a completion is fenced by its lease token.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{TimeDelta, Utc};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::exception::{self, Destination, Problem};
use super::map;
use super::retry::{self, RetryPolicy};
use super::wake::Wake;
use crate::connectors::{Ack, CrmApi, DeliveryError, ErpApi, TransientKind, counting_requests};
use crate::domain::Order;
use crate::store::{AttemptRecord, ClaimedTask, NewException, Store, StoreError};

mod deliver;
mod pace;

use pace::{Found, behind, claim_due, claim_now, idle_wait, wait_after};

/// Tuning of a worker.
#[derive(Clone, Debug)]
pub struct WorkerConfig {
    /// Tasks claimed per batch.
    pub batch: i64,
    /// Deliveries in flight at once.
    pub concurrency: usize,
    /// How long a claim lasts before another worker may take the task over.
    pub lease: Duration,
    /// How long to sleep after a claim that found nothing (work armed in this process, or on
    /// PostgreSQL in another, wakes the worker sooner). Each further claim that finds nothing,
    /// with no delivery in flight, doubles it up to `idle_poll_max`: what an idle queue is polled
    /// for is retries coming due and leases running out, which can wait that long.
    pub idle_poll: Duration,
    /// The longest sleep of an idle worker.
    pub idle_poll_max: Duration,
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
            idle_poll_max: Duration::from_secs(1),
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

impl Destinations {
    /// The fingerprint of the credentials sent to `destination`.
    pub fn credentials(&self, destination: Destination) -> &str {
        match destination {
            Destination::Crm => self.crm.credentials(),
            Destination::Erp => self.erp.credentials(),
        }
    }

    /// Resumes each destination paused for rejected credentials when this process was given
    /// other ones (renewing them is changing `SYNCDESK_CRM_TOKEN` or `SYNCDESK_ERP_TOKEN` and
    /// restarting); a destination paused for the very credentials this process has stays
    /// paused. Returns the destinations resumed.
    pub async fn resume_renewed(&self, store: &Store) -> Result<Vec<Destination>, StoreError> {
        let mut resumed = Vec::new();
        for destination in Destination::ALL {
            if store
                .resume_if_renewed(destination.as_str(), self.credentials(destination))
                .await?
            {
                tracing::info!(
                    destination = destination.as_str(),
                    "destination resumed: it was paused for rejected credentials, and this process has others"
                );
                resumed.push(destination);
            }
        }
        Ok(resumed)
    }
}

/// How often a worker opens snoozed exceptions whose time has come, and resolves those of order
/// states it could not read that a later state has made good.
const SNOOZE_SWEEP: Duration = Duration::from_secs(15);

/// How one delivery went.
enum Delivery {
    Synced(Ack),
    NeedsAction(Problem),
    Failed(DeliveryError),
}

/// A worker over a store and destinations.
#[derive(Clone)]
pub struct Worker {
    store: Store,
    destinations: Destinations,
    config: WorkerConfig,
    wake: Wake,
}

impl Worker {
    /// A worker; `wake` is notified when new work arrives (ingest), to cut latency.
    pub fn new(
        store: Store,
        destinations: Destinations,
        config: WorkerConfig,
        wake: Wake,
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
        // How long to wait after a claim that found nothing: longer after each one in a row.
        let mut idle = self.config.idle_poll;
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
                if let Err(err) = self.store.settle_unread_states().await {
                    tracing::error!(error = %err, "settling unread order states failed");
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
            let claim = (may_claim || claim_due(last, since_claim, idle))
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
                let found = match claimed.len() as i64 {
                    0 => Found::Nothing,
                    n if n < requested => Found::Fewer,
                    _ => Found::All,
                };
                idle = idle_wait(found, last, !running.is_empty(), idle, &self.config);
                last = found;
                let now = Utc::now();
                let oldest_wait = claimed
                    .iter()
                    .map(|task| (now - task.scheduled_at).to_std().unwrap_or_default())
                    .max()
                    .unwrap_or_default();
                self.store.note_claim(behind(found, oldest_wait));
            }
            let none = claimed.is_empty();
            for task in claimed {
                if !self.start(&permits, &mut running, task).await {
                    return;
                }
            }
            // New orders' tasks the ingest leased to this process's workers, in the slots
            // left (`store::handoff`): they need no claim.
            for task in self.store.take_handed_off(permits.available_permits()) {
                if !self.start(&permits, &mut running, task).await {
                    return;
                }
            }
            while running.try_join_next().is_some() {}
            may_claim = true;
            if let Some(wait) = wait_after(
                claim,
                none,
                last,
                !running.is_empty(),
                free,
                last_claim.elapsed(),
                idle,
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
        // Boxed: a delivery's state is ~12 KB, and the runtime copies an unboxed task's whole
        // state when it starts it, when it finishes and when its end is read (three copies per
        // delivery, ~3% of the process's CPU in a profile of the benchmark).
        running.spawn(Box::pin(async move {
            worker.process(task).await;
            drop(permit);
        }));
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
            running.spawn(Box::pin(async move { worker.process(task).await }));
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
        // An operator's edit, for this version or an earlier one, is laid onto the payload
        // computed afresh (`edit::carry`).
        let edit = if edited {
            self.store
                .payload_edit_to_carry(task.store_order_id, &task.destination, version)
                .await?
        } else {
            None
        };
        // A delivery may make several requests, each with its own timeout. All of them end
        // within 40% of the lease: a task starts with at least half its lease left (a claim
        // gives it all; a handed-off task with less is left to the rescue, see
        // `store::handoff`), so the outcome is recorded while the lease is held, and the
        // claims' rescue never starts a second delivery of the same order beside this one.
        let deadline = self.config.lease.mul_f64(0.4);
        let delivering = async {
            match destination {
                Destination::Crm => self.deliver_crm(&order, version, edit.as_ref()).await,
                Destination::Erp => {
                    self.deliver_erp(&order, version, edit.as_ref(), codes, task.claims == 1)
                        .await
                }
            }
        };
        let (delivery, sent) = tokio::time::timeout(deadline, counting_requests(delivering))
            .await
            .unwrap_or_else(|_| (deliver::overran(destination, deadline), 1));
        let delivery = deliver::keepable(destination, delivery);
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
                self.record_failure(task, destination, &order, rec, &err, sent == 0)
                    .await?
            }
        };
        if fenced {
            tracing::warn!("lease lost before completion; the newer lease holder's record stands");
        }
        Ok(())
    }

    /// Records a connector failure; returns true when the lease had been lost. `nothing_sent`:
    /// the delivery sent no request.
    async fn record_failure(
        &self,
        task: &ClaimedTask,
        destination: Destination,
        order: &Order,
        mut rec: AttemptRecord,
        err: &DeliveryError,
        nothing_sent: bool,
    ) -> Result<bool, StoreError> {
        let retry = &self.config.retry;
        match err {
            // Our own limiter held the delivery back before anything went out: the destination
            // had no say, so the attempt is given back rather than spent (a backlog drained at
            // the destination's pace must not dead-letter what it never sent). Held back
            // part-way, it had sent something, and it is a transient failure like any other, so
            // a delivery that could never get all its requests through ends as a dead letter.
            DeliveryError::Transient {
                kind:
                    TransientKind::RateLimited {
                        retry_after,
                        by_destination: false,
                    },
                ..
            } if nothing_sent => {
                let wait = retry::held_back(*retry_after);
                let next_at =
                    Utc::now() + TimeDelta::from_std(wait).unwrap_or(TimeDelta::seconds(60));
                Ok(!self.store.complete_held_back(task, next_at).await?)
            }
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
                let credentials = self.destinations.credentials(destination);
                Ok(!self
                    .store
                    .pause_destination(task, &rec, &new_exception(&problem), credentials)
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
                // Over this run of attempts: not since the version arrived, which may have
                // waited days on a SKU mapping or been retried by hand since.
                let run_started = self
                    .store
                    .run_started_at(task.id, task.attempt)
                    .await?
                    .unwrap_or(rec.started_at);
                let tried_for = Utc::now() - run_started;
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
            kind: TransientKind::Server { status },
            ..
        } => Some(i32::from(*status)),
        DeliveryError::Transient {
            kind:
                TransientKind::RateLimited {
                    by_destination: true,
                    ..
                },
            ..
        } => Some(429),
        DeliveryError::Transient { .. } => None,
    }
}

fn new_exception(problem: &Problem) -> NewException {
    NewException::from(problem)
}

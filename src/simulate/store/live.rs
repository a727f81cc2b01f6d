//! The live traffic loop: new orders arrive at random (a Poisson process at the chosen rate),
//! each order's changes and deliveries are queued for the moment they are due, and deliveries
//! run in the background with a bounded number in flight.

use std::cmp::{Ordering as CmpOrdering, Reverse};
use std::collections::BinaryHeap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::Utc;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::lifecycle::{Generator, Planned};
use super::traffic::Outbox;

/// The longest the loop sleeps without looking at the rate again.
const RATE_CHECK: Duration = Duration::from_secs(1);

/// Something due at a moment.
enum Job {
    /// A new version becomes the store's truth.
    Keep(Value),
    /// A webhook goes out.
    Send(Planned),
}

struct Due {
    at: Instant,
    seq: u64,
    job: Job,
}

impl PartialEq for Due {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}

impl Eq for Due {}

impl PartialOrd for Due {
    fn partial_cmp(&self, other: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(other))
    }
}

impl Ord for Due {
    fn cmp(&self, other: &Self) -> CmpOrdering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

/// Runs until aborted; aborting drops the deliveries in flight with it.
pub(super) async fn run(
    mut generator: Generator,
    outbox: Outbox,
    rate: Arc<AtomicU64>,
    seed: u64,
    concurrency: usize,
) {
    let mut arrivals = StdRng::seed_from_u64(seed ^ 0xa771_7a15_0f0d_e125);
    let limit = Arc::new(Semaphore::new(concurrency.max(1)));
    let mut tasks = JoinSet::new();
    let mut queue: BinaryHeap<Reverse<Due>> = BinaryHeap::new();
    let mut seq = 0_u64;
    let mut push = |queue: &mut BinaryHeap<Reverse<Due>>, at: Instant, job: Job| {
        seq += 1;
        queue.push(Reverse(Due { at, seq, job }));
    };
    let mut last_rate = f64::NAN;
    let mut next_order = Instant::now();
    loop {
        while tasks.try_join_next().is_some() {}
        let now = Instant::now();
        let due = queue
            .peek()
            .map_or(next_order, |Reverse(d)| d.at.min(next_order));
        tokio::time::sleep_until(due.min(now + RATE_CHECK)).await;

        let now = Instant::now();
        let per_second = f64::from_bits(rate.load(Ordering::Relaxed));
        if per_second.to_bits() != last_rate.to_bits() {
            // The rate changed (or this is the start): the next arrival follows the new rate.
            last_rate = per_second;
            next_order = now + gap(&mut arrivals, per_second).min(RATE_CHECK);
        }
        if next_order <= now {
            if per_second > 0.0 {
                let plan = generator.next_order(Utc::now());
                outbox.count(|stats| stats.orders += 1);
                for (at, state) in plan.states {
                    push(&mut queue, now + at, Job::Keep(state));
                }
                for planned in plan.deliveries {
                    push(&mut queue, now + planned.at, Job::Send(planned));
                }
            }
            next_order = now + gap(&mut arrivals, per_second);
        }

        while queue.peek().is_some_and(|Reverse(d)| d.at <= now) {
            let Some(Reverse(due)) = queue.pop() else {
                break;
            };
            match due.job {
                Job::Keep(state) => outbox.keep(&state),
                Job::Send(planned) => {
                    // Waiting here when the receiver is slow holds new work back, so a slow
                    // endpoint sees a steady queue rather than an ever-growing pile of tasks.
                    let Ok(permit) = limit.clone().acquire_owned().await else {
                        return;
                    };
                    let outbox = outbox.clone();
                    tasks.spawn(async move {
                        let _permit = permit;
                        if let Err(err) = outbox.send(&planned).await {
                            let mut failed = 0;
                            outbox.count(|stats| failed = stats.unacknowledged);
                            // The 1st, 10th, 100th… failure: enough to notice, never a flood.
                            if failed.checked_ilog10().is_some_and(|d| 10_u64.pow(d) == failed) {
                                tracing::warn!(error = %err, failed, "simulated store could not deliver webhooks");
                            }
                        }
                    });
                }
            }
        }
    }
}

/// The wait until the next order: exponential with mean `1 / per_second`; a second when
/// paused.
fn gap(rng: &mut StdRng, per_second: f64) -> Duration {
    if per_second.is_nan() || per_second <= 0.0 {
        return RATE_CHECK;
    }
    let u: f64 = rng.r#gen();
    let secs = (-(1.0 - u).ln() / per_second).min(3600.0);
    Duration::try_from_secs_f64(secs).unwrap_or(RATE_CHECK)
}

//! Order traffic: orders placed at a steady rate (live, for the demo) or a fixed number as fast
//! as the receiver allows (a burst, for benchmarks and tests). Each change is written to the
//! store's [`OrderBook`] when it happens and announced by webhooks delivered as Shopify
//! delivers them.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;
use tokio::sync::Semaphore;
use tokio::task::{JoinHandle, JoinSet};

use super::book::OrderBook;
use super::lifecycle::{Generator, Kind, Misbehaviour, Planned};
use super::sender::{SendError, WebhookSender};

/// Orders placed per unit of time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    per_second: f64,
}

impl Rate {
    /// `n` orders a second.
    pub fn per_second(n: f64) -> Rate {
        Rate {
            per_second: if n.is_finite() { n.max(0.0) } else { 0.0 },
        }
    }

    /// `n` orders a minute.
    pub fn per_minute(n: f64) -> Rate {
        Rate::per_second(n / 60.0)
    }

    /// Orders a second.
    pub fn orders_per_second(self) -> f64 {
        self.per_second
    }
}

impl FromStr for Rate {
    type Err = String;

    /// `"5/s"`, `"30/min"`, `"600/h"`, or a bare number of orders a minute.
    fn from_str(text: &str) -> Result<Rate, String> {
        let text = text.trim();
        let (number, unit) = text.split_once('/').unwrap_or((text, "min"));
        let n: f64 = number
            .trim()
            .parse()
            .ok()
            .filter(|n: &f64| n.is_finite() && *n >= 0.0)
            .ok_or_else(|| format!("{text:?} is not a rate like 5/s or 30/min"))?;
        match unit.trim() {
            "s" | "sec" | "second" => Ok(Rate::per_second(n)),
            "m" | "min" | "minute" => Ok(Rate::per_minute(n)),
            "h" | "hour" => Ok(Rate::per_second(n / 3600.0)),
            other => Err(format!("{other:?} is not a unit: use s, min or h")),
        }
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.per_second >= 1.0 {
            write!(f, "{}/s", self.per_second)
        } else {
            write!(f, "{}/min", self.per_second * 60.0)
        }
    }
}

/// What traffic has sent so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrafficStats {
    /// Orders placed.
    pub orders: u64,
    /// Deliveries by topic (a duplicate counts again; retries of one delivery do not).
    pub by_topic: BTreeMap<String, u64>,
    /// Deliveries by the receiver's `outcome` answer; `"(none)"` for a 2xx without one,
    /// `"unacknowledged"` when every attempt failed.
    pub by_outcome: BTreeMap<String, u64>,
    /// Deliveries that repeated an earlier one (same webhook id).
    pub duplicates: u64,
    /// Deliveries sent after a newer change of the same order.
    pub out_of_order: u64,
    /// Deliveries sent minutes late.
    pub late: u64,
    /// Attempts beyond the first.
    pub retries: u64,
    /// Deliveries never acknowledged.
    pub unacknowledged: u64,
}

impl TrafficStats {
    /// Deliveries sent in all.
    pub fn sent(&self) -> u64 {
        self.by_topic.values().sum()
    }

    fn add(&mut self, other: &TrafficStats) {
        self.orders += other.orders;
        for (topic, n) in &other.by_topic {
            *self.by_topic.entry(topic.clone()).or_default() += n;
        }
        for (outcome, n) in &other.by_outcome {
            *self.by_outcome.entry(outcome.clone()).or_default() += n;
        }
        self.duplicates += other.duplicates;
        self.out_of_order += other.out_of_order;
        self.late += other.late;
        self.retries += other.retries;
        self.unacknowledged += other.unacknowledged;
    }
}

impl fmt::Display for TrafficStats {
    /// One line: `12 orders, 40 webhooks (applied 30, duplicate 8, …), 1 duplicate, …`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let outcomes: Vec<String> = self
            .by_outcome
            .iter()
            .map(|(outcome, n)| format!("{outcome} {n}"))
            .collect();
        write!(
            f,
            "{} orders, {} webhooks ({}), {} duplicated, {} out of order, {} late, {} retries, \
             {} unacknowledged",
            self.orders,
            self.sent(),
            outcomes.join(", "),
            self.duplicates,
            self.out_of_order,
            self.late,
            self.retries,
            self.unacknowledged
        )
    }
}

/// What a burst sent and what the store now holds because of it.
#[derive(Debug, Clone)]
pub struct BurstReport {
    /// Every order of the burst and its final `updated_at`, by order id: what a complete
    /// sync must end up with.
    pub expected: Vec<(i64, DateTime<Utc>)>,
    /// The burst's deliveries.
    pub stats: TrafficStats,
}

/// A burst in which some webhooks were never acknowledged.
#[derive(Debug, thiserror::Error)]
#[error("{failed} webhooks of the burst were never acknowledged; the first: {first}")]
pub struct BurstError {
    /// How many.
    pub failed: u64,
    /// Why the first failed.
    pub first: SendError,
    /// Everything else about the burst.
    pub report: BurstReport,
}

/// What deliveries share.
#[derive(Debug, Clone)]
pub(super) struct Outbox {
    sender: WebhookSender,
    book: OrderBook,
    stats: Arc<Mutex<TrafficStats>>,
}

impl Outbox {
    pub(super) fn keep(&self, state: &Value) {
        if let Err(err) = self.book.put(state) {
            tracing::warn!(error = %err, "simulated store could not keep an order");
        }
    }

    pub(super) fn count(&self, f: impl FnOnce(&mut TrafficStats)) {
        f(&mut self.stats.lock().unwrap_or_else(PoisonError::into_inner));
    }

    /// Delivers one planned webhook and counts what happened.
    pub(super) async fn send(&self, planned: &Planned) -> Result<(), SendError> {
        let result = self.sender.deliver(&planned.webhook).await;
        self.count(|stats| {
            *stats
                .by_topic
                .entry(planned.webhook.topic.as_str().to_owned())
                .or_default() += 1;
            match planned.kind {
                Kind::OnTime => {}
                Kind::Duplicate => stats.duplicates += 1,
                Kind::OutOfOrder => stats.out_of_order += 1,
                Kind::Late => stats.late += 1,
            }
            let outcome = match &result {
                Ok(delivered) => {
                    stats.retries += u64::from(delivered.attempts.saturating_sub(1));
                    delivered.outcome.as_deref().unwrap_or("(none)")
                }
                Err(SendError::GaveUp { attempts, .. }) => {
                    stats.retries += u64::from(attempts.saturating_sub(1));
                    stats.unacknowledged += 1;
                    "unacknowledged"
                }
                Err(_) => {
                    stats.unacknowledged += 1;
                    "unacknowledged"
                }
            };
            *stats.by_outcome.entry(outcome.to_owned()).or_default() += 1;
        });
        result.map(|_| ())
    }
}

/// A generator of realistic order life cycles for one store and one webhook endpoint.
pub struct Traffic {
    outbox: Outbox,
    seed: u64,
    mix: Misbehaviour,
    start: Option<DateTime<Utc>>,
    concurrency: usize,
    generator: Option<Generator>,
}

impl Traffic {
    /// Live traffic at `rate` from `seed` to `target_webhook_url`, signed with `secret`, for the
    /// store behind `store`; it runs until the handle is dropped.
    pub fn spawn(
        target_webhook_url: url::Url,
        secret: crate::secret::Secret,
        store: &super::StoreHandle,
        rate: Rate,
        seed: u64,
    ) -> Result<TrafficHandle, SendError> {
        let sender =
            WebhookSender::new(target_webhook_url, secret)?.with_shop_domain(store.shop_domain());
        Ok(Traffic::new(sender, store.orders().clone(), seed).run(rate))
    }

    /// Traffic from `seed` through `sender`, recording every change in `orders`; default
    /// misbehaviour, 8 orders in flight at a time.
    pub fn new(sender: WebhookSender, orders: OrderBook, seed: u64) -> Traffic {
        Traffic {
            outbox: Outbox {
                sender,
                book: orders,
                stats: Arc::default(),
            },
            seed,
            mix: Misbehaviour::default(),
            start: None,
            concurrency: 8,
            generator: None,
        }
    }

    /// The same traffic, misbehaving as `mix` says.
    pub fn with_misbehaviour(mut self, mix: Misbehaviour) -> Traffic {
        self.mix = mix;
        self
    }

    /// The same traffic with at most `n` (at least 1) deliveries in flight.
    pub fn with_concurrency(mut self, n: usize) -> Traffic {
        self.concurrency = n.max(1);
        self
    }

    /// Bursts replay the shop's history on its own clock from `start` (by default 2024-10-01;
    /// the clock moves on about an hour per order). Live traffic always uses the wall clock.
    pub fn starting_at(mut self, start: DateTime<Utc>) -> Traffic {
        self.start = Some(start);
        self
    }

    /// Everything sent so far.
    pub fn stats(&self) -> TrafficStats {
        self.outbox
            .stats
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Sends the life cycles of the next `n_orders` orders as fast as the receiver allows
    /// (late deliveries after all others) and returns once every webhook is acknowledged.
    /// Deterministic: the same seed gives the same orders, ids, webhook ids and timestamps.
    pub async fn burst(&mut self, n_orders: usize) -> Result<BurstReport, BurstError> {
        let (seed, start, mix) = (self.seed, self.start, self.mix);
        let generator = self
            .generator
            .get_or_insert_with(|| Generator::replay(seed, start, mix));
        let outbox = Outbox {
            stats: Arc::default(),
            ..self.outbox.clone()
        };
        let limit = Arc::new(Semaphore::new(self.concurrency));
        let mut tasks = JoinSet::new();
        let mut expected = Vec::with_capacity(n_orders);
        let mut late = Vec::new();
        let mut failures = Vec::new();
        for _ in 0..n_orders {
            let plan = generator.next_order(Utc::now());
            expected.push((plan.order_id, plan.final_updated_at));
            let (later, now): (Vec<Planned>, Vec<Planned>) = plan
                .deliveries
                .into_iter()
                .partition(|d| d.kind == Kind::Late);
            late.extend(later);
            let Ok(permit) = limit.clone().acquire_owned().await else {
                break;
            };
            let outbox = outbox.clone();
            let states = plan.states;
            tasks.spawn(async move {
                let _permit = permit;
                replay_order(&outbox, states, now).await
            });
            while let Some(done) = tasks.try_join_next() {
                failures.extend(done.ok().into_iter().flatten());
            }
        }
        outbox.count(|stats| stats.orders += expected.len() as u64);
        while let Some(done) = tasks.join_next().await {
            failures.extend(done.ok().into_iter().flatten());
        }
        for planned in late {
            let Ok(permit) = limit.clone().acquire_owned().await else {
                break;
            };
            let outbox = outbox.clone();
            tasks.spawn(async move {
                let _permit = permit;
                outbox
                    .send(&planned)
                    .await
                    .err()
                    .into_iter()
                    .collect::<Vec<_>>()
            });
        }
        while let Some(done) = tasks.join_next().await {
            failures.extend(done.ok().into_iter().flatten());
        }

        expected.sort_unstable();
        let stats = outbox
            .stats
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        self.outbox.count(|all| all.add(&stats));
        let report = BurstReport { expected, stats };
        let failed = failures.len() as u64;
        match failures.into_iter().next() {
            None => Ok(report),
            Some(first) => Err(BurstError {
                failed,
                first,
                report,
            }),
        }
    }

    /// Starts live traffic at `rate` in the background, on the wall clock; it runs until the
    /// handle is dropped.
    pub fn run(mut self, rate: Rate) -> TrafficHandle {
        let generator = match self.generator.take() {
            Some(mut replay) => {
                replay.use_wall_clock();
                replay
            }
            None => Generator::live(self.seed, self.mix),
        };
        let rate_bits = Arc::new(AtomicU64::new(rate.per_second.to_bits()));
        let stats = self.outbox.stats.clone();
        let task = tokio::spawn(super::live::run(
            generator,
            self.outbox,
            rate_bits.clone(),
            self.seed,
            self.concurrency,
        ));
        TrafficHandle {
            task,
            stats,
            rate: rate_bits,
        }
    }
}

/// Sends one order's deliveries in their planned order, writing each version to the store's
/// book just before the first delivery planned after it; the failures.
async fn replay_order(
    outbox: &Outbox,
    states: Vec<(Duration, Value)>,
    deliveries: Vec<Planned>,
) -> Vec<SendError> {
    let mut states = states.into_iter().peekable();
    let mut failures = Vec::new();
    for planned in deliveries {
        while let Some((_, state)) = states.next_if(|(at, _)| *at <= planned.at) {
            outbox.keep(&state);
        }
        if let Err(err) = outbox.send(&planned).await {
            failures.push(err);
        }
    }
    for (_, state) in states {
        outbox.keep(&state);
    }
    failures
}

/// Live traffic running in the background. Dropping it stops the traffic, deliveries in flight
/// included.
#[derive(Debug)]
pub struct TrafficHandle {
    task: JoinHandle<()>,
    stats: Arc<Mutex<TrafficStats>>,
    rate: Arc<AtomicU64>,
}

impl TrafficHandle {
    /// Everything sent so far.
    pub fn stats(&self) -> TrafficStats {
        self.stats
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The rate new orders are placed at.
    pub fn rate(&self) -> Rate {
        Rate::per_second(f64::from_bits(self.rate.load(Ordering::Relaxed)))
    }

    /// Places new orders at `rate` from now on (0 pauses new orders; orders under way go on).
    pub fn set_rate(&self, rate: Rate) {
        self.rate
            .store(rate.per_second.to_bits(), Ordering::Relaxed);
    }

    /// Stops the traffic.
    pub fn stop(self) {}
}

impl Drop for TrafficHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

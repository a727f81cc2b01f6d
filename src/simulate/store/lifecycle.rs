//! The life of one order, planned when it is placed: what happens to it and when (the store's
//! truth), and when each webhook about it is delivered — which, as with Shopify, is not always
//! once, not always in order and not always on time.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rust_decimal::Decimal;
use serde_json::Value;
use uuid::Uuid;

use super::sender::{Topic, Webhook};
use crate::domain::money::parse_decimal;
use crate::simulate::shopify::{OrderFactory, latest_refund};

/// How often the store misbehaves: each a probability (0..=1) per webhook.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Misbehaviour {
    /// The same webhook (same `X-Shopify-Webhook-Id`) delivered a second time.
    pub duplicate: f64,
    /// Delivered only after the order's next change was delivered.
    pub out_of_order: f64,
    /// Delivered minutes late, after newer states (in a burst: after everything else).
    pub late: f64,
    /// Never delivered at all, as when Shopify gives up on an endpoint: only reconciliation
    /// through the Admin API finds what it said.
    pub lost: f64,
}

impl Default for Misbehaviour {
    /// 3% duplicates, 3% out of order, 2% late, none lost.
    fn default() -> Self {
        Misbehaviour {
            duplicate: 0.03,
            out_of_order: 0.03,
            late: 0.02,
            lost: 0.0,
        }
    }
}

impl Misbehaviour {
    /// A perfectly behaved store.
    pub fn none() -> Misbehaviour {
        Misbehaviour {
            duplicate: 0.0,
            out_of_order: 0.0,
            late: 0.0,
            lost: 0.0,
        }
    }
}

/// Why a delivery is in the plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    OnTime,
    Duplicate,
    OutOfOrder,
    Late,
}

/// One delivery, `at` after the order was placed.
#[derive(Debug, Clone)]
pub(super) struct Planned {
    pub(super) at: Duration,
    pub(super) kind: Kind,
    pub(super) webhook: Webhook,
}

/// An order's whole life.
#[derive(Debug)]
pub(super) struct OrderPlan {
    pub(super) order_id: i64,
    /// The order's latest `updated_at`: what the store ends up holding.
    pub(super) final_updated_at: DateTime<Utc>,
    /// The order's versions and when each becomes the store's truth, oldest first.
    pub(super) states: Vec<(Duration, Value)>,
    /// Every delivery, by `at`.
    pub(super) deliveries: Vec<Planned>,
}

/// Something that happens to an order: its new version (if any) and the webhooks it causes.
struct Happening {
    at: Duration,
    state: Option<Value>,
    webhooks: Vec<(Topic, Value)>,
}

/// An order's life while it is being planned.
struct Life {
    placed: DateTime<Utc>,
    at: Duration,
    last_stamp: Option<DateTime<Utc>>,
    current: Value,
    out: Vec<Happening>,
}

/// Plans orders one after another from a seed.
pub(super) struct Generator {
    factory: OrderFactory,
    rng: StdRng,
    /// Customers met so far, with the `created_at` their record shows.
    customers: HashMap<i64, Value>,
    mix: Misbehaviour,
    /// Live traffic: versions are restamped to the wall clock at the moment they happen. A
    /// burst keeps the factory's own (seeded) clock.
    wall_clock: bool,
}

impl Generator {
    /// Live traffic from `seed`, stamped with the wall clock.
    pub(super) fn live(seed: u64, mix: Misbehaviour) -> Generator {
        Generator::new(OrderFactory::starting_at(seed, Utc::now()), seed, mix, true)
    }

    /// A replayable history from `seed`, on the factory's clock from `start` (or its default).
    pub(super) fn replay(seed: u64, start: Option<DateTime<Utc>>, mix: Misbehaviour) -> Generator {
        let factory = match start {
            Some(start) => OrderFactory::starting_at(seed, start),
            None => OrderFactory::new(seed),
        };
        Generator::new(factory, seed, mix, false)
    }

    fn new(factory: OrderFactory, seed: u64, mix: Misbehaviour, wall_clock: bool) -> Generator {
        Generator {
            factory,
            rng: StdRng::seed_from_u64(seed ^ 0x5eed_5106_7a1f_f1c5),
            customers: HashMap::new(),
            mix,
            wall_clock,
        }
    }

    /// From now on, stamps versions with the wall clock (live traffic after a burst).
    pub(super) fn use_wall_clock(&mut self) {
        self.wall_clock = true;
    }

    /// The next order, placed at `placed` (wall clock), and everything that will happen to it.
    pub(super) fn next_order(&mut self, placed: DateTime<Utc>) -> OrderPlan {
        let happenings = self.happenings(placed);
        let mut states = Vec::new();
        let mut webhooks: Vec<(usize, Duration, Webhook)> = Vec::new();
        for (index, happening) in happenings.into_iter().enumerate() {
            let triggered = placed + chrono::Duration::from_std(happening.at).unwrap_or_default();
            for (n, (topic, payload)) in happening.webhooks.iter().enumerate() {
                // Webhooks caused together leave a moment apart, in the order Shopify sends them.
                let at = happening.at + Duration::from_millis(200 * n as u64);
                let (webhook_id, event_id) = (self.uuid(), self.uuid());
                let webhook = Webhook::with_ids(*topic, payload, webhook_id, event_id, triggered);
                webhooks.push((index, at, webhook));
            }
            if let Some(state) = happening.state {
                states.push((happening.at, state));
            }
        }
        let order_id = states
            .first()
            .and_then(|(_, s)| s.get("id")?.as_i64())
            .unwrap_or_default();
        let final_updated_at = states
            .iter()
            .filter_map(|(_, s)| s.get("updated_at")?.as_str())
            .filter_map(|s| DateTime::parse_from_rfc3339(s).ok())
            .map(|at| at.with_timezone(&Utc))
            .max()
            .unwrap_or(placed);
        let deliveries = self.schedule(&webhooks);
        OrderPlan {
            order_id,
            final_updated_at,
            states,
            deliveries,
        }
    }

    /// What happens to the next order, with probabilities like a real shop's.
    fn happenings(&mut self, placed: DateTime<Utc>) -> Vec<Happening> {
        let mut last_stamp = None;
        if self.wall_clock {
            self.factory.set_clock(placed);
        }
        let order = self.factory.order();
        let mut order = self.restamp(order, placed, Duration::ZERO, &mut last_stamp);
        let mut first = Vec::new();
        let customer_id = order
            .get("customer")
            .and_then(|c| c.get("id"))
            .and_then(Value::as_i64);
        let new_customer = match customer_id {
            Some(id) => self.remember_customer(id, &mut order),
            None => false,
        };
        if new_customer && let Some(customer) = self.customer(&order, placed, Duration::ZERO) {
            // An account made at checkout: Shopify announces the customer first.
            first.push((Topic::CustomersCreate, customer));
        }
        first.push((Topic::OrdersCreate, order.clone()));
        // Captured at checkout: orders/paid follows at once, with the same order.
        let paid_at_checkout = text(&order, "financial_status") == "paid";
        if paid_at_checkout {
            first.push((Topic::OrdersPaid, order.clone()));
        }
        let mut life = Life {
            placed,
            at: Duration::ZERO,
            last_stamp,
            current: order.clone(),
            out: Vec::new(),
        };
        life.out.push(Happening {
            at: Duration::ZERO,
            state: Some(order.clone()),
            webhooks: first,
        });
        if customer_id.is_some() && !new_customer && self.rng.gen_bool(0.5) {
            life.at += self.step();
            if let Some(customer) = self.customer(&order, placed, life.at) {
                life.out.push(Happening {
                    at: life.at,
                    state: None,
                    webhooks: vec![(Topic::CustomersUpdate, customer)],
                });
            }
        }

        if !paid_at_checkout {
            if self.rng.gen_bool(0.8) {
                let next = self.factory.paid(&life.current);
                self.change(&mut life, next, Some(Topic::OrdersPaid));
            } else {
                if self.rng.gen_bool(0.5) {
                    let next = self.factory.cancelled(&life.current);
                    self.change(&mut life, next, Some(Topic::OrdersCancelled));
                }
                return life.out;
            }
        }
        if self.rng.gen_bool(0.06) {
            let next = self.factory.cancelled(&life.current);
            self.change(&mut life, next, Some(Topic::OrdersCancelled));
            return life.out;
        }
        if self.rng.gen_bool(0.8) {
            if self.rng.gen_bool(0.3) {
                let next = self.factory.partially_fulfilled(&life.current);
                let topic = match text(&next, "fulfillment_status").as_str() {
                    "fulfilled" => Topic::OrdersFulfilled,
                    _ => Topic::OrdersPartiallyFulfilled,
                };
                self.change(&mut life, next, Some(topic));
            }
            if text(&life.current, "fulfillment_status") != "fulfilled" && self.rng.gen_bool(0.85) {
                let next = self.factory.fulfilled(&life.current);
                self.change(&mut life, next, Some(Topic::OrdersFulfilled));
            }
            if self.rng.gen_bool(0.1) {
                let total = parse_decimal(&text(&life.current, "total_price")).unwrap_or_default();
                let share = [20_i64, 35, 50, 100][self.rng.gen_range(0..4)];
                let amount = total * Decimal::from(share) / Decimal::ONE_HUNDRED;
                let next = self.factory.refunded(&life.current, amount);
                self.change(&mut life, next, None);
            }
        }
        life.out
    }

    /// The order changes to `next` a little after the last change; `topic` announces it
    /// (`None`: only the refund it carries does).
    fn change(&mut self, life: &mut Life, next: Value, topic: Option<Topic>) {
        life.at += self.step();
        let next = self.restamp(next, life.placed, life.at, &mut life.last_stamp);
        let mut webhooks: Vec<(Topic, Value)> =
            topic.map(|t| (t, next.clone())).into_iter().collect();
        if refund_count(&next) > refund_count(&life.current)
            && let Some(refund) = latest_refund(&next)
        {
            // A refund comes as refunds/create, then the orders/updated it caused.
            webhooks.push((Topic::RefundsCreate, refund));
            webhooks.push((Topic::OrdersUpdated, next.clone()));
        } else if topic.is_none() || self.rng.gen_bool(0.2) {
            // Subscribers to orders/updated hear of every change once more.
            webhooks.push((Topic::OrdersUpdated, next.clone()));
        }
        life.out.push(Happening {
            at: life.at,
            state: Some(next.clone()),
            webhooks,
        });
        life.current = next;
    }

    /// When each webhook is delivered, misbehaviour included; sorted by time.
    fn schedule(&mut self, webhooks: &[(usize, Duration, Webhook)]) -> Vec<Planned> {
        let mut plan = Vec::new();
        for (i, (happening, at, webhook)) in webhooks.iter().enumerate() {
            let next_change = webhooks[i + 1..]
                .iter()
                .find(|(h, _, _)| h > happening)
                .map(|(_, at, _)| *at);
            if chance(&mut self.rng, self.mix.lost) {
                continue;
            }
            let (when, kind) = if chance(&mut self.rng, self.mix.late) {
                let delay = Duration::from_secs(self.rng.gen_range(60..=300));
                (*at + delay, Kind::Late)
            } else if let Some(next) = next_change
                && chance(&mut self.rng, self.mix.out_of_order)
            {
                (next + Duration::from_millis(300), Kind::OutOfOrder)
            } else {
                (*at, Kind::OnTime)
            };
            plan.push(Planned {
                at: when,
                kind,
                webhook: webhook.clone(),
            });
            if chance(&mut self.rng, self.mix.duplicate) {
                let gap = Duration::from_millis(self.rng.gen_range(500..=8_000));
                plan.push(Planned {
                    at: when + gap,
                    kind: Kind::Duplicate,
                    webhook: webhook.clone(),
                });
            }
        }
        plan.sort_by_key(|p| p.at);
        plan
    }

    /// Whether customer `id` is new. A returning customer keeps the `created_at` first shown:
    /// on the wall clock the factory's own record of it would be a different moment.
    fn remember_customer(&mut self, id: i64, order: &mut Value) -> bool {
        let Some(customer) = order.get_mut("customer").and_then(Value::as_object_mut) else {
            return false;
        };
        let created = customer.get("created_at").cloned().unwrap_or(Value::Null);
        match self.customers.get(&id) {
            Some(first) => {
                if self.wall_clock {
                    customer.insert("created_at".to_owned(), first.clone());
                }
                false
            }
            None => {
                self.customers.insert(id, created);
                true
            }
        }
    }

    /// The pause between two things happening to an order (live traffic spreads an order's
    /// life over a minute or two so the dashboard shows it moving).
    fn step(&mut self) -> Duration {
        Duration::from_millis(self.rng.gen_range(2_000..=20_000))
    }

    fn customer(&mut self, order: &Value, placed: DateTime<Utc>, at: Duration) -> Option<Value> {
        let customer = self.factory.customer_json(order)?;
        let mut floor = None;
        Some(self.restamp(customer, placed, at, &mut floor))
    }

    /// In live traffic, moves the version the factory just wrote (every timestamp equal to
    /// its `updated_at`) to the wall-clock moment it happens, never at or before the previous
    /// version's second, so versions stay strictly ordered.
    fn restamp(
        &self,
        mut value: Value,
        placed: DateTime<Utc>,
        at: Duration,
        last: &mut Option<DateTime<Utc>>,
    ) -> Value {
        if !self.wall_clock {
            return value;
        }
        let Some(old) = value
            .get("updated_at")
            .and_then(Value::as_str)
            .map(str::to_owned)
        else {
            return value;
        };
        let Ok(parsed) = DateTime::parse_from_rfc3339(&old) else {
            return value;
        };
        let wanted = placed + chrono::Duration::from_std(at).unwrap_or_default();
        let mut when = DateTime::from_timestamp(wanted.timestamp(), 0).unwrap_or(wanted);
        if let Some(previous) = *last
            && when <= previous
        {
            when = previous + chrono::Duration::seconds(1);
        }
        *last = Some(when);
        let new = when
            .with_timezone(parsed.offset())
            .to_rfc3339_opts(SecondsFormat::Secs, false);
        replace_strings(&mut value, &old, &new);
        value
    }

    /// A version-4 UUID from the seeded generator, so a seed replays the same ids.
    fn uuid(&mut self) -> Uuid {
        uuid::Builder::from_random_bytes(self.rng.r#gen()).into_uuid()
    }
}

/// True with probability `p` (anything not in 0..=1 counts as never or always).
fn chance(rng: &mut StdRng, p: f64) -> bool {
    rng.r#gen::<f64>() < p
}

fn replace_strings(value: &mut Value, old: &str, new: &str) {
    match value {
        Value::String(s) if s == old => *s = new.to_owned(),
        Value::Array(items) => items.iter_mut().for_each(|v| replace_strings(v, old, new)),
        Value::Object(map) => map.values_mut().for_each(|v| replace_strings(v, old, new)),
        _ => {}
    }
}

fn text(order: &Value, key: &str) -> String {
    order
        .get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

fn refund_count(order: &Value) -> usize {
    order
        .get("refunds")
        .and_then(Value::as_array)
        .map_or(0, Vec::len)
}

#[cfg(test)]
mod clock_tests {
    use super::*;

    /// Live traffic runs for months: its factory's own clock must not run ahead with every
    /// order (about a day each), which took it past the year 9999, where timestamps stop
    /// parsing, after some weeks at a brisk rate.
    #[test]
    fn live_traffic_keeps_the_factory_near_the_wall_clock() {
        let mut live = Generator::live(3, Misbehaviour::default());
        let now = Utc::now();
        for _ in 0..2_000 {
            live.happenings(now);
        }
        let ahead = live.factory.clock() - now;
        assert!(ahead < chrono::Duration::days(30), "{ahead}");
    }
}

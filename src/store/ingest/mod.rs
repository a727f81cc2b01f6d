//! Recording store webhooks and applying them to the canonical order, atomically: after the
//! commit, the raw event is durable, the order holds the newest state, and every destination has
//! a task aimed at that state. The steps' decisions are here, shared; their statements run per
//! backend: on SQLite in the writer's group commit ([`sqlite`]), on PostgreSQL in
//! [`apply_delivery`] for refunds and customer records, and for orders' deliveries, written
//! together, in one call of functions that take the same steps ([`postgres`]).

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use sqlx::PgConnection;
use sqlx::types::Json;

mod customer;
mod postgres;
mod sqlite;

pub(crate) use postgres::{Ingests, spawn_pg_writer};

use super::batch::retrying_deadlocks;
use super::writer::not_committed;
use super::{NewException, Store, StoreError};
use crate::domain::shopify::OrderReference;
use crate::domain::{FinancialStatus, Order, Refund, StoreCustomer};

/// The destinations every order is synced to.
pub const DESTINATIONS: [&str; 2] = ["crm", "erp"];

/// A webhook delivery as received (headers already checked).
#[derive(Clone, Debug)]
pub struct Delivery {
    /// `X-Shopify-Webhook-Id`: unique per delivery attempt series.
    pub webhook_id: String,
    /// `X-Shopify-Event-Id`: unique per event.
    pub event_id: Option<String>,
    /// `X-Shopify-Topic`.
    pub topic: String,
    /// `X-Shopify-Shop-Domain`.
    pub shop_domain: Option<String>,
    /// `X-Shopify-API-Version`.
    pub api_version: Option<String>,
    /// `X-Shopify-Triggered-At`.
    pub triggered_at: Option<DateTime<Utc>>,
    /// The raw body, kept for replay.
    pub body: Vec<u8>,
}

/// What the body turned out to hold.
#[derive(Clone, Debug)]
pub enum Payload {
    /// A full order (orders/* topics).
    Order(Box<Order>),
    /// A refund (refunds/create).
    Refund(Box<Refund>),
    /// A customer (customers/*).
    Customer(Box<StoreCustomer>),
    /// A topic SyncDesk does not act on (acknowledged and recorded).
    UnknownTopic,
    /// A known topic that changes nothing by itself; `why` says why. A notice about an order
    /// (orders/edited) names it, so the order's timeline shows it.
    Notice {
        /// Why nothing changes.
        why: &'static str,
        /// The store's id of the order it concerns, if any.
        order: Option<i64>,
    },
    /// A known topic whose body could not be read.
    Unreadable {
        /// Why, naming the field and, often, the value found: it is stored with the webhook
        /// for the operator, and never logged (a value can be an email or a phone number).
        reason: String,
        /// The path of the field at fault, when there is one: what a log line may say.
        field: Option<String>,
        /// Set when the body carried an order's state (orders/* but orders/edited, or
        /// refunds/create), which then reached no destination: an exception is opened for it.
        state: Option<UnreadState>,
    },
}

/// An order's state the store sent and SyncDesk could not read.
#[derive(Clone, Debug)]
pub struct UnreadState {
    /// The order it is about, when that much could be read.
    pub order: Option<OrderReference>,
    /// The exception it opens: the store's, with no task (`Problem::unreadable_webhook`).
    pub exception: NewException,
}

/// What became of a delivery.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A newer state of the order was applied; tasks are armed for `version`.
    Applied {
        /// The store's order id.
        store_order_id: i64,
        /// Our version of the order now.
        version: i64,
        /// Its tasks were leased to this process's workers as they were written: no claim is
        /// needed to start them (see `store::handoff`).
        handed_off: bool,
    },
    /// The same delivery, event, or order state was seen before: nothing applied twice.
    Duplicate,
    /// An older state arrived after a newer one: recorded, not applied. An order's state, or
    /// a customer record older than the customer's details held.
    Superseded {
        /// The store's order id; `None` for a customer record.
        store_order_id: Option<i64>,
    },
    /// Recorded without changing any order (unknown topic, customer record, refund of an order
    /// not seen yet, unreadable body).
    Recorded,
}

impl Outcome {
    /// The word stored in `webhook_events.outcome` and answered to the store.
    pub fn as_str(&self) -> &'static str {
        match self {
            Outcome::Applied { .. } => "applied",
            Outcome::Duplicate => "duplicate",
            Outcome::Superseded { .. } => "superseded",
            Outcome::Recorded => "recorded",
        }
    }
}

/// Arms (or re-aims) the task of every destination at `version`. A synced, dead or blocked task
/// starts afresh; a pending, retrying or running one just gets the new target (a running one is
/// re-armed by its worker on completion, keeping one attempt in flight per order and
/// destination); a skipped one stays skipped.
/// One statement for every destination in [`DESTINATIONS`] (`$1` the order, `$2` the version,
/// `$3` the time).
macro_rules! arm_tasks {
    () => {
        "
INSERT INTO sync_tasks (store_order_id, destination, state, target_version, attempt, scheduled_at, armed_at, updated_at)
VALUES ($1, 'crm', 'pending', $2, 0, $3, $3, $3), ($1, 'erp', 'pending', $2, 0, $3, $3, $3)
ON CONFLICT (store_order_id, destination) DO UPDATE SET
    target_version = excluded.target_version,
    state = CASE WHEN sync_tasks.state IN ('synced', 'dead', 'blocked') THEN 'pending' ELSE sync_tasks.state END,
    attempt = CASE WHEN sync_tasks.state IN ('synced', 'dead', 'blocked') THEN 0 ELSE sync_tasks.attempt END,
    scheduled_at = CASE WHEN sync_tasks.state IN ('synced', 'dead', 'blocked') THEN excluded.scheduled_at ELSE sync_tasks.scheduled_at END,
    armed_at = CASE WHEN sync_tasks.state = 'synced' THEN excluded.armed_at ELSE sync_tasks.armed_at END,
    blocked_on = NULL,
    updated_at = excluded.updated_at"
    };
}
const ARM_TASKS: &str = arm_tasks!();
/// One of the order's SKUs kept, for finding orders by SKU (`$1` the order, `$2` the SKU).
const KEEP_SKU: &str =
    "INSERT INTO order_skus (store_order_id, sku) VALUES ($1, $2) ON CONFLICT DO NOTHING";

/// The order held, and its version: PostgreSQL locks the row, so concurrent refunds of one order
/// apply one after the other; SQLite needs no lock: the transaction already holds the database's
/// single write lock (its first statement was a write).
const LOCK_ORDER_DATA_PG: &str =
    "SELECT data, version FROM orders WHERE store_order_id = $1 FOR UPDATE";
const READ_ORDER_DATA_SQLITE: &str = "SELECT data, version FROM orders WHERE store_order_id = $1";
/// SQLite: the state an order is held at, and its version (see [`READ_ORDER_DATA_SQLITE`]).
const READ_ORDER_SQLITE: &str =
    "SELECT store_updated_at, version FROM orders WHERE store_order_id = $1";

/// A new order at version 1 (`$1`–`$9` its fields, `$10` now); no row when it is known.
const INSERT_ORDER: &str = "INSERT INTO orders (store_order_id, name, store_updated_at, version, customer_id, email, lifecycle,
    currency, total, data, first_seen_at, updated_at)
VALUES ($1, $2, $3, 1, $4, $5, $6, $7, $8, $9, $10, $10)
ON CONFLICT (store_order_id) DO NOTHING RETURNING version";

/// A known order's newer state (`$1`–`$10` bound as [`INSERT_ORDER`]'s, `$11` its version).
const UPDATE_ORDER: &str = "UPDATE orders SET name = $2, store_updated_at = $3, customer_id = COALESCE($4, customer_id),
    email = $5, lifecycle = $6, currency = $7, total = $8, data = $9, updated_at = $10, version = $11
WHERE store_order_id = $1";

/// An order with a refund added (`$2` the version, `$3` the lifecycle, `$4` the order, `$5` now,
/// `$6` [`refund_as_of`]). The state it holds is now as recent as the refund, so a state the
/// store took before the refund (an orders/updated delivered late) is superseded rather than
/// applied over it, which would take the refund back; the orders/updated the store sends with
/// the refund is at least as recent, and is applied.
const UPDATE_ORDER_REFUNDED: &str =
    "UPDATE orders SET version = $2, lifecycle = $3, data = $4, updated_at = $5,
    store_updated_at = CASE WHEN store_updated_at < $6 THEN $6 ELSE store_updated_at END
WHERE store_order_id = $1";

/// How recent an order's state is once a refund is applied to it: just before the refund was
/// made (a microsecond, the finest time PostgreSQL keeps), so that the store's own state of that
/// same second, which carries the refund, is newer.
pub(super) fn refund_as_of(refund: &Refund) -> DateTime<Utc> {
    refund.created_at - chrono::TimeDelta::microseconds(1)
}

/// Opens the exception of an order's state the store sent and SyncDesk could not read (see
/// [`UnreadState`]), unless SyncDesk already holds a state of the order as recent; a second
/// unread state of the same order updates the open one, which then waits for the more recent
/// of the two. `$1` the order (NULL when unknown), `$2` code, `$3` kind, `$4` fingerprint,
/// `$5` message, `$6` action, `$7` fields (JSON), `$8` how recent the unread state was (NULL
/// when unknown), `$9` now. See `Store::settle_unread_states` for how it closes by itself.
const OPEN_UNREAD: &str = "INSERT INTO exceptions (store_order_id, destination, code, kind, fingerprint, message, action, fields,
    status, order_as_of, unread_at, created_at, updated_at)
SELECT $1, 'store', $2, $3, $4, $5, $6, $7, 'open', $8, $9, $9, $9
WHERE NOT EXISTS (SELECT 1 FROM orders WHERE store_order_id = $1 AND store_updated_at >= $8)
ON CONFLICT (fingerprint) WHERE status IN ('open', 'snoozed') AND task_id IS NULL DO UPDATE SET
    message = excluded.message, fields = excluded.fields, updated_at = excluded.updated_at,
    unread_at = excluded.unread_at,
    order_as_of = CASE WHEN exceptions.order_as_of IS NULL OR excluded.order_as_of > exceptions.order_as_of
        THEN COALESCE(excluded.order_as_of, exceptions.order_as_of) ELSE exceptions.order_as_of END";

/// What became of a delivery, kept on its row.
const UPDATE_EVENT: &str = "UPDATE webhook_events SET outcome = $2, store_order_id = $3, order_updated_at = $4, note = $5 WHERE id = $1";

/// A customer's details as held (see `customer`).
const CUSTOMER_DETAILS_AS_OF: &str = "SELECT details_as_of FROM customers WHERE id = $1";

/// Adds a refund to the order it belongs to (once), with the totals and status it implies.
fn apply_refund(order: &mut Order, refund: Refund) {
    for line in &refund.lines {
        if let Some(l) = order
            .lines
            .iter_mut()
            .find(|l| l.line_id == line.line_item_id)
        {
            l.refunded_quantity = l.refunded_quantity.saturating_add(line.quantity);
        }
    }
    // Only money going back changes the payment status: a refund that only restocks (or whose
    // transactions failed) leaves a paid order paid, as the store does.
    if refund.amount.amount > Decimal::ZERO
        && let Ok(total) = order.total_refunded.checked_add(refund.amount)
    {
        order.total_refunded = total;
        order.financial_status = if order.total_refunded.amount >= order.total.amount {
            FinancialStatus::Refunded
        } else {
            FinancialStatus::PartiallyRefunded
        };
    }
    order.refunds.push(refund);
}

/// An order's store id and the `updated_at` of the state a delivery carried.
type OrderRef = (i64, DateTime<Utc>);

/// What a delivery became, the order state it carried, and the note kept with it.
type Applied = (Outcome, Option<OrderRef>, Option<String>);

/// Records a delivery, with the order it concerns (when known from the body); with
/// `duplicate = FALSE` the partial unique indexes let only the first delivery of a webhook id /
/// event id in (a later one returns no row).
const INSERT_EVENT: &str = "
INSERT INTO webhook_events (webhook_id, event_id, topic, shop_domain, api_version, triggered_at,
    received_at, body, duplicate, outcome, note, store_order_id, order_updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
ON CONFLICT DO NOTHING RETURNING id";

/// The order a delivery carries a state of, presumed applied when its row is first written (the
/// usual end), so that only another end rewrites the row.
fn presumed(payload: &Payload) -> Option<OrderRef> {
    match payload {
        Payload::Order(order) => Some((order.store_order_id, order.updated_at)),
        _ => None,
    }
}

/// A delivery's outcome as first written: applied for an order, accepted for anything else.
fn presumed_outcome(presumed: Option<OrderRef>) -> &'static str {
    if presumed.is_some() {
        "applied"
    } else {
        "accepted"
    }
}

/// Why a delivery of a topic SyncDesk does not act on changed nothing.
const UNUSED_TOPIC: &str = "topic not used by SyncDesk";

/// Why a later delivery of a webhook id or event id changed nothing.
const SEEN_BEFORE: &str = "webhook or event id seen before";

/// A customer record's outcome, given how recent the details held are.
fn customer_record(customer: &StoreCustomer, held: Option<DateTime<Utc>>) -> Applied {
    match held {
        // Kept as received, but a record older than the details held changed nothing.
        Some(held) if held > customer.updated_at => (
            Outcome::Superseded {
                store_order_id: None,
            },
            None,
            Some(format!(
                "older than the customer's details held ({})",
                held.to_rfc3339()
            )),
        ),
        _ => (Outcome::Recorded, None, None),
    }
}

/// A known order's delivered state against the one held (`stored_at`, `version`): `Ok` with
/// the version to write when newer, else what it is answered.
fn known_order(order: &Order, stored_at: DateTime<Utc>, version: i64) -> Result<i64, Applied> {
    let key = Some((order.store_order_id, order.updated_at));
    if order.updated_at > stored_at {
        Ok(version + 1)
    } else if order.updated_at == stored_at {
        Err((
            Outcome::Duplicate,
            key,
            Some("this order state was received before".into()),
        ))
    } else {
        Err((
            Outcome::Superseded {
                store_order_id: Some(order.store_order_id),
            },
            key,
            Some(format!(
                "older than the state applied ({})",
                stored_at.to_rfc3339()
            )),
        ))
    }
}

/// A refund against the order held, when there is one: `Ok` with the order refunded and its
/// version to write, else what it is answered.
fn refunded(stored: Option<(Order, i64)>, refund: &Refund) -> Result<(Order, i64), Applied> {
    match stored {
        None => Err((
            Outcome::Recorded,
            None,
            Some("refund of an order not received yet".into()),
        )),
        Some((order, _))
            if order
                .refunds
                .iter()
                .any(|r| r.refund_id == refund.refund_id) =>
        {
            Err((
                Outcome::Duplicate,
                None,
                Some("refund already part of the order".into()),
            ))
        }
        // Money in another currency than the order's cannot be added to it (a money-only
        // refund of a multi-currency shop names only its transaction's currency): kept, said,
        // and left to the order's next state from the store, which carries it.
        Some((order, _)) if refund.amount.currency != order.total_refunded.currency => Err((
            Outcome::Recorded,
            None,
            Some(format!(
                "refund in {} of an order in {}: not applied; the order's next state from the store carries it",
                refund.amount.currency, order.total_refunded.currency
            )),
        )),
        Some((mut order, version)) => {
            apply_refund(&mut order, refund.clone());
            Ok((order, version + 1))
        }
    }
}

/// An order applied at `version`.
fn applied(store_order_id: i64, version: i64, key: Option<OrderRef>) -> Applied {
    (
        Outcome::Applied {
            store_order_id,
            version,
            handed_off: false,
        },
        key,
        None,
    )
}

/// A delivery recorded without changing any order, with why.
fn recorded(note: impl Into<String>) -> Applied {
    (Outcome::Recorded, None, Some(note.into()))
}

/// What a delivery's row ends as: the binds of [`UPDATE_EVENT`] after the id.
struct EventEnd {
    outcome: &'static str,
    store_order_id: Option<i64>,
    order_updated_at: Option<DateTime<Utc>>,
    note: Option<String>,
}

/// The row of a delivery as it ends, when it differs from the one first written.
fn event_end(payload: &Payload, (outcome, order_ref, note): &Applied) -> Option<EventEnd> {
    if presumed(payload).is_some() && matches!(outcome, Outcome::Applied { .. }) && note.is_none() {
        // Recorded so already.
        return None;
    }
    let store_order_id = match outcome {
        Outcome::Applied { store_order_id, .. }
        | Outcome::Superseded {
            store_order_id: Some(store_order_id),
        } => Some(*store_order_id),
        _ => order_ref.map(|(id, _)| id).or(match payload {
            Payload::Notice { order, .. } => *order,
            // A refund that changed nothing (already part of the order, of an order not received
            // yet, in another currency) is still shown in its order's timeline.
            Payload::Refund(refund) => Some(refund.order_id),
            // So is an order's state that could not be read, when its order is known.
            Payload::Unreadable {
                state:
                    Some(UnreadState {
                        order: Some(order), ..
                    }),
                ..
            } => Some(order.order_id),
            _ => None,
        }),
    };
    Some(EventEnd {
        outcome: outcome.as_str(),
        store_order_id,
        order_updated_at: order_ref.map(|(_, at)| at),
        note: note.clone(),
    })
}

impl Store {
    /// Records `delivery` and applies `payload` to the canonical order, atomically: on SQLite in
    /// the writer's next group commit ([`sqlite`]), on PostgreSQL in a transaction of its own
    /// (an order's delivery with others that queued, in one call of a function that runs the
    /// same steps: see [`postgres`]).
    pub async fn ingest(
        &self,
        delivery: Delivery,
        payload: Payload,
    ) -> Result<Outcome, StoreError> {
        let now = Utc::now();
        if self.writer.is_some() {
            return self.ingest_on_writer(delivery, payload, now).await;
        }
        match (&self.ingests, payload) {
            (Some(ingests), Payload::Order(order)) => {
                ingests
                    .submit(postgres::OrderDelivery {
                        delivery,
                        order,
                        now,
                    })
                    .await
            }
            (_, payload) => {
                let super::Db::Postgres(pool) = &self.db else {
                    return Err(not_committed("SQLite's writer is not running"));
                };
                // PostgreSQL may undo the transaction to break a deadlock: nothing of it was
                // written, so it is written again rather than failed.
                retrying_deadlocks(|| async {
                    let mut tx = pool.begin().await?;
                    let done = apply_delivery(&mut tx, &delivery, &payload, &now).await?;
                    tx.commit().await?;
                    Ok::<_, StoreError>(done)
                })
                .await
            }
        }
    }
}

impl Store {
    /// [`Store::ingest`] on SQLite's writer ([`sqlite::ingest`]).
    async fn ingest_on_writer(
        &self,
        delivery: Delivery,
        payload: Payload,
        now: DateTime<Utc>,
    ) -> Result<Outcome, StoreError> {
        let Some(writer) = &self.writer else {
            return Err(not_committed("SQLite's writer is not running"));
        };
        sqlite::ingest(self, writer, delivery, payload, now).await
    }
}

/// The SKUs an order's lines carry, each once, for finding orders (and their exceptions) by SKU.
fn order_skus(order: &Order) -> Vec<&str> {
    let mut skus: Vec<&str> = order
        .lines
        .iter()
        .filter_map(|l| l.sku.as_ref().map(|s| s.as_str()))
        .collect();
    skus.sort_unstable();
    skus.dedup();
    skus
}

/// PostgreSQL: records a delivery and applies its payload (a refund, a customer record or
/// anything that changes no order; orders' deliveries are written together by [`postgres`]),
/// inside the caller's transaction. SQLite's is [`sqlite::apply_delivery`], the same steps.
async fn apply_delivery(
    tx: &mut PgConnection,
    delivery: &Delivery,
    payload: &Payload,
    now: &DateTime<Utc>,
) -> Result<Outcome, StoreError> {
    let now = *now;
    // The insert comes first; the partial unique indexes make the first delivery of a webhook
    // id / event id win, also between concurrent requests.
    let presumed = presumed(payload);
    let insert = |duplicate: bool| {
        sqlx::query_scalar::<_, i64>(INSERT_EVENT)
            .bind(&delivery.webhook_id)
            .bind(delivery.event_id.as_deref())
            .bind(&delivery.topic)
            .bind(delivery.shop_domain.as_deref())
            .bind(delivery.api_version.as_deref())
            .bind(delivery.triggered_at)
            .bind(now)
            .bind(&delivery.body)
            .bind(duplicate)
            .bind(if duplicate {
                "duplicate"
            } else {
                presumed_outcome(presumed)
            })
            .bind(duplicate.then_some(SEEN_BEFORE))
            .bind(presumed.map(|(id, _)| id))
            .bind(presumed.map(|(_, at)| at))
    };
    let Some(event_id) = insert(false).fetch_optional(&mut *tx).await? else {
        // Kept too, for the duplicate rate and the order's timeline (the partial indexes only
        // cover first deliveries, so this insert never conflicts).
        insert(true).fetch_optional(&mut *tx).await?;
        return Ok(Outcome::Duplicate);
    };

    let ended: Applied = match payload {
        Payload::Customer(record) => {
            let linked =
                customer::link_pg(tx, &record.customer_ref(), record.updated_at, now).await?;
            let held: Option<DateTime<Utc>> = match linked {
                Some(id) => {
                    sqlx::query_scalar(CUSTOMER_DETAILS_AS_OF)
                        .bind(id)
                        .fetch_one(&mut *tx)
                        .await?
                }
                None => None,
            };
            customer_record(record, held)
        }
        Payload::Order(_) => {
            // Orders' deliveries are written together (see `postgres`); never here.
            return Err(not_committed(
                "an order's delivery goes to the ingest writer",
            ));
        }
        Payload::Refund(refund) => {
            let stored: Option<(Json<Order>, i64)> = sqlx::query_as(LOCK_ORDER_DATA_PG)
                .bind(refund.order_id)
                .fetch_optional(&mut *tx)
                .await?;
            match refunded(
                stored.map(|(Json(order), version)| (order, version)),
                refund,
            ) {
                Ok((order, version)) => {
                    sqlx::query(UPDATE_ORDER_REFUNDED)
                        .bind(refund.order_id)
                        .bind(version)
                        .bind(order.lifecycle().as_str())
                        .bind(Json(&order))
                        .bind(now)
                        .bind(refund_as_of(refund))
                        .execute(&mut *tx)
                        .await?;
                    applied(refund.order_id, version, None)
                }
                Err(ended) => ended,
            }
        }
        Payload::UnknownTopic => recorded(UNUSED_TOPIC),
        Payload::Notice { why, .. } => recorded(*why),
        Payload::Unreadable { reason, state, .. } => {
            if let Some(state) = state {
                let order = state.order;
                let e = &state.exception;
                sqlx::query(OPEN_UNREAD)
                    .bind(order.map(|o| o.order_id))
                    .bind(&e.code)
                    .bind(e.kind)
                    .bind(&e.fingerprint)
                    .bind(&e.message)
                    .bind(&e.action)
                    .bind(Json(&e.fields))
                    .bind(order.and_then(|o| o.as_of))
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
            }
            recorded(reason.as_str())
        }
    };

    if let Outcome::Applied {
        store_order_id,
        version,
        ..
    } = &ended.0
    {
        // A refund: the order's SKUs are as they were.
        sqlx::query(ARM_TASKS)
            .bind(store_order_id)
            .bind(version)
            .bind(now)
            .execute(&mut *tx)
            .await?;
    }
    if let Some(end) = event_end(payload, &ended) {
        sqlx::query(UPDATE_EVENT)
            .bind(event_id)
            .bind(end.outcome)
            .bind(end.store_order_id)
            .bind(end.order_updated_at)
            .bind(end.note)
            .execute(&mut *tx)
            .await?;
    }
    Ok(ended.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_statement_arms_every_destination() {
        for destination in DESTINATIONS {
            assert!(ARM_TASKS.contains(&format!("($1, '{destination}', 'pending'")));
        }
        assert_eq!(
            ARM_TASKS.matches("'pending', $2").count(),
            DESTINATIONS.len()
        );
        // PostgreSQL runs this statement for refunds, and arms orders' tasks inside
        // `syncdesk_ingest_orders` (migration 0025, which replaced 0019's).
        let ingest =
            include_str!("../../../migrations/postgres/0025_customer_details_versioned.sql");
        // A new order's tasks, in the loop and written together: one per destination of this
        // list.
        let new_order = format!(
            "FROM (VALUES {}) AS ",
            DESTINATIONS.map(|d| format!("('{d}')")).join(", ")
        );
        assert_eq!(ingest.matches(&new_order).count(), 2, "{new_order}");
        for destination in DESTINATIONS {
            // A known order's.
            assert!(ingest.contains(&format!(
                "(order_id, '{destination}', 'pending', syncdesk_ingest_orders.version"
            )));
        }
    }
}

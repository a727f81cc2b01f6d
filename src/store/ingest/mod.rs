//! Recording store webhooks and applying them to the canonical order, atomically: after the
//! commit, the raw event is durable, the order holds the newest state, and every destination has
//! a task aimed at that state. SQLite runs [`apply_delivery`] in its writer's group commit;
//! PostgreSQL runs it for refunds and customer records, and writes orders' deliveries together
//! in one call of functions that take the same steps ([`postgres`]).

use chrono::{DateTime, Utc};
use sqlx::types::Json;

mod customer;
mod postgres;

pub(crate) use postgres::{Ingests, spawn_pg_writer};

use super::{Store, StoreError, hot_write, on_connection};
use crate::domain::{CustomerRef, FinancialStatus, Order, Refund, StoreCustomer};
use customer::{CustomerRow, LINK_CUSTOMER_PG, link_customer};

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
    /// A known topic whose body could not be read; the reason names the field.
    Unreadable(String),
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
/// [`ARM_TASKS`] and the order's SKUs kept, on PostgreSQL: one call of the function migration
/// 0012 defines with the same rules. The SKUs come as a JSON array (`$4`): this code is compiled
/// for SQLite too, which binds no arrays.
const ARM_TASKS_AND_KEEP_SKUS_PG: &str =
    "SELECT syncdesk_arm_tasks($1, $2, $3, ARRAY(SELECT jsonb_array_elements_text($4)))";

// PostgreSQL locks the order row so concurrent versions of one order apply one after the
// other; SQLite needs no lock: the transaction already holds the database's single write lock
// (its first statement was a write).
const LOCK_ORDER_PG: &str =
    "SELECT store_updated_at, version FROM orders WHERE store_order_id = $1 FOR UPDATE";
const LOCK_ORDER_SQLITE: &str =
    "SELECT store_updated_at, version FROM orders WHERE store_order_id = $1";
const LOCK_ORDER_DATA_PG: &str =
    "SELECT data, version FROM orders WHERE store_order_id = $1 FOR UPDATE";
const LOCK_ORDER_DATA_SQLITE: &str = "SELECT data, version FROM orders WHERE store_order_id = $1";

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
    if let Ok(total) = order.total_refunded.checked_add(refund.amount) {
        order.total_refunded = total;
    }
    order.financial_status = if order.total_refunded.amount >= order.total.amount {
        FinancialStatus::Refunded
    } else {
        FinancialStatus::PartiallyRefunded
    };
    order.refunds.push(refund);
}

/// An order's store id and the `updated_at` of the state a delivery carried.
type OrderRef = (i64, DateTime<Utc>);

/// Records a delivery, with the order it concerns (when known from the body); with
/// `duplicate = FALSE` the partial unique indexes let only the first delivery of a webhook id /
/// event id in (a later one returns no row).
const INSERT_EVENT: &str = "
INSERT INTO webhook_events (webhook_id, event_id, topic, shop_domain, api_version, triggered_at,
    received_at, body, duplicate, outcome, note, store_order_id, order_updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
ON CONFLICT DO NOTHING RETURNING id";

impl Store {
    /// Records `delivery` and applies `payload` to the canonical order, atomically: on SQLite in
    /// the writer's next group commit, on PostgreSQL in a transaction of its own (an order's
    /// delivery with others that queued, in one call of a function that runs the same steps:
    /// see [`postgres`]).
    pub async fn ingest(
        &self,
        delivery: Delivery,
        payload: Payload,
    ) -> Result<Outcome, StoreError> {
        let now = Utc::now();
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
            (_, payload) => hot_write!(self, apply_delivery(delivery, payload, now)),
        }
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

/// SQLite: the insert of `count` SKUs of the order `$1`, bound from `$first` on.
fn keep_skus_sql(count: usize, first: usize) -> String {
    let rows: Vec<String> = (first..first + count)
        .map(|n| format!("($1, ${n})"))
        .collect();
    format!(
        "INSERT INTO order_skus (store_order_id, sku) VALUES {} ON CONFLICT DO NOTHING",
        rows.join(", ")
    )
}

on_connection! {
    /// Records a delivery and applies its payload, inside the caller's transaction.
    fn apply_delivery(tx, pg, delivery: &Delivery, payload: &Payload, now: &DateTime<Utc>) -> Result<Outcome, StoreError> {
        let now = *now;
        // The insert comes first: on SQLite it takes the write lock at once, so the reads
        // below never race another writer; the partial unique indexes make the first
        // delivery of a webhook id / event id win, also between concurrent requests. An order
        // is recorded as applied, the usual end, so that only another end rewrites the row.
        let presumed = match payload {
            Payload::Order(order) => Some((order.store_order_id, order.updated_at)),
            _ => None,
        };
        let event_id: Option<i64> = sqlx::query_scalar(INSERT_EVENT)
            .bind(&delivery.webhook_id)
            .bind(delivery.event_id.as_deref())
            .bind(&delivery.topic)
            .bind(delivery.shop_domain.as_deref())
            .bind(delivery.api_version.as_deref())
            .bind(delivery.triggered_at)
            .bind(now)
            .bind(&delivery.body)
            .bind(false)
            .bind(if presumed.is_some() { "applied" } else { "accepted" })
            .bind(None::<&str>)
            .bind(presumed.map(|(id, _)| id))
            .bind(presumed.map(|(_, at)| at))
            .fetch_optional(&mut *tx)
            .await?;
        let Some(event_id) = event_id else {
            // Kept too, for the duplicate rate and the order's timeline (the partial
            // indexes only cover first deliveries, so this insert never conflicts).
            sqlx::query_scalar::<_, i64>(INSERT_EVENT)
                .bind(&delivery.webhook_id)
                .bind(delivery.event_id.as_deref())
                .bind(&delivery.topic)
                .bind(delivery.shop_domain.as_deref())
                .bind(delivery.api_version.as_deref())
                .bind(delivery.triggered_at)
                .bind(now)
                .bind(&delivery.body)
                .bind(true)
                .bind("duplicate")
                .bind(Some("webhook or event id seen before"))
                .bind(presumed.map(|(id, _)| id))
                .bind(presumed.map(|(_, at)| at))
                .fetch_optional(&mut *tx)
                .await?;
            return Ok(Outcome::Duplicate);
        };

        let (outcome, order_ref, note): (Outcome, Option<OrderRef>, Option<String>) = match payload {
            Payload::UnknownTopic => (Outcome::Recorded, None, Some("topic not used by SyncDesk".into())),
            Payload::Notice { why, .. } => (Outcome::Recorded, None, Some((*why).to_string())),
            Payload::Unreadable(reason) => (Outcome::Recorded, None, Some(reason.clone())),
            Payload::Customer(customer) => {
                let linked: Option<i64> = link_customer!(tx, pg, &customer.customer_ref(), customer.updated_at, now);
                // Kept as received, but a record older than the details held changed nothing.
                let held: Option<DateTime<Utc>> = match linked {
                    Some(id) => sqlx::query_scalar("SELECT details_as_of FROM customers WHERE id = $1")
                        .bind(id)
                        .fetch_one(&mut *tx)
                        .await?,
                    None => None,
                };
                match held {
                    Some(held) if held > customer.updated_at => (
                        Outcome::Superseded { store_order_id: None },
                        None,
                        Some(format!("older than the customer's details held ({})", held.to_rfc3339())),
                    ),
                    _ => (Outcome::Recorded, None, None),
                }
            }
            Payload::Order(order) => {
                let customer_id = match &order.customer {
                    Some(c) => link_customer!(tx, pg, c, order.customer_details_as_of(), now),
                    None => None,
                };
                let data = Json(order.as_ref());
                let inserted: Option<i64> = sqlx::query_scalar(
                    "INSERT INTO orders (store_order_id, name, store_updated_at, version, customer_id, email, lifecycle,
                         currency, total, data, first_seen_at, updated_at)
                     VALUES ($1, $2, $3, 1, $4, $5, $6, $7, $8, $9, $10, $10)
                     ON CONFLICT (store_order_id) DO NOTHING RETURNING version",
                )
                .bind(order.store_order_id)
                .bind(&order.name)
                .bind(order.updated_at)
                .bind(customer_id)
                .bind(order.email.as_ref().map(|e| e.as_str()))
                .bind(order.lifecycle().as_str())
                .bind(order.currency.as_str())
                .bind(order.total.amount.to_string())
                .bind(data)
                .bind(now)
                .fetch_optional(&mut *tx)
                .await?;
                let key = Some((order.store_order_id, order.updated_at));
                match inserted {
                    Some(version) => (Outcome::Applied { store_order_id: order.store_order_id, version, handed_off: false }, key, None),
                    None => {
                        // PostgreSQL: lock the row so concurrent versions of one order apply
                        // one after the other. SQLite: this transaction already holds the
                        // database's single write lock.
                        let sql = if pg { LOCK_ORDER_PG } else { LOCK_ORDER_SQLITE };
                        let (stored_at, version): (DateTime<Utc>, i64) =
                            sqlx::query_as(sql).bind(order.store_order_id).fetch_one(&mut *tx).await?;
                        if order.updated_at > stored_at {
                            let version = version + 1;
                            sqlx::query(
                                "UPDATE orders SET name = $2, store_updated_at = $3, version = $4, customer_id = COALESCE($5, customer_id),
                                     email = $6, lifecycle = $7, currency = $8, total = $9, data = $10, updated_at = $11
                                 WHERE store_order_id = $1",
                            )
                            .bind(order.store_order_id)
                            .bind(&order.name)
                            .bind(order.updated_at)
                            .bind(version)
                            .bind(customer_id)
                            .bind(order.email.as_ref().map(|e| e.as_str()))
                            .bind(order.lifecycle().as_str())
                            .bind(order.currency.as_str())
                            .bind(order.total.amount.to_string())
                            .bind(data)
                            .bind(now)
                            .execute(&mut *tx)
                            .await?;
                            (Outcome::Applied { store_order_id: order.store_order_id, version, handed_off: false }, key, None)
                        } else if order.updated_at == stored_at {
                            (Outcome::Duplicate, key, Some("this order state was received before".into()))
                        } else {
                            (
                                Outcome::Superseded { store_order_id: Some(order.store_order_id) },
                                key,
                                Some(format!("older than the state applied ({})", stored_at.to_rfc3339())),
                            )
                        }
                    }
                }
            }
            Payload::Refund(refund) => {
                let sql = if pg { LOCK_ORDER_DATA_PG } else { LOCK_ORDER_DATA_SQLITE };
                let stored: Option<(Json<Order>, i64)> =
                    sqlx::query_as(sql).bind(refund.order_id).fetch_optional(&mut *tx).await?;
                match stored {
                    None => (Outcome::Recorded, None, Some("refund of an order not received yet".into())),
                    Some((Json(mut order), version)) => {
                        if order.refunds.iter().any(|r| r.refund_id == refund.refund_id) {
                            (Outcome::Duplicate, None, Some("refund already part of the order".into()))
                        } else {
                            let version = version + 1;
                            apply_refund(&mut order, refund.as_ref().clone());
                            sqlx::query(
                                "UPDATE orders SET version = $2, lifecycle = $3, data = $4, updated_at = $5 WHERE store_order_id = $1",
                            )
                            .bind(refund.order_id)
                            .bind(version)
                            .bind(order.lifecycle().as_str())
                            .bind(Json(&order))
                            .bind(now)
                            .execute(&mut *tx)
                            .await?;
                            (Outcome::Applied { store_order_id: refund.order_id, version, handed_off: false }, None, None)
                        }
                    }
                }
            }
        };

        if let Outcome::Applied { store_order_id, version, .. } = &outcome {
            let skus = match payload {
                Payload::Order(order) => order_skus(order),
                _ => Vec::new(),
            };
            if pg {
                sqlx::query(ARM_TASKS_AND_KEEP_SKUS_PG)
                    .bind(store_order_id)
                    .bind(version)
                    .bind(now)
                    .bind(Json(&skus))
                    .execute(&mut *tx)
                    .await?;
            } else {
                // The tasks and the order's SKUs (one insert for up to 500) in one call: each call
                // is a hand-off to the connection's thread and back (see `writer`).
                let mut chunks = skus.chunks(500);
                let first = chunks.next().unwrap_or_default();
                let sql = if first.is_empty() {
                    ARM_TASKS.to_string()
                } else {
                    format!("{ARM_TASKS};\n{}", keep_skus_sql(first.len(), 4))
                };
                let mut arm = sqlx::query(&sql).bind(store_order_id).bind(version).bind(now);
                for sku in first {
                    arm = arm.bind(*sku);
                }
                arm.execute(&mut *tx).await?;
                for chunk in chunks {
                    let sql = keep_skus_sql(chunk.len(), 2);
                    let mut insert = sqlx::query(&sql).bind(store_order_id);
                    for sku in chunk {
                        insert = insert.bind(*sku);
                    }
                    insert.execute(&mut *tx).await?;
                }
            }
        }
        let store_order_id = match &outcome {
            Outcome::Applied { store_order_id, .. } | Outcome::Superseded { store_order_id: Some(store_order_id) } => {
                Some(*store_order_id)
            }
            _ => order_ref.map(|(id, _)| id).or(match payload {
                Payload::Notice { order, .. } => *order,
                _ => None,
            }),
        };
        if presumed.is_some() && matches!(outcome, Outcome::Applied { .. }) && note.is_none() {
            // Recorded so already.
            return Ok(outcome);
        }
        sqlx::query(
            "UPDATE webhook_events SET outcome = $2, store_order_id = $3, order_updated_at = $4, note = $5 WHERE id = $1",
        )
        .bind(event_id)
        .bind(outcome.as_str())
        .bind(store_order_id)
        .bind(order_ref.map(|(_, at)| at))
        .bind(note)
        .execute(&mut *tx)
        .await?;
        Ok(outcome)
    }
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
        // PostgreSQL arms them in the functions of migrations 0012 (`syncdesk_arm_tasks`, for
        // refunds) and 0025 (inside `syncdesk_ingest_orders`, which replaced 0019's).
        let arm = include_str!("../../../migrations/postgres/0012_ingest_in_one_call.sql");
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
            assert!(arm.contains(&format!(
                "(p_store_order_id, '{destination}', 'pending', p_version"
            )));
            // A known order's.
            assert!(ingest.contains(&format!(
                "(order_id, '{destination}', 'pending', syncdesk_ingest_orders.version"
            )));
        }
    }
}

//! Orders' deliveries on PostgreSQL, written together. `syncdesk_ingest_orders` (migrations
//! 0012 and 0013) runs the steps of [`apply_delivery`](super::apply_delivery) inside the server
//! for every delivery that queued (see `store::batch`), in one call and one transaction: one
//! round trip and one log flush for all of them, where one delivery took ~7 round trips as
//! separate statements.
//!
//! One writer, so two batches never hold each other's rows. A batch that fails is not retried
//! whole: each of its deliveries is written again alone, so the one that fails is answered with
//! its error (the store delivers it again) and the others are recorded.

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use sqlx::types::Json;

use super::{Delivery, Outcome, order_skus};
use crate::domain::{CustomerRef, Order};
use crate::store::StoreError;
use crate::store::batch::{BatchWrite, Batcher, Written, column, retrying_deadlocks};

/// The most deliveries one call carries.
const MAX_BATCH: usize = 64;

/// An order's delivery as received, and when.
pub(crate) struct OrderDelivery {
    pub(crate) delivery: Delivery,
    pub(crate) order: Box<Order>,
    pub(crate) now: DateTime<Utc>,
}

/// Writes the deliveries that queued together.
pub(crate) struct IngestWriter {
    pool: PgPool,
}

/// The queue to the ingest writer.
pub(crate) type Ingests = Batcher<IngestWriter>;

/// Starts the ingest writer on the current runtime.
pub(crate) fn spawn_pg_writer(pool: PgPool) -> Ingests {
    Batcher::spawn(IngestWriter { pool }, MAX_BATCH)
}

impl BatchWrite for IngestWriter {
    type Item = OrderDelivery;
    type Answer = Outcome;

    async fn write(&self, batch: &[OrderDelivery]) -> Written<Outcome> {
        match retrying_deadlocks(|| ingest_together(&self.pool, batch)).await {
            Ok(outcomes) if outcomes.len() == batch.len() => Written {
                answers: batch
                    .iter()
                    .zip(outcomes)
                    .map(|(d, o)| outcome(&d.order, o))
                    .collect(),
                together: true,
            },
            // Each written again alone: only the one the database refuses fails.
            _ => {
                let mut answers = Vec::with_capacity(batch.len());
                for d in batch {
                    let alone = std::slice::from_ref(d);
                    answers.push(
                        match retrying_deadlocks(|| ingest_together(&self.pool, alone)).await {
                            Ok(mut answered) if answered.len() == 1 => {
                                outcome(&d.order, answered.remove(0))
                            }
                            Ok(_) => Err(unexpected("a batch of one answered with another count")),
                            Err(err) => Err(err.into()),
                        },
                    );
                }
                Written {
                    answers,
                    together: false,
                }
            }
        }
    }
}

/// What `syncdesk_ingest_orders` answered for one delivery: the outcome's word and the order's version.
type Answered = (String, Option<i64>);

fn outcome(order: &Order, (word, version): Answered) -> Result<Outcome, StoreError> {
    let store_order_id = order.store_order_id;
    match (word.as_str(), version) {
        ("applied", Some(version)) => Ok(Outcome::Applied {
            store_order_id,
            version,
        }),
        ("duplicate", _) => Ok(Outcome::Duplicate),
        ("superseded", _) => Ok(Outcome::Superseded { store_order_id }),
        (other, _) => Err(unexpected(&format!("an outcome of {other:?}"))),
    }
}

// The order documents go as text and are stored as JSON (migration 0013).
const INGEST_ORDERS: &str = "SELECT outcome, version FROM syncdesk_ingest_orders(
    $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16::json[], $17,
    $18, $19, $20, $21, $22, $23) ORDER BY ordinal";

/// An answer of `syncdesk_ingest_orders` that breaks its contract.
fn unexpected(what: &str) -> StoreError {
    StoreError::Database(sqlx::Error::Protocol(format!(
        "syncdesk_ingest_orders answered {what}"
    )))
}

/// The customer an order names, if any.
fn customer(d: &OrderDelivery) -> Option<&CustomerRef> {
    d.order.customer.as_ref()
}

/// Every delivery of `batch` in one call, answered in order.
async fn ingest_together(
    pool: &PgPool,
    batch: &[OrderDelivery],
) -> Result<Vec<Answered>, sqlx::Error> {
    let documents = batch
        .iter()
        .map(|d| serde_json::to_string(d.order.as_ref()))
        .collect::<Result<Vec<String>, _>>()
        .map_err(|err| sqlx::Error::Encode(err.into()))?;
    sqlx::query_as(INGEST_ORDERS)
        .bind(column(batch, |d| d.delivery.webhook_id.as_str()))
        .bind(column(batch, |d| d.delivery.event_id.as_deref()))
        .bind(column(batch, |d| d.delivery.topic.as_str()))
        .bind(column(batch, |d| d.delivery.shop_domain.as_deref()))
        .bind(column(batch, |d| d.delivery.api_version.as_deref()))
        .bind(column(batch, |d| d.delivery.triggered_at))
        .bind(column(batch, |d| d.now))
        .bind(column(batch, |d| d.delivery.body.as_slice()))
        .bind(column(batch, |d| d.order.store_order_id))
        .bind(column(batch, |d| d.order.updated_at))
        .bind(column(batch, |d| d.order.name.as_str()))
        .bind(column(batch, |d| {
            d.order.email.as_ref().map(|e| e.as_str())
        }))
        .bind(column(batch, |d| d.order.lifecycle().as_str()))
        .bind(column(batch, |d| d.order.currency.as_str()))
        .bind(column(batch, |d| d.order.total.amount.to_string()))
        .bind(documents)
        .bind(column(batch, |d| Json(order_skus(&d.order))))
        .bind(column(batch, |d| customer(d).is_some()))
        .bind(column(batch, |d| {
            customer(d).and_then(|c| c.store_customer_id)
        }))
        .bind(column(batch, |d| {
            customer(d).and_then(|c| c.email.as_ref().map(|e| e.as_str()))
        }))
        .bind(column(batch, |d| {
            customer(d).and_then(|c| c.phone.as_ref().map(|p| p.as_str()))
        }))
        .bind(column(batch, |d| {
            customer(d).and_then(|c| c.first_name.as_deref())
        }))
        .bind(column(batch, |d| {
            customer(d).and_then(|c| c.last_name.as_deref())
        }))
        .fetch_all(pool)
        .await
}

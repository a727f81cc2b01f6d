//! Orders' deliveries on PostgreSQL, written together. `syncdesk_ingest_orders` (migrations
//! 0012 and 0013, last replaced by 0025) runs the steps SQLite's writer takes for an order
//! ([`sqlite`](super::sqlite)) inside the server for every delivery that queued (see `store::batch`), in one call and one transaction: one
//! round trip and one log flush for all of them, where one delivery took ~7 round trips as
//! separate statements. While workers run in this process, the call also leases new orders'
//! tasks to them (migration 0019, `store::handoff`).
//!
//! One writer, so two batches never hold each other's rows. A batch that fails is not retried
//! whole: each of its deliveries is written again alone, so the one that fails is answered with
//! its error (the store delivers it again) and the others are recorded.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use sqlx::PgPool;
use sqlx::types::Json;

use super::{Delivery, Outcome, order_skus};
use crate::domain::{CustomerRef, Order};
use crate::store::StoreError;
use crate::store::batch::{BatchWrite, Batcher, Written, column, retrying_deadlocks};
use crate::store::handoff::{Handoff, Leased, release_unstarted};
use crate::store::tasks::ClaimedTask;

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
    /// Where new orders' tasks leased in the call go (see `store::handoff`).
    handoff: Arc<Handoff>,
}

/// The lease an ingest call may put new orders' tasks under.
struct Lease {
    token: String,
    leased: Leased,
    /// How many new orders may have their tasks leased (two tasks each).
    orders: i32,
}

/// The queue to the ingest writer.
pub(crate) type Ingests = Batcher<IngestWriter>;

/// Starts the ingest writer on the current runtime.
pub(crate) fn spawn_pg_writer(pool: PgPool, handoff: Arc<Handoff>) -> Ingests {
    Batcher::spawn(IngestWriter { pool, handoff }, MAX_BATCH)
}

impl BatchWrite for IngestWriter {
    type Item = OrderDelivery;
    type Answer = Outcome;

    async fn write(&self, batch: &[OrderDelivery]) -> Written<Outcome> {
        let lease = self.handoff.leases().map(|leases| Lease {
            token: uuid::Uuid::now_v7().to_string(),
            leased: Leased {
                expires_at: Utc::now()
                    + TimeDelta::from_std(leases.lease).unwrap_or(TimeDelta::seconds(60)),
                lease: leases.lease,
            },
            orders: i32::try_from(leases.room / 2).unwrap_or(i32::MAX),
        });
        match retrying_deadlocks(|| ingest_together(&self.pool, batch, lease.as_ref())).await {
            Ok(outcomes) if outcomes.len() == batch.len() => {
                let mut handed_off = Vec::new();
                let answers = batch
                    .iter()
                    .zip(outcomes)
                    .map(|(d, answered)| {
                        if let Some(lease) = &lease {
                            handed_off.extend(leased_tasks(d, &answered, &lease.token));
                        }
                        outcome(&d.order, answered)
                    })
                    .collect();
                if let Some(lease) = &lease {
                    let refused = self.handoff.push(handed_off, &lease.leased);
                    // The workers stopped while the call was under way.
                    if let Err(err) = release_unstarted(&self.pool, &refused).await {
                        tracing::error!(error = %err, "releasing handed-off tasks failed; their leases will run out");
                    }
                }
                Written {
                    answers,
                    together: true,
                }
            }
            // Each written again alone: only the one the database refuses fails.
            _ => {
                let mut answers = Vec::with_capacity(batch.len());
                for d in batch {
                    let alone = std::slice::from_ref(d);
                    // Without a lease (a rare path): these tasks are claimed.
                    answers.push(
                        match retrying_deadlocks(|| ingest_together(&self.pool, alone, None)).await
                        {
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

/// What `syncdesk_ingest_orders` answered for one delivery: the outcome's word, the order's
/// version, and the tasks leased in the call (with the ERP's item codes).
#[derive(sqlx::FromRow)]
struct Answered {
    outcome: String,
    version: Option<i64>,
    crm_task: Option<i64>,
    erp_task: Option<i64>,
    item_codes: Option<Json<HashMap<String, String>>>,
}

/// The tasks of `d` the call leased, as a claim would have answered them.
fn leased_tasks(d: &OrderDelivery, answered: &Answered, token: &str) -> Vec<ClaimedTask> {
    let crm = answered
        .crm_task
        .map(|id| ClaimedTask::handed_off(id, "crm", &d.order, token, d.now, None));
    let erp = answered.erp_task.map(|id| {
        let codes = answered
            .item_codes
            .as_ref()
            .map(|Json(codes)| codes.clone());
        ClaimedTask::handed_off(id, "erp", &d.order, token, d.now, codes)
    });
    crm.into_iter().chain(erp).collect()
}

fn outcome(order: &Order, answered: Answered) -> Result<Outcome, StoreError> {
    let store_order_id = order.store_order_id;
    let handed_off = answered.crm_task.is_some() || answered.erp_task.is_some();
    match (answered.outcome.as_str(), answered.version) {
        ("applied", Some(version)) => Ok(Outcome::Applied {
            store_order_id,
            version,
            handed_off,
        }),
        ("duplicate", _) => Ok(Outcome::Duplicate),
        ("superseded", _) => Ok(Outcome::Superseded {
            store_order_id: Some(store_order_id),
        }),
        (other, _) => Err(unexpected(&format!("an outcome of {other:?}"))),
    }
}

// The order documents go as text and are stored as JSON (migration 0013).
const INGEST_ORDERS: &str = "SELECT outcome, version, crm_task, erp_task, item_codes
    FROM syncdesk_ingest_orders($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15,
        $16::json[], $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27) ORDER BY ordinal";

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
    lease: Option<&Lease>,
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
        .bind(lease.map(|l| l.token.as_str()))
        .bind(lease.map(|l| l.leased.expires_at))
        .bind(lease.map_or(0, |l| l.orders))
        .bind(column(batch, |d| d.order.customer_details_as_of()))
        .fetch_all(pool)
        .await
}

//! Deliveries on SQLite: the steps of the PostgreSQL path (`apply_delivery` there, and the
//! function `syncdesk_ingest_orders` for orders), run in the writer's group commit on its own
//! connection (see `store::writer`). A new order's tasks are leased to this process's workers
//! in the same write while they have room, as `syncdesk_ingest_orders` leases them (see
//! `store::handoff`).

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, ToSql};

use super::{
    ARM_TASKS, Applied, CUSTOMER_DETAILS_AS_OF, DESTINATIONS, Delivery, INSERT_EVENT, INSERT_ORDER,
    KEEP_SKU, OPEN_UNREAD, Outcome, Payload, READ_ORDER_DATA_SQLITE, READ_ORDER_SQLITE,
    SEEN_BEFORE, UNUSED_TOPIC, UPDATE_EVENT, UPDATE_ORDER, UPDATE_ORDER_REFUNDED, applied,
    customer, customer_record, event_end, known_order, order_skus, presumed, presumed_outcome,
    recorded, refund_as_of, refunded,
};
use crate::domain::Order;
use crate::store::handoff::Reservation;
use crate::store::sqlite::{self as lite, Time};
use crate::store::tasks::ClaimedTask;
use crate::store::writer::Writer;
use crate::store::{Store, StoreError};

/// A new order's tasks, inserted running under the lease `$4` until `$5` (`$1` the order, `$2`
/// the time, `$3` the destination), as a claim leaves a task: its first attempt and claim.
const INSERT_LEASED_TASK: &str =
    "INSERT INTO sync_tasks (store_order_id, destination, state, target_version, attempt, claims,
    scheduled_at, armed_at, lease_token, lease_expires_at, updated_at)
VALUES ($1, $3, 'running', 1, 1, 1, $2, $2, $4, $5, $2) RETURNING id";

/// A new order's task for a paused destination: pending, for a claim, as [`ARM_TASKS`] inserts
/// it.
const INSERT_PENDING_TASK: &str = "INSERT INTO sync_tasks (store_order_id, destination, state, target_version, attempt, scheduled_at,
    armed_at, updated_at)
VALUES ($1, $3, 'pending', 1, 0, $2, $2, $2)";

/// Whether a destination is paused (a claim skips it, so its tasks are not leased).
const PAUSED: &str = "SELECT EXISTS (SELECT 1 FROM destinations WHERE name = $1 AND paused)";

/// The ERP item code mapped to a SKU.
const ITEM_CODE: &str = "SELECT item_code FROM sku_mappings WHERE sku = $1";

/// The topic of a new order's first delivery: the one worth holding room in the handoff for (an
/// order first seen in another topic's delivery has its tasks claimed).
const NEW_ORDER_TOPIC: &str = "orders/create";

/// The lease a write may put a new order's tasks under.
pub(in crate::store) struct Lease {
    token: String,
    expires_at: DateTime<Utc>,
}

/// Tasks a write leased: each one's id and destination, and the ERP's item codes.
#[derive(Default)]
pub(in crate::store) struct LeasedTasks {
    tasks: Vec<(i64, &'static str)>,
    item_codes: Option<HashMap<String, String>>,
}

/// [`Store::ingest`] on SQLite: the delivery written in the writer's next group commit; a new
/// order's tasks, once committed, queued for this process's workers when the handoff had room
/// for them (tasks it refused, its workers having stopped while the write was under way, are
/// put back to pending). A caller that goes away once the write is queued (a sender that hangs
/// up) does not leave that undone: it is finished on a task of its own
/// ([`Writer::write_then`]).
pub(in crate::store) async fn ingest(
    store: &Store,
    writer: &Writer,
    delivery: Delivery,
    payload: Payload,
    now: DateTime<Utc>,
) -> Result<Outcome, StoreError> {
    // Room is held for a new order's tasks only: an update, a cancellation and the like arm
    // tasks the order already has.
    let reservation = match payload {
        Payload::Order(_) if delivery.topic == NEW_ORDER_TOPIC => {
            store.handoff.reserve(DESTINATIONS.len())
        }
        _ => None,
    };
    let lease = reservation.as_ref().map(|r| Lease {
        token: r.token.clone(),
        expires_at: r.leased.expires_at,
    });
    // Shared with the write, which may run more than once: the order is delivered from it.
    let written = Arc::new((delivery, payload));
    let work = {
        let written = written.clone();
        move |conn: &Connection| apply_delivery(conn, &written.0, &written.1, now, lease.as_ref())
    };
    let handing_off = reservation.map(|reservation| (reservation, store.clone()));
    let then = move |result: Result<(Outcome, LeasedTasks), StoreError>| async move {
        let (outcome, leased) = result?;
        if let (Some((reservation, store)), Payload::Order(order)) = (handing_off, &written.1) {
            let refused = hand_off(reservation, order, leased, now);
            if let Err(err) = store.release_unstarted(refused).await {
                tracing::error!(error = %err, "releasing handed-off tasks failed; their leases will run out");
            }
        }
        Ok(outcome)
    };
    writer.write_then(work, then).await
}

/// Queues the tasks a committed write leased for `order` under `reservation`; answers those
/// the handoff refused (it stopped meanwhile), to be released.
fn hand_off(
    reservation: Reservation,
    order: &Order,
    leased: LeasedTasks,
    now: DateTime<Utc>,
) -> Vec<ClaimedTask> {
    let LeasedTasks {
        tasks,
        mut item_codes,
    } = leased;
    let tasks = tasks
        .into_iter()
        .map(|(id, destination)| {
            // The one ERP task takes the codes; no copy.
            let codes = if destination == "erp" {
                item_codes.take()
            } else {
                None
            };
            ClaimedTask::handed_off(id, destination, order, &reservation.token, now, codes)
        })
        .collect();
    reservation.push(tasks)
}

/// Records a delivery and applies its payload, inside the writer's transaction. A new order's
/// tasks are leased under `lease`, when given, but for a paused destination's.
fn apply_delivery(
    conn: &Connection,
    delivery: &Delivery,
    payload: &Payload,
    now: DateTime<Utc>,
    lease: Option<&Lease>,
) -> Result<(Outcome, LeasedTasks), StoreError> {
    // The insert comes first: it takes the write lock at once, and the partial unique indexes
    // make the first delivery of a webhook id / event id win.
    let presumed = presumed(payload);
    let insert = |duplicate: bool| {
        lite::query_opt(
            conn,
            INSERT_EVENT,
            &[
                &delivery.webhook_id,
                &delivery.event_id,
                &delivery.topic,
                &delivery.shop_domain,
                &delivery.api_version,
                &delivery.triggered_at.map(Time),
                &Time(now),
                &delivery.body,
                &duplicate,
                &if duplicate {
                    "duplicate"
                } else {
                    presumed_outcome(presumed)
                },
                &duplicate.then_some(SEEN_BEFORE),
                &presumed.map(|(id, _)| id),
                &presumed.map(|(_, at)| Time(at)),
            ],
            |row| row.get::<_, i64>(0),
        )
    };
    let Some(event_id) = insert(false)? else {
        // Kept too, for the duplicate rate and the order's timeline (the partial indexes only
        // cover first deliveries, so this insert never conflicts).
        insert(true)?;
        return Ok((Outcome::Duplicate, LeasedTasks::default()));
    };

    let mut ended: Applied = match payload {
        Payload::Customer(record) => {
            let linked =
                customer::link_on_writer(conn, &record.customer_ref(), record.updated_at, now)?;
            let held = match linked {
                Some(id) => lite::query_opt(conn, CUSTOMER_DETAILS_AS_OF, &[&id], |row| {
                    lite::time_opt(row, 0)
                })?
                .flatten(),
                None => None,
            };
            customer_record(record, held)
        }
        Payload::Order(order) => apply_order(conn, order, now)?,
        Payload::Refund(refund) => {
            let stored =
                lite::query_opt(conn, READ_ORDER_DATA_SQLITE, &[&refund.order_id], |row| {
                    Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?))
                })?
                .map(|(data, version)| {
                    Ok::<_, serde_json::Error>((serde_json::from_str(&data)?, version))
                })
                .transpose()
                .map_err(lite::unreadable)?;
            match refunded(stored, refund) {
                Ok((order, version)) => {
                    lite::execute(
                        conn,
                        UPDATE_ORDER_REFUNDED,
                        &[
                            &refund.order_id,
                            &version,
                            &order.lifecycle().as_str(),
                            &lite::json(&order)?,
                            &Time(now),
                            &Time(refund_as_of(refund)),
                        ],
                    )?;
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
                lite::execute(
                    conn,
                    OPEN_UNREAD,
                    &[
                        &order.map(|o| o.order_id),
                        &e.code,
                        &e.kind,
                        &e.fingerprint,
                        &e.message,
                        &e.action,
                        &lite::json(&e.fields)?,
                        &order.and_then(|o| o.as_of).map(Time),
                        &Time(now),
                    ],
                )?;
            }
            recorded(reason.as_str())
        }
    };

    let mut leased = LeasedTasks::default();
    if let Outcome::Applied {
        store_order_id,
        version,
        handed_off,
    } = &mut ended.0
    {
        match (payload, lease) {
            // A new order has no tasks yet: they are plainly inserted.
            (Payload::Order(order), Some(lease)) if *version == 1 => {
                leased = insert_tasks(conn, order, now, lease)?;
                *handed_off = !leased.tasks.is_empty();
            }
            _ => {
                lite::execute(conn, ARM_TASKS, &[store_order_id, version, &Time(now)])?;
            }
        }
        if let Payload::Order(order) = payload {
            for sku in order_skus(order) {
                lite::execute(conn, KEEP_SKU, &[store_order_id, &sku])?;
            }
        }
    }
    if let Some(end) = event_end(payload, &ended) {
        lite::execute(
            conn,
            UPDATE_EVENT,
            &[
                &event_id,
                &end.outcome,
                &end.store_order_id,
                &end.order_updated_at.map(Time),
                &end.note,
            ],
        )?;
    }
    Ok((ended.0, leased))
}

/// A new order's task for every destination, leased under `lease` but for a paused
/// destination's (pending, as a claim would skip it); the ERP's leased task with the item codes
/// of the order's SKUs.
fn insert_tasks(
    conn: &Connection,
    order: &Order,
    now: DateTime<Utc>,
    lease: &Lease,
) -> Result<LeasedTasks, StoreError> {
    let mut leased = LeasedTasks::default();
    let (id, now, expires_at) = (order.store_order_id, Time(now), Time(lease.expires_at));
    for destination in DESTINATIONS {
        let paused: bool =
            lite::query_opt(conn, PAUSED, &[&destination], |row| row.get(0))?.unwrap_or(false);
        if paused {
            lite::execute(conn, INSERT_PENDING_TASK, &[&id, &now, &destination])?;
            continue;
        }
        let task = lite::query_opt(
            conn,
            INSERT_LEASED_TASK,
            &[&id, &now, &destination, &lease.token, &expires_at],
            |row| row.get::<_, i64>(0),
        )?
        .ok_or(StoreError::Sqlite(rusqlite::Error::QueryReturnedNoRows))?;
        leased.tasks.push((task, destination));
        if destination == "erp" {
            let mut codes = HashMap::new();
            for sku in order_skus(order) {
                if let Some(code) =
                    lite::query_opt(conn, ITEM_CODE, &[&sku], |row| row.get::<_, String>(0))?
                {
                    codes.insert(sku.to_string(), code);
                }
            }
            leased.item_codes = Some(codes);
        }
    }
    Ok(leased)
}

/// An order's state: a new order at version 1, a newer state of a known one as its next
/// version, or an older or equal state recorded and not applied.
fn apply_order(
    conn: &Connection,
    order: &Order,
    now: DateTime<Utc>,
) -> Result<Applied, StoreError> {
    let customer_id = match &order.customer {
        Some(c) => customer::link_on_writer(conn, c, order.customer_details_as_of(), now)?,
        None => None,
    };
    let key = Some((order.store_order_id, order.updated_at));
    let data = lite::json(order)?;
    let total = order.total.amount.to_string();
    let email = order.email.as_ref().map(|e| e.as_str());
    let lifecycle = order.lifecycle().as_str();
    let currency = order.currency.as_str();
    let (updated_at, now) = (Time(order.updated_at), Time(now));
    // The order's row: [`INSERT_ORDER`]'s binds, and [`UPDATE_ORDER`]'s but its version.
    let row: [&dyn ToSql; 10] = [
        &order.store_order_id,
        &order.name,
        &updated_at,
        &customer_id,
        &email,
        &lifecycle,
        &currency,
        &total,
        &data,
        &now,
    ];
    let inserted: Option<i64> = lite::query_opt(conn, INSERT_ORDER, &row, |row| row.get(0))?;
    if let Some(version) = inserted {
        return Ok(applied(order.store_order_id, version, key));
    }
    // This transaction holds SQLite's single write lock: the row is as read.
    let (stored_at, version) =
        lite::query_opt(conn, READ_ORDER_SQLITE, &[&order.store_order_id], |row| {
            Ok((lite::time(row, 0)?, row.get::<_, i64>(1)?))
        })?
        .ok_or(StoreError::Sqlite(rusqlite::Error::QueryReturnedNoRows))?;
    Ok(match known_order(order, stored_at, version) {
        Ok(version) => {
            let mut update = row.to_vec();
            update.push(&version);
            lite::execute(conn, UPDATE_ORDER, &update)?;
            applied(order.store_order_id, version, key)
        }
        Err(ended) => ended,
    })
}

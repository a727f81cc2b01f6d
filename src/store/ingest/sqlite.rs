//! Deliveries on SQLite: the steps of the PostgreSQL path (`apply_delivery` there, and the
//! function `syncdesk_ingest_orders` for orders), run in the writer's group commit on its own
//! connection (see `store::writer`).

use chrono::{DateTime, Utc};
use rusqlite::{Connection, ToSql};

use super::{
    ARM_TASKS, Applied, CUSTOMER_DETAILS_AS_OF, Delivery, INSERT_EVENT, INSERT_ORDER, KEEP_SKU,
    Outcome, Payload, READ_ORDER_DATA_SQLITE, READ_ORDER_SQLITE, SEEN_BEFORE, UNUSED_TOPIC,
    UPDATE_EVENT, UPDATE_ORDER, UPDATE_ORDER_REFUNDED, applied, customer, customer_record,
    event_end, known_order, order_skus, presumed, presumed_outcome, recorded, refunded,
};
use crate::domain::Order;
use crate::store::StoreError;
use crate::store::sqlite::{self as lite, Time};

/// Records a delivery and applies its payload, inside the writer's transaction.
pub(in crate::store) fn apply_delivery(
    conn: &Connection,
    delivery: &Delivery,
    payload: &Payload,
    now: &DateTime<Utc>,
) -> Result<Outcome, StoreError> {
    let now = *now;
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
        return Ok(Outcome::Duplicate);
    };

    let ended: Applied = match payload {
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
                        ],
                    )?;
                    applied(refund.order_id, version, None)
                }
                Err(ended) => ended,
            }
        }
        Payload::UnknownTopic => recorded(UNUSED_TOPIC),
        Payload::Notice { why, .. } => recorded(*why),
        Payload::Unreadable(reason) => recorded(reason.as_str()),
    };

    if let Outcome::Applied {
        store_order_id,
        version,
        ..
    } = &ended.0
    {
        lite::execute(conn, ARM_TASKS, &[store_order_id, version, &Time(now)])?;
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
    Ok(ended.0)
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

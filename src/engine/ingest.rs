//! Ingest: a verified store webhook becomes a durable event and, when it carries a newer state
//! of an order, that state plus a sync task per destination — all in one transaction, before
//! the store gets its 2xx.

use super::exception::Problem;
use crate::domain::shopify;
use crate::store::{
    Delivery, IngestOutcome, NewException, Payload, Store, StoreError, UnreadState,
};

/// The topics SyncDesk acts on.
pub const TOPICS: [&str; 10] = [
    "orders/create",
    "orders/updated",
    "orders/paid",
    "orders/fulfilled",
    "orders/partially_fulfilled",
    "orders/cancelled",
    "orders/edited",
    "refunds/create",
    "customers/create",
    "customers/update",
];

/// Reads a body by its topic. A body that cannot be read is kept as `Unreadable` with the
/// reason (naming the field), so nothing the store sent is lost.
pub fn read_payload(topic: &str, body: &[u8]) -> Payload {
    if !TOPICS.contains(&topic) {
        return Payload::UnknownTopic;
    }
    match shopify::parse_json(body) {
        Ok(value) => read_parsed(topic, &value),
        Err(e) => unreadable(e),
    }
}

/// [`read_payload`] for a body already parsed as JSON.
pub fn read_parsed(topic: &str, value: &serde_json_borrow::Value<'_>) -> Payload {
    match topic {
        "orders/create"
        | "orders/updated"
        | "orders/paid"
        | "orders/fulfilled"
        | "orders/partially_fulfilled"
        | "orders/cancelled" => shopify::order_from_json(value)
            .map(|o| Payload::Order(Box::new(o)))
            .unwrap_or_else(|e| unreadable_state(topic, e, shopify::order_reference(value, false))),
        // An edit notice names the order but not its new state, which arrives with the
        // orders/updated the store sends for the same edit (and with reconciliation).
        "orders/edited" => match shopify::order_edit_from_json(value) {
            Ok(edit) => Payload::Notice {
                why: "order edit noted; the edited order arrives as orders/updated",
                order: Some(edit.order_id),
            },
            Err(e) => unreadable(e),
        },
        "refunds/create" => shopify::refund_from_json(value)
            .map(|r| Payload::Refund(Box::new(r)))
            .unwrap_or_else(|e| unreadable_state(topic, e, shopify::order_reference(value, true))),
        "customers/create" | "customers/update" => shopify::customer_from_json(value)
            .map(|c| Payload::Customer(Box::new(c)))
            .unwrap_or_else(unreadable),
        _ => Payload::UnknownTopic,
    }
}

/// A body that cannot be read: the whole reason for the record, the field's path for the log.
/// Nothing of an order's state was lost with it (a customer record, an edit notice), or not
/// even JSON could be read.
fn unreadable(e: shopify::ParseError) -> Payload {
    Payload::Unreadable {
        reason: e.to_string(),
        field: e.field().map(str::to_owned),
        state: None,
    }
}

/// An order's state (an order, or a refund of it) that cannot be read: as [`unreadable`], and,
/// when its id can be read, the order it is about, so the store opens an exception for it.
fn unreadable_state(
    topic: &str,
    e: shopify::ParseError,
    order: Option<shopify::OrderReference>,
) -> Payload {
    let problem = Problem::unreadable_webhook(topic, order.map(|o| o.order_id), e.field());
    Payload::Unreadable {
        reason: e.to_string(),
        field: e.field().map(str::to_owned),
        state: Some(UnreadState {
            order,
            exception: NewException::from(&problem),
        }),
    }
}

/// Makes a delivery durable and applies it.
pub async fn accept(store: &Store, delivery: Delivery) -> Result<IngestOutcome, StoreError> {
    let payload = read_payload(&delivery.topic, &delivery.body);
    record(store, delivery, payload).await
}

/// [`accept`] for a delivery whose body the caller has already read with [`read_parsed`] (the
/// webhook endpoint parses it to refuse a body that is not JSON): the body is not read twice.
pub async fn accept_read(
    store: &Store,
    delivery: Delivery,
    payload: Payload,
) -> Result<IngestOutcome, StoreError> {
    record(store, delivery, payload).await
}

async fn record(
    store: &Store,
    delivery: Delivery,
    payload: Payload,
) -> Result<IngestOutcome, StoreError> {
    if let Payload::Unreadable { field, .. } = &payload {
        // The field, not the reason: the reason can quote the value (an email, a phone number),
        // and logs carry no personal data. The webhook's record keeps the whole reason.
        let field = field.as_deref().unwrap_or("the body");
        tracing::warn!(topic = %delivery.topic, webhook_id = %delivery.webhook_id, %field, "store sent a body SyncDesk cannot read; kept for replay");
    }
    store.ingest(delivery, payload).await
}

#[cfg(test)]
mod tests {
    use super::{Payload, read_payload};

    /// The reason quotes the value for the operator (it is kept with the webhook); the field's
    /// path is all the log line gets, since the value may be an email or a phone number.
    #[test]
    fn an_unreadable_body_names_its_field_apart_from_the_value() {
        let body = br#"{"id": 7, "email": "jane doe@example.com", "phone": null,
            "created_at": "2024-10-01T09:15:00Z", "updated_at": "2024-10-01T09:15:00Z"}"#;
        let Payload::Unreadable {
            reason,
            field,
            state: None,
        } = read_payload("customers/update", body)
        else {
            panic!("the email is not an email");
        };
        assert_eq!(field.as_deref(), Some("email"));
        assert!(reason.contains("jane doe@example.com"), "{reason}");

        let Payload::Unreadable { field, .. } = read_payload("customers/update", b"{nope") else {
            panic!("not JSON");
        };
        assert_eq!(field, None, "the log says `the body`");
    }
}

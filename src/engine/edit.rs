//! Payload edits: an operator corrects what one destination gets for the order's current
//! version (shortens a street the ERP refuses, fixes a name) and sends it again. Copy-on-write:
//! the computed payload stays as it was, the edit is kept beside it, the change is audited
//! field by field. The worker maps the order afresh for every delivery and lays the newest edit
//! onto it ([`carry`]): the operator's changes stay for as long as the store leaves those
//! fields as they were (an orders/paid after a shortened street does not bring the long one
//! back), and a field the store changes again is the store's.
//!
//! An edit must still be the destination's payload: valid JSON of the same shape (no unknown
//! fields), the same order (the external id cannot change), and within the destination's rules
//! (the same validation the worker runs).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{preview, validate};
use crate::audit::Actor;
use crate::connectors::{CrmContact, CrmDeal, ErpSalesOrder};
use crate::store::{NewPayloadEdit, RetryOutcome, Store, StoreError};

/// What the CRM gets: the contact (when the order has an email) and the deal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CrmPayload {
    /// Upserted by email first.
    pub contact: Option<CrmContact>,
    /// The order as a deal.
    pub deal: CrmDeal,
}

/// One field an edit changed: its path (`ship_to.street`, `lines[0].quantity`), and its value
/// before and after (`None`: absent).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FieldChange {
    /// Where.
    pub path: String,
    /// The value before.
    pub before: Option<Value>,
    /// The value after.
    pub after: Option<Value>,
}

/// Why an edit was not saved (nothing was).
#[derive(Debug, thiserror::Error)]
pub enum EditError {
    /// The edit is wrong; the sentence says how.
    #[error("{0}")]
    Invalid(String),
    /// The order moved on, or is being delivered right now.
    #[error("{0}")]
    Conflict(String),
    /// No such order.
    #[error("That order does not exist.")]
    NotFound,
    /// Storage failed.
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for EditError {
    fn from(err: StoreError) -> EditError {
        match err {
            StoreError::Conflict(message) => EditError::Conflict(message),
            StoreError::Invalid(message) => EditError::Invalid(message),
            StoreError::NotFound(_) => EditError::NotFound,
            other => EditError::Store(other),
        }
    }
}

/// What saving an edit did.
#[derive(Clone, Debug)]
pub struct EditSaved {
    /// The fields changed against the payload in force before.
    pub changes: Vec<FieldChange>,
    /// Queued to be sent now (an edit is never saved while a delivery is in flight).
    pub outcome: RetryOutcome,
}

impl EditSaved {
    /// The outcome as a sentence.
    pub fn summary(&self, destination: &str) -> String {
        let place = destination.to_uppercase();
        let fields: Vec<&str> = self.changes.iter().map(|c| c.path.as_str()).collect();
        format!(
            "Saved your edit ({} changed: {}). The {place} gets the edited payload now; the original is kept.",
            if fields.len() == 1 {
                "1 field".to_string()
            } else {
                format!("{} fields", fields.len())
            },
            fields.join(", ")
        )
    }
}

/// Parses an edited payload for `destination` of order `store_order_id` (named `order_name`),
/// checking shape, identity and the destination's rules. Returns the JSON the worker will send.
pub fn parse(
    destination: &str,
    store_order_id: i64,
    order_name: &str,
    text: &str,
) -> Result<Value, EditError> {
    let raw: Value = serde_json::from_str(text)
        .map_err(|e| EditError::Invalid(format!("The payload is not valid JSON: {e}.")))?;
    // A NUL character (`\u0000`): PostgreSQL cannot store it, and no destination wants it.
    if holds_nul(&raw) {
        return Err(EditError::Invalid(
            "The payload holds a NUL character (\\u0000); remove it.".into(),
        ));
    }
    let id = store_order_id.to_string();
    let normalized = match destination {
        "crm" => {
            let payload: CrmPayload = serde_json::from_value(raw.clone()).map_err(|e| {
                EditError::Invalid(format!(
                    "The payload does not fit the CRM's contact and deal: {e}."
                ))
            })?;
            let value =
                serde_json::to_value(&payload).map_err(|e| EditError::Invalid(e.to_string()))?;
            same_shape(&raw, &value, "CRM")?;
            if payload.deal.external_id != id {
                return Err(identity("deal.external_id", "CRM"));
            }
            let problems = validate::validate_crm(payload.contact.as_ref(), &payload.deal);
            still_broken(problems.into_iter().map(|p| p.message).collect(), "CRM")?;
            value
        }
        "erp" => {
            let payload: ErpSalesOrder = serde_json::from_value(raw.clone()).map_err(|e| {
                EditError::Invalid(format!(
                    "The payload does not fit the ERP's sales order: {e}."
                ))
            })?;
            let value =
                serde_json::to_value(&payload).map_err(|e| EditError::Invalid(e.to_string()))?;
            same_shape(&raw, &value, "ERP")?;
            if payload.external_id != id {
                return Err(identity("external_id", "ERP"));
            }
            let problems = validate::validate_erp(order_name, &payload);
            still_broken(problems.into_iter().map(|p| p.message).collect(), "ERP")?;
            value
        }
        _ => return Err(EditError::Invalid("The destination is crm or erp.".into())),
    };
    Ok(normalized)
}

/// Whether a key or a text anywhere in `value` holds a NUL character.
fn holds_nul(value: &Value) -> bool {
    match value {
        Value::String(text) => text.contains('\0'),
        Value::Array(items) => items.iter().any(holds_nul),
        Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || holds_nul(v)),
        _ => false,
    }
}

/// A field the payload type does not have would be dropped silently: say so instead.
fn same_shape(raw: &Value, typed: &Value, place: &str) -> Result<(), EditError> {
    match diff(raw, typed)
        .into_iter()
        .find(|c| c.before.is_some() && c.after.is_none())
    {
        Some(dropped) => Err(EditError::Invalid(format!(
            "{} is not a field of the {place} payload; remove it or check its spelling.",
            dropped.path
        ))),
        None => Ok(()),
    }
}

fn identity(field: &str, place: &str) -> EditError {
    EditError::Invalid(format!(
        "{field} says which order this is in the {place}; it cannot be edited."
    ))
}

fn still_broken(problems: Vec<String>, place: &str) -> Result<(), EditError> {
    if problems.is_empty() {
        return Ok(());
    }
    Err(EditError::Invalid(format!(
        "The edited payload still breaks the {place}'s rules: {}",
        problems.join(" ")
    )))
}

/// The leaves that differ between `before` and `after`, in path order. Arrays compare by index.
pub fn diff(before: &Value, after: &Value) -> Vec<FieldChange> {
    let mut changes = Vec::new();
    walk("", Some(before), Some(after), &mut changes);
    changes
}

fn walk(path: &str, before: Option<&Value>, after: Option<&Value>, out: &mut Vec<FieldChange>) {
    let key = |k: &str| {
        if path.is_empty() {
            k.to_string()
        } else {
            format!("{path}.{k}")
        }
    };
    match (before, after) {
        (Some(Value::Object(a)), Some(Value::Object(b))) => {
            let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for k in keys {
                walk(&key(k), a.get(k), b.get(k), out);
            }
        }
        (Some(Value::Array(a)), Some(Value::Array(b))) => {
            for i in 0..a.len().max(b.len()) {
                walk(&format!("{path}[{i}]"), a.get(i), b.get(i), out);
            }
        }
        (a, b) if a == b => {}
        // `null` and absent mean the same to every payload type here.
        (Some(Value::Null), None) | (None, Some(Value::Null)) => {}
        (a, b) => out.push(FieldChange {
            path: path.to_string(),
            before: a.cloned(),
            after: b.cloned(),
        }),
    }
}

/// Lays an edit onto a payload computed afresh: each part the operator changed (from
/// `original`, the payload computed when they edited, to `edited`) is put into `fresh` where
/// `fresh` still holds what `original` held there; where the store (or a SKU mapping) has since
/// changed that part, the fresh value stands and the part is returned, by path, as dropped.
/// Everything the operator left alone comes from `fresh`: a new payment status, a shipment, an
/// item code mapped since. For the version the edit was made for, with nothing changed since,
/// the result is the edit itself.
pub fn carry(original: &Value, edited: &Value, fresh: &mut Value) -> Vec<String> {
    let mut dropped = Vec::new();
    carry_at("", Some(original), Some(edited), fresh, &mut dropped);
    dropped
}

/// `slot` is the fresh payload's value at `path` (`Null` standing for absent).
fn carry_at(
    path: &str,
    original: Option<&Value>,
    edited: Option<&Value>,
    slot: &mut Value,
    dropped: &mut Vec<String>,
) {
    let same = |a: Option<&Value>, b: Option<&Value>| {
        a.unwrap_or(&Value::Null) == b.unwrap_or(&Value::Null)
    };
    if same(original, edited) {
        return;
    }
    let untouched = same(original, Some(slot));
    match (original, edited, &mut *slot) {
        (Some(Value::Object(o)), Some(Value::Object(e)), Value::Object(f)) => {
            let keys: std::collections::BTreeSet<String> =
                o.keys().chain(e.keys()).cloned().collect();
            for k in keys {
                let here = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                let mut value = f.remove(&k).unwrap_or(Value::Null);
                carry_at(&here, o.get(&k), e.get(&k), &mut value, dropped);
                if !value.is_null() {
                    f.insert(k, value);
                }
            }
        }
        // Elements are matched by position, so one is carried only while it is still the
        // same element: everything the edit left alone in it unchanged (a line the store
        // replaced by another of the same quantity must not take the old line's edit).
        (Some(Value::Array(o)), Some(Value::Array(e)), Value::Array(f))
            if o.len() == e.len() && o.len() == f.len() =>
        {
            for (i, value) in f.iter_mut().enumerate() {
                let here = format!("{path}[{i}]");
                if untouched_agree(o.get(i), e.get(i), Some(value)) {
                    carry_at(&here, o.get(i), e.get(i), value, dropped);
                } else if !same(o.get(i), e.get(i)) {
                    dropped.push(here);
                }
            }
        }
        (.., slot) if untouched => *slot = edited.cloned().unwrap_or(Value::Null),
        _ => dropped.push(path.to_string()),
    }
}

/// A short fingerprint of a payload as the order's page shows it: sent back with an edit, so
/// that a payload changed since the page was opened (by the store, a SKU mapping or another
/// edit) is not overwritten with what the person saw.
pub fn digest(payload: &Value) -> String {
    use sha2::{Digest, Sha256};
    let text = serde_json::to_string(payload).unwrap_or_default();
    hex::encode(&Sha256::digest(text.as_bytes())[..8])
}

/// Whether `fresh` holds what `original` held in every part the edit (`original` → `edited`)
/// left alone.
fn untouched_agree(
    original: Option<&Value>,
    edited: Option<&Value>,
    fresh: Option<&Value>,
) -> bool {
    let null = &Value::Null;
    let (o, e, f) = (
        original.unwrap_or(null),
        edited.unwrap_or(null),
        fresh.unwrap_or(null),
    );
    if o == e {
        return o == f;
    }
    match (o, e, f) {
        (Value::Object(o), Value::Object(e), Value::Object(f)) => o
            .keys()
            .chain(f.keys())
            .all(|k| untouched_agree(o.get(k), e.get(k), f.get(k))),
        (Value::Array(o), Value::Array(e), Value::Array(f)) if o.len() == e.len() => {
            o.len() == f.len()
                && (0..o.len()).all(|i| untouched_agree(o.get(i), e.get(i), f.get(i)))
        }
        // A part the edit changed: what the fresh payload holds there is `carry`'s to judge.
        _ => true,
    }
}

/// What the person saw when they edited, checked before the edit is saved so that nothing
/// changed since is overwritten unseen. `None`: not checked (a script that does not say).
#[derive(Clone, Debug, Default)]
pub struct SeenOnPage {
    /// The edit in force the page showed (0: none).
    pub edit: Option<i64>,
    /// The fingerprint ([`digest`]) of the payload the page showed.
    pub payload: Option<String>,
}

/// Saves an operator's edit of what `destination` gets for order `store_order_id` at
/// `version` (the version the operator saw), and queues it to be sent now.
pub async fn save(
    store: &Store,
    store_order_id: i64,
    destination: &str,
    version: i64,
    text: &str,
    seen: &SeenOnPage,
    by: &Actor,
) -> Result<EditSaved, EditError> {
    let (based_on, shown) = (seen.edit, seen.payload.as_deref());
    let Some((order, current)) = store.order_snapshot(store_order_id).await? else {
        return Err(EditError::NotFound);
    };
    if current != version {
        return Err(moved_on(current));
    }
    let payload = parse(destination, store_order_id, &order.name, text)?;
    let computed = preview::payloads(store, &order)
        .await?
        .into_iter()
        .find(|p| p.destination == destination)
        .and_then(|p| p.payload)
        .ok_or_else(|| {
            EditError::Invalid(
                "This order cannot be mapped for that destination yet (see what stops it); fix the cause first.".into(),
            )
        })?;
    // The CRM keeps the newest state it was sent by this stamp, so an edited one would make it
    // ignore the order's real changes (a later stamp) or this edit (an earlier one).
    if destination == "crm"
        && payload["deal"]["source_version"] != computed["deal"]["source_version"]
    {
        return Err(EditError::Invalid(
            "deal.source_version says which state of the order this is; it cannot be edited."
                .into(),
        ));
    }
    // What the page showed as sent: the newest edit laid onto the payload computed now.
    let in_force = match store
        .payload_edit_to_carry(store_order_id, destination, version)
        .await?
    {
        Some(edit) => {
            let mut payload = computed.clone();
            carry(&edit.original, &edit.payload, &mut payload);
            payload
        }
        None => computed.clone(),
    };
    if shown.is_some_and(|shown| shown != digest(&in_force)) {
        return Err(EditError::Conflict(format!(
            "What the {} gets has changed since you opened this order (the order, a SKU mapping or another edit). Reload it, check the payload, and edit again if it still needs it.",
            destination.to_uppercase()
        )));
    }
    let changes = diff(&in_force, &payload);
    if changes.is_empty() {
        return Err(EditError::Invalid(
            "Nothing changed: the payload is the one already in force.".into(),
        ));
    }
    let outcome = store
        .save_payload_edit(
            &NewPayloadEdit {
                store_order_id,
                destination: destination.to_string(),
                version,
                original: computed,
                payload,
                changes: serde_json::to_value(&changes).unwrap_or(Value::Null),
                based_on,
            },
            by,
        )
        .await?;
    Ok(EditSaved { changes, outcome })
}

fn moved_on(current: i64) -> EditError {
    EditError::Conflict(format!(
        "The order changed in the store while you edited (it is at version {current} now), so this edit no longer fits. Reload the order and edit again if it still needs it."
    ))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_nul_character_anywhere_is_refused() {
        assert!(holds_nul(&json!({ "ship_to": { "street": "a\u{0}b" } })));
        assert!(holds_nul(&json!([{ "k\u{0}": 1 }])));
        assert!(!holds_nul(&json!({ "note": "line one\nline two" })));
        let refused = parse("erp", 1, "#1", r#"{"external_id": "1\u0000"}"#).unwrap_err();
        assert!(refused.to_string().contains("NUL character"), "{refused}");
    }

    #[test]
    fn diff_names_each_changed_leaf_by_path() {
        let a = json!({ "ship_to": { "street": "A very long street", "city": "Oslo" }, "lines": [{ "q": 1 }] });
        let b = json!({ "ship_to": { "street": "Short", "city": "Oslo", "street2": "Flat 2" }, "lines": [{ "q": 1 }, { "q": 2 }] });
        let paths: Vec<String> = diff(&a, &b).into_iter().map(|c| c.path).collect();
        assert_eq!(paths, vec!["lines[1]", "ship_to.street", "ship_to.street2"]);
        assert!(diff(&a, &a).is_empty());
        assert!(diff(&json!({ "x": null }), &json!({})).is_empty());
    }

    #[test]
    fn an_edit_is_laid_onto_a_fresh_payload_where_the_store_left_its_fields_alone() {
        let original = json!({
            "ship_to": { "street": "A street far too long", "city": "Oslo" },
            "payment_status": "pending",
            "lines": [{ "item_code": "ERP-OLD", "quantity": "1" }, { "item_code": "ERP-B", "quantity": "2" }],
            "note": "x"
        });
        let mut edited = original.clone();
        edited["ship_to"]["street"] = json!("Short St 1");
        edited["ship_to"]["street2"] = json!("Flat 2");
        edited["lines"][1]["quantity"] = json!("3");
        edited.as_object_mut().unwrap().remove("note");

        // Nothing changed since: the edit itself.
        let mut same = original.clone();
        assert!(carry(&original, &edited, &mut same).is_empty());
        assert_eq!(same, edited);

        // Paid since, and an item code mapped anew: those come from the store; the edit stays.
        let mut fresh = original.clone();
        fresh["payment_status"] = json!("paid");
        fresh["lines"][0]["item_code"] = json!("ERP-NEW");
        assert!(carry(&original, &edited, &mut fresh).is_empty());
        assert_eq!(
            fresh["ship_to"],
            json!({ "street": "Short St 1", "city": "Oslo", "street2": "Flat 2" })
        );
        assert_eq!(fresh["payment_status"], "paid");
        assert_eq!(fresh["lines"][0]["item_code"], "ERP-NEW");
        assert_eq!(fresh["lines"][1]["quantity"], "3");
        assert!(
            fresh.get("note").is_none(),
            "a field the edit removed stays removed"
        );

        // The store changed the street itself, and the lines: its values stand, said by path.
        let mut moved = original.clone();
        moved["ship_to"]["street"] = json!("Another street, also far too long");
        moved["lines"] = json!([{ "item_code": "ERP-OLD", "quantity": "1" }]);
        let dropped = carry(&original, &edited, &mut moved);
        assert_eq!(dropped, ["lines", "ship_to.street"]);
        assert_eq!(
            moved["ship_to"]["street"],
            "Another street, also far too long"
        );
        assert_eq!(
            moved["ship_to"]["street2"], "Flat 2",
            "the part the store left alone is kept"
        );

        // The store replaced the edited line by another in the same place: the other line
        // does not take the edit meant for the first.
        let mut replaced = original.clone();
        replaced["lines"][1] = json!({ "item_code": "ERP-C", "quantity": "2" });
        assert_eq!(carry(&original, &edited, &mut replaced), ["lines[1]"]);
        assert_eq!(
            replaced["lines"][1],
            json!({ "item_code": "ERP-C", "quantity": "2" })
        );
    }

    fn sales_order() -> Value {
        json!({
            "external_id": "42",
            "customer_account": "ada@example.com",
            "currency": "EUR",
            "order_date": "2026-11-20",
            "lines": [{ "item_code": "ERP-1", "quantity": "1", "unit_price_net": "10.00",
                        "unit_price_gross": "11.90", "discount": "0", "tax": "1.90" }],
            "shipping_cost": "0",
            "tax_total": "1.90",
            "total_gross": "11.90",
            "bill_to": null,
            "ship_to": { "name": "Ada", "street": "1 Main Street", "city": "Berlin",
                         "postal_code": "10115", "country": "DE" }
        })
    }

    #[test]
    fn an_edit_must_stay_the_same_order_of_the_same_shape_within_the_rules() {
        let ok = parse("erp", 42, "#1042", &sales_order().to_string()).expect("valid");
        assert_eq!(ok["ship_to"]["street"], "1 Main Street");

        let err = |v: Value| {
            parse("erp", 42, "#1042", &v.to_string())
                .unwrap_err()
                .to_string()
        };
        let mut other = sales_order();
        other["external_id"] = json!("43");
        assert_eq!(
            err(other),
            "external_id says which order this is in the ERP; it cannot be edited."
        );
        let mut typo = sales_order();
        typo["ship_to"]["stret"] = json!("x");
        assert_eq!(
            err(typo),
            "ship_to.stret is not a field of the ERP payload; remove it or check its spelling."
        );
        let mut long = sales_order();
        long["ship_to"]["street"] = json!("x".repeat(61));
        assert!(err(long).starts_with("The edited payload still breaks the ERP's rules:"));
        assert!(
            parse("erp", 42, "#1042", "{ not json")
                .unwrap_err()
                .to_string()
                .starts_with("The payload is not valid JSON: ")
        );
    }
}

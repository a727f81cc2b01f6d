//! What the ERP needs beyond the sales order itself: the cancellation, shipments and refunds
//! the store recorded, as changes to the ERP document (which the ERP keeps as documents of
//! their own, keyed by the store's ids).

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

use super::{ItemCodes, erp_lines, erp_quantity, line_item_codes, minor_units};
use crate::connectors::erp::ErpCreditNote;
use crate::connectors::{
    ErpCreditNoteRequest, ErpDocument, ErpFulfilmentLine, ErpFulfilmentRequest, ErpStatus,
};
use crate::domain::{CancelReason, Order, Refund};
use crate::engine::exception::Problem;

/// One change to send to an ERP sales order after it was created or updated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ErpChange {
    /// Cancel the sales order.
    Cancel {
        /// Why, for the ERP's audit trail.
        reason: Option<String>,
    },
    /// Record a shipment (keyed by the store's fulfilment id).
    Fulfilment(ErpFulfilmentRequest),
    /// Record a refund as a credit note (keyed by the store's refund id).
    CreditNote(ErpCreditNoteRequest),
}

impl ErpChange {
    /// A key for the change, stable across attempts and unique within its order: `cancel`,
    /// `fulfilment:<store fulfilment id>` or `credit_note:<store refund id>`. Part of the
    /// idempotency key the worker sends.
    pub fn key(&self) -> String {
        match self {
            ErpChange::Cancel { .. } => "cancel".to_owned(),
            ErpChange::Fulfilment(f) => format!("fulfilment:{}", f.external_id),
            ErpChange::CreditNote(c) => format!("credit_note:{}", c.external_id),
        }
    }
}

/// Whether [`erp_changes`] can find anything to send for `order`, whatever the ERP's document
/// holds: only a cancellation, a shipment or a refund of money can be one. When it cannot, the
/// worker does not read the document back after the upsert (most orders, most of the time).
pub fn may_change_document(order: &Order) -> bool {
    order.cancelled_at.is_some()
        || !order.fulfillments.is_empty()
        || order
            .refunds
            .iter()
            .any(|r| r.amount.amount > Decimal::ZERO)
}

/// What must be sent, beyond the sales order upsert, for `doc` to reflect `order`, in the order
/// to send it:
///
/// 1. **Cancellation**, when the store cancelled the order (`cancelled_at`) and the document is
///    not cancelled — unless anything shipped: an ERP refuses to cancel an order with shipments
///    (and so does a warehouse), so the refunds, as credit notes, carry the cancellation. A
///    payment voided without a cancellation cancels nothing: the store's order is still open.
/// 2. **Shipments** the document does not list yet (by store fulfilment id), oldest first, one
///    line per item code, the one the document's line has (an operator's edit included);
///    lines whose units are no longer on the order are left out.
/// 3. **Credit notes** for refunds the document does not list yet (by store refund id), oldest
///    first (and, for a refund whose money grew since it was credited, one more for the
///    difference, `<refund id>-2`), for the money returned (gross, in the currency's smallest
///    unit). A refund that returned no money (items restocked only) is not a credit note.
///
/// Shipments need item codes, so an unmapped SKU on a line that shipped is a problem, exactly
/// as for the sales order.
pub fn erp_changes(
    order: &Order,
    doc: &ErpDocument,
    item_codes: ItemCodes<'_>,
) -> Result<Vec<ErpChange>, Vec<Problem>> {
    let mut changes = Vec::new();
    let shipped = !order.fulfillments.is_empty() || !doc.fulfilments.is_empty();
    if order.cancelled_at.is_some() && doc.status != ErpStatus::Cancelled && !shipped {
        changes.push(ErpChange::Cancel {
            reason: Some(cancel_reason(order.cancel_reason).to_owned()),
        });
    }

    let new_shipments: Vec<_> = order
        .fulfillments
        .iter()
        .filter(|f| doc.fulfilment(&f.fulfillment_id.to_string()).is_none())
        .collect();
    if !new_shipments.is_empty() {
        let mut codes = line_item_codes(order, item_codes)?;
        // A shipment must name the item code the sales order has: the document's, which is
        // the mapping's unless an operator edited the payload (an item code the ERP refused,
        // changed by hand). Payload line `i` is the `i`-th of `erp_lines`.
        if doc.order.lines.len() == erp_lines(order).count() {
            for (line, sent) in erp_lines(order).zip(&doc.order.lines) {
                codes.insert(line.line_id, sent.item_code.clone());
            }
        }
        for shipment in new_shipments {
            let mut lines: Vec<ErpFulfilmentLine> = Vec::new();
            for shipped in &shipment.lines {
                let on_order = order
                    .lines
                    .iter()
                    .find(|l| l.line_id == shipped.line_id)
                    .is_some_and(|l| erp_quantity(l) > 0);
                let code = codes.get(&shipped.line_id);
                let (Some(code), true, true) = (code, on_order, shipped.quantity > 0) else {
                    continue;
                };
                let quantity = Decimal::from(shipped.quantity);
                match lines.iter_mut().find(|l| &l.item_code == code) {
                    Some(line) => line.quantity += quantity,
                    None => lines.push(ErpFulfilmentLine {
                        item_code: code.clone(),
                        quantity,
                    }),
                }
            }
            if lines.is_empty() {
                continue;
            }
            changes.push(ErpChange::Fulfilment(ErpFulfilmentRequest {
                external_id: shipment.fulfillment_id.to_string(),
                shipped_at: Some(shipment.created_at),
                tracking_number: shipment.tracking_number.clone(),
                lines,
            }));
        }
    }

    for refund in &order.refunds {
        // A refund's money can grow after it was first credited: a transaction still pending
        // then (a slow gateway, a gift card and a card) succeeds later. What it returned beyond
        // the credit notes already made for it is credited by another, `<refund id>-2`, `-3`…
        let refund_id = refund.refund_id.to_string();
        let follow_up = format!("{refund_id}-");
        let made: Vec<&ErpCreditNote> = doc
            .credit_notes
            .iter()
            .filter(|c| {
                c.external_id == refund_id
                    || c.external_id
                        .strip_prefix(&follow_up)
                        .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()))
            })
            .collect();
        let credited = made.iter().map(|c| c.amount).sum::<Decimal>();
        let owed = minor_units(refund.amount.amount, refund.amount.currency) - credited;
        if owed <= Decimal::ZERO {
            continue;
        }
        let external_id = match made.len() {
            0 => refund_id,
            n => format!("{refund_id}-{}", n + 1),
        };
        changes.push(ErpChange::CreditNote(ErpCreditNoteRequest {
            external_id,
            amount: owed,
            reason: refund_reason(order, refund),
        }));
    }
    Ok(changes)
}

/// Why the order was cancelled, for the ERP's audit trail.
fn cancel_reason(reason: Option<CancelReason>) -> &'static str {
    match reason {
        Some(CancelReason::Customer) => "Cancelled in the store: the customer changed their mind",
        Some(CancelReason::Fraud) => "Cancelled in the store: suspected fraud",
        Some(CancelReason::Inventory) => "Cancelled in the store: items out of stock",
        Some(CancelReason::Declined) => "Cancelled in the store: payment declined",
        Some(CancelReason::Staff) => "Cancelled in the store by staff",
        Some(CancelReason::Other) | None => "Cancelled in the store",
    }
}

/// "Refund on #1042 in the store: 2 items returned" (or "money only", or "order cancelled").
fn refund_reason(order: &Order, refund: &Refund) -> String {
    let name: String = order.name.chars().take(100).collect();
    let units: u64 = refund.lines.iter().map(|l| u64::from(l.quantity)).sum();
    let cancelled = order
        .cancelled_at
        .is_some_and(|at: DateTime<Utc>| refund.created_at >= at);
    let what = match (cancelled, units) {
        (true, _) => "order cancelled".to_owned(),
        (false, 0) => "money only".to_owned(),
        (false, 1) => "1 item returned".to_owned(),
        (false, n) => format!("{n} items returned"),
    };
    format!("Refund on {name} in the store: {what}")
}

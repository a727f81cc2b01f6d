//! What the ERP needs beyond the sales order: cancellation, shipments, credit notes.

use rust_decimal::Decimal;

use super::{at, codes, dec, doc, order, refund, shipment};
use crate::connectors::erp::{ErpCreditNote, ErpFulfilment};
use crate::connectors::{ErpDocument, ErpFulfilmentLine, ErpStatus};
use crate::domain::{CancelReason, Sku};
use crate::engine::map::{ErpChange, erp_changes, may_change_document};

#[test]
fn a_cancelled_unshipped_order_is_cancelled_in_the_erp_once() {
    let mut o = order();
    o.cancelled_at = Some(at(13));
    o.cancel_reason = Some(CancelReason::Inventory);
    let d = doc(&o);
    let changes = erp_changes(&o, &d, &codes).unwrap();
    assert_eq!(
        changes,
        [ErpChange::Cancel {
            reason: Some("Cancelled in the store: items out of stock".into())
        }]
    );
    assert_eq!(changes[0].key(), "cancel");
    let cancelled = ErpDocument {
        status: ErpStatus::Cancelled,
        ..d
    };
    assert!(erp_changes(&o, &cancelled, &codes).unwrap().is_empty());
}

#[test]
fn a_cancelled_order_that_shipped_is_settled_by_credit_notes_not_a_cancel() {
    let mut o = order();
    o.fulfillments = vec![shipment(900, &[(11, 1)])];
    o.cancelled_at = Some(at(13));
    o.refunds = vec![refund(700, "45.85", at(13), 1)];
    let changes = erp_changes(&o, &doc(&o), &codes).unwrap();
    assert!(
        changes
            .iter()
            .all(|c| !matches!(c, ErpChange::Cancel { .. })),
        "{changes:?}"
    );
    let credit = changes.iter().find_map(|c| match c {
        ErpChange::CreditNote(c) => Some(c),
        _ => None,
    });
    let credit = credit.unwrap();
    assert_eq!(credit.amount.to_string(), "45.85");
    assert_eq!(
        credit.reason,
        "Refund on #1042 in the store: order cancelled"
    );
}

#[test]
fn shipments_and_refunds_not_yet_in_the_erp_become_changes() {
    let mut o = order();
    // Two shipments; the second ships the TEE line in two parts of one shipment record.
    o.fulfillments = vec![
        shipment(900, &[(11, 1)]),
        shipment(901, &[(11, 1), (12, 1), (11, 0)]),
    ];
    o.refunds = vec![
        refund(700, "24.30", at(14), 1),
        refund(701, "0.00", at(15), 1),
        refund(702, "3.00", at(16), 0),
    ];
    let mut d = doc(&o);
    d.fulfilments.push(ErpFulfilment {
        number: "SH-000001".into(),
        external_id: "900".into(),
        shipped_at: None,
        tracking_number: None,
        lines: vec![ErpFulfilmentLine {
            item_code: "IT-TEE".into(),
            quantity: Decimal::ONE,
        }],
        created_at: at(12),
    });
    d.credit_notes.push(ErpCreditNote {
        number: "CN-000001".into(),
        external_id: "700".into(),
        amount: dec("24.30"),
        currency: "USD".into(),
        reason: "x".into(),
        created_at: at(14),
    });
    let changes = erp_changes(&o, &d, &codes).unwrap();
    let keys: Vec<String> = changes.iter().map(ErpChange::key).collect();
    // 900 and 700 are already there; 701 returned no money.
    assert_eq!(keys, ["fulfilment:901", "credit_note:702"]);
    let ErpChange::Fulfilment(shipment) = &changes[0] else {
        panic!("{changes:?}")
    };
    assert_eq!(shipment.shipped_at, Some(at(12)));
    assert_eq!(shipment.tracking_number.as_deref(), Some("1Z999"));
    let lines: Vec<(&str, String)> = shipment
        .lines
        .iter()
        .map(|l| (l.item_code.as_str(), l.quantity.to_string()))
        .collect();
    assert_eq!(
        lines,
        [("IT-TEE", "1".to_owned()), ("IT-MUG", "1".to_owned())]
    );
    let ErpChange::CreditNote(credit) = &changes[1] else {
        panic!("{changes:?}")
    };
    assert_eq!(
        (credit.amount.to_string(), credit.reason.as_str()),
        ("3.00".into(), "Refund on #1042 in the store: money only")
    );
}

#[test]
fn a_shipment_of_an_unmapped_sku_is_a_problem() {
    let mut o = order();
    o.fulfillments = vec![shipment(900, &[(11, 1)])];
    let d = doc(&o);
    o.lines[0].sku = Sku::parse("NEW-9").ok();
    let problems = erp_changes(&o, &d, &codes).unwrap_err();
    assert_eq!(problems[0].fingerprint, "missing_sku:erp:NEW-9");
    // With nothing new to ship, mapping is not needed.
    let mut shipped = d.clone();
    shipped.fulfilments.push(ErpFulfilment {
        number: "SH-1".into(),
        external_id: "900".into(),
        shipped_at: None,
        tracking_number: None,
        lines: Vec::new(),
        created_at: at(12),
    });
    assert_eq!(erp_changes(&o, &shipped, &codes).unwrap(), []);
}

#[test]
fn only_a_cancellation_a_shipment_or_money_refunded_can_change_the_document() {
    // Nothing of the three: no change against any state of the document, so the worker may
    // skip reading it back.
    let mut o = order();
    o.refunds = vec![refund(701, "0.00", at(13), 1)];
    assert!(!may_change_document(&o));
    let d = doc(&o);
    let cancelled = ErpDocument {
        status: ErpStatus::Cancelled,
        ..d.clone()
    };
    for document in [&d, &cancelled] {
        assert!(erp_changes(&o, document, &codes).unwrap().is_empty());
    }

    let mut c = order();
    c.cancelled_at = Some(at(13));
    let mut s = order();
    s.fulfillments = vec![shipment(900, &[(11, 1)])];
    let mut r = order();
    r.refunds = vec![refund(700, "5.00", at(13), 0)];
    for changed in [&c, &s, &r] {
        assert!(may_change_document(changed));
        assert!(
            !erp_changes(changed, &doc(changed), &codes)
                .unwrap()
                .is_empty()
        );
    }
}

/// An operator edited the item code the ERP refused on the sales order: its shipments name the
/// item code the document has, not the mapping's, which the ERP would answer `not_on_order`.
#[test]
fn a_shipment_names_the_item_code_the_sales_order_has() {
    let mut o = order();
    o.fulfillments = vec![shipment(900, &[(11, 2)])];
    let mut d = doc(&o);
    d.order.lines[0].item_code = "IT-TEE-2".into();
    let changes = erp_changes(&o, &d, &codes).unwrap();
    let lines = changes
        .iter()
        .find_map(|c| match c {
            ErpChange::Fulfilment(f) => Some(&f.lines),
            _ => None,
        })
        .unwrap();
    assert_eq!(lines[0].item_code, "IT-TEE-2");
}

/// A refund credited at 10.00 while 5.00 of it was still pending returns 15.00 once that
/// succeeds: the ERP gets a second credit note for the 5.00, keyed `<refund id>-2`, and nothing
/// more once it has it.
#[test]
fn money_a_refund_returned_after_its_credit_note_is_credited_again() {
    let mut o = order();
    o.refunds = vec![refund(700, "15.00", at(14), 0)];
    let mut d = doc(&o);
    let credit = |external_id: &str, amount: &str| ErpCreditNote {
        number: format!("CN-{external_id}"),
        external_id: external_id.into(),
        amount: dec(amount),
        currency: "USD".into(),
        reason: "Refund on #1042 in the store".into(),
        created_at: at(14),
    };
    d.credit_notes.push(credit("700", "10.00"));
    let changes = erp_changes(&o, &d, &codes).unwrap();
    let [ErpChange::CreditNote(more)] = changes.as_slice() else {
        panic!("{changes:?}");
    };
    assert_eq!(
        (more.external_id.as_str(), more.amount.to_string().as_str()),
        ("700-2", "5.00")
    );
    d.credit_notes.push(credit("700-2", "5.00"));
    assert!(erp_changes(&o, &d, &codes).unwrap().is_empty());
    // Another refund whose id happens to start the same is not counted as this one's.
    d.credit_notes.push(credit("7001", "99.00"));
    assert!(erp_changes(&o, &d, &codes).unwrap().is_empty());
}

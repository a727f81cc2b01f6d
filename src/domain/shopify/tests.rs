//! Tests for reading Shopify payloads, against fixtures in the shape Shopify sends (2024-10).

use rust_decimal::Decimal;
use serde_json::{Value, json};

use super::fixtures::{CUSTOMER, ORDER, REFUND};
use super::*;
use crate::domain::order::Lifecycle;

fn fixture() -> Value {
    serde_json::from_str(ORDER).unwrap()
}

fn body(value: &Value) -> Vec<u8> {
    serde_json::to_vec(value).unwrap()
}

fn dec(s: &str) -> Decimal {
    Decimal::from_str_exact(s).unwrap()
}

fn parse_err(value: &Value) -> String {
    parse_order(&body(value)).unwrap_err().to_string()
}

#[test]
fn reads_a_full_order_payload() {
    let order = parse_order(ORDER.as_bytes()).unwrap();
    assert_eq!(order.store_order_id, 5_813_623_193_661);
    assert_eq!(order.name, "#1042");
    assert_eq!(order.order_number, 1042);
    assert_eq!(order.created_at.to_rfc3339(), "2024-10-01T13:15:00+00:00");
    assert_eq!(order.updated_at.to_rfc3339(), "2024-10-03T18:02:11+00:00");
    assert_eq!(order.currency.as_str(), "USD");
    assert_eq!(order.financial_status, FinancialStatus::PartiallyRefunded);
    assert_eq!(order.fulfillment_status, FulfillmentStatus::Partial);
    assert_eq!(order.lifecycle(), Lifecycle::PartiallyRefunded);
    assert_eq!(
        order.email.as_ref().unwrap().as_str(),
        "ana.diaz+shop@example.com"
    );

    let customer = order.customer.as_ref().unwrap();
    assert_eq!(customer.store_customer_id, Some(7_123_456_789_012));
    assert_eq!(
        customer.email.as_ref().unwrap().as_str(),
        "ana.diaz+shop@example.com"
    );
    assert_eq!(customer.phone.as_ref().unwrap().as_str(), "+14155550100");
    assert_eq!(customer.full_name().as_deref(), Some("Ana Díaz"));
    assert!(!order.is_guest_checkout());
    // Her details are as recent as her customer record, not the order's later changes.
    assert_eq!(
        order.customer_details_as_of().to_rfc3339(),
        "2024-10-01T13:15:01+00:00"
    );

    let [tee, tote, wrap] = &order.lines[..] else {
        panic!("expected three lines, got {}", order.lines.len());
    };
    assert_eq!(tee.sku.as_ref().unwrap().as_str(), "TEE-BLK-M");
    assert_eq!(tee.title, "Organic Cotton Tee - Black / M");
    assert_eq!(
        (tee.quantity, tee.fulfilled_quantity, tee.refunded_quantity),
        (2, 2, 0)
    );
    assert_eq!(tee.unit_price.amount, dec("25.00"));
    assert_eq!(
        tee.total_discount.amount,
        dec("5.00"),
        "from discount_allocations"
    );
    assert_eq!(tee.tax.amount, dec("3.60"));
    assert_eq!(tee.net_total().unwrap().amount, dec("45.00"));
    assert_eq!(tote.sku.as_ref().unwrap().as_str(), "NEW-TOTE-01");
    assert_eq!(
        tote.fulfilled_quantity, 0,
        "the cancelled fulfilment does not count"
    );
    assert_eq!(tote.total_discount.amount, Decimal::ZERO);
    assert_eq!(wrap.sku, None, "custom item without SKU");
    assert_eq!((wrap.current_quantity, wrap.refunded_quantity), (0, 1));
    assert_eq!(order.lines_without_sku().count(), 1);

    assert_eq!(order.subtotal.amount, dec("67.50"));
    assert_eq!(order.total_discounts.amount, dec("5.00"));
    assert_eq!(order.total_tax.amount, dec("5.40"));
    assert_eq!(
        order.shipping.amount,
        dec("8.00"),
        "the removed shipping line is ignored"
    );
    assert_eq!(order.total.amount, dec("80.90"));
    assert_eq!(
        order.total_refunded.amount,
        dec("4.32"),
        "the failed transaction is ignored"
    );
    assert!(!order.taxes_included);

    let billing = order.billing_address.as_ref().unwrap();
    assert_eq!(billing.name.as_deref(), Some("Ana Díaz"));
    assert_eq!(billing.address2, None, "blank becomes absent");
    assert_eq!(billing.phone.as_deref(), Some("(415) 555-0100"));
    assert_eq!(billing.phone_e164().unwrap().as_str(), "+14155550100");
    let shipping = order.shipping_address.as_ref().unwrap();
    assert_eq!(shipping.company.as_deref(), Some("Díaz Studio"));
    assert_eq!(shipping.country_code.unwrap().as_str(), "US");
    assert_eq!(shipping.province_code.as_deref(), Some("CA"));
    assert_eq!(shipping.zip.as_deref(), Some("94105"));
}

#[test]
fn canonical_order_survives_a_json_round_trip() {
    let order = parse_order(ORDER.as_bytes()).unwrap();
    let stored = serde_json::to_string(&order).unwrap();
    assert_eq!(serde_json::from_str::<Order>(&stored).unwrap(), order);
}

#[test]
fn guest_checkout_is_identified_by_the_order_contact() {
    let mut value = fixture();
    value.as_object_mut().unwrap().remove("customer");
    let order = parse_order(&body(&value)).unwrap();
    let guest = order.customer.as_ref().unwrap();
    assert!(order.is_guest_checkout());
    assert_eq!(guest.store_customer_id, None);
    assert_eq!(
        guest.email.as_ref().unwrap().as_str(),
        "ana.diaz+shop@example.com"
    );
    assert_eq!(
        guest.phone.as_ref().unwrap().as_str(),
        "+14155550100",
        "billing phone"
    );
    assert_eq!(guest.first_name.as_deref(), Some("Ana"));
    assert_eq!(guest.last_name.as_deref(), Some("Díaz"));
    // A guest's details are as recent as the checkout that gave them.
    assert_eq!(guest.updated_at, None);
    assert_eq!(order.customer_details_as_of(), order.created_at);
}

#[test]
fn anonymous_digital_order_has_no_customer_and_no_shipping() {
    let mut value = fixture();
    for key in [
        "customer",
        "email",
        "contact_email",
        "billing_address",
        "shipping_address",
    ] {
        value[key] = Value::Null;
    }
    value["shipping_lines"] = json!([]);
    let order = parse_order(&body(&value)).unwrap();
    assert_eq!(order.customer, None);
    assert_eq!(order.shipping_address, None);
    assert!(order.shipping.is_zero());
    assert!(order.is_guest_checkout());
}

#[test]
fn shipping_is_what_the_customer_pays_for_it_after_its_discounts() {
    let mut value = fixture();
    value["shipping_lines"] = json!([
        // A free-shipping code, told both ways: in the discounted price, or only allocated.
        {"id": 1, "title": "Standard", "price": "8.00", "discounted_price": "0.00",
         "discount_allocations": [{"amount": "8.00", "discount_application_index": 1}]},
        {"id": 2, "title": "Standard", "price": "8.00", "discounted_price": "8.00",
         "discount_allocations": [{"amount": "8.00", "discount_application_index": 1}]},
        // The line's own discount, in its discounted price only; part of a price allocated.
        {"id": 3, "title": "Gift wrap courier", "price": "3.50", "discounted_price": "2.50"},
        {"id": 4, "title": "Express", "price": "19.95", "discount_allocations": [{"amount": "5.00"}]},
        // Allocations beyond the price never make shipping negative.
        {"id": 5, "title": "Pickup", "price": "1.00", "discount_allocations": [{"amount": "4.00"}]},
        {"id": 6, "title": "An older payload", "price": "1.25"},
        {"id": 7, "title": "Removed", "price": "9.00", "discounted_price": "9.00", "is_removed": true},
    ]);
    let order = parse_order(&body(&value)).unwrap();
    assert_eq!(
        order.shipping.amount,
        dec("18.70"),
        "0 + 0 + 2.50 + 14.95 + 0 + 1.25, the removed line left out"
    );
}

#[test]
fn cancelled_order() {
    let mut value = fixture();
    value["cancelled_at"] = json!("2024-10-04T10:00:00+02:00");
    value["cancel_reason"] = json!("inventory");
    value["financial_status"] = json!("voided");
    value["refunds"] = json!([]);
    let order = parse_order(&body(&value)).unwrap();
    assert_eq!(
        order.cancelled_at.unwrap().to_rfc3339(),
        "2024-10-04T08:00:00+00:00"
    );
    assert_eq!(order.cancel_reason, Some(CancelReason::Inventory));
    assert_eq!(order.lifecycle(), Lifecycle::Cancelled);
    assert!(order.total_refunded.is_zero());
}

#[test]
fn bad_price_names_the_field_and_the_value() {
    let mut value = fixture();
    value["line_items"][2]["price"] = json!("abc");
    assert_eq!(
        parse_err(&value),
        "line_items[2].price is \"abc\", not a decimal amount"
    );
    let mut value = fixture();
    value["refunds"][0]["transactions"][1]["amount"] = json!("4,32");
    assert_eq!(
        parse_err(&value),
        "refunds[0].transactions[1].amount is \"4,32\", not a decimal amount"
    );
    let mut value = fixture();
    value["total_price"] = json!(null);
    assert_eq!(parse_err(&value), "total_price is missing");
}

#[test]
fn missing_id_or_version_is_an_error() {
    for key in ["id", "updated_at"] {
        let mut value = fixture();
        value.as_object_mut().unwrap().remove(key);
        assert_eq!(parse_err(&value), format!("{key} is missing"));
    }
    let mut value = fixture();
    value["line_items"][1].as_object_mut().unwrap().remove("id");
    assert_eq!(parse_err(&value), "line_items[1].id is missing");
    let mut value = fixture();
    value["updated_at"] = json!("yesterday");
    assert_eq!(
        parse_err(&value),
        "updated_at is \"yesterday\", not a timestamp like \"2024-10-01T12:34:56-04:00\""
    );
}

#[test]
fn unknown_statuses_and_bad_identities_are_explained() {
    let mut value = fixture();
    value["financial_status"] = json!("settled");
    assert_eq!(
        parse_err(&value),
        "financial_status is \"settled\", not one of pending, authorized, partially_paid, \
         paid, partially_refunded, refunded, voided, expired"
    );
    let mut value = fixture();
    value["fulfillment_status"] = json!("shipped");
    assert!(parse_err(&value).starts_with("fulfillment_status is \"shipped\", not one of"));
    let mut value = fixture();
    value["customer"]["email"] = json!("ana at example");
    assert!(parse_err(&value).starts_with("customer.email is \"ana at example\", not an email"));
    let mut value = fixture();
    value["line_items"][0]["sku"] = json!("X".repeat(256));
    assert!(parse_err(&value).contains("not a usable SKU (a SKU has at most 255 characters"));
    let mut value = fixture();
    value["shipping_address"]["country_code"] = json!("usa");
    assert!(parse_err(&value).starts_with("shipping_address.country_code is \"usa\""));
}

#[test]
fn malformed_bodies_are_refused_plainly() {
    assert!(matches!(
        parse_order(b"{not json"),
        Err(ParseError::NotJson(_))
    ));
    assert_eq!(
        parse_order(b"[1,2]").unwrap_err().to_string(),
        "the body is a list, not a JSON object"
    );
    assert_eq!(
        parse_order(br#"{"id": "5813623193661"}"#)
            .unwrap_err()
            .to_string(),
        "id is \"5813623193661\", not a whole number"
    );
}

#[test]
fn admin_api_wrapper_is_accepted_and_paths_say_so() {
    let mut wrapped = json!({ "order": fixture() });
    assert_eq!(parse_order(&body(&wrapped)).unwrap().name, "#1042");
    wrapped["order"]["line_items"][0]["quantity"] = json!(-1);
    assert_eq!(
        parse_order(&body(&wrapped)).unwrap_err().to_string(),
        "order.line_items[0].quantity is -1, not a whole number of units (0 or more)"
    );
}

#[test]
fn line_status_stands_in_for_missing_fulfilments() {
    let mut value = fixture();
    value.as_object_mut().unwrap().remove("fulfillments");
    let order = parse_order(&body(&value)).unwrap();
    assert_eq!(order.lines[0].fulfilled_quantity, 2);
    assert_eq!(order.lines[1].fulfilled_quantity, 0);
}

#[test]
fn older_payloads_use_total_discount_when_there_are_no_allocations() {
    let mut value = fixture();
    value["line_items"][0]["discount_allocations"] = json!([]);
    value["line_items"][0]["total_discount"] = json!("5.00");
    let order = parse_order(&body(&value)).unwrap();
    assert_eq!(order.lines[0].total_discount.amount, dec("5.00"));
}

#[test]
fn reads_a_refund() {
    let refund = parse_refund(REFUND.as_bytes()).unwrap();
    assert_eq!(refund.refund_id, 9_001_002);
    assert_eq!(refund.order_id, 5_813_623_193_661);
    assert_eq!(refund.created_at.to_rfc3339(), "2024-10-05T15:30:00+00:00");
    assert_eq!(refund.amount.to_string(), "24.30 USD");
    let line = &refund.lines[0];
    assert_eq!((line.line_item_id, line.quantity), (13_688_971_493_691, 1));
    assert_eq!(
        line.subtotal.amount,
        dec("22.5"),
        "bare JSON number read as decimal text"
    );
    assert_eq!(line.total_tax.amount, dec("1.8"));
}

#[test]
fn refund_in_another_currency_is_refused_by_field() {
    let mut value: Value = serde_json::from_str(REFUND).unwrap();
    value["transactions"]
        .as_array_mut()
        .unwrap()
        .push(json!({"kind": "refund", "status": "success", "amount": "1.00", "currency": "EUR"}));
    assert_eq!(
        parse_refund(&body(&value)).unwrap_err().to_string(),
        "transactions[1].currency is \"EUR\", not the order's currency, USD"
    );
}

#[test]
fn refund_paid_in_the_customers_currency_counts_in_shop_money() {
    let mut value: Value = serde_json::from_str(REFUND).unwrap();
    value["transactions"][0]["currency"] = json!("CAD");
    value["transactions"][0]["amount"] = json!("33.05");
    value["transactions"][0]["amount_set"] = json!({
        "shop_money": {"amount": "24.30", "currency_code": "USD"},
        "presentment_money": {"amount": "33.05", "currency_code": "CAD"}
    });
    let mut order = fixture();
    order["refunds"] = json!([value.clone()]);
    assert_eq!(
        parse_order(&body(&order))
            .unwrap()
            .total_refunded
            .to_string(),
        "24.30 USD"
    );
    value["transactions"][0]["currency"] = json!("USD");
    assert_eq!(
        parse_refund(&body(&value)).unwrap().amount.to_string(),
        "33.05 USD"
    );
}

#[test]
fn restock_only_refund_takes_its_currency_from_the_lines() {
    let mut value: Value = serde_json::from_str(REFUND).unwrap();
    value["transactions"] = json!([]);
    let refund = parse_refund(&body(&value)).unwrap();
    assert!(refund.amount.is_zero());
    assert_eq!(refund.amount.currency.as_str(), "USD");
    value["refund_line_items"][0]
        .as_object_mut()
        .unwrap()
        .remove("subtotal_set");
    assert_eq!(
        parse_refund(&body(&value)).unwrap_err().to_string(),
        "transactions: the refund has no transaction or line that says which currency it is in"
    );
}

#[test]
fn reads_a_customer() {
    let customer = parse_customer(CUSTOMER.as_bytes()).unwrap();
    assert_eq!(customer.id, 7_123_456_789_012);
    assert_eq!(
        customer.email.as_ref().unwrap().as_str(),
        "ana.diaz+shop@example.com"
    );
    assert_eq!(
        customer.email.as_ref().unwrap().without_plus_tag().as_str(),
        "ana.diaz@example.com"
    );
    assert_eq!(
        customer.phone.as_ref().unwrap().as_str(),
        "+14155550100",
        "US from address"
    );
    assert_eq!(
        customer.updated_at.to_rfc3339(),
        "2024-10-06T12:00:00+00:00"
    );
    assert_eq!(
        customer.default_address.as_ref().unwrap().name.as_deref(),
        Some("Ana Díaz")
    );
    assert_eq!(
        customer.customer_ref().store_customer_id,
        Some(7_123_456_789_012)
    );

    let wrapped = format!(r#"{{"customer": {CUSTOMER}}}"#);
    assert_eq!(parse_customer(wrapped.as_bytes()).unwrap(), customer);

    // A national number with no address to tell its country is left out; the customer is not.
    let mut value: Value = serde_json::from_str(CUSTOMER).unwrap();
    value["default_address"] = Value::Null;
    value["email"] = Value::Null;
    assert_eq!(parse_customer(&body(&value)).unwrap().phone, None);
    value.as_object_mut().unwrap().remove("updated_at");
    value["phone"] = json!("+14155550100");
    assert_eq!(
        parse_customer(&body(&value)).unwrap_err().to_string(),
        "updated_at is missing"
    );
}

#[test]
fn orders_edited_is_a_notice_not_an_order() {
    let edited = br#"{"order_edit": {"id": 33001, "app_id": null, "created_at":
        "2024-10-02T10:00:00-04:00", "committed_at": "2024-10-02T10:01:00-04:00",
        "notify_customer": false, "order_id": 5813623193661, "staff_note": "",
        "user_id": 1001, "line_items": {"additions": [], "removals": [{"id": 13688971559227,
        "delta": 1}]}, "discounts": {"line_item": {"additions": [], "removals": []}},
        "shipping_lines": {"additions": [], "removals": []}}}"#;
    let notice = parse_order_edit(edited).unwrap();
    assert_eq!(
        (notice.edit_id, notice.order_id),
        (33_001, 5_813_623_193_661)
    );
    assert_eq!(
        notice.committed_at.unwrap().to_rfc3339(),
        "2024-10-02T14:01:00+00:00"
    );
    assert!(
        parse_order(edited)
            .unwrap_err()
            .to_string()
            .starts_with("the body: this is an orders/edited notice")
    );
    assert_eq!(
        parse_order_edit(ORDER.as_bytes()).unwrap_err().to_string(),
        "order_edit is missing"
    );
}

#[test]
fn errors_name_their_field() {
    let mut value = fixture();
    value["shipping_lines"][0]["price"] = json!(true);
    let err = parse_order(&body(&value)).unwrap_err();
    assert_eq!(err.field(), Some("shipping_lines[0].price"));
    assert_eq!(ParseError::NotJson("x".into()).field(), None);
}

#[test]
fn any_field_of_any_shape_gives_an_answer_never_a_panic() {
    let oddities = [
        json!(null),
        json!("x"),
        json!(""),
        json!(-1),
        json!(1e300),
        json!(u64::MAX),
        json!(true),
        json!([]),
        json!({}),
        json!("+999 999"),
    ];
    let mut paths: Vec<Vec<String>> = Vec::new();
    let original = fixture();
    for (key, value) in original.as_object().unwrap() {
        paths.push(vec![key.clone()]);
        if let Some(object) = value.as_object() {
            paths.extend(object.keys().map(|k| vec![key.clone(), k.clone()]));
        }
    }
    for key in original["line_items"][0].as_object().unwrap().keys() {
        paths.push(vec!["line_items".into(), "0".into(), key.clone()]);
    }
    for path in &paths {
        for odd in &oddities {
            let mut value = fixture();
            let mut slot = &mut value;
            for step in path {
                slot = match step.parse::<usize>() {
                    Ok(i) => &mut slot[i],
                    Err(_) => &mut slot[step.as_str()],
                };
            }
            *slot = odd.clone();
            // Either outcome is fine; the process must survive and errors must name a field.
            if let Err(err) = parse_order(&body(&value)) {
                assert!(err.field().is_some(), "{err}");
            }
        }
    }
}

/// What Shopify accepts is read: a SKU of up to 255 characters, and phone numbers as shoppers
/// type them (one that does not read as a number is left out, not the order refused).
#[test]
fn long_skus_and_phones_as_typed_do_not_refuse_the_order() {
    let mut value = fixture();
    value["line_items"][0]["sku"] = json!("X".repeat(255));
    value["customer"]["phone"] = json!("555");
    value["phone"] = json!("call after 6");
    let order = parse_order(&body(&value)).unwrap();
    assert_eq!(order.lines[0].sku.as_ref().unwrap().as_str().len(), 255);
    assert_eq!(order.customer.unwrap().phone, None);
}

/// Only fulfilments whose status is `success` are shipments: a fulfilment service's `pending`
/// or `open` one has not shipped, and may still fail.
#[test]
fn fulfilments_not_yet_shipped_are_not_shipments() {
    let mut value = fixture();
    // The line may already say "fulfilled" while its fulfilment is pending.
    value["line_items"][0]["fulfillment_status"] = json!("fulfilled");
    let line_id = value["line_items"][0]["id"].clone();
    let quantity = value["line_items"][0]["quantity"].clone();
    for (n, status) in ["pending", "open", "success"].into_iter().enumerate() {
        value["fulfillments"] = json!([{
            "id": 900 + n, "status": status, "created_at": "2024-10-02T10:00:00-04:00",
            "line_items": [{ "id": line_id, "quantity": quantity }]
        }]);
        let order = parse_order(&body(&value)).unwrap();
        let shipped = status == "success";
        assert_eq!(order.fulfillments.len(), usize::from(shipped), "{status}");
        assert_eq!(
            order.lines[0].fulfilled_quantity > 0,
            shipped,
            "{status}: {:?}",
            order.lines[0]
        );
    }
}

/// An order or refund that cannot be read still names its order, and how recent it was, when
/// those fields can be read; a refund's state is as recent as the order holding it (a
/// microsecond before the refund).
#[test]
fn an_unreadable_payload_still_names_its_order() {
    let reference = |value: &Value, refund: bool| {
        let bytes = body(value);
        order_reference(&parse_json(&bytes).expect("json"), refund)
    };
    let mut order = fixture();
    order["line_items"][0]["price"] = json!("twelve");
    assert!(parse_order(&body(&order)).is_err());
    assert_eq!(
        reference(&order, false),
        Some(OrderReference {
            order_id: 5_813_623_193_661,
            as_of: Some(
                parse_order(ORDER.as_bytes())
                    .expect("the fixture")
                    .updated_at
            ),
        })
    );
    let wrapped = json!({ "order": { "id": 7, "updated_at": "not a time" } });
    assert_eq!(
        reference(&wrapped, false),
        Some(OrderReference {
            order_id: 7,
            as_of: None
        })
    );
    let refund = json!({ "id": 1, "order_id": 7, "created_at": "2024-10-01T12:00:00Z" });
    assert_eq!(
        reference(&refund, true)
            .and_then(|r| r.as_of)
            .map(|at| at.to_rfc3339()),
        Some("2024-10-01T11:59:59.999999+00:00".to_string())
    );
    assert_eq!(reference(&json!({ "id": "A-7" }), false), None);
}

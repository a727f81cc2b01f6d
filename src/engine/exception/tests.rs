use std::time::Duration;

use chrono::{TimeDelta, TimeZone, Utc};

use super::*;
use crate::connectors::{DeliveryError, TransientKind};

fn sku(raw: &str) -> Sku {
    Sku::parse(raw).unwrap()
}

fn rejected(code: &str, field: Option<&str>, message: &str, max: Option<u64>) -> DeliveryError {
    DeliveryError::Rejected {
        status: 422,
        code: code.into(),
        field: field.map(Into::into),
        message: message.into(),
        max,
        request_id: Some("req_1".into()),
    }
}

fn transient(kind: TransientKind, message: &str) -> DeliveryError {
    DeliveryError::Transient {
        kind,
        message: message.into(),
        request_id: None,
    }
}

#[test]
fn kinds_and_destinations_have_stable_names() {
    assert_eq!(ExceptionKind::NeedsAction.as_str(), "needs_action");
    assert_eq!(ExceptionKind::Transient.as_str(), "transient");
    assert_eq!(ExceptionKind::Exhausted.as_str(), "exhausted");
    for d in Destination::ALL {
        assert_eq!(Destination::parse(d.as_str()), Some(d));
    }
    assert_eq!(Destination::parse("ERP"), None);
    assert_eq!(Destination::Crm.label(), "CRM");
    let json = serde_json::to_string(&ExceptionKind::NeedsAction).unwrap();
    assert_eq!(json, "\"needs_action\"");
}

#[test]
fn missing_sku_mapping_reads_like_the_design() {
    let p =
        Problem::missing_sku_mapping("#1042", &sku("ABC-123"), vec!["lines[0].item_code".into()]);
    assert_eq!(
        p.message,
        "SKU ABC-123 has no ERP item code, so order #1042 can't be created in the ERP."
    );
    assert_eq!(p.code, "missing_sku_mapping");
    assert_eq!(p.kind, ExceptionKind::NeedsAction);
    assert_eq!(p.action, "Map SKU");
    assert_eq!(p.fingerprint, "missing_sku:erp:ABC-123");
    assert_eq!(p.fields, ["lines[0].item_code"]);
}

#[test]
fn problems_found_together_are_told_together_under_the_first() {
    let unmapped = |raw: &str, line: usize| {
        Problem::missing_sku_mapping("#1042", &sku(raw), vec![format!("lines[{line}].item_code")])
    };
    assert!(Problem::together(Vec::new()).is_none());
    let one = Problem::together(vec![unmapped("ABC-123", 0)]).unwrap();
    assert_eq!(one, unmapped("ABC-123", 0), "one problem is told as it is");

    let three = Problem::together(vec![
        unmapped("ABC-123", 0),
        unmapped("XYZ-9", 1),
        unmapped("QQ-1", 3),
    ])
    .unwrap();
    assert_eq!(
        three.message,
        "SKU ABC-123 has no ERP item code, so order #1042 can't be created in the ERP. SKUs XYZ-9 \
         and QQ-1 on the same order have none either; the order waits until every one is mapped."
    );
    assert_eq!(
        (three.code, three.action, three.fingerprint.as_str()),
        ("missing_sku_mapping", "Map SKU", "missing_sku:erp:ABC-123"),
        "it joins the first SKU's group, and mapping that SKU releases it"
    );
    assert_eq!(
        three.fields,
        [
            "lines[0].item_code",
            "lines[1].item_code",
            "lines[3].item_code"
        ]
    );
    let two = Problem::together(vec![unmapped("ABC-123", 0), unmapped("XYZ-9", 1)]).unwrap();
    assert!(
        two.message.ends_with(
            " SKU XYZ-9 on the same order has none either; the order waits until every one is mapped."
        ),
        "{}",
        two.message
    );
    let many: Vec<Problem> = (0..6).map(|n| unmapped(&format!("S-{n}"), n)).collect();
    assert!(
        Problem::together(many)
            .unwrap()
            .message
            .contains(" SKUs S-1, S-2, S-3 and 2 more on the same order have none either;")
    );

    let address = Problem::together(vec![
        Problem::field_too_long(Destination::Erp, "ship_to.street", 74, 60),
        Problem::missing_field(Destination::Erp, "#1042", "ship_to.postal_code"),
        Problem::field_too_long(Destination::Erp, "ship_to.street", 74, 60),
    ])
    .unwrap();
    assert_eq!(
        address.message,
        "Ship-to street is 74 characters; the ERP accepts at most 60. Also: Order #1042 has no \
         shipping postal code, which the ERP requires.",
        "each problem told once"
    );
    assert_eq!(address.fingerprint, "field_too_long:erp:ship_to.street");
    assert_eq!(
        address.fields,
        ["ship_to.street", "ship_to.postal_code"],
        "each field once"
    );
}

#[test]
fn field_too_long_names_field_length_and_limit() {
    let p = Problem::field_too_long(Destination::Erp, "ship_to.street", 74, 60);
    assert_eq!(
        p.message,
        "Ship-to street is 74 characters; the ERP accepts at most 60."
    );
    assert_eq!(p.fingerprint, "field_too_long:erp:ship_to.street");
    assert_eq!(p.action, "Edit address");
    assert_eq!(p.fields, ["ship_to.street"]);

    let line = Problem::field_too_long(Destination::Erp, "lines[3].item_code", 45, 40);
    assert_eq!(
        line.message,
        "Item code on line 4 is 45 characters; the ERP accepts at most 40."
    );
    // Line numbers stay out of the fingerprint, so every order with the cause groups together.
    assert_eq!(line.fingerprint, "field_too_long:erp:lines.item_code");
    assert_eq!(line.action, "Map SKU");

    let name = Problem::field_too_long(Destination::Crm, "first_name", 95, 80);
    assert_eq!(
        name.message,
        "First name is 95 characters; the CRM accepts at most 80."
    );
    assert_eq!(name.action, "Fix in store, then retry");
}

#[test]
fn missing_field_says_what_is_missing_and_who_needs_it() {
    let p = Problem::missing_field(Destination::Erp, "#1042", "ship_to.postal_code");
    assert_eq!(
        p.message,
        "Order #1042 has no shipping postal code, which the ERP requires."
    );
    assert_eq!(p.fingerprint, "missing_field:erp:ship_to.postal_code");
    assert_eq!(p.action, "Fix in store, then retry");
    let lines = Problem::missing_field(Destination::Erp, "#7", "lines");
    assert_eq!(
        lines.message,
        "Order #7 has no items left to send, which the ERP requires."
    );
    let name = Problem::missing_field(Destination::Erp, "#7", "ship_to.name");
    assert_eq!(
        name.message,
        "Order #7 has no name on the shipping address, which the ERP requires."
    );
}

#[test]
fn auth_is_one_cause_per_destination() {
    let p = Problem::auth_expired(Destination::Erp, 401);
    assert_eq!(
        p.message,
        "The ERP rejected our credentials (401). Nothing will sync to the ERP until they are renewed."
    );
    assert_eq!(p.fingerprint, "auth:erp");
    assert_eq!(p.action, "Renew credentials");
    assert!(p.fields.is_empty());
}

#[test]
fn rate_limits_and_outages_are_transient_and_say_when_we_retry() {
    let p = Problem::rate_limited(Destination::Crm, Some(Duration::from_secs(30)), None);
    assert_eq!(
        p.message,
        "The CRM asked us to slow down; retrying in 30 s."
    );
    assert_eq!(p.kind, ExceptionKind::Transient);
    assert_eq!(p.action, action::NONE);
    let at = Utc.with_ymd_and_hms(2024, 10, 1, 14, 5, 0).unwrap();
    let p = Problem::rate_limited(Destination::Crm, None, Some(at));
    assert_eq!(
        p.message,
        "The CRM asked us to slow down; retrying at 14:05 UTC."
    );

    let p = Problem::destination_down(
        Destination::Erp,
        "The ERP did not answer within 10 s.",
        3,
        8,
        Some(at),
    );
    assert_eq!(
        p.message,
        "The ERP did not answer within 10 s; trying again at 14:05 UTC (try 4 of 8)."
    );
    assert_eq!(p.fingerprint, "destination_down:erp");
    assert_eq!(p.kind, ExceptionKind::Transient);
}

#[test]
fn rejections_quote_the_destination_and_name_the_field() {
    let p = Problem::rejected(
        Destination::Erp,
        "#1042",
        "invalid_state",
        Some("lines[0].quantity"),
        "SO-000042 is cancelled and can no longer change.",
    );
    assert_eq!(
        p.message,
        "The ERP refused order #1042 and said: \u{201c}SO-000042 is cancelled and can no longer \
         change.\u{201d} This concerns the quantity on line 1."
    );
    assert_eq!(p.fingerprint, "rejected:erp:invalid_state:lines.quantity");
    assert_eq!(p.action, "Edit / skip");
    let long = Problem::rejected(Destination::Crm, "#1", "x", None, &"é".repeat(400));
    assert!(long.message.contains('…'));
    assert_eq!(long.fingerprint, "rejected:crm:x");
}

#[test]
fn dead_letters_say_how_long_we_tried() {
    let p = Problem::dead_letter(
        Destination::Erp,
        "#1042",
        8,
        Some(TimeDelta::minutes(4 * 60 + 2)),
        "The ERP answered 503.",
    );
    assert_eq!(
        p.message,
        "Gave up sending order #1042 to the ERP after 8 tries over 4 h 2 min; last error: The ERP \
         answered 503."
    );
    assert_eq!(p.kind, ExceptionKind::Exhausted);
    assert_eq!(p.action, "Retry / skip");
    assert_eq!(p.fingerprint, "dead_letter:erp");
    let short = dead_letter(Destination::Crm, "#1", 1, None, "  ");
    assert_eq!(
        short.message,
        "Gave up sending order #1 to the CRM after 1 try; last error: unknown"
    );
    let negative = dead_letter(Destination::Crm, "#1", 2, Some(TimeDelta::seconds(-5)), "x");
    assert!(!negative.message.contains("over"));
}

#[test]
fn unknown_items_group_by_sku_when_it_is_known() {
    let with = Problem::unknown_item(
        "#9",
        Some(&sku("TEE-1")),
        Some("lines[0].item_code"),
        "Item T1 does not exist.",
    );
    assert_eq!(with.fingerprint, "missing_sku:erp:TEE-1");
    assert_eq!(with.code, "missing_sku_mapping");
    assert!(
        with.message
            .starts_with("SKU TEE-1 is mapped to an item code the ERP does not know")
    );
    assert!(
        with.message
            .ends_with("\u{201c}Item T1 does not exist.\u{201d}")
    );
    let without = Problem::unknown_item("#9", None, None, "Item T1 does not exist.");
    assert_eq!(without.fingerprint, "unknown_item:erp");
    assert!(without.fields.is_empty());
}

#[test]
fn unreadable_orders_never_quote_the_value() {
    let p = Problem::unreadable_order(Destination::Crm, 5001, Some("customer.email"));
    assert_eq!(
        p.message,
        "Store order 5001 could not be read back (at customer.email), so nothing was sent to the \
         CRM. Retry after an upgrade, or skip it."
    );
    assert_eq!(p.fingerprint, "unreadable_order:crm");
}

#[test]
fn unreadable_webhooks_name_the_order_or_group_by_topic() {
    let p = Problem::unreadable_webhook("refunds/create", Some(5001), Some("refund_line_items"));
    assert_eq!(
        p.message,
        "The store sent a refund of the order with store id 5001 (refunds/create) in a form \
         SyncDesk cannot read (at refund_line_items), so it reached neither the CRM nor the ERP. \
         Resync the order from the store; this closes by itself once SyncDesk holds a state of the \
         order as recent."
    );
    assert_eq!(p.fingerprint, "unreadable_webhook:5001");
    assert_eq!(p.action, "Resync from the store");
    let nameless = Problem::unreadable_webhook("orders/create", None, Some("id"));
    assert_eq!(
        nameless.fingerprint,
        "unreadable_webhook:unknown:orders/create"
    );
    assert_eq!(nameless.fields, ["id"]);
}

#[test]
fn connector_errors_are_classified() {
    let at = Utc.with_ymd_and_hms(2024, 10, 1, 9, 30, 0).unwrap();
    let classify = |e: &DeliveryError, attempt| {
        from_delivery_error(Destination::Erp, "#1042", e, attempt, 8, Some(at))
    };

    let timeout = transient(
        TransientKind::Timeout,
        "The ERP did not answer within 10 s.",
    );
    let p = classify(&timeout, 3);
    assert_eq!(p.code, "destination_down");
    assert_eq!(
        p.message,
        "The ERP did not answer within 10 s; trying again at 09:30 UTC (try 4 of 8)."
    );
    let server = transient(
        TransientKind::Server { status: 503 },
        "The ERP answered 503.",
    );
    assert_eq!(classify(&server, 1).code, "destination_down");
    let connect = transient(TransientKind::Connect, "Could not connect to the ERP.");
    assert_eq!(classify(&connect, 1).kind, ExceptionKind::Transient);

    let slow = transient(
        TransientKind::RateLimited {
            retry_after: Some(Duration::from_secs(30)),
            by_destination: true,
        },
        "The ERP asked us to slow down; retrying in 30 s.",
    );
    let p = classify(&slow, 2);
    assert_eq!(
        (p.code, p.fingerprint.as_str()),
        ("rate_limited", "rate_limited:erp")
    );
    assert_eq!(
        p.message,
        "The ERP asked us to slow down; retrying in 30 s."
    );

    // The last allowed attempt: a dead letter, whatever the transient cause.
    let p = classify(&timeout, 8);
    assert_eq!(p.code, "dead_letter");
    assert_eq!(p.kind, ExceptionKind::Exhausted);
    assert!(
        p.message
            .ends_with("last error: The ERP did not answer within 10 s."),
        "{}",
        p.message
    );

    let auth = DeliveryError::Auth {
        status: 403,
        message: "The ERP rejected our credentials (403).".into(),
        request_id: None,
    };
    let p = classify(&auth, 1);
    assert_eq!(
        (p.code, p.fingerprint.as_str()),
        ("auth_expired", "auth:erp")
    );
    assert!(p.message.contains("(403)"));
}

#[test]
fn rejections_are_classified_by_the_destination_code() {
    let classify =
        |e: &DeliveryError| from_delivery_error(Destination::Erp, "#1042", e, 1, 8, None);

    let long = rejected(
        "field_too_long",
        Some("ship_to.street"),
        "ship_to.street is 74 characters; at most 60 are allowed.",
        Some(60),
    );
    let p = classify(&long);
    assert_eq!(p.code, "field_too_long");
    assert_eq!(p.fingerprint, "field_too_long:erp:ship_to.street");
    assert_eq!(p.action, "Edit address");
    assert_eq!(
        p.message,
        "Ship-to street of order #1042 is longer than the ERP accepts (at most 60 characters). \
         The ERP said: \u{201c}ship_to.street is 74 characters; at most 60 are allowed.\u{201d}"
    );

    let missing = rejected(
        "missing_field",
        Some("ship_to.postal_code"),
        "ship_to.postal_code is required.",
        None,
    );
    let p = classify(&missing);
    assert_eq!(
        p.message,
        "Order #1042 has no shipping postal code, which the ERP requires."
    );
    assert_eq!(p.fingerprint, "missing_field:erp:ship_to.postal_code");

    let unknown = rejected(
        "unknown_item",
        Some("lines[1].item_code"),
        "Item X-9 does not exist.",
        None,
    );
    let p = classify(&unknown);
    assert_eq!(p.code, "missing_sku_mapping");
    assert_eq!(p.fields, ["lines[1].item_code"]);
    assert_eq!(p.action, "Map SKU");

    let other = rejected(
        "below_shipped",
        Some("lines"),
        "2 of T already shipped on SO-1.",
        None,
    );
    let p = classify(&other);
    assert_eq!(p.code, "rejected");
    assert_eq!(p.fingerprint, "rejected:erp:below_shipped:lines");
    assert!(
        p.message
            .contains("\u{201c}2 of T already shipped on SO-1.\u{201d}")
    );

    let no_field = rejected("http_404", None, "The ERP refused the request (404).", None);
    assert_eq!(classify(&no_field).fingerprint, "rejected:erp:http_404");
}

#[test]
fn field_labels_read_as_words() {
    for (field, want) in [
        ("ship_to.street", "Ship-to street"),
        ("bill_to.street2", "Bill-to second street line"),
        ("ship_to.region", "Ship-to region or state"),
        ("lines[0].unit_price_net", "Unit price net on line 1"),
        ("customer_account", "Customer account"),
        ("external_id", "Order id"),
        ("email", "Email"),
        ("", ""),
    ] {
        assert_eq!(field_label(field), want, "{field}");
    }
}

#[test]
fn durations_read_as_people_say_them() {
    for (secs, want) in [
        (0, "1 s"),
        (30, "30 s"),
        (150, "2 min 30 s"),
        (720, "12 min"),
        (3599, "59 min"),
        (4 * 3600, "4 h"),
        (5400, "1 h 30 min"),
        (2 * 86_400 + 3 * 3600, "2 d 3 h"),
        (86_400, "1 d"),
    ] {
        assert_eq!(human_duration(Duration::from_secs(secs)), want, "{secs}");
    }
    assert_eq!(human_duration(Duration::from_millis(200)), "1 s");
}

#[test]
fn no_message_carries_personal_data_given_to_it_as_a_field() {
    // The constructors only ever see field names and lengths, never the values; this pins it.
    let p = Problem::field_too_long(Destination::Crm, "email", 300, 254);
    assert!(!p.message.contains('@'));
    let p = Problem::invalid_field(
        Destination::Crm,
        "#5",
        "email",
        "is not an email address, which the CRM requires",
    );
    assert_eq!(
        p.message,
        "Email of order #5 is not an email address, which the CRM requires."
    );
}

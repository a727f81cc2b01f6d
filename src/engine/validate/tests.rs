use chrono::{NaiveDate, TimeZone, Utc};
use rust_decimal::Decimal;

use super::*;
use crate::connectors::{
    DealStage, ErpCreditNoteRequest, ErpFulfilmentLine, ErpFulfilmentRequest, ErpLine,
    ErpPaymentStatus,
};

fn dec(s: &str) -> Decimal {
    Decimal::from_str_exact(s).unwrap()
}

fn address() -> ErpAddress {
    ErpAddress {
        name: "Ana Díaz".into(),
        street: "12 Howard St".into(),
        street2: None,
        city: "San Francisco".into(),
        postal_code: Some("94103".into()),
        region: Some("CA".into()),
        country: "US".into(),
    }
}

fn sales_order() -> ErpSalesOrder {
    ErpSalesOrder {
        external_id: "5000000001".into(),
        customer_account: "ana@example.com".into(),
        currency: "USD".into(),
        order_date: NaiveDate::from_ymd_opt(2024, 10, 1).unwrap(),
        lines: vec![ErpLine {
            item_code: "IT-TEE".into(),
            quantity: Decimal::ONE,
            unit_price_net: dec("25.00"),
            unit_price_gross: dec("27.00"),
            discount: Decimal::ZERO,
            tax: dec("2.00"),
        }],
        shipping_cost: dec("5.99"),
        tax_total: dec("2.00"),
        total_gross: dec("32.99"),
        payment_status: ErpPaymentStatus::Paid,
        bill_to: Some(address()),
        ship_to: Some(address()),
    }
}

fn contact() -> CrmContact {
    CrmContact {
        email: "ana@example.com".into(),
        first_name: Some("Ana".into()),
        last_name: Some("Díaz".into()),
        phone: Some("+14155550100".into()),
        store_customer_id: Some("77".into()),
    }
}

fn deal() -> CrmDeal {
    CrmDeal {
        external_id: "5000000001".into(),
        contact_email: Some("Ana@Example.com".into()),
        name: "#1042".into(),
        amount: dec("32.99"),
        currency: "USD".into(),
        stage: DealStage::Paid,
        closed_at: None,
        source_version: Utc.with_ymd_and_hms(2024, 10, 1, 9, 0, 0).unwrap(),
    }
}

fn codes(problems: &[Problem]) -> Vec<(&str, &str)> {
    problems
        .iter()
        .map(|p| (p.code, p.fields.first().map_or("", String::as_str)))
        .collect()
}

#[test]
fn a_clean_sales_order_passes() {
    assert_eq!(validate_erp("#1042", &sales_order()), []);
}

#[test]
fn a_long_street_names_its_length_and_the_limit_without_quoting_it() {
    let mut so = sales_order();
    let street = "1234 North Very Long Boulevard Extension, Building C, Attn: Receiving Dock 7";
    so.ship_to.as_mut().unwrap().street = street.into();
    let problems = validate_erp("#1042", &so);
    assert_eq!(problems.len(), 1);
    assert_eq!(
        problems[0].message,
        format!(
            "Ship-to street is {} characters; the ERP accepts at most 60.",
            street.chars().count()
        )
    );
    assert!(!problems[0].message.contains("Boulevard"));
    assert_eq!(problems[0].fingerprint, "field_too_long:erp:ship_to.street");
}

#[test]
fn lengths_count_characters_not_bytes() {
    let mut so = sales_order();
    // 60 "ß" are 120 bytes but 60 characters: accepted, as the ERP counts.
    so.ship_to.as_mut().unwrap().street = "ß".repeat(60);
    assert_eq!(validate_erp("#1", &so), []);
    so.ship_to.as_mut().unwrap().street = "ß".repeat(61);
    assert_eq!(
        codes(&validate_erp("#1", &so)),
        [("field_too_long", "ship_to.street")]
    );
}

#[test]
fn a_ship_to_needs_a_postal_code_a_bill_to_does_not() {
    let mut so = sales_order();
    so.ship_to.as_mut().unwrap().postal_code = None;
    so.bill_to.as_mut().unwrap().postal_code = None;
    let problems = validate_erp("#1042", &so);
    assert_eq!(codes(&problems), [("missing_field", "ship_to.postal_code")]);
    assert_eq!(
        problems[0].message,
        "Order #1042 has no shipping postal code, which the ERP requires."
    );
    // A blank code is as good as none.
    so.ship_to.as_mut().unwrap().postal_code = Some("  ".into());
    assert_eq!(
        codes(&validate_erp("#1042", &so)),
        [("missing_field", "ship_to.postal_code")]
    );
    // Hong Kong and Qatar have no postal codes: a ship-to there needs none.
    for country in ["HK", "QA", "AE"] {
        so.ship_to.as_mut().unwrap().country = country.into();
        so.ship_to.as_mut().unwrap().postal_code = None;
        assert_eq!(validate_erp("#1042", &so), [], "{country}");
    }
    // Digital goods: no ship-to, nothing required.
    so.ship_to = None;
    assert_eq!(validate_erp("#1042", &so), []);
}

#[test]
fn a_bill_to_may_be_sparse_but_must_fit_and_name_a_country() {
    let mut so = sales_order();
    so.bill_to = Some(ErpAddress {
        name: String::new(),
        street: String::new(),
        street2: None,
        city: String::new(),
        postal_code: None,
        region: None,
        country: "US".into(),
    });
    assert_eq!(validate_erp("#1", &so), []);
    so.bill_to.as_mut().unwrap().city = "C".repeat(41);
    so.bill_to.as_mut().unwrap().country = String::new();
    assert_eq!(
        codes(&validate_erp("#1", &so)),
        [
            ("field_too_long", "bill_to.city"),
            ("missing_field", "bill_to.country")
        ]
    );
    so.bill_to.as_mut().unwrap().city = "Berlin".into();
    so.bill_to.as_mut().unwrap().country = "Germany".into();
    let problems = validate_erp("#1", &so);
    assert_eq!(codes(&problems), [("invalid_field", "bill_to.country")]);
    assert_eq!(
        problems[0].message,
        "Bill-to country of order #1 is not a two-letter country code (like DE), which the ERP \
         requires."
    );
}

#[test]
fn every_broken_rule_is_reported_not_just_the_first() {
    let mut so = sales_order();
    so.customer_account = format!("{}@example.com", "a".repeat(80));
    so.currency = "usd".into();
    so.lines[0].item_code = "X".repeat(41);
    so.lines[0].quantity = Decimal::ZERO;
    so.lines[0].discount = dec("-1.00");
    so.shipping_cost = dec("-0.01");
    let ship_to = so.ship_to.as_mut().unwrap();
    ship_to.name = " ".into();
    ship_to.street2 = Some("S".repeat(61));
    ship_to.region = Some("R".repeat(41));
    let problems = validate_erp("#1042", &so);
    assert_eq!(
        codes(&problems),
        [
            ("field_too_long", "customer_account"),
            ("invalid_field", "currency"),
            ("field_too_long", "lines[0].item_code"),
            ("invalid_field", "lines[0].quantity"),
            ("invalid_field", "lines[0].discount"),
            ("invalid_field", "shipping_cost"),
            ("missing_field", "ship_to.name"),
            ("field_too_long", "ship_to.street2"),
            ("field_too_long", "ship_to.region"),
        ]
    );
    // The customer account is an email: its length is said, never its text.
    assert!(
        !problems[0].message.contains('@'),
        "{}",
        problems[0].message
    );
    assert_eq!(
        problems[4].message,
        "Discount on line 1 of order #1042 is negative (-1.00); the ERP accepts only zero or more."
    );
    assert!(
        problems
            .iter()
            .all(|p| p.kind == crate::engine::exception::ExceptionKind::NeedsAction)
    );
}

#[test]
fn an_order_without_lines_cannot_go() {
    let mut so = sales_order();
    so.lines.clear();
    assert_eq!(
        codes(&validate_erp("#1", &so)),
        [("missing_field", "lines")]
    );
}

#[test]
fn changes_are_checked_field_by_field() {
    let fulfilment = ErpChange::Fulfilment(ErpFulfilmentRequest {
        external_id: "900".into(),
        shipped_at: None,
        tracking_number: Some("1Z".repeat(31)),
        lines: vec![ErpFulfilmentLine {
            item_code: "IT".into(),
            quantity: Decimal::ZERO,
        }],
    });
    assert_eq!(
        codes(&validate_erp_change("#1", &fulfilment)),
        [
            ("field_too_long", "tracking_number"),
            ("invalid_field", "lines[0].quantity")
        ]
    );
    let empty = ErpChange::Fulfilment(ErpFulfilmentRequest {
        external_id: "900".into(),
        shipped_at: None,
        tracking_number: None,
        lines: Vec::new(),
    });
    assert_eq!(
        codes(&validate_erp_change("#1", &empty)),
        [("missing_field", "lines")]
    );
    let credit = ErpChange::CreditNote(ErpCreditNoteRequest {
        external_id: "700".into(),
        amount: Decimal::ZERO,
        reason: String::new(),
    });
    assert_eq!(
        codes(&validate_erp_change("#1", &credit)),
        [("invalid_field", "amount"), ("missing_field", "reason")]
    );
    let cancel = ErpChange::Cancel {
        reason: Some("r".repeat(201)),
    };
    assert_eq!(
        codes(&validate_erp_change("#1", &cancel)),
        [("field_too_long", "reason")]
    );
    assert_eq!(
        validate_erp_change("#1", &ErpChange::Cancel { reason: None }),
        []
    );
}

#[test]
fn a_clean_contact_and_deal_pass_and_the_deal_may_go_alone() {
    assert_eq!(validate_crm(Some(&contact()), &deal()), []);
    let alone = CrmDeal {
        contact_email: None,
        ..deal()
    };
    assert_eq!(validate_crm(None, &alone), []);
}

#[test]
fn crm_limits_are_checked_on_contact_and_deal() {
    let long = CrmContact {
        email: "not-an-email".into(),
        first_name: Some("N".repeat(81)),
        phone: Some("1".repeat(41)),
        store_customer_id: Some("9".repeat(65)),
        ..contact()
    };
    let d = CrmDeal {
        name: " ".into(),
        amount: dec("-5"),
        currency: "Dollar".into(),
        ..deal()
    };
    let problems = validate_crm(Some(&long), &d);
    assert_eq!(
        codes(&problems),
        [
            ("invalid_field", "email"),
            ("field_too_long", "first_name"),
            ("field_too_long", "phone"),
            ("field_too_long", "store_customer_id"),
            ("missing_field", "name"),
            ("invalid_field", "amount"),
            ("invalid_field", "currency"),
            ("invalid_field", "contact_email"),
        ]
    );
    assert!(problems.iter().all(|p| p.fingerprint.contains(":crm:")));
    assert_eq!(
        problems[0].message,
        "Email of order 5000000001 is not an email address, which the CRM requires."
    );
}

#[test]
fn a_deal_must_name_the_contact_sent_with_it() {
    let problems = validate_crm(None, &deal());
    assert_eq!(codes(&problems), [("invalid_field", "contact_email")]);
    let other = CrmContact {
        email: "someone@example.org".into(),
        ..contact()
    };
    assert_eq!(
        codes(&validate_crm(Some(&other), &deal())),
        [("invalid_field", "contact_email")]
    );
}

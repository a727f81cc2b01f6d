use chrono::{DateTime, TimeZone, Utc};
use rust_decimal::Decimal;

use super::*;
use crate::connectors::{ErpDocument, ErpStatus};
use crate::domain::{
    CountryCode, Currency, CustomerRef, FinancialStatus, Fulfillment, FulfillmentLine,
    FulfillmentStatus, Money, Phone, Refund, RefundLine,
};

mod changes;

fn at(hour: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 10, 1, hour, 0, 0).unwrap()
}

fn dec(s: &str) -> Decimal {
    Decimal::from_str_exact(s).unwrap()
}

fn usd(s: &str) -> Money {
    Money::new(dec(s), Currency::USD)
}

fn line(id: i64, sku: Option<&str>, qty: u32, price: &str, discount: &str, tax: &str) -> OrderLine {
    OrderLine {
        line_id: id,
        sku: sku.map(|s| Sku::parse(s).unwrap()),
        title: format!("Item {id}"),
        quantity: qty,
        current_quantity: qty,
        unit_price: usd(price),
        total_discount: usd(discount),
        tax: usd(tax),
        fulfilled_quantity: 0,
        refunded_quantity: 0,
    }
}

fn address() -> Address {
    Address {
        name: Some("Ana Díaz".into()),
        company: None,
        address1: Some("12 Howard St".into()),
        address2: Some("Apt 4B".into()),
        city: Some("San Francisco".into()),
        province_code: Some("CA".into()),
        country_code: CountryCode::parse("US").ok(),
        zip: Some("94103".into()),
        phone: Some("(415) 555-0100".into()),
    }
}

/// A paid, tax-exclusive order for a known customer: 2 × TEE at 25.00 with 5.00 off and 3.60
/// tax (8 %), 1 × MUG at 16.00 with 1.28 tax; 5.99 shipping, 0.48 tax on it.
fn order() -> Order {
    let email = NormalizedEmail::parse("Ana+shop@Example.com").unwrap();
    Order {
        store_order_id: 5_000_000_001,
        name: "#1042".into(),
        order_number: 1042,
        created_at: at(9),
        updated_at: at(10),
        currency: Currency::USD,
        financial_status: FinancialStatus::Paid,
        fulfillment_status: FulfillmentStatus::Unfulfilled,
        cancelled_at: None,
        cancel_reason: None,
        customer: Some(CustomerRef {
            store_customer_id: Some(77),
            email: Some(email.clone()),
            phone: Phone::parse("(415) 555-0100", CountryCode::parse("US").ok()).ok(),
            first_name: Some("Ana".into()),
            last_name: Some("Díaz".into()),
            updated_at: None,
        }),
        email: Some(email),
        lines: vec![
            line(11, Some("TEE"), 2, "25.00", "5.00", "3.60"),
            line(12, Some("MUG"), 1, "16.00", "0.00", "1.28"),
        ],
        subtotal: usd("61.00"),
        total_discounts: usd("5.00"),
        total_tax: usd("5.36"),
        shipping: usd("5.99"),
        total: usd("72.35"),
        total_refunded: usd("0.00"),
        billing_address: Some(address()),
        shipping_address: Some(address()),
        taxes_included: false,
        fulfillments: Vec::new(),
        refunds: Vec::new(),
    }
}

fn codes(sku: &Sku) -> Option<String> {
    match sku.as_str() {
        "TEE" => Some("IT-TEE".into()),
        "MUG" => Some("IT-MUG".into()),
        "BLANK" => Some("  ".into()),
        _ => None,
    }
}

fn doc(order: &Order) -> ErpDocument {
    ErpDocument {
        document_number: "SO-000001".into(),
        status: ErpStatus::Open,
        order: erp_sales_order(order, &codes).unwrap(),
        fulfilments: Vec::new(),
        credit_notes: Vec::new(),
        cancel_reason: None,
        created_at: at(11),
        updated_at: at(11),
    }
}

fn refund(id: i64, amount: &str, created: DateTime<Utc>, units: u32) -> Refund {
    Refund {
        refund_id: id,
        order_id: 5_000_000_001,
        created_at: created,
        lines: (units > 0)
            .then(|| RefundLine {
                line_item_id: 11,
                quantity: units,
                subtotal: usd("22.50"),
                total_tax: usd("1.80"),
            })
            .into_iter()
            .collect(),
        amount: usd(amount),
    }
}

fn shipment(id: i64, lines: &[(i64, u32)]) -> Fulfillment {
    Fulfillment {
        fulfillment_id: id,
        created_at: at(12),
        tracking_number: Some("1Z999".into()),
        lines: lines
            .iter()
            .map(|&(line_id, quantity)| FulfillmentLine { line_id, quantity })
            .collect(),
    }
}

#[test]
fn the_crm_contact_is_the_buyer_keyed_by_normalised_email() {
    let contact = crm_contact(&order()).unwrap();
    assert_eq!(contact.email, "ana+shop@example.com");
    assert_eq!(contact.first_name.as_deref(), Some("Ana"));
    assert_eq!(contact.last_name.as_deref(), Some("Díaz"));
    assert_eq!(contact.phone.as_deref(), Some("+14155550100"));
    assert_eq!(contact.store_customer_id.as_deref(), Some("77"));

    let mut guest = order();
    guest.customer.as_mut().unwrap().store_customer_id = None;
    assert_eq!(crm_contact(&guest).unwrap().store_customer_id, None);

    // The customer record has no email, the order does: the order's is used.
    let mut order_email_only = order();
    order_email_only.customer.as_mut().unwrap().email = None;
    order_email_only.email = NormalizedEmail::parse("buyer@example.org").ok();
    assert_eq!(
        crm_contact(&order_email_only).unwrap().email,
        "buyer@example.org"
    );

    let mut no_email = order();
    no_email.customer.as_mut().unwrap().email = None;
    no_email.email = None;
    assert_eq!(crm_contact(&no_email), None);
    assert_eq!(crm_deal(&no_email).contact_email, None);
}

#[test]
fn the_crm_deal_carries_net_revenue_and_the_lifecycle() {
    let deal = crm_deal(&order());
    assert_eq!(deal.external_id, "5000000001");
    assert_eq!(deal.name, "#1042");
    assert_eq!(deal.amount.to_string(), "72.35");
    assert_eq!(deal.currency, "USD");
    assert_eq!(deal.stage, DealStage::Paid);
    assert_eq!(deal.closed_at, Some(at(9)));
    assert_eq!(deal.source_version, at(10));
    assert_eq!(deal.contact_email, crm_contact(&order()).map(|c| c.email));

    let mut refunded = order();
    refunded.financial_status = FinancialStatus::PartiallyRefunded;
    refunded.total_refunded = usd("24.30");
    let deal = crm_deal(&refunded);
    assert_eq!(deal.amount.to_string(), "48.05");
    assert_eq!(deal.stage, DealStage::PartiallyRefunded);

    // Refunds beyond the total (store rounding) never make revenue negative.
    refunded.total_refunded = usd("80.00");
    assert_eq!(crm_deal(&refunded).amount, Decimal::ZERO);

    let mut open = order();
    open.financial_status = FinancialStatus::Pending;
    assert_eq!(
        (crm_deal(&open).stage, crm_deal(&open).closed_at),
        (DealStage::Open, None)
    );

    let mut cancelled = order();
    cancelled.cancelled_at = Some(at(15));
    let deal = crm_deal(&cancelled);
    assert_eq!(
        (deal.stage, deal.closed_at),
        (DealStage::Cancelled, Some(at(15)))
    );
}

#[test]
fn every_lifecycle_has_its_deal_stage() {
    for (lifecycle, stage) in [
        (Lifecycle::Open, "open"),
        (Lifecycle::Paid, "paid"),
        (Lifecycle::PartiallyFulfilled, "partially_fulfilled"),
        (Lifecycle::Fulfilled, "fulfilled"),
        (Lifecycle::Cancelled, "cancelled"),
        (Lifecycle::PartiallyRefunded, "partially_refunded"),
        (Lifecycle::Refunded, "refunded"),
    ] {
        assert_eq!(deal_stage(lifecycle).as_str(), stage);
        assert_eq!(lifecycle.as_str(), stage);
    }
}

#[test]
fn the_sales_order_carries_the_stores_payment_status() {
    let expected = [
        (FinancialStatus::Pending, "unpaid"),
        (FinancialStatus::Authorized, "authorized"),
        (FinancialStatus::PartiallyPaid, "partially_paid"),
        (FinancialStatus::Paid, "paid"),
        (FinancialStatus::PartiallyRefunded, "partially_refunded"),
        (FinancialStatus::Refunded, "refunded"),
        (FinancialStatus::Voided, "voided"),
        (FinancialStatus::Expired, "voided"),
    ];
    assert_eq!(expected.len(), FinancialStatus::ALL.len());
    for (status, erp) in expected {
        let mut order = order();
        order.financial_status = status;
        let so = erp_sales_order(&order, &codes).unwrap();
        assert_eq!(
            serde_json::to_value(so.payment_status).unwrap(),
            erp,
            "{status:?}"
        );
    }
}

#[test]
fn a_tax_exclusive_order_maps_to_net_prices_with_gross_derived() {
    let so = erp_sales_order(&order(), &codes).unwrap();
    assert_eq!(so.external_id, "5000000001");
    assert_eq!(so.customer_account, "ana+shop@example.com");
    assert_eq!(so.currency, "USD");
    assert_eq!(so.order_date.to_string(), "2024-10-01");
    let tee = &so.lines[0];
    assert_eq!(tee.item_code, "IT-TEE");
    assert_eq!(tee.quantity, Decimal::from(2));
    assert_eq!(tee.unit_price_net.to_string(), "25.00");
    // 3.60 tax on 45.00 after discount: 8 %, so 27.00 a unit with tax.
    assert_eq!(tee.unit_price_gross.to_string(), "27.00");
    assert_eq!(tee.discount.to_string(), "5.00");
    assert_eq!(tee.tax.to_string(), "3.60");
    let mug = &so.lines[1];
    assert_eq!(
        (
            mug.unit_price_net.to_string(),
            mug.unit_price_gross.to_string()
        ),
        ("16.00".into(), "17.28".into())
    );
    // Shipping is gross: 5.99 plus the 0.48 of tax that is on no line.
    assert_eq!(so.shipping_cost.to_string(), "6.47");
    assert_eq!(so.tax_total.to_string(), "5.36");
    assert_eq!(so.total_gross.to_string(), "72.35");
    assert_eq!(so.payment_status, ErpPaymentStatus::Paid);
    let ship_to = so.ship_to.unwrap();
    assert_eq!(ship_to.name, "Ana Díaz");
    assert_eq!(ship_to.street, "12 Howard St");
    assert_eq!(ship_to.street2.as_deref(), Some("Apt 4B"));
    assert_eq!(ship_to.postal_code.as_deref(), Some("94103"));
    assert_eq!(
        (ship_to.region.as_deref(), ship_to.country.as_str()),
        (Some("CA"), "US")
    );
    assert!(so.bill_to.is_some());
}

#[test]
fn a_tax_inclusive_order_takes_the_tax_out_of_prices_and_discounts() {
    let mut vat = order();
    vat.currency = Currency::EUR;
    vat.taxes_included = true;
    // 3 × 25.00 incl. 20 % VAT, 7.50 off: 67.50 gross, of which 11.25 VAT.
    vat.lines = vec![line(11, Some("TEE"), 3, "25.00", "7.50", "11.25")];
    for l in &mut vat.lines {
        l.unit_price.currency = Currency::EUR;
    }
    vat.shipping = usd("4.00");
    vat.total_tax = usd("11.25");
    vat.total = usd("71.50");
    let so = erp_sales_order(&vat, &codes).unwrap();
    let l = &so.lines[0];
    assert_eq!(l.unit_price_gross.to_string(), "25.00");
    assert_eq!(l.unit_price_net.to_string(), "20.8333");
    assert_eq!(l.discount.to_string(), "6.25");
    assert_eq!(l.tax.to_string(), "11.25");
    // quantity × net − discount + tax lands on the line's gross amount, to the cent.
    let gross = l.quantity * l.unit_price_net - l.discount + l.tax;
    assert_eq!(minor_units(gross, Currency::USD).to_string(), "67.50");
    // Shipping in a VAT shop already includes its tax.
    assert_eq!(so.shipping_cost.to_string(), "4.00");
    assert_eq!(so.currency, "EUR");
}

#[test]
fn free_lines_keep_their_price_in_both_bases() {
    let mut free = order();
    free.lines = vec![line(11, Some("TEE"), 1, "25.00", "25.00", "0.00")];
    let l = &erp_sales_order(&free, &codes).unwrap().lines[0];
    assert_eq!(
        (l.unit_price_net.to_string(), l.unit_price_gross.to_string()),
        ("25.00".into(), "25.00".into())
    );
    free.taxes_included = true;
    let l = &erp_sales_order(&free, &codes).unwrap().lines[0];
    assert_eq!(
        (l.unit_price_net.to_string(), l.unit_price_gross.to_string()),
        ("25.00".into(), "25.00".into())
    );
}

#[test]
fn unmapped_skus_are_problems_never_guesses() {
    let mut o = order();
    o.lines = vec![
        line(1, Some("NEW-1"), 1, "10.00", "0.00", "0.00"),
        line(2, Some("TEE"), 1, "10.00", "0.00", "0.00"),
        line(3, Some("NEW-1"), 2, "10.00", "0.00", "0.00"),
        line(4, None, 1, "4.00", "0.00", "0.00"),
        line(5, Some("BLANK"), 1, "4.00", "0.00", "0.00"),
    ];
    o.lines[3].title = "Gift wrapping".into();
    let problems = erp_sales_order(&o, &codes).unwrap_err();
    let summary: Vec<(&str, &str, Vec<String>)> = problems
        .iter()
        .map(|p| (p.code, p.fingerprint.as_str(), p.fields.clone()))
        .collect();
    assert_eq!(
        summary,
        [
            (
                "missing_sku_mapping",
                "missing_sku:erp:NEW-1",
                vec![
                    "lines[0].item_code".to_owned(),
                    "lines[2].item_code".to_owned()
                ]
            ),
            (
                "line_without_sku",
                "line_without_sku:erp:Gift wrapping",
                vec!["lines[3].item_code".to_owned()]
            ),
            (
                "missing_sku_mapping",
                "missing_sku:erp:BLANK",
                vec!["lines[4].item_code".to_owned()]
            ),
        ]
    );
    assert_eq!(
        problems[0].message,
        "SKU NEW-1 has no ERP item code, so order #1042 can't be created in the ERP."
    );
    assert!(
        problems[1]
            .message
            .contains("\u{201c}Gift wrapping\u{201d}")
    );
}

#[test]
fn units_removed_by_an_edit_leave_the_order_but_refunded_units_stay() {
    let mut o = order();
    // 4 ordered; an edit removed 1, a refund returned 1: the store's current quantity is 2.
    o.lines = vec![line(11, Some("TEE"), 4, "25.00", "10.00", "7.20")];
    o.lines[0].current_quantity = 2;
    o.lines[0].refunded_quantity = 1;
    assert_eq!(erp_quantity(&o.lines[0]), 3);
    let l = &erp_sales_order(&o, &codes).unwrap().lines[0];
    assert_eq!(l.quantity, Decimal::from(3));
    // Discount and tax scaled to the 3 units left of 4.
    assert_eq!(
        (l.discount.to_string(), l.tax.to_string()),
        ("7.50".into(), "5.40".into())
    );

    // A line an edit removed entirely is not sent, and an unmapped SKU on it does not matter.
    o.lines
        .push(line(12, Some("NEW-GONE"), 1, "9.00", "0.00", "0.00"));
    o.lines[1].current_quantity = 0;
    o.lines
        .push(line(13, Some("MUG"), 1, "16.00", "0.00", "1.28"));
    let so = erp_sales_order(&o, &codes).unwrap();
    let codes_sent: Vec<&str> = so.lines.iter().map(|l| l.item_code.as_str()).collect();
    assert_eq!(codes_sent, ["IT-TEE", "IT-MUG"]);
    assert_eq!(
        sku_of_erp_field(&o, "lines[1].item_code").map(Sku::as_str),
        Some("MUG")
    );
    assert_eq!(sku_of_erp_field(&o, "lines[2].item_code"), None);
    assert_eq!(sku_of_erp_field(&o, "ship_to.street"), None);

    // The totals lose what the edits removed, so lines and shipping add up to them.
    let mut edited = order();
    edited.lines[1].current_quantity = 0;
    let so = erp_sales_order(&edited, &codes).unwrap();
    assert_eq!(
        (so.total_gross.to_string(), so.tax_total.to_string()),
        ("55.07".into(), "4.08".into())
    );
    let lines_gross: Decimal = so
        .lines
        .iter()
        .map(|l| l.quantity * l.unit_price_net - l.discount + l.tax)
        .sum();
    assert_eq!(lines_gross + so.shipping_cost, so.total_gross);
    // Unedited, they are the store's own.
    let so = erp_sales_order(&order(), &codes).unwrap();
    assert_eq!(so.total_gross.to_string(), "72.35");

    // Old payloads without current_quantity read it as the quantity: never more than ordered.
    let mut old = line(1, Some("TEE"), 2, "1.00", "0.00", "0.00");
    old.refunded_quantity = 2;
    assert_eq!(erp_quantity(&old), 2);
}

#[test]
fn guests_and_customers_without_email_use_the_guest_account() {
    let mut guest = order();
    guest.customer.as_mut().unwrap().store_customer_id = None;
    assert_eq!(customer_account(&guest), "GUEST");
    guest.customer = None;
    assert_eq!(customer_account(&guest), "GUEST");
    let mut no_email = order();
    no_email.customer.as_mut().unwrap().email = None;
    no_email.email = None;
    assert_eq!(customer_account(&no_email), "GUEST");
}

#[test]
fn addresses_keep_company_and_leave_absent_text_empty() {
    let business = Address {
        company: Some("Northwind Traders".into()),
        ..address()
    };
    assert_eq!(erp_address(&business).name, "Ana Díaz, Northwind Traders");
    let company_only = Address {
        name: None,
        ..business
    };
    assert_eq!(erp_address(&company_only).name, "Northwind Traders");
    let bare = erp_address(&Address::default());
    assert_eq!(
        (
            bare.name.as_str(),
            bare.street.as_str(),
            bare.city.as_str(),
            bare.country.as_str()
        ),
        ("", "", "", "")
    );
    assert_eq!(bare.postal_code, None);

    let mut digital = order();
    digital.shipping_address = None;
    assert_eq!(erp_sales_order(&digital, &codes).unwrap().ship_to, None);
}

#[test]
fn amounts_round_half_away_from_zero_not_to_even() {
    let cents = |amount: &str| minor_units(dec(amount), Currency::USD).to_string();
    assert_eq!(cents("2.345"), "2.35");
    assert_eq!(cents("2.335"), "2.34");
    assert_eq!(cents("-2.345"), "-2.35");
    assert_eq!(cents("7"), "7.00");
    // Each currency to its own smallest unit: whole yen, a dinar's thousandths.
    let jpy = Currency::parse("JPY").unwrap();
    let kwd = Currency::parse("KWD").unwrap();
    assert_eq!(minor_units(dec("66.666"), jpy).to_string(), "67");
    assert_eq!(minor_units(dec("12.3455"), kwd).to_string(), "12.346");
    assert_eq!(minor_units(dec("12"), kwd).to_string(), "12.000");
    assert_eq!(unit_price_rounded(dec("20.833350")).to_string(), "20.8334");
    assert_eq!(unit_price_rounded(dec("21.5")).to_string(), "21.50");
}

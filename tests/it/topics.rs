//! Every webhook topic SyncDesk takes, end to end: posted to the real endpoint, worked by a real
//! worker against the simulated CRM and ERP. An order's later states (part shipped, all shipped,
//! refunded) become shipments and a credit note on the one ERP sales order and move the one CRM
//! deal along its stages; an orders/edited notice is recorded and changes nothing; customers/*
//! keep the customer record, email normalised and phone in E.164, and its details never go back
//! to older ones.

use std::time::Duration;

use reqwest::StatusCode;
use rust_decimal::Decimal;
use serde_json::{Value, json};
use syncdesk::connectors::{DealStage, ErpDocument, ErpStatus};
use syncdesk::simulate::ledger::{DocumentKind, Effect};
use syncdesk::simulate::shopify::{OrderFactory, latest_refund};

use crate::harness::TestApp;
use crate::sync::{Rig, clean_order, drain, rig};
use crate::webhooks::{Post, later, order_id};

on_both_backends! {
    an_order_s_shipments_and_refund_reach_the_same_erp_document_and_crm_deal => an_order_s_shipments_and_refund_reach_the_same_erp_document_and_crm_deal_sqlite, an_order_s_shipments_and_refund_reach_the_same_erp_document_and_crm_deal_postgres;
    customer_topics_keep_one_normalised_customer_record => customer_topics_keep_one_normalised_customer_record_sqlite, customer_topics_keep_one_normalised_customer_record_postgres;
    a_customer_keeps_the_newest_details_the_store_gave => a_customer_keeps_the_newest_details_the_store_gave_sqlite, a_customer_keeps_the_newest_details_the_store_gave_postgres;
    customer_records_posted_at_once_leave_the_newest_details => customer_records_posted_at_once_leave_the_newest_details_sqlite, customer_records_posted_at_once_leave_the_newest_details_postgres;
    a_state_taken_before_a_refund_held_does_not_take_it_back => a_state_taken_before_a_refund_held_does_not_take_it_back_sqlite, a_state_taken_before_a_refund_held_does_not_take_it_back_postgres;
}

const DRAIN: Duration = Duration::from_secs(10);

/// A clean order (see [`clean_order`]), paid, with at least two units so that part of it can
/// ship, and the shop's factory standing where it stood after making it, to make its later
/// states as the store would.
fn paid_order_of_several_units() -> (OrderFactory, Value) {
    for seed in 40..200 {
        let mut order = clean_order(seed);
        let units: u64 = order["line_items"]
            .as_array()
            .expect("lines")
            .iter()
            .map(|l| l["quantity"].as_u64().expect("quantity"))
            .sum();
        if units < 2 {
            continue;
        }
        // clean_order makes its order with a fresh factory of the same seed.
        let mut factory = OrderFactory::new(seed);
        let made = factory.order();
        assert_eq!(made["id"], order["id"], "the factory made this order");
        order["financial_status"] = json!("paid");
        order["total_outstanding"] = json!("0.00");
        return (factory, order);
    }
    unreachable!("some seed makes an order of two units or more")
}

/// Posts `body` under `topic` and answers the outcome SyncDesk gave the store.
async fn post(app: &TestApp, topic: &str, body: &Value) -> String {
    let (status, answer) = Post::new(topic, body).send(app).await;
    assert_eq!(status, StatusCode::OK, "{topic}: {answer}");
    answer["outcome"]
        .as_str()
        .unwrap_or_else(|| panic!("{topic}: no outcome in {answer}"))
        .to_string()
}

/// The order's tasks (both destinations) synced at `version`, and nothing open.
async fn assert_synced_at(app: &TestApp, id: i64, version: i64, step: &str) {
    assert_eq!(
        app.count(&format!(
            "SELECT version FROM orders WHERE store_order_id = {id}"
        ))
        .await,
        version,
        "{step}: the order's version"
    );
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) FROM sync_tasks WHERE store_order_id = {id} AND state = 'synced' AND synced_version = {version}"
        ))
        .await,
        2,
        "{step}: the CRM and the ERP hold version {version}"
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM exceptions WHERE status = 'open'")
            .await,
        0,
        "{step}: no exception"
    );
}

async fn erp_document(rig: &Rig, id: i64) -> ErpDocument {
    rig.erp_api()
        .find_sales_order(&id.to_string())
        .await
        .expect("ask the ERP")
        .expect("the ERP holds the sales order")
}

async fn deal_stage(rig: &Rig, id: i64) -> (DealStage, Decimal, Option<String>) {
    let deal = rig
        .destinations()
        .crm
        .find_deal(&id.to_string())
        .await
        .expect("ask the CRM")
        .expect("the CRM holds the deal");
    (deal.stage, deal.amount, deal.contact_email)
}

/// The units a fulfilment of the store's order JSON ships.
fn units_shipped(fulfilment: &Value) -> Decimal {
    fulfilment["line_items"]
        .as_array()
        .expect("fulfilment lines")
        .iter()
        .map(|l| Decimal::from(l["quantity"].as_u64().expect("quantity")))
        .sum()
}

fn decimal(value: &Value) -> Decimal {
    value
        .as_str()
        .expect("a money string")
        .parse()
        .expect("a decimal")
}

/// orders/create, then orders/edited (a notice), orders/partially_fulfilled, orders/fulfilled,
/// refunds/create and the orders/updated the store sends with the refund, each worked before the
/// next: one sales order, a shipment per store fulfilment on it, one credit note, one deal.
async fn an_order_s_shipments_and_refund_reach_the_same_erp_document_and_crm_deal(app: TestApp) {
    let rig = rig(&app, Duration::from_secs(5)).await;
    let worker = rig.worker(&app.store);
    let (mut factory, order) = paid_order_of_several_units();
    let id = order_id(&order);
    let key = id.to_string();
    let code = "ERP-TEE-BLK-M";
    let ordered: Decimal = order["line_items"]
        .as_array()
        .expect("lines")
        .iter()
        .map(|l| Decimal::from(l["quantity"].as_u64().expect("quantity")))
        .sum();

    // orders/create: the sales order and the deal.
    assert_eq!(post(&app, "orders/create", &order).await, "applied");
    drain(&worker, &app, DRAIN).await;
    assert_synced_at(&app, id, 1, "orders/create").await;
    let doc = erp_document(&rig, id).await;
    assert_eq!(doc.status, ErpStatus::Open);
    assert!(doc.fulfilments.is_empty() && doc.credit_notes.is_empty());
    let so_quantity: Decimal = doc.order.lines.iter().map(|l| l.quantity).sum();
    assert_eq!(so_quantity, ordered, "every unit is on the sales order");
    assert_eq!(deal_stage(&rig, id).await.0, DealStage::Paid);

    // orders/edited: a notice naming the order, not its new state (which comes with the
    // orders/updated the store sends for the same edit). Recorded; nothing is armed or sent.
    let first_line = order["line_items"][0]["id"].clone();
    let edit = json!({"order_edit": {
        "id": 1_009_876_543_i64, "app_id": null,
        "created_at": order["updated_at"], "committed_at": order["updated_at"],
        "notify_customer": false, "order_id": id, "staff_note": "", "user_id": 42,
        "line_items": {"additions": [], "removals": [{"id": first_line, "delta": 1}]},
        "discounts": {"additions": [], "removals": []},
        "shipping_lines": {"additions": [], "removals": []},
    }});
    let (erp_seen, crm_seen) = (
        rig.erp.faults().requests_seen(),
        rig.crm.faults().requests_seen(),
    );
    let (erp_effects, crm_effects) = (rig.erp.ledger().len(), rig.crm.ledger().len());
    assert_eq!(post(&app, "orders/edited", &edit).await, "recorded");
    assert_eq!(
        app.text("SELECT note FROM webhook_events WHERE topic = 'orders/edited'")
            .await,
        "order edit noted; the edited order arrives as orders/updated"
    );
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM webhook_events WHERE topic = 'orders/edited' AND duplicate = FALSE"
        )
        .await,
        1,
        "the notice is kept"
    );
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) FROM webhook_events WHERE topic = 'orders/edited' AND store_order_id = {id}"
        ))
        .await,
        1,
        "the notice is the order's, so its timeline shows it"
    );
    drain(&worker, &app, DRAIN).await;
    assert_synced_at(&app, id, 1, "orders/edited").await;
    assert_eq!(
        (
            rig.erp.faults().requests_seen(),
            rig.crm.faults().requests_seen()
        ),
        (erp_seen, crm_seen),
        "an edit notice sends nothing"
    );
    assert_eq!(
        (rig.erp.ledger().len(), rig.crm.ledger().len()),
        (erp_effects, crm_effects)
    );

    // orders/partially_fulfilled: one fulfilment covering part of the units.
    let partial = factory.partially_fulfilled(&order);
    assert_eq!(partial["fulfillment_status"], "partial");
    let first = partial["fulfillments"][0].clone();
    let first_key = format!("{id}/{}", first["id"]);
    assert!(units_shipped(&first) < ordered);
    assert_eq!(
        post(&app, "orders/partially_fulfilled", &partial).await,
        "applied"
    );
    drain(&worker, &app, DRAIN).await;
    assert_synced_at(&app, id, 2, "orders/partially_fulfilled").await;
    let erp = rig.erp.ledger().check();
    assert_eq!(erp.count(DocumentKind::SalesOrder, &key), 1);
    assert_eq!(erp.count(DocumentKind::Fulfilment, &first_key), 1);
    let doc = erp_document(&rig, id).await;
    assert_eq!(doc.status, ErpStatus::PartiallyFulfilled);
    assert_eq!(doc.fulfilments.len(), 1);
    assert_eq!(doc.fulfilments[0].external_id, first["id"].to_string());
    assert_eq!(
        doc.fulfilments[0].tracking_number.as_deref(),
        first["tracking_number"].as_str()
    );
    assert_eq!(doc.fulfilments[0].lines.len(), 1);
    assert_eq!(doc.fulfilments[0].lines[0].item_code, code);
    assert_eq!(doc.fulfilments[0].lines[0].quantity, units_shipped(&first));
    assert_eq!(deal_stage(&rig, id).await.0, DealStage::PartiallyFulfilled);

    // orders/fulfilled: the rest ships, under the same sales order.
    let fulfilled = factory.fulfilled(&partial);
    assert_eq!(fulfilled["fulfillment_status"], "fulfilled");
    let second = fulfilled["fulfillments"][1].clone();
    let second_key = format!("{id}/{}", second["id"]);
    assert_eq!(units_shipped(&first) + units_shipped(&second), ordered);
    assert_eq!(post(&app, "orders/fulfilled", &fulfilled).await, "applied");
    drain(&worker, &app, DRAIN).await;
    assert_synced_at(&app, id, 3, "orders/fulfilled").await;
    let erp = rig.erp.ledger().check();
    assert_eq!(erp.count(DocumentKind::SalesOrder, &key), 1);
    assert_eq!(erp.count(DocumentKind::Fulfilment, &first_key), 1);
    assert_eq!(erp.count(DocumentKind::Fulfilment, &second_key), 1);
    let doc = erp_document(&rig, id).await;
    assert_eq!(doc.status, ErpStatus::Fulfilled);
    let shipments: Vec<(String, Decimal)> = doc
        .fulfilments
        .iter()
        .map(|f| {
            (
                f.external_id.clone(),
                f.lines.iter().map(|l| l.quantity).sum(),
            )
        })
        .collect();
    assert_eq!(
        shipments,
        [
            (first["id"].to_string(), units_shipped(&first)),
            (second["id"].to_string(), units_shipped(&second)),
        ],
        "both shipments on the one sales order, oldest first"
    );
    assert_eq!(deal_stage(&rig, id).await.0, DealStage::Fulfilled);

    // refunds/create: the body is the refund itself, naming its order.
    let refunded = factory.refunded(&fulfilled, Decimal::new(1500, 2));
    let refund = latest_refund(&refunded).expect("a refund");
    assert_eq!(refund["order_id"], json!(id));
    let returned = decimal(&refund["transactions"][0]["amount"]);
    assert!(returned > Decimal::ZERO);
    let refund_key = format!("{id}/{}", refund["id"]);
    assert_eq!(post(&app, "refunds/create", &refund).await, "applied");
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) FROM webhook_events WHERE topic = 'refunds/create' AND outcome = 'applied' AND store_order_id = {id}"
        ))
        .await,
        1,
        "the refund is in the order's timeline"
    );
    // Delivered again under a new webhook id, it is part of the order already: a duplicate,
    // shown in the order's timeline too.
    assert_eq!(post(&app, "refunds/create", &refund).await, "duplicate");
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) FROM webhook_events WHERE topic = 'refunds/create' AND outcome = 'duplicate' AND store_order_id = {id}"
        ))
        .await,
        1,
        "the refund delivered again is in the order's timeline"
    );
    drain(&worker, &app, DRAIN).await;
    assert_synced_at(&app, id, 4, "refunds/create").await;
    let erp = rig.erp.ledger().check();
    assert_eq!(erp.count(DocumentKind::CreditNote, &refund_key), 1);
    let doc = erp_document(&rig, id).await;
    assert_eq!(doc.credit_notes.len(), 1);
    assert_eq!(doc.credit_notes[0].external_id, refund["id"].to_string());
    assert_eq!(doc.credit_notes[0].amount, returned);
    assert_eq!(
        doc.status,
        ErpStatus::Fulfilled,
        "a refund ships nothing back"
    );
    let total = decimal(&order["total_price"]);
    let (stage, amount, contact) = deal_stage(&rig, id).await;
    assert_eq!(stage, DealStage::PartiallyRefunded);
    assert_eq!(amount, total - returned, "the deal is worth what was kept");

    // The orders/updated the store sends with the refund: applied, and nothing sent twice.
    assert_eq!(post(&app, "orders/updated", &refunded).await, "applied");
    drain(&worker, &app, DRAIN).await;
    assert_synced_at(&app, id, 5, "orders/updated after the refund").await;
    let doc = erp_document(&rig, id).await;
    assert_eq!(
        (doc.fulfilments.len(), doc.credit_notes.len()),
        (2, 1),
        "the refund's order state adds no document"
    );
    assert_eq!(deal_stage(&rig, id).await.0, DealStage::PartiallyRefunded);

    // The ledgers: one of each document, all on the order's keys; the sales order never
    // cancelled, and changed once, for its payment status (shipments and refunds are documents
    // of their own).
    let erp = rig.erp.ledger().check();
    assert_eq!(erp.extra_documents(), 0, "{:?}", erp.duplicated);
    assert_eq!(erp.count(DocumentKind::SalesOrder, &key), 1);
    assert_eq!(erp.count(DocumentKind::Fulfilment, &first_key), 1);
    assert_eq!(erp.count(DocumentKind::Fulfilment, &second_key), 1);
    assert_eq!(erp.count(DocumentKind::CreditNote, &refund_key), 1);
    let effects: Vec<(DocumentKind, Effect, String)> = rig
        .erp
        .ledger()
        .entries()
        .into_iter()
        .map(|e| (e.kind, e.effect, e.external_id))
        .collect();
    assert_eq!(
        effects,
        [
            (DocumentKind::SalesOrder, Effect::Created, key.clone()),
            (DocumentKind::Fulfilment, Effect::Created, first_key),
            (DocumentKind::Fulfilment, Effect::Created, second_key),
            (DocumentKind::SalesOrder, Effect::Updated, key.clone()),
            (DocumentKind::CreditNote, Effect::Created, refund_key),
        ]
    );
    assert_eq!(
        serde_json::to_value(doc.order.payment_status).unwrap(),
        json!("partially_refunded"),
        "the sales order says part of the payment was given back"
    );
    let crm = rig.crm.ledger().check();
    assert_eq!(crm.extra_documents(), 0, "{:?}", crm.duplicated);
    assert_eq!(
        crm.count(DocumentKind::Deal, &key),
        1,
        "one deal, moved along"
    );
    if let Some(email) = contact {
        assert_eq!(crm.count(DocumentKind::Contact, &email), 1);
    }
    for topic in [
        "orders/create",
        "orders/partially_fulfilled",
        "orders/fulfilled",
        "refunds/create",
        "orders/updated",
    ] {
        assert_eq!(
            app.count(&format!(
                "SELECT COUNT(*) FROM webhook_events WHERE topic = '{topic}' AND outcome = 'applied' AND duplicate = FALSE AND store_order_id = {id}"
            ))
            .await,
            1,
            "{topic}"
        );
    }
    app.assert_metric_counters_match_the_rows().await;
    app.assert_every_row_has_its_parent().await;
}

/// customers/create and customers/update keep one record of the store account: the email
/// trimmed and lower-cased, the phone in E.164 (read in the default address's country), the
/// update's new details written and what it leaves out kept. No order changes, so nothing is
/// armed for the destinations.
async fn customer_topics_keep_one_normalised_customer_record(app: TestApp) {
    const CUSTOMER: i64 = 7_064_055_069_303;
    let address = |phone: &str, city: &str, zip: &str, country: &str, province: Value| {
        json!({
            "id": 8_120_000_001_i64, "customer_id": CUSTOMER, "first_name": "Jo", "last_name": "Bloggs",
            "company": null, "address1": "12 Harbour Street", "address2": null, "city": city,
            "province": null, "country": null, "zip": zip, "phone": phone, "name": "Jo Bloggs",
            "province_code": province, "country_code": country, "country_name": null, "default": true,
        })
    };
    let created = json!({
        "id": CUSTOMER, "email": "  Jo.Bloggs+Shop@Example.COM ", "accepts_marketing": false,
        "created_at": "2024-10-02T09:00:00-04:00", "updated_at": "2024-10-02T09:00:00-04:00",
        "first_name": "Jo", "last_name": "Bloggs", "orders_count": 0, "state": "disabled",
        "total_spent": "0.00", "last_order_id": null, "note": null, "verified_email": true,
        "multipass_identifier": null, "tax_exempt": false, "tags": "", "last_order_name": null,
        "currency": "USD", "phone": "(415) 555-0100", "tax_exemptions": [],
        "admin_graphql_api_id": format!("gid://shopify/Customer/{CUSTOMER}"),
        "default_address": address("(415) 555-0100", "San Francisco", "94105", "US", json!("CA")),
    });
    let row = format!("SELECT COUNT(*) FROM customers WHERE store_customer_id = {CUSTOMER}");
    let field =
        |name: &str| format!("SELECT {name} FROM customers WHERE store_customer_id = {CUSTOMER}");

    assert_eq!(post(&app, "customers/create", &created).await, "recorded");
    assert_eq!(app.count(&row).await, 1);
    assert_eq!(app.count("SELECT COUNT(*) FROM customers").await, 1);
    assert_eq!(
        app.text(&field("email")).await,
        "jo.bloggs+shop@example.com"
    );
    assert_eq!(app.text(&field("phone")).await, "+14155550100");
    assert_eq!(app.text(&field("first_name")).await, "Jo");
    assert_eq!(app.text(&field("last_name")).await, "Bloggs");

    // The customer moves to London: a national number of their new country, a new last name;
    // the email as the store spells it now (the same mailbox).
    let mut updated = created.clone();
    updated["updated_at"] = json!("2024-10-09T15:30:00+01:00");
    updated["email"] = json!("JO.BLOGGS+shop@example.com");
    updated["last_name"] = json!("Bloggs-Smith");
    updated["phone"] = json!("020 7946 0958");
    updated["first_name"] = Value::Null;
    updated["default_address"] = address("020 7946 0958", "London", "SW1A 1AA", "GB", Value::Null);
    assert_eq!(post(&app, "customers/update", &updated).await, "recorded");
    assert_eq!(app.count(&row).await, 1, "the same record");
    assert_eq!(app.count("SELECT COUNT(*) FROM customers").await, 1);
    assert_eq!(
        app.text(&field("email")).await,
        "jo.bloggs+shop@example.com"
    );
    assert_eq!(app.text(&field("phone")).await, "+442079460958");
    assert_eq!(app.text(&field("last_name")).await, "Bloggs-Smith");
    assert_eq!(
        app.text(&field("first_name")).await,
        "Jo",
        "what the update leaves out is kept"
    );

    // An order of the account links to that record, by its id.
    let mut order = OrderFactory::new(77).order();
    order["customer"] = json!({"id": CUSTOMER, "email": "jo.bloggs+shop@example.com"});
    assert_eq!(post(&app, "orders/create", &order).await, "applied");
    assert_eq!(
        app.count(&format!(
            "SELECT customer_id FROM orders WHERE store_order_id = {}",
            order_id(&order)
        ))
        .await,
        app.count(&field("id")).await
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM customers").await, 1);

    for topic in ["customers/create", "customers/update"] {
        assert_eq!(
            app.count(&format!(
                "SELECT COUNT(*) FROM webhook_events WHERE topic = '{topic}' AND outcome = 'recorded' AND duplicate = FALSE AND note IS NULL"
            ))
            .await,
            1,
            "{topic} is kept, without a complaint"
        );
    }
    assert_eq!(
        app.count("SELECT COUNT(*) FROM sync_tasks").await,
        2,
        "only the order armed tasks"
    );
    app.assert_metric_counters_match_the_rows().await;
    app.assert_every_row_has_its_parent().await;
}

/// A customer's details (phone, names) are versioned by the store's time, as orders are: a late,
/// older customers/update is superseded and changes nothing, and an order carrying details older
/// than those held (its customer object's `updated_at`, or for a guest when the order was placed)
/// links to the customer without writing them back. Newer details are written.
async fn a_customer_keeps_the_newest_details_the_store_gave(app: TestApp) {
    const CUSTOMER: i64 = 7_064_055_069_404;
    let record = |updated_at: &str, phone: &str, last_name: &str| {
        json!({
            "id": CUSTOMER, "email": "sam.lee@example.com", "created_at": "2024-10-02T09:00:00Z",
            "updated_at": updated_at, "first_name": "Sam", "last_name": last_name, "phone": phone,
            "state": "enabled", "tags": "", "default_address": null,
        })
    };
    let field =
        |name: &str| format!("SELECT {name} FROM customers WHERE store_customer_id = {CUSTOMER}");
    let details = async || {
        (
            app.text(&field("phone")).await,
            app.text(&field("last_name")).await,
        )
    };

    let created = record("2024-10-02T09:00:00Z", "+14155550100", "Lee");
    assert_eq!(post(&app, "customers/create", &created).await, "recorded");
    let moved = record("2024-10-09T15:30:00Z", "+442079460958", "Lee-Park");
    assert_eq!(post(&app, "customers/update", &moved).await, "recorded");
    assert_eq!(details().await, ("+442079460958".into(), "Lee-Park".into()));

    // The store's update of the 5th, delivered late: kept, and superseded.
    let late = record("2024-10-05T12:00:00Z", "+14155550199", "Lee-Old");
    assert_eq!(post(&app, "customers/update", &late).await, "superseded");
    assert_eq!(
        details().await,
        ("+442079460958".into(), "Lee-Park".into()),
        "an older record changes nothing"
    );
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM webhook_events WHERE topic = 'customers/update' AND outcome = 'superseded' \
             AND note = 'older than the customer''s details held (2024-10-09T15:30:00+00:00)'"
        )
        .await,
        1,
        "the note says how recent the details held are"
    );

    // An order that carries the customer as the store had them on the 2nd: linked, and the
    // details held stay.
    let mut shop = OrderFactory::new(81);
    let mut stale = shop.order();
    stale["customer"] = record("2024-10-02T09:00:00Z", "+14155550100", "Lee");
    assert_eq!(post(&app, "orders/create", &stale).await, "applied");
    assert_eq!(
        app.count(&format!(
            "SELECT customer_id FROM orders WHERE store_order_id = {}",
            order_id(&stale)
        ))
        .await,
        app.count(&field("id")).await
    );
    assert_eq!(details().await, ("+442079460958".into(), "Lee-Park".into()));
    // One whose customer the store changed since: its details are written.
    let mut newer = shop.order();
    newer["customer"] = record("2024-10-20T08:00:00Z", "+442079460958", "Park");
    assert_eq!(post(&app, "orders/create", &newer).await, "applied");
    assert_eq!(details().await, ("+442079460958".into(), "Park".into()));
    assert_eq!(app.count("SELECT COUNT(*) FROM customers").await, 1);
    // That order's details are now the newest held: a record of the 15th is late.
    let of_the_15th = record("2024-10-15T12:00:00Z", "+14155550115", "Lee-Park");
    assert_eq!(
        post(&app, "customers/update", &of_the_15th).await,
        "superseded"
    );
    assert_eq!(details().await, ("+442079460958".into(), "Park".into()));
    // An order with the same details, as the store had them on the 25th, writes nothing new
    // but moves how recent they are: a record of the 22nd is late too.
    let mut same = shop.order();
    same["customer"] = record("2024-10-25T08:00:00Z", "+442079460958", "Park");
    assert_eq!(post(&app, "orders/create", &same).await, "applied");
    let of_the_22nd = record("2024-10-22T12:00:00Z", "+14155550122", "Park");
    assert_eq!(
        post(&app, "customers/update", &of_the_22nd).await,
        "superseded"
    );
    assert_eq!(details().await, ("+442079460958".into(), "Park".into()));
    // A record as recent as the details held, with a change, is written.
    let also_the_25th = record("2024-10-25T08:00:00Z", "+442079460958", "Park-Lee");
    assert_eq!(
        post(&app, "customers/update", &also_the_25th).await,
        "recorded"
    );
    assert_eq!(details().await, ("+442079460958".into(), "Park-Lee".into()));

    // A guest's details are as of each checkout: a later state of the earlier order (paid a
    // day after the second checkout) does not put the first checkout's name back.
    let guest = |order: &mut Value, placed: &str, last_name: &str| {
        order["customer"] = Value::Null;
        order["email"] = json!("guest.buyer@example.com");
        order["contact_email"] = json!("guest.buyer@example.com");
        order["created_at"] = json!(placed);
        order["updated_at"] = json!(placed);
        order["billing_address"]["first_name"] = json!("Robin");
        order["billing_address"]["last_name"] = json!(last_name);
    };
    let guest_name = "SELECT last_name FROM customers WHERE email = 'guest.buyer@example.com' AND store_customer_id IS NULL";
    let mut first = shop.order();
    guest(&mut first, "2024-11-01T10:00:00Z", "First");
    assert_eq!(post(&app, "orders/create", &first).await, "applied");
    assert_eq!(app.text(guest_name).await, "First");
    let mut second = shop.order();
    guest(&mut second, "2024-11-02T10:00:00Z", "Second");
    assert_eq!(post(&app, "orders/create", &second).await, "applied");
    assert_eq!(app.text(guest_name).await, "Second");
    let mut paid = first.clone();
    paid["updated_at"] = json!("2024-11-03T10:00:00Z");
    paid["financial_status"] = json!("paid");
    assert_eq!(post(&app, "orders/paid", &paid).await, "applied");
    assert_eq!(
        app.text(guest_name).await,
        "Second",
        "the later state of the first checkout keeps the second checkout's name"
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM customers").await, 2);

    app.assert_metric_counters_match_the_rows().await;
    app.assert_every_row_has_its_parent().await;
}

/// A customer's records posted all at once, in no order (PostgreSQL runs them in concurrent
/// transactions), and an order of the customer's among them: whichever commits last, the record
/// ends with the newest details, as recent as the newest record.
async fn customer_records_posted_at_once_leave_the_newest_details(app: TestApp) {
    const CUSTOMER: i64 = 7_064_055_069_505;
    const RECORDS: u32 = 16;
    let record = |nth: u32| {
        json!({
            "id": CUSTOMER, "email": "kim.rowe@example.com", "created_at": "2024-10-02T09:00:00Z",
            "updated_at": format!("2024-10-03T09:{nth:02}:00Z"), "first_name": "Kim",
            "last_name": format!("Rowe-{nth}"), "phone": format!("+1415555{:04}", 100 + nth),
            "state": "enabled", "tags": "", "default_address": null,
        })
    };
    // Newer than every record but one, and carrying no details of its own that differ.
    let mut order = OrderFactory::new(82).order();
    order["customer"] = record(RECORDS - 2);
    let mut racing = tokio::task::JoinSet::new();
    for nth in [7, 0, 12, 3, 15, 9, 1, 14, 5, 11, 2, 13, 8, 4, 10, 6] {
        let topic = if nth == 0 {
            "customers/create"
        } else {
            "customers/update"
        };
        let (post, base) = (Post::new(topic, &record(nth)), app.base.clone());
        racing.spawn(async move { post.send_to(base).await });
    }
    let (post, base) = (Post::new("orders/create", &order), app.base.clone());
    racing.spawn(async move { post.send_to(base).await });
    while let Some(done) = racing.join_next().await {
        let (status, answer) = done.expect("request task");
        assert_eq!(status, StatusCode::OK, "{answer}");
    }
    let newest = RECORDS - 1;
    assert_eq!(
        app.text(&format!(
            "SELECT last_name || ' ' || phone FROM customers WHERE store_customer_id = {CUSTOMER}"
        ))
        .await,
        format!("Rowe-{newest} +1415555{:04}", 100 + newest)
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM customers").await, 1);
    app.assert_metric_counters_match_the_rows().await;
}

/// refunds/create is applied; then an orders/updated the store took before the refund arrives
/// late (an edit minutes earlier, retried by Shopify). Applied, it would take the refund back
/// (and the CRM's amount and the ERP's payment status with it): it is superseded. The state the
/// store took with the refund, stamped the refund's own second, is applied.
async fn a_state_taken_before_a_refund_held_does_not_take_it_back(app: TestApp) {
    let (mut factory, order) = paid_order_of_several_units();
    let id = order_id(&order);
    assert_eq!(post(&app, "orders/create", &order).await, "applied");

    let edited = later(&order, 1);
    let mut with_refund = factory.refunded(&order, Decimal::new(1500, 2));
    let refund_at = later(&order, 10)["updated_at"].clone();
    with_refund["updated_at"] = refund_at.clone();
    let refunds = with_refund["refunds"].as_array_mut().expect("refunds");
    let last = refunds.len() - 1;
    refunds[last]["created_at"] = refund_at;
    let refund = latest_refund(&with_refund).expect("a refund");

    assert_eq!(post(&app, "refunds/create", &refund).await, "applied");
    let version = "SELECT version FROM orders WHERE store_order_id = ";
    assert_eq!(app.count(&format!("{version}{id}")).await, 2);
    assert_eq!(
        post(&app, "orders/updated", &edited).await,
        "superseded",
        "a state older than the refund held"
    );
    assert_eq!(app.count(&format!("{version}{id}")).await, 2);
    let refunded = app
        .text(&format!(
            "SELECT lifecycle FROM orders WHERE store_order_id = {id}"
        ))
        .await;
    assert!(
        refunded.contains("refunded"),
        "the refund stays: {refunded}"
    );

    assert_eq!(
        post(&app, "orders/updated", &with_refund).await,
        "applied",
        "the store's state of the refund's second carries it"
    );
    assert_eq!(app.count(&format!("{version}{id}")).await, 3);

    // A refund whose money did not go back (its transaction failed) leaves the order's payment
    // status as it was; one in another currency than the order's is kept and said, not added.
    let mut paid = clean_order(301);
    paid["financial_status"] = json!("paid");
    paid["total_outstanding"] = json!("0.00");
    paid["fulfillments"] = json!([]);
    paid["refunds"] = json!([]);
    paid["cancelled_at"] = Value::Null;
    let id = order_id(&paid);
    assert_eq!(post(&app, "orders/create", &paid).await, "applied");
    let currency = paid["currency"].as_str().expect("currency").to_string();
    let other = if currency == "CAD" { "USD" } else { "CAD" };
    let lifecycle = format!("SELECT lifecycle FROM orders WHERE store_order_id = {id}");
    assert_eq!(app.text(&lifecycle).await, "paid");
    let before = app.text(&lifecycle).await;
    let refund_of = |refund_id: i64, status: &str, currency: &str| {
        json!({
            "id": refund_id, "order_id": id, "created_at": later(&paid, 20)["updated_at"],
            "refund_line_items": [],
            "transactions": [{ "kind": "refund", "status": status, "amount": "5.00", "currency": currency }]
        })
    };
    let failed = refund_of(9_001, "failure", &currency);
    assert_eq!(post(&app, "refunds/create", &failed).await, "applied");
    assert_eq!(app.text(&lifecycle).await, before, "no money went back");
    let foreign = refund_of(9_002, "success", other);
    assert_eq!(post(&app, "refunds/create", &foreign).await, "recorded");
    let note = app
        .text("SELECT note FROM webhook_events WHERE topic = 'refunds/create' ORDER BY id DESC LIMIT 1")
        .await;
    assert!(
        note.starts_with(&format!("refund in {other} of an order in {currency}")),
        "{note}"
    );
    assert_eq!(
        app.count(&format!("{version}{id}")).await,
        2,
        "only the failed refund applied"
    );
}

//! The ERP connector against the simulated ERP: no duplicates whatever happens, and every
//! refusal classified with the ERP's own words.

use std::time::Duration;

use super::{dec, erp, order};
use crate::connectors::{
    DeliveryError, ErpApi, ErpCreditNoteRequest, ErpFulfilmentLine, ErpFulfilmentRequest,
    ErpStatus, TransientKind,
};
use crate::simulate::ledger::{DocumentKind, Effect};

#[tokio::test]
async fn create_then_update_the_same_order_keeps_one_document() {
    let (sim, erp) = erp().await;
    let first = erp
        .upsert_sales_order(&order("1001"), "1001:v1")
        .await
        .expect("created");
    assert_eq!(first.status, 201);
    assert!(first.request_id.is_some());

    let mut changed = order("1001");
    changed.lines[0].quantity = dec("3");
    let second = erp
        .upsert_sales_order(&changed, "1001:v2")
        .await
        .expect("updated");
    assert_eq!(second.external_id, first.external_id);
    assert_eq!(second.status, 200);

    // The same state again sends nothing.
    let before = sim.faults().requests_seen();
    let third = erp
        .upsert_sales_order(&changed, "1001:v2")
        .await
        .expect("unchanged");
    assert_eq!(third.external_id, first.external_id);
    assert_eq!(
        sim.faults().requests_seen(),
        before + 1,
        "only the find went out"
    );

    let doc = erp
        .find_sales_order("1001")
        .await
        .expect("found")
        .expect("exists");
    assert_eq!(doc.order.lines[0].quantity, dec("3"));
    let check = sim.ledger().check();
    assert_eq!(check.count(DocumentKind::SalesOrder, "1001"), 1);
    let effects: Vec<Effect> = sim.ledger().entries().iter().map(|e| e.effect).collect();
    assert_eq!(effects, [Effect::Created, Effect::Updated]);
}

#[tokio::test]
async fn commit_then_timeout_is_a_timeout_and_the_retry_finds_the_committed_document() {
    let (sim, erp) = erp().await;
    sim.faults().update(|f| {
        f.commit_then_timeout_rate = 1.0;
        f.hang_ms = 5_000;
    });
    let error = erp
        .create_sales_order(&order("1002"), "1002:v1")
        .await
        .expect_err("times out");
    assert!(error.is_timeout(), "{error:?}");
    assert_eq!(error.code(), "timeout");
    assert_eq!(
        sim.ledger().check().count(DocumentKind::SalesOrder, "1002"),
        1,
        "it committed"
    );

    // The retry, still under the same fault, finds the document instead of creating another.
    let ack = erp
        .upsert_sales_order(&order("1002"), "1002:v1")
        .await
        .expect("found on retry");
    assert!(ack.external_id.starts_with("SO-"));
    let check = sim.ledger().check();
    assert_eq!(check.count(DocumentKind::SalesOrder, "1002"), 1);
    assert!(check.duplicated.is_empty());
    assert_eq!(sim.ledger().len(), 1);
}

#[tokio::test]
async fn upsert_recovers_from_its_own_commit_then_timeout_in_one_call() {
    let (sim, erp) = erp().await;
    sim.faults().update(|f| {
        f.commit_then_timeout_rate = 1.0;
        f.hang_ms = 5_000;
    });
    // Both ways in: the upsert (find first) and the create of an order never sent.
    let upserted = erp
        .upsert_sales_order(&order("1003"), "1003:v1")
        .await
        .expect("recovered");
    let created = erp
        .create_unsent_sales_order(&order("1023"), "1023:v1")
        .await
        .expect("recovered");
    for (id, ack) in [("1003", upserted), ("1023", created)] {
        let doc = erp
            .find_sales_order(id)
            .await
            .expect("found")
            .expect("exists");
        assert_eq!(ack.external_id, doc.document_number);
        assert_eq!(sim.ledger().check().count(DocumentKind::SalesOrder, id), 1);
    }
    assert!(sim.ledger().check().duplicated.is_empty());
}

#[tokio::test]
async fn an_unsent_order_is_created_with_one_request() {
    let (sim, erp) = erp().await;
    let before = sim.faults().requests_seen();
    let ack = erp
        .create_unsent_sales_order(&order("1020"), "1020:v1")
        .await
        .expect("created");
    assert_eq!(ack.status, 201);
    assert_eq!(
        sim.faults().requests_seen(),
        before + 1,
        "the create only, no find before it"
    );
    assert_eq!(
        sim.ledger().check().count(DocumentKind::SalesOrder, "1020"),
        1
    );
}

#[tokio::test]
async fn an_unsent_order_the_erp_already_holds_is_found_and_updated_not_duplicated() {
    let (sim, erp) = erp().await;
    // Someone else created it (or SyncDesk did, before its database was restored).
    let first = erp
        .create_sales_order(&order("1021"), "elsewhere")
        .await
        .expect("created");
    let mut changed = order("1021");
    changed.lines[0].quantity = dec("4");
    let ack = erp
        .create_unsent_sales_order(&changed, "1021:v1")
        .await
        .expect("brought up to date");
    assert_eq!(ack.external_id, first.external_id);
    assert_eq!(ack.status, 200, "updated");
    let doc = erp
        .find_sales_order("1021")
        .await
        .expect("found")
        .expect("exists");
    assert_eq!(doc.order.lines[0].quantity, dec("4"));
    let check = sim.ledger().check();
    assert_eq!(check.count(DocumentKind::SalesOrder, "1021"), 1);
    assert!(check.duplicated.is_empty());
    let effects: Vec<Effect> = sim.ledger().entries().iter().map(|e| e.effect).collect();
    assert_eq!(effects, [Effect::Created, Effect::Updated]);
}

#[tokio::test]
async fn a_duplicate_create_answers_already_exists_with_the_document_number() {
    let (sim, erp) = erp().await;
    let first = erp
        .create_sales_order(&order("1004"), "a")
        .await
        .expect("created");
    let again = erp
        .create_sales_order(&order("1004"), "b")
        .await
        .expect("already there");
    assert!(again.already_existed());
    assert_eq!(again.status, 409);
    assert_eq!(again.external_id, first.external_id);
    assert_eq!(
        sim.ledger().check().count(DocumentKind::SalesOrder, "1004"),
        1
    );
}

#[tokio::test]
async fn an_unknown_item_is_rejected_naming_the_line() {
    let (sim, erp) = erp().await;
    let mut bad = order("1005");
    bad.lines[0].item_code = "NOPE-9".to_owned();
    let error = erp
        .upsert_sales_order(&bad, "1005:v1")
        .await
        .expect_err("rejected");
    let DeliveryError::Rejected {
        status,
        code,
        field,
        message,
        request_id,
        ..
    } = &error
    else {
        panic!("expected Rejected, got {error:?}");
    };
    assert_eq!((*status, code.as_str()), (422, "unknown_item"));
    assert_eq!(field.as_deref(), Some("lines[0].item_code"));
    assert!(message.contains("NOPE-9"), "{message}");
    assert!(request_id.is_some());
    assert!(!error.is_transient());
    assert!(sim.ledger().is_empty());
    assert!(!erp.item_exists("NOPE-9").await.expect("lookup"));
    assert!(erp.item_exists("ABC-1").await.expect("lookup"));
}

#[tokio::test]
async fn a_too_long_street_is_rejected_naming_the_field_and_the_limit() {
    let (_sim, erp) = erp().await;
    let mut bad = order("1006");
    if let Some(ship_to) = bad.ship_to.as_mut() {
        ship_to.street = "x".repeat(74);
    }
    let error = erp
        .upsert_sales_order(&bad, "1006:v1")
        .await
        .expect_err("rejected");
    let DeliveryError::Rejected {
        code,
        field,
        max,
        message,
        ..
    } = &error
    else {
        panic!("expected Rejected, got {error:?}");
    };
    assert_eq!(code, "field_too_long");
    assert_eq!(field.as_deref(), Some("ship_to.street"));
    assert_eq!(*max, Some(60));
    assert!(
        message.contains("74") && message.contains("60"),
        "{message}"
    );
}

#[tokio::test]
async fn a_missing_ship_to_postal_code_is_rejected() {
    let (_sim, erp) = erp().await;
    let mut bad = order("1007");
    if let Some(ship_to) = bad.ship_to.as_mut() {
        ship_to.postal_code = None;
    }
    let error = erp
        .upsert_sales_order(&bad, "1007:v1")
        .await
        .expect_err("rejected");
    assert_eq!(error.code(), "missing_field");
    assert!(
        matches!(&error, DeliveryError::Rejected { field: Some(f), .. } if f == "ship_to.postal_code")
    );
}

#[tokio::test]
async fn replaying_an_idempotency_key_gives_the_same_answer_and_one_effect() {
    let (sim, erp) = erp().await;
    let first = erp
        .create_sales_order(&order("1008"), "key-1")
        .await
        .expect("created");
    let replay = erp
        .create_sales_order(&order("1008"), "key-1")
        .await
        .expect("replayed");
    assert_eq!(
        (replay.status, &replay.external_id),
        (201, &first.external_id)
    );
    assert_eq!(sim.ledger().len(), 1);
    let sent = sim.ledger().entries()[0].idempotency_key.clone();
    assert!(
        sent.as_deref().is_some_and(|k| k.starts_with("key-1.")),
        "the engine's key, bound to the body: {sent:?}"
    );

    // The same key for a different body is refused rather than silently replayed (sent raw:
    // the connector binds each body to a key of its own).
    let mut other = order("1009");
    other.currency = "USD".to_owned();
    let response = reqwest::Client::new()
        .post(sim.base_url().join("v1/sales-orders").expect("url"))
        .bearer_auth(sim.token())
        .header("Idempotency-Key", sent.expect("key"))
        .json(&other)
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 422);
    let body: serde_json::Value = response.json().await.expect("json");
    assert_eq!(body["error"]["code"], "idempotency_key_reused", "{body}");
    assert_eq!(sim.ledger().len(), 1);
}

/// A write refused for its content, then sent again corrected under the same engine key (the
/// worker's key is the order version's, and a SKU mapping fixed in SyncDesk changes the body):
/// the corrected write is a request of its own, not "key reused", and not the refusal again.
#[tokio::test]
async fn a_corrected_write_under_the_same_engine_key_is_not_refused_as_a_reuse() {
    let (sim, erp) = erp().await;
    let mut wrong = order("1012");
    wrong.lines[0].item_code = "NO-SUCH-ITEM".to_owned();
    let refused = erp
        .create_sales_order(&wrong, "1012-v1-erp")
        .await
        .expect_err("unknown item");
    assert_eq!(refused.code(), "unknown_item");
    let created = erp
        .create_sales_order(&order("1012"), "1012-v1-erp")
        .await
        .expect("the corrected order is created");
    assert_eq!(created.status, 201);
    assert_eq!(
        sim.ledger().check().count(DocumentKind::SalesOrder, "1012"),
        1
    );

    // Cured on the ERP's side instead (the item added to its catalogue): the same body under
    // the same key is processed afresh, not answered with the refusal it got before.
    let mut late = order("1013");
    late.lines[0].item_code = "LATE-ITEM".to_owned();
    let refused = erp
        .create_sales_order(&late, "1013-v1-erp")
        .await
        .expect_err("unknown item");
    assert_eq!(refused.code(), "unknown_item");
    let added = reqwest::Client::new()
        .put(sim.base_url().join("_sim/items/LATE-ITEM").expect("url"))
        .json(&serde_json::json!({}))
        .send()
        .await
        .expect("sent");
    assert!(added.status().is_success(), "{}", added.status());
    let created = erp
        .create_sales_order(&late, "1013-v1-erp")
        .await
        .expect("created once the ERP knows the item");
    assert_eq!(created.status, 201);
}

#[tokio::test]
async fn the_ledger_check_finds_a_duplicate_forced_through_the_raw_api() {
    let (sim, _erp) = erp().await;
    sim.faults().update(|f| f.allow_duplicates = true);
    let http = reqwest::Client::new();
    let url = sim.base_url().join("v1/sales-orders").expect("url");
    for _ in 0..2 {
        let response = http
            .post(url.clone())
            .bearer_auth(sim.token())
            .json(&order("1010"))
            .send()
            .await
            .expect("sent");
        assert_eq!(response.status(), 201);
    }
    let check = sim.ledger().check();
    assert_eq!(check.count(DocumentKind::SalesOrder, "1010"), 2);
    assert_eq!(check.duplicated.len(), 1);
    assert_eq!(check.extra_documents(), 1);
}

#[tokio::test]
async fn find_before_create_avoids_duplicates_even_where_the_erp_allows_them() {
    let (sim, erp) = erp().await;
    sim.faults().update(|f| f.allow_duplicates = true);
    for version in 1..=3 {
        erp.upsert_sales_order(&order("1011"), &format!("1011:v{version}"))
            .await
            .expect("ok");
    }
    assert_eq!(
        sim.ledger().check().count(DocumentKind::SalesOrder, "1011"),
        1
    );
}

#[tokio::test]
async fn shipments_credit_notes_and_cancellation_follow_the_erp_rules() {
    let (sim, erp) = erp().await;
    let so = erp
        .upsert_sales_order(&order("1012"), "1012:v1")
        .await
        .expect("created")
        .external_id;
    let shipment = ErpFulfilmentRequest {
        external_id: "F1".to_owned(),
        shipped_at: None,
        tracking_number: Some("1Z999".to_owned()),
        lines: vec![ErpFulfilmentLine {
            item_code: "ABC-1".to_owned(),
            quantity: dec("2"),
        }],
    };
    let first = erp
        .add_fulfilment(&so, &shipment, "1012:f1")
        .await
        .expect("shipped");
    assert_eq!(first.status, 201);
    let again = erp
        .add_fulfilment(&so, &shipment, "1012:f1:retry")
        .await
        .expect("known");
    assert!(again.already_existed());
    assert_eq!(again.external_id, first.external_id);
    let doc = erp
        .find_sales_order("1012")
        .await
        .expect("found")
        .expect("exists");
    assert_eq!(doc.status, ErpStatus::PartiallyFulfilled);

    let too_much = ErpFulfilmentRequest {
        external_id: "F2".to_owned(),
        lines: vec![ErpFulfilmentLine {
            item_code: "XYZ-2".to_owned(),
            quantity: dec("5"),
        }],
        ..shipment.clone()
    };
    let error = erp
        .add_fulfilment(&so, &too_much, "1012:f2")
        .await
        .expect_err("over");
    assert_eq!(error.code(), "over_fulfilment");

    let refund = ErpCreditNoteRequest {
        external_id: "R1".to_owned(),
        amount: dec("11.90"),
        reason: "damaged".to_owned(),
    };
    let note = erp
        .add_credit_note(&so, &refund, "1012:r1")
        .await
        .expect("credited");
    assert!(note.external_id.starts_with("CN-"));
    // A credit note, or a shipment, past what a decimal holds is refused, not a crash.
    let huge = ErpCreditNoteRequest {
        external_id: "R2".to_owned(),
        amount: rust_decimal::Decimal::MAX,
        ..refund.clone()
    };
    let error = erp
        .add_credit_note(&so, &huge, "1012:r2")
        .await
        .expect_err("over the total");
    assert_eq!(error.code(), "credit_exceeds_total");
    let overflowing = ErpFulfilmentRequest {
        external_id: "F3".to_owned(),
        lines: vec![
            ErpFulfilmentLine {
                item_code: "ABC-1".to_owned(),
                quantity: rust_decimal::Decimal::MAX,
            },
            ErpFulfilmentLine {
                item_code: "ABC-1".to_owned(),
                quantity: rust_decimal::Decimal::MAX,
            },
        ],
        ..shipment.clone()
    };
    let error = erp
        .add_fulfilment(&so, &overflowing, "1012:f3")
        .await
        .expect_err("over");
    assert_eq!(error.code(), "over_fulfilment");
    let error = erp
        .cancel_sales_order(&so, Some("customer"), "1012:c")
        .await
        .expect_err("shipped");
    assert_eq!(error.code(), "invalid_state");

    let other = erp
        .upsert_sales_order(&order("1013"), "1013:v1")
        .await
        .expect("created");
    erp.cancel_sales_order(&other.external_id, Some("customer"), "1013:c")
        .await
        .expect("cancelled");
    erp.cancel_sales_order(&other.external_id, None, "1013:c2")
        .await
        .expect("still cancelled");
    let doc = erp
        .find_sales_order("1013")
        .await
        .expect("found")
        .expect("exists");
    assert_eq!(doc.status, ErpStatus::Cancelled);
    // Upserting a cancelled order changes nothing and is not an error.
    let mut late = order("1013");
    late.total_gross = dec("1.00");
    erp.upsert_sales_order(&late, "1013:v2")
        .await
        .expect("no-op");

    let check = sim.ledger().check();
    assert!(check.duplicated.is_empty());
    assert_eq!(check.count(DocumentKind::Fulfilment, "1012/F1"), 1);
    assert_eq!(check.count(DocumentKind::CreditNote, "1012/R1"), 1);
    assert_eq!(
        sim.ledger().entries_for("1013").len(),
        2,
        "created, cancelled once"
    );
}

#[tokio::test]
async fn changed_since_pages_through_every_order() {
    let (_sim, erp) = erp().await;
    let start = chrono::Utc::now() - chrono::Duration::seconds(1);
    for n in 0..5 {
        erp.upsert_sales_order(&order(&format!("20{n}")), &format!("20{n}:v1"))
            .await
            .expect("ok");
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = erp
            .sales_orders_changed_since(start, cursor.as_deref(), 2)
            .await
            .expect("page");
        assert!(page.data.len() <= 2);
        seen.extend(page.data.into_iter().map(|d| d.order.external_id));
        cursor = page.next_cursor;
        if cursor.is_none() {
            break;
        }
    }
    assert_eq!(seen, ["200", "201", "202", "203", "204"]);
    let later = chrono::Utc::now() + chrono::Duration::seconds(1);
    let none = erp
        .sales_orders_changed_since(later, None, 10)
        .await
        .expect("page");
    assert!(none.data.is_empty());
}

#[tokio::test]
async fn a_hanging_outage_is_a_timeout_and_a_503_outage_is_a_server_error() {
    let (sim, erp) = erp().await;
    sim.faults().update(|f| f.hang_ms = 5_000);
    sim.faults().start_outage(
        Duration::from_secs(60),
        crate::simulate::faults::OutageMode::Hang,
    );
    let error = erp.find_sales_order("1").await.expect_err("hangs");
    assert!(error.is_timeout(), "{error:?}");
    sim.faults()
        .start_outage(Duration::from_secs(60), Default::default());
    let error = erp.find_sales_order("1").await.expect_err("down");
    assert!(
        matches!(
            error,
            DeliveryError::Transient {
                kind: TransientKind::Server { status: 503 },
                ..
            }
        ),
        "{error:?}"
    );
    sim.faults().end_outage();
    assert_eq!(erp.find_sales_order("1").await.expect("back"), None);
}

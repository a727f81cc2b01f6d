//! Validation agrees with the simulated destinations: generated orders, mapped and validated,
//! are sent to the simulated CRM and ERP (in process, through their real routers). Everything
//! the validator accepts must be accepted — the sales order, its updates as the order moves on,
//! and every shipment, credit note and cancellation — and the ERP document must end up
//! reflecting the order. Everything the validator refuses must be refused by the simulator too,
//! for one of the fields the validator named.
//!
//! The simulators' rule functions (`simulate::rules`) are private to the simulator, so they are
//! exercised the way the engine meets them: as HTTP answers.

use std::collections::BTreeMap;

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::http::{Method, Request, StatusCode};
use rust_decimal::Decimal;
use serde_json::Value;
use tower::ServiceExt;

use super::{validate_crm, validate_erp, validate_erp_change};
use crate::connectors::crm::{CrmContact, CrmDeal, limits as crm_limits};
use crate::connectors::{ErpDocument, Page};
use crate::domain::shopify::parse_order;
use crate::domain::{Currency, Order, Sku};
use crate::engine::exception::Problem;
use crate::engine::map::{self, ErpChange};
use crate::simulate::crm::{CrmSimConfig, build_crm};
use crate::simulate::erp::{ErpCatalogue, ErpSimConfig, build_erp};
use crate::simulate::shopify::{CATALOGUE, OrderFactory};

/// A simulator's router and token.
struct Sim {
    router: Router,
    token: String,
}

impl Sim {
    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let body = body.map_or_else(Body::empty, |b| Body::from(b.to_string()));
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header("authorization", format!("Bearer {}", self.token))
            .header("content-type", "application/json")
            .body(body)
            .unwrap();
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = to_bytes(response.into_body(), usize::MAX).await.unwrap();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    async fn sales_order(&self, external_id: &str) -> Option<ErpDocument> {
        let path = format!("/v1/sales-orders?external_id={external_id}");
        let (status, body) = self.call(Method::GET, &path, None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let page: Page<ErpDocument> = serde_json::from_value(body).unwrap();
        assert!(
            page.data.len() <= 1,
            "duplicate documents for {external_id}"
        );
        page.data.into_iter().next()
    }
}

/// The SKU mapping the test runs with: every catalogue SKU except the ones the ERP has never
/// heard of ("NEW-…").
fn item_code(sku: &Sku) -> Option<String> {
    let known =
        !sku.as_str().starts_with("NEW-") && CATALOGUE.iter().any(|p| p.sku == sku.as_str());
    known.then(|| format!("IT-{sku}"))
}

/// An order and the versions it goes through; the shape depends on `i`.
fn history(shop: &mut OrderFactory, i: usize) -> Vec<Value> {
    let mut versions = vec![shop.order()];
    let steps: &[&str] = match i % 7 {
        0 => &[],
        1 => &["paid", "fulfilled"],
        2 => &["paid", "partial", "refund_some", "fulfilled"],
        3 => &["cancelled"],
        4 => &["paid", "partial", "cancelled"],
        5 => &["paid", "fulfilled", "refund_all"],
        _ => &["paid", "partial", "edit"],
    };
    for step in steps {
        let Some(last) = versions.last() else { break };
        let next = match *step {
            "paid" => shop.paid(last),
            "fulfilled" => shop.fulfilled(last),
            "partial" => shop.partially_fulfilled(last),
            "cancelled" => shop.cancelled(last),
            "edit" => remove_one_unshipped_unit(shop.paid(last)),
            "refund_some" => shop.refunded(last, rust_decimal::Decimal::from(20)),
            _ => shop.refunded(last, rust_decimal::Decimal::from(100_000)),
        };
        versions.push(next);
    }
    // Now and then an address the ERP cannot take, beyond what the factory makes by itself.
    if i % 29 == 7 {
        for v in &mut versions {
            if let Some(ship_to) = v.get_mut("shipping_address").filter(|a| a.is_object()) {
                ship_to["city"] =
                    Value::from("Llanfairpwllgwyngyllgogerychwyrndrobwllllantysiliogogogoch");
            }
        }
    }
    versions
}

/// An order edit that takes one unit not yet shipped off the order (the factory makes no
/// edits of its own): the sales order must shrink, and never below what shipped.
fn remove_one_unshipped_unit(mut order: Value) -> Value {
    let shipped = |id: &Value| -> u64 {
        order["fulfillments"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|f| f["line_items"].as_array().into_iter().flatten())
            .filter(|l| &l["id"] == id)
            .filter_map(|l| l["quantity"].as_u64())
            .sum()
    };
    let target = order["line_items"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
        .find(|(_, l)| l["current_quantity"].as_u64().unwrap_or(0) > shipped(&l["id"]))
        .map(|(i, _)| i);
    if let Some(i) = target {
        let line = &mut order["line_items"][i];
        let current = line["current_quantity"].as_u64().unwrap_or(1);
        line["current_quantity"] = Value::from(current - 1);
    }
    order
}

/// What happened, for the coverage assertions at the end.
#[derive(Default, Debug)]
struct Tally(BTreeMap<&'static str, usize>);

impl Tally {
    fn add(&mut self, what: &'static str) {
        *self.0.entry(what).or_default() += 1;
    }

    fn get(&self, what: &str) -> usize {
        self.0.get(what).copied().unwrap_or(0)
    }
}

/// What the validator refused, the simulator refused too, naming a field the validator named:
/// a destination's refusal and the check before sending land in one exception group.
fn refused_alike(
    what: &'static str,
    problems: &[Problem],
    status: StatusCode,
    answer: &Value,
    tally: &mut Tally,
) {
    tally.add(what);
    for p in problems {
        tally.add(p.code);
    }
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{what}: {answer}");
    let field = answer["error"]["field"].as_str().unwrap_or_default();
    assert!(
        problems.iter().any(|p| p.fields.iter().any(|f| f == field)),
        "{what}: the simulator named {field}, the validator {problems:?}"
    );
}

/// One way to break each of the CRM's rules, for a payload the store's data never breaks them
/// with (`nth` picks one, or none).
fn break_a_crm_rule(nth: usize, contact: &mut Option<CrmContact>, deal: &mut CrmDeal) {
    let over = |limit: usize| "x".repeat(limit + 1);
    match (nth % 12, contact.as_mut()) {
        (1, Some(c)) => c.first_name = Some(over(crm_limits::NAME)),
        (2, Some(c)) => c.last_name = Some(over(crm_limits::NAME)),
        (3, Some(c)) => c.phone = Some(format!("+1 {}", over(crm_limits::PHONE))),
        (4, Some(c)) => c.email = "no-at-sign.example.com".into(),
        (5, Some(c)) => c.email = format!("{}@example.com", over(crm_limits::EMAIL)),
        (6, _) => deal.name = over(crm_limits::DEAL_NAME),
        (7, _) => deal.amount = -deal.amount - Decimal::ONE,
        _ => {}
    }
}

async fn sync_crm(crm: &Sim, order: &Order, nth: usize, tally: &mut Tally) {
    let mut contact = map::crm_contact(order);
    let mut deal = map::crm_deal(order);
    break_a_crm_rule(nth, &mut contact, &mut deal);
    let problems = validate_crm(contact.as_ref(), &deal);
    // As the connector sends it: the deal with its contact inside, one write.
    let mut sent = serde_json::to_value(&deal).unwrap();
    if let Some(contact) = &contact {
        sent["contact"] = serde_json::to_value(contact).unwrap();
    }
    let path = format!("/v1/deals/{}", deal.external_id);
    let (status, body) = crm.call(Method::PUT, &path, Some(sent)).await;
    if !problems.is_empty() {
        refused_alike("crm_refused", &problems, status, &body, tally);
        return;
    }
    assert!(
        status.is_success(),
        "validated deal and contact refused: {status} {body} for {deal:?} {contact:?}"
    );
    tally.add("crm_synced");
}

async fn sync_erp(erp: &Sim, order: &Order, tally: &mut Tally) {
    let payload = match map::erp_sales_order(order, &item_code) {
        Ok(payload) => payload,
        Err(problems) => {
            assert!(
                problems
                    .iter()
                    .all(|p| p.code == "missing_sku_mapping" || p.code == "line_without_sku")
            );
            tally.add("erp_unmapped");
            return;
        }
    };
    let existing = erp.sales_order(&payload.external_id).await;
    let problems = validate_erp(&order.name, &payload);
    let body = serde_json::to_value(&payload).unwrap();
    if !problems.is_empty() {
        let (status, answer) = erp.call(Method::POST, "/v1/sales-orders", Some(body)).await;
        refused_alike("erp_refused", &problems, status, &answer, tally);
        return;
    }
    match existing {
        None => {
            let (status, answer) = erp.call(Method::POST, "/v1/sales-orders", Some(body)).await;
            assert_eq!(
                status,
                StatusCode::CREATED,
                "validated sales order refused: {answer}"
            );
            tally.add("erp_created");
        }
        Some(doc)
            if doc.status != crate::connectors::ErpStatus::Cancelled && !doc.matches(&payload) =>
        {
            let path = format!("/v1/sales-orders/{}", doc.document_number);
            let (status, answer) = erp.call(Method::PUT, &path, Some(body)).await;
            assert_eq!(status, StatusCode::OK, "validated update refused: {answer}");
            tally.add("erp_updated");
        }
        Some(_) => {}
    }
    let doc = erp.sales_order(&payload.external_id).await.unwrap();
    let changes = map::erp_changes(order, &doc, &item_code).unwrap();
    for change in &changes {
        assert_eq!(validate_erp_change(&order.name, change), [], "{change:?}");
        let number = &doc.document_number;
        let (path, body, what) = match change {
            ErpChange::Cancel { reason } => (
                format!("/v1/sales-orders/{number}/cancel"),
                serde_json::json!({ "reason": reason }),
                "erp_cancel",
            ),
            ErpChange::Fulfilment(f) => (
                format!("/v1/sales-orders/{number}/fulfilments"),
                serde_json::to_value(f).unwrap(),
                "erp_fulfilment",
            ),
            ErpChange::CreditNote(c) => (
                format!("/v1/sales-orders/{number}/credit-notes"),
                serde_json::to_value(c).unwrap(),
                "erp_credit_note",
            ),
        };
        let (status, answer) = erp.call(Method::POST, &path, Some(body)).await;
        assert!(
            status.is_success(),
            "{what} refused: {status} {answer} for {change:?}"
        );
        tally.add(what);
    }
    // The document now reflects the order: nothing is left to send.
    let doc = erp.sales_order(&payload.external_id).await.unwrap();
    assert_eq!(map::erp_changes(order, &doc, &item_code).unwrap(), []);
    if order.cancelled_at.is_some() && order.fulfillments.is_empty() {
        assert_eq!(doc.status, crate::connectors::ErpStatus::Cancelled);
    }
}

#[tokio::test]
async fn what_validation_accepts_the_simulators_accept() {
    let codes = CATALOGUE
        .iter()
        .map(|p| Sku::parse(p.sku))
        .filter_map(Result::ok);
    let catalogue = ErpCatalogue::from_codes(codes.filter_map(|s| item_code(&s)));
    let erp = build_erp(ErpSimConfig {
        catalogue,
        ..ErpSimConfig::default()
    });
    let erp = Sim {
        router: erp.router,
        token: erp.token,
    };
    let crm = build_crm(CrmSimConfig::default());
    let crm = Sim {
        router: crm.router,
        token: crm.token,
    };
    let shops = [
        OrderFactory::new(101),
        OrderFactory::new(202).with_currency(Currency::EUR, true),
        OrderFactory::new(303).with_currency(Currency::GBP, true),
        OrderFactory::new(404).with_currency(Currency::CAD, false),
    ];
    let mut tally = Tally::default();
    for mut shop in shops {
        for i in 0..100 {
            for version in history(&mut shop, i) {
                let order = parse_order(&serde_json::to_vec(&version).unwrap()).unwrap();
                tally.add("versions");
                // Every seventh version of an order breaks one of the CRM's rules.
                let nth = tally.get("versions");
                sync_crm(
                    &crm,
                    &order,
                    if nth % 7 == 3 { nth / 7 } else { 0 },
                    &mut tally,
                )
                .await;
                sync_erp(&erp, &order, &mut tally).await;
            }
        }
    }
    // The run covered what it claims to: accepted and refused payloads of every kind.
    for what in [
        "crm_synced",
        "crm_refused",
        "erp_created",
        "erp_updated",
        "erp_fulfilment",
        "erp_credit_note",
        "erp_cancel",
        "erp_unmapped",
        "erp_refused",
        "field_too_long",
        "missing_field",
        "invalid_field",
    ] {
        assert!(tally.get(what) > 0, "nothing was {what}: {tally:?}");
    }
    assert!(tally.get("versions") > 1000, "{tally:?}");
}

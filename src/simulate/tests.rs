//! The simulators through their raw HTTP surface: control endpoints, request ids, error
//! envelopes, the OpenAPI document, and no duplicates under concurrency.

use std::sync::Arc;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::SimHandle;
use super::crm::{CrmSimConfig, spawn_crm};
use super::erp::{ErpCatalogue, ErpSimConfig, spawn_erp};
use super::ledger::DocumentKind;
use crate::connectors::{ApiToken, ConnectorConfig, ErpApi, HttpErp};

async fn erp() -> SimHandle {
    let config = ErpSimConfig {
        catalogue: ErpCatalogue::from_codes(["ABC-1"]),
        ..ErpSimConfig::default()
    };
    spawn_erp(config).await.expect("ERP simulator starts")
}

/// Sends `method path` with the right token and an optional JSON body.
async fn call(
    sim: &SimHandle,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> reqwest::Response {
    let url = sim
        .base_url()
        .join(path.trim_start_matches('/'))
        .expect("url");
    let mut request = reqwest::Client::new()
        .request(method, url)
        .bearer_auth(sim.token());
    if let Some(body) = body {
        request = request.json(&body);
    }
    request.send().await.expect("request sent")
}

fn request_id(response: &reqwest::Response) -> Option<String> {
    response
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

fn order_json(external_id: &str) -> Value {
    json!({
        "external_id": external_id, "customer_account": "GUEST", "currency": "EUR",
        "order_date": "2024-05-01", "shipping_cost": "0", "tax_total": "0", "total_gross": "10.00",
        "lines": [{"item_code": "ABC-1", "quantity": "1", "unit_price_net": "10.00",
                   "unit_price_gross": "10.00", "discount": "0", "tax": "0"}],
    })
}

#[tokio::test]
async fn faults_are_set_through_the_control_endpoint_and_every_answer_has_a_request_id() {
    let sim = erp().await;
    let set = call(
        &sim,
        Method::PUT,
        "/_sim/faults",
        Some(json!({"revoked": true})),
    )
    .await;
    assert_eq!(set.status(), StatusCode::OK);
    let refused = call(&sim, Method::GET, "/v1/items/ABC-1", None).await;
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    let first_id = request_id(&refused).expect("request id on a 401");
    let body: Value = refused.json().await.expect("json");
    assert_eq!(body["error"]["code"], "unauthorized");
    assert!(
        sim.faults().get().revoked,
        "the Rust handle sees the same settings"
    );

    for bad in [
        json!({"error_rate": 2.0}),
        json!({"no_such_fault": true}),
        json!({"error_rate": 0.6, "rate_limit_rate": 0.5}),
    ] {
        let response = call(&sim, Method::PUT, "/_sim/faults", Some(bad)).await;
        assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert!(request_id(&response).is_some());
    }
    let cleared = call(&sim, Method::DELETE, "/_sim/faults", None).await;
    assert!(request_id(&cleared).is_some());
    let found = call(&sim, Method::GET, "/v1/items/ABC-1", None).await;
    assert_eq!(found.status(), StatusCode::OK);
    assert_ne!(request_id(&found), Some(first_id));
    let missing = call(&sim, Method::GET, "/v1/items/NOPE", None).await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    let nowhere = call(&sim, Method::GET, "/v2/anything", None).await;
    assert_eq!(nowhere.status(), StatusCode::NOT_FOUND);
    assert!(request_id(&nowhere).is_some());
}

#[tokio::test]
async fn bad_bodies_get_400_or_422_and_change_nothing() {
    let sim = erp().await;
    let url = sim.base_url().join("v1/sales-orders").expect("url");
    let garbled = reqwest::Client::new()
        .post(url)
        .bearer_auth(sim.token())
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .expect("sent");
    assert_eq!(garbled.status(), StatusCode::BAD_REQUEST);
    let body: Value = garbled.json().await.expect("json");
    assert_eq!(body["error"]["code"], "invalid_json");
    let wrong_shape = call(
        &sim,
        Method::POST,
        "/v1/sales-orders",
        Some(json!({"lines": 3})),
    )
    .await;
    assert_eq!(wrong_shape.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(sim.ledger().is_empty());
}

#[tokio::test]
async fn the_ledger_and_catalogue_are_reachable_over_http() {
    let sim = erp().await;
    let added = call(&sim, Method::PUT, "/_sim/items/NEW-7", None).await;
    assert_eq!(added.status(), StatusCode::OK);
    let mut body = order_json("5001");
    body["lines"][0]["item_code"] = json!("NEW-7");
    let created = call(&sim, Method::POST, "/v1/sales-orders", Some(body)).await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let ledger: Value = call(&sim, Method::GET, "/_sim/ledger?external_id=5001", None)
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(ledger["entries"].as_array().map(Vec::len), Some(1));
    assert_eq!(ledger["entries"][0]["kind"], "sales_order");
    let check: Value = call(&sim, Method::GET, "/_sim/ledger/check", None)
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(check["counts"][0]["documents"], 1);
    assert_eq!(check["duplicated"], json!([]));
}

#[tokio::test]
async fn concurrent_upserts_of_one_order_make_one_document() {
    let sim = erp().await;
    let mut config = ConnectorConfig::new(sim.base_url().clone(), ApiToken::new(sim.token()));
    config.rate_limit = None;
    let client = Arc::new(HttpErp::new(&config).expect("client"));
    let body: crate::connectors::ErpSalesOrder =
        serde_json::from_value(order_json("6001")).expect("order");
    let tasks: Vec<_> = (0..32)
        .map(|n| {
            let (client, body) = (client.clone(), body.clone());
            tokio::spawn(async move {
                client
                    .upsert_sales_order(&body, &format!("worker-{n}"))
                    .await
            })
        })
        .collect();
    let mut numbers = Vec::new();
    for task in tasks {
        numbers.push(task.await.expect("joined").expect("upserted").external_id);
    }
    numbers.dedup();
    assert_eq!(
        numbers.len(),
        1,
        "every worker got the same document: {numbers:?}"
    );
    assert_eq!(
        sim.ledger().check().count(DocumentKind::SalesOrder, "6001"),
        1
    );
}

/// Fills `{param}` segments with something plausible.
fn concrete(path: &str) -> String {
    path.split('/')
        .map(|segment| {
            if segment.starts_with('{') {
                "X-1"
            } else {
                segment
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

#[tokio::test]
async fn the_openapi_document_describes_the_routes_the_simulators_serve() {
    let doc: Value = serde_json::from_str(include_str!("../../docs/reference-apis.openapi.json"))
        .expect("the OpenAPI document is JSON");
    assert_eq!(doc["openapi"], "3.1.0");
    let crm = spawn_crm(CrmSimConfig::default())
        .await
        .expect("CRM starts");
    let erp = erp().await;
    let paths = doc["paths"].as_object().expect("paths");
    let mut operations = 0;
    for (path, item) in paths {
        let servers = item["servers"].as_array().expect("servers per path");
        for server in servers {
            let sim = match server["description"].as_str() {
                Some("Reference CRM") => &crm,
                Some("Reference ERP") => &erp,
                other => panic!("unknown server {other:?}"),
            };
            for method in ["get", "put", "post", "delete"] {
                if item.get(method).is_none() {
                    continue;
                }
                operations += 1;
                let verb = Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
                let body = (method == "put" || method == "post").then(|| json!({}));
                let response = call(sim, verb, &concrete(path), body).await;
                let status = response.status();
                let answer: Value = response.json().await.unwrap_or(Value::Null);
                let routed = status != StatusCode::METHOD_NOT_ALLOWED
                    && answer["error"]["message"] != "No such endpoint.";
                assert!(
                    routed,
                    "{method} {path} is documented but not served ({status})"
                );
            }
        }
    }
    assert_eq!(
        operations, 26,
        "every documented operation was tried on its server(s)"
    );
}

/// 64 clients upserting 5 orders each, concurrently: every order ends as exactly one document.
/// (Throughput is measured by the benchmark command, not by a test.)
#[tokio::test]
async fn concurrent_upserts_make_one_document_per_order() {
    let sim = erp().await;
    let mut config = ConnectorConfig::new(sim.base_url().clone(), ApiToken::new(sim.token()));
    config.rate_limit = None;
    let client = Arc::new(HttpErp::new(&config).expect("client"));
    let tasks: Vec<_> = (0..64)
        .map(|worker| {
            let client = client.clone();
            tokio::spawn(async move {
                let mut body: crate::connectors::ErpSalesOrder =
                    serde_json::from_value(order_json("x")).expect("order");
                for n in 0..5 {
                    body.external_id = format!("{worker}-{n}");
                    client
                        .upsert_sales_order(&body, &body.external_id.clone())
                        .await
                        .expect("ok");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("joined");
    }
    let check = sim.ledger().check();
    assert_eq!((check.counts.len(), check.duplicated.len()), (320, 0));
}

/// A contact upsert changes only the fields it carries: a guest checkout without a name keeps
/// the name the CRM has, an empty string clears a field, and a body that changes nothing records
/// no effect.
#[tokio::test]
async fn a_contact_upsert_keeps_the_fields_it_leaves_out() {
    let crm = spawn_crm(CrmSimConfig::default())
        .await
        .expect("CRM simulator starts");
    let path = "/v1/contacts/ana@example.com";
    let first = call(
        &crm,
        Method::PUT,
        path,
        Some(json!({"first_name": "Ana", "last_name": "Diaz", "phone": "+15551234567"})),
    )
    .await;
    assert_eq!(first.status(), StatusCode::CREATED);
    let guest = call(
        &crm,
        Method::PUT,
        path,
        Some(json!({"phone": null, "store_customer_id": "77"})),
    )
    .await;
    assert_eq!(guest.status(), StatusCode::OK);
    let contact: Value = guest.json().await.expect("json");
    assert_eq!(
        (
            &contact["first_name"],
            &contact["last_name"],
            &contact["phone"],
            &contact["store_customer_id"]
        ),
        (
            &json!("Ana"),
            &json!("Diaz"),
            &json!("+15551234567"),
            &json!("77")
        )
    );
    let cleared = call(&crm, Method::PUT, path, Some(json!({"phone": ""}))).await;
    let contact: Value = cleared.json().await.expect("json");
    assert_eq!(contact["phone"], Value::Null);
    assert_eq!(contact["first_name"], json!("Ana"));
    let effects = crm.ledger().check().effects;
    let same = call(&crm, Method::PUT, path, Some(json!({"first_name": "Ana"}))).await;
    assert_eq!(same.status(), StatusCode::OK);
    assert_eq!(crm.ledger().check().effects, effects);
}

//! The Admin API as a reconciler uses it: auth, filters, cursor paging through `Link`, single
//! orders, counts and the call limit.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use serde_json::Value;

use super::tests::{Mode, receiver, traffic};
use super::*;
use crate::domain::shopify::parse_order;

/// A store with `n` orders of seed 21 in it, no call limit.
async fn store_with(n: usize) -> StoreHandle {
    let store = spawn_store(StoreSimConfig {
        call_limit: None,
        ..StoreSimConfig::default()
    })
    .await
    .unwrap();
    let (url, _rx) = receiver(Mode::Ok).await;
    traffic(&url, store.orders(), 21, Misbehaviour::none())
        .burst(n)
        .await
        .unwrap();
    store
}

async fn get(store: &StoreHandle, url: &str) -> reqwest::Response {
    reqwest::Client::new()
        .get(url)
        .header("X-Shopify-Access-Token", store.access_token())
        .send()
        .await
        .unwrap()
}

fn admin_url(store: &StoreHandle, rest: &str) -> String {
    format!("{}admin/api/2024-10/{rest}", store.base_url())
}

/// The `rel` link of a `Link` header.
fn link(response: &reqwest::Response, rel: &str) -> Option<String> {
    let header = response.headers().get("link")?.to_str().ok()?;
    header.split(", ").find_map(|part| {
        let (url, attrs) = part.split_once(">; ")?;
        (attrs == format!("rel=\"{rel}\"")).then(|| url.trim_start_matches('<').to_owned())
    })
}

/// Every page from `first`, following `rel="next"`: the ids of each page.
async fn all_pages(store: &StoreHandle, first: String) -> Vec<Vec<i64>> {
    let mut pages = Vec::new();
    let mut next = Some(first);
    while let Some(url) = next {
        let response = get(store, &url).await;
        assert_eq!(response.status(), StatusCode::OK, "{url}");
        next = link(&response, "next");
        let body: Value = response.json().await.unwrap();
        let ids = body["orders"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| {
                parse_order(&serde_json::to_vec(o).unwrap())
                    .unwrap()
                    .store_order_id
            })
            .collect();
        pages.push(ids);
    }
    pages
}

#[tokio::test]
async fn paging_returns_every_order_exactly_once_and_respects_updated_at_min() {
    let store = store_with(60).await;
    let truth = store.orders().versions();
    assert_eq!(truth.len(), 60);

    let pages = all_pages(&store, admin_url(&store, "orders.json?status=any&limit=7")).await;
    assert_eq!(pages.len(), 9);
    assert!(pages[..8].iter().all(|p| p.len() == 7));
    let ids: Vec<i64> = pages.concat();
    let unique: BTreeSet<i64> = ids.iter().copied().collect();
    assert_eq!(ids.len(), unique.len(), "an order came twice");
    assert_eq!(unique, truth.iter().map(|(id, _)| *id).collect());

    // updated_at_min is inclusive and holds on every page.
    let mut times: Vec<DateTime<Utc>> = truth.iter().map(|(_, at)| *at).collect();
    times.sort_unstable();
    let since = times[times.len() / 2];
    let url = admin_url(
        &store,
        &format!(
            "orders.json?status=any&limit=4&order=updated_at+asc&updated_at_min={}",
            urlencode(&since.to_rfc3339())
        ),
    );
    let got: BTreeSet<i64> = all_pages(&store, url).await.concat().into_iter().collect();
    let want: BTreeSet<i64> = truth
        .iter()
        .filter(|(_, at)| *at >= since)
        .map(|(id, _)| *id)
        .collect();
    assert_eq!(got, want);
    assert!(!want.is_empty() && want.len() < truth.len());
}

#[tokio::test]
async fn previous_links_lead_back_and_page_info_takes_only_limit_and_fields() {
    let store = store_with(12).await;
    let first = get(&store, &admin_url(&store, "orders.json?status=any&limit=5")).await;
    assert!(link(&first, "previous").is_none());
    let first_ids: Value = first.json().await.unwrap();
    let first = get(&store, &admin_url(&store, "orders.json?status=any&limit=5")).await;
    let second_url = link(&first, "next").unwrap();
    assert!(second_url.contains("page_info=") && second_url.contains("limit=5"));
    let second = get(&store, &second_url).await;
    let back = link(&second, "previous").unwrap();
    let again: Value = get(&store, &back).await.json().await.unwrap();
    assert_eq!(again, first_ids);

    let mixed = get(&store, &format!("{second_url}&status=any")).await;
    assert_eq!(mixed.status(), StatusCode::BAD_REQUEST);
    let body: Value = mixed.json().await.unwrap();
    assert!(body["errors"]["page_info"].is_array(), "{body}");
    let forged = get(&store, &admin_url(&store, "orders.json?page_info=nonsense")).await;
    assert_eq!(forged.status(), StatusCode::BAD_REQUEST);

    // fields survive paging.
    let slim = get(
        &store,
        &admin_url(
            &store,
            "orders.json?status=any&limit=5&fields=id,updated_at",
        ),
    )
    .await;
    let next = link(&slim, "next").unwrap();
    assert!(next.contains("fields=id%2Cupdated_at"), "{next}");
    let page: Value = get(&store, &next).await.json().await.unwrap();
    let keys: BTreeSet<&str> = page["orders"][0]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, BTreeSet::from(["id", "updated_at"]));
}

#[tokio::test]
async fn status_defaults_to_open_like_shopify() {
    let store = store_with(80).await;
    let cancelled: BTreeSet<i64> = store
        .orders()
        .versions()
        .iter()
        .filter(|(id, _)| store.orders().get(*id).unwrap()["cancelled_at"].is_string())
        .map(|(id, _)| *id)
        .collect();
    assert!(!cancelled.is_empty());
    let open: BTreeSet<i64> = all_pages(&store, admin_url(&store, "orders.json?limit=250"))
        .await
        .concat()
        .into_iter()
        .collect();
    assert!(open.is_disjoint(&cancelled));
    let only: BTreeSet<i64> = all_pages(&store, admin_url(&store, "orders.json?status=cancelled"))
        .await
        .concat()
        .into_iter()
        .collect();
    assert_eq!(only, cancelled);
    let count: Value = get(&store, &admin_url(&store, "orders/count.json?status=any"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(count["count"], 80);
}

#[tokio::test]
async fn one_order_by_id_is_its_latest_version() {
    let store = store_with(5).await;
    let (id, updated_at) = store.orders().versions()[2];
    let response = get(&store, &admin_url(&store, &format!("orders/{id}.json"))).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["x-shopify-api-version"], "2024-10");
    let order = parse_order(&response.bytes().await.unwrap()).unwrap();
    assert_eq!((order.store_order_id, order.updated_at), (id, updated_at));
    let missing = get(&store, &admin_url(&store, "orders/1.json")).await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    let bad = get(
        &store,
        &admin_url(&store, "orders.json?updated_at_min=yesterday"),
    )
    .await;
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn the_access_token_is_required() {
    let store = store_with(1).await;
    let client = reqwest::Client::new();
    let url = admin_url(&store, "orders.json?status=any");
    let none = client.get(&url).send().await.unwrap();
    assert_eq!(none.status(), StatusCode::UNAUTHORIZED);
    let wrong = client
        .get(&url)
        .header("X-Shopify-Access-Token", "shpat_wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let body: Value = wrong.json().await.unwrap();
    assert!(
        body["errors"]
            .as_str()
            .unwrap()
            .contains("Invalid API key or access token")
    );
}

#[tokio::test]
async fn the_call_limit_answers_429_with_retry_after() {
    let store = spawn_store(StoreSimConfig {
        call_limit: Some(CallLimit {
            bucket_size: 3,
            leak_per_second: 0.01,
        }),
        ..StoreSimConfig::default()
    })
    .await
    .unwrap();
    let url = admin_url(&store, "orders.json");
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let response = get(&store, &url).await;
        statuses.push(response.status());
        if response.status() == StatusCode::OK {
            assert!(
                response
                    .headers()
                    .contains_key("x-shopify-shop-api-call-limit")
            );
        } else {
            assert_eq!(response.headers()["retry-after"], "2.0");
        }
    }
    assert_eq!(
        statuses,
        [
            StatusCode::OK,
            StatusCode::OK,
            StatusCode::OK,
            StatusCode::TOO_MANY_REQUESTS
        ]
    );
}

fn urlencode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

//! The slice of Shopify's REST Admin API that reconciliation and backfill use:
//! `GET /admin/api/{version}/orders.json` (filters, cursor paging through the `Link` header),
//! `GET /admin/api/{version}/orders/count.json` and `GET /admin/api/{version}/orders/{id}.json`,
//! behind `X-Shopify-Access-Token` and Shopify's leaky-bucket call limit.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use axum::Router;
use axum::extract::{OriginalUri, Path, RawQuery, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value, json};
use subtle::ConstantTimeEq;

use super::book::OrderBook;
use super::paging::{self, Cursor, ListQuery};
use super::{API_VERSION, CallLimit};

/// What every Admin API handler shares.
#[derive(Debug)]
struct Admin {
    book: OrderBook,
    token: String,
    bucket: Option<Mutex<Bucket>>,
}

/// The Admin API router, auth and call limit applied.
pub(super) fn router(book: OrderBook, token: String, limit: Option<CallLimit>) -> Router {
    let admin = Arc::new(Admin {
        book,
        token,
        bucket: limit.map(|limit| {
            Mutex::new(Bucket {
                limit,
                level: 0.0,
                at: Instant::now(),
            })
        }),
    });
    Router::new()
        .route("/admin/api/{version}/orders.json", get(list_orders))
        .route("/admin/api/{version}/orders/{file}", get(one_order))
        .layer(middleware::from_fn_with_state(admin.clone(), guard))
        .with_state(admin)
        .fallback(|| async { errors(StatusCode::NOT_FOUND, json!("Not Found")) })
}

/// Shopify's error body: `{"errors": …}`.
fn errors(status: StatusCode, detail: Value) -> Response {
    (status, axum::Json(json!({ "errors": detail }))).into_response()
}

/// A 400 naming the parameter at fault.
fn bad_param(name: &str, message: impl Into<String>) -> Response {
    let mut detail = Map::new();
    detail.insert(name.to_owned(), json!([message.into()]));
    errors(StatusCode::BAD_REQUEST, Value::Object(detail))
}

/// Shopify's leaky bucket: each call adds one; the bucket drains at a steady rate; a call
/// that would overflow it is answered 429.
#[derive(Debug)]
struct Bucket {
    limit: CallLimit,
    level: f64,
    at: Instant,
}

impl Bucket {
    /// Takes a call; `Err` when the bucket is full.
    fn take(&mut self) -> Result<String, ()> {
        let now = Instant::now();
        let drained = now.duration_since(self.at).as_secs_f64() * self.limit.leak_per_second;
        self.level = (self.level - drained).max(0.0);
        self.at = now;
        let size = f64::from(self.limit.bucket_size.max(1));
        if self.level + 1.0 > size {
            return Err(());
        }
        self.level += 1.0;
        Ok(format!(
            "{}/{}",
            self.level.ceil(),
            self.limit.bucket_size.max(1)
        ))
    }
}

/// Access token, then call limit, as Shopify checks them; every answer carries
/// `X-Shopify-API-Version`.
async fn guard(State(admin): State<Arc<Admin>>, request: Request, next: Next) -> Response {
    let presented = request
        .headers()
        .get("x-shopify-access-token")
        .map(HeaderValue::as_bytes)
        .unwrap_or_default();
    let mut response = if !bool::from(presented.ct_eq(admin.token.as_bytes())) {
        errors(
            StatusCode::UNAUTHORIZED,
            json!("[API] Invalid API key or access token (unrecognized login or wrong password)"),
        )
    } else {
        let used = match &admin.bucket {
            Some(bucket) => bucket
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take()
                .map(Some),
            None => Ok(None),
        };
        match used {
            Err(()) => {
                let mut refused = errors(
                    StatusCode::TOO_MANY_REQUESTS,
                    json!(
                        "Exceeded 2 calls per second for api client. Reduce request rates to \
                         resume uninterrupted service."
                    ),
                );
                refused
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("2.0"));
                refused
            }
            Ok(used) => {
                let mut response = next.run(request).await;
                if let Some(value) = used.and_then(|u| HeaderValue::from_str(&u).ok()) {
                    response
                        .headers_mut()
                        .insert("x-shopify-shop-api-call-limit", value);
                }
                response
            }
        }
    };
    response.headers_mut().insert(
        "x-shopify-api-version",
        HeaderValue::from_static(API_VERSION),
    );
    response
}

/// `GET /admin/api/{version}/orders.json`.
async fn list_orders(
    State(admin): State<Arc<Admin>>,
    Path(_version): Path<String>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let params = pairs(raw.as_deref());
    let request = match paging::parse_list(&params) {
        Ok(request) => request,
        Err((name, message)) => return bad_param(name, message),
    };
    let page = paging::page(admin.book.snapshot(), &request);
    let orders: Vec<Value> = page
        .orders
        .iter()
        .map(|order| project(order, request.fields.as_deref()))
        .collect();
    let mut response = axum::Json(json!({ "orders": orders })).into_response();
    let links: Vec<String> = [(page.previous, "previous"), (page.next, "next")]
        .into_iter()
        .filter_map(|(cursor, rel)| {
            let url = link_url(&headers, uri.path(), &cursor?, &request)?;
            Some(format!("<{url}>; rel=\"{rel}\""))
        })
        .collect();
    if !links.is_empty()
        && let Ok(value) = HeaderValue::from_str(&links.join(", "))
    {
        response.headers_mut().insert(header::LINK, value);
    }
    response
}

/// `GET /admin/api/{version}/orders/{id}.json` and `…/orders/count.json`.
async fn one_order(
    State(admin): State<Arc<Admin>>,
    Path((_version, file)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> Response {
    let params = pairs(raw.as_deref());
    let Some(stem) = file.strip_suffix(".json") else {
        return errors(StatusCode::NOT_FOUND, json!("Not Found"));
    };
    if stem == "count" {
        return match paging::parse_filter(&params) {
            Ok(query) => {
                let count = paging::count(admin.book.snapshot(), &query);
                axum::Json(json!({ "count": count })).into_response()
            }
            Err((name, message)) => bad_param(name, message),
        };
    }
    let order = stem.parse::<i64>().ok().and_then(|id| admin.book.get(id));
    match order {
        Some(order) => {
            let fields = paging::fields_param(&params);
            axum::Json(json!({ "order": project(&order, fields.as_deref()) })).into_response()
        }
        None => errors(StatusCode::NOT_FOUND, json!("Not Found")),
    }
}

/// The query string as decoded pairs, in order.
fn pairs(raw: Option<&str>) -> Vec<(String, String)> {
    url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
        .into_owned()
        .collect()
}

/// Only the top-level `fields` asked for, or the whole order.
fn project(order: &Value, fields: Option<&[String]>) -> Value {
    match (fields, order.as_object()) {
        (Some(fields), Some(map)) => Value::Object(
            map.iter()
                .filter(|(key, _)| fields.iter().any(|f| f == *key))
                .map(|(key, value)| (key.clone(), value.clone()))
                .collect(),
        ),
        _ => order.clone(),
    }
}

/// The absolute URL of another page: only `limit`, `page_info` and `fields`, as Shopify
/// writes them.
fn link_url(
    headers: &HeaderMap,
    path: &str,
    cursor: &Cursor,
    request: &ListQuery,
) -> Option<String> {
    let host = headers.get(header::HOST)?.to_str().ok()?;
    let token = URL_SAFE_NO_PAD.encode(serde_json::to_vec(cursor).ok()?);
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    query.append_pair("limit", &request.limit.to_string());
    if let Some(fields) = &request.fields {
        query.append_pair("fields", &fields.join(","));
    }
    query.append_pair("page_info", &token);
    Some(format!("http://{host}{path}?{}", query.finish()))
}

/// Reads a `page_info` token back.
pub(super) fn decode_cursor(token: &str) -> Option<Cursor> {
    let bytes = URL_SAFE_NO_PAD.decode(token.trim()).ok()?;
    serde_json::from_slice(&bytes).ok()
}

//! The store's Admin API (Shopify REST), read-only: one order's current state, for "resync from
//! the store". Authenticated with `X-Shopify-Access-Token`; answers are classified like the
//! destinations' (transient, credentials rejected, or refused).

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::HeaderValue;
use url::Url;

use super::error::{DeliveryError, TransientKind};

/// The Admin API version SyncDesk reads (the webhooks' too).
pub const ADMIN_API_VERSION: &str = "2024-10";

/// A client for one shop's Admin API.
#[derive(Clone)]
pub struct ShopAdmin {
    client: reqwest::Client,
    base: Url,
    token: HeaderValue,
}

impl std::fmt::Debug for ShopAdmin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShopAdmin")
            .field("base", &self.base.as_str())
            .finish_non_exhaustive()
    }
}

impl ShopAdmin {
    /// A client for the shop at `base` (e.g. `https://example.myshopify.com/`) with an Admin API
    /// access token.
    pub fn new(
        base: Url,
        access_token: &str,
        timeout: Duration,
    ) -> Result<ShopAdmin, reqwest::Error> {
        let client = reqwest::Client::builder()
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .timeout(timeout)
            .user_agent(concat!("SyncDesk/", env!("CARGO_PKG_VERSION")))
            // A redirect would carry the access token (a header of Shopify's own, which reqwest
            // does not know to drop) wherever it points; the Admin API does not redirect.
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        let mut token =
            HeaderValue::from_str(access_token).unwrap_or_else(|_| HeaderValue::from_static(""));
        token.set_sensitive(true);
        Ok(ShopAdmin {
            client,
            base,
            token,
        })
    }

    /// The order's current JSON as the store has it (the object inside `{"order": …}`), or
    /// `None` when the store has no such order.
    pub async fn order(&self, store_order_id: i64) -> Result<Option<Vec<u8>>, DeliveryError> {
        let url = self.admin_url(&format!("orders/{store_order_id}.json"));
        let Some((body, _)) = self.get(url).await? else {
            return Ok(None);
        };
        let order = body
            .get("order")
            .ok_or_else(|| unreadable("The store's answer has no order in it."))?;
        Ok(Some(serde_json::to_vec(order).unwrap_or_default()))
    }

    /// One page of the orders changed since `page`'s instant, oldest change first (Shopify's
    /// `orders.json` with `status=any`, paged by the `Link` header's cursor).
    pub async fn orders_page(&self, page: &OrdersPageRef) -> Result<OrdersPage, DeliveryError> {
        let url = match page {
            OrdersPageRef::Since(since) => {
                let mut url = self.admin_url("orders.json");
                url.query_pairs_mut()
                    .append_pair("status", "any")
                    .append_pair("limit", &PAGE_SIZE.to_string())
                    .append_pair("order", "updated_at asc")
                    .append_pair(
                        "updated_at_min",
                        &since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    );
                url
            }
            OrdersPageRef::Next(url) => url.clone(),
        };
        let (body, headers) = self
            .get(url)
            .await?
            .ok_or_else(|| unreadable("The store has no orders list at this address."))?;
        let listed = body
            .get("orders")
            .and_then(serde_json::Value::as_array)
            .ok_or_else(|| unreadable("The store's answer has no orders list in it."))?;
        let mut orders = Vec::with_capacity(listed.len());
        for order in listed {
            let id = order.get("id").and_then(serde_json::Value::as_i64);
            let updated_at = order
                .get("updated_at")
                .and_then(serde_json::Value::as_str)
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.with_timezone(&chrono::Utc));
            let (Some(id), Some(updated_at)) = (id, updated_at) else {
                return Err(unreadable(
                    "The store listed an order without an id or updated_at.",
                ));
            };
            orders.push(ListedOrder {
                id,
                updated_at,
                body: serde_json::to_vec(order).unwrap_or_default(),
            });
        }
        let next = headers
            .get(reqwest::header::LINK)
            .and_then(|v| v.to_str().ok())
            .and_then(next_link);
        // The next page is asked for with the access token: only at the shop's own address.
        if let Some(OrdersPageRef::Next(url)) = &next
            && url.origin() != self.base.origin()
        {
            return Err(DeliveryError::Rejected {
                status: 200,
                code: "store_link_elsewhere".into(),
                field: None,
                message: format!(
                    "The store named its next page at another address ({}), where SyncDesk does not \
                     send its access token; the pass stopped.",
                    url.origin().ascii_serialization()
                ),
                max: None,
                request_id: None,
            });
        }
        Ok(OrdersPage { orders, next })
    }

    /// `admin/api/{version}/{path}` under the shop's address.
    fn admin_url(&self, path: &str) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut segments) = url.path_segments_mut() {
            segments
                .pop_if_empty()
                .extend(["admin", "api", ADMIN_API_VERSION])
                .extend(path.split('/'));
        }
        url
    }

    /// No answer at all, said plainly. (reqwest's own text names the URL and hides the cause:
    /// "error sending request for url (…)".)
    fn transport_error(&self, e: &reqwest::Error) -> DeliveryError {
        // Named without any user or password the address may carry.
        let mut base = self.base.clone();
        let _ = base.set_username("");
        let _ = base.set_password(None);
        let (kind, message) = if e.is_timeout() {
            (
                TransientKind::Timeout,
                format!("The store's Admin API at {base} did not answer in time."),
            )
        } else if e.is_connect() {
            (
                TransientKind::Connect,
                format!(
                    "Could not connect to the store's Admin API at {base} ({}).",
                    root_cause(e)
                ),
            )
        } else {
            (
                TransientKind::Connect,
                format!("The connection to the store's Admin API at {base} failed."),
            )
        };
        tracing::debug!(error = %super::http::DisplayWithoutUrl(e), "store request failed");
        DeliveryError::Transient {
            kind,
            message,
            request_id: None,
        }
    }

    /// A GET with the access token: the JSON body and headers, `None` on 404, the status
    /// classified like a destination's otherwise.
    async fn get(
        &self,
        url: Url,
    ) -> Result<Option<(serde_json::Value, reqwest::header::HeaderMap)>, DeliveryError> {
        let answer = self
            .client
            .get(url)
            .header("X-Shopify-Access-Token", self.token.clone())
            .send()
            .await
            .map_err(|e| self.transport_error(&e))?;
        let status = answer.status();
        let request_id = answer
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        match status {
            StatusCode::OK => {
                let headers = answer.headers().clone();
                let body: serde_json::Value =
                    answer.json().await.map_err(|e| DeliveryError::Transient {
                        kind: TransientKind::Server { status: 200 },
                        message: format!(
                            "The store's answer could not be read ({}).",
                            root_cause(&e)
                        ),
                        request_id: request_id.clone(),
                    })?;
                Ok(Some((body, headers)))
            }
            StatusCode::NOT_FOUND => Ok(None),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Err(DeliveryError::Auth {
                status: status.as_u16(),
                message: "The store rejected SyncDesk's Admin API access token; renew it (SYNCDESK_STORE_TOKEN).".into(),
                request_id,
            }),
            s if s == StatusCode::TOO_MANY_REQUESTS || s.is_server_error() => {
                Err(DeliveryError::Transient {
                    kind: if s == StatusCode::TOO_MANY_REQUESTS {
                        TransientKind::RateLimited {
                            retry_after: answer
                                .headers()
                                .get(reqwest::header::RETRY_AFTER)
                                .and_then(super::http::parse_retry_after),
                            by_destination: true,
                        }
                    } else {
                        TransientKind::Server { status: s.as_u16() }
                    },
                    message: format!("The store's Admin API answered {s}; try again in a moment."),
                    request_id,
                })
            }
            s => Err(DeliveryError::Rejected {
                status: s.as_u16(),
                code: "store_refused".into(),
                field: None,
                message: format!("The store's Admin API answered {s}."),
                max: None,
                request_id,
            }),
        }
    }
}

/// Orders per page of `orders.json` (Shopify's maximum).
pub const PAGE_SIZE: usize = 250;

/// Which page of changed orders to read.
#[derive(Clone, Debug)]
pub enum OrdersPageRef {
    /// The first page: orders changed at or after this instant.
    Since(chrono::DateTime<chrono::Utc>),
    /// A later page, as the previous one's `Link` header named it.
    Next(Url),
}

/// One page of changed orders.
#[derive(Clone, Debug)]
pub struct OrdersPage {
    /// The orders, oldest change first.
    pub orders: Vec<ListedOrder>,
    /// The next page, if there is one.
    pub next: Option<OrdersPageRef>,
}

/// An order as the store listed it.
#[derive(Clone, Debug)]
pub struct ListedOrder {
    /// Store order id.
    pub id: i64,
    /// The store's `updated_at`: the version it is at.
    pub updated_at: chrono::DateTime<chrono::Utc>,
    /// The order object, as a webhook would carry it.
    pub body: Vec<u8>,
}

/// The `rel="next"` URL of a `Link` header.
fn next_link(link: &str) -> Option<OrdersPageRef> {
    link.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        let is_next = params
            .split(';')
            .any(|p| p.trim().replace(' ', "") == "rel=\"next\"");
        let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
        is_next
            .then(|| Url::parse(target).ok())
            .flatten()
            .map(OrdersPageRef::Next)
    })
}

/// An answer that is not what the Admin API promises (treated as transient: a proxy's page, a
/// half-written body).
fn unreadable(message: &str) -> DeliveryError {
    DeliveryError::Transient {
        kind: TransientKind::Server { status: 200 },
        message: message.to_string(),
        request_id: None,
    }
}

/// The innermost cause of `e`, as a clause ("connection refused", "failed to lookup address
/// information: …"): reqwest's own text names only the request.
fn root_cause(e: &reqwest::Error) -> String {
    let mut cause: &dyn std::error::Error = e;
    while let Some(inner) = cause.source() {
        cause = inner;
    }
    let text = cause.to_string();
    // "Connection refused (os error 111)": the number says nothing more.
    let text = match text.rfind(" (os error ") {
        Some(at) if text.ends_with(')') => &text[..at],
        _ => &text,
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => "no reason given".into(),
    }
}

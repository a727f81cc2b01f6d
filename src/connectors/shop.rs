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
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend([
                "admin",
                "api",
                ADMIN_API_VERSION,
                "orders",
                &format!("{store_order_id}.json"),
            ]);
        }
        let answer = self
            .client
            .get(url)
            .header("X-Shopify-Access-Token", self.token.clone())
            .send()
            .await
            .map_err(|e| DeliveryError::Transient {
                kind: if e.is_timeout() {
                    TransientKind::Timeout
                } else {
                    TransientKind::Connect
                },
                message: format!("The store's Admin API could not be reached: {e}"),
                request_id: None,
            })?;
        let status = answer.status();
        let request_id = answer
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        match status {
            StatusCode::OK => {
                let body: serde_json::Value =
                    answer.json().await.map_err(|e| DeliveryError::Transient {
                        kind: TransientKind::Server { status: 200 },
                        message: format!("The store's answer could not be read: {e}"),
                        request_id: request_id.clone(),
                    })?;
                let order = body.get("order").cloned().ok_or_else(|| DeliveryError::Transient {
                    kind: TransientKind::Server { status: 200 },
                    message: "The store's answer has no order in it.".into(),
                    request_id: request_id.clone(),
                })?;
                Ok(Some(serde_json::to_vec(&order).unwrap_or_default()))
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
                        TransientKind::RateLimited { retry_after: None }
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

//! The HTTP plumbing both connectors share: bearer auth, a per-request timeout, pooled
//! connections, the rate limiter, idempotency keys, and turning every answer into an [`Ack`]
//! or a classified [`DeliveryError`].
//!
//! [`Ack`]: super::Ack

use std::fmt;
use std::time::{Duration, Instant};

use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};
use tracing::Instrument;
use url::Url;

use super::error::{DeliveryError, TransientKind};
use super::ratelimit::{RateLimit, TokenBucket};
use super::wire::{ApiErrorBody, ErrorEnvelope};

tokio::task_local! {
    /// Requests sent by the delivery running on this task (see [`counting_requests`]).
    static SENT: std::cell::Cell<u32>;
}

/// The `Idempotency-Key` a write is sent with: the engine's key for the write (order, version,
/// destination, what the write is) bound to the body by the first 16 hex digits of its SHA-256.
///
/// A retry of the same write sends the same body, so the same key, and a destination that
/// committed it before the answer was lost replays its answer. A write whose body changed since
/// (a SKU mapped to another item code, a change to a shipment) is a different request: under
/// the old key a destination would refuse it as "key reused with a different body", or replay
/// a refusal the fix was meant to cure, and the order would stay stuck. Creating twice is
/// still ruled out by the connector finding the document before it creates it again.
pub(crate) fn bound_key(key: &str, body: Option<&[u8]>) -> String {
    match body {
        Some(body) => {
            let digest = Sha256::digest(body);
            format!("{key}.{}", hex::encode(&digest[..8]))
        }
        None => key.to_owned(),
    }
}

/// Runs `delivery`, counting the requests the HTTP connectors send while it runs on this task,
/// so the worker can tell a delivery SyncDesk's own rate limit stopped before anything went out
/// from one it stopped part-way (which has sent something, and spends its attempt).
pub async fn counting_requests<F: std::future::Future>(delivery: F) -> (F::Output, u32) {
    SENT.scope(std::cell::Cell::new(0), async move {
        let output = delivery.await;
        (output, SENT.with(std::cell::Cell::get))
    })
    .await
}

/// A destination's API token. Its `Debug` never shows it, and it is never logged.
#[derive(Clone)]
pub struct ApiToken(String);

impl ApiToken {
    /// Wraps a token read from the environment or the database.
    pub fn new(token: impl Into<String>) -> Self {
        ApiToken(token.into())
    }
}

impl fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiToken(redacted)")
    }
}

/// How to reach one destination.
#[derive(Debug, Clone)]
pub struct ConnectorConfig {
    /// Base URL of the API, e.g. `https://crm.example.com` (paths start with `/v1/...`).
    pub base_url: Url,
    /// Bearer token.
    pub token: ApiToken,
    /// Per-request timeout, connection included.
    pub timeout: Duration,
    /// Client-side rate limit; `None` for none (the destination's 429s are still honoured).
    pub rate_limit: Option<RateLimit>,
    /// The longest a request waits for the rate limiter before giving up with `RateLimited`.
    pub max_local_wait: Duration,
}

impl ConnectorConfig {
    /// Defaults: 10 s timeout, 50 requests/s with a burst of 100, at most 2 s of local waiting.
    pub fn new(base_url: Url, token: ApiToken) -> Self {
        ConnectorConfig {
            base_url,
            token,
            timeout: Duration::from_secs(10),
            rate_limit: Some(RateLimit::default()),
            max_local_wait: Duration::from_secs(2),
        }
    }
}

/// What came back from one request.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) request_id: Option<String>,
    pub(crate) body: Vec<u8>,
    retry_after: Option<Duration>,
}

impl Reply {
    /// True for 2xx.
    pub(crate) fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The error envelope, when the body is one.
    pub(crate) fn api_error(&self) -> Option<ApiErrorBody> {
        serde_json::from_slice::<ErrorEnvelope>(&self.body)
            .ok()
            .map(|e| e.error)
    }
}

/// One destination's client. Cheap to share: the pool and the bucket live inside.
#[derive(Debug)]
pub(crate) struct HttpClient {
    client: reqwest::Client,
    base: Url,
    auth: HeaderValue,
    timeout: Duration,
    limiter: TokenBucket,
    /// "CRM" or "ERP", for sentences people read.
    destination: &'static str,
    /// Tells this token from another without keeping it (see [`credentials_fingerprint`]).
    credentials: String,
}

/// The first 16 hex digits of the token's SHA-256: enough to tell a renewed token from the one
/// a destination rejected, and nothing that could be sent in its place.
pub fn credentials_fingerprint(token: &ApiToken) -> String {
    use sha2::Digest;
    hex::encode(&sha2::Sha256::digest(token.0.as_bytes())[..8])
}

impl HttpClient {
    /// Builds the pooled client for `destination` ("CRM", "ERP").
    pub(crate) fn new(
        config: &ConnectorConfig,
        destination: &'static str,
    ) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .connect_timeout(config.timeout.min(Duration::from_secs(5)))
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(64)
            .tcp_nodelay(true)
            .user_agent(concat!("SyncDesk/", env!("CARGO_PKG_VERSION")))
            .build()?;
        // A token with bytes a header cannot carry would be refused by the destination anyway;
        // an empty value gets the 401 that tells an admin to renew it.
        let mut auth = HeaderValue::from_str(&format!("Bearer {}", config.token.0))
            .unwrap_or_else(|_| HeaderValue::from_static(""));
        auth.set_sensitive(true);
        Ok(HttpClient {
            client,
            base: config.base_url.clone(),
            auth,
            timeout: config.timeout,
            limiter: TokenBucket::new(config.rate_limit, config.max_local_wait),
            destination,
            credentials: credentials_fingerprint(&config.token),
        })
    }

    /// The fingerprint of the token this client sends.
    pub(crate) fn credentials(&self) -> &str {
        &self.credentials
    }

    /// The URL for `segments` under the base URL, each segment percent-encoded (emails,
    /// order ids with slashes).
    fn url(&self, segments: &[&str], query: &[(&str, String)]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        if !query.is_empty() {
            url.query_pairs_mut()
                .extend_pairs(query.iter().map(|(k, v)| (*k, v.as_str())));
        }
        url
    }

    /// Sends one request after the rate limiter lets it go. Transport failures and local rate
    /// limiting come back as `Err`; every HTTP answer, whatever its status, as `Ok`.
    pub(crate) async fn send<B: Serialize + ?Sized>(
        &self,
        op: &'static str,
        method: Method,
        segments: &[&str],
        query: &[(&str, String)],
        body: Option<&B>,
        idempotency_key: Option<&str>,
    ) -> Result<Reply, DeliveryError> {
        if let Err(wait) = self.limiter.acquire().await {
            return Err(DeliveryError::Transient {
                kind: TransientKind::RateLimited {
                    retry_after: Some(wait),
                    by_destination: false,
                },
                message: format!(
                    "Holding back requests to the {}; next slot in {} s.",
                    self.destination,
                    wait.as_secs_f64().ceil()
                ),
                request_id: None,
            });
        }
        // Outside `counting_requests` (a connector test, the server's item lookups) there is
        // nothing to count.
        let _ = SENT.try_with(|sent| sent.set(sent.get() + 1));
        let mut request = self
            .client
            .request(method, self.url(segments, query))
            .timeout(self.timeout)
            .header(AUTHORIZATION, self.auth.clone());
        let body = match body.map(serde_json::to_vec).transpose() {
            Ok(body) => body,
            Err(err) => {
                return Err(DeliveryError::Transient {
                    kind: TransientKind::Server { status: 0 },
                    message: format!(
                        "SyncDesk could not write the request to the {} as JSON ({err}).",
                        self.destination
                    ),
                    request_id: None,
                });
            }
        };
        if let Some(key) = idempotency_key {
            request = request.header("Idempotency-Key", bound_key(key, body.as_deref()));
        }
        if let Some(body) = body {
            request = request
                .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
                .body(body);
        }
        let started = Instant::now();
        let outcome = async {
            let response = request.send().await?;
            let status = response.status();
            let headers = response.headers().clone();
            let body = response.bytes().await?;
            Ok::<_, reqwest::Error>((status, headers, body.to_vec()))
        }
        .instrument(tracing::debug_span!(
            "destination_request",
            destination = self.destination,
            op
        ))
        .await;
        let (status, headers, body) = outcome.map_err(|e| self.transport_error(&e))?;
        let request_id = headers
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let retry_after = headers.get(RETRY_AFTER).and_then(parse_retry_after);
        tracing::debug!(
            destination = self.destination,
            op,
            status = status.as_u16(),
            request_id = request_id.as_deref().unwrap_or(""),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "destination answered"
        );
        if status == StatusCode::TOO_MANY_REQUESTS {
            self.limiter
                .pause_for(retry_after.unwrap_or(Duration::from_secs(1)));
        }
        Ok(Reply {
            status: status.as_u16(),
            request_id,
            body,
            retry_after,
        })
    }

    /// Decodes a 2xx body; an unreadable one is the destination's fault, so transient.
    pub(crate) fn decode<T: DeserializeOwned>(&self, reply: &Reply) -> Result<T, DeliveryError> {
        serde_json::from_slice(&reply.body).map_err(|e| DeliveryError::Transient {
            kind: TransientKind::Server {
                status: reply.status,
            },
            message: format!(
                "The {} sent an answer we could not read: {e}",
                self.destination
            ),
            request_id: reply.request_id.clone(),
        })
    }

    /// Classifies an answer that is not the one the caller wanted.
    pub(crate) fn error(&self, reply: Reply) -> DeliveryError {
        let api = reply.api_error();
        let theirs = api.as_ref().map(|e| e.message.clone());
        let dest = self.destination;
        let status = reply.status;
        let request_id = reply.request_id;
        match status {
            401 | 403 => DeliveryError::Auth {
                status,
                message: format!("The {dest} rejected our credentials ({status})."),
                request_id,
            },
            429 => DeliveryError::Transient {
                kind: TransientKind::RateLimited {
                    retry_after: reply.retry_after,
                    by_destination: true,
                },
                message: match reply.retry_after {
                    Some(wait) => format!(
                        "The {dest} asked us to slow down; retrying in {} s.",
                        wait.as_secs()
                    ),
                    None => format!("The {dest} asked us to slow down."),
                },
                request_id,
            },
            400..=499 if status != 408 => {
                let api = api.unwrap_or_else(|| {
                    ApiErrorBody::new(
                        format!("http_{status}"),
                        format!("The {dest} refused the request ({status})."),
                    )
                });
                DeliveryError::Rejected {
                    status,
                    code: api.code,
                    field: api.field,
                    message: api.message,
                    max: api.max,
                    request_id,
                }
            }
            _ => DeliveryError::Transient {
                kind: TransientKind::Server { status },
                message: match theirs {
                    Some(m) => format!("The {dest} answered {status}: {m}"),
                    None => format!("The {dest} answered {status}."),
                },
                request_id,
            },
        }
    }

    /// Classifies a failure to get any answer. The URL is left out: it can carry an email.
    fn transport_error(&self, e: &reqwest::Error) -> DeliveryError {
        let dest = self.destination;
        let (kind, message) = if e.is_timeout() {
            let secs = self.timeout.as_secs_f64();
            (
                TransientKind::Timeout,
                format!("The {dest} did not answer within {secs} s."),
            )
        } else if e.is_connect() {
            (
                TransientKind::Connect,
                format!("Could not connect to the {dest}."),
            )
        } else {
            (
                TransientKind::Server { status: 0 },
                format!("The connection to the {dest} failed while talking to it."),
            )
        };
        tracing::debug!(destination = dest, error = %DisplayWithoutUrl(e), "request failed");
        DeliveryError::Transient {
            kind,
            message,
            request_id: None,
        }
    }
}

/// Shows a reqwest error without its URL (which may hold an email address).
pub(crate) struct DisplayWithoutUrl<'a>(pub(crate) &'a reqwest::Error);

impl fmt::Display for DisplayWithoutUrl<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut source: Option<&dyn std::error::Error> = std::error::Error::source(self.0);
        write!(
            f,
            "{}",
            if self.0.is_timeout() {
                "timeout"
            } else {
                "transport error"
            }
        )?;
        while let Some(s) = source {
            write!(f, ": {s}")?;
            source = s.source();
        }
        Ok(())
    }
}

/// The longest `Retry-After` honoured: a day. A destination asking for longer (or for a time
/// that does not fit a date at all) is asked again after a day, instead of parking its deliveries
/// for a span no one would choose — or overflowing the time they are due at.
pub(crate) const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

/// `Retry-After` as seconds or an HTTP date, at most [`MAX_RETRY_AFTER`].
pub(crate) fn parse_retry_after(value: &HeaderValue) -> Option<Duration> {
    let text = value.to_str().ok()?.trim();
    // Whole seconds, as RFC 9110 has it, or seconds with a fraction, as Shopify sends them
    // (`2.0`).
    let seconds = text.parse::<f64>().ok().filter(|s| {
        s.is_finite() && *s >= 0.0 && text.bytes().all(|b| b.is_ascii_digit() || b == b'.')
    });
    let wait = match seconds {
        Some(secs) => Duration::try_from_secs_f64(secs).unwrap_or(MAX_RETRY_AFTER),
        None => {
            let at = chrono::DateTime::parse_from_rfc2822(text).ok()?;
            let wait = at.with_timezone(&chrono::Utc) - chrono::Utc::now();
            wait.to_std().unwrap_or(Duration::ZERO)
        }
    };
    Some(wait.min(MAX_RETRY_AFTER))
}

#[cfg(test)]
mod tests {
    use super::bound_key;

    /// The same write sends the same key (a destination replays what it committed); a changed
    /// body, under the same name, sends another (it is a request of its own).
    #[test]
    fn a_key_is_the_write_s_name_bound_to_its_body() {
        let first = bound_key("1042-v1-erp", Some(br#"{"lines":[{"item_code":"ERP-1"}]}"#));
        let again = bound_key("1042-v1-erp", Some(br#"{"lines":[{"item_code":"ERP-1"}]}"#));
        let corrected = bound_key("1042-v1-erp", Some(br#"{"lines":[{"item_code":"ERP-2"}]}"#));
        assert_eq!(first, again);
        assert_ne!(first, corrected);
        assert!(first.starts_with("1042-v1-erp.") && first.len() == "1042-v1-erp.".len() + 16);
        assert_eq!(bound_key("1042-v1-erp", None), "1042-v1-erp");
    }
}

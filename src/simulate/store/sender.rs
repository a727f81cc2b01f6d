//! Webhook delivery exactly as Shopify does it: the raw JSON body signed with base64
//! HMAC-SHA256 under the shared secret, Shopify's headers, and at-least-once delivery (an
//! answer that is not 2xx, or none within the timeout, means the same webhook again).

use std::fmt;
use std::time::Duration;

use axum::body::Bytes;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, SecondsFormat, Utc};
use hmac::{Hmac, Mac};
use rand::Rng;
use serde_json::Value;
use sha2::Sha256;
use url::Url;
use uuid::Uuid;

use super::API_VERSION;
use crate::secret::Secret;

/// A webhook topic the simulated store sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Topic {
    /// `orders/create`
    OrdersCreate,
    /// `orders/updated`
    OrdersUpdated,
    /// `orders/paid`
    OrdersPaid,
    /// `orders/fulfilled`
    OrdersFulfilled,
    /// `orders/partially_fulfilled`
    OrdersPartiallyFulfilled,
    /// `orders/cancelled`
    OrdersCancelled,
    /// `refunds/create`
    RefundsCreate,
    /// `customers/create`
    CustomersCreate,
    /// `customers/update`
    CustomersUpdate,
}

impl Topic {
    /// Every topic, in a stable order.
    pub const ALL: [Topic; 9] = [
        Topic::OrdersCreate,
        Topic::OrdersUpdated,
        Topic::OrdersPaid,
        Topic::OrdersFulfilled,
        Topic::OrdersPartiallyFulfilled,
        Topic::OrdersCancelled,
        Topic::RefundsCreate,
        Topic::CustomersCreate,
        Topic::CustomersUpdate,
    ];

    /// The topic as `X-Shopify-Topic` writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Topic::OrdersCreate => "orders/create",
            Topic::OrdersUpdated => "orders/updated",
            Topic::OrdersPaid => "orders/paid",
            Topic::OrdersFulfilled => "orders/fulfilled",
            Topic::OrdersPartiallyFulfilled => "orders/partially_fulfilled",
            Topic::OrdersCancelled => "orders/cancelled",
            Topic::RefundsCreate => "refunds/create",
            Topic::CustomersCreate => "customers/create",
            Topic::CustomersUpdate => "customers/update",
        }
    }
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One webhook. Every attempt and every redelivery sends exactly this: the same ids, the same
/// trigger time, the same bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct Webhook {
    /// What happened.
    pub topic: Topic,
    /// The raw JSON body, exactly as signed.
    pub body: Bytes,
    /// `X-Shopify-Webhook-Id`: one delivery and its retries.
    pub webhook_id: Uuid,
    /// `X-Shopify-Event-Id`: the event behind it.
    pub event_id: Uuid,
    /// `X-Shopify-Triggered-At`: when the event happened.
    pub triggered_at: DateTime<Utc>,
}

impl Webhook {
    /// A webhook for `payload` with fresh random ids, triggered now.
    pub fn new(topic: Topic, payload: &Value) -> Webhook {
        Webhook::with_ids(topic, payload, Uuid::new_v4(), Uuid::new_v4(), Utc::now())
    }

    /// A webhook with the ids and trigger time given (seeded traffic uses seeded ids).
    pub fn with_ids(
        topic: Topic,
        payload: &Value,
        webhook_id: Uuid,
        event_id: Uuid,
        triggered_at: DateTime<Utc>,
    ) -> Webhook {
        Webhook {
            topic,
            body: Bytes::from(payload.to_string()),
            webhook_id,
            event_id,
            triggered_at,
        }
    }
}

/// How hard a delivery is tried: Shopify retries for hours; the simulator keeps it short.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (at least 1).
    pub max_attempts: u32,
    /// How long one attempt waits for an answer (Shopify waits 5 s).
    pub timeout: Duration,
    /// The wait after the first failed attempt; it doubles after each further one.
    pub first_backoff: Duration,
    /// The longest wait between attempts.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    /// 6 attempts, 5 s each, waits of 100 ms doubling up to 2 s.
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 6,
            timeout: Duration::from_secs(5),
            first_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(2),
        }
    }
}

impl RetryPolicy {
    /// The wait after failed attempt `attempt` (1-based), with up to 25% jitter.
    fn backoff(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(1).min(16);
        let base = self
            .first_backoff
            .saturating_mul(1_u32 << doublings)
            .min(self.max_backoff);
        let jitter = rand::thread_rng().gen_range(0.0..=0.25);
        base.mul_f64(1.0 + jitter).min(self.max_backoff)
    }
}

/// The receiver's acknowledgement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    /// The 2xx status.
    pub status: u16,
    /// The `outcome` field of a JSON answer (SyncDesk answers `applied`, `duplicate`,
    /// `superseded` or `recorded`), if there was one.
    pub outcome: Option<String>,
    /// Attempts it took.
    pub attempts: u32,
}

/// A delivery that did not happen.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The HTTP client could not be built.
    #[error("cannot build the webhook HTTP client: {0}")]
    Client(#[source] reqwest::Error),
    /// Every attempt failed.
    #[error("{topic} webhook {webhook_id} was not acknowledged after {attempts} attempts: {last}")]
    GaveUp {
        /// The webhook's topic.
        topic: Topic,
        /// The webhook's id.
        webhook_id: Uuid,
        /// Attempts made.
        attempts: u32,
        /// What the last attempt got.
        last: String,
    },
}

/// Sends signed webhooks to one endpoint. Cheap to clone (the connection pool is shared).
#[derive(Debug, Clone)]
pub struct WebhookSender {
    client: reqwest::Client,
    target: Url,
    secret: Secret,
    shop_domain: String,
    retry: RetryPolicy,
}

impl WebhookSender {
    /// A sender to `target` (e.g. `http://127.0.0.1:3000/webhooks/shopify`) signing with
    /// `secret`, as shop `syncdesk-demo.myshopify.com`, with the default retry policy.
    pub fn new(target: Url, secret: Secret) -> Result<WebhookSender, SendError> {
        let client = reqwest::Client::builder()
            .user_agent("Shopify-Captain-Hook")
            .pool_max_idle_per_host(32)
            .build()
            .map_err(SendError::Client)?;
        Ok(WebhookSender {
            client,
            target,
            secret,
            shop_domain: super::DEFAULT_SHOP_DOMAIN.to_owned(),
            retry: RetryPolicy::default(),
        })
    }

    /// The same sender, speaking for shop `domain` (`X-Shopify-Shop-Domain`).
    pub fn with_shop_domain(mut self, domain: impl Into<String>) -> WebhookSender {
        self.shop_domain = domain.into();
        self
    }

    /// The same sender, retrying by `retry`.
    pub fn with_retry(mut self, retry: RetryPolicy) -> WebhookSender {
        self.retry = retry;
        self
    }

    /// Where it delivers.
    pub fn target(&self) -> &Url {
        &self.target
    }

    /// `X-Shopify-Hmac-Sha256` for `body`: base64 of HMAC-SHA256 under the secret.
    pub fn sign(&self, body: &[u8]) -> String {
        sign(self.secret.expose().as_bytes(), body)
    }

    /// Delivers `webhook` until it is acknowledged with a 2xx, or the attempts run out.
    pub async fn deliver(&self, webhook: &Webhook) -> Result<Delivered, SendError> {
        let attempts = self.retry.max_attempts.max(1);
        let mut last = String::new();
        for attempt in 1..=attempts {
            match self.attempt(webhook).await {
                Ok((status, outcome)) => {
                    return Ok(Delivered {
                        status,
                        outcome,
                        attempts: attempt,
                    });
                }
                Err(problem) => last = problem,
            }
            if attempt < attempts {
                tracing::debug!(
                    topic = %webhook.topic, webhook_id = %webhook.webhook_id, attempt,
                    problem = %last, "webhook not acknowledged; retrying"
                );
                tokio::time::sleep(self.retry.backoff(attempt)).await;
            }
        }
        Err(SendError::GaveUp {
            topic: webhook.topic,
            webhook_id: webhook.webhook_id,
            attempts,
            last,
        })
    }

    /// One POST; the status and outcome of a 2xx, or what went wrong.
    async fn attempt(&self, webhook: &Webhook) -> Result<(u16, Option<String>), String> {
        let triggered = webhook
            .triggered_at
            .to_rfc3339_opts(SecondsFormat::Millis, true);
        let response = self
            .client
            .post(self.target.clone())
            .timeout(self.retry.timeout)
            .header("content-type", "application/json")
            .header("x-shopify-topic", webhook.topic.as_str())
            .header("x-shopify-hmac-sha256", self.sign(&webhook.body))
            .header("x-shopify-shop-domain", &self.shop_domain)
            .header("x-shopify-api-version", API_VERSION)
            .header("x-shopify-webhook-id", webhook.webhook_id.to_string())
            .header("x-shopify-event-id", webhook.event_id.to_string())
            .header("x-shopify-triggered-at", triggered)
            .body(webhook.body.clone())
            .send()
            .await
            .map_err(|err| describe(&err))?;
        let status = response.status();
        // The answer's body counts towards the timeout too, as it does for Shopify.
        let body = response.bytes().await.map_err(|err| describe(&err))?;
        if !status.is_success() {
            return Err(format!("answered {status}"));
        }
        let outcome = serde_json::from_slice::<Value>(&body)
            .ok()
            .and_then(|v| v.get("outcome")?.as_str().map(str::to_owned));
        Ok((status.as_u16(), outcome))
    }
}

/// Base64 of HMAC-SHA256 of `body` under `secret`.
pub(super) fn sign(secret: &[u8], body: &[u8]) -> String {
    // HMAC takes a key of any length, so this cannot fail.
    match Hmac::<Sha256>::new_from_slice(secret) {
        Ok(mut mac) => {
            mac.update(body);
            STANDARD.encode(mac.finalize().into_bytes())
        }
        Err(_) => String::new(),
    }
}

fn describe(err: &reqwest::Error) -> String {
    if err.is_timeout() {
        "no answer within the timeout".to_owned()
    } else if err.is_connect() {
        "could not connect".to_owned()
    } else {
        err.to_string()
    }
}

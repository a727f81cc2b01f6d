//! `POST /webhooks/shopify`: Shopify's webhook delivery, exactly as documented. The signature is
//! checked in constant time over the raw body before anything is parsed or stored.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::Sha256;

use super::AppState;
use crate::engine::ingest;
use crate::store::{Delivery, IngestOutcome};

/// The largest body accepted (Shopify's order payloads are well below this).
pub const MAX_BODY_BYTES: usize = 2 * 1024 * 1024;

/// Webhooks refused before anything was stored, by reason, counted by this process (they leave
/// no row to count in the database).
#[derive(Debug, Default)]
pub struct Refusals {
    /// Missing or wrong signature (401).
    pub signature: std::sync::atomic::AtomicU64,
    /// Not JSON, or a required header missing (400).
    pub malformed: std::sync::atomic::AtomicU64,
    /// Body over the limit (413).
    pub too_large: std::sync::atomic::AtomicU64,
}

impl Refusals {
    /// `(reason, count)` pairs for the metrics.
    pub fn counts(&self) -> [(&'static str, u64); 3] {
        use std::sync::atomic::Ordering::Relaxed;
        [
            ("signature", self.signature.load(Relaxed)),
            ("malformed", self.malformed.load(Relaxed)),
            ("too_large", self.too_large.load(Relaxed)),
        ]
    }
}

fn count(counter: &std::sync::atomic::AtomicU64) {
    counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

fn refuse(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_string)
}

/// Whether `signature` (base64) is the HMAC-SHA256 of `body` under `secret`, compared in
/// constant time. Never with an empty secret: anyone can sign with that.
pub fn signature_valid(secret: &[u8], body: &[u8], signature: &str) -> bool {
    if secret.is_empty() {
        return false;
    }
    let Ok(expected) = STANDARD.decode(signature.trim()) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&expected).is_ok()
}

/// Receives one webhook delivery.
pub async fn shopify(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    let refusals = &state.refusals;
    let body = match body {
        Ok(body) => body,
        Err(rejection) => {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                count(&refusals.too_large);
            }
            return refuse(rejection.status(), &rejection.body_text());
        }
    };
    // An empty secret is no secret: anyone could sign with it (the command line refuses one).
    let Some(secret) = (state.settings.shopify_webhook_secret.as_ref())
        .filter(|secret| !secret.expose().trim().is_empty())
    else {
        return refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "webhooks are not configured: set SHOPIFY_WEBHOOK_SECRET",
        );
    };
    // Header names are case-insensitive (HeaderMap lower-cases them).
    let Some(signature) = header(&headers, "x-shopify-hmac-sha256") else {
        count(&refusals.signature);
        return refuse(
            StatusCode::UNAUTHORIZED,
            "missing X-Shopify-Hmac-Sha256 signature",
        );
    };
    if !signature_valid(secret.expose().as_bytes(), &body, &signature) {
        count(&refusals.signature);
        return refuse(
            StatusCode::UNAUTHORIZED,
            "the X-Shopify-Hmac-Sha256 signature does not match the body",
        );
    }
    let Some(topic) = header(&headers, "x-shopify-topic") else {
        count(&refusals.malformed);
        return refuse(StatusCode::BAD_REQUEST, "missing X-Shopify-Topic header");
    };
    let Some(webhook_id) = header(&headers, "x-shopify-webhook-id") else {
        count(&refusals.malformed);
        return refuse(
            StatusCode::BAD_REQUEST,
            "missing X-Shopify-Webhook-Id header",
        );
    };
    // Parsed once: the same tree is read as the topic's payload.
    let value = match serde_json::from_slice::<serde_json_borrow::Value>(&body) {
        Ok(value) => value,
        Err(err) => {
            count(&refusals.malformed);
            return refuse(
                StatusCode::BAD_REQUEST,
                &format!("the body is not valid JSON: {err}"),
            );
        }
    };
    let delivery = Delivery {
        webhook_id,
        event_id: header(&headers, "x-shopify-event-id"),
        topic,
        shop_domain: header(&headers, "x-shopify-shop-domain"),
        api_version: header(&headers, "x-shopify-api-version"),
        triggered_at: header(&headers, "x-shopify-triggered-at")
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(&t).ok())
            .map(|t| t.with_timezone(&chrono::Utc)),
        body: body.to_vec(),
    };
    let payload = ingest::read_parsed(&delivery.topic, &value);
    drop(value);
    match ingest::accept_read(&state.store, delivery, payload).await {
        Ok(outcome) => {
            if matches!(
                outcome,
                IngestOutcome::Applied {
                    handed_off: false,
                    ..
                }
            ) {
                // One idle worker in this process starts on it now rather than at its next
                // poll: one claim takes the order's tasks for every destination. Waking every
                // worker made each claim, ~2.8 claims per order at 500 orders/s. Tasks handed
                // off at ingest need no claim: the workers were told.
                state.wake.one();
            }
            (StatusCode::OK, Json(json!({ "outcome": outcome.as_str() }))).into_response()
        }
        Err(err) => {
            // Not acknowledged, so the store delivers it again: nothing is lost.
            tracing::error!(error = %err, "could not record a webhook");
            refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                "could not record the webhook; please retry",
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_base64_hmac_sha256_of_the_raw_body() {
        let mut mac = Hmac::<Sha256>::new_from_slice(b"secret").unwrap();
        mac.update(b"{\"id\":1}");
        let good = STANDARD.encode(mac.finalize().into_bytes());
        assert!(signature_valid(b"secret", b"{\"id\":1}", &good));
        assert!(!signature_valid(b"secret", b"{\"id\":2}", &good));
        assert!(!signature_valid(b"other", b"{\"id\":1}", &good));
        assert!(!signature_valid(b"secret", b"{\"id\":1}", "not base64!"));
        let mut mac = Hmac::<Sha256>::new_from_slice(b"").unwrap();
        mac.update(b"{\"id\":1}");
        let keyless = STANDARD.encode(mac.finalize().into_bytes());
        assert!(
            !signature_valid(b"", b"{\"id\":1}", &keyless),
            "an empty secret signs nothing"
        );
    }
}

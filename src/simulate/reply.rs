//! Answers the simulated APIs give: JSON bodies, the shared error envelope, and idempotent
//! replay of writes (`Idempotency-Key`).

use std::collections::{HashMap, VecDeque};

use axum::body::Bytes;
use axum::http::header::{CONTENT_TYPE, RETRY_AFTER};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::connectors::{ApiErrorBody, ErrorEnvelope};

/// A finished answer, kept as bytes so it can be replayed exactly.
#[derive(Debug, Clone)]
pub(crate) struct Answer {
    status: StatusCode,
    body: Bytes,
    retry_after: Option<u64>,
    replayed: bool,
}

impl Answer {
    /// `value` as JSON with `status`.
    pub(crate) fn json<T: Serialize>(status: StatusCode, value: &T) -> Answer {
        match serde_json::to_vec(value) {
            Ok(body) => Answer {
                status,
                body: body.into(),
                retry_after: None,
                replayed: false,
            },
            Err(_) => SimError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "encoding failed",
            )
            .into(),
        }
    }
}

impl IntoResponse for Answer {
    fn into_response(self) -> Response {
        let mut response = (self.status, self.body).into_response();
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if let Some(secs) = self.retry_after {
            headers.insert(RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.replayed {
            headers.insert("idempotent-replayed", HeaderValue::from_static("true"));
        }
        response
    }
}

/// An error answer in the reference APIs' envelope.
#[derive(Debug, Clone)]
pub(crate) struct SimError {
    status: StatusCode,
    /// Boxed: errors are the rare path, and a small `Result` keeps the common one cheap.
    body: Box<ApiErrorBody>,
    retry_after: Option<u64>,
}

impl SimError {
    /// `status` with `code` and `message`.
    pub(crate) fn new(status: StatusCode, code: &str, message: impl Into<String>) -> SimError {
        SimError {
            status,
            body: Box::new(ApiErrorBody::new(code, message)),
            retry_after: None,
        }
    }

    /// 404 for a record that does not exist.
    pub(crate) fn not_found(message: impl Into<String>) -> SimError {
        SimError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 422 `field_too_long`, naming the field, its length and the limit.
    pub(crate) fn too_long(field: &str, actual: usize, max: usize) -> SimError {
        let message = format!("{field} is {actual} characters; at most {max} are allowed.");
        let mut error = SimError::new(StatusCode::UNPROCESSABLE_ENTITY, "field_too_long", message);
        error.body.field = Some(field.to_owned());
        error.body.max = Some(max as u64);
        error
    }

    /// 422 `missing_field`.
    pub(crate) fn missing(field: &str) -> SimError {
        SimError::unprocessable("missing_field", field, format!("{field} is required."))
    }

    /// 422 with `code`, naming `field`.
    pub(crate) fn unprocessable(code: &str, field: &str, message: impl Into<String>) -> SimError {
        let mut error = SimError::new(StatusCode::UNPROCESSABLE_ENTITY, code, message);
        error.body.field = Some(field.to_owned());
        error
    }

    /// 409 `duplicate_external_id`, naming the document that holds it.
    pub(crate) fn duplicate(document_number: &str, message: impl Into<String>) -> SimError {
        let mut error = SimError::new(StatusCode::CONFLICT, "duplicate_external_id", message);
        error.body.field = Some("external_id".to_owned());
        error.body.document_number = Some(document_number.to_owned());
        error
    }

    /// 429 with `Retry-After`.
    pub(crate) fn rate_limited(retry_after_secs: u64) -> SimError {
        let message = format!("Too many requests; retry after {retry_after_secs} s.");
        let mut error = SimError::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", message);
        error.retry_after = Some(retry_after_secs);
        error
    }

    /// A body that is not JSON (400) or not the expected shape (422).
    pub(crate) fn bad_body(error: &serde_json::Error) -> SimError {
        if error.is_data() {
            SimError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_body",
                error.to_string(),
            )
        } else {
            SimError::new(StatusCode::BAD_REQUEST, "invalid_json", error.to_string())
        }
    }
}

impl From<SimError> for Answer {
    fn from(error: SimError) -> Answer {
        let mut answer = Answer::json(error.status, &ErrorEnvelope { error: *error.body });
        answer.retry_after = error.retry_after;
        answer
    }
}

impl IntoResponse for SimError {
    fn into_response(self) -> Response {
        Answer::from(self).into_response()
    }
}

/// Parses a JSON body into `T`, answering 400/422 when it cannot.
pub(crate) fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, SimError> {
    serde_json::from_slice(body).map_err(|e| SimError::bad_body(&e))
}

/// What every write request carries for idempotency and the ledger.
#[derive(Debug, Clone)]
pub(crate) struct Write {
    /// The `Idempotency-Key` header.
    pub(crate) key: Option<String>,
    /// SHA-256 of the body, hex.
    pub(crate) body_hash: String,
    /// Where the key is remembered: method, path and key. Scoping keys to the endpoint means a
    /// client may use one key per order version for the contact and the deal alike.
    scoped_key: Option<String>,
    /// SHA-256 of the body: a key may only be reused for the same body.
    fingerprint: [u8; 32],
}

impl Write {
    /// Reads the key and hashes the request.
    pub(crate) fn new(method: &Method, path: &str, headers: &HeaderMap, body: &[u8]) -> Write {
        let key = headers
            .get("idempotency-key")
            .and_then(|v| v.to_str().ok())
            .filter(|k| !k.is_empty())
            .map(str::to_owned);
        let body_digest: [u8; 32] = Sha256::digest(body).into();
        Write {
            scoped_key: key.as_ref().map(|k| format!("{method} {path}\n{k}")),
            key,
            body_hash: hex::encode(body_digest),
            fingerprint: body_digest,
        }
    }

    /// The key as a `&str`, for the ledger.
    pub(crate) fn key(&self) -> Option<&str> {
        self.key.as_deref()
    }
}

/// Answers already given, by idempotency key. Keys expire after 24 hours, as a real API's do
/// (a demo left running does not keep every answer it ever gave), and at most [`MAX_KEYS`] are
/// kept, the oldest forgotten first.
#[derive(Debug, Default)]
pub(crate) struct IdempotencyStore {
    answers: HashMap<String, ([u8; 32], Answer)>,
    order: VecDeque<(std::time::Instant, String)>,
}

/// Keys remembered per simulator.
const MAX_KEYS: usize = 200_000;
/// How long a key is remembered.
const KEY_LIFETIME: std::time::Duration = std::time::Duration::from_secs(24 * 60 * 60);

impl IdempotencyStore {
    /// Runs `apply` unless this key already has an answer: the same request gets that answer
    /// again (no second effect), a different request with the same key gets 422. Only answers
    /// of writes that took effect (2xx) are kept.
    pub(crate) fn run(&mut self, write: &Write, apply: impl FnOnce() -> Answer) -> Answer {
        let Some(key) = &write.scoped_key else {
            return apply();
        };
        if let Some((fingerprint, answer)) = self.answers.get(key) {
            if *fingerprint != write.fingerprint {
                return SimError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "idempotency_key_reused",
                    "This Idempotency-Key was already used here with a different body.",
                )
                .into();
            }
            return Answer {
                replayed: true,
                ..answer.clone()
            };
        }
        let answer = apply();
        // Only a write that took effect is remembered. A refusal (4xx) or a server error (5xx)
        // changed nothing, so the client may send the key again, with the same body (the
        // cause was fixed here: an item added to the catalogue) or a corrected one, and it is
        // processed afresh — as Stripe does for requests that fail validation.
        if answer.status.is_success() {
            self.forget_old(std::time::Instant::now());
            self.order
                .push_back((std::time::Instant::now(), key.clone()));
            self.answers
                .insert(key.clone(), (write.fingerprint, answer.clone()));
        }
        answer
    }

    /// Forgets the keys past their lifetime at `now`, and the oldest beyond the room for one
    /// more.
    fn forget_old(&mut self, now: std::time::Instant) {
        while let Some((at, key)) = self.order.front() {
            let expired = now.saturating_duration_since(*at) >= KEY_LIFETIME;
            if !expired && self.order.len() < MAX_KEYS {
                break;
            }
            self.answers.remove(key);
            self.order.pop_front();
        }
    }
}

/// `?changed_since=&limit=&cursor=` on list endpoints.
#[derive(Debug, Default, serde::Deserialize)]
pub(crate) struct ListQuery {
    /// RFC 3339; records changed at or after it.
    pub(crate) changed_since: Option<String>,
    /// Page size, 1..=500, default 100.
    pub(crate) limit: Option<String>,
    /// Opaque: the change sequence the previous page ended at.
    pub(crate) cursor: Option<String>,
}

/// Largest page.
const MAX_LIMIT: usize = 500;

impl ListQuery {
    /// One page of `records` (each with its change sequence and change time), ordered by change.
    pub(crate) fn page<'a, T: Clone + 'a>(
        &self,
        records: impl Iterator<Item = (u64, chrono::DateTime<chrono::Utc>, &'a T)>,
    ) -> Result<crate::connectors::Page<T>, SimError> {
        let since = match &self.changed_since {
            None => None,
            Some(text) => Some(
                chrono::DateTime::parse_from_rfc3339(text)
                    .map_err(|_| {
                        SimError::new(
                            StatusCode::BAD_REQUEST,
                            "invalid_query",
                            "changed_since must be an RFC 3339 timestamp.",
                        )
                    })?
                    .with_timezone(&chrono::Utc),
            ),
        };
        let limit = match &self.limit {
            None => 100,
            Some(text) => text
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=MAX_LIMIT).contains(n))
                .ok_or_else(|| {
                    SimError::new(
                        StatusCode::BAD_REQUEST,
                        "invalid_query",
                        format!("limit must be between 1 and {MAX_LIMIT}."),
                    )
                })?,
        };
        let after = match &self.cursor {
            None => 0,
            Some(text) => text.parse::<u64>().map_err(|_| {
                SimError::new(StatusCode::BAD_REQUEST, "invalid_query", "Unknown cursor.")
            })?,
        };
        let mut matching: Vec<(u64, &T)> = records
            .filter(|(seq, at, _)| *seq > after && since.is_none_or(|s| *at >= s))
            .map(|(seq, _, record)| (seq, record))
            .collect();
        matching.sort_unstable_by_key(|(seq, _)| *seq);
        let more = matching.len() > limit;
        matching.truncate(limit);
        let next_cursor = if more {
            matching.last().map(|(seq, _)| seq.to_string())
        } else {
            None
        };
        Ok(crate::connectors::Page {
            data: matching.into_iter().map(|(_, r)| r.clone()).collect(),
            next_cursor,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A day-old key is forgotten, as a real API forgets it; a newer one is kept.
    #[test]
    fn keys_expire_after_a_day() {
        let mut store = IdempotencyStore::default();
        let start = std::time::Instant::now();
        let hours = |h: u64| std::time::Duration::from_secs(h * 3600);
        for (after, key) in [(hours(0), "old"), (hours(2), "new")] {
            store.order.push_back((start + after, key.to_string()));
            store.answers.insert(
                key.to_string(),
                ([0; 32], Answer::json(StatusCode::CREATED, &"ok")),
            );
        }
        // 25 hours on: the first is a day old, the second 23 hours.
        store.forget_old(start + hours(25));
        assert!(!store.answers.contains_key("old"));
        assert!(store.answers.contains_key("new"));
        assert_eq!(store.order.len(), 1);
    }
}

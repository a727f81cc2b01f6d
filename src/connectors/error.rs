//! What a delivery attempt comes back with: an [`Ack`], or a [`DeliveryError`] the engine can act
//! on without reading HTTP status codes itself.

use std::time::Duration;

/// A destination accepted a write (or already had it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    /// The destination's own id for the record: a CRM record id or an ERP document number.
    pub external_id: String,
    /// The destination's `X-Request-Id`, for support tickets.
    pub request_id: Option<String>,
    /// The HTTP status the destination answered (200, 201; 409 when the record already existed).
    pub status: u16,
}

impl Ack {
    /// True when the destination said the record already existed (409 duplicate), so this call
    /// created nothing.
    pub fn already_existed(&self) -> bool {
        self.status == 409
    }
}

/// Why a transient failure happened. Every kind is retried with backoff.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransientKind {
    /// No answer within the client timeout; the destination may or may not have committed.
    Timeout,
    /// The connection could not be made (refused, reset, DNS).
    Connect,
    /// The destination (429) or our own per-destination limiter asked us to slow down.
    RateLimited {
        /// How long to wait before the next request, when known.
        retry_after: Option<Duration>,
        /// The destination answered 429 (false: our own limiter held the request back, and
        /// nothing was sent).
        by_destination: bool,
    },
    /// The destination answered with a server error (5xx, 408) or an unreadable answer.
    Server {
        /// The HTTP status it answered.
        status: u16,
    },
}

/// Every way a delivery can fail, classified for the engine.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryError {
    /// Worth retrying later: timeouts, connection failures, rate limits, 5xx.
    #[error("{message}")]
    Transient {
        /// What kind of transient failure.
        kind: TransientKind,
        /// A plain sentence for people.
        message: String,
        /// The destination's request id, when it answered at all.
        request_id: Option<String>,
    },
    /// The destination refused our credentials (401/403); the engine pauses the destination.
    #[error("{message}")]
    Auth {
        /// 401 or 403.
        status: u16,
        /// A plain sentence for people.
        message: String,
        /// The destination's request id.
        request_id: Option<String>,
    },
    /// The destination refused the content (400/404/409/422): retrying the same data will not help.
    #[error("{message}")]
    Rejected {
        /// The HTTP status it answered.
        status: u16,
        /// The destination's machine code, e.g. `field_too_long`, `unknown_item`.
        code: String,
        /// The field the destination named, e.g. `ship_to.street`, `lines[0].item_code`.
        field: Option<String>,
        /// The destination's own message, kept verbatim.
        message: String,
        /// The limit the destination named for the field (characters), when it named one.
        max: Option<u64>,
        /// The destination's request id.
        request_id: Option<String>,
    },
}

impl DeliveryError {
    /// True for failures the engine should retry with backoff.
    pub fn is_transient(&self) -> bool {
        matches!(self, DeliveryError::Transient { .. })
    }

    /// True for a timeout: the write may have been committed, so find before creating again.
    pub fn is_timeout(&self) -> bool {
        matches!(
            self,
            DeliveryError::Transient {
                kind: TransientKind::Timeout,
                ..
            }
        )
    }

    /// How long the destination asked us to wait, when it said.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            DeliveryError::Transient {
                kind: TransientKind::RateLimited { retry_after, .. },
                ..
            } => *retry_after,
            _ => None,
        }
    }

    /// The destination's request id, when known.
    pub fn request_id(&self) -> Option<&str> {
        match self {
            DeliveryError::Transient { request_id, .. }
            | DeliveryError::Auth { request_id, .. }
            | DeliveryError::Rejected { request_id, .. } => request_id.as_deref(),
        }
    }

    /// A stable machine code: `timeout`, `connect`, `rate_limited`, `server_error`, `auth`, or
    /// the destination's own code for a rejection.
    pub fn code(&self) -> &str {
        match self {
            DeliveryError::Transient { kind, .. } => match kind {
                TransientKind::Timeout => "timeout",
                TransientKind::Connect => "connect",
                TransientKind::RateLimited { .. } => "rate_limited",
                TransientKind::Server { .. } => "server_error",
            },
            DeliveryError::Auth { .. } => "auth",
            DeliveryError::Rejected { code, .. } => code,
        }
    }
}

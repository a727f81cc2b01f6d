//! Cross-site request forgery refusal, security headers and request spans.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::WebSettings;

/// Paths authenticated by something other than the session cookie (an HMAC signature, a bearer
/// token), so a browser cannot be tricked into sending a credential for them.
fn cookie_free(path: &str) -> bool {
    path.starts_with("/webhooks/") || path.starts_with("/api/v1/")
}

/// Refuses state-changing requests that a browser sent on behalf of another site. Leptos has no
/// CSRF protection of its own; this checks `Sec-Fetch-Site` (sent by every current browser), and
/// falls back to comparing `Origin` with `Host`. A request carrying neither is not from a
/// browser (browsers send `Origin` on every cross-site POST), and the `SameSite=Strict` cookie
/// is a second line.
pub async fn refuse_cross_site(req: Request, next: Next) -> Response {
    let safe = matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if safe || cookie_free(req.uri().path()) {
        return next.run(req).await;
    }
    let headers = req.headers();
    let allowed = if let Some(site) = headers.get("sec-fetch-site") {
        matches!(site.as_bytes(), b"same-origin" | b"none")
    } else if let Some(origin) = headers.get(header::ORIGIN) {
        let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
        let origin_host = origin
            .to_str()
            .ok()
            .and_then(|o| o.split_once("://"))
            .map(|(_, rest)| rest);
        matches!((origin_host, host), (Some(o), Some(h)) if o.eq_ignore_ascii_case(h))
    } else {
        true
    };
    if allowed {
        next.run(req).await
    } else {
        tracing::warn!(path = %req.uri().path(), "refused a cross-site request");
        (
            StatusCode::FORBIDDEN,
            "Cross-site request refused: this action must come from SyncDesk's own pages.\n",
        )
            .into_response()
    }
}

/// Sets the security headers every response carries.
pub async fn headers(
    State(settings): State<Arc<WebSettings>>,
    req: Request,
    next: Next,
) -> Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    let set = |h: &mut axum::http::HeaderMap, name: &'static str, value: &'static str| {
        h.entry(name).or_insert(HeaderValue::from_static(value));
    };
    set(h, "x-content-type-options", "nosniff");
    set(h, "x-frame-options", "DENY");
    set(h, "referrer-policy", "same-origin");
    set(h, "cross-origin-opener-policy", "same-origin");
    set(
        h,
        "permissions-policy",
        "camera=(), microphone=(), geolocation=(), payment=()",
    );
    // Leptos' hydration bootstrap is an inline script, hence 'unsafe-inline' for scripts; the
    // wasm needs 'wasm-unsafe-eval'. Everything is served from this origin.
    set(
        h,
        "content-security-policy",
        "default-src 'self'; script-src 'self' 'unsafe-inline' 'wasm-unsafe-eval'; style-src 'self' 'unsafe-inline'; \
         img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'; \
         object-src 'none'",
    );
    if settings.tls {
        set(
            h,
            "strict-transport-security",
            "max-age=31536000; includeSubDomains",
        );
    }
    res
}

/// The span every request runs in: method, path and a request id — never query strings or
/// bodies, which may hold personal data.
pub fn request_span(req: &axum::http::Request<Body>) -> tracing::Span {
    tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), id = %uuid::Uuid::now_v7())
}

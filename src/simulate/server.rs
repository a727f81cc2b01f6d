//! What the simulated CRM and ERP share: bearer auth, fault injection, `X-Request-Id`, the
//! `/_sim` control endpoints, and serving on loopback.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context;
use axum::Router;
use axum::extract::{Query, Request, State};
use axum::http::header::AUTHORIZATION;
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::serve::ListenerExt;
use serde::Deserialize;
use subtle::ConstantTimeEq;
use tokio::task::JoinHandle;
use url::Url;

use super::faults::{FaultHandle, Faults, OutageMode};
use super::ledger::Ledger;
use super::reply::{Answer, SimError};

/// A simulator's router and the handles that reach into it, before it is served. Mount
/// `router` in another server (the demo does) or hand the whole thing to [`serve`].
#[derive(Debug)]
pub struct SimApp {
    /// The whole API plus `/_sim` control endpoints, faults and auth applied.
    pub router: Router,
    /// Live fault settings.
    pub faults: FaultHandle,
    /// Committed effects.
    pub ledger: Ledger,
    /// The bearer token the API accepts.
    pub token: String,
}

/// A running simulator on loopback. Dropping it stops the server.
#[derive(Debug)]
pub struct SimHandle {
    addr: SocketAddr,
    base_url: Url,
    token: String,
    faults: FaultHandle,
    ledger: Ledger,
    task: JoinHandle<()>,
}

impl SimHandle {
    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:{port}/`: give this to the connector as its base URL.
    pub fn base_url(&self) -> &Url {
        &self.base_url
    }

    /// The bearer token it accepts.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// Its live fault settings.
    pub fn faults(&self) -> &FaultHandle {
        &self.faults
    }

    /// Its ledger of committed effects.
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// Stops serving (connections already open finish on their own).
    pub fn stop(self) {}
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves `app` on `listen` (port 0 picks a free port) in a background task.
pub async fn serve(app: SimApp, listen: SocketAddr) -> anyhow::Result<SimHandle> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen} for a simulator"))?;
    let addr = listener
        .local_addr()
        .context("simulator listener has no address")?;
    let base_url = Url::parse(&format!("http://{addr}/")).context("simulator URL")?;
    let listener = listener.tap_io(|tcp| {
        // Small JSON answers: do not wait for Nagle.
        let _ = tcp.set_nodelay(true);
    });
    let router = app.router;
    let task = tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, router).await {
            tracing::warn!(%error, "simulator stopped");
        }
    });
    Ok(SimHandle {
        addr,
        base_url,
        token: app.token,
        faults: app.faults,
        ledger: app.ledger,
        task,
    })
}

/// Wraps `api` (the `/v1` routes, state applied) with auth and faults, adds the control
/// endpoints in `control` and the shared ones, and stamps every answer with `X-Request-Id`.
pub(crate) fn assemble(
    api: Router,
    control: Router,
    token: String,
    faults: FaultHandle,
    ledger: Ledger,
) -> SimApp {
    let guard = Guard {
        token: Arc::from(token.as_str()),
        faults: faults.clone(),
    };
    let shared = Router::new()
        .route(
            "/_sim/faults",
            get(get_faults).put(put_faults).delete(delete_faults),
        )
        .with_state(faults.clone())
        .merge(
            Router::new()
                .route("/_sim/ledger", get(get_ledger))
                .route("/_sim/ledger/check", get(get_check))
                .with_state(ledger.clone()),
        );
    let router = api
        .layer(middleware::from_fn_with_state(guard, guard_api))
        .merge(control)
        .merge(shared)
        .fallback(|| async { SimError::not_found("No such endpoint.") })
        .layer(middleware::from_fn_with_state(
            Arc::new(RequestIds::new()),
            stamp_request_id,
        ));
    SimApp {
        router,
        faults,
        ledger,
        token,
    }
}

/// Request ids: a per-process prefix and a counter, cheaper than a UUID per request.
#[derive(Debug)]
struct RequestIds {
    prefix: String,
    next: AtomicU64,
}

impl RequestIds {
    fn new() -> Self {
        let prefix = uuid::Uuid::new_v4().simple().to_string();
        RequestIds {
            prefix: prefix[..12].to_owned(),
            next: AtomicU64::new(1),
        }
    }
}

/// Adds `X-Request-Id` to every answer, errors and control endpoints included.
async fn stamp_request_id(
    State(ids): State<Arc<RequestIds>>,
    request: Request,
    next: Next,
) -> Response {
    let n = ids.next.fetch_add(1, Ordering::Relaxed);
    let mut response = next.run(request).await;
    if let Ok(value) = HeaderValue::from_str(&format!("req_{}{n:010}", ids.prefix)) {
        response.headers_mut().insert("x-request-id", value);
    }
    response
}

/// What the API guard needs.
#[derive(Debug, Clone)]
struct Guard {
    token: Arc<str>,
    faults: FaultHandle,
}

/// Bearer auth and fault injection, in the order a real service shows them: an outage answers
/// before anything else, then latency, auth, rate limiting, server errors; commit-then-timeout
/// lets the handler commit and then holds the answer past the client's timeout.
async fn guard_api(State(guard): State<Guard>, request: Request, next: Next) -> Response {
    let plan = guard.faults.plan(request.method() != Method::GET);
    if let Some(mode) = plan.outage {
        if mode == OutageMode::Hang {
            tokio::time::sleep(plan.hang).await;
        }
        return SimError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "Service unavailable.",
        )
        .into_response();
    }
    if !plan.delay.is_zero() {
        tokio::time::sleep(plan.delay).await;
    }
    let presented = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    let token_ok: bool = presented.as_bytes().ct_eq(guard.token.as_bytes()).into();
    if !token_ok || plan.revoked {
        let message = if plan.revoked {
            "The API token was revoked."
        } else {
            "Missing or invalid bearer token."
        };
        return SimError::new(StatusCode::UNAUTHORIZED, "unauthorized", message).into_response();
    }
    if let Some(secs) = plan.rate_limited {
        return SimError::rate_limited(secs).into_response();
    }
    if let Some(status) = plan.server_error {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        // The codes the reference APIs document: a 503 is `unavailable`.
        let (code, message) = if status == StatusCode::SERVICE_UNAVAILABLE {
            (
                "unavailable",
                "The service is unavailable; try again later.",
            )
        } else {
            ("internal", "Something went wrong on our side.")
        };
        return SimError::new(status, code, message).into_response();
    }
    let response = next.run(request).await;
    if plan.commit_then_timeout && response.status().is_success() {
        // Committed; the client gives up before this answer arrives.
        tokio::time::sleep(plan.hang).await;
    }
    response
}

async fn get_faults(State(faults): State<FaultHandle>) -> Answer {
    Answer::json(StatusCode::OK, &faults.get())
}

async fn put_faults(State(faults): State<FaultHandle>, body: axum::body::Bytes) -> Answer {
    let new: Faults = match super::reply::parse(&body) {
        Ok(new) => new,
        Err(error) => return error.into(),
    };
    if let Err(message) = new.validate() {
        return SimError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field", message).into();
    }
    faults.set(new.clone());
    Answer::json(StatusCode::OK, &new)
}

async fn delete_faults(State(faults): State<FaultHandle>) -> Answer {
    faults.reset();
    Answer::json(StatusCode::OK, &faults.get())
}

/// `GET /_sim/ledger?external_id=`.
#[derive(Debug, Deserialize)]
struct LedgerQuery {
    external_id: Option<String>,
}

async fn get_ledger(State(ledger): State<Ledger>, Query(query): Query<LedgerQuery>) -> Answer {
    let entries = match query.external_id {
        Some(id) => ledger.entries_for(&id),
        None => ledger.entries(),
    };
    Answer::json(StatusCode::OK, &serde_json::json!({ "entries": entries }))
}

async fn get_check(State(ledger): State<Ledger>) -> Answer {
    Answer::json(StatusCode::OK, &ledger.check())
}

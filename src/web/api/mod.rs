//! `/api/v1/…`: the JSON API for automation. Callers authenticate with a bearer token
//! (`Authorization: Bearer sdk_…`) and may do what the token's roles allow. Mutations go through
//! the same store methods the UI uses, audited as `token:<name>`. Every failure answers
//! `{"error": {"code", "message"}}`.

mod destinations;
mod exceptions;
mod openapi;
mod orders;
mod sku_mappings;

use app::model::Role;
use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;

use super::AppState;
use crate::accounts::hash_token;
use crate::audit::{Actor, Change};
use crate::store::{Store, StoreError};

/// Who may read the queue's state.
const READERS: &[Role] = &[Role::Operator, Role::Manager];
/// Who may change it.
const WRITERS: &[Role] = &[Role::Operator];
/// The largest CSV file accepted for import (10,000 rows of long codes fit).
pub(super) const IMPORT_BODY_BYTES: usize = 2 * 1024 * 1024;

/// The API's routes, to be nested under `/api/v1`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/orders/{store_order_id}", get(orders::show))
        .route("/exceptions", get(exceptions::list))
        .route("/exception-groups", get(exceptions::groups))
        .route("/exceptions/{id}/retry", post(exceptions::retry))
        .route("/exceptions/actions", post(exceptions::act))
        .route(
            "/sku-mappings.csv",
            get(sku_mappings::export)
                .post(sku_mappings::import)
                .layer(axum::extract::DefaultBodyLimit::max(IMPORT_BODY_BYTES)),
        )
        .route(
            "/sku-mappings/{sku}",
            get(sku_mappings::show).put(sku_mappings::save),
        )
        .route("/destinations/{name}/resume", post(destinations::resume))
        .route("/openapi.json", get(openapi::document))
        .fallback(|| async { ApiError::NotFound("No such API route.".into()) })
        .layer(axum::middleware::map_response(json_errors))
}

/// Failures axum answers itself (a method the route does not take, a body past its limit or not
/// UTF-8) come as plain text; the API answers every failure in its JSON envelope, so they are
/// put in it, keeping their sentence (and `Allow` on a 405).
async fn json_errors(response: Response) -> Response {
    let status = response.status();
    let json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if json || !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let (parts, body) = response.into_parts();
    let said = axum::body::to_bytes(body, 4096)
        .await
        .ok()
        .and_then(|bytes| String::from_utf8(bytes.to_vec()).ok())
        .map(|text| text.trim().to_string())
        .filter(|text| !text.is_empty());
    let (code, fallback) = match status {
        StatusCode::METHOD_NOT_ALLOWED => (
            "method_not_allowed",
            "This route does not take that method; /api/v1/openapi.json lists what it takes.",
        ),
        StatusCode::PAYLOAD_TOO_LARGE => ("too_large", "The request body is too large."),
        s if s.is_client_error() => ("invalid", "The request could not be read."),
        _ => (
            "internal",
            "Something went wrong on our side; it has been logged.",
        ),
    };
    let message = match (status, said) {
        (StatusCode::METHOD_NOT_ALLOWED, _) | (_, None) => fallback.to_string(),
        (_, Some(said)) if said.ends_with(['.', '!', '?']) => said,
        (_, Some(said)) => format!("{said}."),
    };
    let mut answer = (
        status,
        Json(json!({ "error": { "code": code, "message": message } })),
    )
        .into_response();
    if let Some(allow) = parts.headers.get(header::ALLOW) {
        answer.headers_mut().insert(header::ALLOW, allow.clone());
    }
    answer
}

/// A failed API request, answered as `{"error": {"code", "message"}}`.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No token, or not a live one (401).
    #[error("{0}")]
    Unauthenticated(&'static str),
    /// The token lacks every role that would allow this (403).
    #[error("This needs a token with the {} role.", roles_text(.0))]
    Forbidden(&'static [Role]),
    /// The thing asked for does not exist (404).
    #[error("{0}")]
    NotFound(String),
    /// The request conflicts with the current state (409).
    #[error("{0}")]
    Conflict(String),
    /// The request is malformed or its values are not acceptable (422).
    #[error("{0}")]
    Invalid(String),
    /// Anything else: logged with its cause, shown as a plain sentence (500).
    #[error("internal error")]
    Internal(#[source] StoreError),
}

fn roles_text(roles: &[Role]) -> String {
    roles
        .iter()
        .map(|r| r.as_str())
        .collect::<Vec<_>>()
        .join(" or ")
}

impl ApiError {
    /// The HTTP status this error answers with.
    pub fn status_code(&self) -> StatusCode {
        match self {
            ApiError::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable machine code in the body.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Unauthenticated(_) => "unauthenticated",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::NotFound(_) => "not_found",
            ApiError::Conflict(_) => "conflict",
            ApiError::Invalid(_) => "invalid",
            ApiError::Internal(_) => "internal",
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::NotFound(what) => ApiError::NotFound(format!("No such {what}.")),
            StoreError::Conflict(message) => ApiError::Conflict(message),
            StoreError::Invalid(message) => ApiError::Invalid(message),
            other => ApiError::Internal(other),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let message = match &self {
            ApiError::Internal(err) => {
                // The cause stays in the log; the caller gets a sentence and the time to quote.
                tracing::error!(error = %err, "API request failed");
                "Something went wrong on our side; it has been logged.".to_string()
            }
            other => other.to_string(),
        };
        let body = Json(json!({ "error": { "code": self.code(), "message": message } }));
        let mut response = (self.status_code(), body).into_response();
        if matches!(self, ApiError::Unauthenticated(_)) {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}

/// The token a request was made with.
#[derive(Clone, Debug)]
pub struct ApiCaller {
    /// Token id.
    pub token_id: i64,
    /// Token name.
    pub name: String,
    /// The roles it carries.
    pub roles: Vec<Role>,
    /// The request, as a refusal's audit names it: `POST /api/v1/exceptions/7/retry`.
    request: String,
    /// Where a refusal is audited.
    store: Store,
}

impl ApiCaller {
    /// Allows the request when the token has at least one of `roles`. A refusal is audited
    /// (`access.denied`, naming the request and the roles it needs), as the web app's are.
    pub async fn require(&self, roles: &'static [Role]) -> Result<(), ApiError> {
        if roles.iter().any(|r| self.roles.contains(r)) {
            return Ok(());
        }
        let needed = roles.iter().map(|r| r.as_str()).collect::<Vec<_>>();
        let change = Change::new(&self.actor(), "access.denied", self.request.clone())
            .after(json!({ "needs_one_of": needed }));
        self.store.record(&change).await?;
        Err(ApiError::Forbidden(roles))
    }

    /// The token as the audit log records it.
    pub fn actor(&self) -> Actor {
        Actor::Token {
            id: self.token_id,
            name: self.name.clone(),
        }
    }
}

impl<S> FromRequestParts<S> for ApiCaller
where
    S: Send + Sync,
    Store: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let secret = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            // The scheme is case-insensitive (RFC 9110, 11.1).
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
            .ok_or(ApiError::Unauthenticated(
                "Send an API token as `Authorization: Bearer sdk_…`.",
            ))?;
        let store = Store::from_ref(state);
        let token =
            store
                .token_by_hash(&hash_token(secret))
                .await?
                .ok_or(ApiError::Unauthenticated(
                    "That API token is unknown or revoked.",
                ))?;
        Ok(ApiCaller {
            token_id: token.id,
            name: token.name,
            roles: token.roles,
            // The path as requested: this router is nested under `/api/v1`, which `parts.uri`
            // has lost.
            request: format!(
                "{} {}",
                parts.method,
                parts
                    .extensions
                    .get::<axum::extract::OriginalUri>()
                    .map_or(parts.uri.path(), |original| original.path())
            ),
            store,
        })
    }
}

/// Turns an extractor's rejection (bad path, query or body) into a 422 with its sentence.
fn invalid(rejection: impl std::fmt::Display) -> ApiError {
    ApiError::Invalid(rejection.to_string())
}

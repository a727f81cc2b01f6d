//! `GET /api/v1/exceptions`, `GET /api/v1/exception-groups` and
//! `POST /api/v1/exceptions/{id}/retry`.

use axum::Json;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiCaller, ApiError, READERS, WRITERS, invalid};
use crate::store::{ExceptionFilter, ExceptionView, RetryOutcome, Store};

/// A page holds this many exceptions unless `limit` says otherwise.
const DEFAULT_LIMIT: i64 = 50;
/// And never more than this.
const MAX_LIMIT: i64 = 200;
/// Groups listed at most.
const GROUPS_LIMIT: i64 = 500;

/// The list's query string.
#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    /// `open` (the default), `snoozed`, `resolved`, `skipped` or `all`.
    status: Option<String>,
    /// Only this code.
    code: Option<String>,
    /// Only this destination.
    destination: Option<String>,
    /// Only this cause.
    fingerprint: Option<String>,
    /// Page size (1–200).
    limit: Option<i64>,
    /// The previous page's `next_before_id`.
    before_id: Option<i64>,
}

/// An empty query value means "no filter", as HTML forms and shell scripts send it.
fn given(value: Option<String>) -> Option<String> {
    value
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

impl ListQuery {
    fn into_filter(self) -> Result<ExceptionFilter, ApiError> {
        let status = match given(self.status).as_deref() {
            None | Some("open") => Some("open".to_string()),
            Some("all") => None,
            Some(s @ ("snoozed" | "resolved" | "skipped")) => Some(s.to_string()),
            Some(other) => {
                return Err(ApiError::Invalid(format!(
                    "status must be open, snoozed, resolved, skipped or all (got {other:?})."
                )));
            }
        };
        let limit = self.limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(ApiError::Invalid(format!(
                "limit must be between 1 and {MAX_LIMIT}."
            )));
        }
        Ok(ExceptionFilter {
            status,
            code: given(self.code),
            destination: given(self.destination),
            fingerprint: given(self.fingerprint),
            before_id: self.before_id,
            limit,
        })
    }
}

/// Exceptions, newest first, a page at a time.
pub async fn list(
    State(store): State<Store>,
    caller: ApiCaller,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    caller.require(READERS)?;
    let Query(query) = query.map_err(invalid)?;
    let filter = query.into_filter()?;
    let rows: Vec<ExceptionView> = store.exceptions(&filter).await?;
    // A full page may have a next one; a short page is the last.
    let next_before_id = (rows.len() as i64 == filter.limit)
        .then(|| rows.last().map(|r| r.id))
        .flatten();
    Ok(Json(
        json!({ "exceptions": rows, "next_before_id": next_before_id }),
    ))
}

/// Open exceptions grouped by cause, biggest group first.
pub async fn groups(
    State(store): State<Store>,
    caller: ApiCaller,
) -> Result<Json<Value>, ApiError> {
    caller.require(READERS)?;
    let groups = store.exception_groups(GROUPS_LIMIT).await?;
    let groups: Vec<Value> = groups
        .into_iter()
        .map(|g| {
            json!({
                "fingerprint": g.fingerprint,
                "code": g.code,
                "kind": g.kind,
                "action": g.action,
                "message": g.message,
                "open": g.open,
                "oldest": g.oldest,
                "destinations": g.destinations.split(", ").collect::<Vec<_>>(),
            })
        })
        .collect();
    Ok(Json(json!({ "groups": groups })))
}

/// Puts an exception's task back in the queue.
pub async fn retry(
    State(store): State<Store>,
    caller: ApiCaller,
    id: Result<Path<i64>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    caller.require(WRITERS)?;
    let Path(id) = id.map_err(invalid)?;
    let outcome = match store.retry_exception(id, &caller.actor()).await? {
        RetryOutcome::Queued => "queued",
        RetryOutcome::AlreadyApplied => "already_applied",
        RetryOutcome::InFlight => "in_flight",
    };
    Ok(Json(json!({ "outcome": outcome })))
}

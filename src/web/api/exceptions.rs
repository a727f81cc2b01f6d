//! `GET /api/v1/exceptions`, `GET /api/v1/exception-groups` and
//! `POST /api/v1/exceptions/{id}/retry`.

use app::model::{ExceptionQuery, TriageRequest, TriageTarget};
use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiCaller, ApiError, READERS, WRITERS, invalid};
use crate::engine::wake::Wake;
use crate::store::{ExceptionFilter, ExceptionScope, ExceptionView, RetryOutcome, Store};
use crate::web::triage;

/// A page holds this many exceptions unless `limit` says otherwise.
const DEFAULT_LIMIT: i64 = 50;
/// And never more than this.
const MAX_LIMIT: i64 = 200;
/// Groups listed at most.
const GROUPS_LIMIT: i64 = 500;

/// The list's and the groups' query string.
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
    /// `none` or a user id.
    assignee: Option<String>,
    /// Only those waiting at least this many minutes.
    older_than_minutes: Option<i64>,
    /// Order number, store order id, customer email or SKU.
    q: Option<String>,
    /// `newest` (the default) or `oldest`; for groups, `size` (the default) or `age`.
    sort: Option<String>,
    /// Page size (1–200).
    limit: Option<i64>,
    /// The previous page's `next_before_id`.
    before_id: Option<i64>,
}

impl ListQuery {
    fn filters(&self) -> ExceptionQuery {
        ExceptionQuery {
            status: self.status.clone(),
            code: self.code.clone(),
            destination: self.destination.clone(),
            fingerprint: self.fingerprint.clone(),
            assignee: self.assignee.clone(),
            older_than_minutes: self.older_than_minutes,
            q: self.q.clone(),
        }
    }

    fn scope(&self) -> Result<ExceptionScope, ApiError> {
        triage::scope(&self.filters(), None).map_err(ApiError::Invalid)
    }

    fn into_filter(self) -> Result<ExceptionFilter, ApiError> {
        let limit = self.limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(ApiError::Invalid(format!(
                "limit must be between 1 and {MAX_LIMIT}."
            )));
        }
        let oldest_first = match self.sort.as_deref().map(str::trim) {
            None | Some("") | Some("newest") => false,
            Some("oldest") => true,
            Some(other) => {
                return Err(ApiError::Invalid(format!(
                    "sort must be newest or oldest (got {other:?})."
                )));
            }
        };
        Ok(ExceptionFilter {
            scope: self.scope()?,
            before_id: self.before_id,
            oldest_first,
            limit,
        })
    }
}

/// Exceptions, newest (or oldest) first, a page at a time.
pub async fn list(
    State(store): State<Store>,
    caller: ApiCaller,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    caller.require(READERS).await?;
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
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    caller.require(READERS).await?;
    let Query(query) = query.map_err(invalid)?;
    let oldest_first = match query.sort.as_deref().map(str::trim) {
        None | Some("") | Some("size") => false,
        Some("age") => true,
        Some(other) => {
            return Err(ApiError::Invalid(format!(
                "sort must be size or age (got {other:?})."
            )));
        }
    };
    let scope = triage::group_scope(&query.filters(), None).map_err(ApiError::Invalid)?;
    let groups = store
        .exception_groups(&scope, oldest_first, GROUPS_LIMIT)
        .await?;
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
    State(wake): State<Wake>,
    caller: ApiCaller,
    id: Result<Path<i64>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    caller.require(WRITERS).await?;
    let Path(id) = id.map_err(invalid)?;
    let outcome = store.retry_exception(id, &caller.actor()).await?;
    if matches!(outcome, RetryOutcome::Queued) {
        wake.all();
    }
    Ok(Json(json!({ "outcome": outcome.as_str() })))
}

/// A triage action on one exception, a selection, a group or a filter.
#[derive(Debug, Deserialize)]
pub struct ActionBody {
    /// What to do (`"action": "retry" | "skip" | "resolve" | "assign" | "snooze"`, with
    /// `reason`, `note`, `assignee` or `hours`).
    #[serde(flatten)]
    request: TriageRequest,
    /// What to do it to.
    target: TriageTarget,
    /// Count only; change nothing.
    #[serde(default)]
    dry_run: bool,
}

/// `POST /api/v1/exceptions/actions`.
pub async fn act(
    State(store): State<Store>,
    State(wake): State<Wake>,
    caller: ApiCaller,
    body: Result<Json<ActionBody>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    caller.require(WRITERS).await?;
    let Json(body) = body.map_err(invalid)?;
    let scope = triage::target_scope(&body.target, None).map_err(ApiError::Invalid)?;
    let action = triage::action(&body.request, None).map_err(ApiError::Invalid)?;
    let report = store
        .triage(&scope, &action, body.dry_run, &caller.actor())
        .await?;
    if !body.dry_run && report.queued > 0 {
        wake.all();
    }
    Ok(Json(json!(triage::outcome(&body.request, &report))))
}

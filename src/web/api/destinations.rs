//! `POST /api/v1/destinations/{name}/resume`: deliveries to a destination paused for rejected
//! credentials start again, for when they were put right on the destination's side (a
//! re-enabled account, a restored permission) rather than by giving SyncDesk new ones, which
//! resumes it by itself when the processes restart.

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use serde_json::{Value, json};

use super::{ApiCaller, ApiError, invalid};
use crate::web::AppState;
use app::model::Role;

/// Who may resume a destination: whoever looks after its credentials.
const ADMINS: &[Role] = &[Role::Admin];

/// Resumes the destination: 200 with whether it was paused, 404 for an unknown name.
pub async fn resume(
    State(state): State<AppState>,
    caller: ApiCaller,
    name: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    caller.require(ADMINS).await?;
    let Path(name) = name.map_err(invalid)?;
    let was_paused = state
        .store
        .resume_destination(&name, &caller.actor())
        .await?;
    state.wake.all();
    Ok(Json(json!({
        "destination": name,
        "was_paused": was_paused,
        "paused": false,
    })))
}

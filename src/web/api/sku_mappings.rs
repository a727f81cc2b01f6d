//! `GET` and `PUT /api/v1/sku-mappings/{sku}`: a SKU's ERP item code. Saving one releases every
//! order waiting on that SKU. `GET` and `POST /api/v1/sku-mappings.csv`: every mapping as CSV,
//! and a CSV file imported all or nothing.

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiCaller, ApiError, READERS, WRITERS, invalid};
use crate::engine::mappings::{MappingError, Mappings};
use crate::engine::wake::Wake;
use crate::store::{SkuMapping, Store};

/// The body of a `PUT`.
#[derive(Debug, Deserialize)]
pub struct SaveBody {
    /// The ERP item code to map the SKU to.
    item_code: String,
}

fn mapping_json(m: &SkuMapping) -> Value {
    json!({
        "sku": m.sku,
        "item_code": m.item_code,
        "updated_at": m.updated_at,
        "updated_by": m.updated_by,
    })
}

/// One SKU's mapping, or 404.
pub async fn show(
    State(store): State<Store>,
    caller: ApiCaller,
    sku: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    caller.require(READERS).await?;
    let Path(raw) = sku.map_err(invalid)?;
    // Read as a save reads it (trimmed), so that what `PUT` saved, `GET` finds.
    let sku = crate::domain::Sku::parse(&raw).map_err(|e| ApiError::Invalid(e.to_string()))?;
    let sku = sku.as_str();
    store
        .sku_mapping(sku)
        .await?
        .map(|m| Json(mapping_json(&m)))
        .ok_or_else(|| ApiError::NotFound(format!("SKU {sku} has no mapping.")))
}

impl From<MappingError> for ApiError {
    fn from(err: MappingError) -> ApiError {
        match err {
            MappingError::Invalid(message) => ApiError::Invalid(message),
            MappingError::Store(err) => err.into(),
        }
    }
}

/// Saves a mapping (the item code checked with the ERP when it can be asked) and releases the
/// orders waiting on it.
pub async fn save(
    State(mappings): State<Mappings>,
    State(wake): State<Wake>,
    caller: ApiCaller,
    sku: Result<Path<String>, PathRejection>,
    body: Result<Json<SaveBody>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    caller.require(WRITERS).await?;
    let Path(sku) = sku.map_err(invalid)?;
    let Json(body) = body.map_err(invalid)?;
    let saved = mappings
        .save(&sku, &body.item_code, &caller.actor())
        .await?;
    if saved.released.tasks > 0 {
        wake.all();
    }
    let mut answer = mapping_json(&saved.mapping);
    answer["released_tasks"] = json!(saved.released.tasks);
    answer["resolved_exceptions"] = json!(saved.released.exceptions);
    answer["item_code_checked"] = json!(saved.unchecked.is_none());
    Ok(Json(answer))
}

/// Every mapping as CSV (`sku,item_code,updated_at,updated_by`).
pub async fn export(
    State(mappings): State<Mappings>,
    caller: ApiCaller,
) -> Result<Response, ApiError> {
    caller.require(READERS).await?;
    Ok(crate::web::sku_csv::csv_download(
        mappings.export_csv().await?,
    ))
}

/// Imports a CSV body (columns `sku` and `item_code`): 200 with what was applied, or 422 with
/// every rejected row when any row is wrong (then nothing was applied).
pub async fn import(
    State(mappings): State<Mappings>,
    State(wake): State<Wake>,
    caller: ApiCaller,
    body: String,
) -> Result<Response, ApiError> {
    caller.require(WRITERS).await?;
    let report = mappings.import_csv(&body, &caller.actor()).await?;
    if report
        .applied
        .as_ref()
        .is_some_and(|a| a.released_tasks > 0)
    {
        wake.all();
    }
    let rejected: Vec<Value> = report
        .rejected
        .iter()
        .map(|r| json!({ "line": r.line, "sku": r.sku, "reason": r.reason }))
        .collect();
    Ok(match &report.applied {
        Some(a) => Json(json!({
            "rows": report.rows,
            "created": a.created,
            "changed": a.changed,
            "unchanged": a.unchanged,
            "released_tasks": a.released_tasks,
            "resolved_exceptions": a.resolved_exceptions,
            "unchecked": report.unchecked,
            "message": report.summary(),
        }))
        .into_response(),
        None => (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({
                "error": { "code": "rows_rejected", "message": report.summary() },
                "rows": report.rows,
                "rejected": rejected,
            })),
        )
            .into_response(),
    })
}

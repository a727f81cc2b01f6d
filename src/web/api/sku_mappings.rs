//! `GET` and `PUT /api/v1/sku-mappings/{sku}`: a SKU's ERP item code. Saving one releases every
//! order waiting on that SKU.

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path, State};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiCaller, ApiError, READERS, WRITERS, invalid};
use crate::store::{SkuMapping, Store};

/// The longest item code accepted.
const MAX_ITEM_CODE: usize = 64;

/// An ERP item code: non-empty, at most 64 characters, no whitespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ItemCode(String);

impl ItemCode {
    /// Parses an item code, saying what is wrong with a bad one.
    pub fn parse(raw: &str) -> Result<ItemCode, String> {
        if raw.is_empty() {
            Err("item_code must not be empty.".into())
        } else if raw.chars().count() > MAX_ITEM_CODE {
            Err(format!(
                "item_code must be at most {MAX_ITEM_CODE} characters."
            ))
        } else if raw.chars().any(char::is_whitespace) {
            Err("item_code must not contain whitespace.".into())
        } else {
            Ok(ItemCode(raw.to_string()))
        }
    }

    /// The code as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

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
    caller.require(READERS)?;
    let Path(sku) = sku.map_err(invalid)?;
    store
        .sku_mapping(&sku)
        .await?
        .map(|m| Json(mapping_json(&m)))
        .ok_or_else(|| ApiError::NotFound(format!("SKU {sku} has no mapping.")))
}

/// Saves a mapping and releases the orders waiting on it.
pub async fn save(
    State(store): State<Store>,
    caller: ApiCaller,
    sku: Result<Path<String>, PathRejection>,
    body: Result<Json<SaveBody>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    caller.require(WRITERS)?;
    let Path(sku) = sku.map_err(invalid)?;
    let Json(body) = body.map_err(invalid)?;
    let code = ItemCode::parse(&body.item_code).map_err(ApiError::Invalid)?;
    let (mapping, released) = store
        .save_sku_mapping(&sku, code.as_str(), &caller.actor())
        .await?;
    let mut answer = mapping_json(&mapping);
    answer["released_tasks"] = json!(released.tasks);
    answer["resolved_exceptions"] = json!(released.exceptions);
    Ok(Json(answer))
}

//! `GET /api/v1/orders/{store_order_id}`: an order with its state, external id and newest
//! attempts at each destination.

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};

use super::{ApiCaller, ApiError, READERS, invalid};
use crate::store::{OrderDetail, Store};

/// One order, or 404.
pub async fn show(
    State(store): State<Store>,
    caller: ApiCaller,
    id: Result<Path<i64>, PathRejection>,
) -> Result<Json<OrderDetail>, ApiError> {
    caller.require(READERS).await?;
    let Path(store_order_id) = id.map_err(invalid)?;
    store
        .order_detail(store_order_id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("No order with store id {store_order_id}.")))
}

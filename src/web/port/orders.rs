//! The orders' part of the port: the list, one order's page (each destination's state and
//! payload, and its history across systems), and what an operator does to one order.

use app::error::AppError;
use app::model::{OrderDestination, OrderPage, OrderView, PayloadEditRequest, Viewer};

use super::timeline::timeline_entries;
use super::{actor, age, store_error};
use crate::engine::edit::EditError;
use crate::engine::resync::ResyncError;
use crate::store::RetryOutcome;
use crate::web::{AppState, triage};

/// The latest orders, or those a search and a state find, with how long each has waited.
pub(super) async fn recent(
    app: &AppState,
    search: Option<String>,
    state: Option<String>,
) -> Result<Vec<OrderView>, AppError> {
    let search = triage::given(&search);
    let state = triage::given(&state);
    let orders = app
        .store
        .find_orders(search.as_deref(), state.as_deref(), 100)
        .await
        .map_err(store_error)?;
    let now = chrono::Utc::now();
    Ok(orders
        .into_iter()
        .map(|o| OrderView {
            waiting: [o.crm_waiting_since, o.erp_waiting_since]
                .into_iter()
                .flatten()
                .min()
                .map(|since| age(now - since)),
            store_order_id: o.store_order_id,
            name: o.name,
            lifecycle: o.lifecycle.replace('_', " "),
            total: format!("{} {}", o.currency, o.total),
            crm: o.crm_state.unwrap_or_else(|| "none".into()),
            erp: o.erp_state.unwrap_or_else(|| "none".into()),
            updated_at: o.updated_at.format("%Y-%m-%d %H:%M:%S").to_string(),
        })
        .collect())
}

/// One order: each destination's state and the payload it gets (an operator's edit, when
/// there is one for the current version), and its history across systems.
pub(super) async fn page(app: &AppState, store_order_id: i64) -> Result<OrderPage, AppError> {
    let store = &app.store;
    let detail = store
        .order_detail(store_order_id)
        .await
        .map_err(store_error)?
        .ok_or_else(|| AppError::NotFound("No order with that id has reached SyncDesk.".into()))?;
    let (order, _) = store
        .order_snapshot(store_order_id)
        .await
        .map_err(store_error)?
        .ok_or_else(|| AppError::NotFound("No order with that id has reached SyncDesk.".into()))?;
    let previews = crate::engine::preview::payloads(store, &order)
        .await
        .map_err(store_error)?;
    let timeline = store
        .order_timeline(store_order_id)
        .await
        .map_err(store_error)?;
    let edits = store
        .payload_edits(store_order_id)
        .await
        .map_err(store_error)?;
    let pretty = |v: &serde_json::Value| serde_json::to_string_pretty(v).ok();
    let destinations = detail
        .destinations
        .iter()
        .map(|d| {
            let preview = previews.iter().find(|p| p.destination == d.destination);
            // The newest edit for the current version, or the latest one before it, laid onto
            // the payload computed now: what the worker sends (`edit::carry`).
            let edit = edits
                .iter()
                .filter(|e| {
                    e.destination == d.destination
                        && (e.version == detail.version || (e.carries && e.version < detail.version))
                })
                .max_by_key(|e| (e.version, e.id));
            let computed = preview.and_then(|p| p.payload.clone());
            match (edit, computed) {
                (Some(e), Some(mut payload)) => {
                    let dropped = crate::engine::edit::carry(&e.original.0, &e.payload.0, &mut payload);
                    let problems = match serde_json::to_string(&payload).map(|text| {
                        crate::engine::edit::parse(&d.destination, store_order_id, &order.name, &text)
                    }) {
                        Ok(Err(err)) => vec![err.to_string()],
                        _ => Vec::new(),
                    };
                    let when = e.created_at.format("%Y-%m-%d %H:%M:%S");
                    let edited = if e.version == detail.version {
                        format!("by {} at {when} UTC: sent instead of the computed payload for version {}.", e.created_by, e.version)
                    } else if dropped.is_empty() {
                        format!("by {} at {when} UTC for version {}: its changes still stand, as the store has not changed those fields since.", e.created_by, e.version)
                    } else {
                        format!("by {} at {when} UTC for version {}: its changes stand except where the store has changed the field since ({}).", e.created_by, e.version, dropped.join(", "))
                    };
                    OrderDestination {
                        destination: d.destination.clone(),
                        state: d.state.clone(),
                        target_version: d.target_version,
                        synced_version: d.synced_version,
                        external_id: d.external_id.clone(),
                        payload: pretty(&payload),
                        edited: Some(edited),
                        original: preview.and_then(|p| p.payload.as_ref()).and_then(pretty),
                        edit_id: e.id,
                        payload_digest: crate::engine::edit::digest(&payload),
                        problems,
                    }
                }
                _ => OrderDestination {
                    destination: d.destination.clone(),
                    state: d.state.clone(),
                    target_version: d.target_version,
                    synced_version: d.synced_version,
                    external_id: d.external_id.clone(),
                    payload: preview.and_then(|p| p.payload.as_ref()).and_then(pretty),
                    edited: None,
                    original: None,
                    edit_id: 0,
                    payload_digest: preview
                        .and_then(|p| p.payload.as_ref())
                        .map(crate::engine::edit::digest)
                        .unwrap_or_default(),
                    problems: preview.map(|p| p.problems.clone()).unwrap_or_default(),
                },
            }
        })
        .collect();
    Ok(OrderPage {
        store_order_id,
        name: detail.name,
        lifecycle: detail.lifecycle.replace('_', " "),
        total: format!("{} {}", detail.currency, detail.total),
        version: detail.version,
        store_updated_at: detail
            .store_updated_at
            .format("%Y-%m-%d %H:%M:%S")
            .to_string(),
        destinations,
        timeline: timeline_entries(timeline, &edits),
        can_resync: app.shop.is_some(),
    })
}

/// Skips the order's open exception at `destination` (the order is not sent there), with the
/// reason.
pub(super) async fn skip(
    app: &AppState,
    by: &Viewer,
    store_order_id: i64,
    destination: String,
    reason: String,
) -> Result<String, AppError> {
    if destination != "crm" && destination != "erp" {
        return Err(AppError::Invalid("The destination is crm or erp.".into()));
    }
    let scope = crate::store::ExceptionScope {
        order: Some(store_order_id),
        destination: Some(destination.clone()),
        ..Default::default()
    };
    let report = app
        .store
        .triage(
            &scope,
            &crate::store::TriageAction::Skip {
                reason: reason.trim().to_string(),
            },
            false,
            &actor(by),
        )
        .await
        .map_err(store_error)?;
    let place = destination.to_uppercase();
    Ok(if report.changed == 0 && report.in_flight > 0 {
        format!(
            "Not skipped: the order is being sent to the {place} right now. Skip it once this attempt ends, if it still needs action."
        )
    } else if report.changed == 0 {
        format!(
            "Nothing to skip: the order has no open exception at the {place}. Skip is for an order that needs action."
        )
    } else {
        format!(
            "Skipped: the order will not be sent to the {place}, and the reason is on its timeline. \"Send to the {place} again\" undoes it."
        )
    })
}

/// Reads the order's current state from the store and sends it to every destination again.
pub(super) async fn resync(
    app: &AppState,
    by: &Viewer,
    store_order_id: i64,
) -> Result<String, AppError> {
    let resynced =
        crate::engine::resync::resync(&app.store, app.shop.as_ref(), store_order_id, &actor(by))
            .await
            .map_err(|err| match err {
                ResyncError::Store(err) => store_error(err),
                ResyncError::NotInStore(_) => AppError::NotFound(err.to_string()),
                other => AppError::Conflict(other.to_string()),
            })?;
    app.wake.all();
    Ok(resynced.summary())
}

/// Sends an operator's payload to `destination` instead of the computed one, keeping that.
pub(super) async fn edit_payload(
    app: &AppState,
    by: &Viewer,
    edit: PayloadEditRequest,
) -> Result<String, AppError> {
    let seen = crate::engine::edit::SeenOnPage {
        edit: edit.based_on,
        payload: edit.shown.filter(|s| !s.is_empty()),
    };
    let destination = edit.destination;
    let saved = crate::engine::edit::save(
        &app.store,
        edit.store_order_id,
        &destination,
        edit.version,
        &edit.payload,
        &seen,
        &actor(by),
    )
    .await
    .map_err(|err| match err {
        EditError::Invalid(message) => AppError::Invalid(message),
        EditError::Conflict(message) => AppError::Conflict(message),
        EditError::NotFound => {
            AppError::NotFound("No order with that id has reached SyncDesk.".into())
        }
        EditError::Store(err) => store_error(err),
    })?;
    app.wake.all();
    Ok(saved.summary(&destination))
}

/// Sends the order to `destination` again, unless it has the current state or is in flight.
pub(super) async fn retry(
    app: &AppState,
    by: &Viewer,
    store_order_id: i64,
    destination: String,
) -> Result<String, AppError> {
    if destination != "crm" && destination != "erp" {
        return Err(AppError::Invalid("The destination is crm or erp.".into()));
    }
    let outcome = app
        .store
        .retry_order(store_order_id, &destination, true, &actor(by))
        .await
        .map_err(store_error)?;
    let place = destination.to_uppercase();
    Ok(match outcome {
        RetryOutcome::Queued => {
            app.wake.all();
            format!("Queued: the order goes to the {place} again now.")
        }
        RetryOutcome::AlreadyApplied => format!(
            "Already applied: the {place} has this order's current state, so nothing was sent."
        ),
        RetryOutcome::InFlight => {
            format!("In flight: the order is being delivered to the {place} right now.")
        }
        // Not reached: this send is explicit, so it undoes a skip.
        RetryOutcome::LeftSkipped => {
            format!("Skipped: the order was skipped for the {place}, so nothing was sent.")
        }
    })
}

//! The SKU mappings' part of the port: the SKUs orders wait on, the mappings, saving one or a
//! CSV of them (which releases the orders waiting), and their history.

use app::error::AppError;
use app::model::{
    AuditRow, ImportOutcome, MappingSaved, RejectedMapping, SkuMappingView, UnmappedSkuView, Viewer,
};

use super::{actor, age, audit_row, mapping_error, store_error};
use crate::store::AuditFilter;
use crate::web::{AppState, triage};

/// The SKUs orders are waiting on, with how many and since when.
pub(super) async fn unmapped(app: &AppState) -> Result<Vec<UnmappedSkuView>, AppError> {
    let now = chrono::Utc::now();
    let rows = app.store.unmapped_skus(200).await.map_err(store_error)?;
    Ok(rows
        .into_iter()
        .map(|u| UnmappedSkuView {
            sku: u.sku,
            orders: u.orders,
            oldest_age: age(now - u.oldest),
        })
        .collect())
}

/// The mappings, or those a search finds.
pub(super) async fn mappings(
    app: &AppState,
    search: Option<String>,
) -> Result<Vec<SkuMappingView>, AppError> {
    let search = triage::given(&search);
    let rows = app
        .store
        .sku_mappings(search.as_deref(), 500)
        .await
        .map_err(store_error)?;
    Ok(rows
        .into_iter()
        .map(|m| SkuMappingView {
            sku: m.sku,
            item_code: m.item_code,
            updated_at: m.updated_at.format("%Y-%m-%d %H:%M").to_string(),
            updated_by: m.updated_by,
        })
        .collect())
}

/// Saves one mapping and releases the orders waiting on its SKU.
pub(super) async fn save(
    app: &AppState,
    by: &Viewer,
    sku: String,
    item_code: String,
) -> Result<MappingSaved, AppError> {
    let saved = app
        .mappings
        .save(&sku, &item_code, &actor(by))
        .await
        .map_err(mapping_error)?;
    if saved.released.tasks > 0 {
        app.wake.all();
    }
    // The orders the list showed waiting are those with an open exception on the SKU; one
    // whose task a newer store state had already put back in the queue is released too, though
    // its task needed no release.
    let orders = match saved.released.tasks.max(saved.released.exceptions) {
        0 => "no order was waiting on it".to_string(),
        1 => "1 order released and on its way to the ERP".to_string(),
        n => format!("{n} orders released and on their way to the ERP"),
    };
    let mut summary = format!(
        "SKU {} now maps to {}: {orders}.",
        saved.mapping.sku, saved.mapping.item_code
    );
    if let Some(why) = &saved.unchecked {
        summary.push(' ');
        summary.push_str(why);
    }
    Ok(MappingSaved {
        summary,
        sku: saved.mapping.sku,
        item_code: saved.mapping.item_code,
        released: saved.released.tasks,
    })
}

/// Imports a CSV of mappings, all or nothing, naming the rows refused.
pub(super) async fn import(
    app: &AppState,
    by: &Viewer,
    csv: String,
) -> Result<ImportOutcome, AppError> {
    let report = app
        .mappings
        .import_csv(&csv, &actor(by))
        .await
        .map_err(mapping_error)?;
    if report
        .applied
        .as_ref()
        .is_some_and(|a| a.released_tasks > 0)
    {
        app.wake.all();
    }
    Ok(ImportOutcome {
        summary: report.summary(),
        applied: report.applied.is_some(),
        rejected: report
            .rejected
            .into_iter()
            .map(|r| RejectedMapping {
                line: r.line,
                sku: r.sku,
                reason: r.reason,
            })
            .collect(),
    })
}

/// Deletes one mapping.
pub(super) async fn delete(app: &AppState, by: &Viewer, sku: String) -> Result<String, AppError> {
    let sku = sku.trim().to_string();
    app.store
        .delete_sku_mapping(&sku, &actor(by))
        .await
        .map_err(store_error)?;
    Ok(format!(
        "Deleted the mapping of SKU {sku}. A new order with it will wait for a mapping."
    ))
}

/// The latest changes to the mappings, from the audit log.
pub(super) async fn history(app: &AppState) -> Result<Vec<AuditRow>, AppError> {
    let filter = AuditFilter {
        action_prefix: Some("sku_mapping.".into()),
        actor_contains: None,
        before_id: None,
        limit: 50,
    };
    let rows = app
        .store
        .audit_entries(&filter)
        .await
        .map_err(store_error)?;
    Ok(rows.into_iter().map(audit_row).collect())
}

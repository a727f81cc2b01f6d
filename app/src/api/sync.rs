use leptos::prelude::*;
use leptos::server_fn::codec::Json;

use crate::error::AppError;
#[cfg(feature = "ssr")]
use crate::model::Role;
use crate::model::{
    Assignable, AuditRow, ExceptionGroupView, ExceptionPage, ExceptionQuery, ImportOutcome,
    MappingSaved, OrderPage, OrderView, SkuMappingView, TriageOutcome, TriageRequest, TriageTarget,
    UnmappedSkuView,
};

/// Who may read the exception queue.
#[cfg(feature = "ssr")]
const QUEUE_READERS: &[Role] = &[Role::Operator, Role::Manager];

/// Exceptions matching `query` grouped by cause, biggest group first or (`by_age`) the one
/// waiting longest first (operators; managers read).
#[server(prefix = "/rpc", endpoint = "exceptions/groups", input = Json)]
pub async fn exception_groups(
    query: ExceptionQuery,
    by_age: bool,
) -> Result<Vec<ExceptionGroupView>, AppError> {
    use crate::port::{port, respond};
    respond(
        async {
            let port = port()?;
            let by = port
                .authorize(QUEUE_READERS, "read the exception queue")
                .await?;
            port.exception_groups(&by, query, by_age).await
        }
        .await,
    )
}

/// A page of exceptions matching `query` (operators; managers read).
#[server(prefix = "/rpc", endpoint = "exceptions/page", input = Json)]
pub async fn list_exceptions(
    query: ExceptionQuery,
    before: Option<i64>,
    oldest_first: bool,
) -> Result<ExceptionPage, AppError> {
    use crate::port::{port, respond};
    respond(
        async {
            let port = port()?;
            let by = port
                .authorize(QUEUE_READERS, "read the exception queue")
                .await?;
            port.exception_page(&by, query, before, oldest_first).await
        }
        .await,
    )
}

/// Retries, skips, resolves, assigns or snoozes exceptions; with `dry_run`, only counts what
/// it would do (operators only).
#[server(prefix = "/rpc", endpoint = "exceptions/triage", input = Json)]
pub async fn triage(
    target: TriageTarget,
    request: TriageRequest,
    dry_run: bool,
) -> Result<TriageOutcome, AppError> {
    use crate::port::{port, respond};
    respond(
        async {
            let port = port()?;
            let by = port
                .authorize(&[Role::Operator], "act on exceptions")
                .await?;
            port.triage(&by, target, request, dry_run).await
        }
        .await,
    )
}

/// People exceptions can be assigned to (operators).
#[server(prefix = "/rpc", endpoint = "exceptions/assignables")]
pub async fn assignables() -> Result<Vec<Assignable>, AppError> {
    use crate::port::{port, respond};
    respond(
        async {
            let port = port()?;
            let by = port
                .authorize(&[Role::Operator], "assign exceptions")
                .await?;
            port.assignables(&by).await
        }
        .await,
    )
}

/// The most recently changed orders with each destination's state, or those matching `q`
/// (order number, email, SKU) (operators, managers).
#[server(prefix = "/rpc", endpoint = "orders/recent")]
pub async fn recent_orders(
    #[server(default)] q: Option<String>,
    #[server(default)] state: Option<String>,
) -> Result<Vec<OrderView>, AppError> {
    use crate::port::{port, respond};
    respond(
        async {
            let port = port()?;
            let by = port
                .authorize(&[Role::Operator, Role::Manager], "read orders")
                .await?;
            port.recent_orders(&by, q, state).await
        }
        .await,
    )
}

/// One order: its state and payload at each destination, and its history (operators,
/// managers).
#[server(prefix = "/rpc", endpoint = "orders/detail")]
pub async fn order_detail(store_order_id: i64) -> Result<OrderPage, AppError> {
    use crate::port::{port, respond};
    respond(
        async {
            let port = port()?;
            let by = port
                .authorize(&[Role::Operator, Role::Manager], "read orders")
                .await?;
            port.order_page(&by, store_order_id).await
        }
        .await,
    )
}

/// Sends the order to one destination again now (operators).
#[server(prefix = "/rpc", endpoint = "orders/retry")]
pub async fn retry_order(store_order_id: i64, destination: String) -> Result<String, AppError> {
    use crate::port::{port, respond};
    respond(
        async {
            let port = port()?;
            let by = port.authorize(&[Role::Operator], "retry orders").await?;
            port.retry_order(&by, store_order_id, destination).await
        }
        .await,
    )
}

/// Skips the order at one destination, with a reason: its open exceptions there close as skipped
/// and it is not sent there until someone sends it again (operators).
#[server(prefix = "/rpc", endpoint = "orders/skip")]
pub async fn skip_order(
    store_order_id: i64,
    destination: String,
    reason: String,
) -> Result<String, AppError> {
    use crate::port::{port, respond};
    respond(
        async {
            let port = port()?;
            let by = port.authorize(&[Role::Operator], "skip orders").await?;
            port.skip_order(&by, store_order_id, destination, reason)
                .await
        }
        .await,
    )
}

/// Reads the order's current state from the store (Admin API) and sends it to every destination
/// again (operators).
#[server(prefix = "/rpc", endpoint = "orders/resync")]
pub async fn resync_order(store_order_id: i64) -> Result<String, AppError> {
    use crate::port::{port, respond};
    respond(
        async {
            let port = port()?;
            let by = port.authorize(&[Role::Operator], "resync orders").await?;
            port.resync_order(&by, store_order_id).await
        }
        .await,
    )
}

/// Saves an edit of what one destination gets for the order's current version and sends it now;
/// the computed payload is kept and the change audited (operators).
#[server(prefix = "/rpc", endpoint = "orders/edit")]
pub async fn edit_payload(
    store_order_id: i64,
    destination: String,
    version: i64,
    payload: String,
    /// The edit the page showed in force (0: none), so that two people editing at once do not
    /// undo each other's change unseen. Without it, no check.
    #[server(default)]
    based_on: Option<i64>,
    /// The fingerprint of the payload the page showed: a payload changed since (by the store
    /// or a SKU mapping) is not overwritten with what the person saw. Without it, no check.
    #[server(default)]
    shown: Option<String>,
) -> Result<String, AppError> {
    use crate::port::{port, respond};
    respond(
        async {
            let port = port()?;
            let by = port.authorize(&[Role::Operator], "edit payloads").await?;
            let edit = crate::model::PayloadEditRequest {
                store_order_id,
                destination,
                version,
                payload,
                based_on,
                shown,
            };
            port.edit_payload(&by, edit).await
        }
        .await,
    )
}

/// SKUs without an ERP item code, ranked by the orders they hold back (operators).
#[server(prefix = "/rpc", endpoint = "sku/unmapped")]
pub async fn unmapped_skus() -> Result<Vec<UnmappedSkuView>, AppError> {
    use crate::port::{port, respond};
    respond(
        async {
            let port = port()?;
            let by = port
                .authorize(&[Role::Operator], "read SKU mappings")
                .await?;
            port.unmapped_skus(&by).await
        }
        .await,
    )
}

/// Mappings whose SKU or item code starts with `q` (operators).
#[server(prefix = "/rpc", endpoint = "sku/list")]
pub async fn list_sku_mappings(
    #[server(default)] q: Option<String>,
) -> Result<Vec<SkuMappingView>, AppError> {
    use crate::port::{port, respond};
    respond(
        async {
            let port = port()?;
            let by = port
                .authorize(&[Role::Operator], "read SKU mappings")
                .await?;
            port.sku_mappings(&by, q).await
        }
        .await,
    )
}

/// Maps a SKU to an ERP item code; every order waiting on it is released (operators).
#[server(prefix = "/rpc", endpoint = "sku/save")]
pub async fn save_sku_mapping(sku: String, item_code: String) -> Result<MappingSaved, AppError> {
    use crate::port::{port, respond};
    respond(
        async {
            let port = port()?;
            let by = port
                .authorize(&[Role::Operator], "change SKU mappings")
                .await?;
            port.save_sku_mapping(&by, sku, item_code).await
        }
        .await,
    )
}

/// The largest CSV file accepted for import, in bytes.
pub const MAX_IMPORT_BYTES: usize = 2 * 1024 * 1024;

/// Imports a CSV file of mappings (columns `sku` and `item_code`), all or nothing (operators).
#[server(prefix = "/rpc", endpoint = "sku/import")]
pub async fn import_sku_mappings(csv: String) -> Result<ImportOutcome, AppError> {
    use crate::port::{port, respond};
    respond(
        async {
            let port = port()?;
            let by = port
                .authorize(&[Role::Operator], "change SKU mappings")
                .await?;
            if csv.len() > MAX_IMPORT_BYTES {
                return Err(AppError::Invalid(
                    "The file is larger than 2 MB; split it into smaller files.".into(),
                ));
            }
            port.import_sku_mappings(&by, csv).await
        }
        .await,
    )
}

/// Deletes a SKU's mapping; refused, with the reason, while open orders need it (operators).
#[server(prefix = "/rpc", endpoint = "sku/delete")]
pub async fn delete_sku_mapping(sku: String) -> Result<String, AppError> {
    use crate::port::{port, respond};
    respond(
        async {
            let port = port()?;
            let by = port
                .authorize(&[Role::Operator], "change SKU mappings")
                .await?;
            port.delete_sku_mapping(&by, sku).await
        }
        .await,
    )
}

/// The latest changes to SKU mappings: who mapped, changed or deleted what (operators).
#[server(prefix = "/rpc", endpoint = "sku/history")]
pub async fn sku_history() -> Result<Vec<AuditRow>, AppError> {
    use crate::port::{port, respond};
    respond(
        async {
            let port = port()?;
            let by = port
                .authorize(&[Role::Operator], "read SKU mappings")
                .await?;
            port.sku_history(&by).await
        }
        .await,
    )
}

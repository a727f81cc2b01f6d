//! The narrow interface server functions call. The server crate implements it (it owns the
//! engine, the store and the session) and provides it as context on every request, so this crate
//! never depends on the server.

use std::sync::Arc;

use crate::error::AppError;
use crate::model::{
    Assignable, AuditPage, AuditQuery, AuditRow, ExceptionGroupView, ExceptionPage, ExceptionQuery,
    ImportOutcome, MappingSaved, OrderPage, OrderView, PayloadEditRequest, Role, SkuMappingView,
    TriageOutcome, TriageRequest, TriageTarget, UnmappedSkuView, UserRow, Viewer,
};

/// Everything the UI's server functions need from the server, already authorised where noted.
#[async_trait::async_trait]
pub trait Port: Send + Sync {
    /// The signed-in person, or `None`.
    async fn viewer(&self) -> Result<Option<Viewer>, AppError>;
    /// The signed-in person if they hold one of `allowed`; otherwise `Unauthenticated`, or
    /// `Forbidden` (and the refused attempt, named by `what`, is written to the audit log).
    async fn authorize(&self, allowed: &[Role], what: &str) -> Result<Viewer, AppError>;
    /// Checks the credentials (throttled), rotates the session id and signs in.
    async fn sign_in(&self, email: String, password: String) -> Result<Viewer, AppError>;
    /// Ends the session.
    async fn sign_out(&self) -> Result<(), AppError>;
    /// All user accounts.
    async fn list_users(&self, by: &Viewer) -> Result<Vec<UserRow>, AppError>;
    /// Creates an account.
    async fn add_user(
        &self,
        by: &Viewer,
        email: String,
        display_name: String,
        password: String,
        roles: Vec<Role>,
    ) -> Result<UserRow, AppError>;
    /// Replaces an account's roles.
    async fn set_user_roles(
        &self,
        by: &Viewer,
        user_id: i64,
        roles: Vec<Role>,
    ) -> Result<UserRow, AppError>;
    /// Deactivates or reactivates an account.
    async fn set_user_active(
        &self,
        by: &Viewer,
        user_id: i64,
        active: bool,
    ) -> Result<UserRow, AppError>;
    /// Starts deliveries again to a destination paused for rejected credentials (`crm` or
    /// `erp`); whether it was paused.
    async fn resume_destination(&self, by: &Viewer, destination: String) -> Result<bool, AppError>;
    /// A page of the audit log.
    async fn audit_log(&self, by: &Viewer, query: AuditQuery) -> Result<AuditPage, AppError>;
    /// Exceptions matching `query` grouped by cause, biggest first (or oldest first).
    async fn exception_groups(
        &self,
        by: &Viewer,
        query: ExceptionQuery,
        oldest_first: bool,
    ) -> Result<Vec<ExceptionGroupView>, AppError>;
    /// A page of exceptions matching `query`, newest first (or oldest first).
    async fn exception_page(
        &self,
        by: &Viewer,
        query: ExceptionQuery,
        before: Option<i64>,
        oldest_first: bool,
    ) -> Result<ExceptionPage, AppError>;
    /// How many exceptions match `query`.
    async fn count_exceptions(&self, by: &Viewer, query: ExceptionQuery) -> Result<i64, AppError>;
    /// Applies (or, with `dry_run`, counts) a triage action.
    async fn triage(
        &self,
        by: &Viewer,
        target: TriageTarget,
        request: TriageRequest,
        dry_run: bool,
    ) -> Result<TriageOutcome, AppError>;
    /// SKUs without an ERP item code, ranked by the orders they hold back.
    async fn unmapped_skus(&self, by: &Viewer) -> Result<Vec<UnmappedSkuView>, AppError>;
    /// Mappings whose SKU or item code starts with `search`.
    async fn sku_mappings(
        &self,
        by: &Viewer,
        search: Option<String>,
    ) -> Result<Vec<SkuMappingView>, AppError>;
    /// Maps a SKU and releases every order waiting on it.
    async fn save_sku_mapping(
        &self,
        by: &Viewer,
        sku: String,
        item_code: String,
    ) -> Result<MappingSaved, AppError>;
    /// Imports a CSV file of mappings, all or nothing: what was applied, or every bad row.
    async fn import_sku_mappings(
        &self,
        by: &Viewer,
        csv: String,
    ) -> Result<ImportOutcome, AppError>;
    /// Deletes a mapping (refused while open orders need it); the outcome as a sentence.
    async fn delete_sku_mapping(&self, by: &Viewer, sku: String) -> Result<String, AppError>;
    /// The latest changes to SKU mappings, newest first.
    async fn sku_history(&self, by: &Viewer) -> Result<Vec<AuditRow>, AppError>;
    /// People exceptions can be assigned to (active operators).
    async fn assignables(&self, by: &Viewer) -> Result<Vec<Assignable>, AppError>;
    /// The most recently changed orders, or those matching `search`.
    async fn recent_orders(
        &self,
        by: &Viewer,
        search: Option<String>,
        state: Option<String>,
    ) -> Result<Vec<OrderView>, AppError>;
    /// Skips the order at `destination` (its open exceptions close as skipped, with the
    /// reason); the outcome as a sentence.
    async fn skip_order(
        &self,
        by: &Viewer,
        store_order_id: i64,
        destination: String,
        reason: String,
    ) -> Result<String, AppError>;
    /// One order's page.
    async fn order_page(&self, by: &Viewer, store_order_id: i64) -> Result<OrderPage, AppError>;
    /// Reads the order's current state from the store and sends it to every destination again;
    /// the outcome as a sentence.
    async fn resync_order(&self, by: &Viewer, store_order_id: i64) -> Result<String, AppError>;
    /// Saves an edit of what `destination` gets for the order at `version` (the version the
    /// operator saw) and queues it; the outcome as a sentence.
    async fn edit_payload(&self, by: &Viewer, edit: PayloadEditRequest)
    -> Result<String, AppError>;
    /// Sends the order to `destination` again now; the outcome as a sentence.
    async fn retry_order(
        &self,
        by: &Viewer,
        store_order_id: i64,
        destination: String,
    ) -> Result<String, AppError>;
}

/// The port provided for this request.
pub fn port() -> Result<Arc<dyn Port>, AppError> {
    leptos::prelude::use_context::<Arc<dyn Port>>()
        .ok_or_else(|| AppError::Internal("no-port".into()))
}

/// Sets the response status from the outcome, so a refused call answers 401/403/422… rather
/// than a generic 500, and hands the outcome back. Only when the request is the server
/// function's own call (`/rpc/…`): called while a page renders, its status is the page's to
/// decide. (Under load a page's render was seen to find a concurrent request's response here —
/// a manager's refused sub-call turned a static file into a 403 — so the path is checked too.)
pub fn respond<T>(outcome: Result<T, AppError>) -> Result<T, AppError> {
    if let Err(err) = &outcome
        && leptos::prelude::use_context::<http::request::Parts>()
            .is_some_and(|parts| parts.uri.path().starts_with("/rpc/"))
        && let Some(res) = leptos::prelude::use_context::<leptos_axum::ResponseOptions>()
    {
        res.set_status(err.status());
    }
    outcome
}

//! The narrow interface server functions call. The server crate implements it (it owns the
//! engine, the store and the session) and provides it as context on every request, so this crate
//! never depends on the server.

use std::sync::Arc;

use crate::error::AppError;
use crate::model::{AuditPage, AuditQuery, ExceptionGroupView, OrderView, Role, UserRow, Viewer};

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
    /// A page of the audit log.
    async fn audit_log(&self, by: &Viewer, query: AuditQuery) -> Result<AuditPage, AppError>;
    /// Open exceptions grouped by cause.
    async fn exception_groups(&self, by: &Viewer) -> Result<Vec<ExceptionGroupView>, AppError>;
    /// The most recently changed orders.
    async fn recent_orders(&self, by: &Viewer) -> Result<Vec<OrderView>, AppError>;
}

/// The port provided for this request.
pub fn port() -> Result<Arc<dyn Port>, AppError> {
    leptos::prelude::use_context::<Arc<dyn Port>>()
        .ok_or_else(|| AppError::Internal("no-port".into()))
}

/// Sets the response status from the outcome, so a refused call answers 401/403/422… rather
/// than a generic 500, and hands the outcome back.
pub fn respond<T>(outcome: Result<T, AppError>) -> Result<T, AppError> {
    if let Err(err) = &outcome {
        if let Some(res) = leptos::prelude::use_context::<leptos_axum::ResponseOptions>() {
            res.set_status(err.status());
        }
    }
    outcome
}

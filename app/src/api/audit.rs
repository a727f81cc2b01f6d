use leptos::prelude::*;

use crate::error::AppError;
#[cfg(feature = "ssr")]
use crate::model::Role;
use crate::model::{AuditPage, AuditQuery};

/// A page of the audit log, newest first, optionally filtered (admin).
#[server(prefix = "/rpc", endpoint = "audit/list")]
pub async fn list_audit(query: AuditQuery) -> Result<AuditPage, AppError> {
    use crate::port::{port, respond};
    respond(
        async {
            let port = port()?;
            let by = port.authorize(&[Role::Admin], "read the audit log").await?;
            port.audit_log(&by, query).await
        }
        .await,
    )
}

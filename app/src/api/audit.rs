use leptos::prelude::*;

use crate::error::AppError;
#[cfg(feature = "ssr")]
use crate::model::Role;
use crate::model::{AuditPage, AuditQuery};

/// A page of the audit log, newest first, optionally filtered (admin).
///
/// `query` defaults when absent: an unfiltered query has only `None` fields, which the URL
/// encoding leaves out entirely, so the client sends an empty body.
#[server(prefix = "/rpc", endpoint = "audit/list")]
pub async fn list_audit(#[server(default)] query: AuditQuery) -> Result<AuditPage, AppError> {
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

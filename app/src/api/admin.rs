use leptos::prelude::*;

use crate::error::AppError;
#[cfg(feature = "ssr")]
use crate::model::Role;
use crate::model::UserRow;

/// Every user account (admin).
#[server(prefix = "/rpc", endpoint = "admin/users")]
pub async fn list_users() -> Result<Vec<UserRow>, AppError> {
    use crate::port::{port, respond};
    respond(
        async {
            let port = port()?;
            let by = port.authorize(&[Role::Admin], "list users").await?;
            port.list_users(&by).await
        }
        .await,
    )
}

/// Creates a user account with the ticked roles (admin).
#[server(prefix = "/rpc", endpoint = "admin/users/add")]
pub async fn add_user(
    email: String,
    display_name: String,
    password: String,
    operator: Option<String>,
    steward: Option<String>,
    manager: Option<String>,
    admin: Option<String>,
) -> Result<UserRow, AppError> {
    use crate::port::{port, respond};
    let roles = super::ticked_roles(operator, steward, manager, admin);
    respond(
        async {
            let port = port()?;
            let by = port.authorize(&[Role::Admin], "add a user").await?;
            port.add_user(&by, email, display_name, password, roles)
                .await
        }
        .await,
    )
}

/// Replaces a user's roles with the ticked ones (admin).
#[server(prefix = "/rpc", endpoint = "admin/users/roles")]
pub async fn set_user_roles(
    user_id: i64,
    operator: Option<String>,
    steward: Option<String>,
    manager: Option<String>,
    admin: Option<String>,
) -> Result<UserRow, AppError> {
    use crate::port::{port, respond};
    let roles = super::ticked_roles(operator, steward, manager, admin);
    respond(
        async {
            let port = port()?;
            let by = port
                .authorize(&[Role::Admin], "change a user's roles")
                .await?;
            port.set_user_roles(&by, user_id, roles).await
        }
        .await,
    )
}

/// Deactivates (`active = false`) or reactivates a user (admin).
#[server(prefix = "/rpc", endpoint = "admin/users/active")]
pub async fn set_user_active(user_id: i64, active: bool) -> Result<UserRow, AppError> {
    use crate::port::{port, respond};
    respond(
        async {
            let port = port()?;
            let by = port
                .authorize(&[Role::Admin], "deactivate or reactivate a user")
                .await?;
            port.set_user_active(&by, user_id, active).await
        }
        .await,
    )
}

/// Starts deliveries again to a destination paused because it rejected SyncDesk's credentials,
/// once they were put right on its side (admin); whether it was paused.
#[server(prefix = "/rpc", endpoint = "admin/destinations/resume")]
pub async fn resume_destination(destination: String) -> Result<bool, AppError> {
    use crate::port::{port, respond};
    respond(
        async {
            let port = port()?;
            let by = port
                .authorize(&[Role::Admin], "resume a destination")
                .await?;
            port.resume_destination(&by, destination).await
        }
        .await,
    )
}

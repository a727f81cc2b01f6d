use leptos::prelude::*;

use crate::error::AppError;
#[cfg(feature = "ssr")]
use crate::model::Role;
use crate::model::{ExceptionGroupView, OrderView};

/// Open exceptions grouped by cause (operators; managers read).
#[server(prefix = "/rpc", endpoint = "exceptions/groups")]
pub async fn exception_groups() -> Result<Vec<ExceptionGroupView>, AppError> {
    use crate::port::{port, respond};
    respond(
        async {
            let port = port()?;
            let by = port
                .authorize(&[Role::Operator, Role::Manager], "read the exception queue")
                .await?;
            port.exception_groups(&by).await
        }
        .await,
    )
}

/// The most recently changed orders with each destination's state (operators, managers).
#[server(prefix = "/rpc", endpoint = "orders/recent")]
pub async fn recent_orders() -> Result<Vec<OrderView>, AppError> {
    use crate::port::{port, respond};
    respond(
        async {
            let port = port()?;
            let by = port
                .authorize(&[Role::Operator, Role::Manager], "read orders")
                .await?;
            port.recent_orders(&by).await
        }
        .await,
    )
}

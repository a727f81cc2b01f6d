//! Server functions: the UI's calls to the server. Each one is thin — check the session and
//! role through the port, make one call, map the error to a status — and answers at a stable
//! path under `/rpc/` so scripts and tests can call it directly.

mod admin;
mod audit;
mod session;
mod sync;

pub use admin::*;
pub use audit::*;
pub use session::*;
pub use sync::*;

#[cfg(feature = "ssr")]
use crate::model::Role;

/// The roles ticked in a form's four role checkboxes (an unticked box sends nothing).
#[cfg(feature = "ssr")]
pub(crate) fn ticked_roles(
    operator: Option<String>,
    steward: Option<String>,
    manager: Option<String>,
    admin: Option<String>,
) -> Vec<Role> {
    [
        (operator, Role::Operator),
        (steward, Role::Steward),
        (manager, Role::Manager),
        (admin, Role::Admin),
    ]
    .into_iter()
    .filter_map(|(ticked, role)| ticked.map(|_| role))
    .collect()
}

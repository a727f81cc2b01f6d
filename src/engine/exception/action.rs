//! The actions a [`Problem`](super::Problem) can suggest (button labels).

/// Save an ERP item code for the SKU.
pub const MAP_SKU: &str = "Map SKU";
/// Correct the address SyncDesk sends.
pub const EDIT_ADDRESS: &str = "Edit address";
/// The data is wrong at the source: fix it in the store, then retry.
pub const FIX_IN_STORE: &str = "Fix in store, then retry";
/// Renew the destination's credentials.
pub const RENEW_CREDENTIALS: &str = "Renew credentials";
/// Change what is sent, or skip the order for this destination.
pub const EDIT_OR_SKIP: &str = "Edit / skip";
/// Try again now, or skip the order for this destination.
pub const RETRY_OR_SKIP: &str = "Retry / skip";
/// Read the order's current state through the store's Admin API and send it.
pub const RESYNC_FROM_STORE: &str = "Resync from the store";
/// Not even the order is known: find it in the store, resync it, mark the exception done.
pub const LOOK_UP_IN_STORE: &str = "Look it up in the store";
/// Transient problems: the engine retries by itself.
pub const NONE: &str = "None needed";

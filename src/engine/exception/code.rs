//! The machine codes a [`Problem`](super::Problem) can carry.

/// A store SKU has no ERP item code (or one the ERP does not know).
pub const MISSING_SKU_MAPPING: &str = "missing_sku_mapping";
/// An order line has no SKU at all (a custom item), so no mapping can resolve it.
pub const LINE_WITHOUT_SKU: &str = "line_without_sku";
/// A value is longer than the destination accepts.
pub const FIELD_TOO_LONG: &str = "field_too_long";
/// A value the destination requires is absent.
pub const MISSING_FIELD: &str = "missing_field";
/// A value is present but not in a form the destination accepts.
pub const INVALID_FIELD: &str = "invalid_field";
/// The destination refused our credentials.
pub const AUTH_EXPIRED: &str = "auth_expired";
/// The destination (or our own limiter) asked us to slow down.
pub const RATE_LIMITED: &str = "rate_limited";
/// The destination did not answer, or answered with a server error.
pub const DESTINATION_DOWN: &str = "destination_down";
/// The destination refused the content for a reason of its own.
pub const REJECTED: &str = "rejected";
/// Retries ran out.
pub const DEAD_LETTER: &str = "dead_letter";
/// The stored order could not be read back.
pub const UNREADABLE_ORDER: &str = "unreadable_order";
/// The store sent an order's state SyncDesk cannot read (an exception of the store's).
pub const UNREADABLE_WEBHOOK: &str = "unreadable_webhook";

/// Every code, for reports that show each one even when nothing carries it.
pub const ALL: [&str; 12] = [
    MISSING_SKU_MAPPING,
    LINE_WITHOUT_SKU,
    FIELD_TOO_LONG,
    MISSING_FIELD,
    INVALID_FIELD,
    AUTH_EXPIRED,
    RATE_LIMITED,
    DESTINATION_DOWN,
    REJECTED,
    DEAD_LETTER,
    UNREADABLE_ORDER,
    UNREADABLE_WEBHOOK,
];

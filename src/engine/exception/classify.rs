//! Connector errors, classified into problems.

use chrono::{DateTime, Utc};

use super::{Destination, Problem};
use crate::connectors::{DeliveryError, TransientKind};

/// Classifies a connector error for `order_name` at `destination`. `attempt` is the attempt
/// that just failed (1 for the first); a transient error on the last allowed attempt
/// (`attempt >= max_attempts`) is a dead letter. `next_retry_at` is when the engine will try
/// again.
///
/// - transient → `rate_limited` or `destination_down`;
/// - auth → `auth_expired` (`auth:<dest>`);
/// - rejected → `field_too_long`, `missing_field`, `missing_sku_mapping` (for `unknown_item`)
///   or `rejected`, quoting the destination where its words add something.
///
/// The ERP names an unknown item by payload line, not by store SKU; a caller that knows the
/// SKU behind the line (see [`crate::engine::map::sku_of_erp_field`]) should prefer
/// [`Problem::unknown_item`] with it, so that saving the SKU's mapping releases the order.
pub fn from_delivery_error(
    destination: Destination,
    order_name: &str,
    error: &DeliveryError,
    attempt: i64,
    max_attempts: i64,
    next_retry_at: Option<DateTime<Utc>>,
) -> Problem {
    match error {
        DeliveryError::Transient { .. } if attempt >= max_attempts => {
            Problem::dead_letter(destination, order_name, attempt, None, &error.to_string())
        }
        DeliveryError::Transient {
            kind: TransientKind::RateLimited { retry_after, .. },
            ..
        } => Problem::rate_limited(destination, *retry_after, next_retry_at),
        DeliveryError::Transient { message, .. } => {
            Problem::destination_down(destination, message, attempt, max_attempts, next_retry_at)
        }
        DeliveryError::Auth { status, .. } => Problem::auth_expired(destination, *status),
        DeliveryError::Rejected {
            code,
            field,
            message,
            max,
            ..
        } => match (code.as_str(), field.as_deref()) {
            ("field_too_long", Some(field)) => {
                Problem::too_long_at_destination(destination, order_name, field, *max, message)
            }
            ("missing_field", Some(field)) => {
                Problem::missing_field(destination, order_name, field)
            }
            ("unknown_item", field) => Problem::unknown_item(order_name, None, field, message),
            (code, field) => Problem::rejected(destination, order_name, code, field, message),
        },
    }
}

//! Refunds: money (and possibly items) given back on an order.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::money::Money;

/// Units of one order line given back in a refund.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundLine {
    /// The order line (its `line_id`) the units belong to.
    pub line_item_id: i64,
    /// How many units.
    pub quantity: u32,
    /// Their value before tax.
    pub subtotal: Money,
    /// The tax given back on them.
    pub total_tax: Money,
}

/// A refund on an order (refunds/create, and each entry of an order's `refunds`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refund {
    /// The store's refund id.
    pub refund_id: i64,
    /// The order it belongs to.
    pub order_id: i64,
    /// When the refund was made.
    pub created_at: DateTime<Utc>,
    /// The items given back; empty for a money-only refund.
    pub lines: Vec<RefundLine>,
    /// Money actually returned to the customer: the sum of successful refund transactions
    /// (zero when only items were restocked).
    pub amount: Money,
}

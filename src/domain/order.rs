//! The canonical order: the store's order, parsed once, in the shape every destination is
//! mapped from. It is versioned by the store's `updated_at`, and stored by the engine as JSON.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::address::Address;
use super::customer::{CustomerRef, NormalizedEmail};
use super::money::{Currency, Money, MoneyError};
use super::refund::Refund;
use super::sku::Sku;

/// Where the money for an order stands, as the store reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinancialStatus {
    /// Payment not yet taken (e.g. bank transfer, cash on delivery).
    Pending,
    /// Card authorised, not yet captured.
    Authorized,
    /// Part of the total has been paid.
    PartiallyPaid,
    /// Paid in full.
    Paid,
    /// Some of the payment was given back.
    PartiallyRefunded,
    /// All of the payment was given back.
    Refunded,
    /// The authorisation was cancelled before capture.
    Voided,
    /// The authorisation lapsed before it was captured.
    Expired,
}

impl FinancialStatus {
    /// Every status, for error messages and exhaustive tests.
    pub const ALL: [FinancialStatus; 8] = [
        FinancialStatus::Pending,
        FinancialStatus::Authorized,
        FinancialStatus::PartiallyPaid,
        FinancialStatus::Paid,
        FinancialStatus::PartiallyRefunded,
        FinancialStatus::Refunded,
        FinancialStatus::Voided,
        FinancialStatus::Expired,
    ];

    /// The store's spelling, e.g. "partially_refunded".
    pub fn as_str(self) -> &'static str {
        match self {
            FinancialStatus::Pending => "pending",
            FinancialStatus::Authorized => "authorized",
            FinancialStatus::PartiallyPaid => "partially_paid",
            FinancialStatus::Paid => "paid",
            FinancialStatus::PartiallyRefunded => "partially_refunded",
            FinancialStatus::Refunded => "refunded",
            FinancialStatus::Voided => "voided",
            FinancialStatus::Expired => "expired",
        }
    }

    /// Reads the store's spelling; `None` for a value the store does not document.
    pub fn parse(raw: &str) -> Option<FinancialStatus> {
        FinancialStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == raw)
    }
}

/// How much of an order has shipped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FulfillmentStatus {
    /// Nothing shipped yet.
    Unfulfilled,
    /// Some items shipped.
    Partial,
    /// Everything shipped.
    Fulfilled,
}

impl FulfillmentStatus {
    /// Reads the store's spelling. Shopify sends `null` for unfulfilled orders, and older
    /// payloads use "pending" or "restocked" (cancelled and put back on the shelf), which also
    /// mean nothing is out the door.
    pub fn parse(raw: Option<&str>) -> Option<FulfillmentStatus> {
        match raw {
            None | Some("unfulfilled" | "pending" | "restocked") => {
                Some(FulfillmentStatus::Unfulfilled)
            }
            Some("partial") => Some(FulfillmentStatus::Partial),
            Some("fulfilled") => Some(FulfillmentStatus::Fulfilled),
            Some(_) => None,
        }
    }
}

/// Why the store cancelled an order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CancelReason {
    /// The customer changed their mind.
    Customer,
    /// Suspected fraud.
    Fraud,
    /// Items were out of stock.
    Inventory,
    /// Payment was declined.
    Declined,
    /// Cancelled by staff.
    Staff,
    /// Any other reason, including ones the store adds later.
    Other,
}

impl CancelReason {
    /// Reads the store's spelling; reasons we do not know become [`CancelReason::Other`],
    /// because the reason never changes what has to happen downstream.
    pub fn parse(raw: &str) -> CancelReason {
        match raw {
            "customer" => CancelReason::Customer,
            "fraud" => CancelReason::Fraud,
            "inventory" => CancelReason::Inventory,
            "declined" => CancelReason::Declined,
            "staff" => CancelReason::Staff,
            _ => CancelReason::Other,
        }
    }
}

/// Where an order is in its life, derived from its financial and fulfilment state; this is
/// the stage the CRM shows and the state the ERP document is moved to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Lifecycle {
    /// Placed, not yet paid.
    Open,
    /// Paid, nothing shipped.
    Paid,
    /// Some items shipped.
    PartiallyFulfilled,
    /// Everything shipped.
    Fulfilled,
    /// Cancelled (or its payment voided).
    Cancelled,
    /// Part of the money was refunded.
    PartiallyRefunded,
    /// All of the money was refunded.
    Refunded,
}

impl Lifecycle {
    /// A stable lower-case name, e.g. "partially_fulfilled".
    pub fn as_str(self) -> &'static str {
        match self {
            Lifecycle::Open => "open",
            Lifecycle::Paid => "paid",
            Lifecycle::PartiallyFulfilled => "partially_fulfilled",
            Lifecycle::Fulfilled => "fulfilled",
            Lifecycle::Cancelled => "cancelled",
            Lifecycle::PartiallyRefunded => "partially_refunded",
            Lifecycle::Refunded => "refunded",
        }
    }
}

impl fmt::Display for Lifecycle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One line of an order. Amounts are in the order's currency.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderLine {
    /// The store's line item id.
    pub line_id: i64,
    /// The item code; `None` for custom items and products without a SKU.
    pub sku: Option<Sku>,
    /// Product title, with the variant when there is one ("Tee — Black / M").
    pub title: String,
    /// Units originally ordered.
    pub quantity: u32,
    /// Units still on the order after edits removed some (equals `quantity` without edits).
    pub current_quantity: u32,
    /// Price of one unit (tax included when the order's `taxes_included` is true).
    pub unit_price: Money,
    /// Discount on the whole line (all units).
    pub total_discount: Money,
    /// Tax on the whole line.
    pub tax: Money,
    /// Units shipped.
    pub fulfilled_quantity: u32,
    /// Units refunded.
    pub refunded_quantity: u32,
}

impl OrderLine {
    /// `unit_price × quantity − total_discount`: what the line costs before tax is added.
    pub fn net_total(&self) -> Result<Money, MoneyError> {
        self.unit_price
            .checked_mul(self.quantity)?
            .checked_sub(self.total_discount)
    }
}

/// Units of one order line in a shipment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FulfillmentLine {
    /// The order line (its `line_id`).
    pub line_id: i64,
    /// Units shipped.
    pub quantity: u32,
}

/// A shipment the store recorded (a Shopify fulfilment that was not cancelled or failed).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fulfillment {
    /// The store's fulfilment id: the external id of the matching ERP shipment.
    pub fulfillment_id: i64,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// Carrier tracking number, when there is one.
    pub tracking_number: Option<String>,
    /// What it contains.
    pub lines: Vec<FulfillmentLine>,
}

/// The canonical order. Built by [`super::shopify::parse_order`]; every amount is in
/// `currency`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    /// Shopify's order id: the external id at every destination.
    pub store_order_id: i64,
    /// The name people use, e.g. "#1042".
    pub name: String,
    /// The shop's sequential number, e.g. 1042.
    pub order_number: i64,
    /// When the order was placed.
    pub created_at: DateTime<Utc>,
    /// When the store last changed the order: the version. A newer `updated_at` supersedes.
    pub updated_at: DateTime<Utc>,
    /// The shop currency all amounts are in.
    pub currency: Currency,
    /// Payment state.
    pub financial_status: FinancialStatus,
    /// Shipping state.
    pub fulfillment_status: FulfillmentStatus,
    /// When the order was cancelled, if it was.
    pub cancelled_at: Option<DateTime<Utc>>,
    /// Why it was cancelled.
    pub cancel_reason: Option<CancelReason>,
    /// Who bought; `None` when the store gave no way to identify the buyer at all.
    pub customer: Option<CustomerRef>,
    /// The order's contact email.
    pub email: Option<NormalizedEmail>,
    /// The order lines.
    pub lines: Vec<OrderLine>,
    /// Line items after discounts, before shipping and (added) tax.
    pub subtotal: Money,
    /// All discounts.
    pub total_discounts: Money,
    /// All tax, lines and shipping.
    pub total_tax: Money,
    /// Shipping charged: the sum of the shipping lines, after their discounts.
    pub shipping: Money,
    /// What the customer was charged in total.
    pub total: Money,
    /// Money given back so far: the sum of successful refund transactions.
    pub total_refunded: Money,
    /// Bill-to address.
    pub billing_address: Option<Address>,
    /// Ship-to address; `None` for digital goods.
    pub shipping_address: Option<Address>,
    /// Whether prices already include tax (VAT-style) or tax is added on top.
    pub taxes_included: bool,
    /// The shipments in force; a shipment the store cancelled is no longer listed.
    #[serde(default)]
    pub fulfillments: Vec<Fulfillment>,
    /// Every refund, oldest first.
    #[serde(default)]
    pub refunds: Vec<Refund>,
}

impl Order {
    /// How recent the order's customer details are, for keeping the newest on the customer's
    /// record: when the store last changed the customer record they came from, or, when the
    /// order does not say (a guest checkout), when the order was placed, which is when the
    /// buyer gave them. Never the order's own `updated_at`: an order paid or shipped later
    /// still carries the details of its checkout.
    pub fn customer_details_as_of(&self) -> DateTime<Utc> {
        self.customer
            .as_ref()
            .and_then(|c| c.updated_at)
            .unwrap_or(self.created_at)
    }

    /// Where the order is in its life. The first rule that applies wins:
    /// cancelled (or payment voided) → refunded → partially refunded → fulfilled →
    /// partially fulfilled → paid → open.
    pub fn lifecycle(&self) -> Lifecycle {
        use FinancialStatus as F;
        if self.cancelled_at.is_some() {
            return Lifecycle::Cancelled;
        }
        match (self.financial_status, self.fulfillment_status) {
            (F::Voided, _) => Lifecycle::Cancelled,
            (F::Refunded, _) => Lifecycle::Refunded,
            (F::PartiallyRefunded, _) => Lifecycle::PartiallyRefunded,
            (_, FulfillmentStatus::Fulfilled) => Lifecycle::Fulfilled,
            (_, FulfillmentStatus::Partial) => Lifecycle::PartiallyFulfilled,
            (F::Paid, FulfillmentStatus::Unfulfilled) => Lifecycle::Paid,
            (F::Pending | F::Authorized | F::PartiallyPaid | F::Expired, _) => Lifecycle::Open,
        }
    }

    /// True when the order was placed without a customer account.
    pub fn is_guest_checkout(&self) -> bool {
        self.customer.as_ref().is_none_or(CustomerRef::is_guest)
    }

    /// The lines that carry no SKU (custom items), which no item-code mapping can resolve.
    pub fn lines_without_sku(&self) -> impl Iterator<Item = &OrderLine> {
        self.lines.iter().filter(|line| line.sku.is_none())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn usd(amount: &str) -> Money {
        Money::parse(amount, Currency::parse("USD").unwrap()).unwrap()
    }

    fn order(financial: FinancialStatus, fulfillment: FulfillmentStatus) -> Order {
        let at = Utc.with_ymd_and_hms(2024, 10, 1, 12, 0, 0).unwrap();
        Order {
            store_order_id: 1,
            name: "#1001".into(),
            order_number: 1001,
            created_at: at,
            updated_at: at,
            currency: Currency::parse("USD").unwrap(),
            financial_status: financial,
            fulfillment_status: fulfillment,
            cancelled_at: None,
            cancel_reason: None,
            customer: None,
            email: None,
            lines: vec![OrderLine {
                line_id: 10,
                sku: Sku::parse("TEE-1").ok(),
                title: "Tee".into(),
                quantity: 3,
                current_quantity: 3,
                unit_price: usd("10.00"),
                total_discount: usd("2.50"),
                tax: usd("2.20"),
                fulfilled_quantity: 0,
                refunded_quantity: 0,
            }],
            subtotal: usd("27.50"),
            total_discounts: usd("2.50"),
            total_tax: usd("2.20"),
            shipping: usd("0.00"),
            total: usd("29.70"),
            total_refunded: usd("0.00"),
            billing_address: None,
            shipping_address: None,
            taxes_included: false,
            fulfillments: Vec::new(),
            refunds: Vec::new(),
        }
    }

    #[test]
    fn lifecycle_follows_payment_then_shipping() {
        use FinancialStatus as F;
        use FulfillmentStatus as S;
        let cases = [
            (F::Pending, S::Unfulfilled, Lifecycle::Open),
            (F::Authorized, S::Unfulfilled, Lifecycle::Open),
            (F::PartiallyPaid, S::Unfulfilled, Lifecycle::Open),
            (F::Expired, S::Unfulfilled, Lifecycle::Open),
            (F::Paid, S::Unfulfilled, Lifecycle::Paid),
            (F::Paid, S::Partial, Lifecycle::PartiallyFulfilled),
            (F::Pending, S::Partial, Lifecycle::PartiallyFulfilled),
            (F::Paid, S::Fulfilled, Lifecycle::Fulfilled),
            (
                F::PartiallyRefunded,
                S::Fulfilled,
                Lifecycle::PartiallyRefunded,
            ),
            (F::Refunded, S::Fulfilled, Lifecycle::Refunded),
            (F::Refunded, S::Unfulfilled, Lifecycle::Refunded),
            (F::Voided, S::Unfulfilled, Lifecycle::Cancelled),
        ];
        for (financial, fulfillment, want) in cases {
            assert_eq!(
                order(financial, fulfillment).lifecycle(),
                want,
                "{financial:?} / {fulfillment:?}"
            );
        }
    }

    #[test]
    fn cancellation_wins_over_everything() {
        let mut cancelled = order(FinancialStatus::Refunded, FulfillmentStatus::Partial);
        cancelled.cancelled_at = Some(cancelled.updated_at);
        cancelled.cancel_reason = Some(CancelReason::Customer);
        assert_eq!(cancelled.lifecycle(), Lifecycle::Cancelled);
    }

    #[test]
    fn statuses_read_the_store_spelling() {
        for status in FinancialStatus::ALL {
            assert_eq!(FinancialStatus::parse(status.as_str()), Some(status));
        }
        assert_eq!(FinancialStatus::parse("PAID"), None);
        assert_eq!(
            FulfillmentStatus::parse(None),
            Some(FulfillmentStatus::Unfulfilled)
        );
        assert_eq!(
            FulfillmentStatus::parse(Some("partial")),
            Some(FulfillmentStatus::Partial)
        );
        assert_eq!(FulfillmentStatus::parse(Some("shipped")), None);
        assert_eq!(CancelReason::parse("fraud"), CancelReason::Fraud);
        assert_eq!(CancelReason::parse("alien abduction"), CancelReason::Other);
    }

    #[test]
    fn line_net_total_and_guest_flag() {
        let order = order(FinancialStatus::Paid, FulfillmentStatus::Unfulfilled);
        assert_eq!(order.lines[0].net_total().unwrap(), usd("27.50"));
        assert!(order.is_guest_checkout());
        assert_eq!(order.lines_without_sku().count(), 0);
    }

    #[test]
    fn round_trips_through_json() {
        let order = order(FinancialStatus::Paid, FulfillmentStatus::Partial);
        let json = serde_json::to_string(&order).unwrap();
        assert!(json.contains(r#""unit_price":{"amount":"10.00","currency":"USD"}"#));
        assert!(json.contains(r#""financial_status":"paid""#));
        let back: Order = serde_json::from_str(&json).unwrap();
        assert_eq!(back, order);
        assert_eq!(
            serde_json::to_string(&Lifecycle::PartiallyFulfilled).unwrap(),
            "\"partially_fulfilled\""
        );
    }
}

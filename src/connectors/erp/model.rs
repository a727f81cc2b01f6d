//! The reference ERP's documents, as SyncDesk sends them and as the ERP answers.

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// Field limits the reference ERP enforces (characters), so the engine can check before sending.
pub mod limits {
    /// Sales order, fulfilment and credit note external ids.
    pub const EXTERNAL_ID: usize = 64;
    /// Customer account (an email or `GUEST`).
    pub const CUSTOMER_ACCOUNT: usize = 80;
    /// Item code.
    pub const ITEM_CODE: usize = 40;
    /// Address name.
    pub const ADDRESS_NAME: usize = 100;
    /// Street and street2.
    pub const STREET: usize = 60;
    /// City.
    pub const CITY: usize = 40;
    /// Postal code.
    pub const POSTAL_CODE: usize = 20;
    /// Region / state.
    pub const REGION: usize = 40;
    /// Credit note reason, cancel reason.
    pub const REASON: usize = 200;
    /// Tracking number.
    pub const TRACKING_NUMBER: usize = 60;
}

/// The customer account used for guest checkouts.
pub const GUEST_ACCOUNT: &str = "GUEST";

/// Countries whose addresses have no postal codes (ISO 3166-1 alpha-2): a ship-to there needs
/// none. Shopify's checkout asks for none in them either.
pub const COUNTRIES_WITHOUT_POSTAL_CODES: &[&str] = &[
    "AE", "AG", "AO", "AW", "BF", "BI", "BJ", "BO", "BS", "BW", "BZ", "CD", "CF", "CG", "CI", "CK",
    "CM", "DJ", "DM", "ER", "FJ", "GA", "GD", "GH", "GM", "GQ", "GY", "HK", "JM", "KE", "KI", "KM",
    "KN", "KP", "LC", "ML", "MO", "MR", "MS", "MW", "NR", "NU", "QA", "RW", "SB", "SC", "SL", "SO",
    "SR", "ST", "SY", "TF", "TG", "TK", "TL", "TO", "TT", "TV", "UG", "VU", "YE", "ZW",
];

/// Whether a ship-to in `country` (two letters) needs a postal code: everywhere but
/// [`COUNTRIES_WITHOUT_POSTAL_CODES`].
pub fn ship_to_needs_postal_code(country: &str) -> bool {
    let country = country.trim();
    !COUNTRIES_WITHOUT_POSTAL_CODES
        .iter()
        .any(|c| c.eq_ignore_ascii_case(country))
}

/// A postal address. The ERP requires `postal_code` on a ship-to, except in the countries that
/// have none ([`ship_to_needs_postal_code`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErpAddress {
    /// Person or company.
    pub name: String,
    /// Street and number; at most 60 characters.
    pub street: String,
    /// Second address line.
    #[serde(default)]
    pub street2: Option<String>,
    /// City.
    pub city: String,
    /// Postal code; required on ship-to.
    #[serde(default)]
    pub postal_code: Option<String>,
    /// Region, state or province.
    #[serde(default)]
    pub region: Option<String>,
    /// ISO 3166-1 alpha-2, e.g. `DE`.
    pub country: String,
}

/// One order line, priced per unit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErpLine {
    /// The ERP's item code (mapped from the store SKU).
    pub item_code: String,
    /// Quantity ordered.
    pub quantity: Decimal,
    /// Unit price without tax.
    pub unit_price_net: Decimal,
    /// Unit price with tax.
    pub unit_price_gross: Decimal,
    /// Discount on the whole line.
    pub discount: Decimal,
    /// Tax on the whole line.
    pub tax: Decimal,
}

/// A sales order as SyncDesk creates or replaces it (`POST /v1/sales-orders`,
/// `PUT /v1/sales-orders/{document_number}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErpSalesOrder {
    /// The store order id; unique in the ERP.
    pub external_id: String,
    /// The customer's email, or `GUEST`.
    pub customer_account: String,
    /// ISO 4217 code.
    pub currency: String,
    /// The day the order was placed.
    pub order_date: NaiveDate,
    /// Lines, in store order.
    pub lines: Vec<ErpLine>,
    /// Shipping charged, gross.
    pub shipping_cost: Decimal,
    /// All tax on the order.
    pub tax_total: Decimal,
    /// What the customer pays.
    pub total_gross: Decimal,
    /// Where the customer's payment stands; a document written before SyncDesk sent it reads
    /// as `unpaid`.
    #[serde(default)]
    pub payment_status: ErpPaymentStatus,
    /// Billing address.
    #[serde(default)]
    pub bill_to: Option<ErpAddress>,
    /// Shipping address; `None` for orders that ship nothing.
    #[serde(default)]
    pub ship_to: Option<ErpAddress>,
}

/// Where a sales order's payment stands: the store's payment status in the ERP's terms.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErpPaymentStatus {
    /// Nothing paid yet (an invoice, bank transfer or cash on delivery to come).
    #[default]
    Unpaid,
    /// A card authorised, not yet captured.
    Authorized,
    /// Part of the total paid.
    PartiallyPaid,
    /// Paid in full.
    Paid,
    /// Paid, and part of it given back (the credit notes say what).
    PartiallyRefunded,
    /// Paid, and all of it given back.
    Refunded,
    /// The authorisation was cancelled or lapsed before anything was captured.
    Voided,
}

/// A sales order's lifecycle in the ERP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErpStatus {
    /// Nothing shipped yet.
    Open,
    /// Some quantities shipped.
    PartiallyFulfilled,
    /// Every quantity shipped.
    Fulfilled,
    /// Cancelled; no more changes except credit notes.
    Cancelled,
}

/// One shipped line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErpFulfilmentLine {
    /// Item code, as on the order.
    pub item_code: String,
    /// Quantity shipped.
    pub quantity: Decimal,
}

/// A shipment to record against a sales order (`POST .../fulfilments`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErpFulfilmentRequest {
    /// The store's fulfilment id; unique per sales order.
    pub external_id: String,
    /// When it shipped.
    #[serde(default)]
    pub shipped_at: Option<DateTime<Utc>>,
    /// Carrier tracking number.
    #[serde(default)]
    pub tracking_number: Option<String>,
    /// What shipped.
    pub lines: Vec<ErpFulfilmentLine>,
}

/// A shipment as the ERP holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErpFulfilment {
    /// The ERP's shipment number, e.g. `SH-000007`.
    pub number: String,
    /// The store's fulfilment id.
    pub external_id: String,
    /// When it shipped.
    pub shipped_at: Option<DateTime<Utc>>,
    /// Tracking number.
    pub tracking_number: Option<String>,
    /// What shipped.
    pub lines: Vec<ErpFulfilmentLine>,
    /// Recorded at.
    pub created_at: DateTime<Utc>,
}

/// A refund to record against a sales order (`POST .../credit-notes`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErpCreditNoteRequest {
    /// The store's refund id; unique per sales order.
    pub external_id: String,
    /// Amount credited, gross, in the order's currency.
    pub amount: Decimal,
    /// Why.
    pub reason: String,
}

/// A credit note as the ERP holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErpCreditNote {
    /// The ERP's credit note number, e.g. `CN-000003`.
    pub number: String,
    /// The store's refund id.
    pub external_id: String,
    /// Amount credited.
    pub amount: Decimal,
    /// The order's currency.
    pub currency: String,
    /// Why.
    pub reason: String,
    /// Recorded at.
    pub created_at: DateTime<Utc>,
}

/// The body of `POST .../cancel`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErpCancelRequest {
    /// Why, for the ERP's audit trail.
    #[serde(default)]
    pub reason: Option<String>,
}

/// A sales order document as the ERP holds it: the order plus what happened to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErpDocument {
    /// The ERP's document number, e.g. `SO-000042`.
    pub document_number: String,
    /// Lifecycle status.
    pub status: ErpStatus,
    /// The order as last created or replaced.
    #[serde(flatten)]
    pub order: ErpSalesOrder,
    /// Shipments, oldest first.
    #[serde(default)]
    pub fulfilments: Vec<ErpFulfilment>,
    /// Credit notes, oldest first.
    #[serde(default)]
    pub credit_notes: Vec<ErpCreditNote>,
    /// Why it was cancelled, when it was.
    #[serde(default)]
    pub cancel_reason: Option<String>,
    /// Created at.
    pub created_at: DateTime<Utc>,
    /// Last changed (any change, including shipments and credit notes).
    pub updated_at: DateTime<Utc>,
}

impl ErpDocument {
    /// True when the document already says what `order` says (nothing to send).
    pub fn matches(&self, order: &ErpSalesOrder) -> bool {
        self.order == *order
    }

    /// The shipment recorded for a store fulfilment id, if any.
    pub fn fulfilment(&self, external_id: &str) -> Option<&ErpFulfilment> {
        self.fulfilments
            .iter()
            .find(|f| f.external_id == external_id)
    }

    /// The credit note recorded for a store refund id, if any.
    pub fn credit_note(&self, external_id: &str) -> Option<&ErpCreditNote> {
        self.credit_notes
            .iter()
            .find(|c| c.external_id == external_id)
    }
}

/// An item in the ERP's catalogue (`GET /v1/items/{code}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErpItem {
    /// Item code.
    pub code: String,
    /// Description.
    pub description: String,
    /// Unit of measure, e.g. `EA`.
    pub unit_of_measure: String,
    /// Whether it can be sold.
    pub active: bool,
}

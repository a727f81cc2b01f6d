//! The reference CRM's records, as SyncDesk sends them and as the CRM answers.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// Field limits the reference CRM enforces (characters), so the engine can check before sending.
pub mod limits {
    /// Email address.
    pub const EMAIL: usize = 254;
    /// First name, last name.
    pub const NAME: usize = 80;
    /// Phone number.
    pub const PHONE: usize = 40;
    /// Store customer id, deal external id.
    pub const EXTERNAL_ID: usize = 64;
    /// Deal name.
    pub const DEAL_NAME: usize = 120;
}

/// A contact to upsert, keyed by email (`PUT /v1/contacts/{email}`). A field sent as null keeps
/// what the CRM has.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CrmContact {
    /// The key; the CRM trims and lower-cases it.
    pub email: String,
    /// Given name.
    #[serde(default)]
    pub first_name: Option<String>,
    /// Family name.
    #[serde(default)]
    pub last_name: Option<String>,
    /// Phone, as the customer typed it.
    #[serde(default)]
    pub phone: Option<String>,
    /// The store's customer id; `None` for guest checkouts.
    #[serde(default)]
    pub store_customer_id: Option<String>,
}

/// Where an order stands, in the CRM's pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DealStage {
    /// Placed, not paid.
    Open,
    /// Paid.
    Paid,
    /// Everything shipped.
    Fulfilled,
    /// Some lines shipped.
    PartiallyFulfilled,
    /// Cancelled.
    Cancelled,
    /// Fully refunded.
    Refunded,
    /// Partly refunded.
    PartiallyRefunded,
}

impl DealStage {
    /// The wire name, e.g. `partially_fulfilled`.
    pub fn as_str(self) -> &'static str {
        match self {
            DealStage::Open => "open",
            DealStage::Paid => "paid",
            DealStage::Fulfilled => "fulfilled",
            DealStage::PartiallyFulfilled => "partially_fulfilled",
            DealStage::Cancelled => "cancelled",
            DealStage::Refunded => "refunded",
            DealStage::PartiallyRefunded => "partially_refunded",
        }
    }
}

/// A deal (the order, as revenue) to upsert, keyed by the store order id
/// (`PUT /v1/deals/{external_id}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CrmDeal {
    /// The store order id.
    pub external_id: String,
    /// The contact the deal belongs to (upserted first); `None` when the order has no email.
    #[serde(default)]
    pub contact_email: Option<String>,
    /// The order name, e.g. `#1042`.
    pub name: String,
    /// Order total, decimal string on the wire.
    pub amount: Decimal,
    /// ISO 4217 code, e.g. `EUR`.
    pub currency: String,
    /// Pipeline stage.
    pub stage: DealStage,
    /// When the deal closed (paid, cancelled), if it has.
    #[serde(default)]
    pub closed_at: Option<DateTime<Utc>>,
    /// The order's `updated_at` in the store: an older version never overwrites a newer one.
    pub source_version: DateTime<Utc>,
}

/// A contact as the CRM holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CrmContactRecord {
    /// The CRM's id.
    pub id: String,
    /// Normalised email (trimmed, lower case).
    pub email: String,
    /// Given name.
    pub first_name: Option<String>,
    /// Family name.
    pub last_name: Option<String>,
    /// Phone.
    pub phone: Option<String>,
    /// The store's customer id.
    pub store_customer_id: Option<String>,
    /// First seen.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

/// A deal as the CRM holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CrmDealRecord {
    /// The CRM's id.
    pub id: String,
    /// The store order id.
    pub external_id: String,
    /// The associated contact's CRM id.
    pub contact_id: Option<String>,
    /// The associated contact's email.
    pub contact_email: Option<String>,
    /// Order name.
    pub name: String,
    /// Amount.
    pub amount: Decimal,
    /// Currency.
    pub currency: String,
    /// Stage.
    pub stage: DealStage,
    /// Closed at.
    pub closed_at: Option<DateTime<Utc>>,
    /// The store version this record reflects.
    pub source_version: DateTime<Utc>,
    /// First seen.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

impl CrmDealRecord {
    /// True when the record already says what `deal` says (nothing to send).
    pub fn matches(&self, deal: &CrmDeal) -> bool {
        self.external_id == deal.external_id
            && self.contact_email == deal.contact_email.as_deref().map(normalise_email)
            && self.name == deal.name
            && self.amount == deal.amount
            && self.currency == deal.currency
            && self.stage == deal.stage
            && self.closed_at == deal.closed_at
            && self.source_version == deal.source_version
    }
}

/// The CRM's email key: trimmed and lower-cased (plus-addresses are kept; merging them is the
/// identity step's decision, not the CRM's).
pub fn normalise_email(email: &str) -> String {
    email.trim().to_lowercase()
}

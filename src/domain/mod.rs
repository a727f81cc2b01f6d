//! The parsed types everything else works with, and the reading of store payloads into them.
//! No I/O: a value of one of these types is valid by construction (parse, don't validate).
//!
//! - [`money`] — `Currency`, `Money` (decimal, never `f64`, currency always attached)
//! - [`sku`] — `Sku`, `ItemCode`
//! - [`customer`] — `NormalizedEmail`, `Phone` (E.164), `CustomerRef`, `StoreCustomer`
//! - [`address`] — `Address`, `CountryCode`
//! - [`order`] — the canonical `Order`, its lines, statuses and derived `Lifecycle`
//! - [`refund`] — `Refund`
//! - [`shopify`] — Shopify webhook / Admin API JSON → the types above, with errors that name
//!   the field

pub mod address;
pub mod customer;
pub mod money;
pub mod order;
pub mod refund;
pub mod shopify;
pub mod sku;

pub use address::{Address, CountryCode};
pub use customer::{CustomerRef, NormalizedEmail, Phone, StoreCustomer};
pub use money::{Currency, Money, MoneyError};
pub use order::{
    CancelReason, FinancialStatus, Fulfillment, FulfillmentLine, FulfillmentStatus, Lifecycle,
    Order, OrderLine,
};
pub use refund::{Refund, RefundLine};
pub use sku::{ItemCode, ItemCodeError, Sku};

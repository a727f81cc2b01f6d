//! Outbound connectors: SyncDesk's HTTP clients for the reference CRM and ERP APIs
//! (`docs/reference-apis.openapi.json`).
//!
//! The engine talks to the [`CrmApi`] and [`ErpApi`] traits; [`HttpCrm`] and [`HttpErp`] are
//! the real implementations, and they cannot tell the simulators in `crate::simulate` from a
//! real destination. Every failure comes back classified as a [`DeliveryError`]: transient
//! (retry with backoff), auth (pause the destination) or rejected (needs a person).
//!
//! Idempotency: the store order id is the external id everywhere. The CRM upserts by key; the
//! ERP has no upsert, so [`ErpApi::upsert_sales_order`] finds by external id before it creates,
//! and finds again after any answer that leaves the outcome unknown. An order SyncDesk has never
//! sent ([`ErpApi::create_unsent_sales_order`]) is created without the first find: the ERP's
//! refusal of a taken external id (409) leads to the find instead.

#![warn(missing_docs)]

pub mod crm;
pub mod erp;
mod error;
mod http;
mod ratelimit;
pub mod shop;
mod wire;

pub use crm::{CrmApi, CrmContact, CrmContactRecord, CrmDeal, CrmDealRecord, DealStage, HttpCrm};
pub use erp::{
    ErpAddress, ErpApi, ErpCreditNoteRequest, ErpDocument, ErpFulfilmentLine, ErpFulfilmentRequest,
    ErpLine, ErpPaymentStatus, ErpSalesOrder, ErpStatus, HttpErp,
};
pub use error::{Ack, DeliveryError, TransientKind};
pub use http::{ApiToken, ConnectorConfig, counting_requests, credentials_fingerprint};
pub use ratelimit::RateLimit;
pub use shop::ShopAdmin;
pub use wire::{ApiErrorBody, ErrorEnvelope, Page};

#[cfg(test)]
mod tests;

//! Simulated destinations: the reference CRM and ERP as real HTTP servers on loopback, with
//! field rules, fault injection and a ledger of every committed effect.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use syncdesk::simulate::{crm::{CrmSimConfig, spawn_crm}, faults::Faults};
//! let crm = spawn_crm(CrmSimConfig::default()).await?;
//! crm.faults().update(|f: &mut Faults| f.rate_limit_rate = 0.1);
//! println!("CRM at {} with token {}", crm.base_url(), crm.token());
//! assert!(crm.ledger().check().duplicated.is_empty());
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

pub mod crm;
pub mod erp;
mod erp_books;
pub mod faults;
pub mod ledger;
mod reply;
mod rules;
mod server;
pub mod shopify;
pub mod store;
#[cfg(test)]
mod tests;

pub use server::{SimApp, SimHandle, serve};

//! SyncDesk's server: accounts, the audit log, storage and the web wiring. The sync engine,
//! connectors and simulators join this tree as they are built (see docs/ARCHITECTURE.md).

pub mod accounts;
pub mod audit;
pub mod bench;
pub mod cli;
pub mod connectors;
pub mod demo;
pub mod domain;
pub mod engine;
pub mod secret;
pub mod simulate;
pub mod store;
pub mod web;

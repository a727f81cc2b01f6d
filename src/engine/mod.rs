//! The sync engine: ingest store events into canonical orders, plan one task per destination,
//! and (as it is built) work those tasks through the connectors.

pub mod ingest;

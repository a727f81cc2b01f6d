//! SyncDesk's integration tests: the real server, in-process, on a fresh database, spoken to over
//! HTTP. Every test runs twice, as `<name>_sqlite` and `<name>_postgres`.
//!
//! PostgreSQL is not optional here: the `_postgres` tests fail (with a message saying so) when
//! the server at `SYNCDESK_TEST_PG_URL` (default `postgres://postgres@127.0.0.1:5432/`) cannot be
//! reached. Run one backend with `cargo test --test it _sqlite`.

#[macro_use]
mod harness;

mod admin;
mod api;
mod auth;
mod causes;
mod claims;
mod cli;
mod handoff;
mod mappings;
mod order_actions;
mod pacing;
mod reconcile;
mod sync;
mod topics;
mod triage;
mod web;
mod webhooks;
mod webhooks_together;

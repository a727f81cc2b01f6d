//! SyncDesk's web UI: the pages people work in, the server functions behind them, and the
//! narrow [`port`] through which those server functions reach the engine.
//!
//! The crate is built twice: with `ssr` into the server (where server functions run and call the
//! port), and with `hydrate` into the browser's WebAssembly (where they are HTTP calls).

pub mod api;
mod components;
pub mod error;
pub mod model;
mod pages;
#[cfg(feature = "ssr")]
pub mod port;
mod shell;

pub use shell::{App, shell};

/// Entry point of the browser bundle: attaches the reactive system to the server-rendered page.
#[cfg(feature = "hydrate")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_body(App);
}

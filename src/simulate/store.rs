//! The simulated store: a Shopify-like shop on loopback that keeps every order it has
//! produced (the latest version of each) and serves them through the Admin API that
//! reconciliation and backfill read, plus the traffic that places those orders and announces
//! each change with signed webhooks, delivered as Shopify delivers them: at least once, now and
//! then twice, out of order or minutes late.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use syncdesk::secret::Secret;
//! use syncdesk::simulate::store::{Rate, StoreSimConfig, Traffic, spawn_store};
//! let store = spawn_store(StoreSimConfig::default()).await?;
//! let target = url::Url::parse("http://127.0.0.1:3000/webhooks/shopify")?;
//! let traffic = Traffic::spawn(target, Secret::new("shpss_demo"), &store, Rate::per_minute(30.0), 7)?;
//! println!("Admin API at {} (token {})", store.base_url(), store.access_token());
//! println!("{}", traffic.stats());
//! # Ok(()) }
//! ```

mod admin;
#[cfg(test)]
mod admin_tests;
mod book;
mod lifecycle;
mod live;
mod paging;
mod sender;
#[cfg(test)]
mod tests;
mod traffic;

use std::net::SocketAddr;

use anyhow::Context;
use axum::Router;
use axum::serve::ListenerExt;
use tokio::task::JoinHandle;
use url::Url;

pub use book::{BookError, OrderBook};
pub use lifecycle::Misbehaviour;
pub use sender::{Delivered, RetryPolicy, SendError, Topic, Webhook, WebhookSender};
pub use traffic::{BurstError, BurstReport, Rate, Traffic, TrafficHandle, TrafficStats};

/// The Admin API version the store speaks and its webhooks are shaped for.
pub const API_VERSION: &str = "2024-10";

/// The shop the simulator pretends to be unless told otherwise.
pub const DEFAULT_SHOP_DOMAIN: &str = "syncdesk-demo.myshopify.com";

/// Shopify's leaky bucket for REST Admin calls.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CallLimit {
    /// Calls the bucket holds.
    pub bucket_size: u32,
    /// Calls it drains a second.
    pub leak_per_second: f64,
}

impl Default for CallLimit {
    /// A standard shop: 40 calls, 2 a second.
    fn default() -> Self {
        CallLimit {
            bucket_size: 40,
            leak_per_second: 2.0,
        }
    }
}

/// How to start a simulated store.
#[derive(Debug, Clone)]
pub struct StoreSimConfig {
    /// Where to listen; port 0 picks a free one.
    pub listen: SocketAddr,
    /// The `X-Shopify-Access-Token` the Admin API accepts.
    pub access_token: String,
    /// The shop's `*.myshopify.com` domain.
    pub shop_domain: String,
    /// The Admin API call limit; `None` for none.
    pub call_limit: Option<CallLimit>,
    /// Keep at most this many orders, the most recently changed (`None`: every one): for live
    /// traffic left running, which would otherwise keep every order it ever made.
    pub keep_orders: Option<usize>,
}

impl Default for StoreSimConfig {
    /// Loopback, a free port, a random token, the demo shop, Shopify's standard call limit.
    fn default() -> Self {
        StoreSimConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            access_token: format!("shpat_{}", uuid::Uuid::new_v4().simple()),
            shop_domain: DEFAULT_SHOP_DOMAIN.to_owned(),
            call_limit: Some(CallLimit::default()),
            keep_orders: None,
        }
    }
}

/// The store's router and its orders, before it is served (mount `router` in another server,
/// or use [`spawn_store`]).
#[derive(Debug)]
pub struct StoreApp {
    /// The Admin API, auth and call limit applied.
    pub router: Router,
    /// The orders it serves.
    pub orders: OrderBook,
    /// The access token it accepts.
    pub access_token: String,
    /// Its domain.
    pub shop_domain: String,
}

/// The simulated store's router and order book, not yet served.
pub fn build_store(config: StoreSimConfig) -> StoreApp {
    let orders = match config.keep_orders {
        Some(limit) => OrderBook::keeping(limit),
        None => OrderBook::new(),
    };
    let router = admin::router(
        orders.clone(),
        config.access_token.clone(),
        config.call_limit,
    );
    StoreApp {
        router,
        orders,
        access_token: config.access_token,
        shop_domain: config.shop_domain,
    }
}

/// A running simulated store on loopback. Dropping it stops the server.
#[derive(Debug)]
pub struct StoreHandle {
    addr: SocketAddr,
    base_url: Url,
    access_token: String,
    shop_domain: String,
    orders: OrderBook,
    task: JoinHandle<()>,
}

impl StoreHandle {
    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:{port}/`; the Admin API is under `admin/api/2024-10/`.
    pub fn base_url(&self) -> &Url {
        &self.base_url
    }

    /// The `X-Shopify-Access-Token` it accepts.
    pub fn access_token(&self) -> &str {
        &self.access_token
    }

    /// Its `*.myshopify.com` domain (what webhooks carry in `X-Shopify-Shop-Domain`).
    pub fn shop_domain(&self) -> &str {
        &self.shop_domain
    }

    /// Its orders: the truth reconciliation must arrive at.
    pub fn orders(&self) -> &OrderBook {
        &self.orders
    }

    /// Stops serving.
    pub fn stop(self) {}
}

impl Drop for StoreHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts a simulated store in the background.
pub async fn spawn_store(config: StoreSimConfig) -> anyhow::Result<StoreHandle> {
    let listen = config.listen;
    let app = build_store(config);
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen} for the simulated store"))?;
    let addr = listener
        .local_addr()
        .context("the simulated store's listener has no address")?;
    let base_url = Url::parse(&format!("http://{addr}/")).context("simulated store URL")?;
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let router = app.router;
    let task = tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, router).await {
            tracing::warn!(%error, "simulated store stopped");
        }
    });
    Ok(StoreHandle {
        addr,
        base_url,
        access_token: app.access_token,
        shop_domain: app.shop_domain,
        orders: app.orders,
        task,
    })
}

//! HTTP: the axum router that serves the Leptos app, its server functions, health checks, the
//! store webhooks, the JSON API and metrics, behind sessions and the security layers.

mod api;
mod health;
mod metrics;
mod port;
mod security;
mod session;
mod sku_csv;
mod triage;
mod webhooks;

use std::net::SocketAddr;
use std::sync::Arc;

use app::{App, shell};
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::extract::FromRef;
use axum::middleware::{from_fn, from_fn_with_state};
use axum::routing::{get, post};
use leptos::config::LeptosOptions;
use leptos::prelude::provide_context;
use leptos_axum::{LeptosRoutes, generate_route_list};
use tokio::net::TcpListener;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::trace::TraceLayer;

pub use session::CurrentUser;

use crate::accounts::{Accounts, ThrottlePolicy};
use crate::connectors::{ErpApi, ShopAdmin};
use crate::engine::mappings::{ErpItems, ItemLookup, Mappings};
use crate::secret::Secret;
use crate::store::Store;

/// Settings of the web layer, parsed once at start-up.
#[derive(Clone, Debug)]
pub struct WebSettings {
    /// Mark cookies `Secure` and send HSTS (served over TLS, directly or behind a proxy).
    pub tls: bool,
    /// Take the client address from `X-Forwarded-For` (only behind a trusted proxy).
    pub trust_proxy: bool,
    /// Where cargo-leptos put the compiled site (JS, WASM, CSS, assets).
    pub site_root: String,
    /// Sign-in throttling.
    pub throttle: ThrottlePolicy,
    /// The secret store webhooks are signed with; without it, webhooks are refused (503).
    pub shopify_webhook_secret: Option<Secret>,
}

impl Default for WebSettings {
    fn default() -> Self {
        WebSettings {
            tls: false,
            trust_proxy: false,
            site_root: "target/site".into(),
            throttle: ThrottlePolicy::default(),
            shopify_webhook_secret: None,
        }
    }
}

/// Everything a request handler may need, behind one pointer: the sign-in check and the
/// handler each take a copy for every request, and copying the parts one by one (each a
/// reference count, LeptosOptions several) showed in the webhooks' profile.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

/// What [`AppState`] shares; read through it (`state.store`).
#[derive(Clone)]
pub struct Shared {
    /// Leptos' own settings (site root, output name).
    pub leptos_options: LeptosOptions,
    /// Storage.
    pub store: Store,
    /// Account operations.
    pub accounts: Accounts,
    /// Web settings.
    pub settings: Arc<WebSettings>,
    /// Told when work is armed, so idle workers (in this process, and on PostgreSQL in the
    /// others) start at once.
    pub wake: crate::engine::wake::Wake,
    /// Webhooks refused before storage, for the metrics.
    pub refusals: Arc<webhooks::Refusals>,
    /// SKU mapping operations (item codes checked with the ERP when this process has one).
    pub mappings: Mappings,
    /// The store's Admin API, when configured (resync an order from the store).
    pub shop: Option<ShopAdmin>,
}

impl AppState {
    /// State for a server on `addr` over `store`.
    pub fn new(store: Store, settings: WebSettings, addr: SocketAddr) -> AppState {
        let leptos_options = LeptosOptions::builder()
            .output_name("syncdesk")
            .site_root(settings.site_root.clone())
            .site_pkg_dir("pkg")
            .site_addr(addr)
            .build();
        let accounts = Accounts::new(store.clone(), settings.throttle.clone());
        let mappings = Mappings::new(store.clone(), None);
        let wake = crate::engine::wake::Wake::for_store(&store);
        AppState(Arc::new(Shared {
            leptos_options,
            store,
            accounts,
            settings: Arc::new(settings),
            wake,
            refusals: Arc::default(),
            mappings,
            shop: None,
        }))
    }

    /// The same state, able to resync orders from the store through `shop`.
    pub fn with_shop(mut self, shop: ShopAdmin) -> AppState {
        Arc::make_mut(&mut self.0).shop = Some(shop);
        self
    }

    /// The same state, checking item codes with `erp` when SKU mappings are saved or imported.
    pub fn with_erp(self, erp: Arc<dyn ErpApi>) -> AppState {
        self.with_item_lookup(Arc::new(ErpItems(erp)))
    }

    /// The same state, checking item codes with `lookup`.
    pub fn with_item_lookup(mut self, lookup: Arc<dyn ItemLookup>) -> AppState {
        let shared = Arc::make_mut(&mut self.0);
        shared.mappings = Mappings::new(shared.store.clone(), Some(lookup));
        self
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The parts handlers and layers extract on their own (`State<Store>`, Leptos' options).
macro_rules! parts_from_state {
    ($($field:ident: $part:ty),* $(,)?) => {$(
        impl FromRef<AppState> for $part {
            fn from_ref(state: &AppState) -> $part {
                state.$field.clone()
            }
        }
    )*};
}
parts_from_state!(
    leptos_options: LeptosOptions,
    store: Store,
    mappings: Mappings,
    settings: Arc<WebSettings>,
    refusals: Arc<webhooks::Refusals>,
    wake: crate::engine::wake::Wake,
);

/// The largest body the app's pages and server functions take: the largest argument is a SKU
/// mapping file (`app::api::MAX_IMPORT_BYTES`), form-encoded, which can triple its size. The
/// server functions read their whole body before the role check, so the limit is what stops
/// an anonymous caller from making the server hold gigabytes: a longer `Content-Length` gets a
/// 413 at once, a longer chunked body is cut off at the limit.
pub const RPC_BODY_BYTES: usize = 3 * app::api::MAX_IMPORT_BYTES + 64 * 1024;

/// The whole HTTP application.
pub fn router(state: AppState) -> Router {
    let port_context = {
        let state = state.clone();
        move || {
            provide_context::<Arc<dyn app::port::Port>>(Arc::new(port::WebPort::new(state.clone())))
        }
    };
    let routes = generate_route_list(App);
    let options = state.leptos_options.clone();
    let app_routes = Router::new()
        .leptos_routes_with_context(&state, routes, port_context.clone(), move || {
            shell(options.clone())
        })
        .layer(RequestBodyLimitLayer::new(RPC_BODY_BYTES));

    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(metrics::metrics))
        .route("/sku-mappings/export.csv", get(sku_csv::export))
        .nest("/api/v1", api::router())
        .route(
            "/webhooks/shopify",
            post(webhooks::shopify).layer(DefaultBodyLimit::max(webhooks::MAX_BODY_BYTES)),
        )
        .merge(app_routes)
        .fallback(leptos_axum::file_and_error_handler_with_context::<
            AppState,
            _,
        >(port_context, shell))
        .layer(from_fn_with_state(state.clone(), session::require_sign_in))
        .layer(session::layer(&state.store, state.settings.tls))
        .layer(from_fn(security::refuse_cross_site))
        .layer(from_fn_with_state(
            state.settings.clone(),
            security::headers,
        ))
        .layer(TraceLayer::new_for_http().make_span_with(security::request_span))
        .with_state(state)
}

/// Serves `state` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router(state).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

/// Starts the background work every SyncDesk process shares: sweeping expired sessions, and
/// folding the metric counters of closed database connections (the sync engine's workers join
/// here).
pub fn run_background(store: &Store) {
    session::spawn_expired_deletion(store);
    metrics::spawn_counter_fold(store);
}

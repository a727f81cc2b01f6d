//! Starts the real SyncDesk server in-process, on a fresh database of either backend, and talks
//! to it over HTTP the way a browser (or a script) would.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use app::error::AppError;
use app::model::{Role, Viewer};
use reqwest::cookie::{CookieStore, Jar};
use reqwest::header::{ACCEPT, HeaderMap, ORIGIN};
use reqwest::{StatusCode, Url};
use serde::de::DeserializeOwned;
use sqlx::Connection;
use syncdesk::accounts::{Accounts, ThrottlePolicy};
use syncdesk::audit::Actor;
use syncdesk::connectors::{DeliveryError, ErpApi, ShopAdmin, TransientKind};
use syncdesk::engine::mappings::ItemLookup;
use syncdesk::simulate::store::{StoreHandle, StoreSimConfig, spawn_store};
use syncdesk::store::{AuditFilter, AuditRecord, Store, UserRecord};
use syncdesk::web::{AppState, WebSettings};
use tokio::net::TcpListener;

/// The password every test account gets.
pub const PASSWORD: &str = "correct horse battery staple";
/// The secret the test server checks store webhooks against.
pub const WEBHOOK_SECRET: &str = "test-webhook-secret";
/// The session cookie's name.
pub const SESSION_COOKIE: &str = "syncdesk_session";
/// Where the PostgreSQL server is, unless `SYNCDESK_TEST_PG_URL` says otherwise.
const DEFAULT_PG_URL: &str = "postgres://postgres@127.0.0.1:5432/";

/// Instantiates each test body once per backend:
/// `test_fn => test_fn_sqlite, test_fn_postgres;` where `async fn test_fn(app: TestApp)`.
macro_rules! on_both_backends {
    ($($test:ident => $sqlite:ident, $postgres:ident;)+) => {
        $(
            #[tokio::test]
            async fn $sqlite() {
                $test($crate::harness::TestApp::start($crate::harness::Backend::Sqlite).await).await
            }

            #[tokio::test]
            async fn $postgres() {
                $test($crate::harness::TestApp::start($crate::harness::Backend::Postgres).await).await
            }
        )+
    };
}

/// Which database a test runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Removes the test's database when the test passes (kept after a failure, for a look).
enum Cleanup {
    SqliteDir(PathBuf),
    PostgresDb { admin_url: String, name: String },
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if std::thread::panicking() {
            match self {
                Cleanup::SqliteDir(dir) => {
                    eprintln!("kept the failed test's database in {}", dir.display())
                }
                Cleanup::PostgresDb { name, .. } => {
                    eprintln!("kept the failed test's database {name}")
                }
            }
            return;
        }
        match self {
            Cleanup::SqliteDir(dir) => {
                let _ = std::fs::remove_dir_all(dir);
            }
            Cleanup::PostgresDb { admin_url, name } => {
                // Drop runs inside the test's runtime, which cannot be blocked on; a short-lived
                // thread with its own runtime does the work. FORCE ends the server's connections.
                let (admin_url, sql) = (
                    admin_url.clone(),
                    format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
                );
                let _ = std::thread::spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .ok()?;
                    rt.block_on(async {
                        let mut conn = sqlx::PgConnection::connect(&admin_url).await.ok()?;
                        sqlx::query(&sql).execute(&mut conn).await.ok()?;
                        conn.close().await.ok()
                    })
                })
                .join();
            }
        }
    }
}

/// A running SyncDesk on a fresh database.
pub struct TestApp {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// The server's store, for setting up data and reading the audit log.
    pub store: Store,
    url: String,
    accounts: Accounts,
    erp: Arc<LateErp>,
    /// The simulated store behind the server's Admin API client (resync reads from it).
    pub shop: StoreHandle,
    _cleanup: Cleanup,
}

/// The server's ERP item lookup, connected once a test has a simulated ERP (see
/// [`TestApp::connect_erp`]); until then the ERP cannot be asked, as on a server without one.
#[derive(Default)]
struct LateErp(std::sync::Mutex<Option<Arc<dyn ErpApi>>>);

#[async_trait::async_trait]
impl ItemLookup for LateErp {
    async fn item_exists(&self, code: &str) -> Result<bool, DeliveryError> {
        let erp = self.0.lock().expect("lock").clone();
        match erp {
            Some(erp) => erp.item_exists(code).await,
            None => Err(DeliveryError::Transient {
                kind: TransientKind::Connect,
                message: "no ERP is connected to this test server".into(),
                request_id: None,
            }),
        }
    }
}

fn init_tracing() {
    // Errors the server logs (internal failures with their reference) show up next to a failing
    // test; RUST_LOG=debug shows more.
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "error".into()),
        )
        .try_init();
}

/// The PostgreSQL server the tests use: `SYNCDESK_TEST_PG_URL`, else [`DEFAULT_PG_URL`].
pub fn postgres_server() -> String {
    std::env::var("SYNCDESK_TEST_PG_URL").unwrap_or_else(|_| DEFAULT_PG_URL.to_string())
}

/// A fresh, empty PostgreSQL database: its URL, and the URL of the maintenance database.
async fn fresh_postgres_database() -> (String, String, String) {
    let base = postgres_server();
    let mut admin = Url::parse(&base)
        .unwrap_or_else(|e| panic!("SYNCDESK_TEST_PG_URL {base:?} is not a URL: {e}"));
    admin.set_path("/postgres");
    let name = format!("sd_test_{}", uuid::Uuid::new_v4().simple());
    let mut conn = sqlx::PgConnection::connect(admin.as_str()).await.unwrap_or_else(|e| {
        panic!(
            "The _postgres tests need a PostgreSQL server, but {} cannot be reached: {e}.\n\
             Start PostgreSQL there (trust auth for user postgres), or point SYNCDESK_TEST_PG_URL at another server.",
            syncdesk::store::redact(admin.as_str())
        )
    });
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("cannot create the test database {name}: {e}"));
    let _ = conn.close().await;
    let mut url = admin.clone();
    url.set_path(&format!("/{name}"));
    (url.to_string(), admin.to_string(), name)
}

/// A fresh, empty directory for a test's files.
pub fn temp_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("syncdesk-it-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("create a temp dir");
    dir
}

/// A fresh, empty database of `backend`, not migrated: its URL, and a guard that removes it when
/// dropped (unless the test failed).
pub async fn empty_database(backend: Backend) -> (String, EmptyDatabase) {
    let (url, cleanup) = match backend {
        Backend::Sqlite => {
            let dir = temp_dir();
            let url = format!("sqlite://{}", dir.join("syncdesk.db").display());
            (url, Cleanup::SqliteDir(dir))
        }
        Backend::Postgres => {
            let (url, admin_url, name) = fresh_postgres_database().await;
            (url, Cleanup::PostgresDb { admin_url, name })
        }
    };
    (url, EmptyDatabase { _cleanup: cleanup })
}

/// Removes an [`empty_database`] when dropped.
pub struct EmptyDatabase {
    _cleanup: Cleanup,
}

impl TestApp {
    /// Migrates a fresh database and serves SyncDesk on it, on a free local port. Sign-in locks
    /// last 1 s (2 s at most), so the throttle test stays quick.
    pub async fn start(backend: Backend) -> TestApp {
        init_tracing();
        let (url, EmptyDatabase { _cleanup: cleanup }) = empty_database(backend).await;
        // Small pools: dozens of test servers share one PostgreSQL (100 connections).
        let store = Store::connect_with(&url, 4)
            .await
            .unwrap_or_else(|e| panic!("connect to {url}: {e}"));
        store
            .migrate()
            .await
            .expect("migrations apply to a fresh database");

        let settings = WebSettings {
            throttle: ThrottlePolicy {
                base_lock: Duration::from_secs(1),
                max_lock: Duration::from_secs(2),
                ..Default::default()
            },
            shopify_webhook_secret: Some(syncdesk::secret::Secret::new(WEBHOOK_SECRET)),
            ..Default::default()
        };
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a local port");
        let addr: SocketAddr = listener.local_addr().expect("local address");
        let erp = Arc::new(LateErp::default());
        let shop = spawn_store(StoreSimConfig::default())
            .await
            .expect("store simulator");
        let admin = ShopAdmin::new(
            shop.base_url().clone(),
            shop.access_token(),
            Duration::from_secs(5),
        )
        .expect("Admin API client");
        let state = AppState::new(store.clone(), settings, addr)
            .with_item_lookup(erp.clone())
            .with_shop(admin);
        tokio::spawn(syncdesk::web::serve(
            listener,
            state,
            std::future::pending(),
        ));

        let accounts = Accounts::new(store.clone(), ThrottlePolicy::default());
        TestApp {
            base: format!("http://{addr}"),
            store,
            url: url.clone(),
            accounts,
            erp,
            shop,
            _cleanup: cleanup,
        }
    }

    /// From now on the server checks SKU mappings' item codes with `erp`.
    pub fn connect_erp(&self, erp: Arc<dyn ErpApi>) {
        *self.erp.0.lock().expect("lock") = Some(erp);
    }

    /// Creates an active account with [`PASSWORD`], as the CLI would.
    pub async fn add_user(&self, email: &str, name: &str, roles: &[Role]) -> UserRecord {
        self.accounts
            .add_user(
                email,
                name,
                PASSWORD.to_string(),
                roles.to_vec(),
                &Actor::System,
            )
            .await
            .unwrap_or_else(|e| panic!("add user {email}: {e}"))
    }

    /// A new browser-like client with its own cookie jar, not following redirects.
    pub fn client(&self) -> Client {
        let jar = Arc::new(Jar::default());
        let http = reqwest::Client::builder()
            .cookie_provider(jar.clone())
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .build()
            .expect("build an HTTP client");
        Client {
            http,
            jar,
            base: self.base.clone(),
        }
    }

    /// A client already signed in as `email` (with [`PASSWORD`]).
    pub async fn signed_in(&self, email: &str) -> Client {
        let client = self.client();
        let res = client.sign_in(email, PASSWORD).await;
        assert_eq!(
            res.status,
            StatusCode::OK,
            "sign-in of {email} failed: {}",
            res.body
        );
        client
    }

    /// The newest 100 audit entries, newest first.
    pub async fn audit(&self) -> Vec<AuditRecord> {
        self.store
            .audit_entries(&AuditFilter {
                limit: 100,
                ..Default::default()
            })
            .await
            .expect("read the audit log")
    }

    /// The database URL (for opening more pools, as more processes would).
    pub fn database_url(&self) -> String {
        self.url.clone()
    }

    /// The single integer a query answers (for asserting on what was stored).
    pub async fn count(&self, sql: &str) -> i64 {
        match self.store.db() {
            syncdesk::store::Db::Sqlite(pool) => sqlx::query_scalar(sql).fetch_one(pool).await,
            syncdesk::store::Db::Postgres(pool) => sqlx::query_scalar(sql).fetch_one(pool).await,
        }
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// Runs a statement that answers nothing (setting up what a test needs).
    pub async fn execute(&self, sql: &str) {
        match self.store.db() {
            syncdesk::store::Db::Sqlite(pool) => sqlx::query(sql).execute(pool).await.map(drop),
            syncdesk::store::Db::Postgres(pool) => sqlx::query(sql).execute(pool).await.map(drop),
        }
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// The text a query answers.
    pub async fn text(&self, sql: &str) -> String {
        match self.store.db() {
            syncdesk::store::Db::Sqlite(pool) => sqlx::query_scalar(sql).fetch_one(pool).await,
            syncdesk::store::Db::Postgres(pool) => sqlx::query_scalar(sql).fetch_one(pool).await,
        }
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// `/metrics`' counters, kept by triggers as attempts and webhooks are written, against the
    /// rows they count, counted whole.
    pub async fn assert_metric_counters_match_the_rows(&self) {
        use syncdesk::store::{LAG_BUCKETS_SECONDS, lag_bucket_bounds_ms};
        let counted = self.store.metric_counts().await.expect("metric counts");
        let total = |rows: i64, table: &'static str| async move {
            assert_eq!(
                rows,
                self.count(&format!("SELECT COUNT(*) FROM {table}")).await,
                "every row of {table} is counted"
            );
        };
        total(
            counted.attempts.iter().map(|(_, _, n)| n).sum(),
            "sync_attempts",
        )
        .await;
        for (destination, outcome, n) in &counted.attempts {
            let sql = format!(
                "SELECT COUNT(*) FROM sync_attempts WHERE destination = '{destination}' AND outcome = '{outcome}'"
            );
            assert_eq!(*n, self.count(&sql).await, "{destination} {outcome}");
        }
        total(
            counted.webhooks.iter().map(|(_, n)| n).sum(),
            "webhook_events",
        )
        .await;
        for (outcome, n) in &counted.webhooks {
            let sql = format!("SELECT COUNT(*) FROM webhook_events WHERE outcome = '{outcome}'");
            assert_eq!(*n, self.count(&sql).await, "webhooks {outcome}");
        }
        let lags = |destination: &str, what: &str| {
            format!(
                "SELECT CAST(COALESCE({what}, 0) AS BIGINT) FROM sync_attempts
                 WHERE outcome = 'synced' AND lag_ms IS NOT NULL AND destination = '{destination}'"
            )
        };
        let with_lags = self
            .count("SELECT COUNT(DISTINCT destination) FROM sync_attempts WHERE outcome = 'synced' AND lag_ms IS NOT NULL")
            .await;
        assert_eq!(
            counted.lags.len() as i64,
            with_lags,
            "one histogram a destination"
        );
        for h in &counted.lags {
            let d = h.destination.as_str();
            assert_eq!(
                h.count,
                self.count(&lags(d, "COUNT(*)")).await,
                "{d} lag count"
            );
            assert_eq!(
                h.sum_ms,
                self.count(&lags(d, "SUM(lag_ms)")).await,
                "{d} lag sum"
            );
            assert_eq!(h.buckets.len(), LAG_BUCKETS_SECONDS.len());
            for (bound, n) in lag_bucket_bounds_ms().zip(&h.buckets) {
                let sql = lags(
                    d,
                    &format!("SUM(CASE WHEN lag_ms <= {bound} THEN 1 ELSE 0 END)"),
                );
                assert_eq!(
                    *n,
                    self.count(&sql).await,
                    "{d} lags at or under {bound} ms"
                );
            }
        }
    }

    /// Every row of the hot tables names a parent that exists. PostgreSQL does not check these
    /// on write (migration 0022: the parents are written first, in the same transaction, and
    /// never deleted); SQLite does, as foreign keys.
    pub async fn assert_every_row_has_its_parent(&self) {
        for (child, orphans) in [
            (
                "sync_tasks",
                "SELECT COUNT(*) FROM sync_tasks t
                 WHERE NOT EXISTS (SELECT 1 FROM orders o WHERE o.store_order_id = t.store_order_id)",
            ),
            (
                "order_skus",
                "SELECT COUNT(*) FROM order_skus s
                 WHERE NOT EXISTS (SELECT 1 FROM orders o WHERE o.store_order_id = s.store_order_id)",
            ),
            (
                "orders",
                "SELECT COUNT(*) FROM orders o WHERE o.customer_id IS NOT NULL
                 AND NOT EXISTS (SELECT 1 FROM customers c WHERE c.id = o.customer_id)",
            ),
            (
                "sync_attempts",
                "SELECT COUNT(*) FROM sync_attempts a
                 WHERE NOT EXISTS (SELECT 1 FROM sync_tasks t WHERE t.id = a.task_id)",
            ),
        ] {
            assert_eq!(self.count(orphans).await, 0, "{child} rows without a parent");
        }
    }

    /// The audit entries with exactly this action, newest first.
    pub async fn audit_of(&self, action: &str) -> Vec<AuditRecord> {
        self.audit()
            .await
            .into_iter()
            .filter(|r| r.action == action)
            .collect()
    }
}

/// A browser-like HTTP client: a cookie jar, no automatic redirects.
pub struct Client {
    pub http: reqwest::Client,
    jar: Arc<Jar>,
    pub base: String,
}

/// A server function's answer, read in full.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Reply {
    async fn read(res: reqwest::Response) -> Reply {
        let status = res.status();
        let headers = res.headers().clone();
        let body = res.text().await.expect("read the response body");
        Reply {
            status,
            headers,
            body,
        }
    }

    /// The body as JSON of type `T`.
    pub fn json<T: DeserializeOwned>(&self) -> T {
        serde_json::from_str(&self.body).unwrap_or_else(|e| {
            panic!(
                "expected JSON ({e}) in a {} answer: {}",
                self.status, self.body
            )
        })
    }

    /// The body as the server function's error.
    pub fn error(&self) -> AppError {
        self.json()
    }

    /// A response header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

impl Client {
    pub fn url(&self, path: &str) -> Url {
        Url::parse(&format!("{}{path}", self.base)).expect("a valid URL")
    }

    /// A same-origin form POST to a server function, as the UI's own client sends it (JSON
    /// accepted, `Origin` of this site).
    pub async fn rpc(&self, path: &str, form: &[(&str, &str)]) -> Reply {
        self.rpc_with(path, form, &[]).await
    }

    /// Like [`Client::rpc`], with extra (or replacing) headers.
    pub async fn rpc_with(
        &self,
        path: &str,
        form: &[(&str, &str)],
        headers: &[(&str, &str)],
    ) -> Reply {
        let req = self
            .http
            .post(self.url(path))
            .header(ACCEPT, "application/json")
            .header(ORIGIN, self.base.as_str())
            .form(form);
        let mut built = req.build().expect("build the request");
        for (name, value) in headers {
            // Replace, rather than add to, the defaults above.
            built.headers_mut().insert(
                reqwest::header::HeaderName::from_bytes(name.as_bytes()).expect("header name"),
                reqwest::header::HeaderValue::from_str(value).expect("header value"),
            );
        }
        Reply::read(
            self.http
                .execute(built)
                .await
                .unwrap_or_else(|e| panic!("POST {path}: {e}")),
        )
        .await
    }

    /// A same-origin JSON POST to a server function declared with the JSON input codec.
    pub async fn rpc_json(&self, path: &str, body: &serde_json::Value) -> Reply {
        let res = self
            .http
            .post(self.url(path))
            .header(ACCEPT, "application/json")
            .header(ORIGIN, self.base.as_str())
            .json(body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST {path}: {e}"));
        Reply::read(res).await
    }

    /// A page GET, as a browser navigates (HTML accepted).
    pub async fn page(&self, path: &str) -> Reply {
        let res = self
            .http
            .get(self.url(path))
            .header(
                ACCEPT,
                "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
            )
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        Reply::read(res).await
    }

    /// Signs in through the server function.
    pub async fn sign_in(&self, email: &str, password: &str) -> Reply {
        self.rpc(
            "/rpc/session/sign_in",
            &[("email", email), ("password", password)],
        )
        .await
    }

    /// Who the server thinks this client is.
    pub async fn whoami(&self) -> Option<Viewer> {
        let res = self.rpc("/rpc/session/whoami", &[]).await;
        assert_eq!(
            res.status,
            StatusCode::OK,
            "whoami answered {}: {}",
            res.status,
            res.body
        );
        res.json()
    }

    /// The session cookie's current value in the jar.
    pub fn session_cookie(&self) -> Option<String> {
        let header = self.jar.cookies(&self.url("/"))?;
        header.to_str().ok()?.split("; ").find_map(|kv| {
            kv.strip_prefix(SESSION_COOKIE)
                .and_then(|rest| rest.strip_prefix('='))
                .map(str::to_string)
        })
    }

    /// Puts a session cookie into the jar, as an attacker fixing a victim's session would.
    pub fn plant_session(&self, value: &str) {
        self.jar
            .add_cookie_str(&format!("{SESSION_COOKIE}={value}; Path=/"), &self.url("/"));
    }
}

/// The `Set-Cookie` header that sets the session cookie, if the reply has one.
pub fn session_set_cookie(reply: &Reply) -> Option<String> {
    reply
        .headers
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{SESSION_COOKIE}=")))
        .map(str::to_string)
}

/// The fields of a role form: a ticked checkbox sends `on`, an unticked one nothing.
pub fn role_fields(roles: &[Role]) -> Vec<(&'static str, &'static str)> {
    roles.iter().map(|r| (r.as_str(), "on")).collect()
}

/// Serves `router` (a simulated store's) on a loopback port where only the first request is
/// answered and every later one is refused with a 400, as a store that stops partway through a
/// pass; returns its base URL.
pub async fn serve_refusing_after_the_first(router: axum::Router) -> String {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    let calls = Arc::new(AtomicUsize::new(0));
    let failing = router.layer(axum::middleware::from_fn(
        move |req: axum::extract::Request, next: axum::middleware::Next| {
            let calls = calls.clone();
            async move {
                if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                    next.run(req).await
                } else {
                    axum::response::IntoResponse::into_response((
                        reqwest::StatusCode::BAD_REQUEST,
                        "this page is gone",
                    ))
                }
            }
        },
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("listen");
    let url = format!("http://{}/", listener.local_addr().expect("address"));
    tokio::spawn(async move { axum::serve(listener, failing).await });
    url
}

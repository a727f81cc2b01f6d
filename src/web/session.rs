//! Cookie sessions stored in the database (either backend), the signed-in user of each request,
//! and the redirect to the sign-in page.

use std::net::SocketAddr;

use async_trait::async_trait;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use chrono::Utc;
use tower_sessions::cookie::SameSite;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{self, ExpiredDeletion, SessionStore};
use tower_sessions::{Expiry, Session, SessionManagerLayer};
use tower_sessions_sqlx_store::{PostgresStore, SqliteStore};

use super::AppState;
use crate::store::{Db, Store, UserRecord};

/// Session key: the signed-in user's id.
pub const USER_ID: &str = "user_id";
/// Session key: when they signed in (Unix milliseconds), for the absolute limit and to tell
/// sessions from before a deactivation apart. (Sessions from before it was milliseconds hold
/// `signed_in_at` instead, and are asked to sign in again.)
pub const SIGNED_IN_AT: &str = "signed_in_at_ms";
/// A session unused this long ends.
pub const IDLE_TIMEOUT: time::Duration = time::Duration::hours(2);
/// A session ends this long after sign-in, however active.
pub const ABSOLUTE_TIMEOUT_SECS: i64 = 12 * 60 * 60;

/// The signed-in user of a request (`None` when nobody is), resolved once by
/// [`require_sign_in`] and read by handlers and the UI's port.
#[derive(Clone, Debug)]
pub struct CurrentUser(pub Option<UserRecord>);

/// The session store over whichever backend SyncDesk runs on.
#[derive(Clone, Debug)]
pub enum AnySessionStore {
    /// SQLite.
    Sqlite(SqliteStore),
    /// PostgreSQL.
    Postgres(PostgresStore),
}

impl AnySessionStore {
    fn new(store: &Store) -> AnySessionStore {
        // The `sessions` table is created by our own migrations (tower-sessions' layout), so
        // several processes never race to create it.
        match store.db() {
            Db::Sqlite(pool) => AnySessionStore::Sqlite(
                SqliteStore::new(pool.clone())
                    .with_table_name("sessions")
                    .expect("valid table name"),
            ),
            Db::Postgres(pool) => AnySessionStore::Postgres(
                PostgresStore::new(pool.clone())
                    .with_schema_name("public")
                    .expect("valid schema name")
                    .with_table_name("sessions")
                    .expect("valid table name"),
            ),
        }
    }
}

#[async_trait]
impl SessionStore for AnySessionStore {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        match self {
            AnySessionStore::Sqlite(s) => s.create(record).await,
            AnySessionStore::Postgres(s) => s.create(record).await,
        }
    }
    async fn save(&self, record: &Record) -> session_store::Result<()> {
        match self {
            AnySessionStore::Sqlite(s) => s.save(record).await,
            AnySessionStore::Postgres(s) => s.save(record).await,
        }
    }
    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        match self {
            AnySessionStore::Sqlite(s) => s.load(id).await,
            AnySessionStore::Postgres(s) => s.load(id).await,
        }
    }
    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        match self {
            AnySessionStore::Sqlite(s) => s.delete(id).await,
            AnySessionStore::Postgres(s) => s.delete(id).await,
        }
    }
}

#[async_trait]
impl ExpiredDeletion for AnySessionStore {
    async fn delete_expired(&self) -> session_store::Result<()> {
        match self {
            AnySessionStore::Sqlite(s) => s.delete_expired().await,
            AnySessionStore::Postgres(s) => s.delete_expired().await,
        }
    }
}

/// The session layer: an HttpOnly, SameSite=Strict cookie (Secure over TLS) naming a session
/// kept in the database, ended after [`IDLE_TIMEOUT`] without use.
pub fn layer(store: &Store, tls: bool) -> SessionManagerLayer<AnySessionStore> {
    SessionManagerLayer::new(AnySessionStore::new(store))
        .with_name("syncdesk_session")
        .with_http_only(true)
        .with_same_site(SameSite::Strict)
        .with_secure(tls)
        .with_path("/")
        .with_expiry(Expiry::OnInactivity(IDLE_TIMEOUT))
}

/// Sweeps expired sessions every few minutes, in the background.
pub fn spawn_expired_deletion(store: &Store) {
    let sessions = AnySessionStore::new(store);
    tokio::spawn(async move {
        if let Err(err) = sessions
            .continuously_delete_expired(tokio::time::Duration::from_secs(300))
            .await
        {
            tracing::warn!(error = %err, "expired-session sweeper stopped");
        }
    });
}

/// Paths open without a session: the sign-in page, static files, health checks, and endpoints
/// that authenticate themselves (server functions check the session and role on their own and
/// answer 401/403; webhooks check an HMAC; the API a bearer token).
fn open_path(path: &str) -> bool {
    matches!(
        path,
        "/login" | "/healthz" | "/readyz" | "/favicon.svg" | "/favicon.ico" | "/metrics"
    ) || ["/pkg/", "/rpc/", "/webhooks/", "/api/v1/"]
        .iter()
        .any(|p| path.starts_with(p))
}

/// The signed-in user of this session, if the session is within its absolute lifetime and the
/// account is still active. An expired or orphaned session is emptied.
pub async fn current_user(session: &Session, store: &Store) -> anyhow::Result<Option<UserRecord>> {
    let Some(user_id) = session.get::<i64>(USER_ID).await? else {
        return Ok(None);
    };
    let signed_in_at = session.get::<i64>(SIGNED_IN_AT).await?.unwrap_or(0);
    if Utc::now().timestamp_millis() - signed_in_at > ABSOLUTE_TIMEOUT_SECS * 1000 {
        session.flush().await?;
        return Ok(None);
    }
    match store.user(user_id).await? {
        // A session from before the account was deactivated or given a new password is over,
        // even when the account is active again.
        Some(user)
            if user.active
                && user
                    .sessions_valid_from
                    .is_none_or(|from| signed_in_at > from.timestamp_millis()) =>
        {
            Ok(Some(user))
        }
        _ => {
            session.flush().await?;
            Ok(None)
        }
    }
}

/// Resolves the request's user into [`CurrentUser`]; a page asked for without a session is
/// redirected to the sign-in page (and back afterwards), anything else gets 401.
pub async fn require_sign_in(
    State(state): State<AppState>,
    session: Session,
    mut req: Request,
    next: Next,
) -> Response {
    let user = match current_user(&session, &state.store).await {
        Ok(user) => user,
        Err(err) => {
            tracing::error!(error = %err, "could not read the session");
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                "SyncDesk cannot read its database right now.\n",
            )
                .into_response();
        }
    };
    let path = req.uri().path().to_string();
    if user.is_none() && !open_path(&path) {
        let wants_page = matches!(*req.method(), Method::GET | Method::HEAD)
            && req
                .headers()
                .get(header::ACCEPT)
                .and_then(|a| a.to_str().ok())
                .is_none_or(|a| a.contains("text/html") || a.contains("*/*"));
        return if wants_page {
            let next = req
                .uri()
                .path_and_query()
                .map(|pq| pq.as_str())
                .unwrap_or("/");
            let target = if next == "/" {
                "/login".to_string()
            } else {
                format!("/login?next={}", encode_query(next))
            };
            Redirect::to(&target).into_response()
        } else {
            (StatusCode::UNAUTHORIZED, "Please sign in to continue.\n").into_response()
        };
    }
    req.extensions_mut().insert(CurrentUser(user));
    next.run(req).await
}

/// The client's address: the peer, or, behind a trusted proxy, the address that proxy saw.
///
/// That is the last `X-Forwarded-For` entry: a proxy appends the address it was reached from to
/// whatever the request already carried, so every entry before the last is the client's own
/// say, free to change with each request (and with it the sign-in throttle's key and the
/// audit's address). An entry that is not an IP address is ignored, and the peer is used.
pub fn client_address(parts: &axum::http::request::Parts, trust_proxy: bool) -> Option<String> {
    if trust_proxy && let Some(forwarded) = forwarded_by_proxy(&parts.headers) {
        return Some(forwarded.to_string());
    }
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip().to_string())
}

/// The last entry of the last `X-Forwarded-For` header, when it is an IP address — with or
/// without the port some proxies append (`203.0.113.9:51234`, `[2001:db8::1]:443`).
fn forwarded_by_proxy(headers: &axum::http::HeaderMap) -> Option<std::net::IpAddr> {
    let last_header = headers.get_all("x-forwarded-for").iter().next_back()?;
    let entry = last_header.to_str().ok()?.rsplit(',').next()?.trim();
    entry
        .parse::<std::net::IpAddr>()
        .ok()
        .or_else(|| entry.parse::<SocketAddr>().ok().map(|a| a.ip()))
        .or_else(|| {
            entry
                .strip_prefix('[')
                .and_then(|e| e.strip_suffix(']'))
                .and_then(|e| e.parse().ok())
        })
}

fn encode_query(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::client_address;

    fn parts(forwarded: &[&str]) -> axum::http::request::Parts {
        let mut request = axum::http::Request::builder();
        for value in forwarded {
            request = request.header("x-forwarded-for", *value);
        }
        request.body(()).expect("request").into_parts().0
    }

    /// Behind a trusted proxy the address is the one the proxy appended; what the client put in
    /// front of it (to change its throttle key with every request) does not count.
    #[test]
    fn the_proxy_s_own_entry_is_the_client_address() {
        let forged = parts(&["203.0.113.9, 198.51.100.7"]);
        assert_eq!(
            client_address(&forged, true).as_deref(),
            Some("198.51.100.7")
        );
        let two_headers = parts(&["203.0.113.9", "198.51.100.7"]);
        assert_eq!(
            client_address(&two_headers, true).as_deref(),
            Some("198.51.100.7")
        );
        let v6 = parts(&["2001:db8::1"]);
        assert_eq!(client_address(&v6, true).as_deref(), Some("2001:db8::1"));
        // Some proxies append the port too: every client must not share the proxy's address.
        for (entry, address) in [
            ("198.51.100.7:51234", "198.51.100.7"),
            ("[2001:db8::1]:443", "2001:db8::1"),
            ("[2001:db8::1]", "2001:db8::1"),
        ] {
            let with_port = parts(&[entry]);
            assert_eq!(client_address(&with_port, true).as_deref(), Some(address));
        }
        // Not an address: the peer's (none in this request) is used instead.
        assert_eq!(
            client_address(&parts(&["198.51.100.7, nonsense"]), true),
            None
        );
        // Without a trusted proxy the header is not read at all.
        assert_eq!(client_address(&forged, false), None);
    }
}

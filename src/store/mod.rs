//! Storage: one interface over SQLite (the embedded default) and PostgreSQL (for teams that run
//! several SyncDesk processes). Most SQL is shared — both dialects accept `$1` placeholders,
//! `RETURNING` and `ON CONFLICT` — and is written once inside [`on_pool!`], which compiles the
//! same block once per backend. Where the dialects differ, each backend's SQL sits side by side
//! with a comment saying why.

mod actions;
mod api_views;
mod audit;
mod batch;
mod completions;
mod edits;
mod finishing;
mod handoff;
mod ingest;
mod opening;
mod outcomes;
mod reconcile;
mod signal;
mod sku_import;
mod sqlite;
mod tasks;
mod throttle;
mod timeline;
mod tokens;
pub(crate) mod triage;
mod users;
mod views;
mod writer;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, SqlitePool};

pub use actions::{Released, RetryOutcome, SkuMapping};
pub use api_views::{
    AttemptView, DestinationDetail, ExceptionFilter, ExceptionView, LAG_BUCKETS_SECONDS,
    LagHistogram, MetricCounts, OrderDetail, lag_bucket_bounds_ms,
};
pub use audit::{AuditFilter, AuditRecord};
pub use edits::{NewPayloadEdit, PayloadEdit, PayloadEditInForce};
pub use ingest::{DESTINATIONS, Delivery, Outcome as IngestOutcome, Payload, UnreadState};
pub use reconcile::ReconciliationStatus;
pub use signal::WorkListener;
pub use sku_import::{ImportApplied, MappingRow};
pub use tasks::{AttemptRecord, ClaimedTask, NewException};
pub use throttle::ThrottleState;
pub use timeline::{AttemptEntry, EventEntry, ExceptionEntry, TIMELINE_LIMIT, Timeline};
pub use tokens::{Revoked, TokenListing, TokenRecord};
pub use triage::{Assignee, ExceptionScope, TriageAction, TriageReport};
pub use users::{NewUser, UserCredentials, UserRecord};
pub use views::{ExceptionGroup, OrderRow, QUEUE_STATES, TASK_STATES, UnmappedSku};
pub use writer::GroupCommits;

/// Runs `$body` with `$pool` bound to whichever backend `$db` holds. The body is compiled once
/// per backend, so the same SQL and binds are type-checked against both.
macro_rules! on_pool {
    ($db:expr, $pool:ident => $body:expr) => {
        match $db {
            $crate::store::Db::Sqlite($pool) => $body,
            $crate::store::Db::Postgres($pool) => $body,
        }
    };
}
pub(crate) use on_pool;

/// Runs a hot write: on SQLite `$sqlite(conn, …)` on the writer's connection, in its next group
/// commit; on PostgreSQL `$postgres(conn, …)` in a transaction of its own, run again when
/// PostgreSQL undoes it to break a deadlock.
/// The arguments are owned locals, moved into the write and lent to it by reference: the SQLite
/// writer may run the write again after a rolled-back batch.
macro_rules! hot_write {
    ($store:expr, $sqlite:path, $postgres:path, ($($arg:ident),* $(,)?)) => {{
        let store: &$crate::store::Store = $store;
        match (&store.writer, &store.db) {
            (Some(writer), _) => writer.write(move |conn| $sqlite(conn, $(&$arg),*)).await,
            // PostgreSQL may undo the transaction to break a deadlock (a worker or an operator
            // locking the same order and tasks in another order): nothing of it was written, so
            // it is written again rather than failed.
            (None, $crate::store::Db::Postgres(pool)) => {
                $crate::store::batch::retrying_deadlocks(|| async {
                    let mut tx = pool.begin().await?;
                    let done = $postgres(&mut tx, $(&$arg),*).await?;
                    tx.commit().await?;
                    Ok::<_, $crate::store::StoreError>(done)
                })
                .await
            }
            (None, $crate::store::Db::Sqlite(_)) => Err($crate::store::writer::not_committed(
                "SQLite's writer is not running",
            )),
        }
    }};
}
pub(crate) use hot_write;

/// Which dialect a pool speaks, for the few queries written per backend.
pub(crate) trait Dialect {
    /// True for PostgreSQL.
    const POSTGRES: bool;
}
impl Dialect for SqlitePool {
    const POSTGRES: bool = false;
}
impl Dialect for PgPool {
    const POSTGRES: bool = true;
}

/// Whether `pool` is PostgreSQL (inside [`on_pool!`], where its type is one or the other).
pub(crate) fn is_postgres<P: Dialect>(_pool: &P) -> bool {
    P::POSTGRES
}

/// A connection pool to one of the two backends.
#[derive(Clone, Debug)]
pub enum Db {
    /// Embedded SQLite (WAL, `synchronous = FULL`).
    Sqlite(SqlitePool),
    /// PostgreSQL (`synchronous_commit = on`, the server default).
    Postgres(PgPool),
}

/// Which backend a store runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// SQLite.
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

/// Errors from the storage layer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The `DATABASE_URL` could not be understood.
    #[error("DATABASE_URL must start with sqlite: or postgres: (got {0:?})")]
    UnsupportedUrl(String),
    /// The database could not be reached or opened.
    #[error("cannot open the database at {url}: {reason}")]
    Connect {
        /// The URL with any password hidden.
        url: String,
        /// Why, in one clause (the driver's own error repeats itself).
        reason: String,
    },
    /// A migration failed.
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A uniqueness rule was broken; the text says which, for a person.
    #[error("{0}")]
    Conflict(String),
    /// The request cannot be carried out as given; the text says why, for a person.
    #[error("{0}")]
    Invalid(String),
    /// The row asked for does not exist.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// Any other database error.
    #[error("database error: {0}")]
    Database(sqlx::Error),
    /// A database error on SQLite's writer connection (see `writer`).
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
}

impl From<sqlx::Error> for StoreError {
    /// Text PostgreSQL cannot hold (a NUL character, in a search or a value typed into a form;
    /// SQLite takes it) is the input's fault, not the database's: said as such, not a 500.
    fn from(err: sqlx::Error) -> StoreError {
        let unstorable = err
            .as_database_error()
            .and_then(|db| db.code())
            .is_some_and(|code| code == "22021" || code == "22P05");
        if unstorable {
            StoreError::Invalid(
                "The text holds a NUL character (\\u0000), which cannot be stored or searched \
                 for; type it again without it."
                    .into(),
            )
        } else {
            StoreError::Database(err)
        }
    }
}

/// The storage interface the rest of SyncDesk uses.
#[derive(Clone, Debug)]
pub struct Store {
    db: Db,
    /// SQLite's group commit for the hot writes; `None` on PostgreSQL.
    writer: Option<writer::Writer>,
    /// PostgreSQL's batched synced completions; `None` on SQLite.
    completions: Option<completions::Completions>,
    /// PostgreSQL's batched order deliveries; `None` on SQLite.
    ingests: Option<ingest::Ingests>,
    /// New orders' tasks leased at ingest to this process's workers.
    handoff: Arc<handoff::Handoff>,
    /// Claims run in this process.
    claims: Arc<ClaimCounts>,
}

/// Claims run in this process, and the tasks they took (for the benchmark and tests); on SQLite
/// a claim an idle check found nothing for counts too.
#[derive(Debug, Default)]
struct ClaimCounts {
    claims: std::sync::atomic::AtomicU64,
    tasks: std::sync::atomic::AtomicU64,
}

impl ClaimCounts {
    fn counted(&self, tasks: usize) {
        use std::sync::atomic::Ordering::Relaxed;
        self.claims.fetch_add(1, Relaxed);
        self.tasks.fetch_add(tasks as u64, Relaxed);
    }
}

/// How long a SQLite connection waits for another's write lock before it gives up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a pooled connection may sit idle before it is checked on its way out of the pool.
const CHECK_AFTER_IDLE: Duration = Duration::from_secs(10);

/// sqlx checks every connection with a round trip each time it leaves the pool (and again when
/// it comes back): under load, each statement or transaction run on the pool paid that extra
/// round trip. A connection just used is known to work; one idle for [`CHECK_AFTER_IDLE`] is
/// checked. The check on return stays: a connection that broke is closed then, and the
/// statement that met it fails once (a webhook is answered 503 and redelivered, a delivery runs
/// again).
fn checked_when_idle<DB: sqlx::Database>(
    options: sqlx::pool::PoolOptions<DB>,
) -> sqlx::pool::PoolOptions<DB> {
    use sqlx::Connection;
    options
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for >= CHECK_AFTER_IDLE {
                    conn.ping().await?;
                }
                Ok(true)
            })
        })
}

impl Store {
    /// Opens the database named by `url` (`sqlite:…` or `postgres:…`) with the default pool
    /// size (16 connections). A SQLite file is created on first use.
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        Store::connect_with(url, 16).await
    }

    /// Like [`Store::connect`], with at most `max_connections` connections. Size it so that
    /// every SyncDesk process together stays under PostgreSQL's `max_connections`.
    pub async fn connect_with(url: &str, max_connections: u32) -> Result<Store, StoreError> {
        let redacted = redact(url);
        let connect_err = |err: sqlx::Error| StoreError::Connect {
            url: redacted.clone(),
            reason: opening::reason(&err),
        };
        let (mut writer, mut completions, mut ingests) = (None, None, None);
        let handoff = Arc::new(handoff::Handoff::default());
        let db = if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url)
                .map_err(connect_err)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                // FULL: an acknowledged write survives an OS crash or power loss, not just a
                // process crash. See docs/OPERATIONS.md.
                .synchronous(SqliteSynchronous::Full)
                .foreign_keys(true)
                .busy_timeout(BUSY_TIMEOUT);
            opening::first_connection(&options, opening::CONNECT_WAIT)
                .await
                .map_err(connect_err)?;
            let pool = checked_when_idle(SqlitePoolOptions::new())
                .max_connections(max_connections.min(8))
                .acquire_timeout(Duration::from_secs(10))
                .connect_with(options)
                .await
                .map_err(connect_err)?;
            // The group commit's own connection (see `writer`), to the file the pool opened.
            let file: String =
                sqlx::query_scalar("SELECT file FROM pragma_database_list WHERE name = 'main'")
                    .fetch_one(&pool)
                    .await
                    .map_err(connect_err)?;
            if file.is_empty() {
                return Err(connect_err(sqlx::Error::Configuration(
                    "SyncDesk keeps its SQLite database in a file, not in memory: give a path"
                        .into(),
                )));
            }
            writer = Some(
                writer::Writer::spawn(file.into(), BUSY_TIMEOUT)
                    .await
                    .map_err(|err| connect_err(sqlx::Error::Io(err)))?,
            );
            Db::Sqlite(pool)
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            let options = PgConnectOptions::from_str(url).map_err(connect_err)?;
            opening::first_connection(&options, opening::CONNECT_WAIT)
                .await
                .map_err(connect_err)?;
            let pool = checked_when_idle(PgPoolOptions::new())
                .max_connections(max_connections)
                .acquire_timeout(Duration::from_secs(10))
                .connect_with(options)
                .await
                .map_err(connect_err)?;
            completions = Some(completions::spawn(pool.clone()));
            ingests = Some(ingest::spawn_pg_writer(pool.clone(), handoff.clone()));
            Db::Postgres(pool)
        } else {
            return Err(StoreError::UnsupportedUrl(redacted));
        };
        Ok(Store {
            db,
            writer,
            completions,
            ingests,
            handoff,
            claims: Arc::default(),
        })
    }

    /// Applies every migration not yet applied (idempotent; safe with several processes, as
    /// sqlx takes a lock on PostgreSQL).
    pub async fn migrate(&self) -> Result<(), StoreError> {
        match &self.db {
            Db::Sqlite(pool) => sqlx::migrate!("migrations/sqlite").run(pool).await?,
            Db::Postgres(pool) => sqlx::migrate!("migrations/postgres").run(pool).await?,
        }
        Ok(())
    }

    /// Which backend this store runs on.
    pub fn backend(&self) -> Backend {
        match self.db {
            Db::Sqlite(_) => Backend::Sqlite,
            Db::Postgres(_) => Backend::Postgres,
        }
    }

    /// The underlying pool (for the session store and tests).
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// SQLite's group commit so far in this process; `None` on PostgreSQL.
    pub fn group_commit_counts(&self) -> Option<GroupCommits> {
        self.writer.as_ref().map(writer::Writer::counts)
    }

    /// PostgreSQL's batched synced completions so far in this process: (statements,
    /// completions they carried); `None` on SQLite.
    pub fn completion_batch_counts(&self) -> Option<(u64, u64)> {
        self.completions
            .as_ref()
            .map(completions::Completions::counts)
    }

    /// Claims so far in this process: (claims, tasks they took).
    pub fn claim_counts(&self) -> (u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        (
            self.claims.claims.load(Relaxed),
            self.claims.tasks.load(Relaxed),
        )
    }

    /// PostgreSQL's batched order deliveries so far in this process: (calls, deliveries they
    /// carried); `None` on SQLite.
    pub fn ingest_batch_counts(&self) -> Option<(u64, u64)> {
        self.ingests.as_ref().map(ingest::Ingests::counts)
    }

    /// Whether the database answers a trivial query.
    pub async fn ping(&self) -> Result<(), StoreError> {
        on_pool!(&self.db, pool => sqlx::query("SELECT 1").execute(pool).await.map(|_| ()))?;
        Ok(())
    }

    /// Closes the pool, waiting for connections in use to be returned.
    pub async fn close(&self) {
        if let Some(writer) = &self.writer {
            writer.close().await;
        }
        on_pool!(&self.db, pool => pool.close().await)
    }
}

/// Turns a unique-constraint violation into a [`StoreError::Conflict`] with `message`.
pub(crate) fn conflict_on_unique(err: sqlx::Error, message: impl FnOnce() -> String) -> StoreError {
    match &err {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict(message()),
        _ => StoreError::Database(err),
    }
}

/// The URL with its password replaced by `***`, for messages: the one after the user name,
/// and any in the query (`?password=`, which PostgreSQL's drivers read too). A URL that does
/// not parse is not shown at all when it may hold a password (an unencoded `#` or `/` in one
/// breaks the parse).
pub fn redact(url: &str) -> String {
    const SECRET_KEYS: [&str; 2] = ["password", "sslpassword"];
    const HIDDEN: &str =
        "(a database URL that does not parse; not shown, as it may hold a password)";
    let Ok(mut parsed) = url::Url::parse(url) else {
        return if url.contains('@') || url.to_ascii_lowercase().contains("password") {
            HIDDEN.to_string()
        } else {
            url.to_string()
        };
    };
    // A password with an unencoded `#`, `/` or `?` after leading digits still parses, as a
    // port followed by a fragment, path or query holding the rest, `@host` included.
    if parsed.fragment().is_some()
        || parsed.path().contains('@')
        || parsed.query().is_some_and(|q| q.contains('@'))
    {
        return HIDDEN.to_string();
    }
    let mut changed = false;
    if parsed.password().is_some() {
        let _ = parsed.set_password(Some("***"));
        changed = true;
    }
    let secret = |key: &str| SECRET_KEYS.iter().any(|s| key.eq_ignore_ascii_case(s));
    if parsed.query_pairs().any(|(key, _)| secret(&key)) {
        let pairs: Vec<(String, String)> = parsed
            .query_pairs()
            .map(|(key, value)| {
                let value = if secret(&key) {
                    "***".into()
                } else {
                    value.into_owned()
                };
                (key.into_owned(), value)
            })
            .collect();
        parsed.query_pairs_mut().clear().extend_pairs(pairs);
        changed = true;
    }
    if changed {
        parsed.to_string()
    } else {
        url.to_string()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn redacts_passwords() {
        assert_eq!(
            super::redact("postgres://u:secret@h/db"),
            "postgres://u:***@h/db"
        );
        assert_eq!(super::redact("sqlite:data.db"), "sqlite:data.db");
        assert_eq!(
            super::redact("postgres://app@db/syncdesk?sslmode=require&password=s3cret"),
            "postgres://app@db/syncdesk?sslmode=require&password=***"
        );
        assert_eq!(
            super::redact("postgres://app@db/x?PassWord=s3cret"),
            "postgres://app@db/x?PassWord=***"
        );
        // An unencoded `#`, `/` or `?` in a password: nothing of the URL is shown, whether it
        // then fails to parse (a port of letters) or parses (a port of digits).
        for url in [
            "postgres://app:pa#ss@db/x",
            "postgres://app:1234#x@db/db",
            "postgres://app:1234/x@db/db",
            "postgres://app:1234?x@db/db",
        ] {
            let hidden = super::redact(url);
            assert!(
                !hidden.contains("@db") && hidden.contains("not shown"),
                "{url}: {hidden}"
            );
        }
    }

    /// SQLite's writer opens the file the pool opened; a database only in memory has none, and
    /// is refused with a sentence that says so rather than split in two.
    #[tokio::test]
    async fn an_in_memory_sqlite_database_is_refused() {
        for url in [
            "sqlite::memory:",
            "sqlite://syncdesk-never-created.db?mode=memory",
        ] {
            let err = super::Store::connect(url).await.unwrap_err().to_string();
            assert!(err.contains("in a file, not in memory"), "{url}: {err}");
        }
        assert!(!std::path::Path::new("syncdesk-never-created.db").exists());
    }
}

//! Read models for the JSON API and `/metrics`: one order with its state and attempts at each
//! destination, the exception list with filters and keyset paging, and the counts behind the
//! Prometheus metrics. All SQL here is shared by both backends; PostgreSQL's stricter typing is
//! why every count is `COUNT(*)` (BIGINT → `i64`) and `status` is read as `i32` (INTEGER).

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::types::Json;

use super::triage::{ExceptionScope, bind_scope, scope_sql};
use super::{Store, StoreError, is_postgres, on_pool};

/// How many attempts per destination an order's detail shows (newest first).
pub const ORDER_ATTEMPTS_SHOWN: i64 = 20;

/// The upper bounds (seconds) of the sync-lag histogram's buckets, `+Inf` aside.
pub const LAG_BUCKETS_SECONDS: [f64; 10] = [0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];

/// An order as the API shows it.
#[derive(Clone, Debug, Serialize, sqlx::FromRow)]
pub struct OrderDetail {
    /// Store order id.
    pub store_order_id: i64,
    /// "#1042".
    pub name: String,
    /// Lifecycle.
    pub lifecycle: String,
    /// Currency.
    pub currency: String,
    /// Total, decimal text (never a float).
    pub total: String,
    /// Our version of the order.
    pub version: i64,
    /// When the store last changed it.
    pub store_updated_at: DateTime<Utc>,
    /// Its state at each destination, by destination name.
    #[sqlx(skip)]
    pub destinations: Vec<DestinationDetail>,
}

/// One order's sync task at one destination.
#[derive(Clone, Debug, Serialize, sqlx::FromRow)]
pub struct DestinationDetail {
    /// Task id (not shown).
    #[serde(skip)]
    pub task_id: i64,
    /// `crm` or `erp`.
    pub destination: String,
    /// Task state.
    pub state: String,
    /// The version it should reach.
    pub target_version: i64,
    /// The version it has acknowledged.
    pub synced_version: Option<i64>,
    /// The destination's id for the order.
    pub external_id: Option<String>,
    /// The newest attempts, newest first.
    #[sqlx(skip)]
    pub attempts: Vec<AttemptView>,
}

/// One delivery attempt.
#[derive(Clone, Debug, Serialize, sqlx::FromRow)]
pub struct AttemptView {
    /// Attempt number within its run.
    pub attempt: i64,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// How long it took.
    pub duration_ms: i64,
    /// `synced`, `transient`, `needs_action`, `auth` or `fenced`.
    pub outcome: String,
    /// The destination's HTTP status, when it answered.
    pub status: Option<i32>,
    /// What went wrong, when something did.
    pub message: Option<String>,
    /// The destination's request id, for its support.
    pub request_id: Option<String>,
}

/// Which exceptions to list, a page at a time.
#[derive(Clone, Debug, Default)]
pub struct ExceptionFilter {
    /// Which exceptions.
    pub scope: ExceptionScope,
    /// Only ids below this one (the previous page's `next_before_id`), or above it when
    /// `oldest_first`.
    pub before_id: Option<i64>,
    /// Oldest first (waiting longest) instead of newest first.
    pub oldest_first: bool,
    /// At most this many.
    pub limit: i64,
}

/// An exception as the API lists it.
#[derive(Clone, Debug, Serialize, sqlx::FromRow)]
pub struct ExceptionView {
    /// Exception id.
    pub id: i64,
    /// The order's store id (none for a destination-wide cause).
    pub store_order_id: Option<i64>,
    /// The order's name.
    pub order_name: Option<String>,
    /// `crm` or `erp`.
    pub destination: String,
    /// Machine code.
    pub code: String,
    /// `needs_action`, `transient` or `exhausted`.
    pub kind: String,
    /// What happened, for a person.
    pub message: String,
    /// What to do about it.
    pub action: String,
    /// The order fields concerned.
    pub fields: Json<serde_json::Value>,
    /// The cause fingerprint.
    pub fingerprint: String,
    /// `open`, `snoozed`, `resolved` or `skipped`.
    pub status: String,
    /// When it was opened.
    pub created_at: DateTime<Utc>,
    /// Who it is assigned to (user id).
    pub assignee_id: Option<i64>,
    /// Their name.
    pub assignee: Option<String>,
    /// Snoozed until.
    pub snoozed_until: Option<DateTime<Utc>>,
    /// When it was closed (resolved or skipped).
    pub resolved_at: Option<DateTime<Utc>>,
    /// Who or what closed it.
    pub resolved_by: Option<String>,
    /// How: the reason, the note, or what the engine did.
    pub resolution: Option<String>,
}

/// The counts behind `/metrics`.
#[derive(Clone, Debug, Default)]
pub struct MetricCounts {
    /// `(destination, state, tasks)`.
    pub queue_depth: Vec<(String, String, i64)>,
    /// `(code, open exceptions)`.
    pub exceptions_open: Vec<(String, i64)>,
    /// `(destination, outcome, attempts)`.
    pub attempts: Vec<(String, String, i64)>,
    /// Synced attempts at or under each of [`LAG_BUCKETS_SECONDS`] (cumulative).
    pub lag_buckets: Vec<i64>,
    /// Synced attempts with a lag.
    pub lag_count: i64,
    /// Their summed lag, in milliseconds.
    pub lag_sum_ms: i64,
    /// `(outcome, webhook deliveries)`.
    pub webhooks: Vec<(String, i64)>,
    /// `(destination, paused)`.
    pub paused: Vec<(String, bool)>,
}

impl Store {
    /// One order with its task and newest attempts at each destination.
    pub async fn order_detail(
        &self,
        store_order_id: i64,
    ) -> Result<Option<OrderDetail>, StoreError> {
        let found = on_pool!(&self.db, pool => {
            let order = sqlx::query_as::<_, OrderDetail>(
                "SELECT store_order_id, name, lifecycle, currency, total, version, store_updated_at
                 FROM orders WHERE store_order_id = $1",
            )
            .bind(store_order_id)
            .fetch_optional(pool)
            .await?;
            let Some(mut order) = order else {
                return Ok(None);
            };
            order.destinations = sqlx::query_as::<_, DestinationDetail>(
                "SELECT id AS task_id, destination, state, target_version, synced_version, external_id
                 FROM sync_tasks WHERE store_order_id = $1 ORDER BY destination",
            )
            .bind(store_order_id)
            .fetch_all(pool)
            .await?;
            for dest in &mut order.destinations {
                dest.attempts = sqlx::query_as::<_, AttemptView>(
                    "SELECT attempt, started_at, duration_ms, outcome, status, message, request_id
                     FROM sync_attempts WHERE task_id = $1 ORDER BY id DESC LIMIT $2",
                )
                .bind(dest.task_id)
                .bind(ORDER_ATTEMPTS_SHOWN)
                .fetch_all(pool)
                .await?;
            }
            Ok::<_, StoreError>(Some(order))
        })?;
        Ok(found)
    }

    /// Exceptions matching `filter`, newest first.
    pub async fn exceptions(
        &self,
        filter: &ExceptionFilter,
    ) -> Result<Vec<ExceptionView>, StoreError> {
        // `$n IS NULL OR …` keeps one statement for every combination of filters; sqlx sends
        // each parameter's type, so PostgreSQL accepts the untyped-looking NULL tests.
        let binds = filter.scope.binds();
        let (cursor, order) = if filter.oldest_first {
            ("e.id > $10", "ASC")
        } else {
            ("e.id < $10", "DESC")
        };
        let rows = on_pool!(&self.db, pool => {
            let sql = format!(
                "SELECT e.id, e.store_order_id, o.name AS order_name, e.destination, e.code, e.kind, e.message,
                        e.action, e.fields, e.fingerprint, e.status, e.created_at, e.assignee_id, u.display_name AS assignee,
                        e.snoozed_until, e.resolved_at, e.resolved_by, e.resolution
                 FROM exceptions e
                 LEFT JOIN orders o ON o.store_order_id = e.store_order_id
                 LEFT JOIN users u ON u.id = e.assignee_id
                 WHERE {} AND ($10 IS NULL OR {cursor})
                 ORDER BY e.id {order}
                 LIMIT $11",
                scope_sql(is_postgres(pool), &filter.scope)
            );
            bind_scope!(sqlx::query_as::<_, ExceptionView>(&sql), &binds)
                .bind(filter.before_id)
                .bind(filter.limit)
                .fetch_all(pool)
                .await
        })?;
        Ok(rows)
    }

    /// How many exceptions match `scope`.
    pub async fn count_exceptions(&self, scope: &ExceptionScope) -> Result<i64, StoreError> {
        let binds = scope.binds();
        let n = on_pool!(&self.db, pool => {
            let sql = format!(
                "SELECT COUNT(*) FROM exceptions e WHERE {}",
                scope_sql(is_postgres(pool), scope)
            );
            bind_scope!(sqlx::query_scalar::<_, i64>(&sql), &binds).fetch_one(pool).await
        })?;
        Ok(n)
    }

    /// The counts `/metrics` reports, read in a handful of aggregate queries.
    pub async fn metric_counts(&self) -> Result<MetricCounts, StoreError> {
        // One COUNT per bucket over the synced attempts; COUNT is BIGINT on PostgreSQL and never
        // NULL, unlike SUM over no rows.
        let buckets: Vec<String> = LAG_BUCKETS_SECONDS
            .iter()
            .map(|s| {
                format!(
                    "COUNT(CASE WHEN lag_ms <= {} THEN 1 END)",
                    (s * 1000.0).round() as i64
                )
            })
            .collect();
        let lag_sql = format!(
            "SELECT COUNT(*), CAST(COALESCE(SUM(lag_ms), 0) AS BIGINT), {}
             FROM sync_attempts WHERE outcome = 'synced' AND lag_ms IS NOT NULL",
            buckets.join(", ")
        );
        let counts = on_pool!(&self.db, pool => {
            use sqlx::Row;
            let queue_depth = sqlx::query_as::<_, (String, String, i64)>(
                "SELECT destination, state, COUNT(*) FROM sync_tasks GROUP BY destination, state ORDER BY destination, state",
            )
            .fetch_all(pool)
            .await?;
            // From the per-cause summary of open and snoozed exceptions: a scrape reads a few
            // thousand rows, not every open exception.
            let exceptions_open = sqlx::query_as::<_, (String, i64)>(
                "SELECT code, CAST(SUM(exceptions) AS BIGINT) FROM exception_causes GROUP BY code ORDER BY code",
            )
            .fetch_all(pool)
            .await?;
            let attempts = sqlx::query_as::<_, (String, String, i64)>(
                "SELECT destination, outcome, COUNT(*) FROM sync_attempts GROUP BY destination, outcome ORDER BY destination, outcome",
            )
            .fetch_all(pool)
            .await?;
            let lag = sqlx::query(&lag_sql).fetch_one(pool).await?;
            let mut lag_buckets = Vec::with_capacity(LAG_BUCKETS_SECONDS.len());
            for i in 0..LAG_BUCKETS_SECONDS.len() {
                lag_buckets.push(lag.try_get::<i64, _>(i + 2)?);
            }
            let webhooks = sqlx::query_as::<_, (String, i64)>(
                "SELECT outcome, COUNT(*) FROM webhook_events GROUP BY outcome ORDER BY outcome",
            )
            .fetch_all(pool)
            .await?;
            let paused = sqlx::query_as::<_, (String, bool)>("SELECT name, paused FROM destinations ORDER BY name")
                .fetch_all(pool)
                .await?;
            Ok::<_, StoreError>(MetricCounts {
                queue_depth,
                exceptions_open,
                attempts,
                lag_count: lag.try_get::<i64, _>(0)?,
                lag_sum_ms: lag.try_get::<i64, _>(1)?,
                lag_buckets,
                webhooks,
                paused,
            })
        })?;
        Ok(counts)
    }
}

//! Read models for the JSON API and `/metrics`: one order with its state and attempts at each
//! destination, the exception list with filters and keyset paging, and the counts behind the
//! Prometheus metrics. All SQL here is shared by both backends; PostgreSQL's stricter typing is
//! why every count is `COUNT(*)` (BIGINT → `i64`) and `status` is read as `i32` (INTEGER).

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::types::Json;

use super::triage::{ExceptionScope, bind_scope, scope_sql};
use super::{Db, Store, StoreError, is_postgres, on_pool};

/// How many attempts per destination an order's detail shows (newest first).
pub const ORDER_ATTEMPTS_SHOWN: i64 = 20;

/// The upper bounds (seconds) of the sync-lag histogram's buckets, `+Inf` aside.
pub const LAG_BUCKETS_SECONDS: [f64; 10] = [0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];

/// The bounds of [`LAG_BUCKETS_SECONDS`] in milliseconds, as `sync_attempts.lag_ms` and the
/// counters' `lag_le_ms` hold lags.
pub fn lag_bucket_bounds_ms() -> impl Iterator<Item = i64> {
    LAG_BUCKETS_SECONDS
        .iter()
        .map(|s| (s * 1000.0).round() as i64)
}

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
    /// `synced`, `transient`, `needs_action`, `auth`, `exhausted` (the last attempt of a
    /// dead-lettered task) or `manual` (done by hand: its exception resolved by a person).
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
    /// The lag histogram of each destination that has synced an attempt with a lag, by name.
    pub lags: Vec<LagHistogram>,
    /// `(outcome, webhook deliveries)`.
    pub webhooks: Vec<(String, i64)>,
    /// `(destination, paused)`.
    pub paused: Vec<(String, bool)>,
}

/// One destination's synced attempts by their lag.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LagHistogram {
    /// `crm` or `erp`.
    pub destination: String,
    /// Synced attempts at or under each of [`LAG_BUCKETS_SECONDS`] (cumulative).
    pub buckets: Vec<i64>,
    /// Synced attempts with a lag.
    pub count: i64,
    /// Their summed lag, in milliseconds.
    pub sum_ms: i64,
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

    /// The counts `/metrics` reports, read in a handful of small queries: the attempts, the lag
    /// histogram and the webhooks from the counters the triggers of `attempt_counts` and
    /// `webhook_counts` keep (a few rows, however long the history), the queue depth from the
    /// tasks still in the queue (through the indexes on their state).
    pub async fn metric_counts(&self) -> Result<MetricCounts, StoreError> {
        // The waiting states through `sync_tasks_due` (PostgreSQL's holds only those), the
        // states that wait on an operator through `sync_tasks_by_state_change`.
        const QUEUE_DEPTH: &str = "
            SELECT destination, state, COUNT(*) FROM sync_tasks
            WHERE state IN ('pending', 'retrying', 'running') GROUP BY destination, state
            UNION ALL
            SELECT destination, state, COUNT(*) FROM sync_tasks
            WHERE state IN ('blocked', 'dead') GROUP BY destination, state";
        // SUM over BIGINT is NUMERIC on PostgreSQL.
        const ATTEMPTS: &str = "
            SELECT destination, outcome, CAST(SUM(attempts) AS BIGINT) FROM attempt_counts
            GROUP BY destination, outcome ORDER BY destination, outcome";
        const LAGS: &str = "
            SELECT destination, lag_le_ms, CAST(SUM(attempts) AS BIGINT), CAST(SUM(lag_sum_ms) AS BIGINT)
            FROM attempt_counts WHERE lag_le_ms >= 0 GROUP BY destination, lag_le_ms
            ORDER BY destination";
        // An outcome's count is 0 only when every delivery recorded under it was rewritten to
        // another in the same transaction: not an outcome any delivery ended with.
        const WEBHOOKS: &str = "
            SELECT outcome, CAST(SUM(webhooks) AS BIGINT) FROM webhook_counts
            GROUP BY outcome HAVING SUM(webhooks) > 0 ORDER BY outcome";
        let (queue_depth, exceptions_open, attempts, lags, webhooks, paused) = on_pool!(&self.db, pool => {
            let queue_depth = sqlx::query_as::<_, (String, String, i64)>(QUEUE_DEPTH)
                .fetch_all(pool)
                .await?;
            // From the per-cause summary of open and snoozed exceptions: a scrape reads a few
            // thousand rows, not every open exception.
            let exceptions_open = sqlx::query_as::<_, (String, i64)>(
                "SELECT code, CAST(SUM(exceptions) AS BIGINT) FROM exception_causes GROUP BY code ORDER BY code",
            )
            .fetch_all(pool)
            .await?;
            let attempts = sqlx::query_as::<_, (String, String, i64)>(ATTEMPTS)
                .fetch_all(pool)
                .await?;
            let lags = sqlx::query_as::<_, (String, i64, i64, i64)>(LAGS).fetch_all(pool).await?;
            let webhooks = sqlx::query_as::<_, (String, i64)>(WEBHOOKS)
                .fetch_all(pool)
                .await?;
            let paused = sqlx::query_as::<_, (String, bool)>("SELECT name, paused FROM destinations ORDER BY name")
                .fetch_all(pool)
                .await?;
            Ok::<_, StoreError>((queue_depth, exceptions_open, attempts, lags, webhooks, paused))
        })?;
        Ok(MetricCounts {
            queue_depth,
            exceptions_open,
            attempts,
            lags: lag_histograms(&lags),
            webhooks,
            paused,
        })
    }

    /// Moves the metric counters of PostgreSQL connections that have closed into slot 0 (each
    /// connection counts into rows of its own: migration 0018), so the counter tables stay a few
    /// rows per open connection. SQLite's one writer keeps one row per count: nothing to do.
    ///
    /// Safe beside writers and other folds: a closed connection writes its rows no more; should
    /// its pid be reused and the new connection add to a row being moved, one waits for the
    /// other (neither holds anything the other needs next) and the row's latest count is moved;
    /// two folds move each row once (the second finds it gone).
    pub async fn fold_metric_counts(&self) -> Result<(), StoreError> {
        const CLOSED: &str =
            "slot <> 0 AND NOT EXISTS (SELECT FROM pg_stat_activity a WHERE a.pid = slot)";
        let Db::Postgres(pool) = &self.db else {
            return Ok(());
        };
        sqlx::query(&format!(
            "WITH moved AS (DELETE FROM attempt_counts WHERE {CLOSED}
                            RETURNING destination, outcome, lag_le_ms, attempts, lag_sum_ms)
             INSERT INTO attempt_counts AS c (destination, outcome, lag_le_ms, slot, attempts, lag_sum_ms)
             SELECT destination, outcome, lag_le_ms, 0, SUM(attempts), SUM(lag_sum_ms) FROM moved
             GROUP BY destination, outcome, lag_le_ms ORDER BY destination, outcome, lag_le_ms
             ON CONFLICT (destination, outcome, lag_le_ms, slot) DO UPDATE SET
                 attempts = c.attempts + excluded.attempts, lag_sum_ms = c.lag_sum_ms + excluded.lag_sum_ms"
        ))
        .execute(pool)
        .await?;
        sqlx::query(&format!(
            "WITH moved AS (DELETE FROM webhook_counts WHERE {CLOSED} RETURNING outcome, webhooks)
             INSERT INTO webhook_counts AS c (outcome, slot, webhooks)
             SELECT outcome, 0, SUM(webhooks) FROM moved GROUP BY outcome ORDER BY outcome
             ON CONFLICT (outcome, slot) DO UPDATE SET webhooks = c.webhooks + excluded.webhooks"
        ))
        .execute(pool)
        .await?;
        Ok(())
    }
}

/// Each destination's histogram, with cumulative counts, one per bound of
/// [`LAG_BUCKETS_SECONDS`], from the synced attempts counted per destination and bucket bound
/// `(destination, bound in ms, attempts, their summed lag)`, ordered by destination.
fn lag_histograms(lags: &[(String, i64, i64, i64)]) -> Vec<LagHistogram> {
    lags.chunk_by(|a, b| a.0 == b.0)
        .map(|rows| LagHistogram {
            destination: rows[0].0.clone(),
            buckets: lag_bucket_bounds_ms()
                .map(|bound_ms| {
                    rows.iter()
                        .filter(|(_, le, _, _)| *le <= bound_ms)
                        .map(|(_, _, n, _)| n)
                        .sum()
                })
                .collect(),
            count: rows.iter().map(|(_, _, n, _)| n).sum(),
            sum_ms: rows.iter().map(|(_, _, _, ms)| ms).sum(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The triggers put each lag into a bucket by bounds written out in SQL; they must be the
    /// histogram's.
    #[test]
    fn the_migrations_bucket_lags_at_the_histograms_bounds() {
        let bounds: Vec<i64> = lag_bucket_bounds_ms().collect();
        for (name, sql) in [
            (
                "PostgreSQL 0018",
                include_str!("../../migrations/postgres/0018_metric_counts.sql"),
            ),
            (
                "SQLite 0012",
                include_str!("../../migrations/sqlite/0012_metric_counts.sql"),
            ),
        ] {
            let written: Vec<i64> = sql
                .split("lag_ms <= ")
                .skip(1)
                .map(|rest| {
                    let bound = rest.split_whitespace().next().expect("a bound");
                    bound.parse().expect("a number")
                })
                .collect();
            // Each CASE lists every bound, in order.
            assert!(!written.is_empty(), "{name}");
            assert_eq!(written.len() % bounds.len(), 0, "{name}: {written:?}");
            for case in written.chunks(bounds.len()) {
                assert_eq!(case, bounds, "{name}");
            }
        }
    }

    #[test]
    fn each_bucket_counts_the_lags_at_or_under_its_bound() {
        // The CRM: 2 lags of at most 50 ms, 3 in (50, 100], 4 in (2.5 s, 5 s], 1 past a
        // minute. The ERP: 1 of 20 s, counted apart.
        let row = |d: &str, le, n, ms| (d.to_string(), le, n, ms);
        let lags = [
            row("crm", 100, 3, 240),
            row("crm", 50, 2, 60),
            row("crm", 5000, 4, 14_000),
            row("crm", i64::MAX, 1, 90_000),
            row("erp", 30_000, 1, 20_000),
        ];
        let histograms = lag_histograms(&lags);
        assert_eq!(
            histograms[0],
            LagHistogram {
                destination: "crm".into(),
                buckets: vec![2, 5, 5, 5, 5, 5, 9, 9, 9, 9],
                count: 10,
                sum_ms: 104_300,
            },
            "bounds: {LAG_BUCKETS_SECONDS:?}"
        );
        assert_eq!(
            histograms[1],
            LagHistogram {
                destination: "erp".into(),
                buckets: vec![0, 0, 0, 0, 0, 0, 0, 0, 1, 1],
                count: 1,
                sum_ms: 20_000,
            }
        );
        assert_eq!(histograms.len(), 2);
    }
}

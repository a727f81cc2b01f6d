//! Read models for the screens: exceptions grouped by cause, and recent orders with each
//! destination's state.

use chrono::{DateTime, Utc};

use super::triage::{Assignee, ExceptionScope, bind_scope, given, scope_sql};
use super::{Store, StoreError, is_postgres, on_pool};

/// The states a destination's task can be in, as `sync_tasks.state` holds them.
pub const TASK_STATES: [&str; 7] = [
    "pending", "running", "retrying", "blocked", "synced", "dead", "skipped",
];

/// The states of a task still waiting for something (a worker, a retry, an operator): the
/// queue depth `/metrics` reports, every one (a queue that empties shows 0 rather than
/// vanishing), in this order. Synced and skipped tasks are done; their number only grows with
/// history, and counting them took a scan of every task.
pub const QUEUE_STATES: [&str; 5] = ["pending", "running", "retrying", "blocked", "dead"];

/// Open exceptions sharing one cause.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct ExceptionGroup {
    /// The cause fingerprint, e.g. `missing_sku:erp:ABC-123`.
    pub fingerprint: String,
    /// Machine code.
    pub code: String,
    /// `needs_action`, `transient` or `exhausted`.
    pub kind: String,
    /// The suggested action.
    pub action: String,
    /// The newest exception's sentence.
    pub message: String,
    /// How many are open.
    pub open: i64,
    /// The oldest one's creation.
    pub oldest: DateTime<Utc>,
    /// Destinations affected, comma-separated.
    pub destinations: String,
}

/// An order with its state at each destination.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct OrderRow {
    /// Store order id.
    pub store_order_id: i64,
    /// "#1042".
    pub name: String,
    /// Lifecycle.
    pub lifecycle: String,
    /// Currency.
    pub currency: String,
    /// Total, decimal text.
    pub total: String,
    /// Our version.
    pub version: i64,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// CRM task state.
    pub crm_state: Option<String>,
    /// ERP task state.
    pub erp_state: Option<String>,
    /// Since when the CRM has been waiting for this order's current version (unsynced).
    pub crm_waiting_since: Option<DateTime<Utc>>,
    /// Since when the ERP has been waiting for it.
    pub erp_waiting_since: Option<DateTime<Utc>>,
}

impl Store {
    /// Exceptions in `scope` grouped by cause — biggest group first, or the one waiting longest
    /// first with `oldest_first`; ties by fingerprint. Without a status in the scope, the open and
    /// snoozed ones.
    pub async fn exception_groups(
        &self,
        scope: &ExceptionScope,
        oldest_first: bool,
        limit: i64,
    ) -> Result<Vec<ExceptionGroup>, StoreError> {
        if summarised(scope) {
            self.groups_from_summary(scope, oldest_first, limit).await
        } else if subtractable(scope) {
            self.groups_by_subtraction(scope, oldest_first, limit).await
        } else {
            self.groups_from_exceptions(scope, oldest_first, limit)
                .await
        }
    }

    /// [`Store::exception_groups`] aggregated from the exceptions themselves whatever the scope:
    /// what the faster paths must always agree with (the tests hold them to it).
    pub async fn exception_groups_recounted(
        &self,
        scope: &ExceptionScope,
        oldest_first: bool,
        limit: i64,
    ) -> Result<Vec<ExceptionGroup>, StoreError> {
        self.groups_from_exceptions(scope, oldest_first, limit)
            .await
    }

    /// [`Store::exception_groups`] read from `exception_causes`, the per-cause counts the
    /// database keeps (a few thousand rows, however many exceptions are open). Only for scopes
    /// [`summarised`] accepts.
    async fn groups_from_summary(
        &self,
        scope: &ExceptionScope,
        oldest_first: bool,
        limit: i64,
    ) -> Result<Vec<ExceptionGroup>, StoreError> {
        // Each field the scope leaves open is `$n IS NULL`, as in the exceptions' scope.
        let conditions = [
            given(scope.fingerprint.is_some(), "c.fingerprint = $1", 1),
            given(scope.code.is_some(), "c.code = $2", 2),
            given(scope.destination.is_some(), "c.destination = $3", 3),
            given(scope.status.is_some(), "c.status = $4", 4),
        ]
        .join(" AND ");
        // The newest exception's sentence stands for the group, as in the full aggregate.
        let sql = format!(
            "SELECT g.fingerprint, g.code, g.kind, g.action, x.message, g.open, g.oldest, g.destinations
             FROM (SELECT c.fingerprint, MIN(c.code) AS code, MIN(c.kind) AS kind, MIN(c.action) AS action,
                          CAST(SUM(c.exceptions) AS BIGINT) AS open, MIN(c.oldest) AS oldest, MAX(c.newest_id) AS newest,
                          MIN(c.destination) || CASE WHEN MIN(c.destination) <> MAX(c.destination) THEN ', ' || MAX(c.destination) ELSE '' END AS destinations
                   FROM exception_causes c
                   WHERE {conditions}
                   GROUP BY c.fingerprint) g
             JOIN exceptions x ON x.id = g.newest
             ORDER BY {}
             LIMIT $5",
            group_order(oldest_first)
        );
        let rows = on_pool!(&self.db, pool => {
            sqlx::query_as::<_, ExceptionGroup>(&sql)
                .bind(scope.fingerprint.as_deref())
                .bind(scope.code.as_deref())
                .bind(scope.destination.as_deref())
                .bind(scope.status.as_deref())
                .bind(limit)
                .fetch_all(pool)
                .await
        })?;
        Ok(rows)
    }

    /// [`Store::exception_groups`] for the unassigned ones, or those older than an age (or both):
    /// each summary row less what the filter leaves out of that cause — its assigned and its
    /// recent exceptions, usually few, each counted from an index that holds every column
    /// asked. Where a cause lost some, its newest sentence (and, for the unassigned, its oldest
    /// age) is looked up again: one index seek per cause and status. Only for scopes
    /// [`subtractable`] accepts; exact at any mix, merely no faster when most are left out.
    async fn groups_by_subtraction(
        &self,
        scope: &ExceptionScope,
        oldest_first: bool,
        limit: i64,
    ) -> Result<Vec<ExceptionGroup>, StoreError> {
        let nobody = scope.assignee == Some(Assignee::Nobody);
        let aged = scope.created_before.is_some();
        // Every parameter appears once, so that both databases know all nine.
        let conditions = [
            given(scope.fingerprint.is_some(), "c.fingerprint = $2", 2),
            given(scope.code.is_some(), "c.code = $3", 3),
            given(scope.destination.is_some(), "c.destination = $4", 4),
            given(scope.status.is_some(), "c.status = $5", 5),
            "$1 IS NULL".into(),
            (if nobody { "$6 = 0" } else { "$6 IS NULL" }).into(),
            (if aged { "$7 IS NOT NULL" } else { "$7 IS NULL" }).into(),
            "$8 IS NULL AND $9 IS NULL".into(),
        ]
        .join(" AND ");
        let binds = scope.binds();
        let order = group_order(oldest_first);
        let rows = on_pool!(&self.db, pool => {
            let pg = is_postgres(pool);
            // What the scope leaves out of one summary row: its assigned exceptions (from the
            // partial index `exceptions_assigned`) and its recent ones (a range of
            // `exceptions_groups`, which ends with the assignee). SQLite is told the index:
            // left to choose, it counts a cause's assigned ones by reading all of the cause.
            let index = |name: &str| if pg { String::new() } else { format!(" INDEXED BY {name}") };
            let same_cause = "e.status = c.status AND e.fingerprint = c.fingerprint AND e.destination = c.destination
                              AND e.code = c.code AND e.kind = c.kind AND e.action = c.action";
            let assigned = if nobody {
                format!(
                    "(SELECT COUNT(*) FROM exceptions e{} WHERE {same_cause} AND e.assignee_id IS NOT NULL)",
                    index("exceptions_assigned")
                )
            } else {
                "0".to_string()
            };
            let recent = if aged {
                format!(
                    "(SELECT COUNT(*) FROM exceptions e{} WHERE {same_cause} AND e.created_at >= $7{})",
                    index("exceptions_groups"),
                    if nobody { " AND e.assignee_id IS NULL" } else { "" }
                )
            } else {
                "0".to_string()
            };
            // SQLite keeps one summary row per cause and status; PostgreSQL spreads a busy one
            // over slots, summed here first.
            let summary = if pg {
                "(SELECT status, fingerprint, destination, code, kind, action, SUM(exceptions) AS exceptions,
                         MIN(oldest) AS oldest, MAX(newest_id) AS newest_id
                  FROM exception_causes GROUP BY status, fingerprint, destination, code, kind, action)"
            } else {
                "exception_causes"
            };
            let in_scope = scope_sql(pg, scope);
            // Where a cause lost some: the oldest one left in scope, for the unassigned (the
            // oldest may be assigned, while a recent one never is the oldest of what is left);
            // it orders the page, so it is taken for every cause and status that lost some.
            let oldest = if nobody {
                format!(
                    "CASE WHEN SUM(k.assigned) > 0
                     THEN (SELECT MIN(e.created_at) FROM exceptions e
                           WHERE e.status = k.status AND e.fingerprint = k.fingerprint AND {in_scope})
                     ELSE MIN(k.oldest) END"
                )
            } else {
                "MIN(k.oldest)".to_string()
            };
            // And the newest one, whose sentence stands for the group: only for the page, once
            // sorted (a status without any in scope gives none).
            let newest = |status: &str| {
                format!(
                    "SELECT MAX(e.id) AS id FROM exceptions e
                     WHERE e.status = '{status}' AND e.fingerprint = p.fingerprint AND {in_scope}"
                )
            };
            // The counts are materialised, so that each is taken once per summary row.
            let sql = format!(
                "WITH causes AS MATERIALIZED (
                     SELECT c.status, c.fingerprint, c.destination, c.code, c.kind, c.action, c.exceptions,
                            c.oldest, c.newest_id AS newest, {assigned} AS assigned, {recent} AS recent
                     FROM {summary} c WHERE {conditions}),
                 page AS (
                     SELECT g.* FROM (
                         SELECT fingerprint, MIN(code) AS code, MIN(kind) AS kind, MIN(action) AS action,
                                CAST(SUM(n) AS BIGINT) AS open, MIN(oldest) AS oldest, MAX(newest) AS newest,
                                SUM(lost) AS lost,
                                MIN(dmin) || CASE WHEN MIN(dmin) <> MAX(dmax) THEN ', ' || MAX(dmax) ELSE '' END AS destinations
                         FROM (SELECT k.fingerprint, MIN(k.code) AS code, MIN(k.kind) AS kind, MIN(k.action) AS action,
                                      SUM(k.exceptions - k.assigned - k.recent) AS n, {oldest} AS oldest,
                                      MAX(k.newest) AS newest, SUM(k.assigned + k.recent) AS lost,
                                      MIN(k.destination) AS dmin, MAX(k.destination) AS dmax
                               FROM causes k
                               WHERE k.exceptions - k.assigned - k.recent > 0
                               GROUP BY k.status, k.fingerprint) s
                         GROUP BY fingerprint) g
                     ORDER BY {order}
                     LIMIT $10)
                 SELECT g.fingerprint, g.code, g.kind, g.action, x.message, g.open, g.oldest, g.destinations
                 FROM (SELECT p.fingerprint, p.code, p.kind, p.action, p.open, p.oldest, p.destinations,
                              CASE WHEN p.lost > 0
                                   THEN (SELECT MAX(n.id) FROM ({} UNION ALL {}) n)
                                   ELSE p.newest END AS newest
                       FROM page p) g
                 JOIN exceptions x ON x.id = g.newest
                 ORDER BY {order}",
                newest("open"),
                newest("snoozed"),
            );
            bind_scope!(sqlx::query_as::<_, ExceptionGroup>(&sql), &binds)
                .bind(limit)
                .fetch_all(pool)
                .await
        })?;
        Ok(rows)
    }

    /// [`Store::exception_groups`] aggregated from the exceptions themselves, for any scope
    /// (assignees, ages, searches and selections are not in the summary).
    async fn groups_from_exceptions(
        &self,
        scope: &ExceptionScope,
        oldest_first: bool,
        limit: i64,
    ) -> Result<Vec<ExceptionGroup>, StoreError> {
        // The newest message of each group stands for it (the sentences of one cause differ
        // only in the order they name).
        let binds = scope.binds();
        let order = group_order(oldest_first);
        // One aggregate per status, each an equality the covering index `exceptions_groups`
        // answers in cause order; `IN ('open', 'snoozed')` would make the planner read rows.
        // A search, a selection or an order finds its few exceptions first, and is then
        // evaluated once, not once per status.
        let driven = scope.search.is_some() || scope.ids.is_some() || scope.order.is_some();
        let statuses: &[&str] = if scope.status.is_some() {
            &["TRUE"]
        } else if driven {
            &["e.status IN ('open', 'snoozed')"]
        } else {
            &["e.status = 'open'", "e.status = 'snoozed'"]
        };
        let rows = on_pool!(&self.db, pool => {
            let conditions = scope_sql(is_postgres(pool), scope);
            let parts: Vec<String> = statuses
                .iter()
                .map(|status| {
                    format!(
                        "SELECT e.fingerprint, MIN(e.code) AS code, MIN(e.kind) AS kind, MIN(e.action) AS action, COUNT(*) AS n,
                                MIN(e.created_at) AS oldest, MAX(e.id) AS newest, MIN(e.destination) AS dmin, MAX(e.destination) AS dmax
                         FROM exceptions e WHERE {status} AND {conditions} GROUP BY e.fingerprint"
                    )
                })
                .collect();
            let sql = format!(
                "SELECT g.fingerprint, g.code, g.kind, g.action, x.message, g.open, g.oldest, g.destinations
                 FROM (SELECT fingerprint, MIN(code) AS code, MIN(kind) AS kind, MIN(action) AS action,
                              CAST(SUM(n) AS BIGINT) AS open, MIN(oldest) AS oldest, MAX(newest) AS newest,
                              MIN(dmin) || CASE WHEN MIN(dmin) <> MAX(dmax) THEN ', ' || MAX(dmax) ELSE '' END AS destinations
                       FROM ({}) u
                       GROUP BY fingerprint) g
                 JOIN exceptions x ON x.id = g.newest
                 ORDER BY {order}
                 LIMIT $10",
                parts.join(" UNION ALL ")
            );
            bind_scope!(sqlx::query_as::<_, ExceptionGroup>(&sql), &binds)
                .bind(limit)
                .fetch_all(pool)
                .await
        })?;
        Ok(rows)
    }

    /// The most recently changed orders with each destination's state; with `search`, only
    /// those matching it: order number (with or without `#`), store order id, customer email
    /// (any case) or a SKU on the order.
    pub async fn recent_orders(
        &self,
        search: Option<&str>,
        limit: i64,
    ) -> Result<Vec<OrderRow>, StoreError> {
        self.find_orders(search, None, limit).await
    }

    /// Like [`Store::recent_orders`], only orders with a task (at either destination) in
    /// `state` when given (one of [`TASK_STATES`]); without a search, those whose task changed
    /// most recently come first.
    pub async fn find_orders(
        &self,
        search: Option<&str>,
        state: Option<&str>,
        limit: i64,
    ) -> Result<Vec<OrderRow>, StoreError> {
        // The state is written into the statement, not bound: on PostgreSQL
        // `sync_tasks_by_state_change` leaves out running tasks, and only a literal shows the
        // planner that the index holds the state asked for in a plan kept for the connection's
        // life. Only one of the known states gets in.
        let state = state
            .map(|asked| {
                TASK_STATES
                    .into_iter()
                    .find(|known| *known == asked)
                    .ok_or_else(|| {
                        StoreError::Invalid(format!(
                            "The state is one of {}.",
                            TASK_STATES.join(", ")
                        ))
                    })
            })
            .transpose()?;
        let search = search.map(|s| {
            let s = s.trim();
            if s.contains('@') {
                s.to_lowercase()
            } else {
                s.to_string()
            }
        });
        // Without a search: the newest changes, read backwards along `orders_updated`. With
        // one: each way of naming an order is an index lookup, and the union of their hits is
        // what is listed (an OR across columns would read every order).
        let store_id: Option<i64> = search.as_deref().and_then(|s| s.parse().ok());
        let by_search = if search.is_some() {
            "WHERE o.store_order_id IN (
                 SELECT store_order_id FROM orders WHERE name = $1
                 UNION SELECT store_order_id FROM orders WHERE name = '#' || $1
                 UNION SELECT store_order_id FROM orders WHERE email = $1
                 UNION SELECT store_order_id FROM orders WHERE store_order_id = $3
                 UNION SELECT store_order_id FROM order_skus WHERE sku = $1)"
        } else {
            "WHERE $1 IS NULL AND $3 IS NULL"
        };
        // A state without a search: the orders whose task most recently changed into (or
        // within) that state come first, read from `sync_tasks_by_state_change` — at most two
        // tasks per order, so twice the limit of the newest tasks holds the page. Collecting every
        // order in a common state and sorting them would take seconds at a million orders. With
        // a search, its few hits are filtered by state and listed by their last change.
        let (from, order) = match (search.is_some(), state) {
            (false, Some(state)) => (
                format!(
                    "FROM (SELECT store_order_id, MAX(updated_at) AS changed
                           FROM (SELECT store_order_id, updated_at FROM sync_tasks WHERE state = '{state}'
                                 ORDER BY updated_at DESC LIMIT 2 * $2) newest
                           GROUP BY store_order_id) s
                     JOIN orders o ON o.store_order_id = s.store_order_id"
                ),
                "s.changed DESC, o.store_order_id DESC",
            ),
            _ => ("FROM orders o".to_owned(), "o.updated_at DESC"),
        };
        let by_state = match (state, search.is_some()) {
            (Some(state), true) => format!(
                "AND o.store_order_id IN (SELECT store_order_id FROM sync_tasks WHERE state = '{state}')"
            ),
            _ => String::new(),
        };
        let filter = format!("{by_search} {by_state}");
        let sql = format!(
            "SELECT o.store_order_id, o.name, o.lifecycle, o.currency, o.total, o.version, o.updated_at,
                    c.state AS crm_state, e.state AS erp_state,
                    CASE WHEN c.state NOT IN ('synced', 'skipped') THEN c.armed_at END AS crm_waiting_since,
                    CASE WHEN e.state NOT IN ('synced', 'skipped') THEN e.armed_at END AS erp_waiting_since
             {from}
             LEFT JOIN sync_tasks c ON c.store_order_id = o.store_order_id AND c.destination = 'crm'
             LEFT JOIN sync_tasks e ON e.store_order_id = o.store_order_id AND e.destination = 'erp'
             {filter}
             ORDER BY {order}
             LIMIT $2"
        );
        let rows = on_pool!(&self.db, pool => {
            sqlx::query_as::<_, OrderRow>(&sql)
                .bind(search.as_deref())
                .bind(limit)
                .bind(store_id)
                .fetch_all(pool)
                .await
        })?;
        Ok(rows)
    }
}

/// Whether `exception_causes` can answer the groups of `scope`: it holds the open and snoozed
/// exceptions counted by status, fingerprint, destination and code (and kind and action), and
/// nothing about assignees, ages, searches, orders or single exceptions.
fn summarised(scope: &ExceptionScope) -> bool {
    let ExceptionScope {
        ids,
        fingerprint: _,
        code: _,
        destination: _,
        status,
        assignee,
        created_before,
        search,
        order,
    } = scope;
    ids.is_none()
        && order.is_none()
        && assignee.is_none()
        && created_before.is_none()
        && search.is_none()
        && status
            .as_deref()
            .is_none_or(|s| s == "open" || s == "snoozed")
}

/// Whether [`Store::groups_by_subtraction`] can answer the groups of `scope`: a summarised scope
/// narrowed further only to the unassigned, or to those older than an age, or both.
fn subtractable(scope: &ExceptionScope) -> bool {
    let narrowed =
        matches!(scope.assignee, Some(Assignee::Nobody)) || scope.created_before.is_some();
    let summary_part = ExceptionScope {
        assignee: None,
        created_before: None,
        ..scope.clone()
    };
    narrowed && matches!(scope.assignee, None | Some(Assignee::Nobody)) && summarised(&summary_part)
}

/// The groups' order; the fingerprint breaks ties, so a page reads the same every time.
fn group_order(oldest_first: bool) -> &'static str {
    if oldest_first {
        "g.oldest, g.open DESC, g.fingerprint"
    } else {
        "g.open DESC, g.oldest, g.fingerprint"
    }
}

/// A SKU orders wait on because it has no ERP item code.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct UnmappedSku {
    /// The store SKU.
    pub sku: String,
    /// Orders waiting on it (open or snoozed exceptions).
    pub orders: i64,
    /// Since when the oldest has waited.
    pub oldest: DateTime<Utc>,
}

impl Store {
    /// SKUs without an ERP item code, ranked by the number of orders they hold back.
    pub async fn unmapped_skus(&self, limit: i64) -> Result<Vec<UnmappedSku>, StoreError> {
        // "missing_sku:erp:" is 16 characters; the SKU follows it. Read from the per-cause
        // summary (open and snoozed exceptions), not by counting every exception.
        let rows = on_pool!(&self.db, pool => {
            sqlx::query_as::<_, UnmappedSku>(
                "SELECT substr(fingerprint, 17) AS sku, CAST(SUM(exceptions) AS BIGINT) AS orders, MIN(oldest) AS oldest
                 FROM exception_causes
                 WHERE code = 'missing_sku_mapping' AND fingerprint LIKE 'missing!_sku:erp:%' ESCAPE '!'
                 GROUP BY fingerprint
                 ORDER BY orders DESC, oldest, sku
                 LIMIT $1",
            )
            .bind(limit)
            .fetch_all(pool)
            .await
        })?;
        Ok(rows)
    }

    /// Mappings whose SKU or item code starts with `search` (all without one), by SKU.
    pub async fn sku_mappings(
        &self,
        search: Option<&str>,
        limit: i64,
    ) -> Result<Vec<super::SkuMapping>, StoreError> {
        let rows = on_pool!(&self.db, pool => {
            sqlx::query_as::<_, super::SkuMapping>(
                "SELECT sku, item_code, updated_at, updated_by FROM sku_mappings
                 WHERE $1 IS NULL OR substr(sku, 1, length($1)) = $1 OR substr(item_code, 1, length($1)) = $1
                 ORDER BY sku
                 LIMIT $2",
            )
            .bind(search)
            .bind(limit)
            .fetch_all(pool)
            .await
        })?;
        Ok(rows)
    }
}

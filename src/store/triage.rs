//! Triage: what people (and tokens) do to exceptions — retry, skip with a reason, resolve with a
//! note, assign, snooze — on one exception, a selection, a whole cause group or everything a
//! filter matches. Each operation is one set-based transaction: the scope is a `WHERE` clause
//! evaluated inside the statements themselves (never a page of ids read earlier), so "retry the
//! group" means the whole group at the moment of the click, and two people clicking at once
//! cannot queue a task twice. A dry run counts what the operation would do and changes nothing.
//! Every operation that changes something writes one audit entry in the same transaction.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;

use super::audit::insert_audit;
use super::batch::retrying_deadlocks;
use super::{Store, StoreError, is_postgres, on_pool};
use crate::audit::{Actor, Change};

/// Which exceptions an operation or a list concerns. Every field narrows; an empty scope is
/// every exception.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExceptionScope {
    /// Only these exception ids (a selection).
    pub ids: Option<Vec<i64>>,
    /// Only this cause.
    pub fingerprint: Option<String>,
    /// Only this code.
    pub code: Option<String>,
    /// Only this destination.
    pub destination: Option<String>,
    /// Only this status (`open`, `snoozed`, `resolved`, `skipped`); `None`: any.
    pub status: Option<String>,
    /// Only those assigned to this user, or [`Assignee::Nobody`].
    pub assignee: Option<Assignee>,
    /// Only those opened before this instant (older than an age).
    pub created_before: Option<DateTime<Utc>>,
    /// Order number (`#1042` or `1042`), store order id, customer email, or SKU.
    pub search: Option<String>,
    /// Only this order's (by store order id), e.g. "skip the ERP for this order".
    pub order: Option<i64>,
}

/// An assignee filter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Assignee {
    /// Nobody is assigned.
    Nobody,
    /// This user.
    User(i64),
}

/// What to do to the exceptions in scope. Only open and snoozed exceptions are acted on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TriageAction {
    /// Put their tasks back in the queue now (attempts reset). A task already synced at the
    /// order's current version is reported as already applied and its exception resolves.
    Retry,
    /// Do not deliver this order to the destination: the task is skipped (and stays skipped
    /// through later changes, until someone retries it) and the exception closes as skipped,
    /// with the reason.
    Skip {
        /// Why, for the timeline and the audit log.
        reason: String,
    },
    /// The cause was dealt with outside SyncDesk (e.g. the document was keyed in by hand): the
    /// task counts as synced at the current version, recorded as a manual attempt, and the
    /// exception resolves with the note. Later changes sync as usual.
    Resolve {
        /// What was done, for the timeline and the audit log.
        note: String,
    },
    /// Assign to a person, or to nobody.
    Assign {
        /// The user, or `None` to unassign.
        user_id: Option<i64>,
    },
    /// Hide until `until`; then it is open again.
    Snooze {
        /// When it comes back.
        until: DateTime<Utc>,
    },
}

impl TriageAction {
    fn audit_action(&self) -> &'static str {
        match self {
            TriageAction::Retry => "exceptions.retried",
            TriageAction::Skip { .. } => "exceptions.skipped",
            TriageAction::Resolve { .. } => "exceptions.resolved",
            TriageAction::Assign { .. } => "exceptions.assigned",
            TriageAction::Snooze { .. } => "exceptions.snoozed",
        }
    }
}

/// What an operation did (or, in a dry run, would do).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct TriageReport {
    /// Open or snoozed exceptions in scope.
    pub matched: u64,
    /// Tasks queued to run now (retry).
    pub queued: u64,
    /// Exceptions whose order is already at the destination at its current version (retry);
    /// they resolve.
    pub already_applied: u64,
    /// Tasks a worker is delivering right now; left alone.
    pub in_flight: u64,
    /// Exceptions for a whole destination (rejected credentials): only renewing the
    /// credentials resumes it, so retry, skip and resolve leave them.
    pub destination_wide: u64,
    /// Exceptions of order states the store sent that SyncDesk could not read: there is no
    /// task to retry (a resync from the store is what retries them); skip and resolve close
    /// them.
    pub from_store: u64,
    /// Exceptions changed (closed as skipped or resolved, assigned, snoozed).
    pub changed: u64,
    /// Whether this was a dry run.
    pub dry_run: bool,
}

/// Task states a person may put back in the queue or settle by hand.
const IDLE_STATES: &str = "('pending', 'retrying', 'blocked', 'dead', 'skipped')";

/// Binds the scope's nine parameters (`$1`–`$9`, in [`scope_sql`]'s order) to `$query`. A
/// statement with a search is not kept prepared: PostgreSQL then plans it for the value searched
/// (a SKU on fifty thousand orders wants a merge join, an order number a few index lookups),
/// where a cached generic plan would pick one for every value.
macro_rules! bind_scope {
    ($query:expr, $binds:expr) => {{
        let b: &$crate::store::triage::ScopeBinds = $binds;
        $query
            .persistent(b.search.is_none())
            .bind(b.ids.as_deref())
            .bind(b.fingerprint.as_deref())
            .bind(b.code.as_deref())
            .bind(b.destination.as_deref())
            .bind(b.status.as_deref())
            .bind(b.assignee)
            .bind(b.created_before)
            .bind(b.search.as_deref())
            .bind(b.order)
    }};
}
pub(crate) use bind_scope;

/// A scope as statement parameters.
pub(crate) struct ScopeBinds {
    pub(crate) ids: Option<String>,
    pub(crate) fingerprint: Option<String>,
    pub(crate) code: Option<String>,
    pub(crate) destination: Option<String>,
    pub(crate) status: Option<String>,
    /// 0 means "nobody".
    pub(crate) assignee: Option<i64>,
    pub(crate) created_before: Option<DateTime<Utc>>,
    pub(crate) search: Option<String>,
    pub(crate) order: Option<i64>,
}

impl ExceptionScope {
    pub(crate) fn binds(&self) -> ScopeBinds {
        ScopeBinds {
            ids: self
                .ids
                .as_ref()
                .map(|ids| serde_json::to_string(ids).unwrap_or_else(|_| "[]".to_string())),
            fingerprint: self.fingerprint.clone(),
            code: self.code.clone(),
            destination: self.destination.clone(),
            status: self.status.clone(),
            assignee: self.assignee.map(|a| match a {
                Assignee::Nobody => 0,
                Assignee::User(id) => id,
            }),
            created_before: self.created_before,
            search: self.search.as_deref().map(normalise_search),
            order: self.order,
        }
    }

    /// A short description for the audit log, without personal data (an email searched for
    /// is recorded as such, not spelled out).
    fn describe(&self) -> serde_json::Value {
        let search = self.search.as_deref().map(|s| {
            if s.contains('@') {
                "(an email address)".to_string()
            } else {
                s.to_string()
            }
        });
        let ids = self.ids.as_ref().map(|ids| {
            if ids.len() > 100 {
                json!({ "count": ids.len() })
            } else {
                json!(ids)
            }
        });
        json!({
            "ids": ids,
            "fingerprint": self.fingerprint,
            "code": self.code,
            "destination": self.destination,
            "status": self.status,
            "assignee": self.assignee.map(|a| match a {
                Assignee::Nobody => json!("nobody"),
                Assignee::User(id) => json!(id),
            }),
            "created_before": self.created_before,
            "search": search,
            "order": self.order,
        })
    }

    /// The audit target: the one exception, the group, the order, or "a filter".
    fn target(&self) -> String {
        match (&self.ids, &self.fingerprint, self.order) {
            (Some(ids), _, _) if ids.len() == 1 => format!("exception:{}", ids[0]),
            (Some(_), _, _) => "exceptions:selection".to_string(),
            (None, Some(fp), _) => format!("group:{fp}"),
            (None, None, Some(order)) => format!("order:{order}"),
            (None, None, None) => "exceptions:filter".to_string(),
        }
    }
}

/// Search text as matched: trimmed; an email lowercased as the store's are.
fn normalise_search(s: &str) -> String {
    let s = s.trim();
    if s.contains('@') {
        s.to_lowercase()
    } else {
        s.to_string()
    }
}

/// `condition` when the scope sets that field, else `$n IS NULL` (the parameter still appears,
/// so both databases know its type and every statement takes the same nine).
pub(crate) fn given(set: bool, condition: &str, n: u8) -> String {
    if set {
        condition.to_string()
    } else {
        format!("${n} IS NULL")
    }
}

/// The scope's `WHERE` condition over `exceptions e`, with parameters `$1`–`$9` (see
/// [`bind_scope!`]). A field the scope leaves open is written as `$n IS NULL` (its parameter is
/// bound NULL), so the planner sees only plain conditions on the fields that are set and can use
/// their indexes; `$n IS NULL OR column = $n` would hide them. Only the id list and the numeric
/// search are written per dialect: SQLite reads the JSON array with `json_each`, PostgreSQL with
/// `jsonb_array_elements_text`.
pub(crate) fn scope_sql(postgres: bool, scope: &ExceptionScope) -> String {
    let ids = if postgres {
        "e.id IN (SELECT CAST(value AS BIGINT) FROM jsonb_array_elements_text(CAST($1 AS JSONB)))"
    } else {
        "e.id IN (SELECT value FROM json_each($1))"
    };
    let assignee = match scope.assignee {
        Some(Assignee::Nobody) => "($6 = 0 AND e.assignee_id IS NULL)",
        _ => "e.assignee_id = $6",
    };
    // The store order id, when the search is a number and nothing else (NULL otherwise):
    // PostgreSQL would fail to cast other text, and SQLite would read the leading digits of
    // `1042-RED` as order 1042.
    let store_id = if postgres {
        "CAST(substring($8 from '^[0-9]{1,18}$') AS BIGINT)"
    } else {
        "CASE WHEN length($8) BETWEEN 1 AND 18 AND $8 NOT GLOB '*[^0-9]*' THEN CAST($8 AS INTEGER) END"
    };
    // Each way of naming an order is an index lookup; an OR across joined columns would read
    // every exception and its order. The orders carrying a SKU (possibly tens of thousands) meet
    // the exceptions apart from the few orders named by number or email, so that their union
    // is not sorted first (PostgreSQL then merges two indexes, both in order id order).
    let matching = format!(
        "SELECT x.id FROM exceptions x WHERE x.store_order_id IN (
             SELECT store_order_id FROM orders WHERE name = $8
             UNION SELECT store_order_id FROM orders WHERE name = '#' || $8
             UNION SELECT store_order_id FROM orders WHERE email = $8
             UNION SELECT store_order_id FROM orders WHERE store_order_id = {store_id})
         UNION SELECT x.id FROM exceptions x
               WHERE x.store_order_id IN (SELECT store_order_id FROM order_skus WHERE sku = $8)
         UNION SELECT x.id FROM exceptions x WHERE x.fingerprint = 'missing_sku:erp:' || $8"
    );
    // PostgreSQL fetches the matches by id (`= ANY(ARRAY(…))`) rather than hashing every
    // exception to meet them.
    let search = if postgres {
        format!("e.id = ANY(ARRAY({matching}))")
    } else {
        format!("e.id IN ({matching})")
    };
    [
        given(scope.ids.is_some(), ids, 1),
        given(scope.fingerprint.is_some(), "e.fingerprint = $2", 2),
        given(scope.code.is_some(), "e.code = $3", 3),
        given(scope.destination.is_some(), "e.destination = $4", 4),
        given(scope.status.is_some(), "e.status = $5", 5),
        given(scope.assignee.is_some(), assignee, 6),
        given(scope.created_before.is_some(), "e.created_at < $7", 7),
        given(scope.search.is_some(), &search, 8),
        given(scope.order.is_some(), "e.store_order_id = $9", 9),
    ]
    .join(" AND ")
}

/// The ids of the actionable (open or snoozed) exceptions in scope, as a sub-select.
fn actionable(postgres: bool, scope: &ExceptionScope) -> String {
    format!(
        "SELECT e.id FROM exceptions e WHERE e.status IN ('open', 'snoozed') AND {}",
        scope_sql(postgres, scope)
    )
}

impl Store {
    /// Applies `action` to every open or snoozed exception in `scope` (or, with `dry_run`,
    /// counts what it would do), in one transaction, audited once.
    /// Run again when PostgreSQL undoes it to break a deadlock (nothing of it was written).
    pub async fn triage(
        &self,
        scope: &ExceptionScope,
        action: &TriageAction,
        dry_run: bool,
        by: &Actor,
    ) -> Result<TriageReport, StoreError> {
        retrying_deadlocks(|| self.triage_once(scope, action, dry_run, by)).await
    }

    async fn triage_once(
        &self,
        scope: &ExceptionScope,
        action: &TriageAction,
        dry_run: bool,
        by: &Actor,
    ) -> Result<TriageReport, StoreError> {
        // A dry run only counts, so the reason may still be unwritten.
        if !dry_run {
            validate(action)?;
        }
        let now = Utc::now();
        let binds = scope.binds();
        on_pool!(&self.db, pool => {
            let pg = is_postgres(pool);
            let scoped = actionable(pg, scope);
            // SQLite: take the write lock first, so the counts and the changes see one state. A
            // dry run only reads, and a read transaction already sees one state without holding
            // the workers up.
            let mut tx = if pg || dry_run {
                pool.begin().await?
            } else {
                pool.begin_with("BEGIN IMMEDIATE").await?
            };
            if let TriageAction::Assign { user_id: Some(user) } = action {
                // PostgreSQL: after any change to accounts under way (see `users`), which gives
                // back what a deactivated person or one who lost the operator role held; read
                // before it commits, they could be assigned work again.
                if pg {
                    sqlx::query("SELECT pg_advisory_xact_lock(7315001)").execute(&mut *tx).await?;
                }
                let active: Option<bool> = sqlx::query_scalar("SELECT active FROM users WHERE id = $1")
                    .bind(user)
                    .fetch_optional(&mut *tx)
                    .await?;
                if active != Some(true) {
                    return Err(StoreError::Conflict("That person has no active account to assign to.".into()));
                }
                // Only someone who can open the queue can work what is assigned to them.
                let operator: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM user_roles WHERE user_id = $1 AND role = 'operator'",
                )
                .bind(user)
                .fetch_one(&mut *tx)
                .await?;
                if operator == 0 {
                    return Err(StoreError::Conflict(
                        "That person is not an operator, so they could not work the exceptions; give them the operator role first.".into(),
                    ));
                }
            }
            // PostgreSQL: the scope's tasks are locked first, so that no claim takes one (the
            // claims skip locked rows) and no delivery finishes one between the statements
            // below, each of which reads afresh: a task resolved by hand could otherwise be
            // claimed between its manual attempt and its state, and sent after all.
            if pg && !dry_run && matches!(action, TriageAction::Retry | TriageAction::Skip { .. } | TriageAction::Resolve { .. }) {
                let lock = format!(
                    "SELECT id FROM sync_tasks WHERE id IN (SELECT x.task_id FROM exceptions x WHERE x.id IN ({scoped})
                         AND x.task_id IS NOT NULL) ORDER BY id FOR UPDATE"
                );
                bind_scope!(sqlx::query(&lock), &binds).fetch_all(&mut *tx).await?;
            }
            // What the scope holds, by what can be done with it, in one pass: the scope's
            // exceptions from an index (exceptions_cause_tasks holds a cause's task ids), and
            // each one's task by its key. Each task has at most one open exception, so counting
            // exceptions counts tasks. A dry run reports these counts as they are; the real run
            // reports what its statements changed.
            let count_sql = format!(
                "SELECT COUNT(*),
                        COUNT(CASE WHEN e.task_id IS NULL AND e.destination <> 'store' THEN 1 END),
                        COUNT(CASE WHEN e.destination = 'store' THEN 1 END),
                        COUNT(CASE WHEN t.synced_version >= t.target_version THEN 1 END),
                        COUNT(CASE WHEN t.state = 'running' AND NOT (COALESCE(t.synced_version, -1) >= t.target_version) THEN 1 END),
                        COUNT(CASE WHEN t.state IN {IDLE_STATES} AND NOT (COALESCE(t.synced_version, -1) >= t.target_version) THEN 1 END),
                        COUNT(CASE WHEN t.state <> 'running' OR e.destination = 'store' THEN 1 END)
                 FROM exceptions e LEFT JOIN sync_tasks t ON t.id = e.task_id
                 WHERE e.status IN ('open', 'snoozed') AND {}",
                scope_sql(pg, scope)
            );
            let (matched, destination_wide, from_store, applied, running, behind_idle, not_in_flight): (i64, i64, i64, i64, i64, i64, i64) =
                bind_scope!(sqlx::query_as(&count_sql), &binds).fetch_one(&mut *tx).await?;
            // Snooze too: a destination-wide exception is never snoozed (its cause's row and
            // "Resume deliveries" would leave the queue while nothing reaches the destination,
            // and a paused destination raises no other exception to tell of it).
            let task_ops = matches!(action, TriageAction::Retry | TriageAction::Skip { .. } | TriageAction::Resolve { .. } | TriageAction::Snooze { .. });
            let mut report = TriageReport {
                matched: matched as u64,
                dry_run,
                ..TriageReport::default()
            };
            if task_ops {
                report.destination_wide = destination_wide as u64;
                report.from_store = from_store as u64;
                report.in_flight = running as u64;
            }
            // Tasks idle and behind the order's current version: what retry queues, skip skips
            // and resolve settles.
            let idle_tasks = format!(
                "SELECT x.task_id FROM exceptions x WHERE x.id IN ({scoped}) AND x.task_id IS NOT NULL"
            );
            let behind = format!(
                "id IN ({idle_tasks}) AND state IN {IDLE_STATES} AND NOT (COALESCE(synced_version, -1) >= target_version)"
            );
            match action {
                TriageAction::Retry => {
                    report.already_applied = applied as u64;
                    if dry_run {
                        report.queued = behind_idle as u64;
                    } else {
                        // Already applied: nothing to send; the exception was stale.
                        let sql2 = format!(
                            "UPDATE exceptions SET status = 'resolved', resolved_at = $10, resolved_by = $11,
                                 resolution = 'Already applied at the destination', updated_at = $10
                             WHERE id IN ({scoped}) AND task_id IN (SELECT id FROM sync_tasks WHERE synced_version >= target_version)"
                        );
                        let resolved = bind_scope!(sqlx::query(&sql2), &binds)
                        .bind(now).bind(by.label())
                        .execute(&mut *tx).await?.rows_affected();
                        report.already_applied = resolved;
                        let sql3 = format!(
                            "UPDATE sync_tasks SET state = 'pending', attempt = 0, scheduled_at = $10, blocked_on = NULL, updated_at = $10
                             WHERE {behind}"
                        );
                        let queued = bind_scope!(sqlx::query(&sql3), &binds)
                        .bind(now)
                        .execute(&mut *tx).await?.rows_affected();
                        report.queued = queued;
                        // A retried exception stays visible (open) until its delivery settles it.
                        let sql4 = format!(
                            "UPDATE exceptions SET status = 'open', snoozed_until = NULL, updated_at = $10
                             WHERE id IN ({scoped}) AND status = 'snoozed'"
                        );
                        bind_scope!(sqlx::query(&sql4), &binds)
                        .bind(now)
                        .execute(&mut *tx).await?;
                    }
                }
                TriageAction::Skip { reason } | TriageAction::Resolve { note: reason } => {
                    let skip = matches!(action, TriageAction::Skip { .. });
                    let closable = format!(
                        "id IN ({scoped}) AND (task_id IS NULL AND destination = 'store'
                             OR task_id IS NOT NULL AND task_id NOT IN (SELECT id FROM sync_tasks WHERE state = 'running'))"
                    );
                    if dry_run {
                        report.changed = not_in_flight as u64;
                    } else {
                        if skip {
                            let sql6 = format!(
                                "UPDATE sync_tasks SET state = 'skipped', blocked_on = NULL, last_error = $10, updated_at = $11
                                 WHERE {behind}"
                            );
                            bind_scope!(sqlx::query(&sql6), &binds)
                            .bind(format!("Skipped by {}: {reason}", by.label()))
                            .bind(now)
                            .execute(&mut *tx).await?;
                        } else {
                            // Settled by hand: record a manual attempt, then mark the version synced.
                            let sql7 = format!(
                                "INSERT INTO sync_attempts (task_id, store_order_id, destination, version, attempt, started_at,
                                     duration_ms, outcome, message)
                                 SELECT id, store_order_id, destination, target_version, attempt, $10, 0, 'manual', $11
                                 FROM sync_tasks WHERE {behind}"
                            );
                            bind_scope!(sqlx::query(&sql7), &binds)
                            .bind(now)
                            .bind(format!("Resolved by {}: {reason}", by.label()))
                            .execute(&mut *tx).await?;
                            let sql8 = format!(
                                "UPDATE sync_tasks SET state = 'synced', synced_version = target_version, blocked_on = NULL,
                                     last_error = NULL, attempt = 0, updated_at = $10
                                 WHERE {behind}"
                            );
                            bind_scope!(sqlx::query(&sql8), &binds)
                            .bind(now)
                            .execute(&mut *tx).await?;
                        }
                        let status = if skip { "skipped" } else { "resolved" };
                        let sql9 = format!(
                            "UPDATE exceptions SET status = $10, resolved_at = $11, resolved_by = $12, resolution = $13,
                                 snoozed_until = NULL, updated_at = $11
                             WHERE {closable}"
                        );
                        let changed = bind_scope!(sqlx::query(&sql9), &binds)
                        .bind(status)
                        .bind(now)
                        .bind(by.label())
                        .bind(reason.trim())
                        .execute(&mut *tx).await?.rows_affected();
                        report.changed = changed;
                    }
                }
                TriageAction::Assign { user_id } => {
                    if dry_run {
                        report.changed = report.matched;
                    } else {
                        let sql10 = format!(
                            "UPDATE exceptions SET assignee_id = $10, updated_at = $11 WHERE id IN ({scoped})"
                        );
                        report.changed = bind_scope!(sqlx::query(&sql10), &binds)
                        .bind(user_id)
                        .bind(now)
                        .execute(&mut *tx).await?.rows_affected();
                    }
                }
                TriageAction::Snooze { until } => {
                    if dry_run {
                        report.changed = report.matched - report.destination_wide;
                    } else {
                        let sql11 = format!(
                            "UPDATE exceptions SET status = 'snoozed', snoozed_until = $10, updated_at = $11
                             WHERE id IN ({scoped}) AND NOT (task_id IS NULL AND destination <> 'store')"
                        );
                        report.changed = bind_scope!(sqlx::query(&sql11), &binds)
                        .bind(until)
                        .bind(now)
                        .execute(&mut *tx).await?.rows_affected();
                    }
                }
            }
            if dry_run {
                tx.rollback().await?;
                return Ok(report);
            }
            let mut details = json!({ "scope": scope.describe(), "result": &report });
            match action {
                TriageAction::Skip { reason } => details["reason"] = json!(reason.trim()),
                TriageAction::Resolve { note } => details["note"] = json!(note.trim()),
                TriageAction::Assign { user_id } => details["assignee"] = json!(user_id),
                TriageAction::Snooze { until } => details["until"] = json!(until),
                TriageAction::Retry => {}
            }
            let change = Change::new(by, action.audit_action(), scope.target()).after(details);
            insert_audit!(&mut *tx, &change)?;
            tx.commit().await?;
            Ok::<TriageReport, StoreError>(report)
        })
    }

    /// Opens again every snoozed exception whose time has come. Returns how many.
    pub async fn wake_snoozed(&self) -> Result<u64, StoreError> {
        let now = Utc::now();
        let n = on_pool!(&self.db, pool => {
            sqlx::query(
                "UPDATE exceptions SET status = 'open', snoozed_until = NULL, updated_at = $1
                 WHERE status = 'snoozed' AND snoozed_until <= $1",
            )
            .bind(now)
            .execute(pool)
            .await
            .map(|done| done.rows_affected())
        })?;
        Ok(n)
    }

    /// Resolves the exceptions of order states the store sent and SyncDesk could not read
    /// (`unreadable_webhook`) once SyncDesk holds a state of their order as recent: the order's
    /// `updated_at` at least that of the unread one, or, when that was not known, any state
    /// taken in since the last unread one arrived. Each exception's own row decides (on
    /// PostgreSQL an unread state arriving meanwhile is judged as it is once written). Run by the workers' periodic sweep and after a
    /// resync, so the ingest's hot path pays nothing for it; the few open ones are read
    /// through a partial index. Returns how many were resolved.
    pub async fn settle_unread_states(&self) -> Result<u64, StoreError> {
        let now = Utc::now();
        let n = on_pool!(&self.db, pool => {
            sqlx::query(
                "UPDATE exceptions SET status = 'resolved', resolved_at = $1, resolved_by = 'engine',
                     resolution = 'SyncDesk took in a state of the order at least as recent', snoozed_until = NULL,
                     updated_at = $1
                 WHERE code = 'unreadable_webhook' AND status IN ('open', 'snoozed') AND EXISTS (
                     SELECT 1 FROM orders o WHERE o.store_order_id = exceptions.store_order_id
                       AND (o.store_updated_at >= exceptions.order_as_of
                            OR (exceptions.order_as_of IS NULL AND o.updated_at >= exceptions.unread_at)))",
            )
            .bind(now)
            .execute(pool)
            .await
            .map(|done| done.rows_affected())
        })?;
        Ok(n)
    }
}

/// Refuses actions that would lose information: a skip without a reason, a resolution without
/// a note, a snooze into the past.
fn validate(action: &TriageAction) -> Result<(), StoreError> {
    match action {
        TriageAction::Skip { reason } if reason.trim().is_empty() => Err(StoreError::Invalid(
            "Say why these orders are skipped; the reason is kept on each order's timeline.".into(),
        )),
        TriageAction::Resolve { note } if note.trim().is_empty() => Err(StoreError::Invalid(
            "Say what was done; the note is kept on each order's timeline.".into(),
        )),
        TriageAction::Skip { reason } | TriageAction::Resolve { note: reason }
            if reason.chars().count() > 500 =>
        {
            Err(StoreError::Invalid(
                "Keep the reason under 500 characters.".into(),
            ))
        }
        TriageAction::Skip { reason } | TriageAction::Resolve { note: reason }
            if reason
                .chars()
                .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t')) =>
        {
            Err(StoreError::Invalid(
                "The reason holds an invisible control character; type it again as plain text."
                    .into(),
            ))
        }
        TriageAction::Snooze { until } if *until <= Utc::now() => Err(StoreError::Invalid(
            "Snooze until a time in the future.".into(),
        )),
        TriageAction::Snooze { until } if *until > Utc::now() + chrono::TimeDelta::days(90) => {
            Err(StoreError::Invalid("Snooze for at most 90 days.".into()))
        }
        _ => Ok(()),
    }
}

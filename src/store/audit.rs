//! The audit log table.

use chrono::{DateTime, Utc};
use sqlx::types::Json;

use super::{Store, StoreError, on_pool};
use crate::audit::Change;

/// Inserts one audit row through `$exec` (a pool or an open transaction), so a mutation and its
/// audit entry commit together.
macro_rules! insert_audit {
    ($exec:expr, $change:expr) => {{
        let change: &$crate::audit::Change = $change;
        sqlx::query(
            "INSERT INTO audit_log (at, actor_kind, actor_id, actor_label, action, target, before, after, client)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(chrono::Utc::now())
        .bind(change.actor.kind())
        .bind(change.actor.id())
        .bind(change.actor.label())
        .bind(change.action)
        .bind(&change.target)
        .bind(change.before.as_ref().map(sqlx::types::Json))
        .bind(change.after.as_ref().map(sqlx::types::Json))
        .bind(change.client.as_deref())
        .execute($exec)
        .await
        .map(|_| ())
    }};
}
pub(crate) use insert_audit;

/// One stored audit entry.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct AuditRecord {
    /// Position in the log.
    pub id: i64,
    /// When.
    pub at: DateTime<Utc>,
    /// `user`, `token`, `system` or `anonymous`.
    pub actor_kind: String,
    /// The user or token id.
    pub actor_id: Option<i64>,
    /// Email, `token:<name>`, `system` or `anonymous`.
    pub actor_label: String,
    /// `noun.verb`.
    pub action: String,
    /// `kind:id`.
    pub target: String,
    /// State before.
    pub before: Option<Json<serde_json::Value>>,
    /// State after.
    pub after: Option<Json<serde_json::Value>>,
    /// Client address, for security events.
    pub client: Option<String>,
}

/// Which entries to list.
#[derive(Clone, Debug, Default)]
pub struct AuditFilter {
    /// Actions starting with this.
    pub action_prefix: Option<String>,
    /// Actor labels containing this.
    pub actor_contains: Option<String>,
    /// Only entries with a smaller id (paging, newest first).
    pub before_id: Option<i64>,
    /// At most this many.
    pub limit: i64,
}

impl Store {
    /// Writes one audit entry on its own (for events that change no other data, such as a
    /// refused sign-in).
    pub async fn record(&self, change: &Change) -> Result<(), StoreError> {
        on_pool!(&self.db, pool => insert_audit!(pool, change))?;
        Ok(())
    }

    /// Audit entries, newest first.
    pub async fn audit_entries(
        &self,
        filter: &AuditFilter,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        // LIKE patterns: escape the user's own wildcards so "a_b" matches literally.
        let escape = |s: &str| {
            s.replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_")
        };
        let action = filter
            .action_prefix
            .as_deref()
            // Actions are lower case; so is the prefix, so that PostgreSQL's LIKE (which minds
            // case) finds what SQLite's (which does not) finds.
            .map(|a| format!("{}%", escape(&a.to_lowercase())));
        let actor = filter
            .actor_contains
            .as_deref()
            .map(|a| format!("%{}%", escape(&a.to_lowercase())));
        let rows = on_pool!(&self.db, pool => {
            sqlx::query_as::<_, AuditRecord>(
                "SELECT id, at, actor_kind, actor_id, actor_label, action, target, before, after, client
                 FROM audit_log
                 WHERE ($1 IS NULL OR action LIKE $1 ESCAPE '\\')
                   AND ($2 IS NULL OR lower(actor_label) LIKE $2 ESCAPE '\\')
                   AND ($3 IS NULL OR id < $3)
                 ORDER BY id DESC
                 LIMIT $4",
            )
            .bind(action.as_deref())
            .bind(actor.as_deref())
            .bind(filter.before_id)
            .bind(filter.limit)
            .fetch_all(pool)
            .await
        })?;
        Ok(rows)
    }
}

//! Read models for the screens: exceptions grouped by cause, and recent orders with each
//! destination's state.

use chrono::{DateTime, Utc};

use super::{Store, StoreError, on_pool};

/// Open exceptions sharing one cause.
#[derive(Clone, Debug, sqlx::FromRow)]
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
}

impl Store {
    /// Open exceptions grouped by cause, biggest group first.
    pub async fn exception_groups(&self, limit: i64) -> Result<Vec<ExceptionGroup>, StoreError> {
        // The newest message of each group stands for it (the sentences of one cause differ
        // only in the order they name).
        let rows = on_pool!(&self.db, pool => {
            sqlx::query_as::<_, ExceptionGroup>(
                "SELECT g.fingerprint, g.code, g.kind, g.action, e.message, g.open, g.oldest, g.destinations
                 FROM (SELECT fingerprint, MIN(code) AS code, MIN(kind) AS kind, MIN(action) AS action, COUNT(*) AS open,
                              MIN(created_at) AS oldest, MAX(id) AS newest,
                              MIN(destination) || CASE WHEN MIN(destination) <> MAX(destination) THEN ', ' || MAX(destination) ELSE '' END AS destinations
                       FROM exceptions WHERE status IN ('open', 'snoozed') GROUP BY fingerprint) g
                 JOIN exceptions e ON e.id = g.newest
                 ORDER BY g.open DESC, g.oldest
                 LIMIT $1",
            )
            .bind(limit)
            .fetch_all(pool)
            .await
        })?;
        Ok(rows)
    }

    /// The most recently changed orders with each destination's state.
    pub async fn recent_orders(&self, limit: i64) -> Result<Vec<OrderRow>, StoreError> {
        let rows = on_pool!(&self.db, pool => {
            sqlx::query_as::<_, OrderRow>(
                "SELECT o.store_order_id, o.name, o.lifecycle, o.currency, o.total, o.version, o.updated_at,
                        c.state AS crm_state, e.state AS erp_state
                 FROM orders o
                 LEFT JOIN sync_tasks c ON c.store_order_id = o.store_order_id AND c.destination = 'crm'
                 LEFT JOIN sync_tasks e ON e.store_order_id = o.store_order_id AND e.destination = 'erp'
                 ORDER BY o.updated_at DESC
                 LIMIT $1",
            )
            .bind(limit)
            .fetch_all(pool)
            .await
        })?;
        Ok(rows)
    }
}

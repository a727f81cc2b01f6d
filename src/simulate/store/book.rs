//! The store's own copy of its orders: the latest version of each, which is what the Admin API
//! serves and what reconciliation compares against.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

use chrono::{DateTime, Utc};
use serde_json::Value;

/// Why an order could not be kept.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BookError {
    /// The payload has no integer `id`.
    #[error("the order has no integer id")]
    NoId,
    /// The payload's `updated_at` is missing or not RFC 3339.
    #[error("order {0} has no RFC 3339 updated_at")]
    NoUpdatedAt(i64),
}

/// One order as the store holds it, with the fields the Admin API filters and sorts on.
#[derive(Debug, Clone)]
pub(super) struct Stored {
    pub(super) id: i64,
    pub(super) created_at: DateTime<Utc>,
    pub(super) updated_at: DateTime<Utc>,
    pub(super) cancelled: bool,
    pub(super) closed: bool,
    pub(super) json: Arc<Value>,
}

/// Every order the simulated store has produced, latest version of each. Cheap to clone; all
/// clones share the same orders.
#[derive(Debug, Clone, Default)]
pub struct OrderBook {
    orders: Arc<RwLock<HashMap<i64, Stored>>>,
    /// At most this many orders: past it, a new order makes the least recently changed one
    /// go (live traffic left running would otherwise keep every order it ever made).
    limit: Option<usize>,
}

impl OrderBook {
    /// An empty book.
    pub fn new() -> OrderBook {
        OrderBook::default()
    }

    /// An empty book that keeps at most `limit` orders, the most recently changed.
    pub fn keeping(limit: usize) -> OrderBook {
        OrderBook {
            limit: Some(limit.max(1)),
            ..OrderBook::default()
        }
    }

    /// Keeps `order` unless the book already holds a strictly newer version of it (by
    /// `updated_at`). Answers whether it was kept.
    pub fn put(&self, order: &Value) -> Result<bool, BookError> {
        let id = order
            .get("id")
            .and_then(Value::as_i64)
            .ok_or(BookError::NoId)?;
        let updated_at = time_of(order, "updated_at").ok_or(BookError::NoUpdatedAt(id))?;
        let stored = Stored {
            id,
            created_at: time_of(order, "created_at").unwrap_or(updated_at),
            updated_at,
            cancelled: !is_null(order, "cancelled_at"),
            closed: !is_null(order, "closed_at"),
            json: Arc::new(order.clone()),
        };
        let mut orders = self.orders.write().unwrap_or_else(PoisonError::into_inner);
        match orders.get(&id) {
            Some(existing) if existing.updated_at > updated_at => Ok(false),
            existing => {
                if existing.is_none()
                    && self.limit.is_some_and(|limit| orders.len() >= limit)
                    && let Some(oldest) = orders
                        .values()
                        .min_by_key(|s| (s.updated_at, s.id))
                        .map(|s| s.id)
                {
                    orders.remove(&oldest);
                }
                orders.insert(id, stored);
                Ok(true)
            }
        }
    }

    /// The latest version of order `id`.
    pub fn get(&self, id: i64) -> Option<Value> {
        self.read(|orders| orders.get(&id).map(|s| s.json.as_ref().clone()))
    }

    /// How many orders the store has.
    pub fn len(&self) -> usize {
        self.read(HashMap::len)
    }

    /// Whether the store has no orders yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every order's id and latest `updated_at`, by id: what a complete sync must end up with.
    pub fn versions(&self) -> Vec<(i64, DateTime<Utc>)> {
        let mut all: Vec<(i64, DateTime<Utc>)> =
            self.read(|orders| orders.values().map(|s| (s.id, s.updated_at)).collect());
        all.sort_unstable();
        all
    }

    /// A consistent copy of every order, for one Admin API query.
    pub(super) fn snapshot(&self) -> Vec<Stored> {
        self.read(|orders| orders.values().cloned().collect())
    }

    fn read<T>(&self, f: impl FnOnce(&HashMap<i64, Stored>) -> T) -> T {
        f(&self.orders.read().unwrap_or_else(PoisonError::into_inner))
    }
}

fn time_of(order: &Value, key: &str) -> Option<DateTime<Utc>> {
    let text = order.get(key)?.as_str()?;
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|at| at.with_timezone(&Utc))
}

fn is_null(order: &Value, key: &str) -> bool {
    order.get(key).is_none_or(Value::is_null)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn order(id: i64, minute: u32) -> Value {
        json!({ "id": id, "updated_at": format!("2026-12-07T10:{minute:02}:00Z") })
    }

    /// A bounded book keeps the most recently changed orders; a newer version of one it holds
    /// makes nothing go.
    #[test]
    fn a_bounded_book_lets_the_least_recently_changed_go() {
        let book = OrderBook::keeping(3);
        for (id, minute) in [(1, 1), (2, 2), (3, 3)] {
            assert_eq!(book.put(&order(id, minute)), Ok(true));
        }
        assert_eq!(
            book.put(&order(1, 4)),
            Ok(true),
            "order 1 changed: now the newest"
        );
        assert_eq!(book.len(), 3);
        assert_eq!(book.put(&order(4, 5)), Ok(true));
        let ids: Vec<i64> = book.versions().into_iter().map(|(id, _)| id).collect();
        assert_eq!(ids, [1, 3, 4], "order 2, the least recently changed, went");
        assert_eq!(OrderBook::new().limit, None);
    }
}

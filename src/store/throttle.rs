//! Counters of failed sign-ins, per account and per client address.

use chrono::{DateTime, Utc};

use super::{Store, StoreError, on_pool};

/// A throttle key's state.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct ThrottleState {
    /// `account:<email>` or `client:<address>`.
    pub key: String,
    /// Failures in the current window.
    pub failures: i32,
    /// When the window began.
    pub window_started_at: DateTime<Utc>,
    /// No attempt is accepted before this.
    pub locked_until: Option<DateTime<Utc>>,
}

impl Store {
    /// The stored state of these keys.
    pub async fn throttle_states(&self, keys: &[String]) -> Result<Vec<ThrottleState>, StoreError> {
        let mut states = Vec::with_capacity(keys.len());
        for key in keys {
            let state = on_pool!(&self.db, pool => {
                sqlx::query_as::<_, ThrottleState>(
                    "SELECT key, failures, window_started_at, locked_until FROM signin_throttle WHERE key = $1",
                )
                .bind(key)
                .fetch_optional(pool)
                .await
            })?;
            states.extend(state);
        }
        Ok(states)
    }

    /// Writes a key's next state, unless another sign-in changed the key since `seen` was read
    /// (`seen` is `None` when there was no row): compare-and-set on the failure count and the
    /// window's start (a new window restarts the count at 1, which the count alone would not
    /// tell apart), so two sign-ins failing at once count two failures, never one. False when
    /// it lost that race; read again and retry.
    pub async fn swap_throttle_state(
        &self,
        seen: Option<&ThrottleState>,
        next: &ThrottleState,
    ) -> Result<bool, StoreError> {
        let written = on_pool!(&self.db, pool => match seen {
            None => sqlx::query(
                "INSERT INTO signin_throttle (key, failures, window_started_at, locked_until) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (key) DO NOTHING",
            )
            .bind(&next.key)
            .bind(next.failures)
            .bind(next.window_started_at)
            .bind(next.locked_until)
            .execute(pool)
            .await
            .map(|done| done.rows_affected()),
            Some(seen) => sqlx::query(
                "UPDATE signin_throttle SET failures = $2, window_started_at = $3, locked_until = $4
                 WHERE key = $1 AND failures = $5 AND window_started_at = $6",
            )
            .bind(&next.key)
            .bind(next.failures)
            .bind(next.window_started_at)
            .bind(next.locked_until)
            .bind(seen.failures)
            .bind(seen.window_started_at)
            .execute(pool)
            .await
            .map(|done| done.rows_affected()),
        })?;
        Ok(written == 1)
    }

    /// Forgets a key (after a successful sign-in).
    pub async fn clear_throttle(&self, key: &str) -> Result<(), StoreError> {
        on_pool!(&self.db, pool => sqlx::query("DELETE FROM signin_throttle WHERE key = $1").bind(key).execute(pool).await.map(|_| ()))?;
        Ok(())
    }
}

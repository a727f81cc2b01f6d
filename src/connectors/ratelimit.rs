//! A per-destination token bucket, applied before each request, that also honours the
//! destination's `Retry-After`.
//!
//! A request that would wait longer than `max_wait` is not sent: the caller gets a
//! `RateLimited` error with the wait, so a worker hands its task back to the queue instead of
//! holding a lease while it sleeps.

use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

/// How fast SyncDesk may call one destination.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RateLimit {
    /// Sustained requests per second.
    pub per_second: f64,
    /// Requests that may go at once after a quiet spell.
    pub burst: u32,
}

impl Default for RateLimit {
    fn default() -> Self {
        RateLimit {
            per_second: 50.0,
            burst: 100,
        }
    }
}

/// The bucket: shared by every request to one destination.
#[derive(Debug)]
pub(crate) struct TokenBucket {
    limit: Option<RateLimit>,
    max_wait: Duration,
    state: Mutex<BucketState>,
}

#[derive(Debug)]
struct BucketState {
    tokens: f64,
    updated: Instant,
    paused_until: Option<Instant>,
}

impl TokenBucket {
    /// A full bucket; `None` (or a rate of zero) means no limit except `Retry-After`.
    pub(crate) fn new(limit: Option<RateLimit>, max_wait: Duration) -> Self {
        let limit = limit.filter(|l| l.per_second > 0.0 && l.per_second.is_finite());
        let tokens = limit.map_or(0.0, |l| f64::from(l.burst.max(1)));
        TokenBucket {
            limit,
            max_wait,
            state: Mutex::new(BucketState {
                tokens,
                updated: Instant::now(),
                paused_until: None,
            }),
        }
    }

    /// Waits for this request's slot. `Err(wait)` when the slot is further away than
    /// `max_wait`; nothing is consumed then.
    pub(crate) async fn acquire(&self) -> Result<(), Duration> {
        let wait = self.reserve(Instant::now())?;
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        Ok(())
    }

    /// Holds every request back for `pause` (the destination's `Retry-After`).
    pub(crate) fn pause_for(&self, pause: Duration) {
        let until = Instant::now() + pause;
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if state.paused_until.is_none_or(|p| p < until) {
            state.paused_until = Some(until);
        }
    }

    /// Takes a token (possibly one not yet refilled, which is a reservation) and says how long
    /// to wait for it.
    fn reserve(&self, now: Instant) -> Result<Duration, Duration> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let paused = state
            .paused_until
            .map_or(Duration::ZERO, |until| until.saturating_duration_since(now));
        let Some(limit) = self.limit else {
            return if paused > self.max_wait {
                Err(paused)
            } else {
                Ok(paused)
            };
        };
        let burst = f64::from(limit.burst.max(1));
        let elapsed = now.saturating_duration_since(state.updated).as_secs_f64();
        state.tokens = (state.tokens + elapsed * limit.per_second).min(burst);
        state.updated = now;
        let for_token = if state.tokens >= 1.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64((1.0 - state.tokens) / limit.per_second)
        };
        let wait = paused.max(for_token);
        if wait > self.max_wait {
            return Err(wait);
        }
        state.tokens -= 1.0;
        Ok(wait)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_goes_at_once_then_the_rate_applies() {
        let bucket = TokenBucket::new(
            Some(RateLimit {
                per_second: 10.0,
                burst: 3,
            }),
            Duration::from_millis(150),
        );
        let now = Instant::now();
        for _ in 0..3 {
            assert_eq!(bucket.reserve(now), Ok(Duration::ZERO));
        }
        // The fourth waits one emission interval, the fifth two, which is past max_wait.
        assert_eq!(bucket.reserve(now), Ok(Duration::from_millis(100)));
        let refused = bucket.reserve(now);
        assert!(
            matches!(refused, Err(w) if w >= Duration::from_millis(199)),
            "{refused:?}"
        );
        // A second later the bucket has refilled.
        assert_eq!(
            bucket.reserve(now + Duration::from_secs(1)),
            Ok(Duration::ZERO)
        );
    }

    #[test]
    fn retry_after_holds_every_request_back() {
        let bucket = TokenBucket::new(None, Duration::from_secs(1));
        let start = Instant::now();
        assert_eq!(bucket.reserve(start), Ok(Duration::ZERO));
        bucket.pause_for(Duration::from_secs(30));
        let refused = bucket.reserve(start);
        assert!(
            matches!(refused, Err(w) if w > Duration::from_secs(29)),
            "{refused:?}"
        );
        let short = bucket.reserve(start + Duration::from_millis(29_500));
        assert!(
            matches!(short, Ok(w) if w <= Duration::from_millis(600)),
            "{short:?}"
        );
    }
}

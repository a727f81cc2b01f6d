//! How long to wait before the next attempt after a transient failure: exponential, with
//! jitter so a recovered destination is not hit by every waiting task at the same instant.

use std::time::Duration;

use rand::Rng;

/// The retry policy of every task.
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    /// Attempts before a task is dead-lettered.
    pub max_attempts: i64,
    /// The first wait.
    pub base: Duration,
    /// Each wait is this many times the previous one.
    pub factor: u32,
    /// No wait is longer than this.
    pub cap: Duration,
}

impl Default for RetryPolicy {
    /// 8 attempts over about 3 hours: waits of 10 s, 30 s, 90 s, 4.5 min, 13.5 min, 40 min, 2 h.
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 8,
            base: Duration::from_secs(10),
            factor: 3,
            cap: Duration::from_secs(2 * 3600),
        }
    }
}

impl RetryPolicy {
    /// The wait after failed attempt number `attempt` (1-based), at least `retry_after` when the
    /// destination asked for one. Jitter: ±25 %.
    pub fn delay(&self, attempt: i64, retry_after: Option<Duration>) -> Duration {
        let exponent = u32::try_from(attempt.saturating_sub(1))
            .unwrap_or(0)
            .min(20);
        let raw = self
            .base
            .saturating_mul(self.factor.saturating_pow(exponent))
            .min(self.cap);
        let jitter = rand::thread_rng().gen_range(0.75..=1.25);
        let delay = raw.mul_f64(jitter).min(self.cap);
        retry_after.map_or(delay, |after| delay.max(after))
    }

    /// Whether attempt number `attempt` was the last one allowed.
    pub fn exhausted(&self, attempt: i64) -> bool {
        attempt >= self.max_attempts
    }
}

/// How long a task SyncDesk's own rate limit held back waits before it is claimed again: the
/// limiter's wait (at least a second), spread over up to twice that so the tasks held back
/// together do not all come back at the same instant. Not an attempt, so it does not grow.
pub fn held_back(wait: Option<Duration>) -> Duration {
    let wait = wait.unwrap_or(Duration::ZERO).max(Duration::from_secs(1));
    wait.mul_f64(rand::thread_rng().gen_range(1.0..=2.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_task_held_back_waits_for_the_limiter_spread_over_twice_that() {
        for _ in 0..100 {
            let wait = held_back(Some(Duration::from_secs(3)));
            assert!((Duration::from_secs(3)..=Duration::from_secs(6)).contains(&wait));
            let wait = held_back(None);
            assert!((Duration::from_secs(1)..=Duration::from_secs(2)).contains(&wait));
        }
    }

    #[test]
    fn waits_grow_steeply_within_jitter_and_respect_retry_after() {
        let p = RetryPolicy::default();
        let first = p.delay(1, None);
        assert!(
            first >= Duration::from_millis(7_500) && first <= Duration::from_millis(12_500),
            "{first:?}"
        );
        let fourth = p.delay(4, None);
        assert!(
            fourth >= Duration::from_secs(202) && fourth <= Duration::from_secs(338),
            "{fourth:?}"
        );
        assert!(p.delay(30, None) <= p.cap);
        assert!(p.delay(1, Some(Duration::from_secs(60))) >= Duration::from_secs(60));
        assert!(!p.exhausted(7) && p.exhausted(8));
    }
}

//! Fault injection for the simulated CRM and ERP: set at start-up in the config, changed at run
//! time through [`FaultHandle`] or `PUT /_sim/faults`.
//!
//! Faults apply to the API (`/v1/...`), never to the control endpoints (`/_sim/...`), so a test
//! can always switch them off again.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::Rng;
use serde::{Deserialize, Serialize};

/// What the simulator should get wrong. The default gets nothing wrong.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Added to every API request, in milliseconds.
    pub latency_ms: u64,
    /// A further random delay of up to this many milliseconds.
    pub jitter_ms: u64,
    /// Fraction (0..=1) of API requests answered 500/502/503 without any effect.
    pub error_rate: f64,
    /// Fraction (0..=1) of API requests answered 429 with `Retry-After`.
    pub rate_limit_rate: f64,
    /// The `Retry-After` sent with a 429, in seconds.
    pub retry_after_secs: u64,
    /// Credentials revoked: every API request is answered 401 until this is cleared.
    pub revoked: bool,
    /// A window in which the destination is down.
    pub outage: Option<Outage>,
    /// Fraction (0..=1) of successful writes that are committed and then answered only after
    /// `hang_ms`, which is longer than the client waits.
    pub commit_then_timeout_rate: f64,
    /// How long a hang lasts, in milliseconds (outage `hang`, commit-then-timeout).
    pub hang_ms: u64,
    /// ERP only: stop enforcing unique external ids, as many real ERPs don't, so a client that
    /// creates without finding first makes duplicates (the ledger check then shows them).
    pub allow_duplicates: bool,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            latency_ms: 0,
            jitter_ms: 0,
            error_rate: 0.0,
            rate_limit_rate: 0.0,
            retry_after_secs: 30,
            revoked: false,
            outage: None,
            commit_then_timeout_rate: 0.0,
            hang_ms: 30_000,
            allow_duplicates: false,
        }
    }
}

impl Faults {
    /// Checks the rates are fractions; the message names the offending field.
    pub fn validate(&self) -> Result<(), String> {
        for (name, rate) in [
            ("error_rate", self.error_rate),
            ("rate_limit_rate", self.rate_limit_rate),
            ("commit_then_timeout_rate", self.commit_then_timeout_rate),
        ] {
            if !(0.0..=1.0).contains(&rate) {
                return Err(format!("{name} must be between 0 and 1, got {rate}"));
            }
        }
        // A request is answered with one of the two at most.
        if self.error_rate + self.rate_limit_rate > 1.0 {
            return Err(format!(
                "error_rate and rate_limit_rate together must be at most 1, got {}",
                self.error_rate + self.rate_limit_rate
            ));
        }
        Ok(())
    }
}

/// A window during which the destination is down.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Outage {
    /// Start; `None` means already started.
    #[serde(default)]
    pub from: Option<DateTime<Utc>>,
    /// End (exclusive).
    pub until: DateTime<Utc>,
    /// How the destination behaves while down.
    #[serde(default)]
    pub mode: OutageMode,
}

/// How a destination behaves during an outage.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutageMode {
    /// Answer 503 at once, like a load balancer with no healthy backend.
    #[default]
    Unavailable,
    /// Accept the connection and answer nothing for `hang_ms`, past the client's timeout.
    Hang,
}

/// What to do to one request, decided up front so no lock is held across an await.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Plan {
    /// Down: how.
    pub(crate) outage: Option<OutageMode>,
    /// Delay before handling.
    pub(crate) delay: Duration,
    /// Answer 401.
    pub(crate) revoked: bool,
    /// Answer 429 with this many seconds.
    pub(crate) rate_limited: Option<u64>,
    /// Answer this 5xx.
    pub(crate) server_error: Option<u16>,
    /// Handle, then hang before answering.
    pub(crate) commit_then_timeout: bool,
    /// How long hangs last.
    pub(crate) hang: Duration,
}

/// The live fault settings of one simulator; clones share them.
#[derive(Debug, Clone, Default)]
pub struct FaultHandle {
    faults: Arc<RwLock<Faults>>,
    requests: Arc<AtomicU64>,
}

impl FaultHandle {
    /// A handle starting with `faults`.
    pub fn new(faults: Faults) -> Self {
        FaultHandle {
            faults: Arc::new(RwLock::new(faults)),
            requests: Arc::default(),
        }
    }

    /// The current settings.
    pub fn get(&self) -> Faults {
        self.faults
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Replaces every setting.
    pub fn set(&self, faults: Faults) {
        *self.faults.write().unwrap_or_else(|p| p.into_inner()) = faults;
    }

    /// Changes some settings in place: `handle.update(|f| f.error_rate = 0.1)`.
    pub fn update(&self, change: impl FnOnce(&mut Faults)) {
        change(&mut self.faults.write().unwrap_or_else(|p| p.into_inner()));
    }

    /// Back to no faults.
    pub fn reset(&self) {
        self.set(Faults::default());
    }

    /// Revokes the credentials: 401 on everything until [`FaultHandle::restore_credentials`].
    pub fn revoke_credentials(&self) {
        self.update(|f| f.revoked = true);
    }

    /// Accepts the credentials again.
    pub fn restore_credentials(&self) {
        self.update(|f| f.revoked = false);
    }

    /// Starts an outage now, lasting `length`.
    pub fn start_outage(&self, length: Duration, mode: OutageMode) {
        let until =
            Utc::now() + chrono::Duration::from_std(length).unwrap_or(chrono::Duration::MAX);
        self.update(|f| {
            f.outage = Some(Outage {
                from: None,
                until,
                mode,
            })
        });
    }

    /// Ends any outage.
    pub fn end_outage(&self) {
        self.update(|f| f.outage = None);
    }

    /// API requests seen so far (including those a fault answered).
    pub fn requests_seen(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Counts one request and decides its fate.
    pub(crate) fn plan(&self, is_write: bool) -> Plan {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let faults = self.faults.read().unwrap_or_else(|p| p.into_inner());
        let now = Utc::now();
        let mut rng = rand::thread_rng();
        // One draw decides between a 429 and a server error, so each comes at its own rate
        // (drawn apart, the 429 took its share of the server errors too).
        let draw = rng.r#gen::<f64>();
        let rate_limited = draw < faults.rate_limit_rate;
        let server_error = !rate_limited && draw < faults.rate_limit_rate + faults.error_rate;
        let commit_then_timeout = is_write
            && faults.commit_then_timeout_rate > 0.0
            && rng.r#gen::<f64>() < faults.commit_then_timeout_rate;
        let jitter = if faults.jitter_ms > 0 {
            rng.gen_range(0..=faults.jitter_ms)
        } else {
            0
        };
        Plan {
            outage: faults
                .outage
                .as_ref()
                .filter(|o| o.from.is_none_or(|from| from <= now) && now < o.until)
                .map(|o| o.mode),
            delay: Duration::from_millis(faults.latency_ms.saturating_add(jitter)),
            revoked: faults.revoked,
            rate_limited: rate_limited.then_some(faults.retry_after_secs),
            server_error: server_error.then(|| [500, 502, 503][rng.gen_range(0..3)]),
            commit_then_timeout,
            hang: Duration::from_millis(faults.hang_ms),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Half 429s and half server errors: every request gets one of the two, each about half the
    /// time (drawn apart, the server errors came at a quarter).
    #[test]
    fn each_fault_comes_at_its_own_rate() {
        let handle = FaultHandle::new(Faults {
            error_rate: 0.5,
            rate_limit_rate: 0.5,
            ..Faults::default()
        });
        let (mut limited, mut failed) = (0, 0);
        for _ in 0..4_000 {
            let plan = handle.plan(false);
            match (plan.rate_limited, plan.server_error) {
                (Some(_), None) => limited += 1,
                (None, Some(_)) => failed += 1,
                other => panic!("one fault a request, got {other:?}"),
            }
        }
        assert!(
            (1_700..=2_300).contains(&failed),
            "{failed} server errors of 4,000"
        );
        assert_eq!(limited + failed, 4_000);
    }
}

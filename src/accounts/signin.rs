//! Signing in: throttling, password check, and the audit trail of every attempt.

use std::time::Duration;

use app::model::Role;
use chrono::{TimeDelta, Utc};
use serde_json::json;

use super::{Email, hash_password, validate_password, verify_password};
use crate::audit::{Actor, Change};
use crate::store::{NewUser, Store, StoreError, ThrottleState, UserRecord};

/// How failed sign-ins slow further attempts. Locks are temporary and grow with each further
/// failure (`base_lock`, doubled per failure past the limit, capped at `max_lock`), so an attacker
/// is slowed to a crawl while the real owner is never locked out for good.
#[derive(Clone, Debug)]
pub struct ThrottlePolicy {
    /// Failures of one account within `window` before it is locked.
    pub per_account: i32,
    /// Failures from one client address within `window` before it is locked.
    pub per_client: i32,
    /// How long failures are remembered.
    pub window: Duration,
    /// The first lock's length.
    pub base_lock: Duration,
    /// The longest lock.
    pub max_lock: Duration,
}

impl Default for ThrottlePolicy {
    fn default() -> Self {
        ThrottlePolicy {
            per_account: 5,
            per_client: 20,
            window: Duration::from_secs(15 * 60),
            base_lock: Duration::from_secs(30),
            max_lock: Duration::from_secs(15 * 60),
        }
    }
}

/// Why a sign-in was refused.
#[derive(Debug, thiserror::Error)]
pub enum SignInError {
    /// Unknown email, wrong password, or deactivated account (deliberately indistinguishable).
    #[error("email and password do not match an active account")]
    BadCredentials,
    /// Too many recent failures; try again after this long.
    #[error("too many failed sign-ins; retry in {0:?}")]
    Throttled(Duration),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Account operations shared by the web UI and the CLI.
#[derive(Clone, Debug)]
pub struct Accounts {
    store: Store,
    policy: ThrottlePolicy,
}

/// Characters a name must not hold: control characters, and the marks that reorder text around
/// them (a name is shown beside others, in lists and in the audit log).
fn invisible(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// A well-formed argon2id hash (OWASP parameters) that no password matches, checked when the
/// email is unknown so that an unknown account takes as long to refuse as a wrong password.
pub(crate) const DECOY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c3luY2Rlc2tkZWNveXNhbHQ$V8M0u2mS1qOqS7hJQkX1m8S9hL6m3cX0l0yXo2c6zG8";

impl Accounts {
    /// Account operations over `store`, throttled by `policy`.
    pub fn new(store: Store, policy: ThrottlePolicy) -> Accounts {
        Accounts { store, policy }
    }

    /// Checks a sign-in attempt. Every outcome is audited: success, wrong credentials, and
    /// attempts refused by the throttle.
    pub async fn sign_in(
        &self,
        email: &str,
        password: String,
        client: Option<String>,
    ) -> Result<UserRecord, SignInError> {
        // Only a well-formed address becomes a throttle key or an audit target: anything else
        // (2 MB of text, a NUL byte) is counted against the client alone and named by a fixed
        // word, so it can neither fill the tables nor fail a statement.
        let email = Email::parse(email).ok();
        let target = email.as_ref().map_or_else(
            || "account:(not an email address)".into(),
            |e| format!("account:{e}"),
        );
        let client_key = client
            .as_ref()
            .map_or_else(|| "client:unknown".into(), |c| format!("client:{c}"));
        let account_key = email.as_ref().map(|e| format!("account:{e}"));
        let keys: Vec<String> = account_key
            .iter()
            .cloned()
            .chain([client_key.clone()])
            .collect();

        let now = Utc::now();
        let states = self.store.throttle_states(&keys).await?;
        if let Some(until) = states
            .iter()
            .filter_map(|s| s.locked_until)
            .filter(|u| *u > now)
            .max()
        {
            let wait = (until - now).to_std().unwrap_or_default();
            self.store
                .record(&Change::new(&Actor::Anonymous, "signin.throttled", target).client(client))
                .await?;
            return Err(SignInError::Throttled(wait));
        }

        let credentials = match &email {
            Some(email) => self.store.credentials(email).await?,
            None => None,
        };
        let hash = credentials
            .as_ref()
            .map_or_else(|| DECOY_HASH.to_string(), |c| c.password_hash.clone());
        let matches = verify_password(password, hash).await;
        match credentials {
            Some(c) if matches && c.active => {
                if let Some(key) = &account_key {
                    self.store.clear_throttle(key).await?;
                }
                self.store.touch_sign_in(c.id).await?;
                let user = self
                    .store
                    .user(c.id)
                    .await?
                    .ok_or(StoreError::NotFound("user"))?;
                let actor = Actor::User {
                    id: user.id,
                    email: user.email.clone(),
                };
                self.store
                    .record(
                        &Change::new(&actor, "signin.succeeded", format!("user:{}", user.id))
                            .client(client),
                    )
                    .await?;
                Ok(user)
            }
            _ => {
                if let Some(key) = &account_key {
                    self.count_failure(&states, key, self.policy.per_account)
                        .await?;
                }
                self.count_failure(&states, &client_key, self.policy.per_client)
                    .await?;
                self.store
                    .record(&Change::new(&Actor::Anonymous, "signin.failed", target).client(client))
                    .await?;
                Err(SignInError::BadCredentials)
            }
        }
    }

    /// Counts a failure against `key`, locking it once the failures reach `limit`. `states` is
    /// what the sign-in read before checking the password; when another sign-in has counted a
    /// failure since, the key is read again, so failures at the same moment are all counted.
    async fn count_failure(
        &self,
        states: &[ThrottleState],
        key: &str,
        limit: i32,
    ) -> Result<(), StoreError> {
        let mut seen = states.iter().find(|s| s.key == key).cloned();
        // Each round loses only to a failure counted meanwhile, so with N failures in flight on
        // one key this ends within N rounds; the bound only keeps a fault from spinning.
        for _ in 0..1_000 {
            let next = self.next_failure(seen.as_ref(), key, limit);
            if self.store.swap_throttle_state(seen.as_ref(), &next).await? {
                return Ok(());
            }
            seen = self.store.throttle_states(&[key.to_string()]).await?.pop();
        }
        tracing::warn!("a failed sign-in could not be counted after 1000 rounds of contention");
        Ok(())
    }

    /// The state of `key` after one more failure on `seen`.
    fn next_failure(&self, seen: Option<&ThrottleState>, key: &str, limit: i32) -> ThrottleState {
        let now = Utc::now();
        let window = TimeDelta::from_std(self.policy.window).unwrap_or(TimeDelta::MAX);
        let mut state = match seen {
            Some(s) if now - s.window_started_at <= window => s.clone(),
            _ => ThrottleState {
                key: key.to_string(),
                failures: 0,
                window_started_at: now,
                locked_until: None,
            },
        };
        state.failures += 1;
        if state.failures >= limit {
            let doublings = u32::try_from(state.failures - limit).unwrap_or(0).min(16);
            let lock = self
                .policy
                .base_lock
                .saturating_mul(1 << doublings)
                .min(self.policy.max_lock);
            state.locked_until = Some(now + TimeDelta::from_std(lock).unwrap_or(TimeDelta::MAX));
        }
        state
    }

    /// Creates an account after checking every field; the message says what to fix.
    pub async fn add_user(
        &self,
        email: &str,
        display_name: &str,
        password: String,
        roles: Vec<Role>,
        by: &Actor,
    ) -> Result<UserRecord, AddUserError> {
        let email = Email::parse(email).map_err(AddUserError::Invalid)?;
        let display_name = display_name.trim();
        if display_name.is_empty() || display_name.chars().count() > 100 {
            return Err(AddUserError::Invalid(
                "The name must be between 1 and 100 characters.".into(),
            ));
        }
        if display_name.chars().any(invisible) {
            return Err(AddUserError::Invalid(
                "The name holds an invisible control character; type it again as plain text."
                    .into(),
            ));
        }
        validate_password(&password).map_err(AddUserError::Invalid)?;
        let password_hash = hash_password(password).await.map_err(AddUserError::Hash)?;
        let new = NewUser {
            email,
            display_name: display_name.to_string(),
            password_hash,
            roles,
        };
        Ok(self.store.create_user(&new, by).await?)
    }

    /// Sets a new password after checking it.
    pub async fn set_password(
        &self,
        user_id: i64,
        password: String,
        by: &Actor,
    ) -> Result<(), AddUserError> {
        validate_password(&password).map_err(AddUserError::Invalid)?;
        let hash = hash_password(password).await.map_err(AddUserError::Hash)?;
        Ok(self.store.set_user_password(user_id, &hash, by).await?)
    }

    /// The audit view of a sign-out.
    pub async fn record_sign_out(
        &self,
        actor: &Actor,
        client: Option<String>,
    ) -> Result<(), StoreError> {
        let target = match actor.id() {
            Some(id) => format!("user:{id}"),
            None => "session".into(),
        };
        self.store
            .record(
                &Change::new(actor, "signout", target)
                    .client(client)
                    .after(json!({})),
            )
            .await
    }
}

/// Why an account could not be created or changed.
#[derive(Debug, thiserror::Error)]
pub enum AddUserError {
    /// A field is wrong; the text says which and why.
    #[error("{0}")]
    Invalid(String),
    /// Hashing failed.
    #[error("password hashing failed: {0}")]
    Hash(anyhow::Error),
    /// Storage failed (including a duplicate email, as a conflict).
    #[error(transparent)]
    Store(#[from] StoreError),
}

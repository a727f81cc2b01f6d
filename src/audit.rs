//! Who did what: the audit log's vocabulary. Every mutation by a person or a token writes one
//! [`Change`], in the same transaction as the mutation itself (see `store::audit`), so the log
//! can never disagree with the data.

use serde_json::Value;

/// Who made a change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Actor {
    /// A signed-in person.
    User {
        /// User id.
        id: i64,
        /// Their email, kept in the log so it reads well after the account is gone.
        email: String,
    },
    /// An API token.
    Token {
        /// Token id.
        id: i64,
        /// Its name.
        name: String,
    },
    /// SyncDesk itself (the engine, the CLI run by an operator of the machine).
    System,
    /// Nobody signed in (a failed sign-in).
    Anonymous,
}

impl Actor {
    /// The kind stored in `audit_log.actor_kind`.
    pub fn kind(&self) -> &'static str {
        match self {
            Actor::User { .. } => "user",
            Actor::Token { .. } => "token",
            Actor::System => "system",
            Actor::Anonymous => "anonymous",
        }
    }

    /// The id stored in `audit_log.actor_id`.
    pub fn id(&self) -> Option<i64> {
        match self {
            Actor::User { id, .. } | Actor::Token { id, .. } => Some(*id),
            Actor::System | Actor::Anonymous => None,
        }
    }

    /// How the actor reads in the log.
    pub fn label(&self) -> String {
        match self {
            Actor::User { email, .. } => email.clone(),
            Actor::Token { name, .. } => format!("token:{name}"),
            Actor::System => "system".into(),
            Actor::Anonymous => "anonymous".into(),
        }
    }
}

/// One audited change.
#[derive(Clone, Debug)]
pub struct Change {
    /// Who.
    pub actor: Actor,
    /// What, as `noun.verb` (e.g. `user.roles_changed`).
    pub action: &'static str,
    /// On what, as `kind:id` (e.g. `user:7`).
    pub target: String,
    /// State before, when there was one.
    pub before: Option<Value>,
    /// State after, when there is one.
    pub after: Option<Value>,
    /// The client address, for security events (sign-in attempts, refusals).
    pub client: Option<String>,
}

impl Change {
    /// A change by `actor` of `action` on `target`, with no before/after yet.
    pub fn new(actor: &Actor, action: &'static str, target: impl Into<String>) -> Change {
        Change {
            actor: actor.clone(),
            action,
            target: target.into(),
            before: None,
            after: None,
            client: None,
        }
    }

    /// With the state before.
    pub fn before(mut self, value: Value) -> Change {
        self.before = Some(value);
        self
    }

    /// With the state after.
    pub fn after(mut self, value: Value) -> Change {
        self.after = Some(value);
        self
    }

    /// With the client address.
    pub fn client(mut self, client: Option<String>) -> Change {
        self.client = client;
        self
    }
}

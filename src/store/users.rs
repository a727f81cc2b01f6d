//! User accounts and their roles.

use std::collections::BTreeMap;

use app::model::Role;
use chrono::{DateTime, Utc};
use serde_json::json;

use super::audit::insert_audit;
use super::{Store, StoreError, conflict_on_unique, on_pool};
use crate::accounts::Email;
use crate::audit::{Actor, Change};

/// A user account with its roles.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserRecord {
    /// User id.
    pub id: i64,
    /// Normalised email.
    pub email: String,
    /// Display name.
    pub display_name: String,
    /// Roles held, sorted.
    pub roles: Vec<Role>,
    /// Whether the account may sign in.
    pub active: bool,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last successful sign-in.
    pub last_sign_in_at: Option<DateTime<Utc>>,
    /// Sessions signed in at or before this time are ended (set at deactivation and at a new
    /// password).
    pub sessions_valid_from: Option<DateTime<Utc>>,
}

impl UserRecord {
    /// The audit log's picture of the account (never the password hash).
    fn audit_view(&self) -> serde_json::Value {
        json!({
            "email": self.email,
            "display_name": self.display_name,
            "roles": self.roles.iter().map(|r| r.as_str()).collect::<Vec<_>>(),
            "active": self.active,
        })
    }
}

/// Gives every open or snoozed exception assigned to user `$id` back to nobody, through `$tx`;
/// how many.
macro_rules! unassign_all {
    ($tx:expr, $id:expr) => {
        sqlx::query(
            "UPDATE exceptions SET assignee_id = NULL, updated_at = $2
             WHERE assignee_id = $1 AND status IN ('open', 'snoozed')",
        )
        .bind($id)
        .bind(Utc::now())
        .execute($tx)
        .await?
        .rows_affected()
    };
}

/// An account's audit view, with how many exceptions the change gave back to nobody (when any).
fn with_unassigned(mut view: serde_json::Value, unassigned: u64) -> serde_json::Value {
    if unassigned > 0 {
        view["exceptions_unassigned"] = json!(unassigned);
    }
    view
}

/// What sign-in needs to check a password.
#[derive(Clone, Debug)]
pub struct UserCredentials {
    /// User id.
    pub id: i64,
    /// The argon2 PHC string.
    pub password_hash: String,
    /// Whether the account may sign in.
    pub active: bool,
}

/// A new account, already validated and hashed.
#[derive(Clone, Debug)]
pub struct NewUser {
    /// Email.
    pub email: Email,
    /// Display name (trimmed, non-empty).
    pub display_name: String,
    /// argon2id PHC string.
    pub password_hash: String,
    /// Roles.
    pub roles: Vec<Role>,
}

#[derive(sqlx::FromRow)]
struct UserRow {
    id: i64,
    email: String,
    display_name: String,
    active: bool,
    created_at: DateTime<Utc>,
    last_sign_in_at: Option<DateTime<Utc>>,
    sessions_valid_from: Option<DateTime<Utc>>,
}

const USER_COLUMNS: &str =
    "id, email, display_name, active, created_at, last_sign_in_at, sessions_valid_from";

fn with_roles(rows: Vec<UserRow>, roles: Vec<(i64, String)>) -> Vec<UserRecord> {
    let mut by_user: BTreeMap<i64, Vec<Role>> = BTreeMap::new();
    for (user_id, role) in roles {
        if let Some(role) = Role::parse(&role) {
            by_user.entry(user_id).or_default().push(role);
        }
    }
    rows.into_iter()
        .map(|row| {
            let mut roles = by_user.remove(&row.id).unwrap_or_default();
            roles.sort();
            UserRecord {
                id: row.id,
                email: row.email,
                display_name: row.display_name,
                roles,
                active: row.active,
                created_at: row.created_at,
                last_sign_in_at: row.last_sign_in_at,
                sessions_valid_from: row.sessions_valid_from,
            }
        })
        .collect()
}

/// Opens a transaction in which changes to who is an active admin take turns (SQLite's write
/// lock; on PostgreSQL a lock held to the end of the transaction), and refuses, inside it, a
/// change that would leave no active admin: two admins removing each other at the same moment
/// would otherwise each see the other still there, and leave SyncDesk with none. `$loses_admin`
/// says whether user `$id` is no active admin after the change.
macro_rules! begin_admin_change {
    ($pool:ident, $id:expr, $loses_admin:expr) => {{
        let pg = super::is_postgres($pool);
        let mut tx = if pg {
            $pool.begin().await?
        } else {
            $pool.begin_with("BEGIN IMMEDIATE").await?
        };
        if pg {
            sqlx::query("SELECT pg_advisory_xact_lock(7315001)")
                .execute(&mut *tx)
                .await?;
        }
        if $loses_admin {
            let (was_admin, others): (i64, i64) = sqlx::query_as(
                "SELECT
                     (SELECT COUNT(*) FROM users u JOIN user_roles r ON r.user_id = u.id
                      WHERE r.role = 'admin' AND u.active AND u.id = $1),
                     (SELECT COUNT(*) FROM users u JOIN user_roles r ON r.user_id = u.id
                      WHERE r.role = 'admin' AND u.active AND u.id <> $1)",
            )
            .bind($id)
            .fetch_one(&mut *tx)
            .await?;
            if was_admin > 0 && others == 0 {
                return Err(StoreError::Invalid(
                    "That would leave SyncDesk without an active admin; make someone else an admin first.".into(),
                ));
            }
        }
        tx
    }};
}

impl Store {
    /// Creates an account and audits it.
    pub async fn create_user(&self, new: &NewUser, by: &Actor) -> Result<UserRecord, StoreError> {
        let now = Utc::now();
        let id = on_pool!(&self.db, pool => {
            let mut tx = pool.begin().await?;
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO users (email, display_name, password_hash, active, created_at, updated_at)
                 VALUES ($1, $2, $3, TRUE, $4, $4) RETURNING id",
            )
            .bind(new.email.as_str())
            .bind(&new.display_name)
            .bind(&new.password_hash)
            .bind(now)
            .fetch_one(&mut *tx)
            .await
            .map_err(|e| conflict_on_unique(e, || format!("A user with the email {} already exists.", new.email)))?;
            for role in &new.roles {
                sqlx::query("INSERT INTO user_roles (user_id, role) VALUES ($1, $2) ON CONFLICT DO NOTHING")
                    .bind(id)
                    .bind(role.as_str())
                    .execute(&mut *tx)
                    .await?;
            }
            let change = Change::new(by, "user.created", format!("user:{id}")).after(json!({
                "email": new.email.as_str(),
                "display_name": new.display_name,
                "roles": new.roles.iter().map(|r| r.as_str()).collect::<Vec<_>>(),
                "active": true,
            }));
            insert_audit!(&mut *tx, &change)?;
            tx.commit().await?;
            Ok::<i64, StoreError>(id)
        })?;
        self.user(id).await?.ok_or(StoreError::NotFound("user"))
    }

    /// One account by id.
    pub async fn user(&self, id: i64) -> Result<Option<UserRecord>, StoreError> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1");
        let (rows, roles) = on_pool!(&self.db, pool => {
            let rows = sqlx::query_as::<_, UserRow>(&sql).bind(id).fetch_all(pool).await?;
            let roles = sqlx::query_as::<_, (i64, String)>("SELECT user_id, role FROM user_roles WHERE user_id = $1")
                .bind(id)
                .fetch_all(pool)
                .await?;
            Ok::<_, StoreError>((rows, roles))
        })?;
        Ok(with_roles(rows, roles).pop())
    }

    /// Every account, by email.
    pub async fn users(&self) -> Result<Vec<UserRecord>, StoreError> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users ORDER BY email");
        let (rows, roles) = on_pool!(&self.db, pool => {
            let rows = sqlx::query_as::<_, UserRow>(&sql).fetch_all(pool).await?;
            let roles = sqlx::query_as::<_, (i64, String)>("SELECT user_id, role FROM user_roles")
                .fetch_all(pool)
                .await?;
            Ok::<_, StoreError>((rows, roles))
        })?;
        Ok(with_roles(rows, roles))
    }

    /// How many accounts exist.
    pub async fn user_count(&self) -> Result<i64, StoreError> {
        let n = on_pool!(&self.db, pool => sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM users").fetch_one(pool).await)?;
        Ok(n)
    }

    /// The password hash and status of the account with this email.
    pub async fn credentials(&self, email: &Email) -> Result<Option<UserCredentials>, StoreError> {
        let row = on_pool!(&self.db, pool => {
            sqlx::query_as::<_, (i64, String, bool)>("SELECT id, password_hash, active FROM users WHERE email = $1")
                .bind(email.as_str())
                .fetch_optional(pool)
                .await
        })?;
        Ok(row.map(|(id, password_hash, active)| UserCredentials {
            id,
            password_hash,
            active,
        }))
    }

    /// Notes a successful sign-in.
    pub async fn touch_sign_in(&self, id: i64) -> Result<(), StoreError> {
        on_pool!(&self.db, pool => {
            sqlx::query("UPDATE users SET last_sign_in_at = $1 WHERE id = $2").bind(Utc::now()).bind(id).execute(pool).await.map(|_| ())
        })?;
        Ok(())
    }

    /// Replaces an account's roles, audited with before and after.
    pub async fn set_user_roles(
        &self,
        id: i64,
        roles: &[Role],
        by: &Actor,
    ) -> Result<UserRecord, StoreError> {
        let before = self.user(id).await?.ok_or(StoreError::NotFound("user"))?;
        let mut after = before.clone();
        after.roles = roles.to_vec();
        after.roles.sort();
        after.roles.dedup();
        let stays_admin = after.roles.contains(&Role::Admin);
        let stays_operator = after.roles.contains(&Role::Operator);
        on_pool!(&self.db, pool => {
            let mut tx = begin_admin_change!(pool, id, !stays_admin);
            // Someone who no longer works the queue holds none of it: their exceptions go back
            // to nobody, where the others look for work.
            let unassigned = if stays_operator {
                0
            } else {
                unassign_all!(&mut *tx, id)
            };
            let change = Change::new(by, "user.roles_changed", format!("user:{id}"))
                .before(before.audit_view())
                .after(with_unassigned(after.audit_view(), unassigned));
            sqlx::query("DELETE FROM user_roles WHERE user_id = $1").bind(id).execute(&mut *tx).await?;
            for role in &after.roles {
                sqlx::query("INSERT INTO user_roles (user_id, role) VALUES ($1, $2) ON CONFLICT DO NOTHING")
                    .bind(id)
                    .bind(role.as_str())
                    .execute(&mut *tx)
                    .await?;
            }
            sqlx::query("UPDATE users SET updated_at = $1 WHERE id = $2").bind(Utc::now()).bind(id).execute(&mut *tx).await?;
            insert_audit!(&mut *tx, &change)?;
            tx.commit().await?;
            Ok::<(), StoreError>(())
        })?;
        self.user(id).await?.ok_or(StoreError::NotFound("user"))
    }

    /// Deactivates or reactivates an account, audited.
    pub async fn set_user_active(
        &self,
        id: i64,
        active: bool,
        by: &Actor,
    ) -> Result<UserRecord, StoreError> {
        let before = self.user(id).await?.ok_or(StoreError::NotFound("user"))?;
        let mut after = before.clone();
        after.active = active;
        let action = if active {
            "user.reactivated"
        } else {
            "user.deactivated"
        };
        on_pool!(&self.db, pool => {
            let mut tx = begin_admin_change!(pool, id, !active);
            let unassigned = if active { 0 } else { unassign_all!(&mut *tx, id) };
            let change = Change::new(by, action, format!("user:{id}"))
                .before(before.audit_view())
                .after(with_unassigned(after.audit_view(), unassigned));
            // Deactivating ends every session of the account, also those idle right now.
            let now = Utc::now();
            sqlx::query(
                "UPDATE users SET active = $1, updated_at = $2,
                     sessions_valid_from = CASE WHEN $1 THEN sessions_valid_from ELSE $2 END
                 WHERE id = $3",
            )
                .bind(active)
                .bind(now)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            insert_audit!(&mut *tx, &change)?;
            tx.commit().await?;
            Ok::<(), StoreError>(())
        })?;
        self.user(id).await?.ok_or(StoreError::NotFound("user"))
    }

    /// Sets a new password hash, audited (without the hash).
    pub async fn set_user_password(
        &self,
        id: i64,
        password_hash: &str,
        by: &Actor,
    ) -> Result<(), StoreError> {
        let change = Change::new(by, "user.password_changed", format!("user:{id}"));
        on_pool!(&self.db, pool => {
            let mut tx = pool.begin().await?;
            let done = sqlx::query(
                "UPDATE users SET password_hash = $1, updated_at = $2, sessions_valid_from = $2 WHERE id = $3",
            )
                .bind(password_hash)
                .bind(Utc::now())
                .bind(id)
                .execute(&mut *tx)
                .await?;
            if done.rows_affected() == 0 {
                return Err(StoreError::NotFound("user"));
            }
            insert_audit!(&mut *tx, &change)?;
            tx.commit().await?;
            Ok::<(), StoreError>(())
        })
    }
}

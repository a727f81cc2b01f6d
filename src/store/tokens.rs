//! API bearer tokens. Only a SHA-256 of the secret is stored: the secret is shown once.

use app::model::Role;
use chrono::{DateTime, Utc};
use serde_json::json;

use super::audit::insert_audit;
use super::{Store, StoreError, on_pool};
use crate::audit::{Actor, Change};

/// A live token, as bearer authentication sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenRecord {
    /// Token id.
    pub id: i64,
    /// Its name.
    pub name: String,
    /// Roles it carries.
    pub roles: Vec<Role>,
}

/// A token as `syncdesk token list` shows it (never its secret, which is not kept).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenListing {
    /// Token id.
    pub id: i64,
    /// Its name.
    pub name: String,
    /// Roles it carries.
    pub roles: Vec<Role>,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// When it last authenticated a request.
    pub last_used_at: Option<DateTime<Utc>>,
    /// When it was revoked; it authenticates nothing since.
    pub revoked_at: Option<DateTime<Utc>>,
}

/// What revoking a token did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Revoked {
    /// Revoked now: requests with it are refused (401) from this moment.
    Now {
        /// Its name.
        name: String,
    },
    /// It was revoked before, at this time; nothing changed.
    Already {
        /// Its name.
        name: String,
        /// When.
        at: DateTime<Utc>,
    },
}

impl Store {
    /// Every token, newest first.
    pub async fn tokens(&self) -> Result<Vec<TokenListing>, StoreError> {
        type Row = (
            i64,
            String,
            DateTime<Utc>,
            Option<DateTime<Utc>>,
            Option<DateTime<Utc>>,
        );
        let (rows, roles) = on_pool!(&self.db, pool => {
            let rows: Vec<Row> = sqlx::query_as(
                "SELECT id, name, created_at, last_used_at, revoked_at FROM api_tokens ORDER BY id DESC",
            )
            .fetch_all(pool)
            .await?;
            let roles: Vec<(i64, String)> =
                sqlx::query_as("SELECT token_id, role FROM api_token_roles ORDER BY token_id, role")
                    .fetch_all(pool)
                    .await?;
            Ok::<_, StoreError>((rows, roles))
        })?;
        Ok(rows
            .into_iter()
            .map(|(id, name, created_at, last_used_at, revoked_at)| {
                let mut roles: Vec<Role> = roles
                    .iter()
                    .filter(|(token, _)| *token == id)
                    .filter_map(|(_, role)| Role::parse(role))
                    .collect();
                roles.sort();
                TokenListing {
                    id,
                    name,
                    roles,
                    created_at,
                    last_used_at,
                    revoked_at,
                }
            })
            .collect())
    }

    /// Revokes a token, audited (`token.revoked`): from this moment it authenticates nothing.
    /// `NotFound` when no token has this id.
    pub async fn revoke_token(&self, id: i64, by: &Actor) -> Result<Revoked, StoreError> {
        on_pool!(&self.db, pool => {
            let mut tx = pool.begin().await?;
            // The write comes first: it takes the row (PostgreSQL) or the database's write lock
            // (SQLite) before anything is read, so two revokes at once revoke and audit once,
            // and SQLite never has to turn a read into a write under a busy server.
            let now = Utc::now();
            let revoked: Option<String> = sqlx::query_scalar(
                "UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL RETURNING name",
            )
            .bind(now)
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(name) = revoked else {
                let found: Option<(String, Option<DateTime<Utc>>)> =
                    sqlx::query_as("SELECT name, revoked_at FROM api_tokens WHERE id = $1")
                        .bind(id)
                        .fetch_optional(&mut *tx)
                        .await?;
                return match found {
                    Some((name, Some(at))) => Ok(Revoked::Already { name, at }),
                    _ => Err(StoreError::NotFound("token")),
                };
            };
            let change = Change::new(by, "token.revoked", format!("token:{id}"))
                .after(json!({ "name": name }));
            insert_audit!(&mut *tx, &change)?;
            tx.commit().await?;
            Ok::<_, StoreError>(Revoked::Now { name })
        })
    }

    /// Stores a new token by the hash of its secret, audited.
    pub async fn create_token(
        &self,
        name: &str,
        token_hash: &str,
        roles: &[Role],
        by: &Actor,
    ) -> Result<TokenRecord, StoreError> {
        let id = on_pool!(&self.db, pool => {
            let mut tx = pool.begin().await?;
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO api_tokens (name, token_hash, created_by, created_at) VALUES ($1, $2, $3, $4) RETURNING id",
            )
            .bind(name)
            .bind(token_hash)
            .bind(by.label())
            .bind(Utc::now())
            .fetch_one(&mut *tx)
            .await?;
            for role in roles {
                sqlx::query("INSERT INTO api_token_roles (token_id, role) VALUES ($1, $2) ON CONFLICT DO NOTHING")
                    .bind(id)
                    .bind(role.as_str())
                    .execute(&mut *tx)
                    .await?;
            }
            let change = Change::new(by, "token.created", format!("token:{id}"))
                .after(json!({ "name": name, "roles": roles.iter().map(|r| r.as_str()).collect::<Vec<_>>() }));
            insert_audit!(&mut *tx, &change)?;
            tx.commit().await?;
            Ok::<i64, StoreError>(id)
        })?;
        Ok(TokenRecord {
            id,
            name: name.to_string(),
            roles: roles.to_vec(),
        })
    }

    /// The live (not revoked) token with this secret hash, noting its use.
    pub async fn token_by_hash(&self, token_hash: &str) -> Result<Option<TokenRecord>, StoreError> {
        let found = on_pool!(&self.db, pool => {
            let row = sqlx::query_as::<_, (i64, String)>(
                "SELECT id, name FROM api_tokens WHERE token_hash = $1 AND revoked_at IS NULL",
            )
            .bind(token_hash)
            .fetch_optional(pool)
            .await?;
            match row {
                None => Ok::<_, StoreError>(None),
                Some((id, name)) => {
                    let roles: Vec<String> = sqlx::query_scalar("SELECT role FROM api_token_roles WHERE token_id = $1")
                        .bind(id)
                        .fetch_all(pool)
                        .await?;
                    sqlx::query("UPDATE api_tokens SET last_used_at = $1 WHERE id = $2")
                        .bind(Utc::now())
                        .bind(id)
                        .execute(pool)
                        .await?;
                    Ok(Some((id, name, roles)))
                }
            }
        })?;
        Ok(found.map(|(id, name, roles)| {
            let mut roles: Vec<Role> = roles.iter().filter_map(|r| Role::parse(r)).collect();
            roles.sort();
            TokenRecord { id, name, roles }
        }))
    }
}

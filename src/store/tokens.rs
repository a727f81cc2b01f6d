//! API bearer tokens. Only a SHA-256 of the secret is stored: the secret is shown once.

use app::model::Role;
use chrono::Utc;
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

impl Store {
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
                sqlx::query("INSERT INTO api_token_roles (token_id, role) VALUES ($1, $2)")
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

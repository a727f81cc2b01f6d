//! PostgreSQL: telling the other SyncDesk processes that work was armed. Workers in another
//! process (`syncdesk worker`) would otherwise only find a new order, a retried exception or a
//! released SKU group at their next poll; `NOTIFY` reaches them at once. The payload is the
//! engine's to give (`engine::wake`); the store only carries it. SQLite has one process, so
//! these do nothing there.

use sqlx::postgres::PgListener;

use super::{Db, Store, StoreError};

/// The channel SyncDesk's processes announce armed work on.
const CHANNEL: &str = "syncdesk_work";

/// Announcements from the other processes (PostgreSQL only).
pub struct WorkListener(PgListener);

impl WorkListener {
    /// The next announcement's payload. A lost connection is made again by the listener
    /// itself; announcements made meanwhile are missed (the workers' poll finds that work).
    pub async fn next(&mut self) -> Result<String, StoreError> {
        Ok(self.0.recv().await?.payload().to_owned())
    }
}

impl Store {
    /// Announces `payload` to every process listening (PostgreSQL; nothing on SQLite).
    pub async fn announce_work(&self, payload: &str) -> Result<(), StoreError> {
        if let Db::Postgres(pool) = &self.db {
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(CHANNEL)
                .bind(payload)
                .execute(pool)
                .await?;
        }
        Ok(())
    }

    /// Listens for announcements (PostgreSQL; `None` on SQLite). Holds one connection of the
    /// pool for as long as it lives.
    pub async fn listen_for_work(&self) -> Result<Option<WorkListener>, StoreError> {
        let Db::Postgres(pool) = &self.db else {
            return Ok(None);
        };
        let mut listener = PgListener::connect_with(pool).await?;
        listener.listen(CHANNEL).await?;
        Ok(Some(WorkListener(listener)))
    }
}

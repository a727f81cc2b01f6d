//! SKU mappings in bulk: a whole file of them applied in one transaction (all or nothing), and
//! every mapping read out for export.

use chrono::Utc;
use serde_json::json;

use super::actions::release_blocked;
use super::audit::insert_audit;
use super::batch::retrying_deadlocks;
use super::{Released, SkuMapping, Store, StoreError, is_postgres, on_pool};
use crate::audit::{Actor, Change};

/// One mapping to apply: already checked (see `engine::mappings`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MappingRow {
    /// Store SKU.
    pub sku: String,
    /// ERP item code.
    pub item_code: String,
}

/// What applying a file did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImportApplied {
    /// SKUs that had no mapping.
    pub created: u64,
    /// SKUs whose item code changed.
    pub changed: u64,
    /// SKUs already mapped to that item code: the mapping stays, stamped as confirmed now;
    /// audited only when it released orders.
    pub unchanged: u64,
    /// Tasks released (orders that were waiting on one of the SKUs).
    pub released_tasks: u64,
    /// Exceptions that resolved themselves.
    pub resolved_exceptions: u64,
}

impl Store {
    /// Applies `rows` in one transaction: each new or changed mapping is saved, audited like a
    /// single save (`sku_mapping.saved`, with `"via": "import"`), and releases the orders waiting
    /// on its SKU; one `sku_mapping.imported` entry sums the file up. Any failure rolls
    /// everything back, so a file is never half applied.
    /// Run again when PostgreSQL undoes it to break a deadlock (nothing of it was written).
    ///
    /// A worker may finish an order as blocked on one of the file's SKUs while the transaction
    /// is open: it cannot see the uncommitted mapping, and the row's release has already
    /// passed. So every mapping of the file is stamped with the time the file finished (which
    /// is what a finishing attempt compares with its start), and once committed the orders
    /// still blocked on the file's SKUs are released again, audited as
    /// `sku_mapping.import_released` when there were any.
    pub async fn import_sku_mappings(
        &self,
        rows: &[MappingRow],
        by: &Actor,
    ) -> Result<ImportApplied, StoreError> {
        let mut applied = retrying_deadlocks(|| self.import_sku_mappings_once(rows, by)).await?;
        // The file is applied and committed whatever happens next: a late release that fails
        // is logged, and the orders it missed wait for their SKU's next save.
        match retrying_deadlocks(|| self.release_after_import(rows, by)).await {
            Ok(late) => {
                applied.released_tasks += late.tasks;
                applied.resolved_exceptions += late.exceptions;
            }
            Err(error) => tracing::warn!(
                %error,
                "a SKU import was applied, but releasing the orders blocked on its SKUs meanwhile failed"
            ),
        }
        Ok(applied)
    }

    /// Releases, after the import's commit, what was blocked on its SKUs meanwhile.
    async fn release_after_import(
        &self,
        rows: &[MappingRow],
        by: &Actor,
    ) -> Result<Released, StoreError> {
        let now = Utc::now();
        let label = by.label();
        on_pool!(&self.db, pool => {
            let mut tx = pool.begin().await?;
            let mut late = Released::default();
            for row in rows {
                let fingerprint = format!("missing_sku:erp:{}", row.sku);
                let resolution = format!(
                    "SKU {} mapped to ERP item {} by {label} (CSV import)",
                    row.sku, row.item_code
                );
                let released: Released = release_blocked!(tx, &fingerprint, &resolution, &label, now);
                late.tasks += released.tasks;
                late.exceptions += released.exceptions;
            }
            if late.tasks > 0 || late.exceptions > 0 {
                let change = Change::new(by, "sku_mapping.import_released", "sku_mappings:csv".to_string()).after(json!({
                    "released_tasks": late.tasks, "resolved_exceptions": late.exceptions
                }));
                insert_audit!(&mut *tx, &change)?;
            }
            tx.commit().await?;
            Ok::<Released, StoreError>(late)
        })
    }

    async fn import_sku_mappings_once(
        &self,
        rows: &[MappingRow],
        by: &Actor,
    ) -> Result<ImportApplied, StoreError> {
        let now = Utc::now();
        let label = by.label();
        on_pool!(&self.db, pool => {
            let pg = is_postgres(pool);
            // SQLite: take the write lock first; the reads below decide what is written.
            let mut tx = if pg { pool.begin().await? } else { pool.begin_with("BEGIN IMMEDIATE").await? };
            let mut applied = ImportApplied::default();
            for row in rows {
                let before: Option<String> =
                    sqlx::query_scalar("SELECT item_code FROM sku_mappings WHERE sku = $1")
                        .bind(&row.sku)
                        .fetch_optional(&mut *tx)
                        .await?;
                let fingerprint = format!("missing_sku:erp:{}", row.sku);
                if before.as_deref() == Some(row.item_code.as_str()) {
                    applied.unchanged += 1;
                    // The mapping stands, but orders may wait on it because the ERP refused its
                    // item code, which may since have been added there: released, as saving the
                    // same mapping on its own releases them.
                    let resolution = format!(
                        "SKU {} confirmed as ERP item {} by {label} (CSV import)",
                        row.sku, row.item_code
                    );
                    let released: Released = release_blocked!(tx, &fingerprint, &resolution, &label, now);
                    if released.tasks > 0 || released.exceptions > 0 {
                        applied.released_tasks += released.tasks;
                        applied.resolved_exceptions += released.exceptions;
                        let change = Change::new(by, "sku_mapping.confirmed", format!("sku:{}", row.sku)).after(json!({
                            "item_code": row.item_code, "via": "import",
                            "released_tasks": released.tasks, "resolved_exceptions": released.exceptions
                        }));
                        insert_audit!(&mut *tx, &change)?;
                    }
                    continue;
                }
                sqlx::query(
                    "INSERT INTO sku_mappings (sku, item_code, updated_at, updated_by) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (sku) DO UPDATE SET item_code = excluded.item_code, updated_at = excluded.updated_at,
                         updated_by = excluded.updated_by",
                )
                .bind(&row.sku)
                .bind(&row.item_code)
                .bind(now)
                .bind(&label)
                .execute(&mut *tx)
                .await?;
                let resolution = format!(
                    "SKU {} mapped to ERP item {} by {label} (CSV import)",
                    row.sku, row.item_code
                );
                let released: Released = release_blocked!(tx, &fingerprint, &resolution, &label, now);
                applied.released_tasks += released.tasks;
                applied.resolved_exceptions += released.exceptions;
                let mut change = Change::new(by, "sku_mapping.saved", format!("sku:{}", row.sku)).after(json!({
                    "item_code": row.item_code, "via": "import",
                    "released_tasks": released.tasks, "resolved_exceptions": released.exceptions
                }));
                match before {
                    Some(code) => {
                        applied.changed += 1;
                        change = change.before(json!({ "item_code": code }));
                    }
                    None => applied.created += 1,
                }
                insert_audit!(&mut *tx, &change)?;
            }
            // Every mapping of the file as of now, the file's end (see `import_sku_mappings`).
            let finished = Utc::now();
            for chunk in rows.chunks(500) {
                let params = (0..chunk.len()).map(|i| format!("${}", i + 3)).collect::<Vec<_>>().join(", ");
                let sql = format!("UPDATE sku_mappings SET updated_at = $1, updated_by = $2 WHERE sku IN ({params})");
                let mut stamp = sqlx::query(&sql).bind(finished).bind(&label);
                for row in chunk {
                    stamp = stamp.bind(&row.sku);
                }
                stamp.execute(&mut *tx).await?;
            }
            let summary = Change::new(by, "sku_mapping.imported", "sku_mappings:csv".to_string()).after(json!({
                "rows": rows.len(), "created": applied.created, "changed": applied.changed,
                "unchanged": applied.unchanged, "released_tasks": applied.released_tasks,
                "resolved_exceptions": applied.resolved_exceptions
            }));
            insert_audit!(&mut *tx, &summary)?;
            tx.commit().await?;
            Ok::<ImportApplied, StoreError>(applied)
        })
    }

    /// Every mapping, by SKU (for export).
    pub async fn all_sku_mappings(&self) -> Result<Vec<SkuMapping>, StoreError> {
        let rows = on_pool!(&self.db, pool => {
            sqlx::query_as::<_, SkuMapping>(
                "SELECT sku, item_code, updated_at, updated_by FROM sku_mappings ORDER BY sku",
            )
            .fetch_all(pool)
            .await
        })?;
        Ok(rows)
    }
}

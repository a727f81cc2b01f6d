//! Linking an order or customer record to the customer it refers to, inside the ingest's
//! transaction: on PostgreSQL one call of the function migration 0025 defines, on SQLite the
//! same rules on the writer's connection.

use chrono::{DateTime, Utc};
use rusqlite::Connection;
use sqlx::PgConnection;

use crate::domain::CustomerRef;
use crate::store::StoreError;
use crate::store::sqlite::{self as lite, Time};

/// Finds or creates the customer an order refers to, deterministically: by the store's customer
/// id, else by normalised email. (Scored matches become merge proposals for a data steward —
/// the Identity capability — and are never linked here.) The customer id, or `None` when the
/// order carries neither key.
///
/// `as_of` is how recent the details (phone, names) are in the store's time
/// ([`Order::customer_details_as_of`](crate::domain::Order::customer_details_as_of), or a customer
/// record's `updated_at`): details older than those the record holds are not written.
pub(super) async fn link_pg(
    tx: &mut PgConnection,
    c: &CustomerRef,
    as_of: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<Option<i64>, StoreError> {
    Ok(sqlx::query_scalar(LINK_CUSTOMER_PG)
        .bind(c.store_customer_id)
        .bind(c.email.as_ref().map(|e| e.as_str()))
        .bind(c.phone.as_ref().map(|p| p.as_str()))
        .bind(c.first_name.as_deref())
        .bind(c.last_name.as_deref())
        .bind(now)
        .bind(as_of)
        .fetch_one(&mut *tx)
        .await?)
}

/// [`link_pg`]'s rules on SQLite, on the writer's connection.
pub(super) fn link_on_writer(
    conn: &Connection,
    c: &CustomerRef,
    as_of: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<Option<i64>, StoreError> {
    let email = c.email.as_ref().map(|e| e.as_str().to_string());
    let phone = c.phone.as_ref().map(|p| p.as_str().to_string());
    if c.store_customer_id.is_none() && email.is_none() {
        return Ok(None);
    }
    // One read for both keys: the record of the store account and the record holding the email
    // (the same row, or none, in the usual case), with what an order may update.
    let rows: Vec<CustomerRow> = lite::query(
        conn,
        "SELECT id, store_customer_id, email, phone, first_name, last_name, details_as_of FROM customers
         WHERE store_customer_id = $1 OR email = $2",
        &[&c.store_customer_id, &email],
        |row| {
            Ok(CustomerRow {
                id: row.get(0)?,
                store_customer_id: row.get(1)?,
                email: row.get(2)?,
                phone: row.get(3)?,
                first_name: row.get(4)?,
                last_name: row.get(5)?,
                details_as_of: lite::time_opt(row, 6)?,
            })
        },
    )?;
    let by_store = rows
        .iter()
        .find(|r| c.store_customer_id.is_some() && r.store_customer_id == c.store_customer_id);
    let by_email = rows.iter().find(|r| email.is_some() && r.email == email);
    // Whether the email belongs to another store account's record.
    let mut email_taken = false;
    let found: Option<&CustomerRow> = match (by_store, by_email) {
        (Some(row), _) => Some(row),
        (None, None) => None,
        (None, Some(row)) => match (row.store_customer_id, c.store_customer_id) {
            // A guest checkout by the same email, now with a store account: link them.
            (None, Some(store_id)) => {
                lite::execute(
                    conn,
                    "UPDATE customers SET store_customer_id = $2 WHERE id = $1",
                    &[&row.id, &store_id],
                )?;
                Some(row)
            }
            (_, None) => Some(row),
            (Some(_), Some(_)) => {
                email_taken = true;
                None
            }
        },
    };
    // Whether the order brings a detail the record lacks or holds differently.
    let news = |new: &Option<String>, old: &Option<String>| new.is_some() && new != old;
    if let Some(row) = found {
        // Written when at least as recent as the details held and bringing something new, or
        // more recent (migration 0025 says the same for PostgreSQL); this transaction holds
        // SQLite's one write lock, so the row is as read.
        let news = news(&phone, &row.phone)
            || news(&c.first_name, &row.first_name)
            || news(&c.last_name, &row.last_name);
        let write = match row.details_as_of {
            None => true,
            Some(held) => as_of > held || (as_of == held && news),
        };
        if write {
            lite::execute(
                conn,
                "UPDATE customers SET phone = COALESCE($2, phone), first_name = COALESCE($3, first_name),
                     last_name = COALESCE($4, last_name), details_as_of = $5, updated_at = COALESCE($6, updated_at)
                 WHERE id = $1",
                &[
                    &row.id,
                    &phone,
                    &c.first_name,
                    &c.last_name,
                    &Time(as_of),
                    &news.then_some(Time(now)),
                ],
            )?;
        }
        // Otherwise the row is left alone.
        return Ok(Some(row.id));
    }
    // Two store accounts sharing one email keep separate records (the second without the
    // email); the Identity capability proposes merging them.
    let email = if email_taken { None } else { email };
    // This transaction holds SQLite's one write lock, so the row the read above did not find
    // cannot appear before the insert; the conflict is a safety net.
    let inserted: Option<i64> = lite::query_opt(
        conn,
        "INSERT INTO customers (store_customer_id, email, phone, first_name, last_name, details_as_of, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $7) ON CONFLICT DO NOTHING RETURNING id",
        &[
            &c.store_customer_id,
            &email,
            &phone,
            &c.first_name,
            &c.last_name,
            &Time(as_of),
            &Time(now),
        ],
        |row| row.get(0),
    )?;
    match inserted {
        Some(id) => Ok(Some(id)),
        None => lite::query_opt(
            conn,
            "SELECT id FROM customers WHERE store_customer_id = $1 OR (store_customer_id IS NULL AND email = $2)
             ORDER BY id LIMIT 1",
            &[&c.store_customer_id, &email],
            |row| row.get(0),
        ),
    }
}

/// [`link_pg`]: one call of the function migration 0025 defines.
const LINK_CUSTOMER_PG: &str = "SELECT syncdesk_link_customer($1, $2, $3, $4, $5, $6, $7)";

/// A customer record as an order's delivery reads it on SQLite.
struct CustomerRow {
    id: i64,
    store_customer_id: Option<i64>,
    email: Option<String>,
    phone: Option<String>,
    first_name: Option<String>,
    last_name: Option<String>,
    /// How recent the details are, in the store's time.
    details_as_of: Option<DateTime<Utc>>,
}

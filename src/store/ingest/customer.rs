//! Linking an order or customer record to the customer it refers to. The macro is expanded
//! inside the ingest's transaction, where `CustomerRef`, [`CustomerRow`] and
//! [`LINK_CUSTOMER_PG`] are in scope.

use chrono::{DateTime, Utc};

/// Finds or creates the customer an order refers to, deterministically: by the store's customer
/// id, else by normalised email. (Scored matches become merge proposals for a data steward —
/// the Identity capability — and are never linked here.) Evaluates to the customer id, or
/// `None` when the order carries neither key.
///
/// `$as_of` is how recent the details (phone, names) are in the store's time
/// ([`Order::customer_details_as_of`](crate::domain::Order::customer_details_as_of), or a customer
/// record's `updated_at`): details older than those the record holds are not written.
macro_rules! link_customer {
    ($tx:ident, $pg:ident, $customer:expr, $as_of:expr, $now:expr) => {{
        let c: &CustomerRef = $customer;
        let as_of: DateTime<Utc> = $as_of;
        let email = c.email.as_ref().map(|e| e.as_str().to_string());
        let phone = c.phone.as_ref().map(|p| p.as_str().to_string());
        if $pg {
            // The same rules, run inside the server (the function of migration 0025).
            sqlx::query_scalar(LINK_CUSTOMER_PG)
                .bind(c.store_customer_id)
                .bind(email.as_deref())
                .bind(phone.as_deref())
                .bind(c.first_name.as_deref())
                .bind(c.last_name.as_deref())
                .bind($now)
                .bind(as_of)
                .fetch_one(&mut *$tx)
                .await?
        } else {
            // One read for both keys: the record of the store account and the record holding the
            // email (the same row, or none, in the usual case), with what an order may update.
            let rows: Vec<CustomerRow> = if c.store_customer_id.is_some() || email.is_some() {
                sqlx::query_as(
                    "SELECT id, store_customer_id, email, phone, first_name, last_name, details_as_of FROM customers
                     WHERE store_customer_id = $1 OR email = $2",
                )
                .bind(c.store_customer_id)
                .bind(email.as_deref())
                .fetch_all(&mut *$tx)
                .await?
            } else {
                Vec::new()
            };
            let by_store = rows.iter().find(|r| c.store_customer_id.is_some() && r.1 == c.store_customer_id);
            let by_email = rows.iter().find(|r| email.is_some() && r.2 == email);
            // Whether the email belongs to another store account's record.
            let mut email_taken = false;
            let found: Option<&CustomerRow> = match (by_store, by_email) {
                (Some(row), _) => Some(row),
                (None, None) => None,
                (None, Some(row @ (id, existing, ..))) => match (existing, c.store_customer_id) {
                    // A guest checkout by the same email, now with a store account: link them.
                    (None, Some(store_id)) => {
                        sqlx::query("UPDATE customers SET store_customer_id = $2 WHERE id = $1")
                            .bind(*id)
                            .bind(store_id)
                            .execute(&mut *$tx)
                            .await?;
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
            match found {
                Some((id, _, _, old_phone, old_first, old_last, held_as_of)) => {
                    // Written when at least as recent as the details held and bringing something
                    // new, or more recent (migration 0025 says the same for PostgreSQL); this
                    // transaction holds SQLite's one write lock, so the row is as read.
                    let news = news(&phone, old_phone) || news(&c.first_name, old_first) || news(&c.last_name, old_last);
                    let write = match held_as_of {
                        None => true,
                        Some(held) => as_of > *held || (as_of == *held && news),
                    };
                    if write {
                        sqlx::query(
                            "UPDATE customers SET phone = COALESCE($2, phone), first_name = COALESCE($3, first_name),
                                 last_name = COALESCE($4, last_name), details_as_of = $5, updated_at = COALESCE($6, updated_at)
                             WHERE id = $1",
                        )
                        .bind(*id)
                        .bind(phone.as_deref())
                        .bind(c.first_name.as_deref())
                        .bind(c.last_name.as_deref())
                        .bind(as_of)
                        .bind(news.then_some($now))
                        .execute(&mut *$tx)
                        .await?;
                    }
                    // Otherwise the row is left alone: no lock held to the commit, nothing logged.
                    Some(*id)
                }
                None if c.store_customer_id.is_none() && email.is_none() => None,
                None => {
                    // Two store accounts sharing one email keep separate records (the second
                    // without the email); the Identity capability proposes merging them.
                    let email = if email_taken { None } else { email };
                    // This transaction holds SQLite's one write lock, so the row the read above
                    // did not find cannot appear before the insert; the conflict is a safety net.
                    let inserted: Option<i64> = sqlx::query_scalar(
                        "INSERT INTO customers (store_customer_id, email, phone, first_name, last_name, details_as_of, created_at, updated_at)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $7) ON CONFLICT DO NOTHING RETURNING id",
                    )
                    .bind(c.store_customer_id)
                    .bind(email.clone())
                    .bind(phone)
                    .bind(c.first_name.as_deref())
                    .bind(c.last_name.as_deref())
                    .bind(as_of)
                    .bind($now)
                    .fetch_optional(&mut *$tx)
                    .await?;
                    match inserted {
                        Some(id) => Some(id),
                        None => {
                            sqlx::query_scalar(
                                "SELECT id FROM customers WHERE store_customer_id = $1 OR (store_customer_id IS NULL AND email = $2)
                                 ORDER BY id LIMIT 1",
                            )
                            .bind(c.store_customer_id)
                            .bind(email)
                            .fetch_optional(&mut *$tx)
                            .await?
                        }
                    }
                }
            }
        }
    }};
}

/// [`link_customer!`] on PostgreSQL: one call of the function migration 0025 defines.
pub(super) const LINK_CUSTOMER_PG: &str =
    "SELECT syncdesk_link_customer($1, $2, $3, $4, $5, $6, $7)";

/// A customer record as an order's delivery reads it: id, store customer id, email, phone, first
/// and last name, and how recent those details are.
pub(super) type CustomerRow = (
    i64,
    Option<i64>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<DateTime<Utc>>,
);

pub(super) use link_customer;

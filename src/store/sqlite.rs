//! The SQLite writer's statements (see `writer`): run synchronously on its rusqlite connection,
//! prepared once and kept. The SQL is the same text sqlx runs elsewhere, binds numbered `$1`,
//! `$2`, …, and values are stored exactly as sqlx stores them, so that either driver reads and
//! compares what the other wrote: times as RFC 3339 text (`2026-12-07T03:23:40.123456+00:00`,
//! which sorts as time does), JSON as text, booleans as 0 and 1.

use chrono::{DateTime, NaiveDateTime, SecondsFormat, Utc};
use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSqlOutput, ValueRef};
use rusqlite::{Connection, Row, RowIndex, ToSql};

use super::StoreError;

/// The bind names, in order: `$1` is the first value given, and so on.
const NAMES: [&str; 24] = [
    "$1", "$2", "$3", "$4", "$5", "$6", "$7", "$8", "$9", "$10", "$11", "$12", "$13", "$14", "$15",
    "$16", "$17", "$18", "$19", "$20", "$21", "$22", "$23", "$24",
];

/// Prepares `sql` (once per connection: it stays in the connection's cache) and binds `values`
/// to `$1`, `$2`, …; every bind the statement names must be given.
fn prepared<'c>(
    conn: &'c Connection,
    sql: &str,
    values: &[&dyn ToSql],
) -> Result<rusqlite::CachedStatement<'c>, StoreError> {
    let mut statement = conn.prepare_cached(sql)?;
    let mut bound = 0;
    for (name, value) in NAMES.iter().zip(values) {
        if let Some(index) = statement.parameter_index(name)? {
            statement.raw_bind_parameter(index, value)?;
            bound += 1;
        }
    }
    if bound != statement.parameter_count() {
        return Err(StoreError::Sqlite(rusqlite::Error::InvalidParameterCount(
            bound,
            statement.parameter_count(),
        )));
    }
    Ok(statement)
}

/// Runs a statement that returns no rows; the rows it changed.
pub(super) fn execute(
    conn: &Connection,
    sql: &str,
    values: &[&dyn ToSql],
) -> Result<usize, StoreError> {
    Ok(prepared(conn, sql, values)?.raw_execute()?)
}

/// The rows a statement returns, each made by `row`.
pub(super) fn query<T>(
    conn: &Connection,
    sql: &str,
    values: &[&dyn ToSql],
    mut row: impl FnMut(&Row<'_>) -> rusqlite::Result<T>,
) -> Result<Vec<T>, StoreError> {
    let mut statement = prepared(conn, sql, values)?;
    let mut rows = statement.raw_query();
    let mut all = Vec::new();
    while let Some(next) = rows.next()? {
        all.push(row(next)?);
    }
    Ok(all)
}

/// The first row a statement returns, if any, made by `row`; the statement runs to its end
/// (an `INSERT … RETURNING` has written every row when this returns).
pub(super) fn query_opt<T>(
    conn: &Connection,
    sql: &str,
    values: &[&dyn ToSql],
    row: impl FnMut(&Row<'_>) -> rusqlite::Result<T>,
) -> Result<Option<T>, StoreError> {
    Ok(query(conn, sql, values, row)?.into_iter().next())
}

/// A time as sqlx stores it in SQLite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Time(pub(super) DateTime<Utc>);

impl ToSql for Time {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(
            self.0.to_rfc3339_opts(SecondsFormat::AutoSi, false),
        ))
    }
}

impl FromSql for Time {
    /// Whatever sqlx reads as a time in SQLite: RFC 3339 (as sqlx writes it), SQLite's own text
    /// forms (`YYYY-MM-DD HH:MM[:SS[.fff]]`, with `T` or a space, taken as UTC, or with an
    /// offset), Unix seconds as an integer, a Julian day as a real.
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        const FORMATS: [&str; 4] = ["%F %T%.f", "%FT%T%.f", "%F %R", "%FT%R"];
        const WITH_OFFSET: [&str; 4] = ["%F %T%.f%#z", "%FT%T%.f%#z", "%F %R%#z", "%FT%R%#z"];
        let at = match value {
            ValueRef::Integer(seconds) => DateTime::from_timestamp(seconds, 0),
            ValueRef::Real(day) => {
                // Julian day 2440587.5 is 1970-01-01T00:00:00Z.
                let millis = ((day - 2_440_587.5) * 86_400_000.0).round();
                DateTime::from_timestamp_millis(millis as i64)
            }
            _ => {
                let text = value.as_str()?;
                let text = text.strip_suffix('Z').unwrap_or(text);
                DateTime::parse_from_rfc3339(text)
                    .ok()
                    .map(|at| at.with_timezone(&Utc))
                    .or_else(|| {
                        WITH_OFFSET.iter().find_map(|format| {
                            DateTime::parse_from_str(text, format)
                                .ok()
                                .map(|at| at.with_timezone(&Utc))
                        })
                    })
                    .or_else(|| {
                        FORMATS.iter().find_map(|format| {
                            NaiveDateTime::parse_from_str(text, format)
                                .ok()
                                .map(|at| at.and_utc())
                        })
                    })
            }
        };
        at.map(Time).ok_or_else(|| {
            FromSqlError::Other(format!("not a time SQLite or sqlx would store: {value:?}").into())
        })
    }
}

/// The time in column `index` (a position or a name).
pub(super) fn time(row: &Row<'_>, index: impl RowIndex) -> rusqlite::Result<DateTime<Utc>> {
    row.get::<_, Time>(index).map(|Time(at)| at)
}

/// The time in column `index` (a position or a name), when there is one.
pub(super) fn time_opt(
    row: &Row<'_>,
    index: impl RowIndex,
) -> rusqlite::Result<Option<DateTime<Utc>>> {
    row.get::<_, Option<Time>>(index)
        .map(|at| at.map(|Time(at)| at))
}

/// A stored value that cannot be read as what it should be: a database error.
pub(super) fn unreadable(err: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    StoreError::Sqlite(rusqlite::Error::FromSqlConversionFailure(
        0,
        rusqlite::types::Type::Text,
        Box::new(err),
    ))
}

/// A value stored as JSON text, as sqlx's `Json` stores it.
pub(super) fn json<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value)
        .map_err(|err| StoreError::Sqlite(rusqlite::Error::ToSqlConversionFailure(Box::new(err))))
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};

    use super::*;

    /// What one driver writes, the other reads and compares alike.
    #[tokio::test]
    async fn times_and_json_are_stored_as_sqlx_stores_them() {
        let dir = std::env::temp_dir().join(format!("syncdesk-lite-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("t.db");
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(
                SqliteConnectOptions::from_str(&format!("sqlite://{}", file.display()))
                    .unwrap()
                    .create_if_missing(true),
            )
            .await
            .unwrap();
        sqlx::query("CREATE TABLE t (n INTEGER, at TEXT, doc TEXT, flag BOOLEAN)")
            .execute(&pool)
            .await
            .unwrap();
        let whole = DateTime::parse_from_rfc3339("2026-12-07T03:23:40Z")
            .unwrap()
            .with_timezone(&Utc);
        let fine = DateTime::parse_from_rfc3339("2026-12-07T03:23:40.123456789Z")
            .unwrap()
            .with_timezone(&Utc);
        let doc = serde_json::json!({"a": [1, "two"], "b": null});
        for (n, at) in [(1_i64, whole), (2, fine)] {
            sqlx::query("INSERT INTO t (n, at, doc, flag) VALUES ($1, $2, $3, $4)")
                .bind(n)
                .bind(at)
                .bind(sqlx::types::Json(&doc))
                .bind(true)
                .execute(&pool)
                .await
                .unwrap();
        }
        let conn = Connection::open(&file).unwrap();
        for (n, at) in [(11_i64, whole), (12, fine)] {
            execute(
                &conn,
                "INSERT INTO t (n, at, doc, flag) VALUES ($1, $2, $3, $4)",
                &[&n, &Time(at), &json(&doc).unwrap(), &true],
            )
            .unwrap();
        }
        // The same text, byte for byte.
        let stored: Vec<(i64, String, String, i64)> =
            sqlx::query_as("SELECT n, at, doc, flag FROM t ORDER BY n")
                .fetch_all(&pool)
                .await
                .unwrap();
        assert_eq!(stored.len(), 4);
        assert_eq!(
            (&stored[0].1, &stored[0].2, stored[0].3),
            (&stored[2].1, &stored[2].2, stored[2].3)
        );
        assert_eq!(
            (&stored[1].1, &stored[1].2, stored[1].3),
            (&stored[3].1, &stored[3].2, stored[3].3)
        );
        // Each reads the other's, and a bind compares with them as times do.
        let later: Vec<i64> = query(
            &conn,
            "SELECT n FROM t WHERE at > $1 ORDER BY n",
            &[&Time(whole)],
            |row| row.get(0),
        )
        .unwrap();
        assert_eq!(later, [2, 12]);
        let read: Vec<DateTime<Utc>> = query(&conn, "SELECT at FROM t ORDER BY n", &[], |row| {
            time(row, 0)
        })
        .unwrap();
        assert_eq!(read, [whole, fine, whole, fine]);
        let read: Vec<DateTime<Utc>> = sqlx::query_scalar("SELECT at FROM t ORDER BY n")
            .fetch_all(&pool)
            .await
            .unwrap();
        assert_eq!(read, [whole, fine, whole, fine]);
        // SQLite's own forms read too, as sqlx reads them.
        for own in [
            "'2026-12-07 03:23:40'",
            "'2026-12-07T03:23:40'",
            "'2026-12-07 03:23:40.000'",
            "'2026-12-07 03:23:40Z'",
            "'2026-12-07T03:23:40+00:00'",
            "'2026-12-07 04:23:40+01:00'",
            "'2026-12-07 03:23'",
            "unixepoch('2026-12-07 03:23:40')",
            "julianday('2026-12-07 03:23:40')",
        ] {
            let read: Option<DateTime<Utc>> =
                query_opt(&conn, &format!("SELECT {own}"), &[], |row| time_opt(row, 0))
                    .unwrap()
                    .flatten();
            let expected = if own.contains("03:23'") {
                whole - chrono::TimeDelta::seconds(40)
            } else {
                whole
            };
            assert_eq!(read, Some(expected), "{own}");
        }
        let sqlx_read: DateTime<Utc> = sqlx::query_scalar("SELECT '2026-12-07 03:23:40'")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(sqlx_read, whole);
        assert!(
            query_opt(&conn, "SELECT 'yesterday'", &[], |row| time(row, 0)).is_err(),
            "not a time"
        );
        // A bind the statement names must be given.
        assert!(execute(&conn, "UPDATE t SET n = $2 WHERE n = $1", &[&1_i64]).is_err());
        pool.close().await;
        drop(conn);
        std::fs::remove_dir_all(dir).unwrap();
    }
}

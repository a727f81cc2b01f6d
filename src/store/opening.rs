//! Opening a database: the first connection, and why one could not be made, said once and
//! plainly. (sqlx's errors repeat their cause in their own text, and a pool that cannot connect
//! answers only that it timed out.)

use std::io::ErrorKind;
use std::time::{Duration, Instant};

use sqlx::{ConnectOptions, Connection};

/// How long start-up waits for a server that is not answering yet (one starting beside
/// SyncDesk, say) before it gives up.
pub(super) const CONNECT_WAIT: Duration = Duration::from_secs(10);

/// Makes one connection with `options`, trying again for [`CONNECT_WAIT`] while the server
/// cannot be reached or is starting up; the last error when it never could. Errors no wait
/// mends (a refused password, a database that does not exist) are answered at once.
pub(super) async fn first_connection<O>(options: &O) -> Result<(), sqlx::Error>
where
    O: ConnectOptions,
    O::Connection: Sized,
{
    let deadline = Instant::now() + CONNECT_WAIT;
    loop {
        match options.connect().await {
            Ok(connection) => {
                // Only the answer mattered; a failed goodbye changes nothing.
                let _ = connection.close().await;
                return Ok(());
            }
            Err(err) if passing(&err) && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(err) => return Err(err),
        }
    }
}

/// Whether `err` may pass by itself: nothing listening yet, a connection cut while the server
/// starts, or PostgreSQL's "the database system is starting up" (57P03).
fn passing(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Io(io) => matches!(
            io.kind(),
            ErrorKind::ConnectionRefused
                | ErrorKind::ConnectionReset
                | ErrorKind::ConnectionAborted
                | ErrorKind::UnexpectedEof
                | ErrorKind::TimedOut
        ),
        sqlx::Error::Database(db) => db.code().as_deref() == Some("57P03"),
        _ => false,
    }
}

/// Why a database could not be opened, in one clause a person can act on.
pub(super) fn reason(err: &sqlx::Error) -> String {
    match err {
        sqlx::Error::Database(db) => {
            let message = db.message();
            // SQLITE_CANTOPEN (14), in any of its extended forms.
            let cannot_open = db
                .code()
                .and_then(|code| code.parse::<i32>().ok())
                .is_some_and(|code| code & 0xff == 14);
            if cannot_open {
                format!("{message} (does its folder exist, and may SyncDesk write there?)")
            } else {
                message.to_owned()
            }
        }
        sqlx::Error::Io(io) if io.kind() == ErrorKind::ConnectionRefused => {
            "nothing answers there (connection refused): is the server running, on that host and port?"
                .into()
        }
        sqlx::Error::Io(io) => io.to_string(),
        sqlx::Error::Tls(tls) => format!("TLS failed: {tls}"),
        sqlx::Error::PoolTimedOut => format!(
            "no connection could be made within {} s",
            CONNECT_WAIT.as_secs()
        ),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use sqlx::postgres::PgConnectOptions;
    use sqlx::sqlite::SqliteConnectOptions;

    use super::*;

    #[tokio::test]
    async fn a_port_nobody_listens_on_is_said_to_be_refused_after_the_wait() {
        // A port just freed: nothing listens there.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let options =
            PgConnectOptions::from_str(&format!("postgres://postgres@127.0.0.1:{port}/x"))
                .expect("a URL");
        let started = Instant::now();
        let err = first_connection(&options)
            .await
            .expect_err("nothing listens");
        assert!(
            started.elapsed() >= CONNECT_WAIT,
            "it waited for the server"
        );
        assert_eq!(
            reason(&err),
            "nothing answers there (connection refused): is the server running, on that host and port?"
        );
    }

    #[tokio::test]
    async fn a_sqlite_file_in_a_missing_folder_says_so_once() {
        let options = SqliteConnectOptions::from_str("sqlite:/no-such-folder-for-syncdesk/x.db")
            .expect("a URL")
            .create_if_missing(true);
        let started = Instant::now();
        let err = first_connection(&options).await.expect_err("no folder");
        assert!(
            started.elapsed() < CONNECT_WAIT,
            "no wait mends a missing folder"
        );
        assert_eq!(
            reason(&err),
            "unable to open database file (does its folder exist, and may SyncDesk write there?)"
        );
    }
}

//! Opening a database: the first connection, and why one could not be made, said once and
//! plainly. (sqlx's errors repeat their cause in their own text, and a pool that cannot connect
//! answers only that it timed out.)

use std::io::ErrorKind;
use std::time::{Duration, Instant};

use sqlx::sqlite::SqliteError;
use sqlx::{ConnectOptions, Connection};

/// How long start-up waits for a server that is not answering yet (one starting beside
/// SyncDesk, say) before it gives up.
pub(super) const CONNECT_WAIT: Duration = Duration::from_secs(10);

/// Makes one connection with `options`, trying again for `wait` while the server cannot be
/// reached, is starting up or is full; the last error when it never could, or a timeout when
/// the attempts ran out of time (a host that drops packets, a server that accepts and never
/// answers). Errors no wait mends (a refused password, a database that does not exist) are
/// answered at once.
pub(super) async fn first_connection<O>(options: &O, wait: Duration) -> Result<(), sqlx::Error>
where
    O: ConnectOptions,
    O::Connection: Sized,
{
    let deadline = Instant::now() + wait;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, options.connect()).await {
            Err(_) => return Err(sqlx::Error::PoolTimedOut),
            Ok(Ok(connection)) => {
                // Only the answer mattered; a failed goodbye changes nothing.
                let _ = connection.close().await;
                return Ok(());
            }
            Ok(Err(err)) if passing(&err) && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(250).min(left)).await;
            }
            Ok(Err(err)) => return Err(err),
        }
    }
}

/// Whether `err` may pass by itself: nothing listening yet (or no socket file yet), a
/// connection cut while the server starts, PostgreSQL's "the database system is starting up"
/// (57P03) or "too many connections" (53300: other processes' slots not yet freed).
fn passing(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Io(io) => matches!(
            io.kind(),
            ErrorKind::ConnectionRefused
                | ErrorKind::ConnectionReset
                | ErrorKind::ConnectionAborted
                | ErrorKind::UnexpectedEof
                | ErrorKind::NotFound
        ),
        sqlx::Error::Database(db) => matches!(db.code().as_deref(), Some("57P03" | "53300")),
        _ => false,
    }
}

/// Why a database could not be opened, in one clause a person can act on.
pub(super) fn reason(err: &sqlx::Error) -> String {
    match err {
        sqlx::Error::Database(db) => {
            let message = db.message();
            // SQLITE_CANTOPEN (14), in any of its extended forms.
            let cannot_open = db.try_downcast_ref::<SqliteError>().is_some()
                && db
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
        sqlx::Error::PoolTimedOut => {
            "no answer in time (is the host reachable, and the server answering?)".into()
        }
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
        // Bound but not listening: connections are refused, and no one else can take the port.
        let socket = tokio::net::TcpSocket::new_v4().expect("a socket");
        socket
            .bind("127.0.0.1:0".parse().expect("an address"))
            .expect("bind");
        let port = socket.local_addr().expect("its address").port();
        let options =
            PgConnectOptions::from_str(&format!("postgres://postgres@127.0.0.1:{port}/x"))
                .expect("a URL");
        let wait = Duration::from_secs(1);
        let started = Instant::now();
        let err = first_connection(&options, wait)
            .await
            .expect_err("nothing listens");
        assert!(started.elapsed() >= wait, "it waited for the server");
        assert_eq!(
            reason(&err),
            "nothing answers there (connection refused): is the server running, on that host and port?"
        );
    }

    #[tokio::test]
    async fn a_server_that_accepts_and_never_answers_is_given_up_on_in_time() {
        // Listening, so the connection is made, but nothing ever answers the start-up message.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("its address").port();
        let options =
            PgConnectOptions::from_str(&format!("postgres://postgres@127.0.0.1:{port}/x"))
                .expect("a URL");
        let started = Instant::now();
        let err = first_connection(&options, Duration::from_millis(500))
            .await
            .expect_err("no answer");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "not waited on forever"
        );
        assert_eq!(
            reason(&err),
            "no answer in time (is the host reachable, and the server answering?)"
        );
        drop(listener);
    }

    #[tokio::test]
    async fn a_sqlite_file_in_a_missing_folder_says_so_once() {
        let options = SqliteConnectOptions::from_str("sqlite:/no-such-folder-for-syncdesk/x.db")
            .expect("a URL")
            .create_if_missing(true);
        let started = Instant::now();
        let err = first_connection(&options, CONNECT_WAIT)
            .await
            .expect_err("no folder");
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

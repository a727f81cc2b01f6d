//! The writer's tests: group commits, failures that fail alone, writes that outlive their
//! callers, and a full disk.

use std::str::FromStr;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};

use super::*;
use sqlx::SqlitePool;

async fn database() -> (SqlitePool, Writer, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("syncdesk-writer-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("w.db");
    let options = SqliteConnectOptions::from_str(&format!("sqlite://{}", file.display()))
        .unwrap()
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal);
    let readers = SqlitePoolOptions::new()
        .max_connections(2)
        .connect_with(options)
        .await
        .unwrap();
    sqlx::query("CREATE TABLE t (n INTEGER PRIMARY KEY)")
        .execute(&readers)
        .await
        .unwrap();
    let writer = Writer::spawn(file, Duration::from_secs(5)).await.unwrap();
    (readers, writer, dir)
}

/// Keeps the writer busy for `how_long`, so that the writes queued meanwhile wait.
fn hold(writer: &Writer, how_long: Duration) -> tokio::task::JoinHandle<Result<(), StoreError>> {
    let busy = writer.clone();
    tokio::spawn(async move {
        busy.write(move |_conn| {
            std::thread::sleep(how_long);
            Ok(())
        })
        .await
    })
}

async fn insert(writer: &Writer, n: i64, fail_after: bool) -> Result<i64, StoreError> {
    writer
        .write(move |conn| {
            conn.execute("INSERT INTO t (n) VALUES (?1)", [n])?;
            if fail_after {
                return Err(StoreError::Invalid(format!("write {n} gives up")));
            }
            Ok(n)
        })
        .await
}

#[tokio::test]
async fn a_full_database_fails_the_writes_it_refuses_and_the_writer_goes_on_after() {
    let (readers, writer, dir) = database().await;
    sqlx::query("CREATE TABLE big (n INTEGER PRIMARY KEY, b BLOB NOT NULL)")
        .execute(&readers)
        .await
        .unwrap();
    let big = |n: i64| {
        writer.write(move |conn| {
            Ok(conn.execute("INSERT INTO big (n, b) VALUES (?1, zeroblob(20000))", [n])?)
        })
    };
    assert_eq!(big(0).await.unwrap(), 1);
    // The file may grow by a few pages more: SQLite answers SQLITE_FULL past them, as it
    // does when the disk is full.
    let limit: i64 = writer
        .write(|conn| {
            let pages: i64 = conn.query_row("PRAGMA page_count", [], |row| row.get(0))?;
            Ok(conn.query_row(
                &format!("PRAGMA max_page_count = {}", pages + 8),
                [],
                |row| row.get(0),
            )?)
        })
        .await
        .unwrap();
    let results = futures_util::future::join_all((1..=6).map(big)).await;
    let refused: Vec<String> = results
        .iter()
        .filter_map(|r| r.as_ref().err().map(ToString::to_string))
        .collect();
    assert!(!refused.is_empty(), "{limit} pages hold six more rows?");
    assert!(
        refused.iter().all(|why| why.contains("full")),
        "{refused:?}"
    );
    // What was answered as written is there, and nothing else.
    let written = results.iter().filter(|r| r.is_ok()).count() as i64;
    let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM big")
        .fetch_one(&readers)
        .await
        .unwrap();
    assert_eq!(rows, 1 + written);
    // Room again (space freed on the disk): the same connection writes on, no reopening.
    writer
        .write(|conn| {
            Ok(
                conn.query_row("PRAGMA max_page_count = 1000000", [], |row| {
                    row.get::<_, i64>(0)
                })?,
            )
        })
        .await
        .unwrap();
    assert_eq!(big(100).await.unwrap(), 1);
    assert_eq!(insert(&writer, 1, false).await.unwrap(), 1);
    writer.close().await;
    readers.close().await;
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn what_follows_a_write_runs_though_its_caller_went_away() {
    let (readers, writer, dir) = database().await;
    // The writer is busy, so the next write waits in its queue.
    let slow = hold(&writer, Duration::from_millis(300));
    tokio::time::sleep(Duration::from_millis(50)).await;
    let (followed, heard) = oneshot::channel();
    let caller = {
        let writer = writer.clone();
        tokio::spawn(async move {
            writer
                .write_then(
                    |conn| Ok(conn.execute("INSERT INTO t (n) VALUES (7)", [])?),
                    move |result| async move {
                        let _ = followed.send(result.map_err(|e| e.to_string()));
                    },
                )
                .await;
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    caller.abort();
    assert!(caller.await.is_err(), "the caller went away unanswered");
    slow.await.unwrap().unwrap();
    let inserted = tokio::time::timeout(Duration::from_secs(5), heard)
        .await
        .expect("`then` ran")
        .expect("with the result");
    assert_eq!(inserted, Ok(1));
    let rows: Vec<i64> = sqlx::query_scalar("SELECT n FROM t")
        .fetch_all(&readers)
        .await
        .unwrap();
    assert_eq!(rows, [7]);

    // An answered caller runs it itself, once.
    let runs = Arc::new(AtomicU64::new(0));
    let counted = runs.clone();
    let answer = writer
        .write_then(
            |_conn| Ok(8),
            move |result| async move {
                counted.fetch_add(1, Ordering::SeqCst);
                result.map(|n| n + 1)
            },
        )
        .await;
    assert_eq!(answer.unwrap(), 9);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    writer.close().await;
    readers.close().await;
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn concurrent_writes_share_commits_and_a_failed_one_fails_alone() {
    let (readers, writer, dir) = database().await;
    // Queued together, they share commits.
    let writes = (0..40).map(|n| insert(&writer, n, false));
    let results = futures_util::future::join_all(writes).await;
    assert!(results.iter().all(Result::is_ok));
    let GroupCommits {
        commits,
        writes,
        busy,
    } = writer.counts();
    assert_eq!(writes, 40);
    assert!(commits < 10, "{commits} commits for 40 writes");
    assert!(
        busy > std::time::Duration::ZERO,
        "the writer's time is counted"
    );

    // Some fail after writing: each failure is answered with its own error and leaves
    // nothing behind; the writes queued with it commit.
    let writes = (100..140).map(|n| insert(&writer, n, n % 10 == 7));
    let results = futures_util::future::join_all(writes).await;
    for (n, result) in (100..140).zip(&results) {
        match result {
            Ok(written) => assert_eq!(*written, n),
            Err(err) => {
                assert_eq!(n % 10, 7, "only the failing writes fail: {err}");
                assert_eq!(err.to_string(), format!("write {n} gives up"));
            }
        }
    }
    assert_eq!(results.iter().filter(|r| r.is_err()).count(), 4);
    // Every answer came after its commit: a reader sees exactly the writes that succeeded.
    let rows: Vec<i64> = sqlx::query_scalar("SELECT n FROM t ORDER BY n")
        .fetch_all(&readers)
        .await
        .unwrap();
    let expected: Vec<i64> = (0..40).chain((100..140).filter(|n| n % 10 != 7)).collect();
    assert_eq!(rows, expected);

    // A write that breaks a constraint fails alone too, and the writer goes on.
    let again =
        futures_util::future::join_all([insert(&writer, 1, false), insert(&writer, 200, false)])
            .await;
    assert!(again[0].is_err());
    assert_eq!(*again[1].as_ref().unwrap(), 200);

    // A write that panics is answered with an error; the writer goes on.
    let panicking = writer.write(|_conn| -> Result<(), StoreError> { panic!("a bug in a write") });
    let (panicked, after) =
        futures_util::future::join(panicking, insert(&writer, 300, false)).await;
    let panicked: Result<(), StoreError> = panicked;
    assert!(panicked.is_err());
    assert_eq!(after.unwrap(), 300);
    assert_eq!(insert(&writer, 301, false).await.unwrap(), 301);

    // A write that succeeded in a batch rolled back for another's failure, and panics when
    // run again alone, is answered with an error: nothing of it was committed.
    let slow = hold(&writer, Duration::from_millis(300));
    tokio::time::sleep(Duration::from_millis(100)).await;
    let runs = Arc::new(AtomicU64::new(0));
    let counted = runs.clone();
    let flaky = writer.write(move |conn| {
        if counted.fetch_add(1, Ordering::SeqCst) > 0 {
            panic!("a bug met only on the second run");
        }
        conn.execute("INSERT INTO t (n) VALUES (400)", [])?;
        Ok(())
    });
    let (flaky, failing) = futures_util::future::join(flaky, insert(&writer, 401, true)).await;
    slow.await.unwrap().unwrap();
    assert_eq!(
        runs.load(Ordering::SeqCst),
        2,
        "run in the batch, then alone"
    );
    assert!(flaky.is_err(), "{flaky:?}");
    assert!(failing.is_err());
    let after: Vec<i64> = sqlx::query_scalar("SELECT n FROM t WHERE n >= 400")
        .fetch_all(&readers)
        .await
        .unwrap();
    assert!(after.is_empty(), "{after:?}");
    writer.close().await;
    assert!(insert(&writer, 302, false).await.is_err(), "closed");
    let closed = writer
        .write_then(|_conn| Ok(()), |result| async move { result.is_err() })
        .await;
    assert!(closed, "`then` hears that the writer has stopped");
    readers.close().await;
    std::fs::remove_dir_all(dir).unwrap();
}

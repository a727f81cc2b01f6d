//! The `syncdesk` command.

use std::process::ExitCode;

/// jemalloc, not glibc's allocator: with PostgreSQL, glibc's malloc and free were a quarter of
/// SyncDesk's CPU samples (the HTTP stacks, JSON and database buffers, spread thin), and
/// jemalloc cut SyncDesk's CPU per order by 18% and raised the benchmark's orders/s by 12%
/// at the same peak memory. With SQLite it measured ~10% slower (with less memory), when the
/// one writer's hand-offs to sqlx's thread set the pace (before the writer ran its statements
/// in place); docs/PERFORMANCE.md has the figures.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    match syncdesk::cli::try_main() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // Configuration and start-up errors end with one clear sentence, not a backtrace.
            eprintln!("syncdesk: {err:#}");
            ExitCode::FAILURE
        }
    }
}

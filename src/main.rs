//! The `syncdesk` command.

use std::process::ExitCode;

/// jemalloc, not glibc's allocator: with PostgreSQL, glibc's malloc and free were a quarter of
/// SyncDesk's CPU samples (the HTTP stacks, JSON and database buffers, spread thin), and
/// jemalloc cut SyncDesk's CPU per order by 18% and raised the benchmark's orders/s by 12%
/// at the same peak memory. With SQLite it once measured ~10% slower, when the one writer's
/// hand-offs to sqlx's thread set the pace; since the writer runs its statements in place it is
/// faster there too (3,232–3,503 orders/s against 2,841–3,044, the twenty-first session).
/// docs/PERFORMANCE.md has the figures.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    match syncdesk::cli::try_main() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // Configuration and start-up errors end with one clear sentence, not a backtrace.
            eprintln!("syncdesk: {}", syncdesk::cli::one_line(&err));
            ExitCode::FAILURE
        }
    }
}

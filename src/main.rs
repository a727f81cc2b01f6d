//! The `syncdesk` command.

use std::process::ExitCode;

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

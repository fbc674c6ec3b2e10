//! The `bunker` command: parses the command line and runs one job.
use std::process::ExitCode;

fn main() -> ExitCode {
    bunker::cli::main()
}

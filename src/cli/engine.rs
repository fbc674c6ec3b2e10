//! `bunker engine ...`: inspect the engine bunker talks to.
use std::process::ExitCode;

use clap::Subcommand;

use super::GlobalArgs;

#[derive(Debug, Subcommand)]
pub enum EngineCommand {
    /// Engine version, API version, architecture, storage driver, image count.
    Info {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(global: &GlobalArgs, command: EngineCommand) -> anyhow::Result<ExitCode> {
    let _ = (global, command);
    anyhow::bail!("engine info is being written")
}

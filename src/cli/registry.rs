//! `bunker registry ...`: registry work over the distribution API, no engine.
use std::process::ExitCode;

use clap::Subcommand;

use super::GlobalArgs;

#[derive(Debug, Subcommand)]
pub enum RegistryCommand {
    /// List the tags of a repository.
    ListTags { repository: String },
}

pub async fn run(global: &GlobalArgs, command: RegistryCommand) -> anyhow::Result<ExitCode> {
    let _ = (global, command);
    anyhow::bail!("registry commands are being written")
}

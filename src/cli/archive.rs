//! `bunker image-archive` and `bunker archive ...`.
use std::process::ExitCode;

use clap::{Args, Subcommand};

use super::GlobalArgs;

#[derive(Debug, Args)]
pub struct ArchiveArgs {}

#[derive(Debug, Subcommand)]
pub enum ArchiveCommand {
    /// Check every archive listed in the manifests.
    Verify {},
}

pub async fn run(global: &GlobalArgs, args: ArchiveArgs) -> anyhow::Result<ExitCode> {
    let _ = (global, args);
    anyhow::bail!("image-archive is being written")
}

pub async fn run_archive_command(
    global: &GlobalArgs,
    command: ArchiveCommand,
) -> anyhow::Result<ExitCode> {
    let _ = (global, command);
    anyhow::bail!("archive verify is being written")
}

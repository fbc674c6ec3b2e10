//! `bunker install`: bring projects up with Docker Compose.
use std::process::ExitCode;

use clap::Args;

use super::GlobalArgs;

#[derive(Debug, Args)]
pub struct InstallArgs {}

pub async fn run(global: &GlobalArgs, args: InstallArgs) -> anyhow::Result<ExitCode> {
    let _ = (global, args);
    anyhow::bail!("install is being written")
}

//! `bunker image-restore`: verify archives and load them onto an engine.
use std::process::ExitCode;

use clap::Args;

use super::GlobalArgs;

#[derive(Debug, Args)]
pub struct RestoreArgs {}

pub async fn run(global: &GlobalArgs, args: RestoreArgs) -> anyhow::Result<ExitCode> {
    let _ = (global, args);
    anyhow::bail!("image-restore is being written")
}

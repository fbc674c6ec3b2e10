//! `bunker image-build`: pull or build every cataloged image on the engine.
use std::process::ExitCode;

use clap::Args;

use super::GlobalArgs;

#[derive(Debug, Args)]
pub struct BuildArgs {}

pub async fn run(global: &GlobalArgs, args: BuildArgs) -> anyhow::Result<ExitCode> {
    let _ = (global, args);
    anyhow::bail!("image-build is being written")
}

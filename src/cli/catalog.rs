//! `bunker image-catalog`: list every image the projects need.
use std::process::ExitCode;

use clap::Args;

use super::GlobalArgs;

#[derive(Debug, Args)]
pub struct CatalogArgs {
    /// Print the catalog as JSON (schema in README.md).
    #[arg(long, conflicts_with = "summary")]
    pub json: bool,
    /// Print only the summary.
    #[arg(long)]
    pub summary: bool,
    /// Only these projects (repeatable).
    #[arg(long = "project", value_name = "NAME")]
    pub projects: Vec<String>,
    /// Skip these projects (repeatable).
    #[arg(long = "exclude", value_name = "NAME")]
    pub excludes: Vec<String>,
}

pub fn run(global: &GlobalArgs, args: CatalogArgs) -> anyhow::Result<ExitCode> {
    let _ = (global, args);
    anyhow::bail!("image-catalog is being written")
}

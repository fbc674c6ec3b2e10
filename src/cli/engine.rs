//! `bunker engine ...`: inspect the engine bunker talks to.
//!
//! `engine info` is the quickest check that the target, SSH keys, host key and engine
//! socket are all right before a long build or archive run.
use std::process::ExitCode;

use clap::Subcommand;

use super::GlobalArgs;
use super::engine_args::EngineArgs;
use crate::engine::{self, Engine};

#[derive(Debug, Subcommand)]
pub enum EngineCommand {
    /// Engine version, API version, architecture, storage driver, image count.
    Info {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        engine: EngineArgs,
    },
}

pub async fn run(global: &GlobalArgs, command: EngineCommand) -> anyhow::Result<ExitCode> {
    match command {
        EngineCommand::Info { json, engine } => {
            let engine = engine::connect(&engine.settings(global)).await?;
            let report = info_report(&engine);
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", info_text(&report));
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The `engine info --json` document.
#[derive(Debug, serde::Serialize)]
pub struct InfoReport {
    pub target: String,
    pub context: Option<String>,
    pub ssh_host: Option<String>,
    /// `--host`, `DOCKER_HOST` or `Docker context `NAME` (meta.json path)`.
    pub selected_by: String,
    pub transport: String,
    #[serde(flatten)]
    pub facts: engine::EngineFacts,
}

fn info_report(engine: &Engine) -> InfoReport {
    InfoReport {
        target: engine.target.clone(),
        context: engine.context.clone(),
        ssh_host: engine.ssh_host.clone(),
        selected_by: engine.selected_by().to_owned(),
        transport: engine.transport(),
        facts: engine.facts.clone(),
    }
}

fn info_text(report: &InfoReport) -> String {
    let facts = &report.facts;
    let rows = [
        ("Engine", report.target.clone()),
        ("Selected by", report.selected_by.clone()),
        ("Transport", report.transport.clone()),
        ("Name", facts.name.clone()),
        ("Engine version", facts.version.clone()),
        ("API version", facts.api_version.clone()),
        (
            "Architecture",
            format!("{} ({})", facts.arch, facts.platform),
        ),
        ("Storage driver", facts.storage_driver.clone()),
        ("Images", facts.images.to_string()),
    ];
    rows.iter()
        .map(|(label, value)| format!("{:<15} {value}\n", format!("{label}:")))
        .collect()
}

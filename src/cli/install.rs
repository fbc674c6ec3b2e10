//! `bunker install`: bring projects up with Docker Compose on the engine.
//!
//! Flags → catalog → plan → images ready (BUILD=false: check they are there;
//! otherwise build and pull) → `docker compose up -d` per project → table, or with
//! `--json` the report as JSON (like image-restore's). Ctrl-C or SIGTERM stops
//! it cleanly ([`crate::interrupt`]): no further project starts, a running
//! Compose is stopped, the report so far is printed, the exit status is 130 or 143.
use std::process::ExitCode;

use clap::Args;

use super::GlobalArgs;
use super::common::{
    JobsArgs, ProjectSelectionArgs, RootSettings, command_progress, listen_for_stop,
    load_build_plan,
};
use super::engine_args::EngineArgs;
use crate::build::PlanOptions;
use crate::engine::connect;
use crate::install::{InstallOptions, InstallReport, find_compose, install};

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("which").required(true).args(["projects", "all"])))]
// The shared `--project` flag with this command's own help text.
#[command(mut_arg("projects", |arg| arg.help("Install these projects (repeatable)")))]
#[command(mut_arg("jobs", |arg| arg.help("Projects built at once when building (BUILD is not false)")))]
pub struct InstallArgs {
    #[command(flatten)]
    pub selection: ProjectSelectionArgs,
    /// Install every project of the tree.
    #[arg(long)]
    pub all: bool,
    /// Wait until the containers run (and are healthy when they have a health check).
    #[arg(long)]
    pub wait: bool,
    #[command(flatten)]
    pub jobs: JobsArgs,
    /// Print the report as JSON on stdout; progress and errors stay on stderr.
    #[arg(long)]
    pub json: bool,
    /// Exit 1 when an image is stale (its registry could not be pulled from, so
    /// the engine's older copy was used); without it a stale image is a warning.
    #[arg(long)]
    pub strict: bool,
    #[command(flatten)]
    pub engine: EngineArgs,
}

pub async fn run(global: &GlobalArgs, args: InstallArgs) -> anyhow::Result<ExitCode> {
    let root = RootSettings::load(global)?;
    let offline = !root.build_enabled;
    let compose = find_compose().await?;

    let (catalog, build_plan) = load_build_plan(
        global,
        &root.context,
        &args.selection.selection(),
        PlanOptions {
            pull_base_images: false,
            pull_only: false,
        },
    );
    if build_plan.projects.is_empty() {
        let mut message = format!(
            "no projects to install under {}",
            global.projects_dir.display()
        );
        for problem in &build_plan.problems {
            message.push_str(&format!("\n  {problem}"));
        }
        anyhow::bail!("{message}\ncheck --projects-dir, --project and --exclude");
    }
    for project in &args.selection.projects {
        if !build_plan
            .projects
            .iter()
            .any(|plan| &plan.project == project)
        {
            anyhow::bail!(
                "no project {project} under {}; projects there: {}",
                global.projects_dir.display(),
                catalog
                    .projects
                    .iter()
                    .map(|info| info.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }

    let engine = connect(&args.engine.settings(global)).await?;
    if offline {
        eprintln!(
            "BUILD=false: nothing is built or pulled; every image must already be on {}",
            engine.target
        );
    }
    let progress = command_progress(args.json, global.verbose);
    let interrupt = listen_for_stop(
        &progress,
        "projects already up stay up, a running `docker compose up` is stopped \
                 as by its own Ctrl-C",
    )?;
    let options = InstallOptions {
        offline,
        wait: args.wait,
        jobs: args.jobs.get(),
        interrupt: interrupt.token(),
    };
    let report = install(
        &engine,
        &catalog,
        &build_plan,
        &compose,
        &options,
        &progress,
    )
    .await;
    let strict_failure = args.strict && !report.stale.is_empty();
    if args.json {
        let json = JsonReport {
            engine: engine.target.to_string(),
            offline,
            ok: !report.failed() && !strict_failure,
            report: &report,
        };
        println!("{}", serde_json::to_string_pretty(&json)?);
    } else {
        print!("{}", report.table());
    }
    for problem in &report.problems {
        eprintln!("error: {problem}");
    }
    for stale in &report.stale {
        eprintln!(
            "warning: {}; installed from the engine's copy ({})",
            stale.stale.error,
            stale.stale.created_text()
        );
    }
    if strict_failure {
        eprintln!(
            "--strict: {} image(s) are stale engine copies; exit status 1",
            report.stale.len()
        );
    }
    for project in report.projects.iter().filter(|project| !project.installed) {
        let kind = if project.interrupted {
            "stopped"
        } else {
            "error"
        };
        eprintln!("{kind}: {}: {}", project.project, project.detail);
    }
    if !args.json {
        let installed = report
            .projects
            .iter()
            .filter(|project| project.installed)
            .count();
        println!(
            "{installed} of {} project(s) up on {}",
            report.projects.len(),
            engine.target
        );
    }
    if let Some(code) = interrupt.exit_code() {
        return Ok(code);
    }
    Ok(if report.failed() || strict_failure {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// `install --json`: the report with the engine it ran on and whether it ran offline.
#[derive(serde::Serialize)]
struct JsonReport<'a> {
    engine: String,
    /// `BUILD=false`: nothing was built or pulled.
    offline: bool,
    /// Every selected project is up and nothing else went wrong.
    ok: bool,
    #[serde(flatten)]
    report: &'a InstallReport,
}

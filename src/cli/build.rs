//! `bunker image-build`: pull or build every cataloged image on the engine.
//!
//! Flags → catalog → plan → (dry run: print the plan) or (run it on the engine,
//! or with `BUILD=false` check the images are there) → report. Ctrl-C or
//! SIGTERM during a run stops it cleanly ([`crate::interrupt`]): running pulls
//! and builds are cut, the report so far is printed, the exit status is 130 or 143.
use std::process::ExitCode;

use clap::Args;

use super::GlobalArgs;
use super::common::{
    BuildFlagArgs, JobsArgs, ProjectSelectionArgs, RootSettings, listen_for_stop, load_build_plan,
};
use super::engine_args::EngineArgs;
use crate::build::{
    BuildPlan, ImageAction, PullMode, RunOptions, check_presence,
    hook::{HOOK_TARGET, read_hook_rule},
    run_plan_interruptible,
};
use crate::engine::connect;
use crate::progress::{Progress, render_table};

#[derive(Debug, Args)]
#[command(mut_arg("jobs", |arg| arg.help(
    "Projects worked on at once (images inside a project always go in order)"
)))]
pub struct BuildArgs {
    #[command(flatten)]
    pub selection: ProjectSelectionArgs,
    #[command(flatten)]
    pub build_flags: BuildFlagArgs,
    /// Print the images a real run would produce, and do nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print the plan (with --dry-run), the presence check (BUILD=false) or the run
    /// report as JSON on stdout; progress stays on stderr.
    #[arg(long)]
    pub json: bool,
    /// Stop starting new work after the first failure.
    #[arg(long)]
    pub fail_fast: bool,
    /// Exit 1 when an image is stale (its registry could not be pulled from, so
    /// the engine's older copy was used); without it a stale image is a warning.
    #[arg(long)]
    pub strict: bool,
    #[command(flatten)]
    pub jobs: JobsArgs,
    #[command(flatten)]
    pub engine: EngineArgs,
}

pub async fn run(global: &GlobalArgs, args: BuildArgs) -> anyhow::Result<ExitCode> {
    let root = RootSettings::load(global)?;
    let build_enabled = root.build_enabled;
    let options = args.build_flags.plan_options(build_enabled);
    let (_, build_plan) =
        load_build_plan(global, &root.context, &args.selection.selection(), options);
    if build_plan.projects.is_empty() {
        if build_plan.problems.is_empty() {
            anyhow::bail!(
                "no projects selected under {}; check --projects-dir, --project and --exclude",
                global.projects_dir.display()
            );
        }
        for problem in &build_plan.problems {
            eprintln!("error: {problem}");
        }
        return Ok(ExitCode::from(1));
    }

    if args.dry_run && args.json {
        println!("{}", serde_json::to_string_pretty(&build_plan)?);
        return Ok(exit_status(plan_problems(&build_plan).is_empty()));
    }
    if args.dry_run {
        return Ok(print_dry_run(&build_plan, build_enabled).await);
    }

    let engine = connect(&args.engine.settings(global)).await?;
    if !build_enabled {
        return check_images_present(&engine.docker, &build_plan, &engine.target, args.json).await;
    }
    let progress = Progress::auto(global.verbose);
    let interrupt = listen_for_stop(
        &progress,
        "images already built or pulled stay on the engine, unfinished ones are dropped",
    )?;
    let report = run_plan_interruptible(
        &engine.docker,
        &build_plan,
        RunOptions {
            jobs: args.jobs.get(),
            fail_fast: args.fail_fast,
            flags: args.build_flags.build_flags(),
            pull_mode: PullMode::Refresh,
        },
        &progress,
        &interrupt.token(),
    )
    .await;
    progress.finish();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.table());
        println!("{} on {}", report.summary(), engine.target);
    }
    for message in report.messages() {
        eprintln!("{message}");
    }
    if let Some(signal) = interrupt.received() {
        eprintln!(
            "stopped by {}: {}",
            signal.name(),
            report.interrupted_summary()
        );
        return Ok(ExitCode::from(signal.exit_status()));
    }
    let stale = report.stale();
    if args.strict && stale > 0 {
        eprintln!("--strict: {stale} image(s) are stale engine copies; exit status 1");
        return Ok(exit_status(false));
    }
    Ok(exit_status(!report.failed()))
}

fn exit_status(success: bool) -> ExitCode {
    if success {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// Every problem of the plan, global ones first.
fn plan_problems(build_plan: &BuildPlan) -> Vec<String> {
    let mut problems = build_plan.problems.clone();
    problems.extend(
        build_plan
            .projects
            .iter()
            .flat_map(|project| project.problems.iter().cloned()),
    );
    problems
}

/// Prints the plan in the layout of the final report (PROJECT ACTION IMAGE …),
/// so the names can be compared line for line with a real run.
async fn print_dry_run(build_plan: &BuildPlan, build_enabled: bool) -> ExitCode {
    let mut rows: Vec<Vec<String>> = Vec::new();
    let problems = plan_problems(build_plan);
    let mut hooks = Vec::new();
    for project in &build_plan.projects {
        if build_enabled
            && project.has_builds()
            && let Some(rule) = read_hook_rule(&project.directory)
        {
            rows.push(vec![
                project.project.clone(),
                "hook".into(),
                format!("make {HOOK_TARGET}"),
                "-".into(),
                project.directory.display().to_string(),
            ]);
            hooks.push((project.project.clone(), rule));
        }
        for job in &project.jobs {
            if !build_enabled && job.action == ImageAction::Base {
                continue;
            }
            rows.push(vec![
                job.project.clone(),
                if build_enabled {
                    job.action.as_str().to_string()
                } else {
                    "check".to_string()
                },
                job.image.clone(),
                job.services.join(","),
                job_details(job),
            ]);
        }
    }
    if !build_enabled {
        println!(
            "BUILD=false: nothing is built or pulled; a real run checks that these images are on the engine"
        );
    }
    print!(
        "{}",
        render_table(
            &["PROJECT", "ACTION", "IMAGE", "SERVICES", "DETAILS"],
            &rows
        )
    );
    for (project, rule) in &hooks {
        println!(
            "\n{project}: {HOOK_TARGET} in {} (a real run runs it; --dry-run runs nothing):",
            rule.makefile.display()
        );
        for line in &rule.lines {
            println!("{line}");
        }
    }
    for problem in &problems {
        eprintln!("problem: {problem}");
    }
    if problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn job_details(job: &crate::build::ImageJob) -> String {
    let mut details: Vec<String> = Vec::new();
    if let Some(spec) = job.build.as_ref().map(|spec| &spec.info) {
        details.push(if spec.remote {
            format!("remote {}", spec.context)
        } else {
            format!("dockerfile {}", spec.dockerfile)
        });
        if let Some(target) = &spec.target {
            details.push(format!("target {target}"));
        }
        if !spec.args.is_empty() {
            let names: Vec<&str> = spec.args.keys().map(String::as_str).collect();
            details.push(format!("args {}", names.join(",")));
        }
    } else if let Some(registry) = &job.registry {
        details.push(format!("from {registry}"));
    }
    if !job.depends_on.is_empty() {
        details.push(format!("after {}", job.depends_on.join(",")));
    }
    if let Some(platform) = &job.platform {
        details.push(format!("platform {platform}"));
    }
    details.join("; ")
}

async fn check_images_present(
    docker: &bollard::Docker,
    build_plan: &BuildPlan,
    target: &str,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let report = check_presence(docker, build_plan)
        .await
        .map_err(|error| anyhow::anyhow!("{error}"))?;
    let problems = plan_problems(build_plan);
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        for problem in &problems {
            eprintln!("problem: {problem}");
        }
        return Ok(exit_status(
            report.missing.is_empty() && problems.is_empty(),
        ));
    }
    println!("BUILD=false: building nothing; checking that every needed image is on {target}");
    let mut rows: Vec<Vec<String>> = Vec::new();
    for (needed, state) in report
        .present
        .iter()
        .map(|needed| (needed, "present"))
        .chain(report.missing.iter().map(|needed| (needed, "MISSING")))
    {
        rows.push(vec![
            needed.project.clone(),
            needed.image.clone(),
            state.to_string(),
            needed.services.join(","),
        ]);
    }
    print!(
        "{}",
        render_table(&["PROJECT", "IMAGE", "STATE", "SERVICES"], &rows)
    );
    for problem in &problems {
        eprintln!("problem: {problem}");
    }
    if report.missing.is_empty() && problems.is_empty() {
        println!("all {} needed images are present", report.present.len());
        return Ok(ExitCode::SUCCESS);
    }
    for missing in &report.missing {
        eprintln!(
            "missing: {} ({}/{}); restore it with `bunker image-restore` or run image-build with BUILD=true",
            missing.image,
            missing.project,
            missing.services.join(",")
        );
    }
    Ok(ExitCode::from(1))
}

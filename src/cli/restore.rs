//! `bunker image-restore`: load archived images onto an engine, verified.
//!
//! Flags → engine facts (architecture) → manifest → plan → run (or dry run) →
//! table or JSON. Exit status 1 when any image failed, a selected project has
//! nothing archived, or nothing matched at all; 130 or 143 when Ctrl-C or
//! SIGTERM stopped it ([`crate::interrupt`]), after the report so far.
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::GlobalArgs;
use super::common::{
    JobsArgs, ProjectSelectionArgs, RootSettings, command_progress, listen_for_stop,
    load_build_plan,
};
use super::engine_args::EngineArgs;
use crate::build::{PlanOptions, Selection};
use crate::engine::connect;
use crate::image::reference::canonical_name;
use crate::restore::plan::ProjectSelection;
use crate::restore::source::ArchiveLocation;
use crate::restore::wire::{WireMode, WireSettings};
use crate::restore::{RestoreOptions, choose_archive, plan_restore, restore};

#[derive(Debug, Args)]
// The shared `--project` flag with this command's own help text.
#[command(mut_arg("projects", |arg| arg.help(
    "Only images of these projects (repeatable). An image several projects share is \
     restored for each that asks"
)))]
#[command(mut_arg("jobs", |arg| arg.help("Images loaded at once")))]
pub struct RestoreArgs {
    #[command(flatten)]
    pub selection: ProjectSelectionArgs,
    /// Restore the archive of this architecture (`uname -m` form) instead of the engine's.
    #[arg(long, value_name = "ARCH")]
    pub arch: Option<String>,
    /// The architecture directory holding manifest.json, or an archive base whose
    /// `<architecture>/manifest.json` is chosen by the engine's architecture
    /// (default: the base IMAGE_ARCHIVE_DIR, from the environment or the projects root .env_<context>).
    #[arg(long, value_name = "DIR")]
    pub archive_dir: Option<PathBuf>,
    /// Load even images the engine already has with the recorded ID.
    #[arg(long)]
    pub force: bool,
    /// Show what would be loaded or skipped; reads the manifest and the engine, not the files.
    #[arg(long)]
    pub dry_run: bool,
    /// With --dry-run: hash every file that would be loaded.
    #[arg(long, requires = "dry_run")]
    pub verify: bool,
    /// What travels to the engine. auto: the archive file as stored when the engine
    /// reads its format (zstd needs Docker 23.0+; otherwise it is decompressed here and
    /// sent as gzip level 1 over SSH, as the tar on a local socket). none:
    /// the decompressed tar. gzip, zstd: that compression (the file as stored when
    /// it has it, else recompressed here at level 1).
    #[arg(long, value_enum, value_name = "MODE", default_value_t = WireMode::Auto)]
    pub wire_compression: WireMode,
    #[command(flatten)]
    pub jobs: JobsArgs,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub engine: EngineArgs,
}

pub async fn run(global: &GlobalArgs, args: RestoreArgs) -> anyhow::Result<ExitCode> {
    let root = RootSettings::load(global)?;
    let location = ArchiveLocation {
        base: root.archive_dir(None),
        arch_dir: args.archive_dir.clone(),
        arch_override: args.arch.clone(),
    };

    let engine = connect(&args.engine.settings(global)).await?;
    let wire = WireSettings::new(
        args.wire_compression,
        engine.facts.load_formats(),
        engine.ssh_host.is_none(),
        &engine.target,
        &engine.facts.version,
    )?;
    let choice = choose_archive(&location, &engine.facts.arch, &engine.target)?;
    let selection = ProjectSelection {
        only: args.selection.projects.clone(),
        exclude: args.selection.excludes.clone(),
    };
    let instances = &args.selection.instances;
    let needed = if selection.only.is_empty() && instances.is_empty() {
        Vec::new()
    } else {
        images_the_catalog_needs(global, &root.context, &selection.only, instances)
    };
    let manifest_name = choice.arch_dir.manifest_path().display().to_string();
    let restore_plan = if instances.is_empty() {
        plan_restore(&choice.manifest, &selection, &needed, &manifest_name)
    } else {
        // `--instance`: only the images the catalog says those instances run.
        let wanted: Vec<String> = needed
            .iter()
            .map(|(_, image)| canonical_name(image))
            .collect();
        let mut manifest = choice.manifest.clone();
        manifest
            .images
            .retain(|entry| wanted.contains(&canonical_name(&entry.image)));
        plan_restore(&manifest, &selection, &needed, &manifest_name)
    };

    let progress = command_progress(args.json, global.verbose);
    let interrupt = listen_for_stop(
        &progress,
        "images already restored stay on the engine, partly loaded ones are removed",
    )?;
    let options = RestoreOptions {
        jobs: args.jobs.get(),
        force: args.force,
        dry_run: args.dry_run,
        verify: args.verify,
        interrupt: interrupt.token(),
        wire,
        image_store: engine.facts.image_store,
    };
    let report = restore(
        &engine.docker,
        &engine.target,
        &choice,
        &restore_plan,
        &options,
        &progress,
    )
    .await;

    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.table());
        println!(
            "{} on {} ({})",
            report.summary(),
            engine.target,
            report.arch
        );
    }
    for note in &report.notes {
        eprintln!("note: {note}");
    }
    for line in report.problem_lines() {
        eprintln!("error: {line}");
    }
    if report.images.is_empty() && report.problems.is_empty() {
        eprintln!(
            "error: nothing to restore: {} lists no images for the selected projects",
            manifest_name
        );
    }
    if let Some(code) = interrupt.exit_code() {
        return Ok(code);
    }
    Ok(if report.failed() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// (project, image) pairs the projects tree says the selected projects run; empty
/// when there is no tree here (a restore needs only the archive).
fn images_the_catalog_needs(
    global: &GlobalArgs,
    context: &str,
    projects: &[String],
    instances: &[String],
) -> Vec<(String, String)> {
    if !global.projects_dir.is_dir() {
        return Vec::new();
    }
    let selection = Selection {
        only: projects.to_vec(),
        instances: instances.to_vec(),
        ..Selection::default()
    };
    let options = PlanOptions {
        pull_base_images: false,
        pull_only: false,
    };
    let (_, build_plan) = load_build_plan(global, context, &selection, options);
    build_plan
        .jobs()
        .filter(|job| job.action != crate::build::ImageAction::Base)
        .map(|job| (job.project.clone(), job.image.clone()))
        .collect()
}

//! `bunker image-archive` and `bunker archive ...`.
//!
//! image-archive: flags → catalog → the build plan (exactly image-build's) and
//! the archive plan (plus base images) → dry run, or connect, run
//! [`crate::archive_run`] and print the report. Ctrl-C or SIGTERM during the
//! run stops it cleanly ([`crate::interrupt`]): the report so far, exit 130 or 143.
//!
//! `--deployed` then asks the engine what its containers run and archives, in a
//! second pass after every pull and build of the first, the running images the
//! catalog's archive does not cover ([`crate::deployed::archive`]).
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Subcommand};

use super::GlobalArgs;
use super::common::{
    BuildFlagArgs, JobsArgs, ProjectSelectionArgs, RootSettings, command_progress, listen_for_stop,
    load_build_plan,
};
use super::engine_args::EngineArgs;
use crate::archive::verify::{ArchReport, VerifyReport, arch_dirs_of};
use crate::archive::{
    ArchDir, ArchiveAction, ArchiveLayout, Compression, Manifest, ManifestLock, rebuild_manifest,
    verify_arch_dir,
};
use crate::archive_run::wire::WireCompression;
use crate::archive_run::{
    ArchiveReport, ArchiveRun, ArchiveSettings, ImageTarget, ImageUse, dry_run::dry_run,
};
use crate::build::{BuildPlan, PlanOptions, PullMode, RunOptions, plan};
use crate::catalog::Catalog;
use crate::deployed::archive::{DeployedImage, images_to_archive, name_on_engine};
use crate::deployed::running::compare_running;
use crate::engine::{Engine, connect};

#[derive(Debug, Args)]
#[command(mut_arg("jobs", |arg| arg.help(
    "Images exported at once (and projects built at once)"
)))]
pub struct ArchiveArgs {
    /// Archive base directory [default: IMAGE_ARCHIVE_DIR, else IMAGE_ARCHIVE_DIR in the
    /// projects root .env_<context>, else ./_archive/images].
    #[arg(long, value_name = "DIR")]
    pub output_dir: Option<PathBuf>,
    #[command(flatten)]
    pub selection: ProjectSelectionArgs,
    #[command(flatten)]
    pub build_flags: BuildFlagArgs,
    /// Do not archive the images named in Dockerfile FROM lines.
    #[arg(long)]
    pub no_base_images: bool,
    /// Archive again even images the manifest already has.
    #[arg(long)]
    pub force: bool,
    /// Re-hash an archive file before skipping it.
    #[arg(long)]
    pub verify: bool,
    /// Remove each image from the engine once its archive is verified (never one a
    /// container uses).
    #[arg(long)]
    pub delete: bool,
    /// Stop starting new work after the first failure.
    #[arg(long)]
    pub fail_fast: bool,
    /// Exit 1 when an image is stale (its registry could not be pulled from, so
    /// the engine's older copy was used); without it a stale image is a warning.
    #[arg(long)]
    pub strict: bool,
    /// Print the files a real run would write and which it would skip; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Also archive what runs: the exact images of the running containers (of the
    /// selected projects) the catalog's archive does not cover; a running image whose
    /// tag moved is archived as `<repo>:<tag>-deployed-<12hex>`.
    #[arg(long)]
    pub deployed: bool,
    #[command(flatten)]
    pub jobs: JobsArgs,
    /// Compression of the archive files.
    #[arg(long, value_enum, default_value_t = Compression::Gzip)]
    pub compression: Compression,
    /// Compression level [default: 5 for gzip (0-9), 3 for zstd (1-19)].
    #[arg(long, value_name = "N")]
    pub level: Option<u32>,
    /// How exports cross the SSH link: the server compresses (`docker save | zstd`,
    /// `pigz`/`gzip`) and bunker decompresses, or the engine API's raw stream. `auto`
    /// measures the link and picks the faster; the archive files are the same either way.
    #[arg(long, value_enum, default_value_t = WireCompression::Auto, value_name = "MODE")]
    pub wire_compression: WireCompression,
    /// Print a machine-readable report on stdout; progress stays on stderr.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub engine: EngineArgs,
}

#[derive(Debug, Subcommand)]
pub enum ArchiveCommand {
    /// Check every archive listed in the manifests: file present, size, SHA-256,
    /// complete compressed stream, loadable docker-save tar of the listed image.
    /// With --load, also load each one into an engine under a scratch name.
    Verify(VerifyArgs),
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Archive base directory (one subdirectory per architecture) or one
    /// architecture's directory [default: IMAGE_ARCHIVE_DIR, else ./_archive/images].
    #[arg(long, value_name = "DIR")]
    pub archive_dir: Option<PathBuf>,
    /// Recreate manifest.json from the archive files (keeps what an old
    /// manifest knew about files that did not change), then report.
    #[arg(long)]
    pub rebuild_manifest: bool,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Load each archive of the engine's architecture into the engine under a scratch
    /// name (`bunker-verify/<run>:<n>`), check the loaded image against the manifest,
    /// then remove what the check created; an existing image or tag is never touched.
    /// Only layers the engine does not already have are read from the archive: check
    /// against a scratch engine for a full proof.
    #[arg(long, conflicts_with = "rebuild_manifest")]
    pub load: bool,
    /// With --load: run this command (split like a shell) in a throwaway container of
    /// each loaded image, with no network, as `docker run IMAGE CMD` would; its exit
    /// status is the verdict.
    #[arg(long, value_name = "CMD", requires = "load")]
    pub run: Option<String>,
    /// With --load: only the archives of these projects (repeatable).
    #[arg(long = "project", value_name = "PROJECT", requires = "load")]
    pub projects: Vec<String>,
    #[command(flatten)]
    pub engine: EngineArgs,
}

pub async fn run(global: &GlobalArgs, args: ArchiveArgs) -> anyhow::Result<ExitCode> {
    if let Some(message) = level_problem(args.compression, args.level) {
        eprintln!("error: {message}");
        return Ok(ExitCode::from(2));
    }
    let root = RootSettings::load(global)?;
    let build_enabled = root.build_enabled;
    let layout = ArchiveLayout::new(root.archive_dir(args.output_dir.as_deref()));

    let selection = args.selection.selection();
    let (catalog, build_plan) = load_build_plan(
        global,
        &root.context,
        &selection,
        args.build_flags.plan_options(build_enabled),
    );
    let archive_plan = plan(
        &catalog,
        &selection,
        PlanOptions {
            pull_base_images: !args.no_base_images,
            pull_only: args.build_flags.pull_only,
        },
    );
    if archive_plan.projects.is_empty() {
        if archive_plan.problems.is_empty() {
            anyhow::bail!(
                "no projects selected under {}; check --projects-dir, --project and --exclude",
                global.projects_dir.display()
            );
        }
        for problem in &archive_plan.problems {
            eprintln!("error: {problem}");
        }
        return Ok(ExitCode::from(1));
    }

    let settings = ArchiveSettings {
        compression: args.compression,
        level: args.level,
        threads: 0,
        force: args.force,
        verify: args.verify,
        delete: args.delete,
        wire: args.wire_compression,
    };
    let engine = connect(&args.engine.settings(global)).await?;
    if args.dry_run {
        let planned = dry_run(&engine, &layout, &archive_plan, settings, build_enabled).await?;
        let deployed = if args.deployed {
            Some(deployed_images(&engine, &catalog, &args).await?)
        } else {
            None
        };
        if args.json {
            let mut value = serde_json::to_value(&planned)?;
            if let (Some((images, notes)), Some(object)) = (&deployed, value.as_object_mut()) {
                object.insert("deployed".into(), serde_json::to_value(images)?);
                object.insert("deployed_notes".into(), serde_json::to_value(notes)?);
            }
            println!("{}", serde_json::to_string_pretty(&value)?);
        } else {
            if !build_enabled {
                println!("BUILD=false: nothing is built or pulled; images not on the engine fail");
            }
            print!("{}", planned.table());
            println!(
                "{} file(s) for {} in {}",
                planned.files.len(),
                planned.arch,
                planned.manifest
            );
        }
        if let (Some((images, notes)), false) = (&deployed, args.json) {
            print_deployed_plan(images, notes);
        }
        return Ok(ExitCode::SUCCESS);
    }

    let progress = command_progress(args.json, global.verbose);
    let interrupt = listen_for_stop(
        &progress,
        "finished archives are kept in manifest.json and unfinished files are removed",
    )?;
    let run_options = RunOptions {
        jobs: args.jobs.get(),
        fail_fast: args.fail_fast,
        flags: args.build_flags.build_flags(),
        pull_mode: PullMode::Refresh,
    };
    let mut report = crate::archive_run::run(
        ArchiveRun {
            engine: &engine,
            layout: layout.clone(),
            build_plan: &build_plan,
            archive_plan: &archive_plan,
            build_enabled,
            run_options,
            settings,
            docker_context: root.context.clone(),
            interrupt: interrupt.token(),
            extra_targets: Vec::new(),
        },
        &progress,
    )
    .await?;
    if args.deployed && !report.interrupted && !(args.fail_fast && report.failed()) {
        let (images, notes) = deployed_images(&engine, &catalog, &args).await?;
        for note in notes {
            progress.println(format!("note: {note}"));
        }
        if !images.is_empty() {
            name_on_engine(&engine.docker, &images)
                .await
                .map_err(|error| anyhow::anyhow!("{} ({error})", engine.target))?;
            let empty = BuildPlan::default();
            let running = crate::archive_run::run(
                ArchiveRun {
                    engine: &engine,
                    layout,
                    build_plan: &empty,
                    archive_plan: &empty,
                    build_enabled: true,
                    run_options,
                    settings,
                    docker_context: root.context,
                    interrupt: interrupt.token(),
                    extra_targets: deployed_targets(&images),
                },
                &progress,
            )
            .await?;
            merge_reports(&mut report, running);
        }
    }
    progress.finish();
    let stale = report.totals().stale;
    let strict_failure = args.strict && stale > 0;
    if args.json {
        let value = serde_json::json!({
            "ok": !report.failed() && !strict_failure,
            "totals": report.totals(),
            "report": report,
        });
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        print!("{}", report.table());
        println!("{} -> {}", report.summary(), report.archive_dir);
    }
    for message in report.messages() {
        eprintln!("{message}");
    }
    if strict_failure {
        eprintln!("--strict: {stale} image(s) archived from a stale engine copy; exit status 1");
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

/// The running images of the selected projects (all running containers without
/// `--project`/`--exclude`) the catalog's archive does not cover.
async fn deployed_images(
    engine: &Engine,
    catalog: &Catalog,
    args: &ArchiveArgs,
) -> anyhow::Result<(Vec<DeployedImage>, Vec<String>)> {
    let comparison = compare_running(engine, catalog, &args.selection.selection()).await?;
    Ok(images_to_archive(&comparison, catalog))
}

/// One archive target per running image, for its project.
fn deployed_targets(images: &[DeployedImage]) -> Vec<ImageTarget> {
    images
        .iter()
        .map(|image| ImageTarget {
            reference: image.reference.clone(),
            uses: vec![ImageUse {
                project: image.project.clone(),
                image: image.reference.clone(),
                services: image.services.clone(),
                action: if image.built {
                    ArchiveAction::BuildSave
                } else {
                    ArchiveAction::PullSave
                },
                deployed_as: image.deployed_as.clone(),
            }],
        })
        .collect()
}

/// The second pass's rows and problems added to the first's report.
fn merge_reports(report: &mut ArchiveReport, running: ArchiveReport) {
    report.images.extend(running.images);
    report.problems.extend(running.problems);
    report.duration += running.duration;
    report.interrupted |= running.interrupted;
}

/// `--dry-run --deployed`: what the second pass would archive.
fn print_deployed_plan(images: &[DeployedImage], notes: &[String]) {
    for image in images {
        match &image.deployed_as {
            Some(original) => println!(
                "deployed: {}: {} runs {}, which {original} no longer names; would tag it \
                 {} and archive it",
                image.project,
                image.services.join(","),
                image.image_id,
                image.reference
            ),
            None => println!(
                "deployed: {}: {} runs {} (not cataloged); would archive it",
                image.project,
                image.services.join(","),
                image.reference
            ),
        }
    }
    for note in notes {
        println!("note: {note}");
    }
    println!("{} running image(s) beyond the catalog", images.len());
}

/// Why `--level` does not fit `--compression`, if it does not.
fn level_problem(compression: Compression, level: Option<u32>) -> Option<String> {
    let level = level?;
    match compression {
        Compression::None => Some(format!(
            "--level {level} needs --compression gzip or zstd (nothing is compressed with none)"
        )),
        Compression::Gzip if level > 9 => Some(format!(
            "--level {level} is out of range for gzip: use 0 to 9"
        )),
        Compression::Zstd if !(1..=19).contains(&level) => Some(format!(
            "--level {level} is out of range for zstd: use 1 to 19"
        )),
        _ => None,
    }
}

pub async fn run_archive_command(
    global: &GlobalArgs,
    command: ArchiveCommand,
) -> anyhow::Result<ExitCode> {
    match command {
        ArchiveCommand::Verify(args) if args.load => {
            let dir = archive_dir(global, args.archive_dir.as_deref())?;
            let check = super::verify_load::LoadCheck {
                dir,
                run: args.run,
                projects: args.projects,
                json: args.json,
                engine: args.engine,
            };
            super::verify_load::run(global, check).await
        }
        ArchiveCommand::Verify(args) => {
            let dir = archive_dir(global, args.archive_dir.as_deref())?;
            tokio::task::spawn_blocking(move || verify(&dir, args.rebuild_manifest, args.json))
                .await
                .context("the verify thread failed")?
        }
    }
}

fn archive_dir(global: &GlobalArgs, explicit: Option<&std::path::Path>) -> anyhow::Result<PathBuf> {
    if let Some(dir) = explicit {
        return Ok(dir.to_path_buf());
    }
    let context = crate::settings::context_name(global.context.as_deref());
    let root_env =
        crate::settings::root_env(&global.projects_dir, &context).with_context(|| {
            format!(
                "cannot read {}",
                crate::settings::root_env_path(&global.projects_dir, &context).display()
            )
        })?;
    Ok(crate::settings::archive_dir(None, &root_env))
}

fn verify(dir: &std::path::Path, rebuild: bool, json: bool) -> anyhow::Result<ExitCode> {
    let arch_dirs = arch_dirs_of(dir)?;
    let mut report = VerifyReport {
        arch_dirs: Vec::new(),
    };
    let mut rebuilds = Vec::new();
    for arch_dir in &arch_dirs {
        if rebuild {
            rebuilds.push(rebuild_arch_dir(arch_dir)?);
        }
        report.arch_dirs.push(verify_arch_dir(arch_dir)?);
    }
    if json {
        let value = serde_json::json!({
            "ok": report.ok() && !damaged(&rebuilds),
            "checked": report.checked(),
            "bad": report.bad(),
            "rebuilt": rebuilds,
            "arch_dirs": report.arch_dirs,
        });
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        for rebuilt in &rebuilds {
            print_rebuild(rebuilt);
        }
        for arch in &report.arch_dirs {
            print_arch_report(arch, rebuild);
        }
        println!(
            "{} archive(s) checked, {} bad",
            report.checked(),
            report.bad()
        );
    }
    if report.ok() && !damaged(&rebuilds) {
        Ok(ExitCode::SUCCESS)
    } else {
        if !json {
            eprintln!(
                "error: bad archives found; re-archive those images (bunker image-archive) \
                 or restore the files from a backup"
            );
        }
        Ok(ExitCode::from(1))
    }
}

fn damaged(rebuilds: &[RebuildSummary]) -> bool {
    rebuilds
        .iter()
        .flat_map(|rebuilt| &rebuilt.skipped)
        .any(|skipped| skipped.damaged)
}

#[derive(serde::Serialize)]
struct RebuildSummary {
    manifest: PathBuf,
    entries: usize,
    skipped: Vec<crate::archive::rebuild::SkippedFile>,
}

fn rebuild_arch_dir(arch_dir: &ArchDir) -> anyhow::Result<RebuildSummary> {
    let _lock = ManifestLock::acquire(arch_dir)?;
    let manifest_path = arch_dir.manifest_path();
    let previous = match Manifest::load(&manifest_path) {
        Ok(previous) => Some(previous),
        Err(error) if manifest_path.exists() => {
            tracing::warn!("{error:#}; rebuilding it from the files alone");
            None
        }
        Err(_) => None,
    };
    let rebuilt = rebuild_manifest(arch_dir, previous.as_ref())?;
    rebuilt.manifest.save_atomic(&manifest_path)?;
    Ok(RebuildSummary {
        manifest: manifest_path,
        entries: rebuilt.manifest.images.len(),
        skipped: rebuilt.skipped,
    })
}

fn print_rebuild(rebuilt: &RebuildSummary) {
    println!(
        "rebuilt {} with {} entr{}",
        rebuilt.manifest.display(),
        rebuilt.entries,
        if rebuilt.entries == 1 { "y" } else { "ies" }
    );
    for skipped in &rebuilt.skipped {
        println!("  LEFT OUT {}: {}", skipped.file, skipped.reason);
    }
}

fn print_arch_report(arch: &ArchReport, rebuilt: bool) {
    println!("{} ({})", arch.dir.display(), arch.arch);
    for file in &arch.files {
        if file.ok() {
            println!("  ok   {}  {}", file.file, file.image);
        } else {
            println!(
                "  BAD  {}  {}: {}",
                file.file,
                file.image,
                file.problems.join("; ")
            );
        }
    }
    let hint = if rebuilt {
        ""
    } else {
        " (run with --rebuild-manifest to add it)"
    };
    for file in &arch.unlisted_files {
        println!("  note {file} is not listed in manifest.json{hint}");
    }
    for file in &arch.partial_files {
        println!(
            "  note {} is left over from an interrupted run (removed by the next image-archive run)",
            file.display()
        );
    }
}

impl clap::ValueEnum for WireCompression {
    fn value_variants<'a>() -> &'a [Self] {
        &[
            WireCompression::Auto,
            WireCompression::None,
            WireCompression::Gzip,
            WireCompression::Zstd,
        ]
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        let help = match self {
            WireCompression::Auto => "Measure the link with a short probe and pick the faster",
            WireCompression::None => "The engine API's raw `docker save` stream",
            WireCompression::Gzip => "`pigz -1`, else `gzip -1`, on the server",
            WireCompression::Zstd => "`zstd -T0 -1` on the server (else pigz/gzip)",
        };
        Some(clap::builder::PossibleValue::new(self.name()).help(help))
    }
}

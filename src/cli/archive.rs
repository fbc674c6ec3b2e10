//! `bunker image-archive` and `bunker archive ...`.
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Subcommand};

use super::GlobalArgs;
use crate::archive::verify::{ArchReport, VerifyReport, arch_dirs_of};
use crate::archive::{ArchDir, Manifest, ManifestLock, rebuild_manifest, verify_arch_dir};

#[derive(Debug, Args)]
pub struct ArchiveArgs {}

#[derive(Debug, Subcommand)]
pub enum ArchiveCommand {
    /// Check every archive listed in the manifests: file present, size, SHA-256,
    /// complete compressed stream, loadable docker-save tar of the listed image.
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
}

pub async fn run(global: &GlobalArgs, args: ArchiveArgs) -> anyhow::Result<ExitCode> {
    let _ = (global, args);
    anyhow::bail!("image-archive is being written")
}

pub async fn run_archive_command(
    global: &GlobalArgs,
    command: ArchiveCommand,
) -> anyhow::Result<ExitCode> {
    match command {
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

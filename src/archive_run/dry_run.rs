//! `image-archive --dry-run`: the files a real run would write and the ones it
//! would skip, from the same plan, the same file names and the same skip rule,
//! without writing anything (no lock, no manifest, no engine changes).
//!
//! The engine is asked (read-only) for each image's current ID, since the skip
//! rule compares it with the manifest. An image that a real run pulls or builds
//! first can still change, and the state says so.

use serde::Serialize;

use super::image::{ArchiveSettings, ImageTarget};
use super::{plan_order, targets_of};
use crate::archive::{ArchDir, ArchiveAction, ArchiveLayout, Manifest};
use crate::build::BuildPlan;
use crate::engine::Engine;
use crate::progress::render_table;

/// One file a real run would consider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlannedFile {
    pub project: String,
    pub image: String,
    pub action: ArchiveAction,
    /// Absolute path of the archive file.
    pub file: String,
    /// `archive`, `link`, `skip`, `skip unless the build changes it`, …
    pub state: String,
}

/// What the dry run found.
#[derive(Debug, Clone, Serialize)]
pub struct DryRun {
    pub arch: String,
    pub manifest: String,
    pub files: Vec<PlannedFile>,
}

impl DryRun {
    pub fn table(&self) -> String {
        let rows: Vec<Vec<String>> = self
            .files
            .iter()
            .map(|file| {
                vec![
                    file.project.clone(),
                    file.action.name().to_string(),
                    file.image.clone(),
                    file.state.clone(),
                    file.file.clone(),
                ]
            })
            .collect();
        render_table(&["PROJECT", "ACTION", "IMAGE", "STATE", "FILE"], &rows)
    }
}

/// Lists every file of `archive_plan` with what a real run would do to it.
pub async fn dry_run(
    engine: &Engine,
    layout: &ArchiveLayout,
    archive_plan: &BuildPlan,
    settings: ArchiveSettings,
    build_enabled: bool,
) -> anyhow::Result<DryRun> {
    let arch = engine.facts.arch.clone();
    let arch_dir = layout.arch_dir(&arch);
    let manifest = Manifest::load_or_new(&arch_dir.manifest_path(), &arch)?;
    let mut files = Vec::new();
    for target in targets_of(archive_plan) {
        let current_id = match engine.docker.inspect_image(&target.reference).await {
            Ok(inspect) => inspect.id,
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => None,
            Err(error) => anyhow::bail!(
                "cannot inspect {} on the engine {}: {error}",
                target.reference,
                engine.target
            ),
        };
        files.extend(plan_target(
            &target,
            &arch_dir,
            &manifest,
            current_id.as_deref(),
            settings,
            build_enabled,
        ));
    }
    let order = plan_order(archive_plan);
    files.sort_by_key(|file| {
        order
            .get(&(file.project.clone(), file.image.clone()))
            .copied()
            .unwrap_or(usize::MAX)
    });
    Ok(DryRun {
        arch,
        manifest: arch_dir.manifest_path().display().to_string(),
        files,
    })
}

fn plan_target(
    target: &ImageTarget,
    arch_dir: &ArchDir,
    manifest: &Manifest,
    current_id: Option<&str>,
    settings: ArchiveSettings,
    build_enabled: bool,
) -> Vec<PlannedFile> {
    let mut written = false;
    let mut files = Vec::new();
    for image_use in &target.uses {
        let reusable = current_id.filter(|_| !settings.force).and_then(|id| {
            manifest
                .reusable_entry(arch_dir, &image_use.project, &image_use.image, id)
                .filter(|entry| entry.compression == settings.compression)
        });
        let refreshed = build_enabled && image_use.action != ArchiveAction::BaseSave;
        let state = match (current_id, reusable) {
            (None, _) if !build_enabled => "MISSING: not on the engine and BUILD=false".to_string(),
            (_, Some(_)) if refreshed => match image_use.action {
                ArchiveAction::BuildSave => "skip unless the build changes it".to_string(),
                _ => "skip unless the pull changes it".to_string(),
            },
            (_, Some(_)) if settings.verify => "skip if it re-hashes correctly".to_string(),
            (_, Some(_)) => "skip".to_string(),
            (_, None) if written => "link".to_string(),
            (_, None) => "archive".to_string(),
        };
        written |= state == "archive" || state.starts_with("skip");
        files.push(PlannedFile {
            project: image_use.project.clone(),
            image: image_use.image.clone(),
            action: image_use.action,
            file: planned_path(
                arch_dir, manifest, image_use, current_id, reusable, settings,
            )
            .display()
            .to_string(),
            state,
        });
    }
    files
}

/// The file a run would leave for this use: the listed file when it is kept,
/// else the new versioned name (the plain reference name when the image is
/// not on the engine yet, so its ID is unknown).
fn planned_path(
    arch_dir: &ArchDir,
    manifest: &Manifest,
    image_use: &super::ImageUse,
    current_id: Option<&str>,
    reusable: Option<&crate::archive::ManifestEntry>,
    settings: ArchiveSettings,
) -> std::path::PathBuf {
    if let Some(entry) = reusable {
        return arch_dir.resolve(&entry.file);
    }
    match current_id {
        Some(id) => {
            let in_use = manifest
                .find(&image_use.project, &image_use.image)
                .map(|entry| entry.file.as_str());
            arch_dir.resolve(&ArchDir::new_relative_file(
                &image_use.project,
                &image_use.image,
                id,
                settings.compression,
                in_use,
            ))
        }
        None => arch_dir.archive_path(&image_use.project, &image_use.image, settings.compression),
    }
}

//! Recreates a lost or damaged manifest.json from the archive files.
//!
//! Every `<project>/<file>` archive is read once (hash, decompress, inspect):
//! the project comes from the directory name, the image from the tar's
//! RepoTags, layers and platform from its config. Entries have the same schema
//! as those a normal run writes, one per project × image. When an old manifest
//! is still readable, what only the engine could tell (services, action,
//! engine image ID, repo digests, the project's own spelling of the image
//! name) is kept for files whose SHA-256 is unchanged.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::SystemTime;

use anyhow::Context as _;
use serde::Serialize;

use super::docker_tar::ExpectedImage;
use super::layout::ArchDir;
use super::manifest::{ContentIdentity, Manifest, ManifestEntry, now_rfc3339};
use super::scan::scan_archive;

/// An archive file left out of the rebuilt manifest, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SkippedFile {
    pub file: String,
    pub reason: String,
    /// The file is damaged or not an archive (rather than an older duplicate).
    pub damaged: bool,
}

/// The rebuilt manifest and the files that could not be listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RebuiltManifest {
    pub manifest: Manifest,
    pub skipped: Vec<SkippedFile>,
}

/// Builds a manifest for an arch directory from its archive files. `previous`
/// is the old manifest, if one could still be read. Nothing is written.
pub fn rebuild_manifest(
    arch_dir: &ArchDir,
    previous: Option<&Manifest>,
) -> anyhow::Result<RebuiltManifest> {
    let files = arch_dir
        .archive_files()
        .with_context(|| format!("cannot list the archives in {}", arch_dir.path().display()))?;
    let mut manifest = Manifest::new(&arch_dir.arch());
    if let Some(previous) = previous {
        manifest.docker_context.clone_from(&previous.docker_context);
        manifest.ssh_host.clone_from(&previous.ssh_host);
        manifest.engine_version.clone_from(&previous.engine_version);
    }
    manifest.archived_at = Some(now_rfc3339());
    let mut skipped = Vec::new();
    let mut chosen: BTreeMap<(String, String), (ManifestEntry, SystemTime)> = BTreeMap::new();
    for file in files {
        match entry_for_file(arch_dir, &file, previous) {
            Err(reason) => skipped.push(SkippedFile {
                file,
                reason,
                damaged: true,
            }),
            Ok((entry, modified)) => {
                let key = (entry.project.clone(), entry.image.clone());
                match chosen.remove(&key) {
                    Some((other, other_modified)) if other_modified > modified => {
                        skipped.push(SkippedFile {
                            reason: format!(
                                "an older copy of {} (the newer one is {})",
                                entry.image, other.file
                            ),
                            file: entry.file,
                            damaged: false,
                        });
                        chosen.insert(key, (other, other_modified));
                    }
                    Some((other, _)) => {
                        skipped.push(SkippedFile {
                            reason: format!(
                                "an older copy of {} (the newer one is {})",
                                other.image, entry.file
                            ),
                            file: other.file,
                            damaged: false,
                        });
                        chosen.insert(key, (entry, modified));
                    }
                    None => {
                        chosen.insert(key, (entry, modified));
                    }
                }
            }
        }
    }
    manifest.images = chosen.into_values().map(|(entry, _)| entry).collect();
    Ok(RebuiltManifest { manifest, skipped })
}

fn entry_for_file(
    arch_dir: &ArchDir,
    file: &str,
    previous: Option<&Manifest>,
) -> Result<(ManifestEntry, SystemTime), String> {
    let path: PathBuf = arch_dir.resolve(file);
    let modified = std::fs::metadata(&path)
        .and_then(|metadata| metadata.modified())
        .map_err(|error| format!("cannot read {}: {error}", path.display()))?;
    let scan = scan_archive(&path, ExpectedImage::default())
        .map_err(|error| format!("cannot read {}: {error}", path.display()))?;
    let problems = scan.problems();
    if !problems.is_empty() {
        return Err(problems.join("; "));
    }
    let image = scan.image.map_err(|error| error.to_string())?;
    let project = file.split('/').next().unwrap_or_default().to_string();
    let old = previous.and_then(|manifest| {
        manifest
            .images
            .iter()
            .find(|entry| entry.file == file && entry.sha256 == scan.sha256)
    });
    let name = match (old, image.repo_tags.first()) {
        (Some(old), _) => old.image.clone(),
        (None, Some(tag)) => tag.clone(),
        (None, None) => return Err("the tar names no image (its RepoTags is empty)".to_string()),
    };
    let archived_at = chrono::DateTime::<chrono::Utc>::from(modified)
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let entry = ManifestEntry {
        project,
        image: name,
        services: old.map(|old| old.services.clone()).unwrap_or_default(),
        action: old.and_then(|old| old.action),
        file: file.to_string(),
        size: scan.size,
        sha256: scan.sha256,
        docker_id: Some(
            old.and_then(|old| old.docker_id.clone())
                .unwrap_or_else(|| image.config_digest.clone()),
        ),
        repo_digests: old.map(|old| old.repo_digests.clone()).unwrap_or_default(),
        identity: ContentIdentity::of_image(&image),
        layers: image.diff_ids,
        uncompressed_size: Some(scan.uncompressed_size),
        uncompressed_sha256: Some(scan.uncompressed_sha256),
        compression: scan.compression,
        platform: image.platform,
        archived_at: Some(
            old.and_then(|old| old.archived_at.clone())
                .unwrap_or(archived_at),
        ),
        deployed_as: old.and_then(|old| old.deployed_as.clone()),
    };
    Ok((entry, modified))
}

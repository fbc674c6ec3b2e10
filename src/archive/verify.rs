//! `archive verify`: checks every manifest entry against its file.
//!
//! Each file is read exactly once: size, SHA-256, a complete compressed
//! stream, a readable tar with manifest.json, the expected image, and a layer
//! count equal to the config's diff IDs, all from the same pass. Files are
//! checked in parallel, one per core. Files on disk that the manifest does not
//! list and leftover `.partial-<pid>` files are reported as notes.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::Context as _;
use serde::Serialize;

use super::docker_tar::DockerImageInfo;
use super::durable::find_partials;
use super::layout::{ArchDir, ArchiveLayout};
use super::manifest::{ContentIdentity, Manifest, ManifestEntry};
use super::reader::ExpectedFile;
use super::scan::scan_archive;

/// The verdict on one manifest entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileReport {
    pub project: String,
    pub image: String,
    /// The entry's file, relative to the arch directory.
    pub file: String,
    /// Everything wrong with the file; empty when it is sound.
    pub problems: Vec<String>,
}

impl FileReport {
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// The verdict on one architecture directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ArchReport {
    pub dir: PathBuf,
    pub arch: String,
    pub files: Vec<FileReport>,
    /// Archive files present on disk but not listed in the manifest.
    pub unlisted_files: Vec<String>,
    /// Leftover temporary files of interrupted runs.
    pub partial_files: Vec<PathBuf>,
}

impl ArchReport {
    pub fn bad_files(&self) -> impl Iterator<Item = &FileReport> {
        self.files.iter().filter(|file| !file.ok())
    }
}

/// The verdict on everything verified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    pub arch_dirs: Vec<ArchReport>,
}

impl VerifyReport {
    pub fn ok(&self) -> bool {
        self.arch_dirs
            .iter()
            .all(|arch| arch.bad_files().next().is_none())
    }

    pub fn checked(&self) -> usize {
        self.arch_dirs.iter().map(|arch| arch.files.len()).sum()
    }

    pub fn bad(&self) -> usize {
        self.arch_dirs
            .iter()
            .map(|arch| arch.bad_files().count())
            .sum()
    }
}

/// What a directory given on the command line is.
pub enum ArchiveDirKind {
    /// One architecture's directory (holds manifest.json or `<project>/<file>` archives).
    Arch(ArchDir),
    /// The base holding one directory per architecture.
    Base(ArchiveLayout),
}

/// Tells an arch directory (manifest.json, or archives one level down) from a base.
pub fn classify_archive_dir(dir: &Path) -> anyhow::Result<ArchiveDirKind> {
    let metadata = std::fs::metadata(dir)
        .with_context(|| format!("archive directory {} cannot be read", dir.display()))?;
    if !metadata.is_dir() {
        anyhow::bail!(
            "{} is not a directory; give the archive directory",
            dir.display()
        );
    }
    let arch = ArchDir::new(dir);
    let has_archives = !arch
        .archive_files()
        .with_context(|| format!("cannot list {}", dir.display()))?
        .is_empty();
    if arch.manifest_path().is_file() || has_archives {
        Ok(ArchiveDirKind::Arch(arch))
    } else {
        Ok(ArchiveDirKind::Base(ArchiveLayout::new(dir)))
    }
}

/// The arch directories under a directory given on the command line.
pub fn arch_dirs_of(dir: &Path) -> anyhow::Result<Vec<ArchDir>> {
    match classify_archive_dir(dir)? {
        ArchiveDirKind::Arch(arch) => Ok(vec![arch]),
        ArchiveDirKind::Base(layout) => {
            let dirs = layout
                .existing_arch_dirs()
                .with_context(|| format!("cannot list {}", dir.display()))?;
            if dirs.is_empty() {
                anyhow::bail!(
                    "no archives under {}: it holds neither a manifest.json nor architecture directories",
                    dir.display()
                );
            }
            Ok(dirs)
        }
    }
}

/// Verifies an arch directory or a base with every architecture in it.
pub fn verify_archive_dir(dir: &Path) -> anyhow::Result<VerifyReport> {
    let arch_dirs = arch_dirs_of(dir)?
        .iter()
        .map(verify_arch_dir)
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(VerifyReport { arch_dirs })
}

/// Verifies every entry of one arch directory's manifest.
pub fn verify_arch_dir(arch_dir: &ArchDir) -> anyhow::Result<ArchReport> {
    let manifest_path = arch_dir.manifest_path();
    if !manifest_path.is_file() {
        anyhow::bail!(
            "{} has no manifest.json; recreate it from the files with \
             `bunker archive verify --rebuild-manifest --archive-dir {}`",
            arch_dir.path().display(),
            arch_dir.path().display()
        );
    }
    let manifest = Manifest::load(&manifest_path)?;
    let files = verify_entries(arch_dir, &manifest.images);
    let listed: std::collections::HashSet<&str> = manifest
        .images
        .iter()
        .map(|entry| entry.file.as_str())
        .collect();
    let unlisted_files = arch_dir
        .archive_files()
        .with_context(|| format!("cannot list {}", arch_dir.path().display()))?
        .into_iter()
        .filter(|file| !listed.contains(file.as_str()))
        .collect();
    let partial_files = find_partials(arch_dir.path())
        .with_context(|| format!("cannot list {}", arch_dir.path().display()))?;
    Ok(ArchReport {
        dir: arch_dir.path().to_path_buf(),
        arch: arch_dir.arch(),
        files,
        unlisted_files,
        partial_files,
    })
}

/// Verifies entries in parallel (one worker per core), keeping their order.
pub fn verify_entries(arch_dir: &ArchDir, entries: &[ManifestEntry]) -> Vec<FileReport> {
    let workers = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .min(entries.len().max(1));
    let next = AtomicUsize::new(0);
    let reports = Mutex::new(vec![None; entries.len()]);
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    let Some(entry) = entries.get(index) else {
                        break;
                    };
                    let report = verify_entry(arch_dir, entry);
                    reports.lock().expect("a verify worker panicked")[index] = Some(report);
                }
            });
        }
    });
    reports
        .into_inner()
        .expect("a verify worker panicked")
        .into_iter()
        .map(|report| report.expect("every entry was verified"))
        .collect()
}

/// Verifies one entry's file in a single pass.
pub fn verify_entry(arch_dir: &ArchDir, entry: &ManifestEntry) -> FileReport {
    let path = arch_dir.resolve(&entry.file);
    FileReport {
        project: entry.project.clone(),
        image: entry.image.clone(),
        file: entry.file.clone(),
        problems: entry_problems(&path, entry),
    }
}

fn entry_problems(path: &Path, entry: &ManifestEntry) -> Vec<String> {
    match std::fs::metadata(path) {
        Ok(metadata) if metadata.is_file() => {}
        Ok(_) => return vec![format!("{} is not a regular file", path.display())],
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return vec![format!("the file {} is missing", path.display())];
        }
        Err(error) => return vec![format!("cannot read {}: {error}", path.display())],
    }
    let expected = ExpectedFile::from_entry(entry);
    let scan = match scan_archive(path, expected.image.clone()) {
        Ok(scan) => scan,
        Err(error) => return vec![format!("cannot read {}: {error}", path.display())],
    };
    let mut problems = Vec::new();
    if entry.sha256.is_empty() {
        problems.push("the manifest records no SHA-256 for it".to_string());
    }
    problems.extend(expected.mismatches(&scan));
    if scan.compression != entry.compression {
        problems.push(format!(
            "the file is {}-compressed, the manifest says {}",
            scan.compression, entry.compression
        ));
    }
    if let Ok(image) = &scan.image
        && !entry.layers.is_empty()
        && image.diff_ids != entry.layers
    {
        problems.push("the image's layer diff IDs differ from the manifest's `layers`".to_string());
    }
    if let Ok(image) = &scan.image {
        problems.extend(identity_problems(&entry.identity, image));
    }
    problems
}

/// How the tar's image differs from the identity the manifest records (fields an
/// older bunker did not record are not checked).
fn identity_problems(recorded: &ContentIdentity, image: &DockerImageInfo) -> Vec<String> {
    let mut problems = Vec::new();
    if let Some(digest) = &recorded.config_digest
        && *digest != image.config_digest
    {
        problems.push(format!(
            "the image's config digest is {}, the manifest's `config_digest` {digest}",
            image.config_digest
        ));
    }
    if let Some(fingerprint) = &recorded.config_fingerprint
        && image.config_fingerprint.as_ref() != Some(fingerprint)
    {
        problems.push(
            "the image's config fields differ from the manifest's `config_fingerprint`".to_string(),
        );
    }
    problems
}

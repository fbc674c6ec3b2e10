//! Finds the manifest to restore from.
//!
//! The architecture is the target engine's (`uname -m` form, from the engine
//! itself), not the workstation's: an x86 laptop restoring a Raspberry Pi must
//! load the aarch64 archive. `--arch` overrides it; `--archive-dir` names one
//! architecture directory directly, or an archive base to search like
//! `IMAGE_ARCHIVE_DIR`. Either way a manifest recorded for another
//! architecture than the one asked for is refused, so images that cannot run on
//! the engine are never loaded by accident.

use std::path::{Path, PathBuf};

use anyhow::bail;

use crate::archive::layout::MANIFEST_FILE_NAME;
use crate::archive::{ArchDir, ArchiveLayout, Manifest};

/// The manifest chosen for a restore.
#[derive(Debug, Clone)]
pub struct ArchiveChoice {
    pub arch_dir: ArchDir,
    pub manifest: Manifest,
    /// The architecture the images must be for.
    pub arch: String,
}

/// Where to look, as the user gave it.
#[derive(Debug, Clone)]
pub struct ArchiveLocation {
    /// The archive base (`<base>/<arch>/manifest.json`).
    pub base: PathBuf,
    /// `--archive-dir`: one architecture directory, used as is.
    pub arch_dir: Option<PathBuf>,
    /// `--arch`: the architecture to restore instead of the engine's.
    pub arch_override: Option<String>,
}

/// Picks and loads the manifest for an engine of architecture `engine_arch`.
pub fn choose_archive(
    location: &ArchiveLocation,
    engine_arch: &str,
    engine_name: &str,
) -> anyhow::Result<ArchiveChoice> {
    let arch = location
        .arch_override
        .clone()
        .unwrap_or_else(|| engine_arch.to_string());
    let arch_dir = match &location.arch_dir {
        // An archive base given as --archive-dir is searched like IMAGE_ARCHIVE_DIR.
        Some(dir) if !dir.join(MANIFEST_FILE_NAME).is_file() && !arch_names(dir).is_empty() => {
            default_arch_dir(dir, &arch, engine_arch, engine_name)?
        }
        Some(dir) => explicit_arch_dir(dir)?,
        None => default_arch_dir(&location.base, &arch, engine_arch, engine_name)?,
    };
    let manifest = Manifest::load(&arch_dir.manifest_path())?;
    let recorded = if manifest.arch.is_empty() {
        arch_dir.arch()
    } else {
        manifest.arch.clone()
    };
    if recorded != arch {
        let how = if location.arch_override.is_some() {
            format!("--arch {arch} was asked for")
        } else {
            format!("the engine at {engine_name} is {engine_arch}")
        };
        bail!(
            "the archive {} holds {recorded} images, but {how}; restore the {arch} archive \
             (image-archive from an {arch} engine), or pass --arch {recorded} if the engine \
             can run {recorded} images",
            arch_dir.manifest_path().display()
        );
    }
    Ok(ArchiveChoice {
        arch_dir,
        manifest,
        arch,
    })
}

fn explicit_arch_dir(dir: &Path) -> anyhow::Result<ArchDir> {
    let arch_dir = ArchDir::new(dir);
    if arch_dir.manifest_path().is_file() {
        return Ok(arch_dir);
    }
    if !dir.is_dir() {
        bail!(
            "archive directory {} does not exist; give --archive-dir the architecture \
             directory that holds {MANIFEST_FILE_NAME}",
            dir.display()
        );
    }
    bail!(
        "no {MANIFEST_FILE_NAME} in {} and no architecture directories with one; give \
         --archive-dir the archive base or one architecture directory \
         (`bunker archive verify --rebuild-manifest` recreates a lost manifest)",
        dir.display()
    )
}

fn default_arch_dir(
    base: &Path,
    arch: &str,
    engine_arch: &str,
    engine_name: &str,
) -> anyhow::Result<ArchDir> {
    let arch_dir = ArchiveLayout::new(base).arch_dir(arch);
    if arch_dir.manifest_path().is_file() {
        return Ok(arch_dir);
    }
    if !base.is_dir() {
        bail!(
            "archive directory {} does not exist; set IMAGE_ARCHIVE_DIR (environment or the \
             projects root .env_<context>) or pass --archive-dir <base>/<arch>",
            base.display()
        );
    }
    let available = arch_names(base);
    let why = if arch == engine_arch {
        format!("the engine at {engine_name} is {engine_arch}")
    } else {
        format!("--arch {arch} was asked for")
    };
    if available.is_empty() {
        bail!(
            "no archive for {arch} in {} ({why}): {} does not exist and no other \
             architecture is archived there either",
            base.display(),
            arch_dir.manifest_path().display()
        );
    }
    bail!(
        "no archive for {arch} in {} ({why}); it holds only {}. Archive the images from an \
         {arch} engine, or pass --arch {} if the engine can run those images",
        base.display(),
        available.join(", "),
        available[0]
    )
}

/// Subdirectories of `dir` that hold a manifest.json, sorted.
fn arch_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|entry| entry.path().join(MANIFEST_FILE_NAME).is_file())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base_with(arches: &[&str]) -> tempfile::TempDir {
        let base = tempfile::tempdir().unwrap();
        for arch in arches {
            let dir = ArchiveLayout::new(base.path()).arch_dir(arch);
            std::fs::create_dir_all(dir.path()).unwrap();
            Manifest::new(arch)
                .save_atomic(&dir.manifest_path())
                .unwrap();
        }
        base
    }

    fn location(base: &Path) -> ArchiveLocation {
        ArchiveLocation {
            base: base.to_path_buf(),
            arch_dir: None,
            arch_override: None,
        }
    }

    #[test]
    fn the_engine_architecture_chooses_the_directory() {
        let base = base_with(&["x86_64", "aarch64"]);
        let choice = choose_archive(&location(base.path()), "aarch64", "pi").unwrap();
        assert_eq!(choice.arch_dir.arch(), "aarch64");
        assert_eq!(choice.arch, "aarch64");
    }

    #[test]
    fn only_another_architecture_is_a_clear_error() {
        let base = base_with(&["aarch64"]);
        let message = choose_archive(&location(base.path()), "x86_64", "srv")
            .unwrap_err()
            .to_string();
        assert!(message.contains("no archive for x86_64"), "{message}");
        assert!(message.contains("holds only aarch64"), "{message}");
        assert!(message.contains("the engine at srv is x86_64"), "{message}");
    }

    #[test]
    fn an_explicit_directory_of_another_architecture_is_refused() {
        let base = base_with(&["aarch64"]);
        let mut location = location(base.path());
        location.arch_dir = Some(base.path().join("aarch64"));
        let message = choose_archive(&location, "x86_64", "srv")
            .unwrap_err()
            .to_string();
        assert!(message.contains("holds aarch64 images"), "{message}");
        location.arch_override = Some("aarch64".into());
        assert!(choose_archive(&location, "x86_64", "srv").is_ok());
    }

    #[test]
    fn a_base_given_as_archive_dir_is_searched_by_architecture() {
        let base = base_with(&["x86_64", "aarch64"]);
        let mut location = location(Path::new("/unused"));
        location.arch_dir = Some(base.path().to_path_buf());
        let choice = choose_archive(&location, "aarch64", "pi").unwrap();
        assert_eq!(choice.arch_dir.arch(), "aarch64");
        let only_arm = base_with(&["aarch64"]);
        location.arch_dir = Some(only_arm.path().to_path_buf());
        let message = choose_archive(&location, "x86_64", "srv")
            .unwrap_err()
            .to_string();
        assert!(message.contains("holds only aarch64"), "{message}");
    }

    #[test]
    fn a_directory_without_any_manifest_is_named() {
        let empty = tempfile::tempdir().unwrap();
        let mut location = location(Path::new("/unused"));
        location.arch_dir = Some(empty.path().to_path_buf());
        let message = choose_archive(&location, "x86_64", "srv")
            .unwrap_err()
            .to_string();
        assert!(message.contains("no manifest.json in"), "{message}");
    }

    #[test]
    fn a_missing_base_is_named() {
        let message = choose_archive(&location(Path::new("/nonexistent/base")), "x86_64", "srv")
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("/nonexistent/base does not exist"),
            "{message}"
        );
    }
}

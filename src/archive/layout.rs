//! Where archive files live and what they are called.
//!
//! The layout is the one existing archives of this kind already use, so old
//! archive directories keep working: `<base>/<arch>/<project>/<file>` plus one
//! `<base>/<arch>/manifest.json` per architecture. File names come from the
//! image reference with the old tool's sanitising rule and an extension that
//! names the compression.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// File name of the per-architecture manifest.
pub const MANIFEST_FILE_NAME: &str = "manifest.json";

/// How an archive file is compressed.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// Standard single-member gzip (readable by `gunzip` and every `docker load`).
    #[default]
    Gzip,
    /// Zstandard (smaller and faster; Docker Engine 20.10 cannot load it directly,
    /// bunker decompresses on the workstation when restoring).
    Zstd,
    /// The plain `docker save` tar.
    None,
}

impl Compression {
    /// The file name extension, including the `.tar` part.
    pub fn extension(self) -> &'static str {
        match self {
            Compression::Gzip => ".tar.gz",
            Compression::Zstd => ".tar.zst",
            Compression::None => ".tar",
        }
    }

    /// The name used on the command line and in manifest.json.
    pub fn name(self) -> &'static str {
        match self {
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
            Compression::None => "none",
        }
    }

    /// The level used when none is given: 5 for gzip and zstd's own default (3).
    ///
    /// gzip 5 rather than gzip's own 6: with zlib-rs, level 5 wrote the 1 GB bench
    /// image (files of /usr) 0.2 % larger than level 6 for 18 % less CPU
    /// (401.9 vs 401.0 MB; 16.0 vs 19.4 CPU-s; both 2.7 % above GNU `gzip -6`),
    /// and compression is what bounds an export on a small machine.
    pub fn default_level(self) -> u32 {
        match self {
            Compression::Gzip => 5,
            Compression::Zstd => 3,
            Compression::None => 0,
        }
    }

    /// The highest level the compressor accepts.
    pub fn max_level(self) -> u32 {
        match self {
            Compression::Gzip => 9,
            Compression::Zstd => 19,
            Compression::None => 0,
        }
    }

    /// The compression an archive file name implies, if it has a known extension.
    pub fn from_file_name(name: &str) -> Option<Compression> {
        [Compression::Gzip, Compression::Zstd, Compression::None]
            .into_iter()
            .find(|compression| name.ends_with(compression.extension()))
    }

    /// The compression the first bytes of a file reveal (gzip and zstd magic
    /// numbers); anything else is taken to be a plain tar.
    pub fn from_magic(first_bytes: &[u8]) -> Compression {
        if first_bytes.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if first_bytes.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.name())
    }
}

/// The old tool's file name rule: `/`, `:` and `@` become `_`, and so does any
/// other character outside `[A-Za-z0-9_.-]`; then the compression's extension.
///
/// `traefik/whoami:v1.11.0` → `traefik_whoami_v1.11.0.tar.gz`.
pub fn archive_file_name(image: &str, compression: Compression) -> String {
    let mut name: String = image
        .chars()
        .map(|character| {
            if character.is_ascii_alphanumeric() || matches!(character, '_' | '.' | '-') {
                character
            } else {
                '_'
            }
        })
        .collect();
    name.push_str(compression.extension());
    name
}

/// Whether a file name is a finished archive file (not a temporary `.partial-<pid>`).
pub fn is_archive_file_name(name: &str) -> bool {
    Compression::from_file_name(name).is_some()
}

/// An archive base directory: one subdirectory per architecture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveLayout {
    base: PathBuf,
}

impl ArchiveLayout {
    pub fn new(base: impl Into<PathBuf>) -> ArchiveLayout {
        ArchiveLayout { base: base.into() }
    }

    pub fn base(&self) -> &Path {
        &self.base
    }

    /// `<base>/<arch>`, e.g. `_archive/images/x86_64`.
    pub fn arch_dir(&self, arch: &str) -> ArchDir {
        ArchDir::new(self.base.join(arch))
    }

    /// Architecture directories present under the base: subdirectories that
    /// hold a manifest.json or project directories with archive files.
    pub fn existing_arch_dirs(&self) -> std::io::Result<Vec<ArchDir>> {
        let mut dirs = Vec::new();
        for entry in std::fs::read_dir(&self.base)? {
            let entry = entry?;
            if !entry.file_type()?.is_dir() {
                continue;
            }
            let dir = ArchDir::new(entry.path());
            if dir.manifest_path().is_file() || !dir.archive_files()?.is_empty() {
                dirs.push(dir);
            }
        }
        dirs.sort_by(|left, right| left.path().cmp(right.path()));
        Ok(dirs)
    }
}

/// One architecture's directory: `<base>/<arch>` with its manifest.json.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchDir {
    path: PathBuf,
}

impl ArchDir {
    pub fn new(path: impl Into<PathBuf>) -> ArchDir {
        ArchDir { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The architecture name: the directory's own name (`x86_64`, `aarch64`).
    pub fn arch(&self) -> String {
        self.path
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    /// `<arch dir>/manifest.json`.
    pub fn manifest_path(&self) -> PathBuf {
        self.path.join(MANIFEST_FILE_NAME)
    }

    /// The manifest's `file` value for an image of a project: `<project>/<file name>`,
    /// always with `/` so manifests move between systems.
    pub fn relative_file(project: &str, image: &str, compression: Compression) -> String {
        format!("{project}/{}", archive_file_name(image, compression))
    }

    /// The path of a manifest `file` value. `.` and `..` parts are dropped, so a
    /// damaged or hostile manifest cannot point outside the arch directory.
    pub fn resolve(&self, relative_file: &str) -> PathBuf {
        relative_file
            .split('/')
            .filter(|part| !matches!(*part, "" | "." | ".."))
            .fold(self.path.clone(), |path, part| path.join(part))
    }

    /// The archive file for an image of a project.
    pub fn archive_path(&self, project: &str, image: &str, compression: Compression) -> PathBuf {
        self.resolve(&ArchDir::relative_file(project, image, compression))
    }

    /// Every finished archive file, as `<project>/<file>` relative paths, sorted.
    pub fn archive_files(&self) -> std::io::Result<Vec<String>> {
        let mut files = Vec::new();
        for project in std::fs::read_dir(&self.path)? {
            let project = project?;
            if !project.file_type()?.is_dir() {
                continue;
            }
            let project_name = project.file_name().to_string_lossy().into_owned();
            for file in std::fs::read_dir(project.path())? {
                let file = file?;
                let file_name = file.file_name().to_string_lossy().into_owned();
                if file.file_type()?.is_file() && is_archive_file_name(&file_name) {
                    files.push(format!("{project_name}/{file_name}"));
                }
            }
        }
        files.sort();
        Ok(files)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_follow_the_old_tools_rule() {
        assert_eq!(
            archive_file_name("traefik/whoami:v1.11.0", Compression::Gzip),
            "traefik_whoami_v1.11.0.tar.gz"
        );
        assert_eq!(
            archive_file_name(
                "lscr.io/linuxserver/wireguard:1.0.20250521",
                Compression::Gzip
            ),
            "lscr.io_linuxserver_wireguard_1.0.20250521.tar.gz"
        );
        assert_eq!(
            archive_file_name("traefik-traefik:d-rymcg-tech-20261122", Compression::Zstd),
            "traefik-traefik_d-rymcg-tech-20261122.tar.zst"
        );
        assert_eq!(
            archive_file_name("busybox@sha256:ab+c d", Compression::None),
            "busybox_sha256_ab_c_d.tar"
        );
        assert_eq!(archive_file_name("ünï", Compression::Gzip), "_n_.tar.gz");
    }

    #[test]
    fn compression_names_extensions_and_magic() {
        assert_eq!(
            serde_json::to_string(&Compression::Zstd).unwrap(),
            "\"zstd\""
        );
        assert_eq!(
            serde_json::from_str::<Compression>("\"none\"").unwrap(),
            Compression::None
        );
        assert_eq!(
            Compression::from_file_name("a/b.tar.zst"),
            Some(Compression::Zstd)
        );
        assert_eq!(Compression::from_file_name("b.tar.gz.partial-12"), None);
        assert_eq!(Compression::from_magic(&[0x1f, 0x8b, 8]), Compression::Gzip);
        assert_eq!(
            Compression::from_magic(&[0x28, 0xb5, 0x2f, 0xfd]),
            Compression::Zstd
        );
        assert_eq!(Compression::from_magic(b"manifest.json"), Compression::None);
    }

    #[test]
    fn paths_are_built_from_base_arch_project_and_file() {
        let layout = ArchiveLayout::new("/srv/images");
        let arch = layout.arch_dir("x86_64");
        assert_eq!(arch.arch(), "x86_64");
        assert_eq!(
            arch.manifest_path(),
            Path::new("/srv/images/x86_64/manifest.json")
        );
        assert_eq!(
            arch.archive_path("whoami", "traefik/whoami:v1.11.0", Compression::Gzip),
            Path::new("/srv/images/x86_64/whoami/traefik_whoami_v1.11.0.tar.gz")
        );
        assert_eq!(
            ArchDir::relative_file("whoami", "traefik/whoami:v1.11.0", Compression::Gzip),
            "whoami/traefik_whoami_v1.11.0.tar.gz"
        );
        assert_eq!(
            arch.resolve("../../etc/./passwd"),
            Path::new("/srv/images/x86_64/etc/passwd")
        );
    }
}

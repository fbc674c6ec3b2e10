//! Where archive files live and what they are called.
//!
//! The layout is the one existing archives of this kind already use, so old
//! archive directories keep working: `<base>/<arch>/<project>/<file>` plus one
//! `<base>/<arch>/manifest.json` per architecture. File names come from the
//! image reference by a one-to-one escaping rule, the image ID, and an
//! extension that names the compression; the manifest records each name.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// File name of the per-architecture manifest.
pub const MANIFEST_FILE_NAME: &str = "manifest.json";

/// How an archive file is compressed.
/// (Its command-line spelling is in `cli::value_enums`.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// gzip. Written as independent 1 MiB members (gzp's Mgzip, libdeflate), one
    /// standard gzip file: `gzip -t`, `gunzip`, Python's `gzip` and every `docker
    /// load` read it whole. Single-member files (older bunker, the old scripts) read too.
    #[default]
    Gzip,
    /// Zstandard (smaller and faster; Docker Engine 20.10 cannot load it directly,
    /// so image-restore decompresses it on the workstation for such an engine).
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
    /// gzip 5 with the writer's libdeflate members: on a 459 MB `docker save` tar of
    /// /usr/lib files (2 threads, `cargo run --example gzip_levels`) level 5 wrote
    /// 161.6 MB in 5.0 CPU-s, GNU `gzip -6` 161.3 MB in 19.9 CPU-s; level 4 164.7 MB
    /// in 4.1 CPU-s, level 3 165.7 MB in 4.2, level 6 160.4 MB in 6.5. The zlib-rs
    /// single-member writer before it took 7.3 CPU-s for 167.6 MB at level 5. Level
    /// 5 is the smallest level clearly cheaper than 6, as small as `gzip -6`.
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

/// The file name of an image's archive, a one-to-one function of the image
/// reference: letters, digits, `.`, `-` and `@` stay, `/` becomes `_`, `:`
/// becomes `+`, and every other byte (`_`, `+` and `%` included) becomes `%XX`
/// (its hex value); then the compression's extension. No two references share
/// a name (`acc/col/x:1` → `acc_col_x+1`, `acc/col_x:1` → `acc_col%5Fx+1`).
///
/// `traefik/whoami:v1.11.0` → `traefik_whoami+v1.11.0.tar.gz`. Files the old
/// tool named (`traefik_whoami_v1.11.0.tar.gz`) are found through the
/// manifest's `file` field, which records each file's name as it is.
pub fn archive_file_name(image: &str, compression: Compression) -> String {
    let mut name = escape_reference(image);
    name.push_str(compression.extension());
    name
}

fn escape_reference(image: &str) -> String {
    let mut name = String::with_capacity(image.len());
    for byte in image.bytes() {
        match byte {
            b'/' => name.push('_'),
            b':' => name.push('+'),
            byte if byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'-' | b'@') => {
                name.push(char::from(byte))
            }
            byte => name.push_str(&format!("%{byte:02X}")),
        }
    }
    name
}

/// The name a new archive of `image` (engine image ID `image_id`) is written
/// under: [`archive_file_name`] with `~<first 12 hex digits of the ID>` before
/// the extension, or `~<id>~2` when `in_use` (the file the manifest lists for
/// this image now) already has the first name. A new archive therefore never
/// overwrites the file the manifest describes; the manifest switches to it in
/// one atomic save, and only then is the old file removed.
pub fn versioned_file_name(
    image: &str,
    image_id: &str,
    compression: Compression,
    in_use: Option<&str>,
) -> String {
    let hex = image_id.strip_prefix("sha256:").unwrap_or(image_id);
    let short: String = hex
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(12)
        .collect();
    let stem = format!("{}~{short}", escape_reference(image));
    let first = format!("{stem}{}", compression.extension());
    if in_use == Some(first.as_str()) {
        format!("{stem}~2{}", compression.extension())
    } else {
        first
    }
}

/// The escaped-reference part of a name [`versioned_file_name`] makes
/// (`a_b+1` of `a_b+1~0123456789ab~2.tar.gz`), or `None` for any other name.
pub fn versioned_file_stem(name: &str) -> Option<&str> {
    let compression = Compression::from_file_name(name)?;
    let base = name.strip_suffix(compression.extension())?;
    let (stem, version) = base.split_once('~')?;
    let id = version.strip_suffix("~2").unwrap_or(version);
    (id.len() == 12 && id.bytes().all(|byte| byte.is_ascii_alphanumeric())).then_some(stem)
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

    /// The manifest's `file` value for a new archive of an image of a project
    /// (see [`versioned_file_name`]); `in_use` is the project's current entry's `file`.
    pub fn new_relative_file(
        project: &str,
        image: &str,
        image_id: &str,
        compression: Compression,
        in_use: Option<&str>,
    ) -> String {
        let in_use = in_use.and_then(|file| file.strip_prefix(&format!("{project}/")));
        format!(
            "{project}/{}",
            versioned_file_name(image, image_id, compression, in_use)
        )
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
    fn file_names_are_one_to_one_functions_of_the_reference() {
        for (reference, compression, expected) in [
            (
                "traefik/whoami:v1.11.0",
                Compression::Gzip,
                "traefik_whoami+v1.11.0.tar.gz",
            ),
            ("acc/col/x:1", Compression::Gzip, "acc_col_x+1.tar.gz"),
            ("acc/col_x:1", Compression::Gzip, "acc_col%5Fx+1.tar.gz"),
            (
                "localhost:5000/a:b",
                Compression::Zstd,
                "localhost+5000_a+b.tar.zst",
            ),
            (
                "busybox@sha256:ab+c d%",
                Compression::None,
                "busybox@sha256+ab%2Bc%20d%25.tar",
            ),
            ("ünï", Compression::Gzip, "%C3%BCn%C3%AF.tar.gz"),
        ] {
            assert_eq!(
                archive_file_name(reference, compression),
                expected,
                "{reference} ({compression})"
            );
        }
        // Every pair of distinct references differs in name.
        let references = [
            "a/b:c", "a:b/c", "a_b:c", "a/b_c", "a+b:c", "a%2Bb:c", "a%5Fb:c", "a/b", "a:b", "a_b",
            "a@b", "a.b", "a-b",
        ];
        let names: std::collections::HashSet<_> = references
            .iter()
            .map(|reference| archive_file_name(reference, Compression::Gzip))
            .collect();
        assert_eq!(names.len(), references.len());
    }

    #[test]
    fn versioned_names_carry_the_image_id_and_never_reuse_the_current_file() {
        let id = "sha256:0123456789abcdef0123";
        assert_eq!(
            versioned_file_name("a/b:1", id, Compression::Gzip, None),
            "a_b+1~0123456789ab.tar.gz"
        );
        assert_eq!(
            versioned_file_name("a/b:1", id, Compression::Gzip, Some("a_b+1.tar.gz")),
            "a_b+1~0123456789ab.tar.gz"
        );
        assert_eq!(
            versioned_file_name(
                "a/b:1",
                id,
                Compression::Gzip,
                Some("a_b+1~0123456789ab.tar.gz")
            ),
            "a_b+1~0123456789ab~2.tar.gz"
        );
        assert_eq!(
            ArchDir::new_relative_file(
                "p",
                "a/b:1",
                id,
                Compression::Gzip,
                Some("p/a_b+1~0123456789ab~2.tar.gz")
            ),
            "p/a_b+1~0123456789ab.tar.gz"
        );
        assert_eq!(
            versioned_file_stem("a_b+1~0123456789ab~2.tar.gz"),
            Some("a_b+1")
        );
        assert_eq!(versioned_file_stem("a_b+1~0123456789ab.tar"), Some("a_b+1"));
        assert_eq!(versioned_file_stem("a_b_1.tar.gz"), None);
        assert_eq!(versioned_file_stem("a_b+1~0123.tar.gz"), None);
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
            Path::new("/srv/images/x86_64/whoami/traefik_whoami+v1.11.0.tar.gz")
        );
        assert_eq!(
            ArchDir::relative_file("whoami", "traefik/whoami:v1.11.0", Compression::Gzip),
            "whoami/traefik_whoami+v1.11.0.tar.gz"
        );
        assert_eq!(
            arch.resolve("../../etc/./passwd"),
            Path::new("/srv/images/x86_64/etc/passwd")
        );
    }
}

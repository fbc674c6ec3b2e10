//! `manifest.json`: the per-architecture record of every archived image.
//!
//! One entry per project × image (an image two projects use is listed for
//! both), saved atomically after every image so an interrupted run keeps all
//! finished work. Manifests written by the old tool (no `schema_version`, fewer
//! fields) load fine; a manifest from a newer bunker is refused with a clear
//! error instead of being silently rewritten.

use std::collections::HashSet;
use std::io;
use std::path::Path;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use super::docker_tar::DockerImageInfo;
use super::durable::write_atomic;
use super::layout::{ArchDir, Compression, archive_file_name, versioned_file_stem};
use super::writer::WrittenArchive;
use crate::image::identity::RecordedIdentity;

/// The schema this bunker writes. Manifests without the field are the old
/// tool's (treated as version 0 and upgraded on the next save).
pub const SCHEMA_VERSION: u32 = 1;

/// How the image got onto the engine before it was saved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ArchiveAction {
    /// Pulled from its registry, then saved.
    #[serde(rename = "pull+save")]
    PullSave,
    /// Built from a project's Dockerfile, then saved.
    #[serde(rename = "build+save")]
    BuildSave,
    /// A base image a build needs (FROM), pulled, then saved.
    #[serde(rename = "base+save")]
    BaseSave,
    /// Pulled straight from the registry by `bunker registry pull` (no engine).
    #[serde(rename = "registry-pull")]
    RegistryPull,
}

impl ArchiveAction {
    pub fn name(self) -> &'static str {
        match self {
            ArchiveAction::PullSave => "pull+save",
            ArchiveAction::BuildSave => "build+save",
            ArchiveAction::BaseSave => "base+save",
            ArchiveAction::RegistryPull => "registry-pull",
        }
    }
}

/// One archived image of one project.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestEntry {
    /// Project directory name.
    pub project: String,
    /// The image reference as the project uses it (`traefik/whoami:v1.11.0`).
    pub image: String,
    /// Compose services of the project that use the image.
    #[serde(default)]
    pub services: Vec<String>,
    /// How the image was obtained; absent in entries recreated from files.
    #[serde(default)]
    pub action: Option<ArchiveAction>,
    /// Archive file relative to the arch directory, `/`-separated (`whoami/traefik_whoami_v1.11.0.tar.gz`).
    pub file: String,
    /// Size of the archive file in bytes.
    pub size: u64,
    /// Hex SHA-256 of the archive file as stored (compressed).
    #[serde(default)]
    pub sha256: String,
    /// The engine's image ID (`sha256:…`) at archive time.
    #[serde(default)]
    pub docker_id: Option<String>,
    /// The engine's RepoDigests (`name@sha256:…`) at archive time.
    #[serde(default)]
    pub repo_digests: Vec<String>,
    /// Layer diff IDs (`sha256:…`) from the image config, in order.
    #[serde(default)]
    pub layers: Vec<String>,
    /// What else identifies the image on any image store (absent before bunker recorded it).
    #[serde(flatten)]
    pub identity: ContentIdentity,
    /// Size of the `docker save` tar inside the archive.
    #[serde(default)]
    pub uncompressed_size: Option<u64>,
    /// Hex SHA-256 of the `docker save` tar inside the archive.
    #[serde(default)]
    pub uncompressed_sha256: Option<String>,
    /// How the file is compressed (`gzip` for the old tool's archives).
    #[serde(default)]
    pub compression: Compression,
    /// `os/architecture[/variant]` of the image config.
    #[serde(default)]
    pub platform: Option<String>,
    /// When the file was written (RFC 3339).
    #[serde(default)]
    pub archived_at: Option<String>,
    /// The name the running containers use, when `image` is the name bunker gave the
    /// running image because that name now points to another image (`image-archive
    /// --deployed`); `image-restore` puts this name back on the image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployed_as: Option<String>,
}

/// What identifies an archived image's content whatever image store holds it
/// ([`crate::image::identity`]): the engine's `docker_id` is the config digest on
/// the classic store but a manifest digest on the containerd store.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContentIdentity {
    /// `sha256:…` of the image config: the classic store's image ID.
    #[serde(default)]
    pub config_digest: Option<String>,
    /// Manifest (or index) digests the image had: the containerd store's image ID
    /// when it was saved there, the registry's manifest digest when pulled from one.
    #[serde(default)]
    pub manifest_digests: Vec<String>,
    /// `sha256:…` of the config fields that decide how containers run
    /// ([`ConfigFields`](crate::image::identity::ConfigFields)), comparable with any
    /// engine's inspect output.
    #[serde(default)]
    pub config_fingerprint: Option<String>,
}

impl ContentIdentity {
    /// What a valid docker-save tar says about its image.
    pub fn of_image(image: &DockerImageInfo) -> ContentIdentity {
        ContentIdentity {
            config_digest: Some(image.config_digest.clone()),
            manifest_digests: image.manifest_digests.clone(),
            config_fingerprint: image.config_fingerprint.clone(),
        }
    }
}

impl ManifestEntry {
    /// Everything the entry records about the image's identity.
    pub fn recorded_identity(&self) -> RecordedIdentity {
        RecordedIdentity {
            docker_id: self.docker_id.clone(),
            config_digest: self.identity.config_digest.clone(),
            manifest_digests: self.identity.manifest_digests.clone(),
            diff_ids: self.layers.clone(),
            config_fingerprint: self.identity.config_fingerprint.clone(),
        }
    }

    /// An entry for a freshly written archive; the caller fills in `services`,
    /// `action`, `docker_id` and `repo_digests` from the engine.
    pub fn from_written(
        project: &str,
        image: &str,
        file: &str,
        written: &WrittenArchive,
    ) -> ManifestEntry {
        ManifestEntry {
            project: project.to_string(),
            image: image.to_string(),
            services: Vec::new(),
            action: None,
            file: file.to_string(),
            size: written.size,
            sha256: written.sha256.clone(),
            docker_id: None,
            repo_digests: Vec::new(),
            layers: written.image.diff_ids.clone(),
            identity: ContentIdentity::of_image(&written.image),
            uncompressed_size: Some(written.uncompressed_size),
            uncompressed_sha256: Some(written.uncompressed_sha256.clone()),
            compression: written.compression,
            platform: written.image.platform.clone(),
            archived_at: Some(now_rfc3339()),
            deployed_as: None,
        }
    }

    /// Whether the entry's file exists with the recorded size: the cheap check
    /// that lets a run skip an image whose engine ID has not changed.
    pub fn file_present_with_recorded_size(&self, arch_dir: &ArchDir) -> bool {
        std::fs::metadata(arch_dir.resolve(&self.file))
            .is_ok_and(|metadata| metadata.is_file() && metadata.len() == self.size)
    }
}

/// The manifest of one architecture directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Schema of this file; absent (0) in the old tool's manifests.
    #[serde(default)]
    pub schema_version: u32,
    /// Architecture in `uname -m` form (`x86_64`, `aarch64`).
    #[serde(default)]
    pub arch: String,
    /// Docker context the images came from.
    #[serde(default)]
    pub docker_context: Option<String>,
    /// SSH host of the engine (`user@host:port`), when reached over SSH.
    #[serde(default)]
    pub ssh_host: Option<String>,
    /// Engine version at the last run.
    #[serde(default)]
    pub engine_version: Option<String>,
    /// When the manifest was last written (RFC 3339).
    #[serde(default)]
    pub archived_at: Option<String>,
    /// One entry per project × image.
    #[serde(default)]
    pub images: Vec<ManifestEntry>,
}

impl Manifest {
    /// An empty manifest for an architecture.
    pub fn new(arch: &str) -> Manifest {
        Manifest {
            schema_version: SCHEMA_VERSION,
            arch: arch.to_string(),
            docker_context: None,
            ssh_host: None,
            engine_version: None,
            archived_at: None,
            images: Vec::new(),
        }
    }

    /// Reads a manifest; errors name the file.
    pub fn load(path: &Path) -> anyhow::Result<Manifest> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read archive manifest {}", path.display()))?;
        Manifest::parse(&text)
            .with_context(|| format!("archive manifest {} is not valid", path.display()))
    }

    /// Reads a manifest, or starts an empty one when the file does not exist yet.
    pub fn load_or_new(path: &Path, arch: &str) -> anyhow::Result<Manifest> {
        match std::fs::metadata(path) {
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(Manifest::new(arch)),
            _ => Manifest::load(path),
        }
    }

    /// Parses manifest text, refusing schema versions newer than this bunker's.
    pub fn parse(text: &str) -> anyhow::Result<Manifest> {
        let value: serde_json::Value = serde_json::from_str(text)?;
        let version = value
            .get("schema_version")
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0);
        if version > u64::from(SCHEMA_VERSION) {
            anyhow::bail!(
                "it has schema_version {version}, but this bunker understands up to {SCHEMA_VERSION}; \
                 use a newer bunker to work with this archive"
            );
        }
        Ok(serde_json::from_value(value)?)
    }

    /// Writes the manifest atomically: a temporary file in the same directory,
    /// fsynced, renamed over manifest.json, then the directory fsynced.
    pub fn save_atomic(&self, path: &Path) -> anyhow::Result<()> {
        let mut sorted = self.clone();
        sorted.schema_version = SCHEMA_VERSION;
        sorted.images.sort_by(|left, right| {
            (&left.project, &left.image).cmp(&(&right.project, &right.image))
        });
        let mut text = serde_json::to_string_pretty(&sorted)?;
        text.push('\n');
        write_atomic(path, text.as_bytes())
            .with_context(|| format!("cannot write archive manifest {}", path.display()))
    }

    /// The entry of an image of a project.
    pub fn find(&self, project: &str, image: &str) -> Option<&ManifestEntry> {
        self.images
            .iter()
            .find(|entry| entry.project == project && entry.image == image)
    }

    /// The entry that lets a run skip (project, image): recorded with the same
    /// engine image ID, and its file present with the recorded size. (`--verify`
    /// additionally re-hashes the file with [`verify_entry`](super::verify::verify_entry).)
    pub fn reusable_entry(
        &self,
        arch_dir: &ArchDir,
        project: &str,
        image: &str,
        docker_id: &str,
    ) -> Option<&ManifestEntry> {
        self.find(project, image).filter(|entry| {
            entry.docker_id.as_deref() == Some(docker_id)
                && entry.file_present_with_recorded_size(arch_dir)
        })
    }

    /// Entries of one project.
    pub fn project_entries<'a>(
        &'a self,
        project: &'a str,
    ) -> impl Iterator<Item = &'a ManifestEntry> + 'a {
        self.images
            .iter()
            .filter(move |entry| entry.project == project)
    }

    /// Adds or replaces the entry for (project, image); returns the replaced one.
    /// Duplicates of the same key (possible in the old tool's rebuilt manifests) go too.
    pub fn upsert(&mut self, entry: ManifestEntry) -> Option<ManifestEntry> {
        let mut replaced = None;
        let mut index = 0;
        while index < self.images.len() {
            let existing = &self.images[index];
            if existing.project == entry.project && existing.image == entry.image {
                let removed = self.images.remove(index);
                replaced.get_or_insert(removed);
            } else {
                index += 1;
            }
        }
        self.images.push(entry);
        replaced
    }

    /// A copy of the manifest with `entry` upserted and `archived_at` set, and
    /// the file the replaced entry listed when no entry lists it any more (to
    /// be removed once the copy is saved). The manifest itself is unchanged, so
    /// a failed save leaves nothing of the entry behind in memory either.
    pub fn with_entry(&self, entry: ManifestEntry) -> (Manifest, Option<String>) {
        let mut next = self.clone();
        let new_file = entry.file.clone();
        let replaced = next.upsert(entry);
        next.archived_at = Some(now_rfc3339());
        let unlisted = replaced.map(|previous| previous.file).filter(|file| {
            *file != new_file && !next.images.iter().any(|other| other.file == *file)
        });
        (next, unlisted)
    }

    /// Archive files under `arch_dir` that an older run wrote for an image the
    /// manifest lists, under a versioned name ([`versioned_file_stem`]) the
    /// manifest no longer (or not yet) names: what a crash between writing a
    /// file and switching the entry, or between the switch and removing the old
    /// file, leaves behind. Files with other names are never included.
    pub fn superseded_files(&self, arch_dir: &ArchDir) -> io::Result<Vec<String>> {
        let listed: HashSet<&str> = self
            .images
            .iter()
            .map(|entry| entry.file.as_str())
            .collect();
        let mut superseded = Vec::new();
        for file in arch_dir.archive_files()? {
            if listed.contains(file.as_str()) {
                continue;
            }
            let Some((project, name)) = file.split_once('/') else {
                continue;
            };
            let Some(stem) = versioned_file_stem(name) else {
                continue;
            };
            if self.project_entries(project).any(|entry| {
                archive_file_name(&entry.image, entry.compression)
                    .strip_suffix(entry.compression.extension())
                    == Some(stem)
            }) {
                superseded.push(file);
            }
        }
        Ok(superseded)
    }

    /// Removes the entry for (project, image).
    pub fn remove(&mut self, project: &str, image: &str) -> Option<ManifestEntry> {
        let index = self
            .images
            .iter()
            .position(|entry| entry.project == project && entry.image == image)?;
        Some(self.images.remove(index))
    }
}

/// The current time in RFC 3339 (UTC, seconds), as manifests record it.
pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OLD_TOOL_MANIFEST: &str = r#"{
      "archived_at": "2026-11-22T10:37:01.226377+00:00",
      "arch": "x86_64",
      "docker_context": "fakehost",
      "ssh_host": "fakehost",
      "output_dir": "/abs/path/_archive/images/x86_64",
      "images": [
        { "project": "whoami", "image": "traefik/whoami:v1.11.0", "action": "pull+save",
          "file": "whoami/traefik_whoami_v1.11.0.tar.gz", "size": 2494,
          "sha256": "1713c75b", "docker_id": null, "services": ["whoami"],
          "archived_at": "2026-11-22T10:36:59.650816+00:00" },
        { "project": "nginx", "image": "postgres:16", "file": "nginx/postgres_16.tar.gz",
          "size": 10, "sha256": "ab", "docker_id": "sha256:aec1", "archived_at": "2026-11-22T10:36:59" }
      ]
    }"#;

    fn entry(project: &str, image: &str) -> ManifestEntry {
        ManifestEntry {
            project: project.into(),
            image: image.into(),
            services: vec![],
            action: Some(ArchiveAction::PullSave),
            file: format!("{project}/x.tar.gz"),
            size: 1,
            sha256: "00".into(),
            docker_id: None,
            repo_digests: vec![],
            layers: vec![],
            identity: ContentIdentity::default(),
            uncompressed_size: None,
            uncompressed_sha256: None,
            compression: Compression::Gzip,
            platform: None,
            archived_at: None,
            deployed_as: None,
        }
    }

    #[test]
    fn old_tool_manifests_load_with_defaults() {
        let manifest = Manifest::parse(OLD_TOOL_MANIFEST).unwrap();
        assert_eq!(manifest.schema_version, 0);
        assert_eq!(manifest.arch, "x86_64");
        assert_eq!(manifest.images.len(), 2);
        let whoami = manifest.find("whoami", "traefik/whoami:v1.11.0").unwrap();
        assert_eq!(whoami.action, Some(ArchiveAction::PullSave));
        assert_eq!(whoami.compression, Compression::Gzip);
        assert_eq!(whoami.docker_id, None);
        assert_eq!(manifest.find("nginx", "postgres:16").unwrap().action, None);
    }

    #[test]
    fn newer_schema_is_refused_with_the_file_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("manifest.json");
        std::fs::write(
            &path,
            r#"{"schema_version": 9, "arch": "x86_64", "images": []}"#,
        )
        .unwrap();
        let message = format!("{:#}", Manifest::load(&path).unwrap_err());
        assert!(message.contains(&path.display().to_string()), "{message}");
        assert!(message.contains("schema_version 9"), "{message}");
    }

    #[test]
    fn upsert_is_keyed_by_project_and_image() {
        let mut manifest = Manifest::new("x86_64");
        assert!(manifest.upsert(entry("nginx", "postgres:16")).is_none());
        assert!(manifest.upsert(entry("nextcloud", "postgres:16")).is_none());
        let mut newer = entry("nginx", "postgres:16");
        newer.size = 2;
        assert_eq!(manifest.upsert(newer).unwrap().size, 1);
        assert_eq!(manifest.images.len(), 2);
        assert_eq!(manifest.find("nginx", "postgres:16").unwrap().size, 2);
        assert_eq!(manifest.project_entries("nextcloud").count(), 1);
        assert!(manifest.remove("nextcloud", "postgres:16").is_some());
        assert!(manifest.find("nextcloud", "postgres:16").is_none());
    }

    #[test]
    fn an_entry_is_reusable_only_with_the_same_image_id_and_file_size() {
        let dir = tempfile::tempdir().unwrap();
        let arch = ArchDir::new(dir.path());
        let mut manifest = Manifest::new("x86_64");
        let mut recorded = entry("nginx", "postgres:16");
        recorded.docker_id = Some("sha256:aa".into());
        recorded.size = 3;
        manifest.upsert(recorded);
        assert!(
            manifest
                .reusable_entry(&arch, "nginx", "postgres:16", "sha256:aa")
                .is_none()
        );
        std::fs::create_dir(dir.path().join("nginx")).unwrap();
        std::fs::write(dir.path().join("nginx/x.tar.gz"), b"abc").unwrap();
        assert!(
            manifest
                .reusable_entry(&arch, "nginx", "postgres:16", "sha256:aa")
                .is_some()
        );
        assert!(
            manifest
                .reusable_entry(&arch, "nginx", "postgres:16", "sha256:bb")
                .is_none()
        );
        assert!(
            manifest
                .reusable_entry(&arch, "other", "postgres:16", "sha256:aa")
                .is_none()
        );
        std::fs::write(dir.path().join("nginx/x.tar.gz"), b"abcd").unwrap();
        assert!(
            manifest
                .reusable_entry(&arch, "nginx", "postgres:16", "sha256:aa")
                .is_none()
        );
    }

    #[test]
    fn a_failed_save_leaves_the_old_manifest_intact() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("manifest.json");
        let mut manifest = Manifest::new("x86_64");
        manifest.upsert(entry("alpha", "busybox:1"));
        manifest.save_atomic(&path).unwrap();
        let before = std::fs::read(&path).unwrap();
        // An immutable directory refuses the temporary file (even to root).
        let chattr = |flag: &str| {
            let status = std::process::Command::new("chattr")
                .arg(flag)
                .arg(dir.path())
                .status()
                .expect("chattr (e2fsprogs) must be installed for this test");
            assert!(status.success(), "chattr {flag} {}", dir.path().display());
        };
        chattr("+i");
        let (next, unlisted) = manifest.with_entry(entry("beta", "busybox:1"));
        let result = next.save_atomic(&path);
        chattr("-i");
        let message = format!("{:#}", result.unwrap_err());
        assert!(
            message.contains(&format!("cannot write archive manifest {}", path.display())),
            "{message}"
        );
        assert_eq!(std::fs::read(&path).unwrap(), before);
        assert_eq!(unlisted, None);
        assert!(manifest.find("beta", "busybox:1").is_none());
    }

    #[test]
    fn with_entry_leaves_the_manifest_alone_and_names_the_file_it_unlists() {
        let mut manifest = Manifest::new("x86_64");
        manifest.upsert(entry("alpha", "busybox:1"));
        let mut newer = entry("alpha", "busybox:1");
        newer.file = "alpha/y.tar.gz".into();
        let (next, unlisted) = manifest.with_entry(newer);
        assert_eq!(
            manifest.find("alpha", "busybox:1").unwrap().file,
            "alpha/x.tar.gz"
        );
        assert_eq!(
            next.find("alpha", "busybox:1").unwrap().file,
            "alpha/y.tar.gz"
        );
        assert_eq!(unlisted.as_deref(), Some("alpha/x.tar.gz"));
        // A file another entry still lists is not unlisted.
        let mut shared = manifest.clone();
        let mut other = entry("alpha", "busybox:2");
        other.file = "alpha/x.tar.gz".into();
        shared.upsert(other);
        let mut newer = entry("alpha", "busybox:1");
        newer.file = "alpha/y.tar.gz".into();
        assert_eq!(shared.with_entry(newer).1, None);
    }

    #[test]
    fn superseded_files_are_older_versions_of_listed_images_only() {
        let dir = tempfile::tempdir().unwrap();
        let arch = ArchDir::new(dir.path());
        std::fs::create_dir(dir.path().join("p")).unwrap();
        let mut manifest = Manifest::new("x86_64");
        let mut listed = entry("p", "a/b:1");
        listed.file = "p/a_b+1~0123456789ab.tar.gz".into();
        manifest.upsert(listed);
        for name in [
            "a_b+1~0123456789ab.tar.gz",
            "a_b+1~ffffffffffff.tar.gz",
            "a_b+1~0123456789ab~2.tar.gz",
            "a_b_1.tar.gz",
            "c+1~0123456789ab.tar.gz",
        ] {
            std::fs::write(dir.path().join("p").join(name), b"x").unwrap();
        }
        assert_eq!(
            manifest.superseded_files(&arch).unwrap(),
            [
                "p/a_b+1~0123456789ab~2.tar.gz",
                "p/a_b+1~ffffffffffff.tar.gz"
            ]
        );
    }

    #[test]
    fn save_round_trips_sorted_with_the_current_schema() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("manifest.json");
        let mut manifest = Manifest::parse(OLD_TOOL_MANIFEST).unwrap();
        manifest.upsert(entry("alpha", "busybox:1"));
        manifest.save_atomic(&path).unwrap();
        let loaded = Manifest::load(&path).unwrap();
        assert_eq!(loaded.schema_version, SCHEMA_VERSION);
        let projects: Vec<_> = loaded
            .images
            .iter()
            .map(|entry| entry.project.as_str())
            .collect();
        assert_eq!(projects, ["alpha", "nginx", "whoami"]);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("\"action\": \"pull+save\""), "{text}");
    }
}

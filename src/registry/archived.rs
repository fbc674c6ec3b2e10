//! Images read back from an archive, ready for a registry: manifest bytes plus
//! every blob in the content-addressed cache.
//!
//! Two sources: an OCI image layout (`index.json` at the archive root, written
//! by `registry pull --format oci`), whose manifests are pushed byte for byte so
//! digests survive; and docker-save archives (`.tar`, `.tar.gz`, `.tar.zst`),
//! whose uncompressed layers are gzip-compressed into the cache once (a layer
//! already compressed for an earlier push is found by its diff ID and reused)
//! and described by a new Docker v2 schema 2 manifest. An archive directory
//! holds either or both: its OCI layout at the root, and the docker-save
//! archives `image-archive` and `registry pull` write, listed by each
//! architecture directory's `manifest.json`.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use bytes::Bytes;
use serde::Deserialize;
use sha2::{Digest as _, Sha256};

use super::blob_cache::{BlobCache, Digest, sha256_digest};
use super::manifest::{
    DOCKER_CONFIG, DOCKER_LAYER_GZIP, DOCKER_MANIFEST, Descriptor, FetchedManifest, ManifestKind,
};
use super::oci_layout::{CONTAINERD_NAME, REF_NAME};
use super::reference::ImageReference;

/// An image that can be pushed or exported: a top manifest (image or index),
/// the child manifests of an index, and every blob in the cache.
#[derive(Debug, Clone)]
pub struct ArchivedImage {
    /// Where it came from (file or layout entry), for messages.
    pub origin: String,
    /// The repository and tag it was archived as.
    pub source: ImageReference,
    pub manifest: FetchedManifest,
    /// Child manifests of an index, in index order.
    pub children: Vec<FetchedManifest>,
}

impl ArchivedImage {
    /// Every blob (configs and layers) of all image manifests.
    pub fn blobs(&self) -> Vec<Descriptor> {
        let mut blobs = Vec::new();
        for manifest in std::iter::once(&self.manifest).chain(self.children.iter()) {
            if let ManifestKind::Image(image) = &manifest.kind {
                blobs.push(image.config.clone());
                blobs.extend(image.layers.iter().cloned());
            }
        }
        let mut seen = std::collections::HashSet::new();
        blobs.retain(|blob| seen.insert(blob.digest.clone()));
        blobs
    }
}

/// Reads the images named by push/export sources: docker-save archive files,
/// OCI layouts (a directory with `index.json`), architecture directories (with
/// the archive's `manifest.json`) or an archive base directory. Without
/// sources: the archive directory's OCI layout if it has one, else every
/// image its manifest.json files list.
pub fn load_archived_images(
    sources: &[PathBuf],
    archive_dir: &Path,
) -> anyhow::Result<Vec<ArchivedImage>> {
    let cache = BlobCache::new(archive_dir);
    let default_source = [archive_dir.to_path_buf()];
    let sources = if sources.is_empty() {
        &default_source[..]
    } else {
        sources
    };
    let mut images = Vec::new();
    for source in sources {
        if source.is_file() {
            images.extend(read_docker_archive(source, &cache)?);
        } else if source.join("index.json").is_file() {
            images.extend(read_oci_layout(source)?);
        } else if source.is_dir() {
            let found = read_archive_manifests(source, &cache, &|_| true)?;
            if found.is_empty() {
                bail!(
                    "{} holds no archived images (no index.json and no manifest.json entries)",
                    source.display()
                );
            }
            images.extend(found);
        } else {
            bail!("{} does not exist", source.display());
        }
    }
    Ok(images)
}

/// The images of the docker-save archives listed by the `manifest.json` of an
/// architecture directory, or of every architecture directory of an archive
/// base directory; only the entries `wanted` accepts are read (reading one
/// decompresses it).
pub fn read_archive_manifests(
    source: &Path,
    cache: &BlobCache,
    wanted: &dyn Fn(&crate::archive::ManifestEntry) -> bool,
) -> anyhow::Result<Vec<ArchivedImage>> {
    let mut images = Vec::new();
    for (file, entry) in archive_manifest_entries(source)? {
        if wanted(&entry) {
            images.extend(read_docker_archive(&file, cache)?);
        }
    }
    Ok(images)
}

/// Every entry of the `manifest.json` of an architecture directory, or of
/// every architecture directory of an archive base directory, with the path
/// of its archive file. A missing directory holds none.
pub fn archive_manifest_entries(
    source: &Path,
) -> anyhow::Result<Vec<(PathBuf, crate::archive::ManifestEntry)>> {
    let arch_dirs = if source
        .join(crate::archive::layout::MANIFEST_FILE_NAME)
        .is_file()
    {
        vec![crate::archive::ArchDir::new(source)]
    } else if source.is_dir() {
        crate::archive::ArchiveLayout::new(source)
            .existing_arch_dirs()
            .with_context(|| format!("cannot read {}", source.display()))?
    } else {
        Vec::new()
    };
    let mut entries = Vec::new();
    for arch_dir in arch_dirs {
        if !arch_dir.manifest_path().is_file() {
            continue;
        }
        let manifest = crate::archive::Manifest::load(&arch_dir.manifest_path())?;
        for entry in manifest.images {
            entries.push((arch_dir.resolve(&entry.file), entry));
        }
    }
    Ok(entries)
}

/// Reads every image listed in the OCI layout at `dir` (blobs must be in
/// `dir/blobs/sha256`, which is the cache of the same archive directory).
pub fn read_oci_layout(dir: &Path) -> anyhow::Result<Vec<ArchivedImage>> {
    let index_path = dir.join("index.json");
    let bytes = std::fs::read(&index_path).with_context(|| {
        format!(
            "cannot read {}; pull with `--format oci` first or name docker archives",
            index_path.display()
        )
    })?;
    let index: serde_json::Value = serde_json::from_slice(&bytes)
        .with_context(|| format!("{} is not valid JSON", index_path.display()))?;
    let cache = BlobCache::new(dir);
    let mut images = Vec::new();
    for entry in index
        .get("manifests")
        .and_then(|m| m.as_array())
        .cloned()
        .unwrap_or_default()
    {
        let descriptor: Descriptor = serde_json::from_value(entry)
            .with_context(|| format!("{}: malformed entry", index_path.display()))?;
        let annotation = |key: &str| {
            descriptor
                .annotations
                .as_ref()
                .and_then(|a| a.get(key))
                .and_then(|v| v.as_str())
                .map(str::to_string)
        };
        let name = annotation(CONTAINERD_NAME)
            .or_else(|| annotation(REF_NAME))
            .with_context(|| {
                format!(
                    "{}: entry {} has no image name annotation",
                    index_path.display(),
                    descriptor.digest
                )
            })?;
        let source = ImageReference::parse_input(&name)
            .with_context(|| format!("{}: entry {}", index_path.display(), descriptor.digest))?;
        let manifest = read_cached_manifest(&cache, &descriptor.digest)?;
        let mut children = Vec::new();
        if let ManifestKind::Index(index) = &manifest.kind {
            for child in &index.manifests {
                children.push(read_cached_manifest(&cache, &child.digest)?);
            }
        }
        images.push(ArchivedImage {
            origin: format!("{}#{}", index_path.display(), name),
            source,
            manifest,
            children,
        });
    }
    Ok(images)
}

fn read_cached_manifest(cache: &BlobCache, digest: &str) -> anyhow::Result<FetchedManifest> {
    let digest = Digest::parse(digest)?;
    let path = cache.path(&digest);
    let bytes = std::fs::read(&path).with_context(|| {
        format!(
            "manifest {digest} is missing from {}: the archive is incomplete",
            path.display()
        )
    })?;
    let manifest = FetchedManifest::parse(Bytes::from(bytes), None)?;
    if manifest.digest != digest {
        bail!(
            "{} is corrupt: it hashes to {}",
            path.display(),
            manifest.digest
        );
    }
    Ok(manifest)
}

#[derive(Debug, Deserialize)]
struct SaveManifestEntry {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags", default)]
    repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers")]
    layers: Vec<String>,
}

/// Where a tar member's content went.
#[derive(Debug, Clone)]
enum Member {
    Small(Vec<u8>),
    /// Uncompressed layer: its diff ID and the gzip blob in the cache.
    Layer {
        diff_id: Digest,
        compressed: Digest,
        size: u64,
    },
}

/// Reads a docker-save archive (plain, gzip or zstd) and turns it into
/// pushable images, one per `RepoTags` entry (images without tags are skipped
/// with an error naming the file).
pub fn read_docker_archive(path: &Path, cache: &BlobCache) -> anyhow::Result<Vec<ArchivedImage>> {
    let file = std::fs::File::open(path)
        .with_context(|| format!("cannot open the archive {}", path.display()))?;
    let mut magic = [0u8; 4];
    let read = (&file).read(&mut magic)?;
    let file = std::fs::File::open(path)?;
    let reader = std::io::BufReader::with_capacity(1 << 20, file);
    let reader: Box<dyn Read> = if read >= 2 && magic[..2] == [0x1f, 0x8b] {
        Box::new(flate2::read::MultiGzDecoder::new(reader))
    } else if read == 4 && magic == [0x28, 0xb5, 0x2f, 0xfd] {
        Box::new(
            zstd::stream::read::Decoder::with_buffer(reader)
                .with_context(|| format!("{}: cannot start zstd decoding", path.display()))?,
        )
    } else {
        Box::new(reader)
    };
    let mut archive = tar::Archive::new(reader);
    let mut members: HashMap<String, Member> = HashMap::new();
    let mut links: HashMap<String, String> = HashMap::new();
    for entry in archive
        .entries()
        .with_context(|| format!("{} is not a tar archive", path.display()))?
    {
        let mut entry = entry.with_context(|| format!("{}: corrupt tar", path.display()))?;
        let name = normalise(&entry.path()?.to_string_lossy());
        let kind = entry.header().entry_type();
        if kind.is_symlink() || kind.is_hard_link() {
            if let Some(target) = entry.link_name()? {
                let target = target.to_string_lossy().to_string();
                let resolved = if kind.is_symlink() {
                    resolve_relative(&name, &target)
                } else {
                    normalise(&target)
                };
                links.insert(name, resolved);
            }
            continue;
        }
        if !kind.is_file() {
            continue;
        }
        let size = entry.size();
        let looks_small = name.ends_with(".json")
            || name == "repositories"
            || name.ends_with("/json")
            || name.ends_with("VERSION");
        if looks_small && size <= 16 << 20 {
            let mut content = Vec::with_capacity(size as usize);
            entry.read_to_end(&mut content)?;
            members.insert(name, Member::Small(content));
            continue;
        }
        // A layer: if its name carries its diff ID and we compressed it before, reuse.
        let base = name.rsplit('/').next().unwrap_or(&name);
        let named_hex = base.strip_suffix(".tar").unwrap_or(base);
        if named_hex.len() == 64
            && let Ok(named_diff_id) = Digest::parse(&format!("sha256:{named_hex}"))
            && let Some(memo) = cache.compressed_for(&named_diff_id)
        {
            std::io::copy(&mut entry, &mut std::io::sink())?;
            members.insert(
                name,
                Member::Layer {
                    diff_id: named_diff_id,
                    compressed: memo.0,
                    size: memo.1,
                },
            );
            continue;
        }
        let (diff_id, compressed, compressed_size) = compress_into_cache(&mut entry, cache)
            .with_context(|| format!("{}: cannot compress layer {name}", path.display()))?;
        cache.remember_compressed(&diff_id, &compressed, compressed_size)?;
        members.insert(
            name,
            Member::Layer {
                diff_id,
                compressed,
                size: compressed_size,
            },
        );
    }
    let lookup = |name: &str| -> Option<&Member> {
        let mut current = normalise(name);
        for _ in 0..16 {
            if let Some(member) = members.get(&current) {
                return Some(member);
            }
            current = links.get(&current)?.clone();
        }
        None
    };
    let Some(Member::Small(manifest_bytes)) = lookup("manifest.json") else {
        bail!(
            "{} has no manifest.json: it is not a docker-save archive",
            path.display()
        );
    };
    let entries: Vec<SaveManifestEntry> = serde_json::from_slice(manifest_bytes)
        .with_context(|| format!("{}: malformed manifest.json", path.display()))?;
    let mut images = Vec::new();
    for entry in entries {
        let Some(Member::Small(config_bytes)) = lookup(&entry.config) else {
            bail!("{}: config {} is missing", path.display(), entry.config);
        };
        let config_digest = sha256_digest(config_bytes);
        cache.put_blocking(&config_digest, config_bytes)?;
        let config: serde_json::Value = serde_json::from_slice(config_bytes)
            .with_context(|| format!("{}: config {} is not JSON", path.display(), entry.config))?;
        let diff_ids: Vec<String> = config
            .pointer("/rootfs/diff_ids")
            .and_then(|v| v.as_array())
            .map(|ids| {
                ids.iter()
                    .filter_map(|id| id.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        if diff_ids.len() != entry.layers.len() {
            bail!(
                "{}: manifest.json lists {} layers but the config has {} diff IDs",
                path.display(),
                entry.layers.len(),
                diff_ids.len()
            );
        }
        let mut layers = Vec::new();
        for (layer_name, expected) in entry.layers.iter().zip(&diff_ids) {
            let Some(Member::Layer {
                diff_id,
                compressed,
                size,
            }) = lookup(layer_name)
            else {
                bail!("{}: layer {layer_name} is missing", path.display());
            };
            if diff_id.as_str() != expected {
                bail!(
                    "{}: layer {layer_name} hashes to {diff_id} but the config expects {expected}: the archive is corrupt",
                    path.display()
                );
            }
            layers.push(Descriptor {
                media_type: DOCKER_LAYER_GZIP.to_string(),
                digest: compressed.to_string(),
                size: *size,
                platform: None,
                urls: None,
                annotations: None,
            });
        }
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": DOCKER_MANIFEST,
            "config": {
                "mediaType": DOCKER_CONFIG,
                "digest": config_digest.to_string(),
                "size": config_bytes.len(),
            },
            "layers": layers,
        });
        let manifest_bytes = Bytes::from(serde_json::to_vec(&manifest)?);
        let manifest = FetchedManifest::parse(manifest_bytes, Some(DOCKER_MANIFEST))?;
        cache.put_blocking(&manifest.digest, &manifest.bytes)?;
        let tags = entry.repo_tags.unwrap_or_default();
        if tags.is_empty() {
            bail!(
                "{}: an image without RepoTags cannot be pushed (no name to give it)",
                path.display()
            );
        }
        for tag in tags {
            let source = ImageReference::parse_input(&tag)
                .with_context(|| format!("{}: RepoTags entry {tag:?}", path.display()))?;
            images.push(ArchivedImage {
                origin: path.display().to_string(),
                source,
                manifest: manifest.clone(),
                children: Vec::new(),
            });
        }
    }
    Ok(images)
}

/// Gzips a layer into the cache; returns (diff ID, compressed digest, compressed size).
fn compress_into_cache(
    reader: &mut dyn Read,
    cache: &BlobCache,
) -> anyhow::Result<(Digest, Digest, u64)> {
    let root = cache.blobs_dir().join("sha256");
    std::fs::create_dir_all(&root)?;
    let temporary = tempfile::NamedTempFile::new_in(&root)?;
    let mut diff_hasher = Sha256::new();
    let writer = HashCount {
        inner: std::io::BufWriter::with_capacity(1 << 20, temporary.as_file().try_clone()?),
        hasher: Sha256::new(),
        count: 0,
    };
    let mut encoder = flate2::write::GzEncoder::new(writer, flate2::Compression::new(3));
    let mut buffer = vec![0u8; 256 * 1024];
    loop {
        let read = reader.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        diff_hasher.update(&buffer[..read]);
        encoder.write_all(&buffer[..read])?;
    }
    let mut writer = encoder.finish()?;
    writer.inner.flush()?;
    let compressed = Digest::from_hasher(writer.hasher);
    let size = writer.count;
    drop(writer.inner);

    let destination = cache.path(&compressed);
    if !destination.exists() {
        temporary
            .persist(&destination)
            .map_err(|error| error.error)
            .with_context(|| format!("cannot store {}", destination.display()))?;
    }
    Ok((Digest::from_hasher(diff_hasher), compressed, size))
}

struct HashCount<W> {
    inner: W,
    hasher: Sha256,
    count: u64,
}

impl<W: Write> Write for HashCount<W> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let written = self.inner.write(bytes)?;
        self.hasher.update(&bytes[..written]);
        self.count += written as u64;
        Ok(written)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

fn normalise(name: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in name.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    parts.join("/")
}

fn resolve_relative(link: &str, target: &str) -> String {
    if target.starts_with('/') {
        return normalise(target);
    }
    let directory = link.rsplit_once('/').map(|(dir, _)| dir).unwrap_or("");
    normalise(&format!("{directory}/{target}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symlink_targets_resolve_inside_the_tar() {
        assert_eq!(resolve_relative("abc/layer.tar", "../def.tar"), "def.tar");
        assert_eq!(resolve_relative("blobs/sha256/x", "y"), "blobs/sha256/y");
        assert_eq!(normalise("./manifest.json"), "manifest.json");
    }

    #[test]
    fn docker_archive_round_trip_into_cache() {
        let dir = tempfile::tempdir().unwrap();
        let layer = {
            let mut builder = tar::Builder::new(Vec::new());
            let mut header = tar::Header::new_ustar();
            header.set_size(5);
            header.set_mode(0o644);
            header.set_cksum();
            builder
                .append_data(&mut header, "hello.txt", &b"hello"[..])
                .unwrap();
            builder.into_inner().unwrap()
        };
        let diff_id = sha256_digest(&layer);
        let config = serde_json::to_vec(&serde_json::json!({
            "architecture": "amd64", "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [diff_id.to_string()]}
        }))
        .unwrap();
        let manifest = serde_json::to_vec(&serde_json::json!([{
            "Config": "config.json", "RepoTags": ["example/app:1"],
            "Layers": [format!("{}/layer.tar", "abc")]
        }]))
        .unwrap();
        let mut builder = tar::Builder::new(Vec::new());
        for (name, data) in [
            ("config.json", &config[..]),
            (&format!("{}.tar", diff_id.hex())[..], &layer[..]),
            ("manifest.json", &manifest[..]),
        ] {
            let mut header = tar::Header::new_ustar();
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            builder.append_data(&mut header, name, data).unwrap();
        }
        let mut header = tar::Header::new_ustar();
        header.set_entry_type(tar::EntryType::Symlink);
        header.set_size(0);
        builder
            .append_link(
                &mut header,
                "abc/layer.tar",
                format!("../{}.tar", diff_id.hex()),
            )
            .unwrap();
        let tar_path = dir.path().join("app.tar");
        std::fs::write(&tar_path, builder.into_inner().unwrap()).unwrap();

        let cache = BlobCache::new(dir.path());
        let images = read_docker_archive(&tar_path, &cache).unwrap();
        assert_eq!(images.len(), 1);
        assert_eq!(images[0].source.to_string(), "docker.io/example/app:1");
        for blob in images[0].blobs() {
            assert!(
                cache.contains(&Digest::parse(&blob.digest).unwrap()),
                "{}",
                blob.digest
            );
        }
        // Read again: the memo avoids recompressing and yields the same manifest.
        let again = read_docker_archive(&tar_path, &cache).unwrap();
        assert_eq!(again[0].manifest.digest, images[0].manifest.digest);
    }

    #[test]
    fn missing_manifest_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let tar_path = dir.path().join("empty.tar");
        let builder = tar::Builder::new(Vec::new());
        std::fs::write(&tar_path, builder.into_inner().unwrap()).unwrap();
        let error = read_docker_archive(&tar_path, &BlobCache::new(dir.path()))
            .unwrap_err()
            .to_string();
        assert!(error.contains("no manifest.json"), "{error}");
    }
}

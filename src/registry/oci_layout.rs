//! The OCI image layout sink: `oci-layout`, `index.json` and `blobs/sha256/`
//! at the archive root, so the blob cache *is* the layout's blob store and an
//! image pulled once is stored once.
//!
//! `index.json` entries are keyed by their `org.opencontainers.image.ref.name`
//! annotation: pulling a tag again replaces its entry instead of adding a
//! duplicate (crane's ggcr#1807 trap).

use std::path::Path;

use anyhow::Context;
use serde_json::{Value, json};

use super::blob_cache::BlobCache;
use super::manifest::{
    DOCKER_CONFIG, DOCKER_LAYER_GZIP, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, Descriptor,
    FetchedManifest, ManifestKind, OCI_INDEX, OCI_LAYER_GZIP, OCI_MANIFEST,
};
use super::state_file::{FileLock, write_atomic};

pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const DOCKER_LAYER_TAR: &str = "application/vnd.docker.image.rootfs.diff.tar";
const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
const DOCKER_FOREIGN_GZIP: &str = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";
const OCI_FOREIGN_GZIP: &str = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip";

/// The OCI media type for a Docker one (unchanged when already OCI).
fn oci_media_type(media_type: &str) -> &str {
    match media_type {
        DOCKER_MANIFEST => OCI_MANIFEST,
        DOCKER_MANIFEST_LIST => OCI_INDEX,
        DOCKER_CONFIG => OCI_CONFIG,
        DOCKER_LAYER_GZIP => OCI_LAYER_GZIP,
        DOCKER_LAYER_TAR => OCI_LAYER_TAR,
        DOCKER_FOREIGN_GZIP => OCI_FOREIGN_GZIP,
        other => other,
    }
}

/// Rewrites a Docker schema 2 manifest (or manifest list) with OCI media types,
/// as OCI layout readers (containers/image, skopeo) accept only those; blobs
/// stay the same, only the manifest (and so its digest) changes. Children of an
/// index are converted first and stored in `cache`.
pub fn to_oci(manifest: &FetchedManifest, cache: &BlobCache) -> anyhow::Result<FetchedManifest> {
    if manifest.media_type == OCI_MANIFEST || manifest.media_type == OCI_INDEX {
        return Ok(manifest.clone());
    }
    let mut value: Value = serde_json::from_slice(&manifest.bytes)?;
    value["mediaType"] = json!(oci_media_type(&manifest.media_type));
    match &manifest.kind {
        ManifestKind::Image(_) => {
            if let Some(config) = value.get_mut("config") {
                let media_type = config["mediaType"].as_str().unwrap_or_default().to_string();
                config["mediaType"] = json!(oci_media_type(&media_type));
            }
            if let Some(layers) = value.get_mut("layers").and_then(|l| l.as_array_mut()) {
                for layer in layers {
                    let media_type = layer["mediaType"].as_str().unwrap_or_default().to_string();
                    layer["mediaType"] = json!(oci_media_type(&media_type));
                }
            }
        }
        ManifestKind::Index(index) => {
            let mut children = Vec::new();
            for child in &index.manifests {
                let digest = super::blob_cache::Digest::parse(&child.digest)?;
                let bytes = std::fs::read(cache.path(&digest))
                    .with_context(|| format!("child manifest {digest} is not in the cache"))?;
                let parsed = FetchedManifest::parse(bytes::Bytes::from(bytes), None)?;
                let converted = to_oci(&parsed, cache)?;
                let mut descriptor = serde_json::to_value(child)?;
                descriptor["mediaType"] = json!(converted.media_type);
                descriptor["digest"] = json!(converted.digest.to_string());
                descriptor["size"] = json!(converted.bytes.len());
                children.push(descriptor);
            }
            value["manifests"] = Value::Array(children);
        }
    }
    let converted = FetchedManifest::parse(bytes::Bytes::from(serde_json::to_vec(&value)?), None)?;
    cache.put_blocking(&converted.digest, &converted.bytes)?;
    Ok(converted)
}

pub const REF_NAME: &str = "org.opencontainers.image.ref.name";
pub const CONTAINERD_NAME: &str = "io.containerd.image.name";

/// One image to list in `index.json`.
pub struct LayoutEntry<'a> {
    pub manifest: &'a FetchedManifest,
    /// `org.opencontainers.image.ref.name`.
    pub ref_name: String,
    /// The full reference, for `io.containerd.image.name`.
    pub full_name: String,
    pub platform: Option<super::manifest::Platform>,
}

/// Adds or replaces entries in `<dir>/index.json` and writes `<dir>/oci-layout`,
/// under `.bunker/index.lock` so concurrent runs never lose each other's entries.
/// Only a missing `index.json` counts as empty: one that cannot be read, is not
/// JSON or has no `manifests` array is an error naming it, never overwritten.
pub fn upsert_index(dir: &Path, entries: &[LayoutEntry<'_>]) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let _lock = FileLock::acquire_blocking(&dir.join(".bunker").join("index.lock"))?;
    let layout_file = dir.join("oci-layout");
    if !layout_file.exists() {
        write_atomic(&layout_file, br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    }
    let index_path = dir.join("index.json");
    let mut manifests = read_index_manifests(&index_path)?;
    for entry in entries {
        manifests.retain(|existing| {
            existing
                .pointer(&format!("/annotations/{}", REF_NAME.replace('/', "~1")))
                .and_then(|v| v.as_str())
                != Some(entry.ref_name.as_str())
        });
        let mut annotations = serde_json::Map::new();
        annotations.insert(REF_NAME.into(), json!(entry.ref_name));
        annotations.insert(CONTAINERD_NAME.into(), json!(entry.full_name));
        let descriptor = Descriptor {
            media_type: entry.manifest.media_type.clone(),
            digest: entry.manifest.digest.to_string(),
            size: entry.manifest.bytes.len() as u64,
            platform: entry.platform.clone(),
            urls: None,
            annotations: Some(annotations),
        };
        manifests.push(serde_json::to_value(descriptor)?);
    }
    let index = json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": manifests,
    });
    write_atomic(&index_path, &serde_json::to_vec_pretty(&index)?)
}

/// The `manifests` of an existing `index.json`; empty only when there is none.
fn read_index_manifests(index_path: &Path) -> anyhow::Result<Vec<Value>> {
    let bytes = match std::fs::read(index_path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => {
            return Err(error).with_context(|| {
                format!(
                    "cannot read {}; nothing was written, fix its permissions or move it away",
                    index_path.display()
                )
            });
        }
    };
    let index: Value = serde_json::from_slice(&bytes).with_context(|| {
        format!(
            "{} is not valid JSON; nothing was written, move it away",
            index_path.display()
        )
    })?;
    match index.get("manifests").and_then(|m| m.as_array()) {
        Some(manifests) => Ok(manifests.clone()),
        None => anyhow::bail!(
            "{} has no \"manifests\" array, so it is no OCI image index; nothing was written, move it away",
            index_path.display()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreadable_or_shapeless_index_is_an_error_and_stays_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let index = dir.path().join("index.json");
        for content in [&b"{not json"[..], br#"{"schemaVersion":2}"#] {
            std::fs::write(&index, content).unwrap();
            let error = format!("{:#}", upsert_index(dir.path(), &[]).unwrap_err());
            assert!(error.contains(&index.display().to_string()), "{error}");
            assert!(error.contains("move it away"), "{error}");
            assert_eq!(std::fs::read(&index).unwrap(), content);
        }
        std::fs::remove_file(&index).unwrap();
        std::fs::create_dir(&index).unwrap();
        let error = format!("{:#}", upsert_index(dir.path(), &[]).unwrap_err());
        assert!(error.contains("cannot read"), "{error}");
        std::fs::remove_dir(&index).unwrap();
        upsert_index(dir.path(), &[]).unwrap();
        let written: Value = serde_json::from_slice(&std::fs::read(&index).unwrap()).unwrap();
        assert_eq!(written["manifests"], json!([]));
    }
}

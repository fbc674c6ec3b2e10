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

use super::manifest::{Descriptor, FetchedManifest, OCI_INDEX};

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

/// Adds or replaces entries in `<dir>/index.json` and writes `<dir>/oci-layout`.
pub fn upsert_index(dir: &Path, entries: &[LayoutEntry<'_>]) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let layout_file = dir.join("oci-layout");
    if !layout_file.exists() {
        write_atomic(&layout_file, br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    }
    let index_path = dir.join("index.json");
    let mut manifests: Vec<Value> = match std::fs::read(&index_path) {
        Ok(bytes) => {
            let index: Value = serde_json::from_slice(&bytes).with_context(|| {
                format!("{} is not valid JSON; move it away", index_path.display())
            })?;
            index
                .get("manifests")
                .and_then(|m| m.as_array())
                .cloned()
                .unwrap_or_default()
        }
        Err(_) => Vec::new(),
    };
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

/// Writes a small file via a temporary name and a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let temporary = path.with_extension(format!("tmp-{}", std::process::id()));
    std::fs::write(&temporary, bytes)
        .with_context(|| format!("cannot write {}", temporary.display()))?;
    std::fs::rename(&temporary, path)
        .with_context(|| format!("cannot move {} into place", path.display()))
}

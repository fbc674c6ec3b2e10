//! `bunker registry export --format registry-storage DIR`: archived images
//! written straight into the on-disk layout of the Docker distribution
//! registry, so `registry serve` with `rootdirectory: DIR` serves them with no
//! upload at all.
//!
//! Layout (`docker/registry/v2/` under DIR): `blobs/sha256/<hex[0:2]>/<hex>/data`
//! for every layer, config and manifest; per repository `_layers/.../link` for
//! layers and configs, `_manifests/revisions/.../link` for every manifest
//! including each child of an index, and `_manifests/tags/<tag>/{current,index}`.
//! A link holds `sha256:<hex>` with no newline. The registry does not verify
//! blobs on read, so blobs are only taken from the verified cache.

use std::path::{Path, PathBuf};

use anyhow::Context;

use super::archived::ArchivedImage;
use super::blob_cache::{BlobCache, Digest, hash_file};
use super::reference::ImageReference;
use super::state_file::{is_same_file, link_atomic, write_atomic};

/// Counts for the report.
#[derive(Debug, Default, Clone, Copy)]
pub struct ExportStats {
    pub images: u64,
    pub blobs_written: u64,
    pub blobs_present: u64,
}

/// Writes `images` (each under `destination(image)`) into registry storage at `root`.
pub fn export_registry_storage(
    images: &[ArchivedImage],
    destination: &dyn Fn(&ArchivedImage) -> anyhow::Result<ImageReference>,
    cache: &BlobCache,
    root: &Path,
) -> anyhow::Result<ExportStats> {
    let base = root.join("docker").join("registry").join("v2");
    let mut stats = ExportStats::default();
    for image in images {
        let target = destination(image)?;
        let repository = base.join("repositories").join(&target.name.repository);
        for blob in image.blobs() {
            let digest = Digest::parse(&blob.digest)?;
            if write_blob(cache, &base, &digest)? {
                stats.blobs_written += 1;
            } else {
                stats.blobs_present += 1;
            }
            write_link(
                &repository.join("_layers").join("sha256").join(digest.hex()),
                &digest,
            )?;
        }
        for manifest in image
            .children
            .iter()
            .chain(std::iter::once(&image.manifest))
        {
            cache.put_blocking(&manifest.digest, &manifest.bytes)?;
            write_blob(cache, &base, &manifest.digest)?;
            write_link(
                &repository
                    .join("_manifests")
                    .join("revisions")
                    .join("sha256")
                    .join(manifest.digest.hex()),
                &manifest.digest,
            )?;
        }
        let tag = repository
            .join("_manifests")
            .join("tags")
            .join(target.tag_or_latest());
        write_link(&tag.join("current"), &image.manifest.digest)?;
        write_link(
            &tag.join("index")
                .join("sha256")
                .join(image.manifest.digest.hex()),
            &image.manifest.digest,
        )?;
        stats.images += 1;
    }
    Ok(stats)
}

/// Puts a cached blob at `blobs/sha256/<hex[0:2]>/<hex>/data` after checking
/// its digest (the registry does not verify on read); `Ok(false)` when it was
/// already there and right.
fn write_blob(cache: &BlobCache, base: &Path, digest: &Digest) -> anyhow::Result<bool> {
    let directory = base
        .join("blobs")
        .join("sha256")
        .join(&digest.hex()[..2])
        .join(digest.hex());
    let data = directory.join("data");
    let source = cache.verified_path(digest)?;
    // Present: a link to the checked cache file, or a copy (another file system)
    // whose content is right.
    if is_same_file(&source, &data) || hash_file(&data).is_ok_and(|actual| &actual == digest) {
        return Ok(false);
    }
    link_atomic(&source, &data)?;
    Ok(true)
}

fn write_link(directory: &Path, digest: &Digest) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(directory)
        .with_context(|| format!("cannot create {}", directory.display()))?;
    let link = directory.join("link");
    if std::fs::read(&link).is_ok_and(|content| content == digest.as_str().as_bytes()) {
        return Ok(link);
    }
    write_atomic(&link, digest.as_str().as_bytes())?;
    Ok(link)
}

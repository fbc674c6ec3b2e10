//! One image resolved on a registry: its manifest, config and layer list for
//! one platform, with every blob made available in the blob cache.
//!
//! This is the registry source of the pipeline; the sinks (docker-save stream,
//! OCI layout, directory, registry storage, push) all start from a
//! [`ResolvedImage`] whose blobs are in the cache and verified.

use anyhow::{Context, bail};
use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use serde::Deserialize;

use super::blob_cache::{BlobCache, Digest, ProgressFn};
use super::client::RegistryClient;
use super::manifest::{
    Descriptor, FetchedManifest, ImageManifest, ManifestKind, Platform, PlatformSelection,
    fetch_manifest, select_platforms,
};
use super::reference::ImageReference;

/// The parts of an image config bunker reads.
#[derive(Debug, Clone, Deserialize)]
pub struct ImageConfig {
    #[serde(default)]
    pub os: String,
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub variant: Option<String>,
    pub rootfs: RootFs,
}

#[derive(Debug, Clone, Deserialize)]
pub struct RootFs {
    #[serde(default)]
    pub diff_ids: Vec<String>,
}

/// A single-platform image as found on the registry.
#[derive(Debug, Clone)]
pub struct ResolvedImage {
    pub reference: ImageReference,
    /// The index the image was selected from, when the tag names a multi-platform image.
    pub index: Option<FetchedManifest>,
    pub manifest: FetchedManifest,
    pub image_manifest: ImageManifest,
    pub config_bytes: Bytes,
    pub config: ImageConfig,
}

impl ResolvedImage {
    pub fn config_digest(&self) -> anyhow::Result<Digest> {
        Digest::parse(&self.image_manifest.config.digest)
    }

    pub fn platform(&self) -> Platform {
        Platform::new(
            &self.config.os,
            &self.config.architecture,
            self.config.variant.as_deref(),
        )
    }

    /// Layers plus config: every blob the image needs.
    pub fn blobs(&self) -> impl Iterator<Item = &Descriptor> {
        std::iter::once(&self.image_manifest.config).chain(self.image_manifest.layers.iter())
    }

    /// Total compressed size of the layers.
    pub fn layers_size(&self) -> u64 {
        self.image_manifest
            .layers
            .iter()
            .map(|layer| layer.size)
            .sum()
    }
}

/// Fetches the manifest of `reference` and, for an index, the manifests of the
/// selected platforms, plus each image's config (stored in the cache).
pub async fn resolve(
    client: &RegistryClient,
    cache: &BlobCache,
    reference: &ImageReference,
    selection: &PlatformSelection,
) -> anyhow::Result<Vec<ResolvedImage>> {
    let top = fetch_manifest(client, &reference.name, reference.manifest_reference()).await?;
    cache.put_bytes(&top.digest, &top.bytes).await?;
    match &top.kind {
        ManifestKind::Image(_) => Ok(vec![finish(client, cache, reference, None, top).await?]),
        ManifestKind::Index(index) => {
            let chosen = select_platforms(reference, index, selection)?;
            let mut images = Vec::new();
            for entry in chosen {
                let child = fetch_manifest(client, &reference.name, &entry.digest).await?;
                cache.put_bytes(&child.digest, &child.bytes).await?;
                if matches!(child.kind, ManifestKind::Index(_)) {
                    bail!(
                        "{reference}: nested indexes are not supported ({})",
                        entry.digest
                    );
                }
                images.push(finish(client, cache, reference, Some(top.clone()), child).await?);
            }
            Ok(images)
        }
    }
}

async fn finish(
    client: &RegistryClient,
    cache: &BlobCache,
    reference: &ImageReference,
    index: Option<FetchedManifest>,
    manifest: FetchedManifest,
) -> anyhow::Result<ResolvedImage> {
    let ManifestKind::Image(image_manifest) = manifest.kind.clone() else {
        bail!("{reference}: expected an image manifest");
    };
    let config_descriptor = &image_manifest.config;
    let config_digest = Digest::parse(&config_descriptor.digest)
        .with_context(|| format!("{reference}: bad config digest"))?;
    let path = cache
        .fetch(
            client,
            &reference.name,
            &config_digest,
            config_descriptor.size,
            None,
        )
        .await?;
    let config_bytes = Bytes::from(
        tokio::fs::read(&path)
            .await
            .with_context(|| format!("cannot read {}", path.display()))?,
    );
    let config: ImageConfig = serde_json::from_slice(&config_bytes).with_context(|| {
        format!("{reference}: the image config {config_digest} is not a container image config")
    })?;
    if config.rootfs.diff_ids.len() != image_manifest.layers.len() {
        bail!(
            "{reference}: the manifest lists {} layers but the config {} diff IDs",
            image_manifest.layers.len(),
            config.rootfs.diff_ids.len()
        );
    }
    Ok(ResolvedImage {
        reference: reference.clone(),
        index,
        manifest,
        image_manifest: *image_manifest,
        config_bytes,
        config,
    })
}

/// Downloads every layer of `image` into the cache, `jobs` at a time.
pub async fn fetch_layers(
    client: &RegistryClient,
    cache: &BlobCache,
    image: &ResolvedImage,
    jobs: usize,
    progress: Option<ProgressFn>,
) -> anyhow::Result<()> {
    let downloads = image.image_manifest.layers.iter().map(|layer| {
        let progress = progress.clone();
        async move {
            if layer.urls.is_some() && layer.media_type.contains("foreign") {
                bail!(
                    "{}: layer {} is a foreign (non-distributable) layer; bunker does not fetch those",
                    image.reference,
                    layer.digest
                );
            }
            let digest = Digest::parse(&layer.digest)?;
            cache
                .fetch(client, &image.reference.name, &digest, layer.size, progress)
                .await
                .with_context(|| format!("cannot pull {}", image.reference))
        }
    });
    futures_util::stream::iter(downloads)
        .buffer_unordered(jobs.max(1))
        .try_collect::<Vec<_>>()
        .await?;
    Ok(())
}

/// Checks each cached layer decompresses to the diff ID the config names;
/// returns the uncompressed sizes in layer order.
pub async fn verify_diff_ids(cache: &BlobCache, image: &ResolvedImage) -> anyhow::Result<Vec<u64>> {
    let mut sizes = Vec::new();
    for (position, (layer, expected)) in image
        .image_manifest
        .layers
        .iter()
        .zip(&image.config.rootfs.diff_ids)
        .enumerate()
    {
        let digest = Digest::parse(&layer.digest)?;
        let (diff_id, size) = cache
            .diff_id(&digest)
            .await
            .with_context(|| format!("{}: layer {digest}", image.reference))?;
        if diff_id.as_str() != expected {
            bail!(
                "{}: layer {} ({digest}) decompresses to {diff_id} but the image config expects {expected}",
                image.reference,
                position + 1
            );
        }
        cache.remember_compressed(&diff_id, &digest, layer.size)?;
        sizes.push(size);
    }
    Ok(sizes)
}

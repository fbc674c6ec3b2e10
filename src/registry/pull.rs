//! `bunker registry pull`: registry → archive, with no engine involved.
//!
//! All images are resolved first, then every distinct blob is downloaded once
//! (in parallel, resumable, verified) into the archive's blob cache, then each
//! image is written in the requested format: a `docker load`-able docker-save
//! archive, an entry in the archive's OCI image layout, or an unpacked
//! directory.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use anyhow::Context;
use futures_util::StreamExt;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::blob_cache::{BlobCache, Digest, ProgressFn};
use super::client::{ClientOptions, RegistryClient};
use super::docker_save::docker_save_stream;
use super::image::{ResolvedImage, fetch_layers, resolve, verify_diff_ids};
use super::manifest::FetchedManifest;
use super::manifest::{Platform, PlatformSelection};
use super::oci_layout::{LayoutEntry, to_oci, upsert_index};
use super::reference::ImageReference;
use super::sink::{WrittenArchive, write_archive_file};

/// The output format of a pull.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PullFormat {
    /// docker-save `.tar.gz` files, `docker load`-able, listed in manifest.json.
    Docker,
    /// An OCI image layout at the archive root (`index.json`, `blobs/`).
    Oci,
    /// One directory per image: manifest.json, config and layer blobs as files.
    Dir,
}

#[derive(Debug, Clone)]
pub struct PullOptions {
    pub archive_dir: PathBuf,
    pub project: String,
    pub format: PullFormat,
    pub platforms: PlatformSelection,
    pub jobs: usize,
    pub client: ClientOptions,
    pub show_progress: bool,
}

/// What happened to one requested image.
#[derive(Debug)]
pub struct PullOutcome {
    pub reference: String,
    pub result: anyhow::Result<Vec<PulledImage>>,
}

#[derive(Debug, Clone)]
pub struct PulledImage {
    pub reference: ImageReference,
    pub platform: Platform,
    pub manifest_digest: Digest,
    pub config_digest: Digest,
    /// The file or directory written (the archive root for OCI).
    pub output: PathBuf,
    pub archive: Option<WrittenArchive>,
}

/// Totals for the report.
#[derive(Debug, Default, Clone, Copy)]
pub struct PullTotals {
    pub downloaded_bytes: u64,
    pub reused_bytes: u64,
}

/// Pulls every reference; one failing image does not stop the others.
pub async fn pull_images(
    references: &[ImageReference],
    options: &PullOptions,
) -> (Vec<PullOutcome>, PullTotals) {
    let cache = BlobCache::new(&options.archive_dir);
    let clients = ClientPool::default();
    let resolved = futures_util::stream::iter(references.iter().map(|reference| {
        let cache = cache.clone();
        let clients = clients.clone();
        async move {
            let result = async {
                let client = clients.get(&reference.name.registry, &options.client)?;
                resolve(&client, &cache, reference, &options.platforms).await
            }
            .await;
            (reference.clone(), result)
        }
    }))
    .buffered(options.jobs.max(1))
    .collect::<Vec<_>>()
    .await;

    let total: u64 = {
        let mut seen = HashSet::new();
        resolved
            .iter()
            .filter_map(|(_, result)| result.as_ref().ok())
            .flatten()
            .flat_map(|image| image.image_manifest.layers.iter())
            .filter(|layer| seen.insert(layer.digest.clone()))
            .map(|layer| layer.size)
            .sum()
    };
    let bar = progress_bar(total, options.show_progress);
    let progress: ProgressFn = {
        let bar = bar.clone();
        Arc::new(move |bytes| bar.inc(bytes))
    };

    let mut outcomes = Vec::new();
    let fetched = futures_util::stream::iter(resolved.into_iter().map(|(reference, result)| {
        let cache = cache.clone();
        let clients = clients.clone();
        let progress = progress.clone();
        async move {
            let result = match result {
                Ok(images) => {
                    let mut failure = None;
                    for image in &images {
                        let client = clients.get(&reference.name.registry, &options.client);
                        let outcome = match client {
                            Ok(client) => {
                                fetch_layers(
                                    &client,
                                    &cache,
                                    image,
                                    options.jobs,
                                    Some(progress.clone()),
                                )
                                .await
                            }
                            Err(error) => Err(error),
                        };
                        if let Err(error) = outcome {
                            failure = Some(error);
                            break;
                        }
                    }
                    match failure {
                        Some(error) => Err(error),
                        None => Ok(images),
                    }
                }
                Err(error) => Err(error),
            };
            (reference, result)
        }
    }))
    .buffer_unordered(options.jobs.max(1))
    .collect::<Vec<_>>()
    .await;
    bar.finish_and_clear();

    for (reference, result) in fetched {
        let result = match result {
            Ok(images) => write_outputs(&cache, &images, options).await,
            Err(error) => Err(error),
        };
        outcomes.push(PullOutcome {
            reference: reference.to_string(),
            result,
        });
    }
    outcomes.sort_by(|a, b| a.reference.cmp(&b.reference));
    let totals = PullTotals {
        downloaded_bytes: cache.counter.downloaded.load(Ordering::Relaxed),
        reused_bytes: cache.counter.reused.load(Ordering::Relaxed),
    };
    (outcomes, totals)
}

async fn write_outputs(
    cache: &BlobCache,
    images: &[ResolvedImage],
    options: &PullOptions,
) -> anyhow::Result<Vec<PulledImage>> {
    let mut pulled = Vec::new();
    match options.format {
        PullFormat::Docker => {
            for image in images {
                let sizes = verify_diff_ids(cache, image).await?;
                let platform = image.platform();
                let destination = docker_archive_path(
                    &options.archive_dir,
                    &platform,
                    &options.project,
                    &image.reference,
                );
                let stream = docker_save_stream(cache, image, sizes);
                let written = write_archive_file(stream, &destination)
                    .await
                    .with_context(|| format!("cannot write the archive of {}", image.reference))?;
                pulled.push(pulled_image(image, destination, Some(written))?);
            }
        }
        PullFormat::Oci => {
            let first = images.first().context("no image resolved")?;
            let ref_name = oci_ref_name(&first.reference);
            let full_name = first.reference.to_string();
            let converted_index = match (&first.index, &options.platforms) {
                (Some(index), PlatformSelection::All) => Some(to_oci(index, cache)?),
                _ => None,
            };
            let converted: Vec<FetchedManifest> = images
                .iter()
                .map(|image| to_oci(&image.manifest, cache))
                .collect::<anyhow::Result<_>>()?;
            let entries: Vec<LayoutEntry<'_>> = match &converted_index {
                Some(index) => vec![LayoutEntry {
                    manifest: index,
                    ref_name,
                    full_name,
                    platform: None,
                }],
                None => images
                    .iter()
                    .zip(&converted)
                    .map(|(image, manifest)| LayoutEntry {
                        manifest,
                        ref_name: if images.len() > 1 {
                            format!("{}-{}", ref_name, image.platform().slug())
                        } else {
                            ref_name.clone()
                        },
                        full_name: full_name.clone(),
                        platform: Some(image.platform()),
                    })
                    .collect(),
            };
            upsert_index(&options.archive_dir, &entries)?;
            for image in images {
                pulled.push(pulled_image(image, options.archive_dir.clone(), None)?);
            }
        }
        PullFormat::Dir => {
            for image in images {
                let destination = options
                    .archive_dir
                    .join("dir")
                    .join(image.platform().slug())
                    .join(sanitize(&image.reference.to_string()));
                write_dir(cache, image, &destination)?;
                pulled.push(pulled_image(image, destination, None)?);
            }
        }
    }
    Ok(pulled)
}

fn pulled_image(
    image: &ResolvedImage,
    output: PathBuf,
    archive: Option<WrittenArchive>,
) -> anyhow::Result<PulledImage> {
    Ok(PulledImage {
        reference: image.reference.clone(),
        platform: image.platform(),
        manifest_digest: image.manifest.digest.clone(),
        config_digest: image.config_digest()?,
        output,
        archive,
    })
}

/// `<archive>/<arch>/<project>/<sanitized reference>.tar.gz`, the image-archive layout.
pub fn docker_archive_path(
    archive_dir: &Path,
    platform: &Platform,
    project: &str,
    reference: &ImageReference,
) -> PathBuf {
    let arch = match &platform.variant {
        Some(variant) if platform.architecture == "arm" => format!("arm{variant}"),
        _ => platform.architecture.clone(),
    };
    archive_dir
        .join(arch)
        .join(project)
        .join(format!("{}.tar.gz", sanitize(&reference.to_string())))
}

/// The OCI `ref.name` for a reference: `repository:tag` without the registry.
pub fn oci_ref_name(reference: &ImageReference) -> String {
    format!(
        "{}:{}",
        reference.name.repository,
        reference.tag_or_latest()
    )
}

/// File-name-safe form of a reference (the image-archive rule).
pub fn sanitize(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// skopeo's `dir:` layout: `manifest.json`, `version`, one file per blob named
/// by its hex digest (hard links into the cache where possible).
fn write_dir(cache: &BlobCache, image: &ResolvedImage, destination: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(destination)
        .with_context(|| format!("cannot create {}", destination.display()))?;
    std::fs::write(destination.join("manifest.json"), &image.manifest.bytes)?;
    std::fs::write(
        destination.join("version"),
        "Directory Transport Version: 1.1\n",
    )?;
    for descriptor in image.blobs() {
        let digest = Digest::parse(&descriptor.digest)?;
        let target = destination.join(digest.hex());
        if target.exists() {
            continue;
        }
        let source = cache.path(&digest);
        if std::fs::hard_link(&source, &target).is_err() {
            std::fs::copy(&source, &target).with_context(|| {
                format!("cannot copy {} to {}", source.display(), target.display())
            })?;
        }
    }
    Ok(())
}

fn progress_bar(total: u64, show: bool) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(
        Some(total),
        if show {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        },
    );
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:30} {bytes}/{total_bytes} {bytes_per_sec} {eta}",
        )
        .expect("valid template"),
    );
    bar
}

/// One client per registry host, shared by all jobs (token cache, pool).
#[derive(Clone, Default)]
pub struct ClientPool {
    clients: Arc<std::sync::Mutex<std::collections::HashMap<String, Arc<RegistryClient>>>>,
}

impl ClientPool {
    pub fn get(
        &self,
        registry: &str,
        options: &ClientOptions,
    ) -> anyhow::Result<Arc<RegistryClient>> {
        let mut clients = self.clients.lock().expect("client pool");
        if let Some(client) = clients.get(registry) {
            return Ok(client.clone());
        }
        let client = RegistryClient::new(registry, options)?;
        clients.insert(registry.to_string(), client.clone());
        Ok(client)
    }
}

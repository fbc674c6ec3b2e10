//! `bunker registry pull`: registry → archive, with no engine involved.
//!
//! All images are resolved first. Then each image's blobs are downloaded into
//! the archive's blob cache (in parallel, resumable, verified; a blob shared by
//! several images is downloaded once) and the image is written as soon as its
//! own blobs are there, in the requested format: a `docker load`-able
//! docker-save archive, an entry in the archive's OCI image layout, or an
//! unpacked directory. Docker archives of different images are written at the
//! same time (one more than the cores), so downloads, decompression, hashing
//! and each file's fsync overlap.
//!
//! [`PullOptions::stop`] stops a pull cleanly (Ctrl-C): no new image, blob
//! download or archive write starts; running downloads are dropped (their
//! `.partial` file stays for the next run to resume) and running archive
//! writes see their stream fail, so the writer removes their partial file.
//! Images finished before stay in manifest.json.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use anyhow::Context;
use futures_util::StreamExt;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio_util::sync::CancellationToken;

use super::blob_cache::{BlobCache, Digest, ProgressFn};
use super::client::{ClientOptions, RegistryClient};
use super::disk_space::{DiskFull, SpaceShortfall, is_lack_of_space};
use super::docker_save::docker_save_stream;
use super::image::{ResolvedImage, fetch_layers, resolve, verify_diff_ids};
use super::manifest::FetchedManifest;
use super::manifest::{Platform, PlatformSelection};
use super::oci_layout::{LayoutEntry, to_oci, upsert_index};
use super::reference::ImageReference;
use super::state_file::{is_same_file, link_atomic, write_atomic};
use crate::archive::{
    ArchDir, ArchiveAction, ArchiveLayout, Compression, ExpectedImage, Manifest, ManifestEntry,
    ManifestLock, WriteOptions, write_archive,
};
use crate::interrupt::abort_on_cancel;

/// The output format of a pull.
/// (Its command-line spelling is in `cli::value_enums`.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
    /// Compression of docker archives and its level (`None`: the writer's default).
    pub compression: Compression,
    pub compression_level: Option<u32>,
    /// Cancelled to stop the pull cleanly (never cancelled: runs to the end).
    pub stop: CancellationToken,
}

/// The error of an image the pull stopped before it was finished.
#[derive(Debug, thiserror::Error)]
#[error("stopped by the interrupt before it was finished")]
pub struct Stopped;

impl PullOutcome {
    /// Whether the image was left unfinished because the pull was stopped.
    pub fn stopped(&self) -> bool {
        matches!(&self.result, Err(error) if error.is::<Stopped>())
    }

    /// Whether the image failed only for lack of disk space.
    pub fn lacks_space(&self) -> bool {
        matches!(&self.result, Err(error) if is_lack_of_space(error))
    }
}

/// `work`, or [`Stopped`] as soon as `stop` is cancelled (dropping `work`).
async fn unless_stopped<T>(
    stop: &CancellationToken,
    work: impl std::future::Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    if stop.is_cancelled() {
        return Err(Stopped.into());
    }
    tokio::select! {
        biased;
        () = stop.cancelled() => Err(Stopped.into()),
        result = work => result,
    }
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
    pub archive: Option<ArchiveFile>,
}

/// Totals for the report.
#[derive(Debug, Default, Clone)]
pub struct PullTotals {
    pub downloaded_bytes: u64,
    pub reused_bytes: u64,
    /// Pull allowances the registries reported (Docker Hub's `RateLimit-*`).
    pub rate_limits: Vec<(String, super::client::RateLimit)>,
    /// Set when images failed for lack of disk space: how much they needed.
    pub lack_of_space: Option<SpaceShortfall>,
    /// Cached blobs found corrupt and fetched again.
    pub discarded_blobs: u64,
}

/// Pulls every reference; one failing image does not stop the others.
pub async fn pull_images(
    references: &[ImageReference],
    options: &PullOptions,
) -> (Vec<PullOutcome>, PullTotals) {
    let cache = BlobCache::new(&options.archive_dir);
    clean_leftovers(&cache);
    let clients = ClientPool::default();
    let resolved = futures_util::stream::iter(references.iter().map(|reference| {
        let cache = cache.clone();
        let clients = clients.clone();
        async move {
            let result = unless_stopped(&options.stop, async {
                let client = clients.get(&reference.name.registry, &options.client)?;
                resolve(&client, &cache, reference, &options.platforms).await
            })
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

    // Each image is written as soon as its own blobs are in the cache (blobs
    // shared with other images are fetched once: the cache serialises them), so
    // downloads, decompression and archive writes of different images overlap.
    let slots = OutputSlots::new();
    // Once a write hit ENOSPC no image starts: it would only fail the same way.
    let disk_full = DiskFull::default();
    let mut outcomes =
        futures_util::stream::iter(resolved.into_iter().map(|(reference, result)| {
            let cache = cache.clone();
            let clients = clients.clone();
            let progress = progress.clone();
            let slots = &slots;
            let disk_full = &disk_full;
            async move {
                let result = match result {
                    Ok(images) => {
                        let result = async {
                            disk_full.check(&options.archive_dir)?;
                            let client = clients.get(&reference.name.registry, &options.client)?;
                            for image in &images {
                                disk_full.check(&options.archive_dir)?;
                                // Dropping a running download keeps its `.partial`.
                                unless_stopped(
                                    &options.stop,
                                    fetch_layers(
                                        &client,
                                        &cache,
                                        image,
                                        options.jobs,
                                        Some(progress.clone()),
                                    ),
                                )
                                .await?;
                            }
                            disk_full.check(&options.archive_dir)?;
                            write_outputs(&cache, &images, options, slots).await
                        }
                        .await;
                        let blobs = images.iter().flat_map(|image| {
                            image
                                .blobs()
                                .map(|blob| (blob.digest.clone(), blob.size))
                                .collect::<Vec<_>>()
                        });
                        // A docker archive holds about as many bytes as the blobs again.
                        let archives = match options.format {
                            PullFormat::Docker => images
                                .iter()
                                .flat_map(|image| image.blobs().map(|blob| blob.size))
                                .sum(),
                            PullFormat::Oci | PullFormat::Dir => 0,
                        };
                        disk_full.note(&result, blobs, archives);
                        result
                    }
                    Err(error) => Err(error),
                };
                PullOutcome {
                    reference: reference.to_string(),
                    result,
                }
            }
        }))
        .buffer_unordered(options.jobs.max(1))
        .collect::<Vec<_>>()
        .await;
    bar.finish_and_clear();
    outcomes.sort_by(|a, b| a.reference.cmp(&b.reference));
    let totals = PullTotals {
        downloaded_bytes: cache.counter.downloaded.load(Ordering::Relaxed),
        reused_bytes: cache.counter.reused.load(Ordering::Relaxed),
        rate_limits: clients.rate_limits(),
        lack_of_space: disk_full.shortfall(&options.archive_dir, |digest, size| {
            Digest::parse(digest).is_ok_and(|digest| {
                std::fs::metadata(cache.path(&digest)).is_ok_and(|file| file.len() == size)
            })
        }),
        discarded_blobs: cache.counter.discarded.load(Ordering::Relaxed),
    };
    (outcomes, totals)
}

/// Removes the temporary files of dead runs (never a live one's); a failure to
/// clean up fails nothing.
fn clean_leftovers(cache: &BlobCache) {
    match cache.remove_leftovers() {
        Ok(removed) => {
            for path in removed {
                tracing::info!("removed {} left by a run that died", path.display());
            }
        }
        Err(error) => tracing::warn!("cannot clean up what earlier runs left: {error:#}"),
    }
}

async fn write_outputs(
    cache: &BlobCache,
    images: &[ResolvedImage],
    options: &PullOptions,
    slots: &OutputSlots,
) -> anyhow::Result<Vec<PulledImage>> {
    let mut pulled = Vec::new();
    // OCI and dir outputs update files shared by all images (index.json): one
    // image at a time. They only link or copy blobs, so this costs nothing.
    let _serial = match options.format {
        PullFormat::Docker => None,
        PullFormat::Oci | PullFormat::Dir => Some(slots.serial.lock().await),
    };
    if options.stop.is_cancelled() {
        return Err(Stopped.into());
    }
    match options.format {
        PullFormat::Docker => {
            for image in images {
                let sizes = unless_stopped(&options.stop, verify_diff_ids(cache, image)).await?;
                let _slot = unless_stopped(&options.stop, async {
                    slots
                        .writes
                        .acquire()
                        .await
                        .context("archive writes stopped")
                })
                .await?;
                if options.stop.is_cancelled() {
                    return Err(Stopped.into());
                }
                let (destination, written) =
                    write_docker_archive(cache, image, sizes, options, slots)
                        .await
                        .with_context(|| {
                            format!("cannot write the archive of {}", image.reference)
                        })?;
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
                // Checked before they are linked: a corrupt cached blob is not handed on
                // (the pull fetched and checked it just before).
                let mut sources = Vec::new();
                for descriptor in image.blobs() {
                    let digest = Digest::parse(&descriptor.digest)?;
                    sources.push((cache.verified(&digest).await?, digest));
                }
                let (owned, target) = (image.clone(), destination.clone());
                tokio::task::spawn_blocking(move || write_dir(&owned, &sources, &target))
                    .await
                    .context("the directory output task failed")??;
                pulled.push(pulled_image(image, destination, None)?);
            }
        }
    }
    Ok(pulled)
}

fn pulled_image(
    image: &ResolvedImage,
    output: PathBuf,
    archive: Option<ArchiveFile>,
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

/// The `uname -m` architecture name image-archive files a platform under.
pub fn arch_dir_name(platform: &Platform) -> String {
    match (platform.architecture.as_str(), platform.variant.as_deref()) {
        ("amd64", _) => "x86_64".into(),
        ("arm64", _) => "aarch64".into(),
        ("arm", Some("v6")) => "armv6l".into(),
        ("arm", _) => "armv7l".into(),
        ("386", _) => "i686".into(),
        (other, _) => other.into(),
    }
}

/// Streams the docker-save tar of `image` through the shared archive writer into
/// `<archive>/<arch>/<project>/<file>.tar.gz` and records it in that
/// architecture's manifest.json (action `registry-pull`), under its lock.
async fn write_docker_archive(
    cache: &BlobCache,
    image: &ResolvedImage,
    sizes: Vec<u64>,
    options: &PullOptions,
    slots: &OutputSlots,
) -> anyhow::Result<(PathBuf, ArchiveFile)> {
    let layout = ArchiveLayout::new(&options.archive_dir);
    let arch = slots.arch_dir(layout.arch_dir(&arch_dir_name(&image.platform())))?;
    let name = image.reference.to_string();
    let compression = options.compression;
    // Two references may name the same image file: their writes take turns.
    let turn_key = arch.dir.resolve(&ArchDir::relative_file(
        &options.project,
        &name,
        compression,
    ));
    let _file_turn = slots.destination_turn(&turn_key).lock_owned().await;
    let config_digest = image.config_digest()?;
    let (reused, in_use) = {
        let manifest = arch.manifest();
        let reused = manifest
            .reusable_entry(&arch.dir, &options.project, &name, config_digest.as_str())
            .map(|entry| {
                (
                    arch.dir.resolve(&entry.file),
                    ArchiveFile {
                        sha256: entry.sha256.clone(),
                        size: entry.size,
                        reused: true,
                    },
                )
            });
        let in_use = manifest
            .find(&options.project, &name)
            .map(|entry| entry.file.clone());
        (reused, in_use)
    };
    if let Some(reused) = reused {
        // Same image already archived and intact: nothing to write.
        return Ok(reused);
    }
    // A name the manifest does not list: the entry switches to it only once
    // the file is complete (see LockedArchDir::record).
    let relative = ArchDir::new_relative_file(
        &options.project,
        &name,
        config_digest.as_str(),
        compression,
        in_use.as_deref(),
    );
    let destination = arch.dir.resolve(&relative);
    let write_options = WriteOptions {
        compression,
        level: options.compression_level,
        threads: 0,
        expected: ExpectedImage {
            reference: Some(image.reference.familiar_tagged()),
            image_id: Some(config_digest.to_string()),
        },
    };
    if options.stop.is_cancelled() {
        return Err(Stopped.into());
    }
    // A stop makes the stream fail: the writer removes its partial file.
    let stream = abort_on_cancel(
        docker_save_stream(cache, image, sizes),
        options.stop.clone(),
    );
    let written = match write_archive(stream, &destination, &write_options, |_| {}).await {
        Err(_) if options.stop.is_cancelled() => return Err(Stopped.into()),
        other => other?,
    };
    let mut entry = ManifestEntry::from_written(&options.project, &name, &relative, &written);
    entry.action = Some(ArchiveAction::RegistryPull);
    entry.docker_id = Some(config_digest.to_string());
    // The registry's digests: what the containerd image store names the image by.
    for digest in image
        .index
        .iter()
        .chain(std::iter::once(&image.manifest))
        .map(|fetched| fetched.digest.to_string())
    {
        if !entry.identity.manifest_digests.contains(&digest) {
            entry.identity.manifest_digests.push(digest);
        }
    }
    entry.repo_digests = vec![format!(
        "{}@{}",
        image.reference.name.familiar(),
        image.manifest.digest
    )];
    let record = arch.clone();
    tokio::task::spawn_blocking(move || record.record(entry))
        .await
        .context("the manifest update task failed")??;
    let file = ArchiveFile {
        sha256: written.sha256,
        size: written.size,
        reused: false,
    };
    Ok((destination, file))
}

/// Shared state of the output side of one pull: how many archives are written
/// at once, and each architecture directory's lock and manifest.
struct OutputSlots {
    /// Docker archives written at the same time.
    writes: tokio::sync::Semaphore,
    /// Taken by OCI and dir outputs, which update shared files.
    serial: tokio::sync::Mutex<()>,
    arch_dirs: std::sync::Mutex<HashMap<PathBuf, Arc<LockedArchDir>>>,
    destinations: std::sync::Mutex<HashMap<PathBuf, Arc<tokio::sync::Mutex<()>>>>,
}

impl OutputSlots {
    fn new() -> OutputSlots {
        OutputSlots {
            writes: tokio::sync::Semaphore::new(parallel_archive_writes()),
            serial: tokio::sync::Mutex::new(()),
            arch_dirs: std::sync::Mutex::default(),
            destinations: std::sync::Mutex::default(),
        }
    }

    /// The arch directory, locked for the rest of the run on first use (so
    /// concurrent writes of this run share the lock and one manifest).
    fn arch_dir(&self, dir: ArchDir) -> anyhow::Result<Arc<LockedArchDir>> {
        let mut arch_dirs = self.arch_dirs.lock().expect("arch dir table");
        if let Some(locked) = arch_dirs.get(dir.path()) {
            return Ok(locked.clone());
        }
        let lock = ManifestLock::acquire(&dir)?;
        // Under the lock: no live run writes here, what is left is a dead run's.
        match crate::archive::remove_stale_partials(dir.path()) {
            Ok(removed) => {
                for path in removed {
                    tracing::info!("removed {} left by a run that died", path.display());
                }
            }
            Err(error) => tracing::warn!("cannot clean up {}: {error}", dir.path().display()),
        }
        let manifest_path = dir.manifest_path();
        let manifest = Manifest::load_or_new(&manifest_path, &dir.arch())?;
        let locked = Arc::new(LockedArchDir {
            dir: dir.clone(),
            manifest_path,
            manifest: std::sync::Mutex::new(manifest),
            save_turn: std::sync::Mutex::new(()),
            _lock: lock,
        });
        arch_dirs.insert(dir.path().to_path_buf(), locked.clone());
        Ok(locked)
    }

    fn destination_turn(&self, destination: &Path) -> Arc<tokio::sync::Mutex<()>> {
        self.destinations
            .lock()
            .expect("destination table")
            .entry(destination.to_path_buf())
            .or_default()
            .clone()
    }
}

/// Archive writes at once: the writes are mostly disk-bound (each file is
/// fsynced), so one more than the cores keeps the disk and the CPUs busy
/// while another file is being flushed.
fn parallel_archive_writes() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from) + 1
}

/// An arch directory this run holds the lock of, with its manifest in memory.
struct LockedArchDir {
    dir: ArchDir,
    manifest_path: PathBuf,
    manifest: std::sync::Mutex<Manifest>,
    /// Held (on a blocking thread) across each manifest save.
    save_turn: std::sync::Mutex<()>,
    _lock: ManifestLock,
}

impl LockedArchDir {
    fn manifest(&self) -> std::sync::MutexGuard<'_, Manifest> {
        self.manifest.lock().expect("archive manifest")
    }

    /// Switches the manifest to the entry's new file (blocking: it is
    /// fsynced; run it off the async workers). The save works on a copy, one
    /// save at a time; only once it succeeded does the in-memory manifest
    /// change and the file the entry listed before go. When it fails, the new
    /// file (which nothing lists) is removed and the previous state stays.
    fn record(&self, entry: ManifestEntry) -> anyhow::Result<()> {
        let _turn = self.save_turn.lock().expect("archive manifest save");
        let new_file = self.dir.resolve(&entry.file);
        let (next, unlisted) = self.manifest().with_entry(entry);
        if let Err(error) = next.save_atomic(&self.manifest_path) {
            let _ = std::fs::remove_file(&new_file);
            return Err(error.context(format!(
                "the previous archive and its manifest entry are unchanged: make {} writable \
                 or free space on it, then pull again",
                self.dir.path().display()
            )));
        }
        *self.manifest() = next;
        if let Some(unlisted) = unlisted {
            let old = self.dir.resolve(&unlisted);
            if let Err(error) = std::fs::remove_file(&old)
                && error.kind() != std::io::ErrorKind::NotFound
            {
                eprintln!(
                    "warning: cannot remove the replaced archive {}: {error}",
                    old.display()
                );
            }
        }
        Ok(())
    }
}

/// The docker archive file of a pulled image.
#[derive(Debug, Clone)]
pub struct ArchiveFile {
    /// Hex SHA-256 of the file.
    pub sha256: String,
    pub size: u64,
    /// Whether an identical, intact archive was already there.
    pub reused: bool,
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
fn write_dir(
    image: &ResolvedImage,
    sources: &[(PathBuf, Digest)],
    destination: &Path,
) -> anyhow::Result<()> {
    for (source, digest) in sources {
        let target = destination.join(digest.hex());
        // A link to the checked cache file is done; anything else (a copy, a link to
        // a cache file since replaced) is placed again.
        if is_same_file(source, &target) {
            continue;
        }
        link_atomic(source, &target)?;
    }
    write_atomic(
        &destination.join("version"),
        b"Directory Transport Version: 1.1\n",
    )?;
    // The manifest last: a directory with it is complete.
    write_atomic(&destination.join("manifest.json"), &image.manifest.bytes)?;
    Ok(())
}

/// A byte-counting progress bar on stderr (hidden when `show` is false).
pub fn progress_bar(total: u64, show: bool) -> ProgressBar {
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
    /// The last rate-limit report of every registry that sent one.
    pub fn rate_limits(&self) -> Vec<(String, super::client::RateLimit)> {
        let clients = self.clients.lock().expect("client pool");
        let mut limits: Vec<_> = clients
            .iter()
            .filter_map(|(name, client)| client.rate_limit().map(|limit| (name.clone(), limit)))
            .collect();
        limits.sort_by(|a, b| a.0.cmp(&b.0));
        limits
    }

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

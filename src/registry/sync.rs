//! `bunker sync --config sync.yaml`: many repositories in one run, registry →
//! archive, archive → registry and registry → registry, with per-repository
//! tag filters, destination names and platforms.
//!
//! Config:
//! ```yaml
//! archive_dir: /srv/archive          # optional; default as for every command
//! jobs: 8
//! repositories:
//!   - source: registry.example.com/team/app     # a registry repository
//!     destination: mirror.example.com/team/app  # another registry…
//!     tags: ["1.0", "latest"]                   # explicit tags, and/or
//!     tag_regex: "1\\..*"                       # a regex matching whole tags,
//!     semver: ">=1.2, <2"                       # a semver range
//!     platform: linux/arm64                     # or all_platforms: true
//!   - source: registry.example.com/base/busybox
//!     destination: archive                      # …or the archive directory
//!     format: docker                            # docker (default) or oci
//!   - source: archive                           # archive → registry:
//!     repository: team/app                      # images archived from this repository
//!     destination: mirror.example.com/restored/app
//!     platform: linux/arm64                     # picks one where a tag was archived
//!                                               # for several platforms
//! ```
//! Entries without `platform:` or `all_platforms:` take the run's default
//! platform (see [`super::platform_choice`]).
//! Up-to-date checks cost one manifest `HEAD` per tag, and no blob moves for
//! an unchanged tag. Bunker remembers in `<archive>/.bunker/sync-state.json`
//! which source digest it last archived or pushed to each destination:
//! - registry → archive: `HEAD` the source tag, compare with the state (and
//!   check that the files written for it are still there);
//! - registry → registry: `HEAD` the source tag; when the state says that
//!   digest was pushed to this destination and the destination's tag list
//!   (one paginated listing per destination repository, not per tag) still
//!   has the tag, it is up to date. Otherwise (no state, another digest, tag
//!   gone) the destination tag gets a `HEAD` too, and a copy when it differs.
//!   The tag list carries names, not digests: a destination tag re-pointed
//!   to another image by someone else is only seen with `--verify-destination`
//!   (a `HEAD` on every destination tag too), or once the source changes;
//! - archive → registry: the source digest is local, so the one `HEAD` goes
//!   to the destination tag, which also sees re-pointed tags.
//!
//! Archive sources are the archive directory's OCI layout and the
//! docker-save archives listed by its `manifest.json` files (what
//! `image-archive` and `registry pull` write), read as `registry push` reads them.
//!
//! [`SyncOptions::stop`] (Ctrl-C) ends a run cleanly: entries and tags not
//! started are recorded as `stopped`, a running pull or copy is aborted, and
//! the state keeps only what finished.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::archived::{
    ArchivedImage, archive_manifest_entries, read_docker_archive, read_oci_layout,
};
use super::auth::Scope;
use super::blob_cache::{BlobCache, Digest};
use super::client::{ClientOptions, RegistryClient};
use super::image::{fetch_layers, resolve};
use super::manifest::{Platform, PlatformSelection, head_manifest};
use super::mapping::NameMapping;
use super::pull::{ClientPool, PullFormat, PullOptions, Stopped, pull_images};
use super::push::{DestinationState, MountSources, PushItem, PushOptions, push_item};
use super::reference::{ImageReference, RepositoryName};
use super::tags::{TagFilter, list_tags, sort_semantic};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncConfig {
    #[serde(default)]
    pub archive_dir: Option<PathBuf>,
    #[serde(default)]
    pub jobs: Option<usize>,
    pub repositories: Vec<SyncEntry>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncEntry {
    pub source: String,
    pub destination: String,
    /// For `source: archive`: which archived repository to take.
    #[serde(default)]
    pub repository: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub tag_regex: Option<String>,
    #[serde(default)]
    pub semver: Option<String>,
    #[serde(default)]
    pub platform: Option<String>,
    #[serde(default)]
    pub all_platforms: bool,
    #[serde(default)]
    pub format: Option<String>,
    #[serde(default)]
    pub project: Option<String>,
}

impl SyncConfig {
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the sync config {}", path.display()))?;
        let config: SyncConfig = serde_saphyr::from_str(&text)
            .with_context(|| format!("invalid sync config {}", path.display()))?;
        if config.repositories.is_empty() {
            bail!(
                "{}: `repositories` is empty: nothing to sync",
                path.display()
            );
        }
        Ok(config)
    }
}

/// What one tag of one entry did.
#[derive(Debug, Clone, Serialize)]
pub struct SyncRecord {
    pub source: String,
    pub destination: String,
    /// `up-to-date`, `copied`, `would-copy`, `failed`.
    pub action: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
struct SyncState {
    /// Archive reference → source manifest digest last archived.
    #[serde(default)]
    archived: BTreeMap<String, String>,
    /// Archive reference → the files written for it, relative to the archive
    /// directory: a tag whose file is gone is archived again.
    #[serde(default)]
    archived_files: BTreeMap<String, Vec<PathBuf>>,
    /// Registry destination (with the platform choice) → what was pushed there.
    #[serde(default)]
    pushed: BTreeMap<String, PushedDigest>,
}

/// A push remembered: the source digest it came from and the manifest digest
/// the destination tag got (they differ when one platform of an index is taken).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct PushedDigest {
    source: String,
    pushed: String,
}

impl SyncState {
    fn remember_push(&mut self, key: &str, source: &Digest, pushed: &str) {
        self.pushed.insert(
            key.to_string(),
            PushedDigest {
                source: source.to_string(),
                pushed: pushed.to_string(),
            },
        );
    }
}

fn state_path(archive_dir: &Path) -> PathBuf {
    archive_dir.join(".bunker").join("sync-state.json")
}

fn load_state(archive_dir: &Path) -> SyncState {
    std::fs::read(state_path(archive_dir))
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default()
}

/// Saves what this run changed since `loaded` (the state it started from) over
/// the state on disk now, under `.bunker/sync-state.lock`: two syncs on one
/// archive keep each other's entries.
fn save_state(archive_dir: &Path, loaded: &SyncState, state: &SyncState) -> anyhow::Result<()> {
    let path = state_path(archive_dir);
    let _lock = super::state_file::FileLock::acquire_blocking(&path.with_extension("lock"))?;
    let mut current = load_state(archive_dir);
    merge_changes(&mut current.archived, &loaded.archived, &state.archived);
    merge_changes(
        &mut current.archived_files,
        &loaded.archived_files,
        &state.archived_files,
    );
    merge_changes(&mut current.pushed, &loaded.pushed, &state.pushed);
    super::state_file::write_atomic(&path, &serde_json::to_vec_pretty(&current)?)
}

/// Copies into `current` every entry of `ours` that differs from `loaded`.
fn merge_changes<V: Clone + PartialEq>(
    current: &mut BTreeMap<String, V>,
    loaded: &BTreeMap<String, V>,
    ours: &BTreeMap<String, V>,
) {
    for (key, value) in ours {
        if loaded.get(key) != Some(value) {
            current.insert(key.clone(), value.clone());
        }
    }
}

/// Options that apply to the whole run.
#[derive(Debug, Clone)]
pub struct SyncOptions {
    pub archive_dir: PathBuf,
    pub jobs: usize,
    pub dry_run: bool,
    pub keep_going: bool,
    pub client: ClientOptions,
    /// The platform for entries without `platform:` or `all_platforms:`
    /// (the caller resolves it: flag, DOCKER_DEFAULT_PLATFORM, engine, workstation);
    /// `None` means the workstation's.
    pub default_platform: Option<Platform>,
    /// Registry → registry: `HEAD` every destination tag even when the state
    /// and the tag list say it is current (sees tags re-pointed by others).
    pub verify_destination: bool,
    /// Cancelled to stop the run cleanly: no new entry or tag starts, a running
    /// pull or copy is aborted; their records say `stopped`.
    pub stop: CancellationToken,
}

/// Runs every entry; stops at the first failure unless `keep_going`.
pub async fn run_sync(
    config: &SyncConfig,
    options: &SyncOptions,
) -> anyhow::Result<Vec<SyncRecord>> {
    let mut run = SyncRun {
        options,
        clients: ClientPool::default(),
        state: load_state(&options.archive_dir),
        records: Vec::new(),
    };
    let loaded = run.state.clone();
    for entry in &config.repositories {
        if options.stop.is_cancelled() {
            run.records.push(entry_record(entry, "stopped"));
            continue;
        }
        let result = if entry.source == "archive" {
            sync_from_archive(entry, &mut run).await
        } else if entry.destination == "archive" {
            sync_to_archive(entry, &mut run).await
        } else {
            sync_registry_to_registry(entry, &mut run).await
        };
        if let Err(error) = result {
            run.records.push(SyncRecord {
                error: Some(format!("{error:#}")),
                ..entry_record(entry, "failed")
            });
        }
        if !options.dry_run {
            save_state(&options.archive_dir, &loaded, &run.state)?;
        }
        if !options.keep_going && run.any_failed() {
            break;
        }
    }
    Ok(run.records)
}

/// What every entry of one run works with: the options and registry clients,
/// the state it updates and the records it adds to.
struct SyncRun<'a> {
    options: &'a SyncOptions,
    clients: ClientPool,
    state: SyncState,
    records: Vec<SyncRecord>,
}

impl SyncRun<'_> {
    fn any_failed(&self) -> bool {
        self.records.iter().any(|r| r.action == "failed")
    }
}

/// The record of a whole entry (stopped before it started, or failed as a whole).
fn entry_record(entry: &SyncEntry, action: &str) -> SyncRecord {
    SyncRecord {
        source: entry.source.clone(),
        destination: entry.destination.clone(),
        action: action.to_string(),
        error: None,
    }
}

/// Whether an entry takes the run's default platform (it names none and is
/// not an archive source, whose images carry their own).
pub fn needs_default_platform(entry: &SyncEntry) -> bool {
    entry.source != "archive" && entry.platform.is_none() && !entry.all_platforms
}

fn default_platform(options: &SyncOptions) -> Platform {
    options
        .default_platform
        .clone()
        .unwrap_or_else(Platform::host)
}

fn selection(entry: &SyncEntry, options: &SyncOptions) -> anyhow::Result<PlatformSelection> {
    Ok(if entry.all_platforms {
        PlatformSelection::All
    } else {
        PlatformSelection::One(match &entry.platform {
            Some(text) => Platform::parse(text)?,
            None => default_platform(options),
        })
    })
}

/// The platform choice as written into state keys.
fn platform_key(entry: &SyncEntry, options: &SyncOptions) -> String {
    match (&entry.platform, entry.all_platforms) {
        (_, true) => "all".to_string(),
        (Some(platform), false) => platform.clone(),
        (None, false) => default_platform(options).to_string(),
    }
}

/// The tags of `repository` this entry selects.
async fn selected_tags(
    entry: &SyncEntry,
    repository: &RepositoryName,
    options: &SyncOptions,
    clients: &ClientPool,
) -> anyhow::Result<Vec<String>> {
    let filter = TagFilter::new(entry.tag_regex.as_deref(), entry.semver.as_deref())?;
    let mut tags: Vec<String> =
        if entry.tags.is_empty() || filter.regex.is_some() || filter.semver.is_some() {
            let client = clients.get(&repository.registry, &options.client)?;
            let mut listed = list_tags(&client, repository).await?;
            let selected: Vec<String> = listed
                .iter()
                .filter(|tag| filter.matches(tag) || entry.tags.contains(tag))
                .cloned()
                .collect();
            if selected.is_empty() {
                sort_semantic(&mut listed);
                let shown: Vec<&str> = listed.iter().take(10).map(String::as_str).collect();
                bail!(
                    "no tag of {repository} matches {} (it has {}{}); \
                     tag_regex must match the whole tag, e.g. \"1\\..*\" for 1.x",
                    describe_filters(entry),
                    if shown.is_empty() {
                        "no tags".to_string()
                    } else {
                        shown.join(", ")
                    },
                    if listed.len() > shown.len() {
                        ", …"
                    } else {
                        ""
                    },
                );
            }
            selected
        } else {
            entry.tags.clone()
        };
    sort_semantic(&mut tags);
    tags.dedup();
    Ok(tags)
}

/// The entry's tag selection in the words of the config, for messages.
fn describe_filters(entry: &SyncEntry) -> String {
    let mut parts = Vec::new();
    if !entry.tags.is_empty() {
        parts.push(format!("tags {:?}", entry.tags));
    }
    if let Some(regex) = &entry.tag_regex {
        parts.push(format!("tag_regex {regex:?}"));
    }
    if let Some(range) = &entry.semver {
        parts.push(format!("semver {range:?}"));
    }
    if parts.is_empty() {
        "any tag".to_string()
    } else {
        parts.join(", ")
    }
}

async fn sync_to_archive(entry: &SyncEntry, run: &mut SyncRun<'_>) -> anyhow::Result<()> {
    let options = run.options;
    let repository = RepositoryName::parse(&entry.source)?;
    let client = run.clients.get(&repository.registry, &options.client)?;
    let format = match entry.format.as_deref() {
        None | Some("docker") => PullFormat::Docker,
        Some("oci") => PullFormat::Oci,
        Some("dir") => PullFormat::Dir,
        Some(other) => bail!(
            "unknown format {other:?} for {}: use docker, oci or dir",
            entry.source
        ),
    };
    let mut to_pull = Vec::new();
    for tag in selected_tags(entry, &repository, options, &run.clients).await? {
        let reference = repository.with_tag(&tag);
        let digest = head_manifest(
            &client,
            &repository,
            &tag,
            Scope::pull(&repository.repository),
        )
        .await?
        .with_context(|| format!("{reference} disappeared while syncing"))?;
        let key = format!("{reference} {format:?} {}", platform_key(entry, options));
        let files_present = run.state.archived_files.get(&key).is_none_or(|files| {
            files
                .iter()
                .all(|file| options.archive_dir.join(file).exists())
        });
        if run.state.archived.get(&key) == Some(&digest.to_string()) && files_present {
            run.records
                .push(record(&reference, "archive", "up-to-date"));
            continue;
        }
        to_pull.push((reference, key, digest));
    }
    if options.dry_run {
        for (reference, _, _) in &to_pull {
            run.records.push(record(reference, "archive", "would-copy"));
        }
        return Ok(());
    }
    let references: Vec<ImageReference> = to_pull.iter().map(|(r, _, _)| r.clone()).collect();
    let pull_options = PullOptions {
        archive_dir: options.archive_dir.clone(),
        project: entry.project.clone().unwrap_or_else(|| "registry".into()),
        format,
        platforms: selection(entry, options)?,
        jobs: options.jobs,
        client: options.client.clone(),
        show_progress: false,
        compression: crate::archive::Compression::Gzip,
        compression_level: None,
        stop: options.stop.clone(),
    };
    let (outcomes, _) = pull_images(&references, &pull_options).await;
    for ((reference, key, digest), outcome) in
        to_pull.iter().zip(outcomes_in_order(&references, outcomes))
    {
        match outcome {
            Some(Ok(pulled)) => {
                run.state.archived.insert(key.clone(), digest.to_string());
                let files = pulled
                    .iter()
                    .map(|image| {
                        let output = &image.output;
                        output
                            .strip_prefix(&options.archive_dir)
                            .unwrap_or(output)
                            .to_path_buf()
                    })
                    .collect();
                run.state.archived_files.insert(key.clone(), files);
                run.records.push(record(reference, "archive", "copied"));
            }
            Some(Err(error)) if error.is::<Stopped>() => {
                run.records.push(record(reference, "archive", "stopped"))
            }
            Some(Err(error)) => run.records.push(SyncRecord {
                error: Some(format!("{error:#}")),
                ..record(reference, "archive", "failed")
            }),
            None => run.records.push(record(reference, "archive", "failed")),
        }
    }
    Ok(())
}

fn outcomes_in_order(
    references: &[ImageReference],
    outcomes: Vec<super::pull::PullOutcome>,
) -> Vec<Option<anyhow::Result<Vec<super::pull::PulledImage>>>> {
    let mut by_name: BTreeMap<String, anyhow::Result<Vec<super::pull::PulledImage>>> = outcomes
        .into_iter()
        .map(|outcome| (outcome.reference, outcome.result))
        .collect();
    references
        .iter()
        .map(|reference| by_name.remove(&reference.to_string()))
        .collect()
}

fn record(source: &ImageReference, destination: &str, action: &str) -> SyncRecord {
    SyncRecord {
        source: source.to_string(),
        destination: destination.to_string(),
        action: action.to_string(),
        error: None,
    }
}

async fn sync_registry_to_registry(entry: &SyncEntry, run: &mut SyncRun<'_>) -> anyhow::Result<()> {
    let options = run.options;
    let source = RepositoryName::parse(&entry.source)?;
    let destination = RepositoryName::parse(&entry.destination)
        .with_context(|| format!("destination of {}", entry.source))?;
    let client = run.clients.get(&source.registry, &options.client)?;
    let platforms = selection(entry, options)?;
    let platform_key = platform_key(entry, options);
    let jobs = selected_tags(entry, &source, options, &run.clients)
        .await?
        .into_iter()
        .map(|tag| CopyJob {
            source: CopySource::Registry {
                client: client.clone(),
                reference: source.with_tag(&tag),
                platforms: platforms.clone(),
            },
            state_key: format!("{} {platform_key}", destination.with_tag(&tag)),
            destination: destination.with_tag(&tag),
        })
        .collect();
    copy_to_registry(jobs, &destination, run).await
}

/// Where an image copied to a registry comes from.
enum CopySource {
    /// A registry tag: resolved, and its blobs fetched, only when it must be copied.
    Registry {
        client: Arc<RegistryClient>,
        reference: ImageReference,
        platforms: PlatformSelection,
    },
    /// An image read from the archive directory.
    Archived(ArchivedImage),
}

impl CopySource {
    fn reference(&self) -> &ImageReference {
        match self {
            CopySource::Registry { reference, .. } => reference,
            CopySource::Archived(image) => &image.source,
        }
    }
}

/// One tag to bring to a registry destination.
struct CopyJob {
    source: CopySource,
    destination: ImageReference,
    /// The key of [`SyncState::pushed`]: destination and platform choice.
    state_key: String,
}

/// What every copy of one entry shares.
struct Copier<'a> {
    client: Arc<RegistryClient>,
    cache: BlobCache,
    mounts: MountSources,
    push_options: PushOptions,
    options: &'a SyncOptions,
    /// The destination repository's tags, listed once (all pages) on first
    /// need; `Some(None)` when listing failed (a repository not created yet).
    listed_tags: Option<Option<HashSet<String>>>,
}

/// Copies each job's image to the destination repository unless it is there
/// already; stops at the first failure unless `keep_going`.
async fn copy_to_registry(
    jobs: Vec<CopyJob>,
    destination: &RepositoryName,
    run: &mut SyncRun<'_>,
) -> anyhow::Result<()> {
    let options = run.options;
    let mut copier = Copier {
        client: run.clients.get(&destination.registry, &options.client)?,
        cache: BlobCache::new(&options.archive_dir),
        mounts: MountSources::default(),
        push_options: PushOptions {
            mapping: NameMapping::new(&destination.registry, None, None)?,
            overwrite: true,
            jobs: options.jobs,
            chunk_size: 16 << 20,
            client: options.client.clone(),
            progress: None,
        },
        options,
        listed_tags: None,
    };
    for job in jobs {
        let (source, to) = (job.source.reference(), job.destination.to_string());
        if options.stop.is_cancelled() {
            run.records.push(record(source, &to, "stopped"));
            continue;
        }
        // Dropping a running copy aborts its upload; the destination's manifest
        // is put last, so no incomplete image is named there.
        let outcome = tokio::select! {
            biased;
            () = options.stop.cancelled() => None,
            outcome = copier.copy(&job, &mut run.state) => Some(outcome),
        };
        let Some(outcome) = outcome else {
            run.records.push(record(source, &to, "stopped"));
            continue;
        };
        run.records.push(match outcome {
            Ok(action) => record(source, &to, action),
            Err(error) => SyncRecord {
                error: Some(format!("{error:#}")),
                ..record(source, &to, "failed")
            },
        });
        if !options.keep_going && run.records.last().is_some_and(|r| r.action == "failed") {
            break;
        }
    }
    Ok(())
}

impl Copier<'_> {
    /// One tag: `up-to-date`, `would-copy` or `copied`.
    ///
    /// The source digest costs one manifest `HEAD` for a registry source and
    /// nothing for an archived image. When the state says this source digest
    /// was pushed here before and the destination still lists the tag, that
    /// is all; otherwise the destination tag is asked with a `HEAD`.
    async fn copy(&mut self, job: &CopyJob, state: &mut SyncState) -> anyhow::Result<&'static str> {
        let tag = job.destination.tag_or_latest();
        let source_digest = match &job.source {
            CopySource::Registry {
                client, reference, ..
            } => head_manifest(
                client,
                &reference.name,
                reference.tag_or_latest(),
                Scope::pull(&reference.name.repository),
            )
            .await?
            .with_context(|| format!("{reference} disappeared while syncing"))?,
            CopySource::Archived(image) => image.manifest.digest.clone(),
        };
        let remembered = state
            .pushed
            .get(&job.state_key)
            .filter(|pushed| pushed.source == source_digest.as_str())
            .cloned();
        if matches!(job.source, CopySource::Registry { .. })
            && !self.options.verify_destination
            && remembered.is_some()
            && self.destination_lists(&job.destination.name, tag).await
        {
            return Ok("up-to-date");
        }
        let current = head_manifest(
            &self.client,
            &job.destination.name,
            tag,
            Scope::push(&job.destination.name.repository),
        )
        .await?;
        let holds = |digest: &str| current.as_ref().is_some_and(|c| c.as_str() == digest);
        if let Some(pushed) = [
            Some(source_digest.as_str()),
            remembered.as_ref().map(|r| r.pushed.as_str()),
        ]
        .into_iter()
        .flatten()
        .find(|digest| holds(digest))
        {
            state.remember_push(&job.state_key, &source_digest, pushed);
            return Ok("up-to-date");
        }
        if self.options.dry_run {
            return Ok("would-copy");
        }
        let image = match &job.source {
            CopySource::Registry {
                client,
                reference,
                platforms,
            } => {
                let images = resolve(client, &self.cache, reference, platforms).await?;
                for image in &images {
                    fetch_layers(client, &self.cache, image, self.options.jobs, None).await?;
                }
                to_archived(reference, images, platforms)?
            }
            CopySource::Archived(image) => image.clone(),
        };
        let pushed = image.manifest.digest.to_string();
        if !holds(&pushed) {
            let item = PushItem {
                image,
                destination: job.destination.clone(),
                state: DestinationState::New,
            };
            push_item(
                &item,
                &self.cache,
                &self.client,
                &self.mounts,
                &self.push_options,
            )
            .await?;
        }
        state.remember_push(&job.state_key, &source_digest, &pushed);
        Ok(if holds(&pushed) {
            "up-to-date"
        } else {
            "copied"
        })
    }

    /// Whether the destination repository's tag list (fetched once) has `tag`.
    async fn destination_lists(&mut self, repository: &RepositoryName, tag: &str) -> bool {
        if self.listed_tags.is_none() {
            let listed = list_tags(&self.client, repository).await;
            if let Err(error) = &listed {
                tracing::debug!("{error:#}; checking each tag instead");
            }
            self.listed_tags = Some(listed.ok().map(|tags| tags.into_iter().collect()));
        }
        self.listed_tags
            .as_ref()
            .and_then(Option::as_ref)
            .is_some_and(|tags| tags.contains(tag))
    }
}

/// A pushable image from a registry resolve: the whole index with every
/// platform, or the single selected platform's manifest.
fn to_archived(
    reference: &ImageReference,
    images: Vec<super::image::ResolvedImage>,
    platforms: &PlatformSelection,
) -> anyhow::Result<ArchivedImage> {
    let first = images.first().context("nothing resolved")?;
    Ok(match (&first.index, platforms) {
        (Some(index), PlatformSelection::All) => ArchivedImage {
            origin: reference.to_string(),
            source: reference.clone(),
            manifest: index.clone(),
            children: images.iter().map(|image| image.manifest.clone()).collect(),
        },
        _ => ArchivedImage {
            origin: reference.to_string(),
            source: reference.clone(),
            manifest: first.manifest.clone(),
            children: Vec::new(),
        },
    })
}

async fn sync_from_archive(entry: &SyncEntry, run: &mut SyncRun<'_>) -> anyhow::Result<()> {
    let options = run.options;
    let repository = entry
        .repository
        .clone()
        .context("`source: archive` needs `repository:` (the archived repository path)")?;
    let destination = RepositoryName::parse(&entry.destination)?;
    let filter = TagFilter::new(entry.tag_regex.as_deref(), entry.semver.as_deref())?;
    let wanted_tag = |tag: &str| {
        (entry.tags.is_empty() && filter.regex.is_none() && filter.semver.is_none())
            || entry.tags.iter().any(|t| t == tag)
            || ((filter.regex.is_some() || filter.semver.is_some()) && filter.matches(tag))
    };
    let wanted_platform = match &entry.platform {
        Some(text) => Some(Platform::parse(text)?),
        None => None,
    };
    let images = {
        let archive_dir = options.archive_dir.clone();
        let repository = repository.clone();
        tokio::task::spawn_blocking(move || {
            read_archived_repository(&archive_dir, &repository, wanted_platform.as_ref())
        })
        .await??
    };
    let mut by_tag: BTreeMap<String, Vec<ArchivedImage>> = BTreeMap::new();
    for image in images {
        let tag = image.source.tag_or_latest().to_string();
        if wanted_tag(&tag) {
            by_tag.entry(tag).or_default().push(image);
        }
    }
    if by_tag.is_empty() {
        if options.dry_run {
            // An earlier entry of this run would archive it.
            run.records.push(SyncRecord {
                source: format!("archive:{repository}"),
                destination: destination.to_string(),
                action: "would-copy".into(),
                error: None,
            });
            return Ok(());
        }
        bail!(
            "the archive {} holds no image of {repository} matching the filters (neither in its OCI layout nor in its manifest.json files)",
            options.archive_dir.display()
        );
    }
    let mut jobs = Vec::new();
    for (tag, mut images) in by_tag {
        let to = destination.with_tag(&tag);
        images.dedup_by(|a, b| a.manifest.digest == b.manifest.digest);
        if images.len() > 1 {
            let origins: Vec<&str> = images.iter().map(|image| image.origin.as_str()).collect();
            run.records.push(SyncRecord {
                error: Some(format!(
                    "{} archived images are tagged {tag}: {}; set `platform:` on the entry to choose one",
                    images.len(),
                    origins.join(", ")
                )),
                ..record(&images[0].source, &to.to_string(), "failed")
            });
            continue;
        }
        jobs.push(CopyJob {
            source: CopySource::Archived(images.remove(0)),
            state_key: format!("{to} archive"),
            destination: to,
        });
    }
    if !options.keep_going && run.any_failed() {
        return Ok(());
    }
    copy_to_registry(jobs, &destination, run).await
}

/// The archived images of `repository`: the OCI layout's entries, and for tags
/// the layout lacks, the docker-save archives listed in manifest.json; where
/// several platforms of one tag are archived, only those of `platform` (when given).
fn read_archived_repository(
    archive_dir: &Path,
    repository: &str,
    platform: Option<&Platform>,
) -> anyhow::Result<Vec<ArchivedImage>> {
    let of_repository = |reference: &ImageReference| reference.name.repository == repository;
    let mut images: Vec<ArchivedImage> = if archive_dir.join("index.json").is_file() {
        read_oci_layout(archive_dir)?
            .into_iter()
            .filter(|image| of_repository(&image.source))
            .collect()
    } else {
        Vec::new()
    };
    let in_layout: HashSet<String> = images
        .iter()
        .map(|image| image.source.tag_or_latest().to_string())
        .collect();
    let mut by_tag: BTreeMap<String, Vec<(PathBuf, Option<String>)>> = BTreeMap::new();
    for (file, entry) in archive_manifest_entries(archive_dir)? {
        let Ok(reference) = ImageReference::parse_input(&entry.image) else {
            continue;
        };
        let tag = reference.tag_or_latest().to_string();
        if of_repository(&reference) && !in_layout.contains(&tag) {
            by_tag.entry(tag).or_default().push((file, entry.platform));
        }
    }
    let cache = BlobCache::new(archive_dir);
    for (_, mut files) in by_tag {
        if let (Some(wanted), true) = (platform, files.len() > 1) {
            files.retain(|(_, archived)| {
                archived
                    .as_deref()
                    .and_then(|text| Platform::parse(text).ok())
                    .is_some_and(|archived| wanted.matches(&archived))
            });
        }
        for (file, _) in files {
            images.extend(
                read_docker_archive(&file, &cache)?
                    .into_iter()
                    .filter(|image| of_repository(&image.source)),
            );
        }
    }
    Ok(images)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_runs_saving_the_state_keep_each_others_entries() {
        let dir = tempfile::tempdir().unwrap();
        let start = load_state(dir.path());
        let mut first = start.clone();
        let mut second = start.clone();
        first.archived.insert("r/a:1".into(), "sha256:01".into());
        second.archived.insert("r/b:1".into(), "sha256:02".into());
        save_state(dir.path(), &start, &first).unwrap();
        save_state(dir.path(), &start, &second).unwrap();
        let saved = load_state(dir.path());
        assert_eq!(saved.archived.len(), 2, "{saved:?}");
    }

    #[test]
    fn state_files_of_earlier_versions_still_load() {
        let dir = tempfile::tempdir().unwrap();
        let path = state_path(dir.path());
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, r#"{"archived":{"r/a:1 Oci host":"sha256:00"}}"#).unwrap();
        let state = load_state(dir.path());
        assert_eq!(state.archived.len(), 1);
        assert!(state.pushed.is_empty());

        let mut state = state;
        let digest = Digest::parse(&format!("sha256:{}", "a".repeat(64))).unwrap();
        state.remember_push("r/b:1 linux/amd64", &digest, "sha256:bb");
        save_state(dir.path(), &SyncState::default(), &state).unwrap();
        let again = load_state(dir.path());
        let pushed = &again.pushed["r/b:1 linux/amd64"];
        assert_eq!(pushed.source, digest.to_string());
        assert_eq!(pushed.pushed, "sha256:bb");
    }

    #[test]
    fn entries_without_a_platform_take_the_default() {
        let entry: SyncEntry =
            serde_saphyr::from_str("source: r.example/app\ndestination: archive\n").unwrap();
        let options = SyncOptions {
            archive_dir: PathBuf::from("unused"),
            jobs: 1,
            dry_run: false,
            keep_going: false,
            client: ClientOptions::default(),
            default_platform: Some(Platform::parse("linux/arm64").unwrap()),
            verify_destination: false,
            stop: Default::default(),
        };
        assert!(needs_default_platform(&entry));
        assert_eq!(platform_key(&entry, &options), "linux/arm64");
        let all = SyncEntry {
            all_platforms: true,
            ..entry.clone()
        };
        assert!(!needs_default_platform(&all));
        assert_eq!(platform_key(&all, &options), "all");
        let archive = SyncEntry {
            source: "archive".into(),
            ..entry
        };
        assert!(!needs_default_platform(&archive));
    }
}

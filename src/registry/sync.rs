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
//!     tag_regex: "^1\\."                        # a regex over the listed tags,
//!     semver: ">=1.2, <2"                       # a semver range
//!     platform: linux/arm64                     # or all_platforms: true
//!   - source: registry.example.com/base/busybox
//!     destination: archive                      # …or the archive directory
//!     format: docker                            # docker (default) or oci
//!   - source: archive                           # archive → registry:
//!     repository: team/app                      # images archived from this repository
//!     destination: mirror.example.com/restored/app
//! ```
//! Up-to-date checks cost one manifest `HEAD` per tag on each registry side:
//! for archive destinations the source digest is compared with the one
//! remembered in `<archive>/.bunker/sync-state.json`, so an unchanged re-sync
//! moves no blob.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

use super::archived::{ArchivedImage, read_oci_layout};
use super::auth::Scope;
use super::blob_cache::BlobCache;
use super::client::ClientOptions;
use super::image::{fetch_layers, resolve};
use super::manifest::{Platform, PlatformSelection, head_manifest};
use super::mapping::NameMapping;
use super::pull::{ClientPool, PullFormat, PullOptions, pull_images};
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

#[derive(Debug, Default, Serialize, Deserialize)]
struct SyncState {
    /// Archive reference → source manifest digest last archived.
    archived: BTreeMap<String, String>,
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

fn save_state(archive_dir: &Path, state: &SyncState) -> anyhow::Result<()> {
    let path = state_path(archive_dir);
    std::fs::create_dir_all(path.parent().expect("state dir"))?;
    super::oci_layout::write_atomic(&path, &serde_json::to_vec_pretty(state)?)
}

/// Options that apply to the whole run.
#[derive(Debug, Clone)]
pub struct SyncOptions {
    pub archive_dir: PathBuf,
    pub jobs: usize,
    pub dry_run: bool,
    pub keep_going: bool,
    pub client: ClientOptions,
}

/// Runs every entry; stops at the first failure unless `keep_going`.
pub async fn run_sync(
    config: &SyncConfig,
    options: &SyncOptions,
) -> anyhow::Result<Vec<SyncRecord>> {
    let clients = ClientPool::default();
    let mut records = Vec::new();
    let mut state = load_state(&options.archive_dir);
    for entry in &config.repositories {
        let result = if entry.source == "archive" {
            sync_from_archive(entry, options, &clients, &mut records).await
        } else if entry.destination == "archive" {
            sync_to_archive(entry, options, &clients, &mut state, &mut records).await
        } else {
            sync_registry_to_registry(entry, options, &clients, &mut records).await
        };
        if let Err(error) = result {
            records.push(SyncRecord {
                source: entry.source.clone(),
                destination: entry.destination.clone(),
                action: "failed".into(),
                error: Some(format!("{error:#}")),
            });
        }
        if !options.dry_run {
            save_state(&options.archive_dir, &state)?;
        }
        if !options.keep_going && records.iter().any(|r| r.action == "failed") {
            break;
        }
    }
    Ok(records)
}

fn selection(entry: &SyncEntry) -> anyhow::Result<PlatformSelection> {
    Ok(if entry.all_platforms {
        PlatformSelection::All
    } else {
        PlatformSelection::One(match &entry.platform {
            Some(text) => Platform::parse(text)?,
            None => Platform::host(),
        })
    })
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
            let listed = list_tags(&client, repository).await?;
            listed
                .into_iter()
                .filter(|tag| filter.matches(tag) || entry.tags.contains(tag))
                .collect()
        } else {
            entry.tags.clone()
        };
    sort_semantic(&mut tags);
    tags.dedup();
    Ok(tags)
}

async fn sync_to_archive(
    entry: &SyncEntry,
    options: &SyncOptions,
    clients: &ClientPool,
    state: &mut SyncState,
    records: &mut Vec<SyncRecord>,
) -> anyhow::Result<()> {
    let repository = RepositoryName::parse(&entry.source)?;
    let client = clients.get(&repository.registry, &options.client)?;
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
    for tag in selected_tags(entry, &repository, options, clients).await? {
        let reference = repository.with_tag(&tag);
        let digest = head_manifest(
            &client,
            &repository,
            &tag,
            Scope::pull(&repository.repository),
        )
        .await?
        .with_context(|| format!("{reference} disappeared while syncing"))?;
        let key = format!(
            "{reference} {format:?} {}",
            entry
                .platform
                .as_deref()
                .unwrap_or(if entry.all_platforms { "all" } else { "host" })
        );
        if state.archived.get(&key) == Some(&digest.to_string()) {
            records.push(record(&reference, "archive", "up-to-date"));
            continue;
        }
        to_pull.push((reference, key, digest));
    }
    if options.dry_run {
        for (reference, _, _) in &to_pull {
            records.push(record(reference, "archive", "would-copy"));
        }
        return Ok(());
    }
    let references: Vec<ImageReference> = to_pull.iter().map(|(r, _, _)| r.clone()).collect();
    let pull_options = PullOptions {
        archive_dir: options.archive_dir.clone(),
        project: entry.project.clone().unwrap_or_else(|| "registry".into()),
        format,
        platforms: selection(entry)?,
        jobs: options.jobs,
        client: options.client.clone(),
        show_progress: false,
        compression: crate::archive::Compression::Gzip,
        compression_level: None,
    };
    let (outcomes, _) = pull_images(&references, &pull_options).await;
    for ((reference, key, digest), outcome) in
        to_pull.iter().zip(outcomes_in_order(&references, outcomes))
    {
        match outcome {
            Some(Ok(_)) => {
                state.archived.insert(key.clone(), digest.to_string());
                records.push(record(reference, "archive", "copied"));
            }
            Some(Err(error)) => records.push(SyncRecord {
                error: Some(format!("{error:#}")),
                ..record(reference, "archive", "failed")
            }),
            None => records.push(record(reference, "archive", "failed")),
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

async fn sync_registry_to_registry(
    entry: &SyncEntry,
    options: &SyncOptions,
    clients: &ClientPool,
    records: &mut Vec<SyncRecord>,
) -> anyhow::Result<()> {
    let source = RepositoryName::parse(&entry.source)?;
    let destination = RepositoryName::parse(&entry.destination)
        .with_context(|| format!("destination of {}", entry.source))?;
    let source_client = clients.get(&source.registry, &options.client)?;
    let destination_client = clients.get(&destination.registry, &options.client)?;
    let cache = BlobCache::new(&options.archive_dir);
    let mounts = MountSources::default();
    let push_options = PushOptions {
        mapping: NameMapping::new(&destination.registry, None, None)?,
        overwrite: true,
        jobs: options.jobs,
        chunk_size: 16 << 20,
        client: options.client.clone(),
        progress: None,
    };
    for tag in selected_tags(entry, &source, options, clients).await? {
        let from = source.with_tag(&tag);
        let to = destination.with_tag(&tag);
        let outcome = async {
            let source_digest = head_manifest(
                &source_client,
                &source,
                &tag,
                Scope::pull(&source.repository),
            )
            .await?
            .with_context(|| format!("{from} disappeared while syncing"))?;
            let current = head_manifest(
                &destination_client,
                &destination,
                &tag,
                Scope::push(&destination.repository),
            )
            .await?;
            let platforms = selection(entry)?;
            if current.as_ref() == Some(&source_digest) {
                return Ok::<_, anyhow::Error>("up-to-date");
            }
            if options.dry_run {
                return Ok("would-copy");
            }
            let images = resolve(&source_client, &cache, &from, &platforms).await?;
            for image in &images {
                fetch_layers(&source_client, &cache, image, options.jobs, None).await?;
            }
            let archived = to_archived(&from, images, &platforms)?;
            if current.as_ref() == Some(&archived.manifest.digest) {
                return Ok("up-to-date");
            }
            let item = PushItem {
                image: archived,
                destination: to.clone(),
                state: DestinationState::New,
            };
            push_item(&item, &cache, &destination_client, &mounts, &push_options).await?;
            Ok("copied")
        }
        .await;
        records.push(match outcome {
            Ok(action) => record(&from, &to.to_string(), action),
            Err(error) => SyncRecord {
                error: Some(format!("{error:#}")),
                ..record(&from, &to.to_string(), "failed")
            },
        });
        if !options.keep_going && records.last().is_some_and(|r| r.action == "failed") {
            break;
        }
    }
    Ok(())
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

async fn sync_from_archive(
    entry: &SyncEntry,
    options: &SyncOptions,
    clients: &ClientPool,
    records: &mut Vec<SyncRecord>,
) -> anyhow::Result<()> {
    let repository = entry
        .repository
        .as_deref()
        .context("`source: archive` needs `repository:` (the archived repository path)")?;
    let destination = RepositoryName::parse(&entry.destination)?;
    let filter = TagFilter::new(entry.tag_regex.as_deref(), entry.semver.as_deref())?;
    let archive_dir = options.archive_dir.clone();
    if options.dry_run && !archive_dir.join("index.json").is_file() {
        // An earlier entry of this run would create the layout.
        records.push(SyncRecord {
            source: format!("archive:{repository}"),
            destination: destination.to_string(),
            action: "would-copy".into(),
            error: None,
        });
        return Ok(());
    }
    let images = tokio::task::spawn_blocking(move || read_oci_layout(&archive_dir)).await??;
    let selected: Vec<ArchivedImage> = images
        .into_iter()
        .filter(|image| image.source.name.repository == repository)
        .filter(|image| {
            let tag = image.source.tag_or_latest();
            (entry.tags.is_empty() && filter.regex.is_none() && filter.semver.is_none())
                || entry.tags.iter().any(|t| t == tag)
                || ((filter.regex.is_some() || filter.semver.is_some()) && filter.matches(tag))
        })
        .collect();
    if selected.is_empty() {
        bail!("the archive's OCI layout holds no image of {repository} matching the filters");
    }
    let client = clients.get(&destination.registry, &options.client)?;
    let cache = BlobCache::new(&options.archive_dir);
    let mounts = MountSources::default();
    let push_options = PushOptions {
        mapping: NameMapping::new(&destination.registry, None, None)?,
        overwrite: true,
        jobs: options.jobs,
        chunk_size: 16 << 20,
        client: options.client.clone(),
        progress: None,
    };
    for image in selected {
        let to = destination.with_tag(image.source.tag_or_latest());
        let current = head_manifest(
            &client,
            &destination,
            to.tag_or_latest(),
            Scope::push(&destination.repository),
        )
        .await?;
        let action = if current.as_ref() == Some(&image.manifest.digest) {
            Ok("up-to-date")
        } else if options.dry_run {
            Ok("would-copy")
        } else {
            let item = PushItem {
                image: image.clone(),
                destination: to.clone(),
                state: DestinationState::New,
            };
            push_item(&item, &cache, &client, &mounts, &push_options)
                .await
                .map(|_| "copied")
        };
        records.push(match action {
            Ok(action) => record(&image.source, &to.to_string(), action),
            Err(error) => SyncRecord {
                error: Some(format!("{error:#}")),
                ..record(&image.source, &to.to_string(), "failed")
            },
        });
    }
    Ok(())
}

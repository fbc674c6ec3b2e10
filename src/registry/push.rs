//! `bunker registry push`: archived images → registry, with renaming.
//!
//! First a plan: every source image with its destination and what the
//! destination holds now (one manifest `HEAD` per tag). Conflicts (two sources
//! onto one destination, or a destination tag holding another digest) refuse
//! the whole run before anything is written, in `--dry-run` and for real alike,
//! since both print the same plan. Then blobs: skipped when the target has them
//! (`HEAD`), mounted from another repository of the same registry where this
//! run already put them, else uploaded in chunks; manifests last, children of
//! an index before the index.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use anyhow::Context;
use futures_util::{StreamExt, TryStreamExt};
use reqwest::{Method, StatusCode};

use super::archived::ArchivedImage;
use super::auth::Scope;
use super::blob_cache::{BlobCache, Digest, ProgressFn};
use super::client::{ClientOptions, RegistryClient, RegistryRequest, RequestBody, check_status};
use super::manifest::{Descriptor, head_manifest, put_manifest};
use super::mapping::NameMapping;
use super::pull::ClientPool;
use super::reference::{ImageReference, RepositoryName};

/// What the destination holds for a planned push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DestinationState {
    /// The tag does not exist.
    New,
    /// The tag already points to the same manifest.
    UpToDate,
    /// The tag points to another manifest, and `--overwrite` allows replacing it.
    Replace { current: Digest },
    /// Refused: the reason.
    Conflict(String),
}

/// One source image and where it goes.
#[derive(Debug, Clone)]
pub struct PushItem {
    pub image: ArchivedImage,
    pub destination: ImageReference,
    pub state: DestinationState,
}

#[derive(Clone)]
pub struct PushOptions {
    pub mapping: NameMapping,
    pub overwrite: bool,
    pub jobs: usize,
    pub chunk_size: u64,
    pub client: ClientOptions,
    /// Told the bytes of every blob handled (uploaded chunk by chunk, or found/mounted).
    pub progress: Option<ProgressFn>,
}

/// Builds the plan: destinations, duplicate detection and destination state.
pub async fn plan_push(
    images: Vec<ArchivedImage>,
    options: &PushOptions,
    clients: &ClientPool,
) -> anyhow::Result<Vec<PushItem>> {
    let mut items = Vec::new();
    for image in images {
        let destination = options
            .mapping
            .destination(&image.source)
            .with_context(|| format!("cannot name the destination of {}", image.source))?;
        items.push(PushItem {
            image,
            destination,
            state: DestinationState::New,
        });
    }
    // Two different images onto one destination tag.
    let mut by_destination: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (position, item) in items.iter().enumerate() {
        by_destination
            .entry(item.destination.to_string())
            .or_default()
            .push(position);
    }
    let mut duplicates = Vec::new();
    for (destination, positions) in &by_destination {
        let first = &items[positions[0]];
        let clashing: Vec<String> = positions
            .iter()
            .map(|&p| &items[p])
            .filter(|item| item.image.manifest.digest != first.image.manifest.digest)
            .map(|item| format!("{} ({})", item.image.source, item.image.origin))
            .collect();
        if !clashing.is_empty() {
            let sources: Vec<String> = positions
                .iter()
                .map(|&p| items[p].image.source.to_string())
                .collect();
            for &p in positions {
                items[p].state = DestinationState::Conflict(format!(
                    "{} different images map to {destination}: {}",
                    positions.len(),
                    sources.join(", ")
                ));
            }
        } else if positions.len() > 1 {
            duplicates.extend(positions[1..].iter().copied());
        }
    }
    duplicates.sort_unstable();
    for position in duplicates.into_iter().rev() {
        items.remove(position);
    }
    // What the destination holds now.
    let states = futures_util::stream::iter(items.iter().map(|item| async {
        if matches!(item.state, DestinationState::Conflict(_)) {
            return Ok::<_, anyhow::Error>(item.state.clone());
        }
        let client = clients.get(&item.destination.name.registry, &options.client)?;
        let current = head_manifest(
            &client,
            &item.destination.name,
            item.destination.tag_or_latest(),
            Scope::push(&item.destination.name.repository),
        )
        .await
        .with_context(|| format!("cannot check {}", item.destination))?;
        Ok(match current {
            None => DestinationState::New,
            Some(digest) if digest == item.image.manifest.digest => DestinationState::UpToDate,
            Some(digest) if options.overwrite => DestinationState::Replace { current: digest },
            Some(digest) => DestinationState::Conflict(format!(
                "{} already holds {digest}, not {} (use --overwrite to replace it)",
                item.destination, item.image.manifest.digest
            )),
        })
    }))
    .buffered(options.jobs.max(1))
    .try_collect::<Vec<_>>()
    .await?;
    for (item, state) in items.iter_mut().zip(states) {
        item.state = state;
    }
    Ok(items)
}

/// Renders the plan, one line per image.
pub fn describe_plan(items: &[PushItem]) -> Vec<String> {
    items
        .iter()
        .map(|item| {
            let state = match &item.state {
                DestinationState::New => "new".to_string(),
                DestinationState::UpToDate => "up to date".to_string(),
                DestinationState::Replace { current } => format!("replaces {current}"),
                DestinationState::Conflict(reason) => format!("CONFLICT: {reason}"),
            };
            format!("{} -> {} [{state}]", item.image.source, item.destination)
        })
        .collect()
}

/// Where blobs are known to live on each registry, for cross-repository mounts.
#[derive(Default, Clone)]
pub struct MountSources {
    known: Arc<Mutex<HashMap<(String, String), RepositoryName>>>,
}

impl MountSources {
    fn get(&self, registry: &str, digest: &str) -> Option<RepositoryName> {
        self.known
            .lock()
            .expect("mount table")
            .get(&(registry.to_string(), digest.to_string()))
            .cloned()
    }
    fn remember(&self, repository: &RepositoryName, digest: &str) {
        self.known.lock().expect("mount table").insert(
            (repository.registry.clone(), digest.to_string()),
            repository.clone(),
        );
    }
}

/// Bytes and blobs moved by a push.
#[derive(Debug, Default, Clone, Copy)]
pub struct PushStats {
    pub uploaded_blobs: u64,
    pub uploaded_bytes: u64,
    pub mounted_blobs: u64,
    pub skipped_blobs: u64,
}

/// Pushes one planned image (blobs, then manifests).
pub async fn push_item(
    item: &PushItem,
    cache: &BlobCache,
    client: &RegistryClient,
    mounts: &MountSources,
    options: &PushOptions,
) -> anyhow::Result<PushStats> {
    let stats = Arc::new(Mutex::new(PushStats::default()));
    let destination = &item.destination.name;
    let blobs = item.image.blobs();
    // Blobs of an image that came from this same registry can be mounted from
    // its source repository instead of uploaded.
    let source = &item.image.source.name;
    if source.registry == destination.registry && source != destination {
        for blob in &blobs {
            if mounts.get(&destination.registry, &blob.digest).is_none() {
                mounts.remember(source, &blob.digest);
            }
        }
    }
    futures_util::stream::iter(blobs.iter().map(|blob| {
        let stats = stats.clone();
        async move {
            let outcome = ensure_blob(client, cache, destination, blob, mounts, options)
                .await
                .with_context(|| format!("cannot push blob {} to {destination}", blob.digest))?;
            let mut stats = stats.lock().expect("stats");
            match outcome {
                BlobOutcome::Present => stats.skipped_blobs += 1,
                BlobOutcome::Mounted => stats.mounted_blobs += 1,
                BlobOutcome::Uploaded => {
                    stats.uploaded_blobs += 1;
                    stats.uploaded_bytes += blob.size;
                }
            }
            // Uploads report their chunks as they go; the rest counts at once.
            if let (Some(progress), BlobOutcome::Present | BlobOutcome::Mounted) =
                (&options.progress, &outcome)
            {
                progress(blob.size);
            }
            mounts.remember(destination, &blob.digest);
            Ok::<_, anyhow::Error>(())
        }
    }))
    .buffer_unordered(options.jobs.max(1))
    .try_collect::<Vec<_>>()
    .await?;
    for child in &item.image.children {
        put_manifest(
            client,
            destination,
            child.digest.as_str(),
            &child.media_type,
            child.bytes.clone(),
        )
        .await?;
    }
    put_manifest(
        client,
        destination,
        item.destination.tag_or_latest(),
        &item.image.manifest.media_type,
        item.image.manifest.bytes.clone(),
    )
    .await?;
    let stats = *stats.lock().expect("stats");
    Ok(stats)
}

enum BlobOutcome {
    Present,
    Mounted,
    Uploaded,
}

async fn ensure_blob(
    client: &RegistryClient,
    cache: &BlobCache,
    destination: &RepositoryName,
    blob: &Descriptor,
    mounts: &MountSources,
    options: &PushOptions,
) -> anyhow::Result<BlobOutcome> {
    let digest = Digest::parse(&blob.digest)?;
    let scope = Scope::push(&destination.repository);
    let head = RegistryRequest::new(
        Method::HEAD,
        format!("/v2/{}/blobs/{digest}", destination.repository),
        scope.clone(),
    );
    let response = client.send(&head).await?;
    if response.status().is_success() {
        return Ok(BlobOutcome::Present);
    }
    // Checked before it is sent: a corrupt cached blob is named, never uploaded.
    let path = {
        let cache = cache.clone();
        let digest = digest.clone();
        tokio::task::spawn_blocking(move || cache.verified_path(&digest))
            .await
            .context("the blob check task failed")??
    };
    let mut start = format!("/v2/{}/blobs/uploads/", destination.repository);
    let mut mount_scope = scope.clone();
    if let Some(source) = mounts.get(&destination.registry, &blob.digest)
        && source != *destination
    {
        start = format!("{start}?mount={digest}&from={}", source.repository);
        // The token must also grant pull on the source repository.
        mount_scope = Scope(format!("{} repository:{}:pull", scope.0, source.repository));
    }
    let mut attempt = 1;
    loop {
        // Repeating a POST that failed (429/5xx, a dropped connection) only opens
        // another upload session; the registry expires unused ones.
        let post = RegistryRequest::new(Method::POST, &start, mount_scope.clone())
            .header(reqwest::header::CONTENT_LENGTH, "0");
        let response = client.send(&post).await?;
        if response.status() == StatusCode::CREATED && start.contains("mount=") {
            return Ok(BlobOutcome::Mounted);
        }
        let response = check_status(response, &format!("POST {start}")).await?;
        let location = location(&response)?;
        let target = UploadTarget {
            path: &path,
            size: blob.size,
            digest: &digest,
        };
        match upload_chunks(client, &location, &scope, &target, options).await {
            Ok(()) => return Ok(BlobOutcome::Uploaded),
            Err(error) if attempt < client.retry_policy().max_attempts => {
                let wait = client.retry_policy().delay(attempt, None);
                tracing::warn!(
                    "upload of {digest} to {destination} failed ({error:#}); starting over in {:.1}s",
                    wait.as_secs_f64()
                );
                tokio::time::sleep(wait).await;
                attempt += 1;
                // A mount that was refused is not asked for again.
                start = format!("/v2/{}/blobs/uploads/", destination.repository);
                mount_scope = scope.clone();
            }
            Err(error) => return Err(error),
        }
    }
}

/// The cached blob an upload session sends.
#[derive(Clone, Copy)]
struct UploadTarget<'a> {
    path: &'a std::path::Path,
    size: u64,
    digest: &'a Digest,
}

async fn upload_chunks(
    client: &RegistryClient,
    first_location: &str,
    scope: &Scope,
    target: &UploadTarget<'_>,
    options: &PushOptions,
) -> anyhow::Result<()> {
    let UploadTarget { path, size, digest } = *target;
    let chunk_size = options.chunk_size;
    let mut location = first_location.to_string();
    let mut offset = 0;
    while offset < size {
        let length = chunk_size.min(size - offset);
        let patch = RegistryRequest::new(Method::PATCH, &location, scope.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .header(
                reqwest::header::CONTENT_RANGE,
                format!("{offset}-{}", offset + length - 1),
            )
            .body(RequestBody::File {
                path: path.to_path_buf(),
                offset,
                length,
            })
            .not_retryable();
        let response = client.send_ok(&patch).await?;
        location = self::location(&response)?;
        offset += length;
        if let Some(progress) = &options.progress {
            progress(length);
        }
    }
    let separator = if location.contains('?') { '&' } else { '?' };
    let put = RegistryRequest::new(
        Method::PUT,
        format!("{location}{separator}digest={digest}"),
        scope.clone(),
    )
    .header(reqwest::header::CONTENT_LENGTH, "0")
    .not_retryable();
    client.send_ok(&put).await?;
    Ok(())
}

fn location(response: &reqwest::Response) -> anyhow::Result<String> {
    response
        .headers()
        .get(reqwest::header::LOCATION)
        .and_then(|value| value.to_str().ok())
        .map(str::to_string)
        .context("the registry answered an upload request without a Location header")
}

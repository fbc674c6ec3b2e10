//! Archiving one image for every project that needs it.
//!
//! Inspect it on the engine (image ID, repo digests) → for each project, keep
//! the manifest entry when it has this image ID and its file is intact (the
//! skip rule; re-hashed with `--verify` or `--delete`) → otherwise export the
//! image once through the engine API into a verified archive file, and give
//! every other project that needs it a hard link to that file (a copy where
//! links are impossible) instead of a second export → record each entry in
//! manifest.json at once. [`delete_target`] then (with `--delete`, once no
//! build needs the image any more) removes the image from the engine when every
//! archive of it is sound and no container uses it. An interrupt (the shared
//! cancellation token) aborts a running export: its stream ends in an error, so
//! the writer removes the partial file and nothing is recorded.

use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::query_parameters::ListContainersOptionsBuilder;
use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;

use super::report::{ImageResult, ImageRow};
use super::wire::{self, LazyPlan, WireCompression, WireUse};
use crate::archive::durable::{partial_path, sync_parent_dir};
use crate::archive::manifest::now_rfc3339;
use crate::archive::{
    ArchDir, ArchiveAction, Compression, ExpectedImage, Manifest, ManifestEntry, WriteOptions,
    verify_entry, write_archive,
};
use crate::interrupt::abort_on_cancel;
use crate::progress::{Progress, Task};

/// Why an image was not archived when an interrupt stopped the run.
pub const INTERRUPTED: &str = "not archived: bunker was interrupted";

/// How images are archived in this run.
#[derive(Debug, Clone, Copy)]
pub struct ArchiveSettings {
    pub compression: Compression,
    pub level: Option<u32>,
    /// Compression threads per image (0: one per core).
    pub threads: usize,
    /// Re-archive even when the manifest has the image.
    pub force: bool,
    /// Re-hash a file before skipping it.
    pub verify: bool,
    /// Remove the image from the engine once archived.
    pub delete: bool,
    /// How exports cross the SSH link (`--wire-compression`).
    pub wire: WireCompression,
}

/// One project's use of an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageUse {
    pub project: String,
    /// The name exactly as this project's Compose file resolves it.
    pub image: String,
    pub services: Vec<String>,
    pub action: ArchiveAction,
    /// The name the running containers use, when `image` is the name bunker gave a
    /// running image whose tag moved (`image-archive --deployed`).
    pub deployed_as: Option<String>,
}

/// One image on the engine and every project that needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageTarget {
    /// The name exported (the first project's spelling).
    pub reference: String,
    pub uses: Vec<ImageUse>,
}

/// What every image job shares.
pub struct Shared<'run> {
    pub docker: &'run Docker,
    pub engine: &'run str,
    pub arch_dir: &'run ArchDir,
    /// The in-memory manifest: what manifest.json on disk says. Held only for
    /// moments, never across file work.
    pub manifest: &'run Mutex<Manifest>,
    /// Taken by each manifest save (the file work runs on a blocking thread),
    /// so saves happen one at a time and none is lost.
    pub save_turn: tokio::sync::Mutex<()>,
    pub settings: ArchiveSettings,
    pub progress: &'run Progress,
    /// Cancelled by Ctrl-C or SIGTERM: no export starts, running ones abort.
    pub interrupt: CancellationToken,
    /// How exports cross the link ([`wire`]).
    pub wire: &'run LazyPlan<'run>,
}

impl Shared<'_> {
    fn manifest(&self) -> std::sync::MutexGuard<'_, Manifest> {
        self.manifest
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// What the engine says about the image.
struct EngineImage {
    id: String,
    repo_digests: Vec<String>,
    size: u64,
}

/// Archives `target` for each of its projects; one row per project.
pub async fn archive_target(shared: &Shared<'_>, target: &ImageTarget) -> Vec<ImageRow> {
    let started = Instant::now();
    let task = shared.progress.task(format!(
        "[archive] {} {}",
        target
            .uses
            .iter()
            .map(|image_use| image_use.project.as_str())
            .collect::<Vec<_>>()
            .join(","),
        target.reference
    ));
    let engine_image = match inspect(shared, &target.reference).await {
        Ok(engine_image) => engine_image,
        Err(message) => {
            task.finish_failed(&message);
            return failed_rows(target, &message, started.elapsed());
        }
    };

    let mut rows: Vec<Option<ImageRow>> = vec![None; target.uses.len()];
    let mut source: Option<ManifestEntry> = None;
    let mut needing: Vec<usize> = Vec::new();
    for (index, image_use) in target.uses.iter().enumerate() {
        match reusable(shared, image_use, &engine_image.id).await {
            Some(entry) => {
                rows[index] = Some(row(
                    image_use,
                    ImageResult::Skipped,
                    Some(entry.file.clone()),
                    &engine_image.id,
                ));
                source.get_or_insert(entry);
            }
            None => needing.push(index),
        }
    }

    let mut exported: Option<(u64, u64, WireUse)> = None;
    let mut export_failure: Option<String> = None;
    for index in needing {
        let image_use = &target.uses[index];
        let result = match (&source, &export_failure) {
            (Some(entry), _) => link_from(shared, entry, image_use, &engine_image)
                .await
                .map(|entry| (entry, ImageResult::Linked)),
            (None, Some(message)) => Err(message.clone()),
            (None, None) if shared.interrupt.is_cancelled() => Err(INTERRUPTED.to_string()),
            (None, None) => export(shared, target, image_use, &engine_image, &task)
                .await
                .map(|(entry, sizes)| {
                    exported = Some(sizes);
                    (entry, ImageResult::Archived)
                })
                .inspect_err(|message| export_failure = Some(message.clone())),
        };
        rows[index] = Some(match result {
            Ok((entry, result)) => {
                let file = entry.file.clone();
                source.get_or_insert(entry);
                row(image_use, result, Some(file), &engine_image.id)
            }
            Err(message) => row(
                image_use,
                ImageResult::Failed(message),
                None,
                &engine_image.id,
            ),
        });
    }

    let mut rows: Vec<ImageRow> = rows.into_iter().flatten().collect();
    if let Some((bytes_in, bytes_out, wire)) = exported
        && let Some(first) = rows
            .iter_mut()
            .find(|row| row.result == ImageResult::Archived)
    {
        first.bytes_in = bytes_in;
        first.bytes_out = bytes_out;
        first.wire = Some(wire);
    }
    let elapsed = started.elapsed();
    for row in &mut rows {
        row.duration = elapsed;
    }
    finish_task(&task, &rows);
    rows
}

/// True when `--delete` may remove the image of these rows: every archive of it is sound.
pub fn deletable(settings: &ArchiveSettings, rows: &[ImageRow]) -> bool {
    settings.delete
        && !rows.is_empty()
        && rows
            .iter()
            .all(|row| !matches!(row.result, ImageResult::Failed(_)) && row.docker_id.is_some())
}

/// With `--delete`: removes the archived image from the engine unless a
/// container uses it, and notes the outcome in the rows.
pub async fn delete_target(shared: &Shared<'_>, target: &ImageTarget, rows: &mut [ImageRow]) {
    if !deletable(&shared.settings, rows) {
        return;
    }
    let docker_id = rows[0].docker_id.clone().unwrap_or_default();
    match delete_from_engine(shared.docker, &target.reference, &docker_id).await {
        Ok(()) => rows.iter_mut().for_each(|row| row.deleted = true),
        Err(reason) => rows[0].kept = Some(reason),
    }
}

async fn inspect(shared: &Shared<'_>, reference: &str) -> Result<EngineImage, String> {
    match shared.docker.inspect_image(reference).await {
        Ok(inspect) => match inspect.id.filter(|id| !id.is_empty()) {
            Some(id) => Ok(EngineImage {
                id,
                repo_digests: inspect.repo_digests.unwrap_or_default(),
                size: inspect.size.map_or(0, |size| size.max(0) as u64),
            }),
            None => Err(format!(
                "the engine {} reports no image ID for {reference}",
                shared.engine
            )),
        },
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => Err(format!(
            "image {reference} does not exist on the engine {}: check the name, or pull or build it \
             first (bunker image-build)",
            shared.engine
        )),
        Err(error) => Err(format!(
            "cannot inspect {reference} on the engine {}: {error}",
            shared.engine
        )),
    }
}

/// The project's manifest entry when it can be kept as it is.
async fn reusable(
    shared: &Shared<'_>,
    image_use: &ImageUse,
    docker_id: &str,
) -> Option<ManifestEntry> {
    if shared.settings.force {
        return None;
    }
    let entry = shared
        .manifest()
        .reusable_entry(
            shared.arch_dir,
            &image_use.project,
            &image_use.image,
            docker_id,
        )?
        .clone();
    if entry.compression != shared.settings.compression {
        return None;
    }
    if shared.settings.verify || shared.settings.delete {
        let arch_dir = shared.arch_dir.clone();
        let checked = entry.clone();
        let report = tokio::task::spawn_blocking(move || verify_entry(&arch_dir, &checked))
            .await
            .ok()?;
        if !report.ok() {
            shared.progress.println(format!(
                "{}: {} fails verification, archiving it again: {}",
                image_use.project,
                entry.file,
                report.problems.join("; ")
            ));
            return None;
        }
    }
    Some(entry)
}

/// Exports the image into this project's archive file and records it.
async fn export(
    shared: &Shared<'_>,
    target: &ImageTarget,
    image_use: &ImageUse,
    engine_image: &EngineImage,
    task: &Task,
) -> Result<(ManifestEntry, (u64, u64, WireUse)), String> {
    let relative = new_file(
        shared,
        image_use,
        &engine_image.id,
        shared.settings.compression,
    );
    let destination = shared.arch_dir.resolve(&relative);
    let options = WriteOptions {
        compression: shared.settings.compression,
        level: shared.settings.level,
        threads: shared.settings.threads,
        expected: ExpectedImage {
            reference: Some(target.reference.clone()),
            image_id: Some(engine_image.id.clone()),
        },
    };
    // The engine's size is the layers' content; the tar adds headers, so the
    // bar grows when the stream passes the estimate.
    let mut length = engine_image.size;
    task.set_length(length);
    let mut reported = 0u64;
    let mut on_progress = |consumed: u64| {
        if consumed > length {
            length = consumed + consumed / 64;
            task.set_length(length);
        }
        task.advance(consumed.saturating_sub(reported));
        reported = consumed;
    };
    let started = Instant::now();
    let mut written = None;
    let mut wire_failure = None;
    let plan = shared.wire.get().await;
    if let Some((stream, received)) = wire::export_stream(plan, &target.reference) {
        match write_archive(
            abort_on_cancel(stream, shared.interrupt.clone()),
            &destination,
            &options,
            &mut on_progress,
        )
        .await
        {
            Ok(done) => {
                let received = received.load(Ordering::Relaxed);
                let mode = &plan.summary.mode;
                written = Some((done, wire::wire_use(mode, received, started.elapsed())));
            }
            Err(error) if !shared.interrupt.is_cancelled() => {
                // A route that failed is no reason to fail the image: retry through the API.
                shared.progress.println(format!(
                    "{}: the compressed export failed ({error:#}); exporting it again through \
                     the engine API",
                    target.reference
                ));
                wire_failure = Some(error);
            }
            Err(error) => wire_failure = Some(error),
        }
    }
    let written = match (written, wire_failure) {
        (Some(done), _) => Ok(done),
        (None, Some(error)) if shared.interrupt.is_cancelled() => Err(error),
        (None, _) => {
            let started = Instant::now();
            let counted = Arc::new(AtomicU64::new(0));
            let counter = counted.clone();
            let stream = shared
                .docker
                .export_image(&target.reference)
                .inspect(move |chunk| {
                    if let Ok(bytes) = chunk {
                        counter.fetch_add(bytes.len() as u64, Ordering::Relaxed);
                    }
                });
            write_archive(
                abort_on_cancel(stream, shared.interrupt.clone()),
                &destination,
                &options,
                &mut on_progress,
            )
            .await
            .map(|done| {
                let received = counted.load(Ordering::Relaxed);
                (done, wire::wire_use("none", received, started.elapsed()))
            })
        }
    };
    let (written, wire_use) = written.map_err(|error| {
        if shared.interrupt.is_cancelled() {
            format!("{INTERRUPTED} during its export (the partial file was removed)")
        } else {
            format!(
                "{error:#}; it is not archived and nothing was recorded for it: fix the cause \
                 (the engine, the connection to it, the disk), then run bunker image-archive again"
            )
        }
    })?;
    let mut entry =
        ManifestEntry::from_written(&image_use.project, &image_use.image, &relative, &written);
    complete_entry(&mut entry, image_use, engine_image);
    record(shared, entry.clone()).await?;
    Ok((entry, (written.uncompressed_size, written.size, wire_use)))
}

/// Gives this project the archive another project already has, without a second export.
async fn link_from(
    shared: &Shared<'_>,
    source: &ManifestEntry,
    image_use: &ImageUse,
    engine_image: &EngineImage,
) -> Result<ManifestEntry, String> {
    let relative = new_file(shared, image_use, &engine_image.id, source.compression);
    let from = shared.arch_dir.resolve(&source.file);
    let to = shared.arch_dir.resolve(&relative);
    let (from_task, to_task) = (from.clone(), to.clone());
    tokio::task::spawn_blocking(move || link_or_copy(&from_task, &to_task))
        .await
        .map_err(|error| format!("the link thread failed: {error}"))?
        .map_err(|error| {
            format!(
                "cannot link or copy {} to {}: {error}",
                from.display(),
                to.display()
            )
        })?;
    let mut entry = source.clone();
    entry.project = image_use.project.clone();
    entry.image = image_use.image.clone();
    entry.file = relative;
    entry.archived_at = Some(now_rfc3339());
    complete_entry(&mut entry, image_use, engine_image);
    record(shared, entry.clone()).await?;
    Ok(entry)
}

/// The manifest `file` for a new archive of this project's image: a name the
/// manifest does not list (see [`ArchDir::new_relative_file`]).
fn new_file(
    shared: &Shared<'_>,
    image_use: &ImageUse,
    docker_id: &str,
    compression: Compression,
) -> String {
    let in_use = shared
        .manifest()
        .find(&image_use.project, &image_use.image)
        .map(|entry| entry.file.clone());
    ArchDir::new_relative_file(
        &image_use.project,
        &image_use.image,
        docker_id,
        compression,
        in_use.as_deref(),
    )
}

fn complete_entry(entry: &mut ManifestEntry, image_use: &ImageUse, engine_image: &EngineImage) {
    entry.services = image_use.services.clone();
    entry.action = Some(image_use.action);
    entry.docker_id = Some(engine_image.id.clone());
    entry.repo_digests = engine_image.repo_digests.clone();
    entry.deployed_as = image_use.deployed_as.clone();
}

/// Switches the manifest to the entry's new file: saves manifest.json with the
/// entry atomically (on a blocking thread, one save at a time), and only when
/// that succeeded updates the in-memory manifest and removes the file the
/// entry listed before. When the save fails, the new file (which nothing
/// lists) is removed and the previous file and entry stay as they were.
async fn record(shared: &Shared<'_>, entry: ManifestEntry) -> Result<(), String> {
    let _turn = shared.save_turn.lock().await;
    let new_file = shared.arch_dir.resolve(&entry.file);
    let (next, unlisted) = shared.manifest().with_entry(entry);
    let manifest_path = shared.arch_dir.manifest_path();
    let arch_dir = shared.arch_dir.clone();
    let saved = tokio::task::spawn_blocking(move || match next.save_atomic(&manifest_path) {
        Ok(()) => Ok(next),
        Err(error) => {
            let _ = std::fs::remove_file(&new_file);
            Err(format!(
                "{error:#}; the previous archive and its manifest entry are unchanged: \
                     make {} writable or free space on it, then run image-archive again",
                arch_dir.path().display()
            ))
        }
    })
    .await
    .map_err(|error| format!("the manifest save thread failed: {error}"))??;
    *shared.manifest() = saved;
    if let Some(unlisted) = unlisted {
        let old = shared.arch_dir.resolve(&unlisted);
        let removed = tokio::task::spawn_blocking({
            let old = old.clone();
            move || std::fs::remove_file(old)
        })
        .await;
        if let Ok(Err(error)) = removed
            && error.kind() != io::ErrorKind::NotFound
        {
            shared.progress.println(format!(
                "warning: cannot remove the replaced archive {}: {error}",
                old.display()
            ));
        }
    }
    Ok(())
}

/// Hard-links `from` to `to` (a copy when the file system refuses), replacing `to` atomically.
/// Callers pass a `to` that no manifest entry lists.
pub fn link_or_copy(from: &Path, to: &Path) -> io::Result<()> {
    if from == to {
        return Ok(());
    }
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let partial = partial_path(to);
    let _ = std::fs::remove_file(&partial);
    if std::fs::hard_link(from, &partial).is_err() {
        std::fs::copy(from, &partial)?;
        std::fs::File::open(&partial)?.sync_all()?;
    }
    if let Err(error) = std::fs::rename(&partial, to) {
        let _ = std::fs::remove_file(&partial);
        return Err(error);
    }
    // `to` is a name no entry lists yet: a link that might not survive a crash goes.
    sync_parent_dir(to).inspect_err(|_| {
        let _ = std::fs::remove_file(to);
    })
}

/// Removes `reference` from the engine unless a container uses the image.
async fn delete_from_engine(
    docker: &Docker,
    reference: &str,
    docker_id: &str,
) -> Result<(), String> {
    let containers = docker
        .list_containers(Some(ListContainersOptionsBuilder::new().all(true).build()))
        .await
        .map_err(|error| format!("cannot list the engine's containers: {error}"))?;
    if let Some(container) = containers
        .iter()
        .find(|container| container.image_id.as_deref() == Some(docker_id))
    {
        let name = container
            .names
            .as_ref()
            .and_then(|names| names.first())
            .map(|name| name.trim_start_matches('/').to_string())
            .or_else(|| container.id.clone())
            .unwrap_or_default();
        return Err(format!("container {name} uses it"));
    }
    docker
        .remove_image(
            reference,
            None::<bollard::query_parameters::RemoveImageOptions>,
            None,
        )
        .await
        .map(|_| ())
        .map_err(|error| format!("the engine refused to remove it: {error}"))
}

fn row(
    image_use: &ImageUse,
    result: ImageResult,
    file: Option<String>,
    docker_id: &str,
) -> ImageRow {
    ImageRow {
        project: image_use.project.clone(),
        image: image_use.image.clone(),
        services: image_use.services.clone(),
        action: image_use.action,
        result,
        file,
        docker_id: Some(docker_id.to_string()),
        bytes_in: 0,
        bytes_out: 0,
        deleted: false,
        kept: None,
        duration: Duration::ZERO,
        stale: None,
        deployed_as: image_use.deployed_as.clone(),
        wire: None,
    }
}

/// Rows for every use of an image that was never archived.
pub fn failed_rows(target: &ImageTarget, message: &str, duration: Duration) -> Vec<ImageRow> {
    target
        .uses
        .iter()
        .map(|image_use| ImageRow {
            project: image_use.project.clone(),
            image: image_use.image.clone(),
            services: image_use.services.clone(),
            action: image_use.action,
            result: ImageResult::Failed(message.to_string()),
            file: None,
            docker_id: None,
            bytes_in: 0,
            bytes_out: 0,
            deleted: false,
            kept: None,
            duration,
            stale: None,
            deployed_as: image_use.deployed_as.clone(),
            wire: None,
        })
        .collect()
}

fn finish_task(task: &Task, rows: &[ImageRow]) {
    let words: Vec<String> = rows
        .iter()
        .map(|row| format!("{} {}", row.project, row.result.word()))
        .collect();
    let failure = rows.iter().find_map(|row| match &row.result {
        ImageResult::Failed(message) => Some(message.clone()),
        _ => None,
    });
    match failure {
        Some(message) => task.finish_failed(message),
        None if rows.iter().all(|row| row.result == ImageResult::Skipped) => {
            task.finish_skipped(format!("unchanged ({})", words.join(", ")))
        }
        None => {
            let wire = rows.iter().find_map(|row| row.wire.as_ref()).map(|wire| {
                format!(
                    "; {} on the wire ({}, {:.0} Mbit/s)",
                    super::report::human_bytes(wire.bytes_received),
                    wire.mode,
                    wire.mbit_per_s
                )
            });
            task.finish_ok(format!("{}{}", words.join(", "), wire.unwrap_or_default()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_or_copy_replaces_the_destination_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let from = dir.path().join("a/file.tar.gz");
        let to = dir.path().join("b/file.tar.gz");
        std::fs::create_dir_all(from.parent().unwrap()).unwrap();
        std::fs::write(&from, b"new").unwrap();
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::write(&to, b"old").unwrap();
        link_or_copy(&from, &to).unwrap();
        assert_eq!(std::fs::read(&to).unwrap(), b"new");
        use std::os::unix::fs::MetadataExt;
        assert_eq!(
            std::fs::metadata(&from).unwrap().ino(),
            std::fs::metadata(&to).unwrap().ino()
        );
        link_or_copy(&from, &from).unwrap();
        assert_eq!(std::fs::read(&from).unwrap(), b"new");
    }
}

//! Runs a restore plan (or its dry run) against an engine.
//!
//! Per image: compare what the engine has under the recorded name with what the
//! archive recorded (by ID where the engine's image store makes IDs comparable,
//! else by layers and config: [`crate::image::identity`]); skip when it is the
//! same image, only tag when the image is there under other names, otherwise load
//! from the first sound copy, then check the name now holds the archived image
//! (re-tagging when the name is missing).
//! Images that share an ID run one after the other (the second is then a re-tag,
//! and a failed load's clean-up can never remove what the other loaded); all
//! others run `jobs` at a time. One image failing never stops the others; an
//! interrupt (Ctrl-C, SIGTERM) starts no new image and aborts the running
//! loads, cleaning up after them as after any failed load.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bollard::Docker;
use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;

use super::engine_state::{find_recorded, id_exists, image_id, inspect, remove, short_id, tag};
use super::load::{CheckOrder, LoadFailure, Loaded, load_verified, wire_encoding};
use super::plan::{RestoreItem, RestorePlan};
use super::report::{ItemResult, Outcome, RestoreReport};
use super::source::ArchiveChoice;
use super::wire::{WireEncoding, WireSettings};
use crate::archive::reader::read_error;
use crate::archive::{ArchDir, ExpectedFile, ManifestEntry, scan_archive};
use crate::image::identity::{ImageStore, Verdict, compare};
use crate::progress::{Progress, Task};

/// How to run.
#[derive(Debug, Clone)]
pub struct RestoreOptions {
    /// Images (or chains of images sharing an ID) restored at once.
    pub jobs: usize,
    /// Load even when the engine already has the recorded ID under the name.
    pub force: bool,
    /// Read the manifest and the engine only.
    pub dry_run: bool,
    /// With `dry_run`: hash the files that would be loaded.
    pub verify: bool,
    /// Cancelled by Ctrl-C or SIGTERM ([`crate::interrupt`]).
    pub interrupt: CancellationToken,
    /// What travels to the engine (`--wire-compression` and what the engine reads).
    pub wire: WireSettings,
    /// The target engine's image store (from its facts): what its image IDs are.
    pub image_store: ImageStore,
}

/// Why an image was not restored when an interrupt stopped the run.
pub const INTERRUPTED: &str = "not restored: bunker was interrupted";

/// Restores `plan` onto the engine; never stops early.
pub async fn restore(
    docker: &Docker,
    engine_name: &str,
    choice: &ArchiveChoice,
    plan: &RestorePlan,
    options: &RestoreOptions,
    progress: &Progress,
) -> RestoreReport {
    let chains = chains_by_id(&plan.items);
    let mut results: Vec<(usize, ItemResult)> = futures_util::stream::iter(chains)
        .map(|chain| async move {
            let mut done = Vec::new();
            for index in chain {
                let item = &plan.items[index];
                let result = if options.interrupt.is_cancelled() {
                    failed(item, INTERRUPTED.to_string())
                } else if options.dry_run {
                    preview_item(docker, &choice.arch_dir, item, options).await
                } else {
                    restore_item(docker, &choice.arch_dir, item, options, progress).await
                };
                done.push((index, result));
            }
            done
        })
        .buffer_unordered(options.jobs.max(1))
        .flat_map(futures_util::stream::iter)
        .collect()
        .await;
    results.sort_by_key(|(index, _)| *index);
    RestoreReport {
        engine: engine_name.to_string(),
        arch: choice.arch.clone(),
        manifest: choice.arch_dir.manifest_path().display().to_string(),
        dry_run: options.dry_run,
        images: results.into_iter().map(|(_, result)| result).collect(),
        problems: plan.problems.clone(),
        notes: plan.notes.clone(),
    }
}

/// Item indexes grouped so that items with the same recorded ID share a chain.
fn chains_by_id(items: &[RestoreItem]) -> Vec<Vec<usize>> {
    let mut chains: Vec<Vec<usize>> = Vec::new();
    let mut chain_of_id: HashMap<&str, usize> = HashMap::new();
    for (index, item) in items.iter().enumerate() {
        match item.docker_id.as_deref() {
            Some(id) => match chain_of_id.get(id) {
                Some(&chain) => chains[chain].push(index),
                None => {
                    chain_of_id.insert(id, chains.len());
                    chains.push(vec![index]);
                }
            },
            None => chains.push(vec![index]),
        }
    }
    chains
}

fn result(item: &RestoreItem, outcome: Outcome, detail: impl Into<String>) -> ItemResult {
    ItemResult {
        image: item.image.clone(),
        projects: item.projects.clone(),
        docker_id: item.docker_id.clone(),
        outcome,
        file: None,
        bytes_sent: 0,
        wire: None,
        detail: detail.into(),
        problems: Vec::new(),
    }
}

fn failed(item: &RestoreItem, problem: String) -> ItemResult {
    let mut failed = result(item, Outcome::Failed, "not restored");
    failed.problems.push(problem);
    failed
}

/// What the engine has before anything is done.
struct Before {
    /// The ID the recorded name resolves to.
    name_id: Option<String>,
    /// How the image under the recorded name compares with the archived one.
    name_verdict: Option<Verdict>,
    /// The engine ID of the archived image under other names, when it is there.
    elsewhere: Option<String>,
    /// Which of the IDs the archived image may have existed (a failed load's
    /// clean-up leaves those alone).
    ids_present: Vec<String>,
}

async fn look(docker: &Docker, item: &RestoreItem, store: ImageStore) -> Result<Before, String> {
    let named = inspect(docker, &item.image).await?;
    let name_verdict = named
        .as_ref()
        .map(|image| compare(&item.identity, image, store));
    let elsewhere = match &name_verdict {
        Some(verdict) if verdict.is_same() => None,
        _ => find_recorded(docker, &item.identity, &[], store).await?,
    };
    let mut ids_present = Vec::new();
    for id in item.identity.candidate_ids() {
        if named.as_ref().is_some_and(|image| image.id == id) || id_exists(docker, &id).await? {
            ids_present.push(id);
        }
    }
    Ok(Before {
        name_id: named.map(|image| image.id),
        name_verdict,
        elsewhere,
        ids_present,
    })
}

/// What to do, before looking at files.
enum Decision {
    Skip(String),
    Retag(String),
    Load,
}

/// Skips only an image known to be the archived one: an image whose identity is
/// uncertain (an older manifest on another image store) is loaded again, which
/// is always safe.
fn decide(before: &Before, force: bool) -> Decision {
    if force {
        return Decision::Load;
    }
    if let (Some(name_id), Some(Verdict::Same(how))) = (&before.name_id, &before.name_verdict) {
        return Decision::Skip(format!(
            "already on the engine as {} ({how})",
            short_id(name_id)
        ));
    }
    if let Some(id) = &before.elsewhere {
        let why = match &before.name_id {
            Some(other) => format!("the name pointed at {}", short_id(other)),
            None => "the name was missing".to_string(),
        };
        return Decision::Retag(format!("{} was on the engine; {why}", short_id(id)));
    }
    Decision::Load
}

/// Restores the image, then gives it back the name its containers used, if it
/// was archived under a name of its own (`image-archive --deployed`).
async fn restore_item(
    docker: &Docker,
    arch_dir: &ArchDir,
    item: &RestoreItem,
    options: &RestoreOptions,
    progress: &Progress,
) -> ItemResult {
    let mut done = restore_image(docker, arch_dir, item, options, progress).await;
    let (Some(name), Some(id)) = (&item.deployed_as, &item.docker_id) else {
        return done;
    };
    if done.outcome == Outcome::Failed {
        return done;
    }
    match image_id(docker, name).await {
        Ok(now) if now.as_deref() == Some(id.as_str()) => {}
        Ok(_) => match tag(docker, id, name).await {
            Ok(()) => {
                if done.outcome == Outcome::Skipped {
                    done.outcome = Outcome::Retagged;
                }
                done.detail
                    .push_str(&format!("; tagged {name} (the name its containers used)"));
            }
            Err(problem) => {
                done.outcome = Outcome::Failed;
                done.problems.push(problem);
            }
        },
        Err(problem) => {
            done.outcome = Outcome::Failed;
            done.problems.push(problem);
        }
    }
    done
}

async fn restore_image(
    docker: &Docker,
    arch_dir: &ArchDir,
    item: &RestoreItem,
    options: &RestoreOptions,
    progress: &Progress,
) -> ItemResult {
    let task = progress.task(format!("[restore] {}", item.image));
    let before = match look(docker, item, options.image_store).await {
        Ok(before) => before,
        Err(problem) => {
            task.finish_failed(&problem);
            return failed(item, problem);
        }
    };
    match decide(&before, options.force) {
        Decision::Skip(detail) => {
            task.finish_skipped(&detail);
            return result(item, Outcome::Skipped, detail);
        }
        Decision::Retag(detail) => {
            let id = before.elsewhere.as_deref().unwrap_or_default();
            return match tag(docker, id, &item.image).await {
                Ok(()) => {
                    let detail = format!("{detail}; tagged");
                    task.finish_ok(&detail);
                    result(item, Outcome::Retagged, detail)
                }
                Err(problem) => {
                    task.finish_failed(&problem);
                    failed(item, problem)
                }
            };
        }
        Decision::Load => {}
    }
    let mut problems = Vec::new();
    // Bytes handed to the engine by failed attempts too, for the report.
    let sent = Arc::new(AtomicU64::new(0));
    for source in &item.sources {
        if options.interrupt.is_cancelled() {
            problems.push(INTERRUPTED.to_string());
            break;
        }
        let path = arch_dir.resolve(&source.file);
        if !path.is_file() {
            problems.push(missing_file_problem(arch_dir, source));
            continue;
        }
        let encoding = match wire_encoding(&path, source, &options.wire) {
            Ok(encoding) => encoding,
            Err(failure) => {
                problems.push(failure.message().to_string());
                continue;
            }
        };
        // Progress counts what is read: the file as stored, else the tar.
        let length = match encoding {
            WireEncoding::Stored(_) => Some(source.size),
            _ => source.uncompressed_size,
        };
        if let Some(length) = length {
            task.set_length(length);
        }
        task.set_message(format!("{}, sent {encoding}", source.file));
        let advance = {
            let task = task.clone();
            move |bytes| task.advance(bytes)
        };
        let on_wire = {
            let sent = sent.clone();
            move |bytes| {
                sent.fetch_add(bytes, Ordering::Relaxed);
            }
        };
        match load_verified(
            docker,
            &path,
            source,
            CheckOrder::for_local_file(),
            encoding,
            advance,
            on_wire,
            &options.interrupt,
        )
        .await
        {
            Ok(loaded) => {
                let mut done = check_after_load(docker, item, &loaded, options.image_store).await;
                done.file = Some(source.file.clone());
                done.bytes_sent = loaded.bytes_sent;
                done.wire = Some(encoding.to_string());
                done.problems.splice(0..0, problems);
                finish_task(&task, &done);
                return done;
            }
            Err(failure) => {
                let cleanup = clean_up(docker, item, &before).await;
                let mut problem = match &failure {
                    LoadFailure::Corrupt(message) => format!("CORRUPT: {message}"),
                    LoadFailure::Interrupted(message) => format!("not restored: {message}"),
                    other => other.message().to_string(),
                };
                if let Some(cleanup) = cleanup {
                    problem.push_str(&format!(" ({cleanup})"));
                }
                problems.push(problem);
                if let LoadFailure::Engine(_) | LoadFailure::Interrupted(_) = failure {
                    break;
                }
            }
        }
    }
    let mut done = result(item, Outcome::Failed, "not restored");
    done.problems = problems;
    done.bytes_sent = sent.load(Ordering::Relaxed);
    if done.problems.is_empty() {
        done.problems
            .push("the manifest lists no archive file for it".to_string());
    }
    finish_task(&task, &done);
    done
}

fn finish_task(task: &Task, done: &ItemResult) {
    if done.outcome == Outcome::Failed {
        task.finish_failed(done.problems.last().map_or("", String::as_str));
    } else {
        task.finish_ok(&done.detail);
    }
}

fn missing_file_problem(arch_dir: &ArchDir, source: &ManifestEntry) -> String {
    format!(
        "archive file {} is missing (listed for project {} in {}); restore the file from a \
         backup or archive the image again",
        arch_dir.resolve(&source.file).display(),
        source.project,
        arch_dir.manifest_path().display()
    )
}

/// After a load: the recorded name must hold the archived image (compared as
/// [`crate::image::identity::compare`] does); when the name holds something else,
/// the loaded image is looked for by its possible IDs and given the name.
async fn check_after_load(
    docker: &Docker,
    item: &RestoreItem,
    loaded: &Loaded,
    store: ImageStore,
) -> ItemResult {
    let named = match inspect(docker, &item.image).await {
        Ok(named) => named,
        Err(problem) => return failed(item, problem),
    };
    let verdict = named
        .as_ref()
        .map(|image| (image, compare(&item.identity, image, store)));
    let why_not = match verdict {
        Some((image, Verdict::Same(how))) => {
            return result(
                item,
                Outcome::Loaded,
                format!("loaded as {}, {how}", short_id(&image.id)),
            );
        }
        Some((image, Verdict::SameLayers(how))) => {
            return result(
                item,
                Outcome::Loaded,
                format!("loaded as {}, {how}", short_id(&image.id)),
            );
        }
        Some((image, Verdict::Unknown)) => {
            return result(
                item,
                Outcome::Loaded,
                format!(
                    "loaded as {} (the manifest records nothing to compare it with)",
                    short_id(&image.id)
                ),
            );
        }
        Some((image, Verdict::Different(why))) => format!("{} is {}: {why}", item.image, image.id),
        None => format!("the engine has no image {}", item.image),
    };
    let loaded_ids = loaded_image_ids(&loaded.engine_messages);
    match find_recorded(docker, &item.identity, &loaded_ids, store).await {
        Ok(Some(id)) => match tag(docker, &id, &item.image).await {
            Ok(()) => result(
                item,
                Outcome::Loaded,
                format!("loaded {}, re-tagged as the recorded name", short_id(&id)),
            ),
            Err(problem) => failed(item, problem),
        },
        Ok(None) => failed(
            item,
            format!(
                "the load finished but the engine holds no image matching the archive \
                 (recorded ID {}); {why_not}; the engine said: {}",
                item.docker_id.as_deref().unwrap_or("none"),
                loaded.engine_messages.join("; ")
            ),
        ),
        Err(problem) => failed(item, problem),
    }
}

/// IDs the engine named in its load messages (`Loaded image ID: sha256:…`, what
/// it says for an image without a name).
fn loaded_image_ids(messages: &[String]) -> Vec<String> {
    messages
        .iter()
        .flat_map(|message| message.lines())
        .filter_map(|line| line.trim().strip_prefix("Loaded image ID: "))
        .map(|id| id.trim().to_string())
        .collect()
}

/// Undoes what a failed load created, as far as the engine lets us; says what it did.
async fn clean_up(docker: &Docker, item: &RestoreItem, before: &Before) -> Option<String> {
    let mut done = Vec::new();
    for id in item.identity.candidate_ids() {
        if !before.ids_present.contains(&id) && id_exists(docker, &id).await.unwrap_or(false) {
            match remove(docker, &id).await {
                Ok(()) => done.push(format!("removed the partly loaded {}", short_id(&id))),
                Err(problem) => done.push(problem),
            }
        }
    }
    let now = image_id(docker, &item.image).await.ok().flatten();
    if now != before.name_id {
        match &before.name_id {
            Some(old) => match tag(docker, old, &item.image).await {
                Ok(()) => done.push(format!("gave {} back to {}", item.image, short_id(old))),
                Err(problem) => done.push(problem),
            },
            None if now.is_some() => match remove(docker, &item.image).await {
                Ok(()) => done.push(format!("removed the name {} the load created", item.image)),
                Err(problem) => done.push(problem),
            },
            None => {}
        }
    }
    if done.is_empty() {
        None
    } else {
        Some(done.join("; "))
    }
}

/// Dry run: the same decision as a real run, from the engine and the files' sizes
/// (or, with `verify`, their hashes), and the name its containers used.
async fn preview_item(
    docker: &Docker,
    arch_dir: &ArchDir,
    item: &RestoreItem,
    options: &RestoreOptions,
) -> ItemResult {
    let mut preview = preview_image(docker, arch_dir, item, options).await;
    if let (Some(name), Some(id)) = (&item.deployed_as, &item.docker_id)
        && preview.outcome != Outcome::Failed
        && image_id(docker, name).await.ok().flatten().as_deref() != Some(id.as_str())
    {
        if preview.outcome == Outcome::WouldSkip {
            preview.outcome = Outcome::WouldRetag;
        }
        preview.detail.push_str(&format!(
            "; would tag {name} (the name its containers used)"
        ));
    }
    preview
}

async fn preview_image(
    docker: &Docker,
    arch_dir: &ArchDir,
    item: &RestoreItem,
    options: &RestoreOptions,
) -> ItemResult {
    let before = match look(docker, item, options.image_store).await {
        Ok(before) => before,
        Err(problem) => return failed(item, problem),
    };
    match decide(&before, options.force) {
        Decision::Skip(detail) => return result(item, Outcome::WouldSkip, detail),
        Decision::Retag(detail) => return result(item, Outcome::WouldRetag, detail),
        Decision::Load => {}
    }
    let mut problems = Vec::new();
    for source in &item.sources {
        let path = arch_dir.resolve(&source.file);
        let size = match std::fs::metadata(&path) {
            Ok(metadata) if metadata.is_file() => metadata.len(),
            _ => {
                problems.push(missing_file_problem(arch_dir, source));
                continue;
            }
        };
        if size != source.size {
            problems.push(format!(
                "CORRUPT: archive {} is {size} bytes, the manifest says {}",
                path.display(),
                source.size
            ));
            continue;
        }
        let mut detail = format!("from {} ({} bytes)", source.file, size);
        if options.verify {
            match verify_file(&path, source).await {
                Ok(()) => detail.push_str(", verified"),
                Err(problem) => {
                    problems.push(problem);
                    continue;
                }
            }
        }
        let mut preview = result(item, Outcome::WouldLoad, detail);
        preview.file = Some(source.file.clone());
        preview.problems = problems;
        return preview;
    }
    let mut preview = result(item, Outcome::Failed, "no sound archive file");
    preview.problems = problems;
    preview
}

async fn verify_file(path: &std::path::Path, entry: &ManifestEntry) -> Result<(), String> {
    let expected = ExpectedFile::from_entry(entry);
    let owned_path = path.to_path_buf();
    let image = expected.image.clone();
    let scan = tokio::task::spawn_blocking(move || scan_archive(&owned_path, image))
        .await
        .map_err(|error| format!("the verify thread failed: {error}"))?
        .map_err(|error| read_error(path, error).to_string())?;
    let mismatches = expected.mismatches(&scan);
    if mismatches.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "CORRUPT: archive {}: {}",
            path.display(),
            mismatches.join("; ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(image: &str, id: Option<&str>) -> RestoreItem {
        RestoreItem {
            image: image.into(),
            docker_id: id.map(str::to_string),
            identity: Default::default(),
            projects: vec!["p".into()],
            sources: vec![],
            deployed_as: None,
        }
    }

    #[test]
    fn images_sharing_an_id_run_in_one_chain() {
        let items = vec![
            item("a:1", Some("sha256:1")),
            item("b:1", Some("sha256:2")),
            item("c:1", Some("sha256:1")),
            item("d:1", None),
            item("e:1", None),
        ];
        assert_eq!(
            chains_by_id(&items),
            vec![vec![0, 2], vec![1], vec![3], vec![4]]
        );
    }

    #[test]
    fn only_the_same_image_is_skipped_and_only_a_found_one_retagged() {
        let before = |verdict: Option<Verdict>, elsewhere: Option<&str>| Before {
            name_id: verdict.as_ref().map(|_| "sha256:1".to_string()),
            name_verdict: verdict,
            elsewhere: elsewhere.map(str::to_string),
            ids_present: vec![],
        };
        let same = before(Some(Verdict::Same("ID".into())), None);
        assert!(matches!(decide(&same, false), Decision::Skip(_)));
        assert!(matches!(decide(&same, true), Decision::Load));
        // Same layers with no config recorded is not enough to skip a load.
        let weak = before(Some(Verdict::SameLayers("layers".into())), None);
        assert!(matches!(decide(&weak, false), Decision::Load));
        let unknown = before(Some(Verdict::Unknown), None);
        assert!(matches!(decide(&unknown, false), Decision::Load));
        let stale = before(Some(Verdict::Different("other".into())), None);
        assert!(matches!(decide(&stale, false), Decision::Load));
        let elsewhere = before(None, Some("sha256:2"));
        assert!(matches!(decide(&elsewhere, false), Decision::Retag(_)));
        let renamed = before(Some(Verdict::Different("other".into())), Some("sha256:2"));
        assert!(matches!(decide(&renamed, false), Decision::Retag(_)));
    }

    #[test]
    fn untagged_loads_name_their_id() {
        let messages = vec![
            "Loaded image: a:1".to_string(),
            "Loaded image ID: sha256:abc\nLoaded image ID: sha256:def".to_string(),
        ];
        assert_eq!(loaded_image_ids(&messages), ["sha256:abc", "sha256:def"]);
    }
}

//! `archive verify --load`: prove an archive loads, by loading it.
//!
//! Per archive file: the file is checked whole against its manifest entry, then
//! its tar is loaded under a scratch name (`bunker-verify/<run>:<n>`, never the
//! recorded names: [`crate::archive::retag`]), the loaded image is compared with
//! what the archive recorded ([`crate::image::identity`]), optionally a command
//! runs in a throwaway container of it with no network, and everything the check
//! created is removed again: the container, the scratch name, and the image when
//! it was not on the engine before. An image or tag that was there before is
//! never moved or removed.
//!
//! `docker load` skips layers whose chain the engine already has, so a load into
//! an engine that holds the image proves little about those layers. Each result
//! says how many layers the engine really read from the archive (those whose
//! diff-ID chain it did not have before); a scratch engine reads them all.

use std::collections::{HashMap, HashSet};

use bollard::Docker;
use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{
    ListImagesOptions, LogsOptions, RemoveContainerOptions, RemoveImageOptions,
    WaitContainerOptions,
};
use futures_util::StreamExt;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::engine_state::{inspect, short_id};
use super::load::{LoadFailure, load_renamed};
use crate::archive::{ArchDir, ManifestEntry};
use crate::image::identity::{ImageStore, Verdict, compare};

/// The label on every container a check creates (its value is the run's token).
pub const CONTAINER_LABEL: &str = "bunker.verify";
/// Lines of a failed command's output kept for the report.
const OUTPUT_LINES: &str = "20";

/// What the engine held before the check: image IDs (with whether they had a
/// name) and every layer chain of those images.
#[derive(Debug, Default)]
pub struct EngineBefore {
    named: HashMap<String, bool>,
    chains: HashSet<String>,
}

impl EngineBefore {
    /// Reads every image on the engine (one inspect each, for its layers).
    pub async fn read(docker: &Docker) -> Result<EngineBefore, String> {
        let images = docker
            .list_images(Some(ListImagesOptions {
                all: true,
                ..Default::default()
            }))
            .await
            .map_err(|error| format!("cannot list the engine's images: {error}"))?;
        let mut before = EngineBefore::default();
        for image in images {
            let named = image
                .repo_tags
                .iter()
                .any(|tag| !tag.is_empty() && tag != "<none>:<none>");
            before.named.insert(image.id.clone(), named);
            if let Some(engine_image) = inspect(docker, &image.id).await? {
                for length in 1..=engine_image.diff_ids.len() {
                    before
                        .chains
                        .insert(chain(&engine_image.diff_ids[..length]));
                }
            }
        }
        Ok(before)
    }

    /// Layers of `diff_ids` the engine does not have (by chain), so a load reads them.
    pub fn layers_to_read(&self, diff_ids: &[String]) -> usize {
        let present = (1..=diff_ids.len())
            .take_while(|length| self.chains.contains(&chain(&diff_ids[..*length])))
            .count();
        diff_ids.len() - present
    }
}

fn chain(diff_ids: &[String]) -> String {
    diff_ids.join(",")
}

/// How a check went for one archive file.
#[derive(Debug, Clone, Serialize)]
pub struct Trial {
    pub file: String,
    pub image: String,
    pub projects: Vec<String>,
    pub ok: bool,
    /// The scratch name it was loaded under.
    pub scratch_name: String,
    /// The ID the engine gave the loaded image.
    pub loaded_id: Option<String>,
    /// The engine had this image (by ID) before the check: the load added only a name.
    pub was_present: bool,
    /// Layers of the image, and those the engine read from the archive.
    pub layers: usize,
    pub layers_read: usize,
    /// How the loaded image compares with what the archive recorded.
    pub identity: Option<String>,
    pub run: Option<RunResult>,
    /// What failed, in order.
    pub problems: Vec<String>,
    /// What the clean-up could not remove (named, with the command to remove it).
    pub left_behind: Vec<String>,
}

/// The command's run in a throwaway container.
#[derive(Debug, Clone, Serialize)]
pub struct RunResult {
    pub command: Vec<String>,
    pub exit_code: Option<i64>,
    /// The last lines of its output when it failed.
    pub output: Vec<String>,
}

/// One check's settings.
pub struct TrialSettings<'a> {
    pub arch_dir: &'a ArchDir,
    pub store: ImageStore,
    /// The command to run in the loaded image (`docker run IMAGE COMMAND…`).
    pub run: Option<&'a [String]>,
    /// This run's token: scratch names and container labels carry it.
    pub token: &'a str,
    pub interrupt: &'a CancellationToken,
}

/// Loads the file of `entry` under `scratch_name`, checks it, runs the command,
/// cleans up.
pub async fn trial(
    docker: &Docker,
    entry: &ManifestEntry,
    projects: Vec<String>,
    scratch_name: String,
    before: &EngineBefore,
    settings: &TrialSettings<'_>,
) -> Trial {
    let mut result = Trial {
        file: entry.file.clone(),
        image: entry.image.clone(),
        projects,
        ok: false,
        scratch_name: scratch_name.clone(),
        loaded_id: None,
        was_present: false,
        layers: entry.layers.len(),
        layers_read: before.layers_to_read(&entry.layers),
        identity: None,
        run: None,
        problems: Vec::new(),
        left_behind: Vec::new(),
    };
    let recorded = entry.recorded_identity();
    // An image that is on the engine with no name would be deleted with the scratch
    // name afterwards: never load over it.
    for id in recorded.candidate_ids() {
        if before.named.get(&id) == Some(&false) {
            result.problems.push(format!(
                "not loaded: the engine holds this image without a name (ID {}), and \
                 removing the scratch name afterwards would delete it; check against a \
                 scratch engine, or tag it first",
                short_id(&id)
            ));
            return result;
        }
    }
    match inspect(docker, &scratch_name).await {
        Ok(None) => {}
        Ok(Some(_)) => {
            result.problems.push(format!(
                "not loaded: the scratch name {scratch_name} is already taken on the engine"
            ));
            return result;
        }
        Err(error) => {
            result.problems.push(error);
            return result;
        }
    }

    let path = settings.arch_dir.resolve(&entry.file);
    let loaded = load_renamed(docker, &path, entry, &scratch_name, settings.interrupt).await;
    if let Err(failure) = loaded {
        result.problems.push(match failure {
            LoadFailure::Corrupt(message) => format!(
                "refused before the engine saw a whole tar: {message}; re-archive the image \
                 (bunker image-archive) or restore the file from a backup"
            ),
            other => other.message().to_string(),
        });
        // A broken load may still have created the scratch name.
        clean_up(docker, &mut result, None, before).await;
        return result;
    }

    match inspect(docker, &scratch_name).await {
        Ok(Some(image)) => {
            result.was_present = before.named.contains_key(&image.id);
            result.loaded_id = Some(image.id.clone());
            match compare(&recorded, &image, settings.store) {
                Verdict::Same(how) | Verdict::SameLayers(how) => result.identity = Some(how),
                Verdict::Unknown => {
                    result.identity = Some(
                        "loaded; the manifest records nothing to compare it with (an older \
                         manifest)"
                            .to_string(),
                    );
                }
                Verdict::Different(what) => result.problems.push(format!(
                    "the engine loaded another image than the archive recorded: {what}"
                )),
            }
        }
        Ok(None) => result.problems.push(format!(
            "the load finished but the engine has no image {scratch_name}"
        )),
        Err(error) => result.problems.push(error),
    }

    let mut container = None;
    if result.problems.is_empty()
        && let Some(command) = settings.run
    {
        let (run, created) = run_command(docker, &scratch_name, command, settings).await;
        container = created;
        match run.exit_code {
            Some(0) => {}
            Some(code) => result.problems.push(format!(
                "`{}` exited with status {code} in the loaded image",
                command.join(" ")
            )),
            None => result.problems.push(format!(
                "`{}` did not run to its end: {}",
                command.join(" "),
                run.output.join("; ")
            )),
        }
        result.run = Some(run);
    }
    clean_up(docker, &mut result, container, before).await;
    result.ok = result.problems.is_empty() && result.left_behind.is_empty();
    result
}

/// Creates, starts and waits for a container of `image` running `command` with no
/// network; the container's ID is returned for the clean-up.
async fn run_command(
    docker: &Docker,
    image: &str,
    command: &[String],
    settings: &TrialSettings<'_>,
) -> (RunResult, Option<String>) {
    let mut result = RunResult {
        command: command.to_vec(),
        exit_code: None,
        output: Vec::new(),
    };
    let body = ContainerCreateBody {
        image: Some(image.to_string()),
        cmd: Some(command.to_vec()),
        labels: Some(HashMap::from([(
            CONTAINER_LABEL.to_string(),
            settings.token.to_string(),
        )])),
        network_disabled: Some(true),
        host_config: Some(HostConfig {
            network_mode: Some("none".to_string()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let id = match docker.create_container(None, body).await {
        Ok(created) => created.id,
        Err(error) => {
            result
                .output
                .push(format!("cannot create a container of {image}: {error}"));
            return (result, None);
        }
    };
    if let Err(error) = docker.start_container(&id, None).await {
        result
            .output
            .push(format!("cannot start `{}`: {error}", command.join(" ")));
        return (result, Some(id));
    }
    let options = WaitContainerOptions {
        condition: "not-running".to_string(),
    };
    let mut waits = Box::pin(docker.wait_container(&id, Some(options)));
    let exit = tokio::select! {
        exit = waits.next() => exit,
        () = settings.interrupt.cancelled() => None,
    };
    drop(waits);
    result.exit_code = match exit {
        Some(Ok(response)) => Some(response.status_code),
        Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => Some(code),
        Some(Err(error)) => {
            result
                .output
                .push(format!("lost the container while waiting for it: {error}"));
            None
        }
        None => {
            result
                .output
                .push("bunker was interrupted while the command ran".to_string());
            None
        }
    };
    if result.exit_code.is_some_and(|code| code != 0) {
        result.output.extend(output_tail(docker, &id).await);
    }
    (result, Some(id))
}

async fn output_tail(docker: &Docker, id: &str) -> Vec<String> {
    let options = LogsOptions {
        stdout: true,
        stderr: true,
        tail: OUTPUT_LINES.to_string(),
        ..Default::default()
    };
    let mut lines = Vec::new();
    let mut logs = Box::pin(docker.logs(id, Some(options)));
    while let Some(Ok(output)) = logs.next().await {
        let text = output.to_string();
        lines.extend(text.lines().map(str::to_string));
    }
    lines
}

/// Removes the container and the scratch name; the image goes with the name
/// unless it was on the engine before (then only the name goes).
async fn clean_up(
    docker: &Docker,
    result: &mut Trial,
    container: Option<String>,
    before: &EngineBefore,
) {
    if let Some(id) = container {
        let options = RemoveContainerOptions {
            force: true,
            v: true,
            ..Default::default()
        };
        if let Err(error) = docker.remove_container(&id, Some(options)).await {
            result.left_behind.push(format!(
                "container {} ({error}): remove it with `docker rm -f {}`",
                short_id(&id),
                short_id(&id)
            ));
        }
    }
    let name = result.scratch_name.clone();
    let id = match inspect(docker, &name).await {
        Ok(Some(image)) => image.id,
        Ok(None) => return,
        Err(error) => {
            result.left_behind.push(format!(
                "maybe the image {name} ({error}): check with `docker image inspect {name}`"
            ));
            return;
        }
    };
    if before.named.get(&id) == Some(&false) {
        // Loading gave a nameless image this name; removing it would delete it.
        result.left_behind.push(format!(
            "the name {name} on the image {} the engine held without a name; it is kept \
             so that image stays: `docker rmi {name}` would delete it",
            short_id(&id)
        ));
        return;
    }
    let options = RemoveImageOptions {
        force: false,
        noprune: false,
        platforms: None,
    };
    if let Err(error) = docker.remove_image(&name, Some(options), None).await {
        result.left_behind.push(format!(
            "the image {name} ({error}): remove it with `docker rmi {name}`"
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_to_read_counts_from_the_first_missing_chain() {
        let ids = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
        let mut before = EngineBefore::default();
        for length in 1..=2 {
            before
                .chains
                .insert(chain(&ids(&["a", "b", "x"])[..length]));
        }
        assert_eq!(before.layers_to_read(&ids(&["a", "b", "c"])), 1);
        assert_eq!(
            before.layers_to_read(&ids(&["b", "a"])),
            2,
            "chains, not layers"
        );
        assert_eq!(before.layers_to_read(&ids(&["a", "b"])), 0);
        assert_eq!(EngineBefore::default().layers_to_read(&ids(&["a"])), 1);
    }
}

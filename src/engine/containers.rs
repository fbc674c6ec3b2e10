//! What the engine runs: each running container, the image it runs (by ID and by
//! the name it was created from) and the Compose project and service it belongs to.
//!
//! `image-catalog --deployed` and `image-archive --deployed` compare this with the
//! catalog. The name a container was created from is read from its own config
//! (`Config.Image`), not from the container list, which shows an image ID instead
//! once the name points to another image. Containers that go away between the list
//! and their inspection are left out: they no longer run.

use std::collections::{BTreeMap, HashMap};

use bollard::Docker;
use bollard::query_parameters::{InspectContainerOptions, ListContainersOptions};
use serde::Serialize;

/// Compose's labels on the containers it creates.
pub const PROJECT_LABEL: &str = "com.docker.compose.project";
pub const SERVICE_LABEL: &str = "com.docker.compose.service";
pub const WORKING_DIR_LABEL: &str = "com.docker.compose.project.working_dir";
pub const CONFIG_FILES_LABEL: &str = "com.docker.compose.project.config_files";

/// One running container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunningContainer {
    /// Container ID.
    pub id: String,
    /// Container name, without the leading `/`.
    pub name: String,
    /// The image name the container was created from (`Config.Image`).
    pub image: String,
    /// The image ID the container runs.
    pub image_id: String,
    /// The image ID `image` resolves to on the engine now (`None`: the name is gone).
    pub image_now: Option<String>,
    /// `com.docker.compose.project` (`None`: not started by Compose).
    pub project: Option<String>,
    /// `com.docker.compose.service`.
    pub service: Option<String>,
    /// `com.docker.compose.project.working_dir`.
    pub working_dir: Option<String>,
    /// `com.docker.compose.project.config_files`, split at commas.
    pub config_files: Vec<String>,
}

impl RunningContainer {
    /// True when the name it was created from now points to another image (or to none).
    pub fn tag_moved(&self) -> bool {
        self.image_now.as_deref() != Some(self.image_id.as_str())
    }
}

/// The engine's running containers, sorted by Compose project, service and name.
pub async fn running_containers(docker: &Docker) -> Result<Vec<RunningContainer>, String> {
    let summaries = docker
        .list_containers(Some(ListContainersOptions {
            all: false,
            limit: None,
            size: false,
            filters: Some(HashMap::new()),
        }))
        .await
        .map_err(|error| format!("cannot list the engine's containers: {error}"))?;
    let mut containers = Vec::new();
    let mut image_now: BTreeMap<String, Option<String>> = BTreeMap::new();
    for summary in summaries {
        let Some(id) = summary.id.clone() else {
            continue;
        };
        let inspect = match docker
            .inspect_container(&id, None::<InspectContainerOptions>)
            .await
        {
            Ok(inspect) => inspect,
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => continue,
            Err(error) => return Err(format!("cannot inspect container {id}: {error}")),
        };
        let labels = summary.labels.clone().unwrap_or_default();
        let image_id = inspect
            .image
            .clone()
            .or_else(|| summary.image_id.clone())
            .unwrap_or_default();
        let image = inspect
            .config
            .as_ref()
            .and_then(|config| config.image.clone())
            .or_else(|| summary.image.clone())
            .unwrap_or_else(|| image_id.clone());
        if !image_now.contains_key(&image) {
            let now = resolve(docker, &image).await?;
            image_now.insert(image.clone(), now);
        }
        containers.push(RunningContainer {
            name: inspect
                .name
                .as_deref()
                .map(|name| name.trim_start_matches('/').to_string())
                .unwrap_or_else(|| id.clone()),
            id,
            image_now: image_now[&image].clone(),
            image,
            image_id,
            project: labels.get(PROJECT_LABEL).cloned(),
            service: labels.get(SERVICE_LABEL).cloned(),
            working_dir: labels.get(WORKING_DIR_LABEL).cloned(),
            config_files: labels
                .get(CONFIG_FILES_LABEL)
                .map(|files| {
                    files
                        .split(',')
                        .filter(|file| !file.is_empty())
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default(),
        });
    }
    containers.sort_by(|left, right| {
        (&left.project, &left.service, &left.name).cmp(&(
            &right.project,
            &right.service,
            &right.name,
        ))
    });
    Ok(containers)
}

/// The image ID `name` resolves to, `None` when the engine has no such image.
async fn resolve(docker: &Docker, name: &str) -> Result<Option<String>, String> {
    match docker.inspect_image(name).await {
        Ok(inspect) => Ok(inspect.id),
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => Ok(None),
        Err(error) => Err(format!(
            "cannot inspect image {name} on the engine: {error}"
        )),
    }
}

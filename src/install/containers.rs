//! After `compose up`: are the project's containers actually running?
//!
//! `up --detach` succeeds as soon as the containers are started; a container whose
//! command fails a moment later is only visible on the engine. Each container of
//! the Compose project must be running, or have exited with status 0 (one-shot
//! jobs).

use std::collections::HashMap;

use bollard::Docker;
use bollard::models::ContainerSummaryStateEnum;
use bollard::query_parameters::ListContainersOptions;

/// Containers of Compose project `project` that are not running, as sentences;
/// `Err` when the engine cannot be asked. An empty project is a problem too.
pub async fn containers_not_running(docker: &Docker, project: &str) -> Result<Vec<String>, String> {
    let filters = HashMap::from([(
        "label".to_string(),
        vec![format!("com.docker.compose.project={project}")],
    )]);
    let containers = docker
        .list_containers(Some(ListContainersOptions {
            all: true,
            limit: None,
            size: false,
            filters: Some(filters),
        }))
        .await
        .map_err(|error| format!("cannot list the containers of {project}: {error}"))?;
    if containers.is_empty() {
        return Ok(vec![format!(
            "Compose reported success but the engine has no container of project {project}"
        )]);
    }
    let mut problems = Vec::new();
    for container in containers {
        let name = container
            .names
            .as_ref()
            .and_then(|names| names.first())
            .map(|name| name.trim_start_matches('/').to_string())
            .unwrap_or_else(|| container.id.clone().unwrap_or_default());
        let status = container.status.clone().unwrap_or_default();
        let fine = match container.state {
            Some(ContainerSummaryStateEnum::RUNNING) => true,
            Some(ContainerSummaryStateEnum::EXITED) => status.starts_with("Exited (0)"),
            _ => false,
        };
        if !fine {
            let state = container
                .state
                .map(|state| state.to_string())
                .unwrap_or_else(|| "unknown".to_string());
            problems.push(format!(
                "container {name} is {state} ({status}); see `docker logs {name}` on the engine"
            ));
        }
    }
    problems.sort();
    Ok(problems)
}

//! Installs projects: images first, then `docker compose up -d` per project.
//!
//! With `BUILD=false` nothing is built or pulled: every image the plan needs must
//! already be on the engine (restored from the archive), and a project missing
//! any is not started; the error names each missing image. Otherwise the images
//! are built and pulled with `image-build`'s own code (hooks, build args, the
//! same names), then Compose starts the containers without building again.

use std::collections::BTreeMap;
use std::process::Stdio;

use crate::build::{BuildFlags, BuildPlan, RunOptions, check_presence, run_plan};
use crate::catalog::Catalog;
use crate::engine::Engine;
use crate::progress::{Progress, render_table};

use super::compose::{ComposeCommand, up_arguments};
use super::containers::containers_not_running;

/// How to install.
#[derive(Debug, Clone)]
pub struct InstallOptions {
    /// `BUILD=false`: no build, no pull; images must be present.
    pub offline: bool,
    /// Pass `--wait` to Compose (containers running and healthy).
    pub wait: bool,
    /// Projects built at once when building.
    pub jobs: usize,
}

/// One project's result.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ProjectResult {
    pub project: String,
    pub installed: bool,
    pub detail: String,
    /// Images the project needs that the engine lacks (`BUILD=false`).
    pub missing_images: Vec<String>,
}

/// Every selected project's result.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct InstallReport {
    pub projects: Vec<ProjectResult>,
    /// Problems outside any project.
    pub problems: Vec<String>,
}

impl InstallReport {
    pub fn failed(&self) -> bool {
        !self.problems.is_empty() || self.projects.iter().any(|project| !project.installed)
    }

    pub fn table(&self) -> String {
        let rows: Vec<Vec<String>> = self
            .projects
            .iter()
            .map(|project| {
                vec![
                    project.project.clone(),
                    if project.installed { "up" } else { "FAILED" }.to_string(),
                    project.detail.lines().next().unwrap_or("").to_string(),
                ]
            })
            .collect();
        render_table(&["PROJECT", "RESULT", "DETAIL"], &rows)
    }
}

/// Installs the projects of `build_plan` (all from `catalog`) on `engine`.
pub async fn install(
    engine: &Engine,
    catalog: &Catalog,
    build_plan: &BuildPlan,
    compose: &ComposeCommand,
    options: &InstallOptions,
    progress: &Progress,
) -> InstallReport {
    let mut report = InstallReport {
        problems: build_plan.problems.clone(),
        ..InstallReport::default()
    };
    let blocked = match images_ready(engine, build_plan, options, progress).await {
        Ok(blocked) => blocked,
        Err(problem) => {
            report.problems.push(problem);
            return report;
        }
    };
    let socket_dir = match tempfile::Builder::new().prefix("bunker-engine-").tempdir() {
        Ok(dir) => dir,
        Err(error) => {
            report.problems.push(format!(
                "cannot create a directory for the engine socket forward: {error}"
            ));
            return report;
        }
    };
    let forward = match engine.forward_to_local_socket(&socket_dir.path().join("docker.sock")) {
        Ok(forward) => forward,
        Err(error) => {
            report.problems.push(format!("{error:#}"));
            return report;
        }
    };
    for project_plan in &build_plan.projects {
        let name = &project_plan.project;
        let mut result = ProjectResult {
            project: name.clone(),
            installed: false,
            detail: String::new(),
            missing_images: Vec::new(),
        };
        if !project_plan.problems.is_empty() {
            result.detail = project_plan.problems.join("; ");
            report.projects.push(result);
            continue;
        }
        if let Some(blocker) = blocked.get(name) {
            result.detail = blocker.message.clone();
            result.missing_images = blocker.missing.clone();
            report.projects.push(result);
            continue;
        }
        let Some(info) = catalog.projects.iter().find(|info| &info.name == name) else {
            result.detail = format!("project {name} is not in the catalog");
            report.projects.push(result);
            continue;
        };
        let task = progress.task(format!("[install] {name}"));
        let arguments = up_arguments(info, options.offline, options.wait);
        let compose_name = info.compose_name.clone().unwrap_or_else(|| name.clone());
        let outcome = match run_compose(compose, &arguments, &forward.docker_host()).await {
            Ok(()) => containers_not_running(&engine.docker, &compose_name)
                .await
                .and_then(|problems| {
                    if problems.is_empty() {
                        Ok(())
                    } else {
                        Err(problems.join("; "))
                    }
                }),
            Err(message) => Err(format!(
                "`{} {}` failed: {message}",
                compose.display(),
                arguments.join(" ")
            )),
        };
        match outcome {
            Ok(()) => {
                result.installed = true;
                result.detail = if options.offline {
                    "up (BUILD=false: --no-build --pull never)".to_string()
                } else {
                    "up".to_string()
                };
                task.finish_ok(&result.detail);
            }
            Err(message) => {
                result.detail = message;
                task.finish_failed(&result.detail);
            }
        }
        report.projects.push(result);
    }
    drop(forward);
    report
}

/// Why a project cannot be started.
struct Blocker {
    message: String,
    missing: Vec<String>,
}

/// Makes sure every project's images are on the engine; returns the projects that
/// cannot be started and why. `Err` when the engine cannot even be asked.
async fn images_ready(
    engine: &Engine,
    build_plan: &BuildPlan,
    options: &InstallOptions,
    progress: &Progress,
) -> Result<BTreeMap<String, Blocker>, String> {
    let mut blocked: BTreeMap<String, Blocker> = BTreeMap::new();
    if options.offline {
        let presence = check_presence(&engine.docker, build_plan).await?;
        let mut missing_by_project: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for needed in &presence.missing {
            missing_by_project
                .entry(needed.project.clone())
                .or_default()
                .push(needed.image.clone());
        }
        for (project, missing) in missing_by_project {
            let message = format!(
                "BUILD=false and the engine {} lacks {} image(s): {}; restore them with \
                 `bunker image-restore --project {project}` (or install with BUILD=true to \
                 build and pull)",
                engine.target,
                missing.len(),
                missing.join(", ")
            );
            blocked.insert(project, Blocker { message, missing });
        }
        return Ok(blocked);
    }
    let built = run_plan(
        &engine.docker,
        build_plan,
        RunOptions {
            jobs: options.jobs,
            fail_fast: false,
            flags: BuildFlags::default(),
        },
        progress,
    )
    .await;
    for message in built.messages() {
        progress.println(message);
    }
    for step in &built.steps {
        if let crate::build::Outcome::Failed(message) | crate::build::Outcome::Skipped(message) =
            &step.outcome
        {
            blocked
                .entry(step.project.clone())
                .or_insert_with(|| Blocker {
                    message: format!("its images could not be built or pulled: {message}"),
                    missing: Vec::new(),
                });
        }
    }
    Ok(blocked)
}

/// Runs Compose against the forwarded engine socket; on failure, the end of its output.
async fn run_compose(
    compose: &ComposeCommand,
    arguments: &[String],
    docker_host: &str,
) -> Result<(), String> {
    let output = tokio::process::Command::new(&compose.program)
        .args(&compose.prefix)
        .args(arguments)
        .env("DOCKER_HOST", docker_host)
        .env_remove("DOCKER_CONTEXT")
        .env_remove("DOCKER_TLS_VERIFY")
        .env_remove("DOCKER_CERT_PATH")
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|error| format!("cannot run {}: {error}", compose.display()))?;
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    let tail = lines[lines.len().saturating_sub(15)..].join("\n");
    Err(format!("{} \n{tail}", output.status))
}

//! Installs projects: images first, then `docker compose up -d` per project.
//!
//! With `BUILD=false` nothing is built or pulled: every image the plan needs must
//! already be on the engine (restored from the archive), and a project missing
//! any is not started; the error names each missing image. Otherwise the images
//! are built and pulled with `image-build`'s own code (hooks, build args, the
//! same names), then Compose starts the containers without building again.
//!
//! An interrupt ([`crate::interrupt`]) cuts the builds and pulls, starts no
//! further project, and stops a running Compose the way Ctrl-C in its own
//! terminal would: one SIGINT, then bunker waits for it to end. Compose runs in
//! its own process group, so a Ctrl-C at the terminal reaches it only through
//! bunker (once, not twice); on Linux it also dies with bunker, so the second
//! signal's immediate exit leaves no Compose behind.

use std::collections::BTreeMap;
use std::process::Stdio;

use tokio::io::AsyncReadExt;
use tokio_util::sync::CancellationToken;

use crate::build::{
    BuildFlags, BuildPlan, PullMode, RunOptions, StaleImage, check_presence, run_plan_interruptible,
};
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
    /// Cancelled by Ctrl-C or SIGTERM: no project starts, a running Compose is stopped.
    pub interrupt: CancellationToken,
}

/// Why a project was not started after an interrupt.
pub const NOT_STARTED: &str = "not started: bunker was interrupted";

/// One project's result.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ProjectResult {
    pub project: String,
    /// The configured instance brought up, if the project has instances.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    pub installed: bool,
    /// An interrupt kept it from starting or stopped its Compose.
    pub interrupted: bool,
    pub detail: String,
    /// Images the project needs that the engine lacks (`BUILD=false`).
    pub missing_images: Vec<String>,
}

impl ProjectResult {
    /// What the table shows: up, stopped (by an interrupt) or FAILED.
    pub fn result_word(&self) -> &'static str {
        match (self.installed, self.interrupted) {
            (true, _) => "up",
            (false, true) => "stopped",
            (false, false) => "FAILED",
        }
    }
}

/// Every selected project's result.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct InstallReport {
    pub projects: Vec<ProjectResult>,
    /// Problems outside any project.
    pub problems: Vec<String>,
    /// Images whose refresh pull failed while the engine had them: installed
    /// from the engine's copy.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub stale: Vec<StaleUse>,
}

/// A stale image of one project (see [`crate::build::StaleImage`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StaleUse {
    pub project: String,
    pub image: String,
    #[serde(flatten)]
    pub stale: StaleImage,
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
                    match &project.instance {
                        Some(instance) => format!("{}@{instance}", project.project),
                        None => project.project.clone(),
                    },
                    project.result_word().to_string(),
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
    let blocked = match images_ready(engine, build_plan, options, progress, &mut report.stale).await
    {
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
        let label = project_plan.label();
        let mut result = ProjectResult {
            project: name.clone(),
            instance: project_plan.instance.clone(),
            installed: false,
            interrupted: false,
            detail: String::new(),
            missing_images: Vec::new(),
        };
        if options.interrupt.is_cancelled() {
            result.interrupted = true;
            result.detail = NOT_STARTED.to_string();
            report.projects.push(result);
            continue;
        }
        if !project_plan.problems.is_empty() {
            result.detail = project_plan.problems.join("; ");
            report.projects.push(result);
            continue;
        }
        if let Some(blocker) = blocked.get(&label).or_else(|| blocked.get(name)) {
            result.detail = blocker.message.clone();
            result.missing_images = blocker.missing.clone();
            report.projects.push(result);
            continue;
        }
        let Some(info) = catalog
            .projects
            .iter()
            .find(|info| &info.name == name && info.instance == project_plan.instance)
        else {
            result.detail = format!("project {label} is not in the catalog");
            report.projects.push(result);
            continue;
        };
        let task = progress.task(format!("[install] {label}"));
        let arguments = up_arguments(info, options.wait);
        let compose_name = info.compose_name.clone().unwrap_or_else(|| name.clone());
        let ran = run_compose(
            compose,
            &arguments,
            &forward.docker_host(),
            &options.interrupt,
        )
        .await;
        let outcome = match ran {
            Ok(Ran::Stopped(status)) => {
                result.interrupted = true;
                result.detail = format!(
                    "`{} up` stopped: bunker was interrupted and Compose ended ({status}); \
                     containers it had already started keep running: run `bunker install` \
                     again to finish, or `{} --project-name {compose_name} down` to remove them",
                    compose.display(),
                    compose.display()
                );
                task.finish_skipped("stopped: bunker was interrupted");
                report.projects.push(result);
                continue;
            }
            Ok(Ran::Succeeded) => containers_not_running(&engine.docker, &compose_name)
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
    stale: &mut Vec<StaleUse>,
) -> Result<BTreeMap<String, Blocker>, String> {
    let mut blocked: BTreeMap<String, Blocker> = BTreeMap::new();
    if options.offline {
        // Per project plan (one per configured instance), so one instance's missing
        // images do not block another's.
        for project_plan in &build_plan.projects {
            let single = BuildPlan {
                projects: vec![project_plan.clone()],
                problems: Vec::new(),
            };
            let presence = check_presence(&engine.docker, &single).await?;
            let missing: Vec<String> = presence
                .missing
                .iter()
                .map(|needed| needed.image.clone())
                .collect();
            if missing.is_empty() {
                continue;
            }
            let project = &project_plan.project;
            let message = format!(
                "BUILD=false and the engine {} lacks {} image(s): {}; restore them with \
                 `bunker image-restore --project {project}` (or install with BUILD=true to \
                 build and pull)",
                engine.target,
                missing.len(),
                missing.join(", ")
            );
            blocked.insert(project_plan.label(), Blocker { message, missing });
        }
        return Ok(blocked);
    }
    let built = run_plan_interruptible(
        &engine.docker,
        build_plan,
        RunOptions {
            jobs: options.jobs,
            fail_fast: false,
            flags: BuildFlags::default(),
            pull_mode: PullMode::Up,
        },
        progress,
        &options.interrupt,
    )
    .await;
    // Stale images are warned about once, with the report (`report.stale`).
    for message in built
        .messages()
        .into_iter()
        .filter(|message| !message.starts_with("warning: "))
    {
        progress.println(message);
    }
    for step in &built.steps {
        if let Some(found) = &step.stale {
            stale.push(StaleUse {
                project: step.project.clone(),
                image: step.image.clone(),
                stale: found.clone(),
            });
        }
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

/// How a Compose run ended when it did not fail.
enum Ran {
    Succeeded,
    /// An interrupt stopped it; its exit status.
    Stopped(std::process::ExitStatus),
}

/// Runs Compose against the forwarded engine socket; on failure, the end of its
/// output. When `interrupt` is cancelled, Compose gets one SIGINT and is awaited.
async fn run_compose(
    compose: &ComposeCommand,
    arguments: &[String],
    docker_host: &str,
    interrupt: &CancellationToken,
) -> Result<Ran, String> {
    let mut command = tokio::process::Command::new(&compose.program);
    command
        .args(&compose.prefix)
        .args(arguments)
        .env("DOCKER_HOST", docker_host)
        .env_remove("DOCKER_CONTEXT")
        .env_remove("DOCKER_TLS_VERIFY")
        .env_remove("DOCKER_CERT_PATH")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Ctrl-C at the terminal reaches Compose only through bunker.
        .process_group(0)
        .kill_on_drop(true);
    #[cfg(target_os = "linux")]
    // SAFETY: prctl(2) is async-signal-safe and touches no memory of the parent.
    unsafe {
        command.pre_exec(|| {
            // Compose dies with bunker, even when a second signal ends bunker at once.
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = command
        .spawn()
        .map_err(|error| format!("cannot run {}: {error}", compose.display()))?;
    let stdout = read_all(child.stdout.take());
    let stderr = read_all(child.stderr.take());
    let mut interrupted = false;
    let status = tokio::select! {
        status = child.wait() => status,
        () = interrupt.cancelled() => {
            interrupted = true;
            if let Some(pid) = child.id().and_then(|pid| libc::pid_t::try_from(pid).ok()) {
                // SAFETY: kill(2) on the process group of our own child.
                unsafe { libc::kill(-pid, libc::SIGINT) };
            }
            child.wait().await
        }
    }
    .map_err(|error| format!("cannot wait for {}: {error}", compose.display()))?;
    drop(stdout.await);
    let stderr = stderr.await.unwrap_or_default();
    if interrupted {
        return Ok(Ran::Stopped(status));
    }
    if status.success() {
        return Ok(Ran::Succeeded);
    }
    let lines: Vec<&str> = stderr.lines().collect();
    let tail = lines[lines.len().saturating_sub(15)..].join("\n");
    Err(format!("{status} \n{tail}"))
}

/// Reads a child's pipe to its end in the background, as text.
fn read_all(
    pipe: Option<impl tokio::io::AsyncRead + Unpin + Send + 'static>,
) -> tokio::task::JoinHandle<String> {
    tokio::spawn(async move {
        let mut bytes = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut bytes).await;
        }
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

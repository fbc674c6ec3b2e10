//! Executing a build plan on the engine.
//!
//! Projects are independent, so up to `--jobs` of them run at once; inside a
//! project the jobs run one after the other in plan order, which is dependency
//! order. A project's `build-hook-pre` runs once, before its first job, and its
//! failure fails the whole project. A failed build makes the images built from
//! it skip (they would fail with a misleading message) while unrelated images
//! still build; `--fail-fast` stops starting new work after the first failure.
//! An interrupt ([`crate::interrupt`]) starts no new step and cuts the running
//! ones: dropping a build or pull request makes the engine abandon it, and a
//! running hook's `make` is killed. Every step ends up in the report with its
//! duration, cut and unstarted ones as skipped with the reason.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bollard::Docker;
use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;

use super::build::{BuildFlags, build_image};
use super::hook::{HOOK_TARGET, has_hook, run_hook};
use super::plan::{BuildPlan, ImageAction, ImageJob, ProjectPlan};
use super::policy::{PullDecision, PullMode, decide, needs_presence};
use super::pull::{PullFailure, pull_image, registry_of};
use crate::progress::{Progress, format_duration, render_table};

/// How to run a plan.
#[derive(Debug, Clone, Copy)]
pub struct RunOptions {
    /// Projects run at once (at least 1).
    pub jobs: usize,
    pub fail_fast: bool,
    pub flags: BuildFlags,
    /// Whose pull rules the services' `pull_policy` follows.
    pub pull_mode: PullMode,
}

/// What one report row is about; serialized as `hook`, `catalog`, `pull`, `base` or `build`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepKind {
    /// The project's `make build-hook-pre`.
    Hook,
    /// A catalog or planning problem of the project.
    Catalog,
    /// An image job.
    Image(ImageAction),
}

impl serde::Serialize for StepKind {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl StepKind {
    pub fn as_str(self) -> &'static str {
        match self {
            StepKind::Hook => "hook",
            StepKind::Catalog => "catalog",
            StepKind::Image(action) => action.as_str(),
        }
    }
}

/// How a step ended.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase", tag = "result", content = "message")]
pub enum Outcome {
    Done,
    Failed(String),
    Skipped(String),
    /// The refresh pull failed but the engine has the image: its copy is used,
    /// with this warning ([`StepResult::stale`] says more).
    Stale(String),
    /// Not pulled: the service's `pull_policy` says to use the engine's image.
    Kept(String),
}

/// One row of the final report.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StepResult {
    pub project: String,
    pub kind: StepKind,
    /// The image name (the hook target for hooks, empty for catalog problems).
    pub image: String,
    pub services: Vec<String>,
    pub outcome: Outcome,
    #[serde(serialize_with = "seconds", rename = "seconds")]
    pub duration: Duration,
    /// For [`Outcome::Stale`]: the registry, its error and the engine's copy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stale: Option<StaleImage>,
}

impl StepResult {
    /// The step of `job`'s image, ended with `outcome` after `duration`.
    fn of_job(job: &ImageJob, outcome: Outcome, duration: Duration) -> StepResult {
        StepResult {
            project: job.project.clone(),
            kind: StepKind::Image(job.action),
            image: job.image.clone(),
            services: job.services.clone(),
            outcome,
            duration,
            stale: None,
        }
    }
}

fn seconds<S: serde::Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_f64(duration.as_secs_f64())
}

impl StepResult {
    /// The word the table shows: built, pulled, ok, FAILED, skipped.
    pub fn result_word(&self) -> &'static str {
        match (&self.outcome, self.kind) {
            (Outcome::Done, StepKind::Image(ImageAction::Build)) => "built",
            (Outcome::Done, StepKind::Image(_)) => "pulled",
            (Outcome::Done, _) => "ok",
            (Outcome::Failed(_), _) => "FAILED",
            (Outcome::Skipped(_), _) => "skipped",
            (Outcome::Stale(_), _) => "stale",
            (Outcome::Kept(_), _) => "kept",
        }
    }
}

/// Every step of a run, in plan order.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct RunReport {
    pub steps: Vec<StepResult>,
    /// Problems outside any project (from the catalog).
    pub problems: Vec<String>,
}

impl RunReport {
    /// True when anything failed or was skipped because of a failure (a stale
    /// image is not a failure; see [`RunReport::stale`]).
    pub fn failed(&self) -> bool {
        !self.problems.is_empty() || self.steps.iter().any(|step| !step.outcome.succeeded())
    }

    /// Images whose refresh pull failed, so the engine's older copy was used.
    pub fn stale(&self) -> usize {
        self.steps
            .iter()
            .filter(|step| matches!(step.outcome, Outcome::Stale(_)))
            .count()
    }

    /// The summary table: one row per step with its duration.
    pub fn table(&self) -> String {
        let rows: Vec<Vec<String>> = self
            .steps
            .iter()
            .map(|step| {
                vec![
                    step.project.clone(),
                    step.kind.as_str().to_string(),
                    if step.image.is_empty() {
                        "-".to_string()
                    } else {
                        step.image.clone()
                    },
                    step.result_word().to_string(),
                    format_duration(step.duration),
                    step.services.join(","),
                ]
            })
            .collect();
        render_table(
            &["PROJECT", "ACTION", "IMAGE", "RESULT", "TIME", "SERVICES"],
            &rows,
        )
    }

    /// Failure and skip messages, one block each.
    pub fn messages(&self) -> Vec<String> {
        let mut messages = self.problems.clone();
        for step in &self.steps {
            match &step.outcome {
                Outcome::Failed(message) => messages.push(format!("FAILED {message}")),
                Outcome::Skipped(message) => messages.push(format!("skipped {message}")),
                Outcome::Stale(message) => messages.push(format!("warning: {message}")),
                Outcome::Done | Outcome::Kept(_) => {}
            }
        }
        messages
    }

    /// After an interrupt: the steps it cut (`project image action`) and how
    /// many it kept from starting, as one sentence.
    pub fn interrupted_summary(&self) -> String {
        let reason = |step: &&StepResult| match &step.outcome {
            Outcome::Skipped(message) => Some(message.clone()),
            _ => None,
        };
        let cut: Vec<String> = self
            .steps
            .iter()
            .filter(|step| reason(step).is_some_and(|message| message.contains(CUT)))
            .map(|step| format!("{} {} {}", step.project, step.kind.as_str(), step.image))
            .collect();
        let not_started = self
            .steps
            .iter()
            .filter(|step| reason(step).is_some_and(|message| message.ends_with(NOT_STARTED)))
            .count();
        let cut = if cut.is_empty() {
            "no running step was cut".to_string()
        } else {
            format!("cut {} running step(s): {}", cut.len(), cut.join(", "))
        };
        format!("{cut}; {not_started} step(s) not started")
    }

    /// `3 built, 2 pulled, 1 failed, 1 skipped, 0 stale, 0 kept`.
    pub fn summary(&self) -> String {
        let count = |word: &str| {
            self.steps
                .iter()
                .filter(|step| step.kind != StepKind::Hook && step.result_word() == word)
                .count()
        };
        format!(
            "{} built, {} pulled, {} failed, {} skipped, {} stale, {} kept",
            count("built"),
            count("pulled"),
            count("FAILED") + self.problems.len(),
            count("skipped"),
            count("stale"),
            count("kept")
        )
    }
}

/// Runs every project of `plan` on the engine.
pub async fn run_plan(
    docker: &Docker,
    plan: &BuildPlan,
    options: RunOptions,
    progress: &Progress,
) -> RunReport {
    run_plan_interruptible(docker, plan, options, progress, &CancellationToken::new()).await
}

/// What a caller that works alongside a run (image-archive) shares with it.
#[derive(Clone, Copy)]
pub struct RunWatch<'watch> {
    /// Once set, no new step starts (each is reported as stopped by
    /// `--fail-fast`). The run sets it after a failure under `--fail-fast`; the
    /// caller may set it after a failure of its own.
    pub stop: &'watch AtomicBool,
    /// Hears of every step as soon as it has ended, before the run is over.
    pub on_step: &'watch (dyn Fn(&StepResult) + Sync),
}

/// [`run_plan`], telling `watch` of each step as it ends and obeying its stop flag.
pub async fn run_plan_watched(
    docker: &Docker,
    plan: &BuildPlan,
    options: RunOptions,
    progress: &Progress,
    watch: RunWatch<'_>,
) -> RunReport {
    run_plan_until(
        docker,
        plan,
        options,
        progress,
        watch,
        &CancellationToken::new(),
    )
    .await
}

/// [`run_plan`] that stops when `interrupt` is cancelled: no step starts after
/// that, running ones are cut, and the report holds every step all the same.
pub async fn run_plan_interruptible(
    docker: &Docker,
    plan: &BuildPlan,
    options: RunOptions,
    progress: &Progress,
    interrupt: &CancellationToken,
) -> RunReport {
    let stop = AtomicBool::new(false);
    let watch = RunWatch {
        stop: &stop,
        on_step: &|_| {},
    };
    run_plan_until(docker, plan, options, progress, watch, interrupt).await
}

async fn run_plan_until(
    docker: &Docker,
    plan: &BuildPlan,
    options: RunOptions,
    progress: &Progress,
    watch: RunWatch<'_>,
    interrupt: &CancellationToken,
) -> RunReport {
    let mut finished: Vec<(usize, Vec<StepResult>)> =
        futures_util::stream::iter(plan.projects.iter().enumerate())
            .map(|(index, project)| async move {
                let steps = run_project(docker, project, options, progress, watch, interrupt).await;
                (index, steps)
            })
            .buffer_unordered(options.jobs.max(1))
            .collect()
            .await;
    finished.sort_by_key(|(index, _)| *index);
    RunReport {
        steps: finished.into_iter().flat_map(|(_, steps)| steps).collect(),
        problems: plan.problems.clone(),
    }
}

const STOPPED: &str = "not started: --fail-fast stopped the run after an earlier failure";

/// Why a step did not start after an interrupt.
pub const NOT_STARTED: &str = "not started: bunker was interrupted";

/// The start of the reason of a step an interrupt cut while it ran.
pub const CUT: &str = "cut: bunker was interrupted";

async fn run_project(
    docker: &Docker,
    project: &ProjectPlan,
    options: RunOptions,
    progress: &Progress,
    watch: RunWatch<'_>,
    interrupt: &CancellationToken,
) -> Vec<StepResult> {
    let stop = watch.stop;
    let mut steps: Vec<StepResult> = Vec::new();
    let push = |steps: &mut Vec<StepResult>, step: StepResult| {
        (watch.on_step)(&step);
        steps.push(step);
    };
    let mut failed_images: Vec<String> = Vec::new();
    let note_failure = |stop: &AtomicBool| {
        if options.fail_fast {
            stop.store(true, Ordering::SeqCst);
        }
    };
    for problem in &project.problems {
        progress.println(format!("{}: catalog: {problem}", project.project));
        push(
            &mut steps,
            StepResult {
                project: project.project.clone(),
                kind: StepKind::Catalog,
                image: String::new(),
                services: Vec::new(),
                outcome: Outcome::Failed(problem.clone()),
                duration: Duration::ZERO,
                stale: None,
            },
        );
        note_failure(stop);
    }

    let mut hook_failure: Option<String> = None;
    if project.has_builds()
        && !stop.load(Ordering::SeqCst)
        && !interrupt.is_cancelled()
        && let Some(step) = run_project_hook(project, progress, interrupt).await
    {
        if let Outcome::Failed(message) = &step.outcome {
            hook_failure = Some(message.clone());
            note_failure(stop);
        }
        push(&mut steps, step);
    }

    for job in &project.jobs {
        let skip_reason = if interrupt.is_cancelled() {
            Some(format!(
                "{}: {} {NOT_STARTED}",
                job.display_name(),
                job.image
            ))
        } else if stop.load(Ordering::SeqCst) {
            Some(format!("{}: {} {STOPPED}", job.display_name(), job.image))
        } else if hook_failure.is_some() {
            Some(format!(
                "{}: {} not {}: the project's {HOOK_TARGET} failed",
                job.display_name(),
                job.image,
                if job.action == ImageAction::Build {
                    "built"
                } else {
                    "pulled"
                }
            ))
        } else {
            job.depends_on
                .iter()
                .find(|parent| failed_images.contains(parent))
                .map(|parent| {
                    format!(
                        "{}: {} not built: it is built from {parent}, which failed",
                        job.display_name(),
                        job.image
                    )
                })
        };
        let step = match skip_reason {
            Some(reason) => StepResult::of_job(job, Outcome::Skipped(reason), Duration::ZERO),
            None => execute_job_until(docker, job, options, progress, interrupt).await,
        };
        if !step.outcome.succeeded() {
            failed_images.push(job.image.clone());
            if matches!(step.outcome, Outcome::Failed(_)) {
                note_failure(stop);
            }
        }
        push(&mut steps, step);
    }
    steps
}

/// Runs the project's hook when it has one; `None` when it has none.
async fn run_project_hook(
    project: &ProjectPlan,
    progress: &Progress,
    interrupt: &CancellationToken,
) -> Option<StepResult> {
    let started = Instant::now();
    let step = |outcome: Outcome| StepResult {
        project: project.project.clone(),
        kind: StepKind::Hook,
        image: format!("make {HOOK_TARGET}"),
        services: Vec::new(),
        outcome,
        duration: started.elapsed(),
        stale: None,
    };
    match has_hook(&project.project, &project.directory).await {
        Ok(false) => None,
        Err(message) => Some(step(Outcome::Failed(message))),
        Ok(true) => {
            let task = progress.task(format!("[hook] {} make {HOOK_TARGET}", project.project));
            let hook = run_hook(&project.project, &project.directory, &project.env_files);
            let result = tokio::select! {
                result = hook => result,
                // Dropping the hook kills its `make`.
                () = interrupt.cancelled() => {
                    let message = format!(
                        "{}: `make {HOOK_TARGET}` {CUT} after {}; the project is not built",
                        project.project,
                        format_duration(started.elapsed())
                    );
                    task.finish_skipped(&message);
                    return Some(step(Outcome::Skipped(message)));
                }
            };
            match result {
                Ok(output) => {
                    for line in output.lines() {
                        task.detail(format!("{}: {line}", project.project));
                    }
                    task.finish_ok("");
                    Some(step(Outcome::Done))
                }
                Err(message) => {
                    task.finish_failed(&message);
                    Some(step(Outcome::Failed(message)))
                }
            }
        }
    }
}

/// Pulls or builds one image, with its own progress line.
pub async fn execute_job(
    docker: &Docker,
    job: &ImageJob,
    flags: BuildFlags,
    progress: &Progress,
) -> StepResult {
    let options = RunOptions {
        jobs: 1,
        fail_fast: false,
        flags,
        pull_mode: PullMode::Refresh,
    };
    execute_job_until(docker, job, options, progress, &CancellationToken::new()).await
}

/// [`execute_job`], cut (its request dropped, so the engine abandons it) when
/// `interrupt` is cancelled.
async fn execute_job_until(
    docker: &Docker,
    job: &ImageJob,
    options: RunOptions,
    progress: &Progress,
    interrupt: &CancellationToken,
) -> StepResult {
    let flags = options.flags;
    let task = progress.task(format!(
        "[{}] {} {}",
        job.action.as_str(),
        job.project,
        job.image
    ));
    let who = job.display_name();
    if let Some(step) = apply_pull_policy(docker, job, options.pull_mode, &task).await {
        return step;
    }
    // A failed build, or a pull that failed before reaching the registry, fails
    // the step; a failed registry pull may fall back to the engine's copy.
    let work = async {
        match job.action {
            ImageAction::Build => build_image(docker, job, flags, &task)
                .await
                .map_err(|message| (message, false)),
            ImageAction::Pull | ImageAction::Base => {
                pull_image(docker, &who, &job.image, job.platform.as_deref(), &task)
                    .await
                    .map_err(|failure| {
                        let fallback = matches!(failure, PullFailure::Registry(_));
                        (failure.message().to_string(), fallback)
                    })
            }
        }
    };
    let result = tokio::select! {
        result = work => Some(result),
        () = interrupt.cancelled() => None,
    };
    let mut stale = None;
    let outcome = match result {
        None => {
            let message = format!(
                "{who}: {} {} {CUT} after {}; the engine drops the unfinished {}",
                job.image,
                job.action.as_str(),
                format_duration(task.elapsed()),
                job.action.as_str()
            );
            task.finish_skipped("cut: bunker was interrupted");
            Outcome::Skipped(message)
        }
        Some(Ok(())) => {
            task.finish_ok(match job.action {
                ImageAction::Build => "built",
                _ => "pulled",
            });
            Outcome::Done
        }
        Some(Err((message, false))) => {
            task.finish_failed(&message);
            Outcome::Failed(message)
        }
        Some(Err((message, true))) => match engine_copy(docker, job, &message).await {
            Some(found) => {
                task.finish_skipped("stale: the registry failed, the engine's copy is used");
                stale = Some(found);
                Outcome::Stale(format!(
                    "{message}; using the engine's copy ({})",
                    stale
                        .as_ref()
                        .map_or_else(String::new, StaleImage::created_text)
                ))
            }
            None => {
                task.finish_failed(&message);
                Outcome::Failed(message)
            }
        },
    };
    StepResult {
        stale,
        ..StepResult::of_job(job, outcome, task.elapsed())
    }
}

impl Outcome {
    /// True when the image is on the engine as the step wanted.
    pub fn succeeded(&self) -> bool {
        matches!(self, Outcome::Done | Outcome::Stale(_) | Outcome::Kept(_))
    }
}

/// A pull job whose `pull_policy` says not to pull: the ended step (kept, or
/// failed when the engine lacks the image); `None` when the job pulls.
async fn apply_pull_policy(
    docker: &Docker,
    job: &ImageJob,
    mode: PullMode,
    task: &crate::progress::Task,
) -> Option<StepResult> {
    let policy = job.pull_policy.as_deref();
    if job.action != ImageAction::Pull || !needs_presence(mode, policy) {
        return None;
    }
    let present = match docker.inspect_image(&job.image).await {
        Ok(_) => true,
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => false,
        // Let the pull report what is wrong with the engine.
        Err(_) => return None,
    };
    let PullDecision::UseEngineCopy(reason) = decide(mode, policy, &job.image, present) else {
        return None;
    };
    let outcome = if present {
        task.finish_ok(format!("not pulled: {reason}"));
        Outcome::Kept(format!(
            "{}: {} not pulled: {reason}",
            job.display_name(),
            job.image
        ))
    } else {
        let message = format!(
            "{}: {} is not on the engine and its {reason} forbids pulling it; build, load or \
             restore it (bunker image-restore), or change the service's pull_policy",
            job.display_name(),
            job.image
        );
        task.finish_failed(&message);
        Outcome::Failed(message)
    };
    Some(StepResult::of_job(job, outcome, task.elapsed()))
}

/// An image whose refresh pull failed while the engine had a copy of it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StaleImage {
    /// The registry that could not be pulled from.
    pub registry: String,
    /// The pull's error, naming the image and the registry.
    pub error: String,
    /// When the engine's copy was created (RFC 3339, as the engine reports it).
    pub created: Option<String>,
}

impl StaleImage {
    /// `created 2026-12-01T21:40:00Z` (or that the time is unknown).
    pub fn created_text(&self) -> String {
        match &self.created {
            Some(created) => format!("created {created}"),
            None => "creation time unknown".to_string(),
        }
    }
}

/// After a failed pull of `job`: the engine's copy, when it has one.
async fn engine_copy(docker: &Docker, job: &ImageJob, error: &str) -> Option<StaleImage> {
    let inspect = docker.inspect_image(&job.image).await.ok()?;
    Some(StaleImage {
        registry: registry_of(&job.image),
        error: error.to_string(),
        created: inspect.created,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(kind: StepKind, outcome: Outcome) -> StepResult {
        StepResult {
            project: "p".into(),
            kind,
            image: "img:1".into(),
            services: vec!["s".into()],
            outcome,
            duration: Duration::from_millis(1500),
            stale: None,
        }
    }

    #[test]
    fn the_report_counts_and_tabulates_every_step() {
        let report = RunReport {
            steps: vec![
                step(StepKind::Hook, Outcome::Done),
                step(StepKind::Image(ImageAction::Pull), Outcome::Done),
                step(StepKind::Image(ImageAction::Build), Outcome::Done),
                step(
                    StepKind::Image(ImageAction::Build),
                    Outcome::Failed("p/s: step 2/3 (RUN false): boom".into()),
                ),
                step(
                    StepKind::Image(ImageAction::Build),
                    Outcome::Skipped("p/s: img not built".into()),
                ),
            ],
            problems: vec![],
        };
        assert!(report.failed());
        assert_eq!(
            report.summary(),
            "1 built, 1 pulled, 1 failed, 1 skipped, 0 stale, 0 kept"
        );
        let table = report.table();
        assert!(table.starts_with("PROJECT  ACTION  IMAGE"), "{table}");
        assert!(
            table.contains("\np        build   img:1  FAILED   1.5s  s\n"),
            "{table}"
        );
        assert_eq!(
            report.messages(),
            vec![
                "FAILED p/s: step 2/3 (RUN false): boom".to_string(),
                "skipped p/s: img not built".to_string()
            ]
        );
    }

    #[test]
    fn after_an_interrupt_the_cut_and_unstarted_steps_are_named() {
        let report = RunReport {
            steps: vec![
                step(StepKind::Image(ImageAction::Build), Outcome::Done),
                step(
                    StepKind::Image(ImageAction::Build),
                    Outcome::Skipped(format!("p/s: img:1 build {CUT} after 2.0s")),
                ),
                step(
                    StepKind::Image(ImageAction::Pull),
                    Outcome::Skipped(format!("p/s: img:1 {NOT_STARTED}")),
                ),
            ],
            problems: vec![],
        };
        assert_eq!(
            report.interrupted_summary(),
            "cut 1 running step(s): p build img:1; 1 step(s) not started"
        );
        assert_eq!(
            report.summary(),
            "1 built, 0 pulled, 0 failed, 2 skipped, 0 stale, 0 kept"
        );
        let nothing_cut = RunReport {
            steps: vec![step(StepKind::Image(ImageAction::Pull), Outcome::Done)],
            problems: vec![],
        };
        assert_eq!(
            nothing_cut.interrupted_summary(),
            "no running step was cut; 0 step(s) not started"
        );
    }

    #[test]
    fn a_clean_run_is_not_a_failure() {
        let report = RunReport {
            steps: vec![step(StepKind::Image(ImageAction::Pull), Outcome::Done)],
            problems: vec![],
        };
        assert!(!report.failed());
        assert!(report.messages().is_empty());
    }
}

//! `image-archive`: put the images on the engine exactly as `image-build` does,
//! and stream each one off the engine into `<archive>/<arch>/<project>/<file>`
//! and record it in `<archive>/<arch>/manifest.json`.
//!
//! The run holds the archive directory's lock from start to end, removes the
//! leftovers of interrupted runs, executes the build plan with the build
//! module's own code (or, with `BUILD=false`, only checks the images are
//! there) and makes sure the Dockerfiles' base images are on the engine; each
//! image is archived ([`image`]) as soon as its own steps have ended, up to
//! `--jobs` at once, while the other builds go on ([`pipeline`]). Every
//! finished image is in manifest.json at once, so an interrupted run keeps its
//! work. [`dry_run`] prints what a real run would write from the same plan.

pub mod dry_run;
pub mod image;
pub mod pipeline;
pub mod report;
pub mod wire;

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use anyhow::Context as _;
use tokio_util::sync::CancellationToken;

use crate::archive::{ArchiveAction, ArchiveLayout, Manifest, ManifestLock, remove_stale_partials};
use crate::build::{
    BuildPlan, ImageAction, ImageJob, Outcome, RunOptions, RunReport, RunWatch, StaleImage,
    StepKind, StepResult, check_presence, execute_job, run_plan_watched,
};
use crate::engine::Engine;
use crate::image::reference::canonical_name;
use crate::progress::Progress;

pub use image::{ArchiveSettings, ImageTarget, ImageUse};
use pipeline::{PipelineOptions, Prepared, Readiness, archive_as_ready};
pub use report::{ArchiveReport, ImageResult, ImageRow};

/// Everything one archive run needs.
pub struct ArchiveRun<'run> {
    pub engine: &'run Engine,
    pub layout: ArchiveLayout,
    /// The plan `image-build` would run with the same flags.
    pub build_plan: &'run BuildPlan,
    /// The images to archive: the build plan's plus the Dockerfiles' base images.
    pub archive_plan: &'run BuildPlan,
    pub build_enabled: bool,
    pub run_options: RunOptions,
    pub settings: ArchiveSettings,
    /// The Docker context name recorded in the manifest.
    pub docker_context: String,
    /// Cancelled by Ctrl-C or SIGTERM ([`crate::interrupt`]).
    pub interrupt: CancellationToken,
    /// Images to archive besides the plan's, each as it is on the engine now
    /// (`image-archive --deployed`: running images the catalog does not cover).
    pub extra_targets: Vec<ImageTarget>,
}

/// Runs the build plan and archives every image of the archive plan, each as
/// soon as it is on the engine ([`pipeline`]).
pub async fn run(run: ArchiveRun<'_>, progress: &Progress) -> anyhow::Result<ArchiveReport> {
    let started = Instant::now();
    let engine = run.engine;
    let arch = engine.facts.arch.clone();
    let arch_dir = run.layout.arch_dir(&arch);
    let _lock = ManifestLock::acquire(&arch_dir)?;
    let removed = remove_stale_partials(arch_dir.path()).with_context(|| {
        format!(
            "cannot clean leftovers of interrupted runs in {}",
            arch_dir.path().display()
        )
    })?;
    for path in removed {
        progress.println(format!(
            "removed {} (left by an interrupted run)",
            path.display()
        ));
    }
    let mut manifest = Manifest::load_or_new(&arch_dir.manifest_path(), &arch)?;
    if !manifest.arch.is_empty() && manifest.arch != arch {
        anyhow::bail!(
            "{} says arch {}, but it is in the directory for {arch} (the engine's architecture); \
             move it to the right directory or remove it",
            arch_dir.manifest_path().display(),
            manifest.arch
        );
    }
    manifest.arch = arch.clone();
    manifest.docker_context = Some(
        engine
            .context
            .clone()
            .unwrap_or_else(|| run.docker_context.clone()),
    );
    manifest.ssh_host = engine.ssh_host.clone();
    manifest.engine_version = Some(engine.facts.version.clone());
    remove_superseded(&manifest, &arch_dir, progress)?;

    let mut targets = targets_of(run.archive_plan);
    targets.extend(run.extra_targets.iter().cloned());
    let base_jobs = base_jobs_to_check(run.build_plan, run.archive_plan);
    let mut readiness = Readiness::default();
    let mut problems: Vec<String> = Vec::new();
    if run.build_enabled {
        for job in run.build_plan.jobs() {
            readiness.expect(canonical_name(&job.image));
        }
    } else {
        report_absent_images(&run, progress, &mut readiness, &mut problems).await?;
    }
    for job in &base_jobs {
        readiness.expect(canonical_name(&job.image));
    }
    let stop = AtomicBool::new(run.run_options.fail_fast && readiness.any_failure());

    let wire = wire::LazyPlan::new(engine, run.settings.wire, progress);
    let manifest = Mutex::new(manifest);
    let shared = image::Shared {
        docker: &engine.docker,
        engine: &engine.target,
        arch_dir: &arch_dir,
        manifest: &manifest,
        save_turn: tokio::sync::Mutex::new(()),
        settings: run.settings,
        progress,
        interrupt: run.interrupt.clone(),
        wire: &wire,
    };
    let (sender, events) = tokio::sync::mpsc::unbounded_channel();
    let on_step = |step: &StepResult| {
        let _ = sender.send(Prepared::Step(step.clone()));
    };
    let on_base = |key: String, failure: Option<String>| {
        let _ = sender.send(Prepared::Base { key, failure });
    };
    let prepare = async {
        let build = async {
            if run.build_enabled {
                let watch = RunWatch {
                    stop: &stop,
                    on_step: &on_step,
                };
                Some(
                    run_plan_watched(
                        &engine.docker,
                        run.build_plan,
                        run.run_options,
                        progress,
                        watch,
                    )
                    .await,
                )
            } else {
                None
            }
        };
        let bases = ensure_base_images(&run, &base_jobs, progress, &stop, &on_base);
        let (report, ()) = tokio::join!(build, bases);
        report
    };
    let pipelined = archive_as_ready(
        &shared,
        &targets,
        readiness,
        prepare,
        events,
        &stop,
        PipelineOptions {
            jobs: run.run_options.jobs,
            fail_fast: run.run_options.fail_fast,
        },
    )
    .await;

    let build_report = match pipelined.prepared {
        Some(report) => report,
        None if run.build_enabled => Some(report_so_far(run.build_plan, pipelined.observed)),
        None => None,
    };
    if let Some(report) = &build_report {
        problems.extend(build_problems(report));
    }
    let mut images = pipelined.rows;
    if let Some(report) = &build_report {
        mark_stale(report, &mut images);
    }
    let order = plan_order(run.archive_plan);
    images.sort_by_key(|row| {
        order
            .get(&(row.project.clone(), row.image.clone()))
            .copied()
            .unwrap_or(usize::MAX)
    });
    Ok(ArchiveReport {
        arch,
        archive_dir: arch_dir.path().display().to_string(),
        engine: engine.target.clone(),
        build: build_report,
        images,
        problems,
        duration: started.elapsed(),
        interrupted: pipelined.interrupted,
        wire: wire.summary(),
    })
}

/// The build steps that ended before an interrupt, in plan order.
fn report_so_far(plan: &BuildPlan, mut observed: Vec<StepResult>) -> RunReport {
    let project_index = |step: &StepResult| {
        plan.projects
            .iter()
            .position(|project| project.project == step.project)
            .unwrap_or(usize::MAX)
    };
    observed.sort_by_key(project_index);
    RunReport {
        steps: observed,
        problems: plan.problems.clone(),
    }
}

/// Problems of the build run that belong to no image: the catalog's, and
/// failed hooks. Failed image steps fail their images instead.
fn build_problems(report: &RunReport) -> Vec<String> {
    let mut problems = report.problems.clone();
    for step in &report.steps {
        match (&step.outcome, step.kind) {
            (Outcome::Done | Outcome::Stale(_) | Outcome::Kept(_), _) | (_, StepKind::Image(_)) => {
            }
            (Outcome::Failed(message), StepKind::Catalog) => problems.push(message.clone()),
            (Outcome::Failed(message) | Outcome::Skipped(message), _) => {
                problems.push(format!("{}: {message}", step.project));
            }
        }
    }
    problems
}

/// Marks the rows of images whose refresh pull failed while the engine had
/// them: archived all the same, from the engine's copy.
fn mark_stale(report: &RunReport, rows: &mut [ImageRow]) {
    let stale: HashMap<String, &StaleImage> = report
        .steps
        .iter()
        .filter_map(|step| Some((canonical_name(&step.image), step.stale.as_ref()?)))
        .collect();
    for row in rows {
        if !matches!(row.result, ImageResult::Failed(_))
            && let Some(found) = stale.get(&canonical_name(&row.image))
        {
            row.stale = Some((*found).clone());
        }
    }
}

/// BUILD=false: builds and pulls nothing; the images not on the engine cannot be archived.
async fn report_absent_images(
    run: &ArchiveRun<'_>,
    progress: &Progress,
    readiness: &mut Readiness,
    problems: &mut Vec<String>,
) -> anyhow::Result<()> {
    problems.extend(run.build_plan.problems.iter().cloned());
    problems.extend(
        run.build_plan
            .projects
            .iter()
            .flat_map(|project| project.problems.iter().cloned()),
    );
    progress.println(format!(
        "BUILD=false: building and pulling nothing; archiving what is on {}",
        run.engine.target
    ));
    let presence = check_presence(&run.engine.docker, run.build_plan)
        .await
        .map_err(|error| anyhow::anyhow!("{error}"))?;
    for missing in presence.missing {
        readiness.fail(
            canonical_name(&missing.image),
            format!(
                "{} is not on the engine {} and BUILD=false forbids building or pulling it; \
                 restore it (bunker image-restore) or run with BUILD=true",
                missing.image, run.engine.target
            ),
        );
    }
    Ok(())
}

/// The archive plan's base images the build plan does not put on the engine, once each.
fn base_jobs_to_check<'plan>(
    build_plan: &BuildPlan,
    archive_plan: &'plan BuildPlan,
) -> Vec<&'plan ImageJob> {
    let planned: HashSet<String> = build_plan
        .jobs()
        .map(|job| canonical_name(&job.image))
        .collect();
    let mut seen: HashSet<String> = HashSet::new();
    archive_plan
        .jobs()
        .filter(|job| job.action == ImageAction::Base)
        .filter(|job| {
            let key = canonical_name(&job.image);
            !planned.contains(&key) && seen.insert(key)
        })
        .collect()
}

/// Checks each base image: present ones are archived as they are; missing ones
/// are pulled (BUILD=true) or reported. `on_checked` hears of each as it ends.
async fn ensure_base_images(
    run: &ArchiveRun<'_>,
    jobs: &[&ImageJob],
    progress: &Progress,
    stop: &AtomicBool,
    on_checked: &(dyn Fn(String, Option<String>) + Sync),
) {
    for job in jobs {
        let key = canonical_name(&job.image);
        let failure = match run.engine.docker.inspect_image(&job.image).await {
            Ok(_) => None,
            // --fail-fast: the pipeline reports the image as stopped.
            Err(_) if stop.load(Ordering::SeqCst) => None,
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) if run.build_enabled => {
                let step =
                    execute_job(&run.engine.docker, job, run.run_options.flags, progress).await;
                match step.outcome {
                    Outcome::Failed(message) => Some(format!("base image not pulled: {message}")),
                    _ => None,
                }
            }
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Some(format!(
                "base image {} is not on the engine {} and BUILD=false forbids pulling it; \
                 restore it or skip base images with --no-base-images",
                job.image, run.engine.target
            )),
            Err(error) => Some(format!("cannot inspect base image {}: {error}", job.image)),
        };
        on_checked(key, failure);
    }
}

/// Removes older versions of listed images that a crash left behind (see
/// [`Manifest::superseded_files`]); the run holds the lock, so no writer is
/// between writing such a file and switching the manifest to it.
fn remove_superseded(
    manifest: &Manifest,
    arch_dir: &crate::archive::ArchDir,
    progress: &Progress,
) -> anyhow::Result<()> {
    if !arch_dir.path().is_dir() {
        return Ok(());
    }
    let superseded = manifest.superseded_files(arch_dir).with_context(|| {
        format!(
            "cannot list the archive files in {}",
            arch_dir.path().display()
        )
    })?;
    for file in superseded {
        let path = arch_dir.resolve(&file);
        std::fs::remove_file(&path).with_context(|| {
            format!(
                "cannot remove {} (left by an interrupted run)",
                path.display()
            )
        })?;
        progress.println(format!(
            "removed {} (left by an interrupted run)",
            path.display()
        ));
    }
    Ok(())
}

/// The manifest action of a plan job.
pub fn archive_action(action: ImageAction) -> ArchiveAction {
    match action {
        ImageAction::Pull => ArchiveAction::PullSave,
        ImageAction::Build => ArchiveAction::BuildSave,
        ImageAction::Base => ArchiveAction::BaseSave,
    }
}

/// One target per distinct image, in plan order, with every project that needs it.
pub fn targets_of(plan: &BuildPlan) -> Vec<ImageTarget> {
    let mut targets: Vec<ImageTarget> = Vec::new();
    let mut index_of: HashMap<String, usize> = HashMap::new();
    for job in plan.jobs() {
        let image_use = ImageUse {
            project: job.project.clone(),
            image: job.image.clone(),
            services: job.services.clone(),
            action: archive_action(job.action),
            deployed_as: None,
        };
        let key = canonical_name(&job.image);
        match index_of.get(&key) {
            Some(&index) => {
                let uses = &mut targets[index].uses;
                if !uses.iter().any(|other| other.project == image_use.project) {
                    uses.push(image_use);
                }
            }
            None => {
                index_of.insert(key, targets.len());
                targets.push(ImageTarget {
                    reference: job.image.clone(),
                    uses: vec![image_use],
                });
            }
        }
    }
    targets
}

pub(crate) fn plan_order(plan: &BuildPlan) -> HashMap<(String, String), usize> {
    plan.jobs()
        .enumerate()
        .map(|(index, job)| ((job.project.clone(), job.image.clone()), index))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::{ImageJob, ProjectPlan};

    fn job(project: &str, image: &str, action: ImageAction) -> ImageJob {
        ImageJob {
            project: project.into(),
            image: image.into(),
            action,
            services: vec!["svc".into()],
            registry: None,
            platform: None,
            build: None,
            depends_on: vec![],
            pull_policy: None,
        }
    }

    #[test]
    fn an_image_shared_by_projects_is_one_target_with_a_use_per_project() {
        let plan = BuildPlan {
            projects: vec![
                ProjectPlan {
                    instance: None,
                    compose_project: None,
                    project: "tools".into(),
                    directory: "tools".into(),
                    env_files: vec![],
                    jobs: vec![
                        job("tools", "httpd:1.36", ImageAction::Pull),
                        job("tools", "busybox", ImageAction::Base),
                    ],
                    problems: vec![],
                },
                ProjectPlan {
                    instance: None,
                    compose_project: None,
                    project: "web".into(),
                    directory: "web".into(),
                    env_files: vec![],
                    jobs: vec![
                        job("web", "docker.io/library/httpd:1.36", ImageAction::Pull),
                        job("web", "busybox:latest", ImageAction::Base),
                    ],
                    problems: vec![],
                },
            ],
            problems: vec![],
        };
        let targets = targets_of(&plan);
        assert_eq!(targets.len(), 2);
        assert_eq!(targets[0].reference, "httpd:1.36");
        let uses: Vec<(&str, &str)> = targets[0]
            .uses
            .iter()
            .map(|image_use| (image_use.project.as_str(), image_use.image.as_str()))
            .collect();
        assert_eq!(
            uses,
            [
                ("tools", "httpd:1.36"),
                ("web", "docker.io/library/httpd:1.36")
            ]
        );
        assert_eq!(targets[1].uses[1].action, ArchiveAction::BaseSave);
    }
}

//! `image-archive`: put the images on the engine exactly as `image-build` does,
//! then stream each one off the engine into `<archive>/<arch>/<project>/<file>`
//! and record it in `<archive>/<arch>/manifest.json`.
//!
//! The run holds the archive directory's lock from start to end, removes the
//! leftovers of interrupted runs, executes the build plan with the build
//! module's own code (or, with `BUILD=false`, only checks the images are
//! there), makes sure the Dockerfiles' base images are on the engine, and then
//! archives up to `--jobs` images at once ([`image`]). Every finished image is
//! in manifest.json before the next one starts, so an interrupted run keeps its
//! work. [`dry_run`] prints what a real run would write from the same plan.

pub mod dry_run;
pub mod image;
pub mod report;

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures_util::StreamExt;

use crate::archive::{ArchiveAction, ArchiveLayout, Manifest, ManifestLock, remove_stale_partials};
use crate::build::{
    BuildPlan, ImageAction, Outcome, RunOptions, StepKind, check_presence, execute_job, run_plan,
};
use crate::engine::Engine;
use crate::image::reference::canonical_name;
use crate::progress::Progress;

pub use image::{ArchiveSettings, ImageTarget, ImageUse};
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
}

/// Runs the build step and archives every image of the archive plan.
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

    let mut problems: Vec<String> = Vec::new();
    let (build_report, mut failures) = put_images_on_engine(&run, progress, &mut problems).await?;
    ensure_base_images(&run, progress, &mut failures).await;

    let targets = targets_of(run.archive_plan);
    let manifest = Mutex::new(manifest);
    let shared = image::Shared {
        docker: &engine.docker,
        engine: &engine.target,
        arch_dir: &arch_dir,
        manifest: &manifest,
        settings: run.settings,
        progress,
    };
    let stop = AtomicBool::new(run.run_options.fail_fast && !failures.is_empty());
    let rows: Vec<Vec<ImageRow>> = futures_util::stream::iter(&targets)
        .map(|target| {
            let (shared, stop, failures) = (&shared, &stop, &failures);
            async move {
                if let Some(message) = failures.get(&canonical_name(&target.reference)) {
                    return image::failed_rows(target, message, Duration::ZERO);
                }
                if stop.load(Ordering::SeqCst) {
                    return image::failed_rows(
                        target,
                        "not archived: --fail-fast stopped the run after an earlier failure",
                        Duration::ZERO,
                    );
                }
                let rows = image::archive_target(shared, target).await;
                if run.run_options.fail_fast
                    && rows
                        .iter()
                        .any(|row| matches!(row.result, ImageResult::Failed(_)))
                {
                    stop.store(true, Ordering::SeqCst);
                }
                rows
            }
        })
        .buffered(run.settings_jobs())
        .collect()
        .await;

    let mut images: Vec<ImageRow> = rows.into_iter().flatten().collect();
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
    })
}

impl ArchiveRun<'_> {
    fn settings_jobs(&self) -> usize {
        self.run_options.jobs.max(1)
    }
}

/// Pulls and builds with the build module (BUILD=true) or checks presence
/// (BUILD=false). Returns the build report and, by image, why it cannot be archived.
async fn put_images_on_engine(
    run: &ArchiveRun<'_>,
    progress: &Progress,
    problems: &mut Vec<String>,
) -> anyhow::Result<(Option<crate::build::RunReport>, HashMap<String, String>)> {
    let mut failures: HashMap<String, String> = HashMap::new();
    if run.build_enabled {
        let report = run_plan(
            &run.engine.docker,
            run.build_plan,
            run.run_options,
            progress,
        )
        .await;
        problems.extend(report.problems.iter().cloned());
        for step in &report.steps {
            match (&step.outcome, step.kind) {
                (Outcome::Done, _) => {}
                (Outcome::Failed(message), StepKind::Catalog) => problems.push(message.clone()),
                (Outcome::Failed(message) | Outcome::Skipped(message), StepKind::Image(_)) => {
                    failures.insert(
                        canonical_name(&step.image),
                        format!("not archived: {message}"),
                    );
                }
                (Outcome::Failed(message) | Outcome::Skipped(message), _) => {
                    problems.push(format!("{}: {message}", step.project));
                }
            }
        }
        return Ok((Some(report), failures));
    }
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
        failures.insert(
            canonical_name(&missing.image),
            format!(
                "{} is not on the engine {} and BUILD=false forbids building or pulling it; \
                 restore it (bunker image-restore) or run with BUILD=true",
                missing.image, run.engine.target
            ),
        );
    }
    Ok((None, failures))
}

/// Base images the build plan did not pull: pulled when missing (BUILD=true),
/// reported as missing otherwise. Present ones are archived as they are.
async fn ensure_base_images(
    run: &ArchiveRun<'_>,
    progress: &Progress,
    failures: &mut HashMap<String, String>,
) {
    let planned: Vec<String> = run
        .build_plan
        .jobs()
        .map(|job| canonical_name(&job.image))
        .collect();
    let mut seen: Vec<String> = Vec::new();
    for job in run
        .archive_plan
        .jobs()
        .filter(|job| job.action == ImageAction::Base)
    {
        let key = canonical_name(&job.image);
        if planned.contains(&key) || seen.contains(&key) || failures.contains_key(&key) {
            continue;
        }
        seen.push(key.clone());
        match run.engine.docker.inspect_image(&job.image).await {
            Ok(_) => {}
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) if run.build_enabled => {
                let step =
                    execute_job(&run.engine.docker, job, run.run_options.flags, progress).await;
                if let Outcome::Failed(message) = step.outcome {
                    failures.insert(key, format!("base image not pulled: {message}"));
                }
            }
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => {
                failures.insert(
                    key,
                    format!(
                        "base image {} is not on the engine {} and BUILD=false forbids pulling it; \
                         restore it or skip base images with --no-base-images",
                        job.image, run.engine.target
                    ),
                );
            }
            Err(error) => {
                failures.insert(
                    key,
                    format!("cannot inspect base image {}: {error}", job.image),
                );
            }
        }
    }
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
        }
    }

    #[test]
    fn an_image_shared_by_projects_is_one_target_with_a_use_per_project() {
        let plan = BuildPlan {
            projects: vec![
                ProjectPlan {
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

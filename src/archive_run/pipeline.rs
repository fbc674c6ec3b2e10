//! When each image of an archive run is exported: as soon as every step that
//! puts it on the engine (its pulls and builds, or the base-image check) has
//! ended, while the other builds go on, and never more than `--jobs` exports
//! at once. The engine's export time overlaps the remaining builds instead of
//! waiting for all of them.
//!
//! Images are started in plan order among those ready. A failed or skipped
//! build step fails only its own image. `--fail-fast` (the shared stop flag,
//! which the build run obeys too) starts no new build or export after the
//! first failure. `--delete` waits until every build has ended, since a later
//! build may start `FROM` the image. An interrupt drops the running builds,
//! lets the running exports abort (their streams fail, so the writer removes
//! the partial files) and starts nothing else.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::future::OptionFuture;
use futures_util::stream::FuturesUnordered;
use tokio::sync::mpsc::UnboundedReceiver;

use super::image::{self, INTERRUPTED, ImageTarget, Shared};
use super::report::{ImageResult, ImageRow};
use crate::build::{Outcome, RunReport, StepKind, StepResult};
use crate::image::reference::canonical_name;

/// Why an image was not archived after `--fail-fast` stopped the run.
pub const STOPPED: &str = "not archived: --fail-fast stopped the run after an earlier failure";

/// What the preparation (builds, pulls, base-image checks) tells the pipeline.
pub enum Prepared {
    /// A build-plan step ended.
    Step(StepResult),
    /// A base image outside the build plan was checked (and pulled when missing).
    Base {
        key: String,
        failure: Option<String>,
    },
}

/// Which images may be archived yet, and which never can; keyed by canonical name.
#[derive(Debug, Default)]
pub struct Readiness {
    /// Preparation steps still to end.
    waiting: HashMap<String, usize>,
    /// Why the image cannot be archived (the first reason heard).
    failures: HashMap<String, String>,
}

impl Readiness {
    /// One more step must end before `key` is ready.
    pub fn expect(&mut self, key: String) {
        *self.waiting.entry(key).or_default() += 1;
    }

    /// `key` can never be archived in this run.
    pub fn fail(&mut self, key: String, message: String) {
        self.failures.entry(key).or_insert(message);
    }

    /// A step for `key` ended, with its failure if it failed.
    pub fn ended(&mut self, key: &str, failure: Option<String>) {
        if let Some(count) = self.waiting.get_mut(key) {
            *count = count.saturating_sub(1);
        }
        if let Some(message) = failure {
            self.fail(key.to_string(), message);
        }
    }

    /// Applies what the preparation reported.
    pub fn apply(&mut self, prepared: &Prepared) {
        match prepared {
            Prepared::Step(step) => {
                if let StepKind::Image(_) = step.kind {
                    let failure = match &step.outcome {
                        Outcome::Done | Outcome::Stale(_) | Outcome::Kept(_) => None,
                        Outcome::Failed(message) | Outcome::Skipped(message) => {
                            Some(format!("not archived: {message}"))
                        }
                    };
                    self.ended(&canonical_name(&step.image), failure);
                }
            }
            Prepared::Base { key, failure } => self.ended(key, failure.clone()),
        }
    }

    /// Every preparation step has ended (or will never report): nothing waits.
    pub fn release_all(&mut self) {
        self.waiting.clear();
    }

    pub fn is_ready(&self, key: &str) -> bool {
        self.waiting.get(key).is_none_or(|count| *count == 0)
    }

    pub fn failure(&self, key: &str) -> Option<&str> {
        self.failures.get(key).map(String::as_str)
    }

    /// True when some image can never be archived.
    pub fn any_failure(&self) -> bool {
        !self.failures.is_empty()
    }
}

/// How the pipeline runs.
#[derive(Debug, Clone, Copy)]
pub struct PipelineOptions {
    /// Exports at once (at least 1).
    pub jobs: usize,
    pub fail_fast: bool,
}

/// What the pipeline did.
pub struct Pipelined {
    /// One row per image use, in target order.
    pub rows: Vec<ImageRow>,
    /// The preparation's result when it ran to its end (`None` inside: BUILD=false).
    pub prepared: Option<Option<RunReport>>,
    /// Build-plan steps as they ended (the report so far when interrupted).
    pub observed: Vec<StepResult>,
    pub interrupted: bool,
}

enum Done {
    Archived(usize, Vec<ImageRow>),
    Deleted(usize, Vec<ImageRow>),
}

type Work<'work> = Pin<Box<dyn Future<Output = Done> + 'work>>;

/// Runs `prepare` and archives each target as soon as it is ready.
pub async fn archive_as_ready<'work>(
    shared: &'work Shared<'work>,
    targets: &'work [ImageTarget],
    mut readiness: Readiness,
    prepare: impl Future<Output = Option<RunReport>> + 'work,
    mut events: UnboundedReceiver<Prepared>,
    stop: &AtomicBool,
    options: PipelineOptions,
) -> Pipelined {
    let keys: Vec<String> = targets
        .iter()
        .map(|target| canonical_name(&target.reference))
        .collect();
    let mut rows: Vec<Option<Vec<ImageRow>>> = vec![None; targets.len()];
    let mut started = vec![false; targets.len()];
    let mut prepare: Option<Pin<Box<dyn Future<Output = Option<RunReport>> + 'work>>> =
        Some(Box::pin(prepare));
    let mut prepared: Option<Option<RunReport>> = None;
    let mut observed: Vec<StepResult> = Vec::new();
    let mut work: FuturesUnordered<Work<'work>> = FuturesUnordered::new();
    let mut exporting = 0usize;
    let mut deferred_deletes: Vec<(usize, Vec<ImageRow>)> = Vec::new();
    let mut interrupted = false;
    let delete = |index: usize, mut done: Vec<ImageRow>| -> Work<'work> {
        Box::pin(async move {
            image::delete_target(shared, &targets[index], &mut done).await;
            Done::Deleted(index, done)
        })
    };

    loop {
        while let Ok(event) = events.try_recv() {
            readiness.apply(&event);
            if let Prepared::Step(step) = event {
                observed.push(step);
            }
        }
        if !interrupted && shared.interrupt.is_cancelled() {
            interrupted = true;
            prepare = None;
        }
        if prepared.is_some() {
            readiness.release_all();
            for (index, done) in deferred_deletes.drain(..) {
                work.push(delete(index, done));
            }
        }
        if !interrupted {
            for (index, target) in targets.iter().enumerate() {
                if exporting >= options.jobs.max(1) {
                    break;
                }
                if started[index] || !readiness.is_ready(&keys[index]) {
                    continue;
                }
                started[index] = true;
                if let Some(failure) = readiness.failure(&keys[index]) {
                    rows[index] = Some(image::failed_rows(target, failure, Duration::ZERO));
                } else if stop.load(Ordering::SeqCst) {
                    rows[index] = Some(image::failed_rows(target, STOPPED, Duration::ZERO));
                } else {
                    exporting += 1;
                    work.push(Box::pin(async move {
                        Done::Archived(index, image::archive_target(shared, target).await)
                    }));
                }
            }
        }
        if work.is_empty() && (interrupted || prepared.is_some()) {
            break;
        }
        tokio::select! {
            biased;
            () = shared.interrupt.cancelled(), if !interrupted => {
                interrupted = true;
                // Dropping the preparation aborts the running builds and pulls.
                prepare = None;
            }
            Some(event) = events.recv(), if prepared.is_none() && !interrupted => {
                readiness.apply(&event);
                if let Prepared::Step(step) = event {
                    observed.push(step);
                }
            }
            Some(report) = OptionFuture::from(prepare.as_mut()), if prepare.is_some() => {
                prepare = None;
                prepared = Some(report);
            }
            Some(done) = work.next(), if !work.is_empty() => match done {
                Done::Archived(index, done) => {
                    exporting -= 1;
                    let failed = done
                        .iter()
                        .any(|row| matches!(row.result, ImageResult::Failed(_)));
                    if options.fail_fast && failed {
                        stop.store(true, Ordering::SeqCst);
                    }
                    if image::deletable(&shared.settings, &done) && !interrupted {
                        if prepared.is_some() {
                            work.push(delete(index, done));
                        } else {
                            deferred_deletes.push((index, done));
                        }
                    } else {
                        rows[index] = Some(done);
                    }
                }
                Done::Deleted(index, done) => rows[index] = Some(done),
            },
            else => break,
        }
    }

    for (index, mut done) in deferred_deletes {
        if let Some(first) = done.first_mut() {
            first.kept = Some("not deleted: bunker was interrupted".to_string());
        }
        rows[index] = Some(done);
    }
    let rows = rows
        .into_iter()
        .zip(targets)
        .flat_map(|(done, target)| {
            done.unwrap_or_else(|| image::failed_rows(target, INTERRUPTED, Duration::ZERO))
        })
        .collect();
    Pipelined {
        rows,
        prepared,
        observed,
        interrupted,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::ImageAction;

    fn step(image: &str, outcome: Outcome) -> Prepared {
        Prepared::Step(StepResult {
            project: "p".into(),
            kind: StepKind::Image(ImageAction::Pull),
            image: image.into(),
            services: vec!["s".into()],
            outcome,
            duration: Duration::ZERO,
            stale: None,
        })
    }

    #[test]
    fn an_image_is_ready_once_every_step_that_makes_it_has_ended() {
        let mut readiness = Readiness::default();
        readiness.expect(canonical_name("httpd:1"));
        readiness.expect(canonical_name("docker.io/library/httpd:1"));
        readiness.expect(canonical_name("app:1"));
        let httpd = canonical_name("httpd:1");
        assert!(!readiness.is_ready(&httpd));
        readiness.apply(&step("httpd:1", Outcome::Done));
        assert!(
            !readiness.is_ready(&httpd),
            "the second project's pull is still running"
        );
        readiness.apply(&step("docker.io/library/httpd:1", Outcome::Done));
        assert!(readiness.is_ready(&httpd));
        assert_eq!(readiness.failure(&httpd), None);
        assert!(readiness.is_ready(&canonical_name("never-planned:1")));

        let app = canonical_name("app:1");
        readiness.apply(&step("app:1", Outcome::Failed("p/s: boom".into())));
        assert!(readiness.is_ready(&app));
        assert_eq!(readiness.failure(&app), Some("not archived: p/s: boom"));
    }

    #[test]
    fn base_images_and_the_end_of_the_preparation_release_what_waits() {
        let mut readiness = Readiness::default();
        readiness.expect("base".into());
        readiness.expect("built".into());
        readiness.apply(&Prepared::Base {
            key: "base".into(),
            failure: Some("base image not pulled: nope".into()),
        });
        assert!(readiness.is_ready("base"));
        assert_eq!(
            readiness.failure("base"),
            Some("base image not pulled: nope")
        );
        assert!(!readiness.is_ready("built"));
        readiness.release_all();
        assert!(readiness.is_ready("built"));
        assert_eq!(readiness.failure("built"), None);
    }
}

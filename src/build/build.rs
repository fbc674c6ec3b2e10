//! Building one image on the engine from a context tarred on the workstation.
//!
//! The context is streamed (never held in memory) to the engine's `/build`
//! endpoint with the compose `args`, `target` and `dockerfile`, and the result is
//! tagged with exactly the name Docker Compose uses, so `docker compose up
//! --no-build` finds it later. Remote contexts (git URLs) are fetched by the
//! engine itself. When the build fails, the error names the project, the service
//! and the Dockerfile step that failed, followed by the last lines of output.

use std::collections::{HashMap, VecDeque};
use std::sync::LazyLock;

use bollard::Docker;
use bollard::query_parameters::BuildImageOptionsBuilder;
use bytes::Bytes;
use futures_util::StreamExt;
use regex::Regex;

use super::context::context_body;
use super::plan::{BuildSpec, ImageJob};
use super::pull::credentials_for_images;
use crate::progress::Task;

/// How many output lines a failed build quotes.
const OUTPUT_TAIL_LINES: usize = 15;

/// Flags that change how images are built.
#[derive(Debug, Clone, Copy, Default)]
pub struct BuildFlags {
    /// `--pull`: refresh base images during the build.
    pub pull: bool,
    /// `--no-cache`.
    pub no_cache: bool,
}

/// The Dockerfile step the classic builder is on: `Step 3/7 : RUN make`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Step {
    number: String,
    total: String,
    instruction: String,
}

static STEP_LINE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^Step (\d+)/(\d+) : (.*)$").expect("valid step regex"));

/// Collects a build's output: the current step and the last lines.
#[derive(Debug, Default)]
struct BuildLog {
    step: Option<Step>,
    tail: VecDeque<String>,
}

impl BuildLog {
    /// Records one chunk of the engine's `stream` text; returns its complete lines.
    fn record(&mut self, text: &str) -> Vec<String> {
        let mut lines = Vec::new();
        for line in text.lines() {
            let line = line.trim_end();
            if line.is_empty() {
                continue;
            }
            if let Some(captures) = STEP_LINE.captures(line) {
                self.step = Some(Step {
                    number: captures[1].to_string(),
                    total: captures[2].to_string(),
                    instruction: captures[3].to_string(),
                });
            }
            if self.tail.len() == OUTPUT_TAIL_LINES {
                self.tail.pop_front();
            }
            self.tail.push_back(line.to_string());
            lines.push(line.to_string());
        }
        lines
    }

    /// `project/service: step 3/7 (RUN make): <message>` plus the last output lines.
    fn failure(&self, who: &str, message: &str) -> String {
        let message = message.trim();
        let mut text = match &self.step {
            Some(step) => format!(
                "{who}: step {}/{} ({}): {message}",
                step.number, step.total, step.instruction
            ),
            None => format!("{who}: {message}"),
        };
        if !self.tail.is_empty() {
            text.push_str("\n  last build output:");
            for line in &self.tail {
                text.push_str("\n    ");
                text.push_str(line);
            }
        }
        text
    }
}

/// Build args with `None` values taken from bunker's environment (Compose's rule
/// for `args: [NAME]`); args that are unset everywhere are left out.
pub fn resolved_build_args(spec: &BuildSpec) -> HashMap<String, String> {
    spec.info
        .args
        .iter()
        .filter_map(|(name, value)| {
            value
                .clone()
                .or_else(|| std::env::var(name).ok())
                .map(|value| (name.clone(), value))
        })
        .collect()
}

/// Builds `job` on the engine and tags it `job.image`.
pub async fn build_image(
    docker: &Docker,
    job: &ImageJob,
    flags: BuildFlags,
    task: &Task,
) -> Result<(), String> {
    let who = job.display_name();
    let Some(spec) = job.build.as_ref() else {
        return Err(format!("{who}: {} has no build section", job.image));
    };
    let (body, dockerfile, _inline_dockerfile) = if spec.info.remote {
        (
            bollard::body_full(Bytes::new()),
            spec.info.dockerfile.clone(),
            None,
        )
    } else {
        let context = context_body(spec)
            .await
            .map_err(|error| format!("{who}: {error}"))?;
        (context.body, context.dockerfile, context.inline_dockerfile)
    };
    let args = resolved_build_args(spec);
    // With `pull`, the classic builder re-pulls every FROM image, also the ones this
    // project just built, which exist only on the engine: refresh only leaf builds.
    let pull = flags.pull && job.depends_on.is_empty();
    let mut options = BuildImageOptionsBuilder::default()
        .dockerfile(&dockerfile)
        .t(&job.image)
        .rm(true)
        .forcerm(true)
        .nocache(flags.no_cache)
        .buildargs(&args);
    if pull {
        options = options.pull("1");
    }
    if let Some(target) = &spec.info.target {
        options = options.target(target);
    }
    if let Some(platform) = &job.platform {
        options = options.platform(platform);
    }
    if spec.info.remote {
        options = options.remote(&spec.info.context);
    }
    let credentials = credentials_for_images(&spec.info.from_images)
        .await
        .map_err(|error| format!("{who}: {error}"))?;
    let credentials = (!credentials.is_empty()).then_some(credentials);

    let mut log = BuildLog::default();
    let mut stream = docker.build_image(options.build(), credentials, Some(body));
    while let Some(message) = stream.next().await {
        match message {
            Ok(info) => {
                if let Some(text) = info.stream.as_deref() {
                    for line in log.record(text) {
                        task.detail(format!("{who}: {line}"));
                    }
                    if let Some(step) = &log.step {
                        task.set_message(format!(
                            "step {}/{} {}",
                            step.number, step.total, step.instruction
                        ));
                    }
                }
                if let Some(status) = info.status.as_deref() {
                    task.set_message(status);
                }
            }
            Err(bollard::errors::Error::DockerStreamError { error }) => {
                return Err(log.failure(&who, &error));
            }
            Err(bollard::errors::Error::DockerResponseServerError { message, .. }) => {
                return Err(log.failure(
                    &who,
                    &format!("the engine refused the build of {}: {message}", job.image),
                ));
            }
            Err(error) => {
                return Err(log.failure(
                    &who,
                    &format!("the build of {} was interrupted: {error}", job.image),
                ));
            }
        }
    }
    // The classic builder can end a stream without an error and without tagging
    // (e.g. a context the engine could not read); trust the engine's image list.
    docker.inspect_image(&job.image).await.map_err(|error| {
        log.failure(
            &who,
            &format!(
                "the build ended but {} is not on the engine: {error}",
                job.image
            ),
        )
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use indexmap::IndexMap;

    use super::*;
    use crate::catalog::BuildInfo;

    #[test]
    fn a_failure_names_the_step_and_quotes_the_output() {
        let mut log = BuildLog::default();
        log.record("Step 1/3 : FROM busybox\n ---> 123\n");
        log.record("Step 2/3 : RUN false\n");
        log.record(" ---> Running in abc\n");
        let text = log.failure(
            "app/web",
            "The command '/bin/sh -c false' returned a non-zero code: 1",
        );
        assert_eq!(
            text.lines().next().unwrap(),
            "app/web: step 2/3 (RUN false): The command '/bin/sh -c false' returned a non-zero code: 1"
        );
        assert!(text.ends_with("---> Running in abc"), "{text}");
    }

    #[test]
    fn the_output_tail_is_bounded() {
        let mut log = BuildLog::default();
        for number in 0..100 {
            log.record(&format!("line {number}\n"));
        }
        assert_eq!(log.tail.len(), OUTPUT_TAIL_LINES);
        assert_eq!(log.tail.back().map(String::as_str), Some("line 99"));
        assert_eq!(log.failure("p/s", "boom").lines().next(), Some("p/s: boom"));
    }

    #[test]
    fn args_without_value_come_from_the_environment_or_are_dropped() {
        let mut args = IndexMap::new();
        args.insert("GIVEN".to_string(), Some("1".to_string()));
        args.insert("PATH".to_string(), None);
        args.insert("BUNKER_TEST_SURELY_UNSET_ARG".to_string(), None);
        let spec = BuildSpec {
            service: "s".into(),
            info: BuildInfo {
                context: "/c".into(),
                remote: false,
                dockerfile: "Dockerfile".into(),
                dockerfile_inline: None,
                args,
                target: None,
                from_images: vec![],
                from_images_known: true,
                after_services: vec![],
            },
        };
        let resolved = resolved_build_args(&spec);
        assert_eq!(resolved.get("GIVEN").map(String::as_str), Some("1"));
        assert_eq!(resolved.get("PATH"), std::env::var("PATH").ok().as_ref());
        assert!(!resolved.contains_key("BUNKER_TEST_SURELY_UNSET_ARG"));
    }
}

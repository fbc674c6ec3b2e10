//! A project's `build-hook-pre` Makefile target, run before its images are built.
//!
//! Some projects generate part of their build context (version files, rendered
//! configs) in a `build-hook-pre` target. It runs once per project, on the
//! workstation where the context is tarred, only when `make -n build-hook-pre`
//! shows the target exists. A failing hook fails the project: building from an
//! incomplete context would produce a wrong image that looks right.
//!
//! The hook sees the project's variables as Docker Compose does: the project's
//! env files (`.env-dist`, then the root `.env_<context>`), with bunker's own
//! environment taking precedence. So a hook renders the same configuration the
//! images are built with, not whatever the user's shell happens to hold.
//!
//! `make` runs in its own process group: when an interrupt drops a running
//! hook, the whole group (make and the commands of its recipe) is killed, so
//! nothing it started runs on unseen.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::process::Command;

use crate::catalog::envfile::read_env_files;

/// The Makefile target bunker runs before building a project.
pub const HOOK_TARGET: &str = "build-hook-pre";
const MAKEFILE_NAMES: [&str; 3] = ["GNUmakefile", "makefile", "Makefile"];
const OUTPUT_TAIL_LINES: usize = 30;

/// The project's Makefile, by GNU make's lookup order.
pub fn makefile(directory: &Path) -> Option<PathBuf> {
    MAKEFILE_NAMES
        .iter()
        .map(|name| directory.join(name))
        .find(|path| path.is_file())
}

/// The `build-hook-pre` rule as written in a Makefile, for a dry run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookRule {
    pub makefile: PathBuf,
    /// The rule line and its recipe lines, unexpanded (recipe lines keep their tab).
    pub lines: Vec<String>,
}

/// Finds the `build-hook-pre` rule in the project's Makefile by reading it, never
/// by running `make`: `make -n` still runs `$(shell …)` and `+` lines, and a dry
/// run must execute nothing. A rule that only exists through `include` or a
/// variable is not seen here.
pub fn read_hook_rule(directory: &Path) -> Option<HookRule> {
    let makefile = makefile(directory)?;
    let text = std::fs::read_to_string(&makefile).ok()?;
    let lines = hook_rule_lines(&text)?;
    Some(HookRule { makefile, lines })
}

fn hook_rule_lines(text: &str) -> Option<Vec<String>> {
    let mut lines = text.lines();
    lines.by_ref().find(|line| defines_hook(line)).map(|rule| {
        let mut rule_lines = vec![rule.to_string()];
        for line in lines {
            if line.starts_with('\t') {
                rule_lines.push(line.to_string());
            } else if !line.trim().is_empty() && !line.trim_start().starts_with('#') {
                break;
            }
        }
        rule_lines
    })
}

/// A rule line (not a recipe, comment, assignment or special `.TARGET`) naming the hook.
fn defines_hook(line: &str) -> bool {
    if line.starts_with('\t') || line.trim_start().starts_with('#') {
        return false;
    }
    let Some((targets, rest)) = line.split_once(':') else {
        return false;
    };
    !rest.starts_with('=')
        && !targets.contains('=')
        && targets
            .split_whitespace()
            .any(|target| target == HOOK_TARGET)
}

/// Whether the project in `directory` has a `build-hook-pre` target.
/// `Err` when the Makefile is broken or `make` is needed but missing.
pub async fn has_hook(project: &str, directory: &Path) -> Result<bool, String> {
    let Some(makefile) = makefile(directory) else {
        return Ok(false);
    };
    let output = Command::new("make")
        .args(["-n", HOOK_TARGET])
        .current_dir(directory)
        .stdin(Stdio::null())
        .output()
        .await;
    let output = match output {
        Ok(output) => output,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            let text = std::fs::read_to_string(&makefile).unwrap_or_default();
            if text.contains(HOOK_TARGET) {
                return Err(format!(
                    "{project}: {} defines {HOOK_TARGET} but `make` is not installed; install make (e.g. `apt-get install make`) and retry",
                    makefile.display()
                ));
            }
            return Ok(false);
        }
        Err(error) => {
            return Err(format!(
                "{project}: cannot run `make -n {HOOK_TARGET}` in {}: {error}",
                directory.display()
            ));
        }
    };
    if output.status.success() {
        return Ok(true);
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let target_missing = stderr.lines().any(|line| {
        line.contains("No rule to make target")
            && line.contains(HOOK_TARGET)
            && !line.contains("needed by")
    });
    if target_missing {
        return Ok(false);
    }
    Err(format!(
        "{project}: `make -n {HOOK_TARGET}` failed in {} ({}); fix {}:\n{}",
        directory.display(),
        output.status,
        makefile.display(),
        tail(&stderr, OUTPUT_TAIL_LINES)
    ))
}

/// Runs `make build-hook-pre` in `directory` with the variables of `env_files`
/// (later files win; the process environment wins over all); `Ok` carries the output.
pub async fn run_hook(
    project: &str,
    directory: &Path,
    env_files: &[PathBuf],
) -> Result<String, String> {
    let variables = read_env_files(env_files, &|name| std::env::var(name).ok())
        .map_err(|error| format!("{project}: cannot run {HOOK_TARGET}: {error}"))?;
    let mut command = Command::new("make");
    for (name, value) in &variables {
        if std::env::var_os(name).is_none() {
            command.env(name, value);
        }
    }
    command
        .arg(HOOK_TARGET)
        .current_dir(directory)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let cannot_run = |error: std::io::Error| {
        format!(
            "{project}: cannot run `make {HOOK_TARGET}` in {}: {error}",
            directory.display()
        )
    };
    let child = command.spawn().map_err(cannot_run)?;
    let mut group = GroupKiller(child.id());
    let output = child.wait_with_output().await.map_err(cannot_run)?;
    // make has ended (its group with it, or its leftovers are the recipe's business).
    group.0 = None;
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    if output.status.success() {
        Ok(text)
    } else {
        Err(format!(
            "{project}: `make {HOOK_TARGET}` failed in {} ({}); the project is not built:\n{}",
            directory.display(),
            output.status,
            tail(&text, OUTPUT_TAIL_LINES)
        ))
    }
}

/// Kills the process group `0` leads when dropped before the hook has ended
/// (an interrupt dropped the future waiting for it).
struct GroupKiller(Option<u32>);

impl Drop for GroupKiller {
    fn drop(&mut self) {
        if let Some(group) = self.0.and_then(|pid| libc::pid_t::try_from(pid).ok()) {
            // SAFETY: kill(2) on the process group of our own child; no memory is involved.
            unsafe { libc::kill(-group, libc::SIGKILL) };
        }
    }
}

/// The last `lines` lines of `text`.
pub fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.trim_end().lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project_with_makefile(text: &str) -> tempfile::TempDir {
        let directory = tempfile::tempdir().expect("temp dir");
        std::fs::write(directory.path().join("Makefile"), text).expect("write Makefile");
        directory
    }

    #[tokio::test]
    async fn no_makefile_means_no_hook() {
        let directory = tempfile::tempdir().expect("temp dir");
        assert_eq!(has_hook("p", directory.path()).await, Ok(false));
    }

    #[tokio::test]
    async fn a_makefile_without_the_target_means_no_hook() {
        let directory = project_with_makefile("other:\n\techo other\n");
        assert_eq!(has_hook("p", directory.path()).await, Ok(false));
    }

    #[tokio::test]
    async fn the_hook_is_found_and_run_without_side_effects_when_probed() {
        let directory =
            project_with_makefile("build-hook-pre:\n\ttouch made.txt\n\techo hook ran\n");
        assert_eq!(has_hook("p", directory.path()).await, Ok(true));
        assert!(
            !directory.path().join("made.txt").exists(),
            "make -n must not run the recipe"
        );
        let output = run_hook("p", directory.path(), &[])
            .await
            .expect("hook runs");
        assert!(output.contains("hook ran"));
        assert!(directory.path().join("made.txt").exists());
    }

    #[tokio::test]
    async fn a_failing_hook_fails_with_its_output() {
        let directory = project_with_makefile(
            "build-hook-pre:\n\t@echo generating\n\t@echo broken >&2; exit 3\n",
        );
        let error = run_hook("proj", directory.path(), &[])
            .await
            .expect_err("hook fails");
        assert!(
            error.starts_with("proj: `make build-hook-pre` failed in"),
            "{error}"
        );
        assert!(error.contains("generating"), "{error}");
        assert!(error.contains("broken"), "{error}");
    }

    #[tokio::test]
    async fn a_broken_makefile_is_an_error_not_a_missing_hook() {
        let directory =
            project_with_makefile("include does-not-exist.mk\nbuild-hook-pre:\n\ttrue\n");
        let error = has_hook("proj", directory.path())
            .await
            .expect_err("broken Makefile");
        assert!(error.contains("does-not-exist.mk"), "{error}");
        assert!(error.contains("Makefile"), "{error}");
        let directory = project_with_makefile("build-hook-pre: missing-input\n\ttrue\n");
        let error = has_hook("proj", directory.path())
            .await
            .expect_err("missing prerequisite");
        assert!(error.contains("missing-input"), "{error}");
    }

    #[tokio::test]
    async fn the_hook_sees_the_project_env_files() {
        let directory =
            project_with_makefile("build-hook-pre:\n\t@echo \"value=$$BUNKER_HOOK_TEST_VALUE\"\n");
        let env_dist = directory.path().join(".env-dist");
        let root_env = directory.path().join(".env_test");
        std::fs::write(&env_dist, "BUNKER_HOOK_TEST_VALUE=from-env-dist\n").expect("write");
        std::fs::write(&root_env, "BUNKER_HOOK_TEST_VALUE=from-root-env\n").expect("write");
        let output = run_hook("p", directory.path(), std::slice::from_ref(&env_dist))
            .await
            .expect("hook runs");
        assert_eq!(output.trim(), "value=from-env-dist");
        let output = run_hook("p", directory.path(), &[env_dist, root_env])
            .await
            .expect("hook runs");
        assert_eq!(output.trim(), "value=from-root-env");
        let error = run_hook(
            "p",
            directory.path(),
            &[directory.path().join("missing.env")],
        )
        .await
        .expect_err("a missing env file is an error");
        assert!(error.contains("missing.env"), "{error}");
    }

    #[test]
    fn tail_keeps_the_last_lines() {
        assert_eq!(tail("a\nb\nc\n", 2), "b\nc");
        assert_eq!(tail("a", 5), "a");
    }
}

#[cfg(test)]
mod rule_tests {
    use super::*;

    #[test]
    fn the_hook_rule_is_read_as_written() {
        let text = "X := $(shell date)\n.PHONY: build-hook-pre\nall build-hook-pre: deps\n\t+touch a\n\n# note\n\techo $(X)\nother:\n\techo no\n";
        assert_eq!(
            hook_rule_lines(text).unwrap(),
            ["all build-hook-pre: deps", "\t+touch a", "\techo $(X)"]
        );
        assert_eq!(
            hook_rule_lines("build-hook-pre-x:\n\ttrue\nX := build-hook-pre\n"),
            None
        );
    }
}

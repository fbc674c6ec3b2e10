//! Bad input never crashes `bunker image-catalog` and never silently drops a
//! project: every case in `tests/fixtures/bad/` gives an error naming the file
//! (and line, where known) and exit status 1, while the good project is still cataloged.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn bad_fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/bad")
}

fn bunker(projects_dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bunker"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", std::env::temp_dir())
        .arg("--projects-dir")
        .arg(projects_dir)
        .args(["--context", "none", "image-catalog"])
        .args(args)
        .output()
        .expect("run bunker")
}

/// Runs the catalog on one bad project; returns (stderr, JSON document).
fn catalog_of(project: &str) -> (String, Value) {
    let output = bunker(&bad_fixtures(), &["--json", "--project", project]);
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(
        output.status.code(),
        Some(1),
        "{project}: exit status must be 1; stderr:\n{stderr}"
    );
    assert!(
        !stderr.contains("panicked"),
        "{project} panicked:\n{stderr}"
    );
    let document: Value = serde_json::from_slice(&output.stdout).expect("JSON even on errors");
    (stderr, document)
}

fn assert_error(project: &str, file: &str, line: Option<usize>, fragments: &[&str]) -> Value {
    let (stderr, document) = catalog_of(project);
    let location = match line {
        Some(line) => format!("{project}/{file}:{line}: "),
        None => format!("{project}/{file}: "),
    };
    let error_line = stderr
        .lines()
        .find(|text| text.contains(&location))
        .unwrap_or_else(|| panic!("{project}: no error at {location:?} in:\n{stderr}"));
    for fragment in fragments {
        assert!(
            error_line.contains(fragment),
            "{project}: {fragment:?} missing from {error_line:?}"
        );
    }
    let errors = document["errors"].as_array().unwrap();
    assert!(
        errors
            .iter()
            .any(|error| error["file"].as_str().unwrap().ends_with(file)
                && error["line"].as_u64().map(|line| line as usize) == line),
        "{project}: JSON errors lack {file}:{line:?}: {errors:#?}"
    );
    assert_eq!(
        document["projects"][0]["name"], project,
        "the project is listed, not dropped"
    );
    assert_eq!(document["projects"][0]["ok"], false);
    document
}

#[test]
fn invalid_yaml_names_file_and_line() {
    assert_error(
        "invalid-yaml",
        "docker-compose.yaml",
        Some(4),
        &["invalid YAML"],
    );
}

#[test]
fn unknown_build_form_is_reported() {
    let document = assert_error(
        "unknown-build",
        "docker-compose.yaml",
        Some(5),
        &["unknown build form"],
    );
    let entries = document["entries"].as_array().unwrap();
    let web = entries
        .iter()
        .find(|entry| entry["service"] == "web")
        .unwrap();
    assert_eq!(
        web["image"], "nginx:1.27",
        "the other services are still cataloged"
    );
    let app = entries
        .iter()
        .find(|entry| entry["service"] == "app")
        .unwrap();
    assert!(
        app["image"].is_null(),
        "an unresolvable image is reported, not guessed: {app}"
    );
}

#[test]
fn missing_required_variable_names_variable_file_and_line() {
    let document = assert_error(
        "missing-required",
        "docker-compose.yaml",
        Some(7),
        &["WEB_IMAGE", "WEB_IMAGE is required"],
    );
    assert_error(
        "missing-required",
        "docker-compose.yaml",
        Some(5),
        &["DB_PASSWORD", "set a database password"],
    );
    let entries = document["entries"].as_array().unwrap();
    let web = entries
        .iter()
        .find(|entry| entry["service"] == "web")
        .unwrap();
    assert!(web["image"].is_null(), "{web}");
}

#[test]
fn unreadable_dockerfile_is_reported() {
    let document = assert_error(
        "missing-dockerfile",
        "app/Dockerfile",
        None,
        &["cannot read the Dockerfile", "build.context"],
    );
    let app = &document["entries"][0];
    assert_eq!(
        app["image"], "missing-dockerfile-app",
        "the built image name is still known"
    );
    assert_eq!(app["build"]["from_images_known"], false);
}

#[test]
fn dockerfile_syntax_error_names_line() {
    let (stderr, _) = catalog_of("bad-dockerfile");
    assert!(
        stderr.contains("bad-dockerfile/Dockerfile:"),
        "the Dockerfile and its line are named:\n{stderr}"
    );
}

#[test]
fn from_with_undeclared_arg_is_reported() {
    assert_error(
        "bad-from",
        "Dockerfile",
        Some(2),
        &["not an image reference", "ARG"],
    );
}

#[test]
fn empty_or_invalid_image_is_reported_not_guessed() {
    let (stderr, document) = catalog_of("bad-image");
    assert!(
        stderr.contains("bad-image/docker-compose.yaml:3:"),
        "{stderr}"
    );
    assert!(
        stderr.contains("APP_IMAGE"),
        "the variable to set is named:\n{stderr}"
    );
    assert!(
        stderr.contains("bad-image/docker-compose.yaml:5:"),
        "{stderr}"
    );
    assert!(stderr.contains("\"nginx:\""), "{stderr}");
    let entries = document["entries"].as_array().unwrap();
    assert!(
        entries.iter().all(|entry| entry["image"].is_null()),
        "{entries:#?}"
    );
}

#[test]
fn service_without_image_or_build_is_reported() {
    assert_error(
        "no-image",
        "docker-compose.yaml",
        Some(2),
        &["neither an image nor a build context"],
    );
}

#[test]
fn invalid_compose_project_name_is_reported() {
    let (stderr, document) = catalog_of("bad-project-name");
    assert!(
        stderr.contains("invalid project name \"Bad_Name\""),
        "{stderr}"
    );
    assert!(stderr.contains("COMPOSE_PROJECT_NAME"), "{stderr}");
    assert_eq!(document["entries"][0]["image"], "nginx:1.27");
}

#[test]
fn unknown_build_target_is_reported() {
    assert_error(
        "bad-target",
        "Dockerfile",
        None,
        &["\"prod\"", "build.target"],
    );
}

#[test]
fn extends_of_missing_service_is_reported() {
    assert_error(
        "extends-missing",
        "docker-compose.yaml",
        Some(2),
        &["\"nowhere\"", "does not exist"],
    );
}

#[test]
fn unknown_project_is_an_error() {
    let output = bunker(&bad_fixtures(), &["--project", "no-such-project"]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("no project \"no-such-project\""),
        "{stderr}"
    );
}

#[test]
fn missing_projects_directory_is_an_error() {
    let missing = bad_fixtures().join("does-not-exist");
    let output = bunker(&missing, &["--summary"]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("does-not-exist"), "{stderr}");
    assert!(
        stderr.contains("--projects-dir"),
        "the next step is named: {stderr}"
    );
}

#[test]
fn all_bad_projects_together_keep_the_good_one() {
    let output = bunker(&bad_fixtures(), &["--json"]);
    assert_eq!(output.status.code(), Some(1));
    let document: Value = serde_json::from_slice(&output.stdout).unwrap();
    let projects = document["projects"].as_array().unwrap();
    let on_disk = std::fs::read_dir(bad_fixtures()).unwrap().count();
    assert_eq!(projects.len(), on_disk, "no project is dropped");
    let good = projects
        .iter()
        .find(|project| project["name"] == "good")
        .unwrap();
    assert_eq!(good["ok"], true);
    assert!(
        document["entries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|entry| entry["project"] == "good" && entry["image"] == "nginx:1.27")
    );
    for project in projects.iter().filter(|project| project["name"] != "good") {
        assert_eq!(project["ok"], false, "{project}");
    }
}

#[test]
fn broken_env_file_names_file_and_line() {
    let (stderr, document) = catalog_of("bad-env");
    assert!(stderr.contains("bad-env/.env-dist:2: "), "{stderr}");
    assert!(stderr.contains("BAD@NAME"), "{stderr}");
    assert!(stderr.contains("fix the env file"), "{stderr}");
    assert_eq!(document["projects"][0]["ok"], false);
    assert!(
        document["entries"].as_array().unwrap().is_empty(),
        "no image is guessed without the project's variables"
    );
}

/// Every prefix of every fixture compose file loads or gives an error; none panics.
#[test]
fn truncated_compose_files_never_panic() {
    use bunker::catalog::compose::{ComposeDocument, read_model};
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let lookup = |name: &str| (name == "BASE_IMAGE").then(|| "alpine:3".to_string());
    let mut checked = 0;
    for entry in walkdir::WalkDir::new(root) {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy();
        if !(name.ends_with(".yaml") || name.ends_with(".yml")) {
            continue;
        }
        let text = std::fs::read_to_string(entry.path()).unwrap();
        for end in (0..=text.len()).filter(|end| text.is_char_boundary(*end)) {
            if let Ok(document) = ComposeDocument::parse(entry.path(), text[..end].to_string()) {
                let _ = read_model(&document, &lookup);
            }
            checked += 1;
        }
    }
    assert!(checked > 1000, "only {checked} prefixes checked");
}

#[test]
fn missing_included_file_is_reported() {
    let document = assert_error(
        "include-missing",
        "docker-compose.yaml",
        Some(2),
        &["missing/compose.yaml", "does not exist", "include"],
    );
    assert_eq!(document["entries"][0]["image"], "nginx:1.27");
}

#[test]
fn extends_cycle_is_reported() {
    let document = assert_error("extends-cycle", "docker-compose.yaml", Some(2), &["cycle"]);
    assert_error("extends-cycle", "docker-compose.yaml", Some(4), &["cycle"]);
    let ok = document["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|entry| entry["service"] == "ok")
        .unwrap();
    assert_eq!(ok["image"], "nginx:1.27");
}

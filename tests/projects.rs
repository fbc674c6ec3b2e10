//! Proves the embedded default infrastructure in `projects/` really works offline: each
//! project builds and pulls from the sandbox registry and comes up with Docker Compose v2
//! on the sandbox engine, every container staying up. The catalog, build, archive and
//! install tests rely on these projects being valid, so a broken example fails here first.
//!
//! Each test uses its own Compose project name and its own names for built images, so the
//! tests can run concurrently with each other and with other test binaries.

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

use common::{Output, Sandbox, docker, projects_dir, run, sandbox, unique_name};

/// One project brought up under a unique Compose project name; taken down (volumes and
/// built images included) when dropped, even after a failed assertion. Dangling images of
/// intermediate build stages stay behind: pruning them could break concurrent builds.
struct ComposeProject {
    sandbox: Sandbox,
    dir: PathBuf,
    name: String,
    /// Variables overriding `.env-dist`, e.g. unique names for built images.
    overrides: Vec<(String, String)>,
    built_images: Vec<String>,
    /// A configured instance's compose files and env file, as `bunker install` passes them.
    instance_args: Vec<String>,
}

impl ComposeProject {
    fn new(project: &str) -> ComposeProject {
        ComposeProject {
            sandbox: sandbox(),
            dir: projects_dir().join(project),
            name: unique_name(&format!("test-{project}")),
            overrides: Vec::new(),
            built_images: Vec::new(),
            instance_args: Vec::new(),
        }
    }

    /// Runs the project as its configured instance `instance` of the context `default`:
    /// its `.env_default_<instance>` after `.env-dist`, and its override file when it has one.
    fn instance(mut self, instance: &str) -> ComposeProject {
        self.instance_args = vec!["-f".into(), "docker-compose.yaml".into()];
        let override_file = format!("docker-compose.override_default_{instance}.yaml");
        if self.dir.join(&override_file).is_file() {
            self.instance_args.extend(["-f".into(), override_file]);
        }
        self.instance_args
            .extend(["--env-file".into(), format!(".env_default_{instance}")]);
        self
    }

    /// Gives the image built for a service a unique name through its `.env-dist` variable.
    fn with_built_image(mut self, variable: &str) -> ComposeProject {
        let image = format!("{}:1", unique_name("bunker-test/built"));
        self.overrides.push((variable.to_string(), image.clone()));
        self.built_images.push(image);
        self
    }

    /// Gives a built image a unique repository through `variable` (the tag stays the
    /// project's own, `tag` here), so it is removed afterwards.
    fn with_built_repository(
        mut self,
        variable: &str,
        repository: &str,
        tag: &str,
    ) -> ComposeProject {
        self.overrides
            .push((variable.to_string(), repository.to_string()));
        self.built_images.push(format!("{repository}:{tag}"));
        self
    }

    /// Records the image Compose names `<project>-<service>` for a built service without
    /// `image:`, so it is removed afterwards.
    fn with_compose_named_image(mut self, service: &str) -> ComposeProject {
        self.built_images.push(format!("{}-{service}", self.name));
        self
    }

    fn compose(&self, args: &[&str]) -> Output {
        let mut command = Command::new("docker-compose");
        command
            .current_dir(&self.dir)
            .args(["--env-file", ".env-dist"])
            .args(&self.instance_args)
            .args(["--project-name", &self.name])
            .args(args)
            .env("DOCKER_HOST", &self.sandbox.docker_host)
            .env("DOCKER_CONFIG", self.sandbox.dir.join("docker-client"))
            .env("DOCKER_BUILDKIT", "0")
            .env("BUNKER_REGISTRY", self.sandbox.projects_registry())
            .env_remove("DOCKER_CONTEXT")
            .env_remove("COMPOSE_PROFILES")
            .env_remove("COMPOSE_PROJECT_NAME");
        for (name, value) in &self.overrides {
            command.env(name, value);
        }
        run(&mut command)
    }

    #[track_caller]
    fn compose_ok(&self, args: &[&str]) -> String {
        let output = self.compose(args);
        output.assert_success();
        output.stdout
    }

    /// Builds, pulls and starts the project, waiting until every container runs (and is
    /// healthy where it has a health check).
    #[track_caller]
    fn up(&self, profiles: &[&str]) {
        let profile_args = profile_args(profiles);
        self.compose_ok(&[profile_args.as_slice(), &["build"]].concat());
        self.compose_ok(&[profile_args.as_slice(), &["pull", "--ignore-buildable"]].concat());
        self.compose_ok(&[profile_args.as_slice(), &["up", "--detach", "--wait"]].concat());
    }

    /// Services whose containers are running now.
    fn running_services(&self, profiles: &[&str]) -> BTreeSet<String> {
        let profile_args = profile_args(profiles);
        self.compose_ok(
            &[
                profile_args.as_slice(),
                &["ps", "--status", "running", "--services"],
            ]
            .concat(),
        )
        .lines()
        .map(str::to_string)
        .collect()
    }

    fn exec(&self, service: &str, command: &[&str]) -> Output {
        self.compose(&[&["exec", "-T", service], command].concat())
    }
}

impl Drop for ComposeProject {
    fn drop(&mut self) {
        self.compose(&["--profile", "*", "down", "--volumes", "--remove-orphans"]);
        for image in &self.built_images {
            docker(&self.sandbox, ["rmi", "--force", image.as_str()]);
        }
    }
}

fn profile_args<'a>(profiles: &[&'a str]) -> Vec<&'a str> {
    profiles
        .iter()
        .flat_map(|profile| ["--profile", profile])
        .collect()
}

fn names(services: &[&str]) -> BTreeSet<String> {
    services.iter().map(|service| service.to_string()).collect()
}

#[test]
fn web_serves_its_page_from_the_shared_httpd_image() {
    let project = ComposeProject::new("web");
    let images = project.compose_ok(&["config", "--images"]);
    assert_eq!(
        images.trim(),
        format!("{}/bunker/httpd:1.36", project.sandbox.projects_registry())
    );
    project.up(&[]);
    assert_eq!(project.running_services(&[]), names(&["web"]));
    let page = project.exec("web", &["wget", "-q", "-O", "-", "http://127.0.0.1:8080/"]);
    page.assert_success().assert_stdout_contains("It works");
}

#[test]
fn kv_builds_its_service_and_stores_values() {
    let project = ComposeProject::new("kv").with_built_image("KV_IMAGE");
    project.up(&[]);
    assert_eq!(project.running_services(&[]), names(&["kv", "backup"]));
    let session = project.exec(
        "kv",
        &[
            "sh",
            "-c",
            "printf 'SET colour blue\\nGET colour\\nGET bad/key\\nQUIT\\n' | nc 127.0.0.1 6380",
        ],
    );
    session.assert_success();
    assert_eq!(
        session.stdout.lines().collect::<Vec<_>>(),
        ["OK", "blue", "ERR bad key"]
    );
}

#[test]
fn pipeline_builds_two_targets_with_build_args() {
    let project = ComposeProject::new("pipeline")
        .with_built_image("PIPELINE_API_IMAGE")
        .with_compose_named_image("worker");
    project.up(&[]);
    assert_eq!(project.running_services(&[]), names(&["api", "worker"]));
    let version = project.exec(
        "api",
        &["wget", "-q", "-O", "-", "http://127.0.0.1:8080/version.txt"],
    );
    version.assert_success();
    assert_eq!(version.stdout.trim(), "1.0.0");
    let worker = project.exec("worker", &["cat", "/usr/local/bin/worker"]);
    worker
        .assert_success()
        .assert_stdout_contains("worker 1.0.0");
}

#[test]
fn tools_starts_profiled_services_only_on_request() {
    let project = ComposeProject::new("tools");
    let default_images = project.compose_ok(&["config", "--images"]);
    assert_eq!(
        default_images.trim(),
        format!("{}/bunker/httpd:1.36", project.sandbox.projects_registry())
    );
    project.up(&[]);
    assert_eq!(project.running_services(&[]), names(&["status"]));
    project.up(&["debug", "tools"]);
    assert_eq!(
        project.running_services(&["debug", "tools"]),
        names(&["status", "debug-shell", "toolbox"])
    );
}

#[test]
fn hooked_builds_with_the_file_its_make_hook_generates() {
    let project = ComposeProject::new("hooked").with_built_image("HOOKED_IMAGE");
    let hook = run(Command::new("make")
        .arg("-s")
        .arg("build-hook-pre")
        .current_dir(&project.dir));
    hook.assert_success();
    assert!(
        project.dir.join("build-info.txt").is_file(),
        "make build-hook-pre did not write build-info.txt"
    );
    project.up(&[]);
    assert_eq!(project.running_services(&[]), names(&["reporter"]));
    let info = project.exec("reporter", &["cat", "/etc/build-info.txt"]);
    info.assert_success()
        .assert_stdout_contains("project=hooked");
}

/// `duo` has two configured instances: `default` pins version 1.1 of the built image,
/// `second` keeps the `.env-dist` 1.0 and its override file adds a service built without
/// `image:` (so named after the instance's Compose project).
#[test]
fn duo_runs_each_instance_with_its_own_version_and_services() {
    let image = unique_name("bunker-test/duo");
    let first = ComposeProject::new("duo")
        .with_built_repository("DUO_IMAGE", &image, "1.1")
        .instance("default");
    let images = first.compose_ok(&["config", "--images"]);
    assert_eq!(images.trim(), format!("{image}:1.1"));
    first.up(&[]);
    assert_eq!(first.running_services(&[]), names(&["greeter"]));
    let version = first.exec("greeter", &["cat", "/version"]);
    assert_eq!(version.assert_success().stdout.trim(), "1.1");

    let second = ComposeProject::new("duo")
        .with_built_repository("DUO_IMAGE", &image, "1.0")
        .instance("second")
        .with_compose_named_image("sidecar");
    let mut images: Vec<String> = second
        .compose_ok(&["config", "--images"])
        .lines()
        .map(str::to_string)
        .collect();
    images.sort();
    assert_eq!(
        images,
        [format!("{image}:1.0"), format!("{}-sidecar", second.name)]
    );
    second.up(&[]);
    assert_eq!(second.running_services(&[]), names(&["greeter", "sidecar"]));
    let version = second.exec("greeter", &["cat", "/version"]);
    assert_eq!(version.assert_success().stdout.trim(), "1.0");
    let sidecar = second.exec(
        "sidecar",
        &["sh", "-c", "cat /version; echo $DUO_SIDECAR_MESSAGE"],
    );
    assert_eq!(
        sidecar.assert_success().stdout.lines().collect::<Vec<_>>(),
        ["sidecar", "second instance"]
    );
}

//! The pieces every disaster drill needs: a private sandbox of its own (another state
//! directory, other ports, optionally with engine 2), a copy of `projects/` pointed at the
//! private registry, and the checks that every project's default services run.
//!
//! Drills destroy engines and stop registries, so they never use the shared sandbox.
#![allow(dead_code)] // Each drill uses a different subset of these helpers.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

use bunker::archive::Manifest;
use bunker::build::{ImageAction, PlanOptions, Selection, plan};
use bunker::catalog::{CatalogOptions, ProjectInfo, load_catalog};

use crate::common::{
    Sandbox, TestHome, compose_project_running, docker, docker_ok, image_id, run, unique_name,
};

/// A sandbox of our own, torn down (`down --purge`) when dropped.
pub struct PrivateSandbox {
    /// Engine 1 (Docker 20.10, classic store).
    pub engine1: Sandbox,
    /// Engine 2 (Docker 26, containerd store), when started with it.
    pub engine2: Option<Sandbox>,
    pub registry_port: u16,
    // Declared last so it runs after nothing else needs the sandbox.
    _teardown: Teardown,
}

/// Runs `scripts/sandbox.sh down --purge` on `dir` when dropped, also after a failed `up`.
struct Teardown {
    dir: PathBuf,
}

impl Drop for Teardown {
    fn drop(&mut self) {
        let _ = Command::new(script())
            .args(["down", "--purge"])
            .env("BUNKER_SANDBOX_DIR", &self.dir)
            .output();
    }
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/sandbox.sh")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl PrivateSandbox {
    /// Starts a private sandbox; with `with_engine2`, engine 2 next to engine 1.
    pub fn start(with_engine2: bool) -> PrivateSandbox {
        let dir = PathBuf::from(format!("/tmp/{}", unique_name("bunker-drill")));
        let (ssh_port, registry_port, auth_port, engine2_ssh_port) =
            (free_port(), free_port(), free_port(), free_port());
        let teardown = Teardown { dir: dir.clone() };
        let up = run(Command::new(script())
            .arg("up")
            .env("BUNKER_SANDBOX_DIR", &dir)
            .env("ENGINE2", if with_engine2 { "1" } else { "0" })
            .env("SANDBOX_SSH_PORT", ssh_port.to_string())
            .env("SANDBOX_REGISTRY_PORT", registry_port.to_string())
            .env("SANDBOX_AUTH_REGISTRY_PORT", auth_port.to_string())
            .env("SANDBOX_ENGINE2_SSH_PORT", engine2_ssh_port.to_string()));
        assert!(
            up.success(),
            "sandbox not running: the drill's private sandbox did not start (scripts/sandbox.sh up):\n{up}"
        );
        let engine1 = Sandbox::from_env_file(&dir.join("env.sh"));
        assert_eq!(
            engine1.dir,
            dir,
            "{}/env.sh names another state directory",
            dir.display()
        );
        let engine2 = with_engine2.then(|| engine1.engine2());
        PrivateSandbox {
            engine1,
            engine2,
            registry_port,
            _teardown: teardown,
        }
    }

    /// Engine `number` (1 or 2) of this sandbox.
    pub fn engine(&self, number: u8) -> &Sandbox {
        match number {
            1 => &self.engine1,
            _ => self
                .engine2
                .as_ref()
                .expect("this private sandbox was started without engine 2"),
        }
    }

    /// Runs `scripts/sandbox.sh COMMAND` on this sandbox and asserts it succeeds.
    pub fn script(&self, command: &str) {
        run(Command::new(script())
            .arg(command)
            .env("BUNKER_SANDBOX_DIR", &self.engine1.dir))
        .assert_success();
    }

    /// Replaces engine `number` by a fresh one with no images at all.
    pub fn reset_engine(&self, number: u8) {
        self.script(if number == 1 {
            "engine-reset"
        } else {
            "engine2-reset"
        });
        assert_eq!(
            docker_ok(self.engine(number), ["images", "-aq"]),
            "",
            "the fresh engine {number} has images"
        );
    }
}

/// Copies `from` to `to`, pointing every `localhost:5999` image at the private registry
/// (`${BUNKER_REGISTRY:-localhost:5999}` included, so the caller's environment cannot
/// move it back to the shared one).
pub fn copy_projects(from: &Path, to: &Path, registry_port: u16) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
            copy_projects(&entry.path(), &target, registry_port);
            continue;
        }
        let bytes = std::fs::read(entry.path()).unwrap();
        match String::from_utf8(bytes) {
            Ok(text) => std::fs::write(
                &target,
                text.replace("${BUNKER_REGISTRY:-localhost:5999}", "localhost:5999")
                    .replace("localhost:5999", &format!("localhost:{registry_port}")),
            )
            .unwrap(),
            Err(error) => std::fs::write(&target, error.into_bytes()).unwrap(),
        }
        let permissions = std::fs::metadata(entry.path()).unwrap().permissions();
        std::fs::set_permissions(&target, permissions).unwrap();
    }
}

/// Services Compose starts by default (no profile) in a project or configured
/// instance: its compose and override files, its env files.
pub fn default_services(project: &ProjectInfo) -> Vec<String> {
    let mut command = Command::new("docker-compose");
    command
        .current_dir(project.compose_file.parent().unwrap())
        .env_remove("COMPOSE_PROFILES")
        .arg("-f")
        .arg(&project.compose_file);
    if let Some(override_file) = &project.override_file {
        command.arg("-f").arg(override_file);
    }
    for env_file in &project.env_files {
        command.arg("--env-file").arg(env_file);
    }
    let output = run(command.args(["config", "--services"]));
    output.assert_success();
    let mut services: Vec<String> = output.stdout.lines().map(str::to_string).collect();
    services.sort();
    services
}

/// The image each running container of a Compose project was started from, by service
/// (`service=image`), sorted.
pub fn running_images(sandbox: &Sandbox, project: &str) -> Vec<String> {
    compose_project_running(
        sandbox,
        project,
        "{{.Label \"com.docker.compose.service\"}}={{.Image}}",
    )
}

/// Services of compose project `project` running on the engine, sorted.
pub fn running_services(sandbox: &Sandbox, project: &str) -> Vec<String> {
    compose_project_running(
        sandbox,
        project,
        "{{.Label \"com.docker.compose.service\"}}",
    )
}

/// The layer diff IDs of `image` on the engine (`.RootFS.Layers`): what identifies an
/// image's content on either image store.
#[track_caller]
pub fn diff_ids(sandbox: &Sandbox, image: &str) -> String {
    docker_ok(
        sandbox,
        [
            "image",
            "inspect",
            "--format",
            "{{json .RootFS.Layers}}",
            image,
        ],
    )
}

/// The drill: every image `projects/` needs is built on engine `from` and archived with
/// `bunker image-archive` (checked with `bunker archive verify`), the registries stop,
/// engine `to` is replaced by a fresh one with no images, then `image-restore` and
/// `BUILD=false bunker install --all` onto engine `to` bring every project back up, over
/// real SSH. `from == to` is the same-engine drill; otherwise a cross-engine one.
pub fn archive_wipe_restore_install(private: &PrivateSandbox, from: u8, to: u8) {
    let source = private.engine(from);
    let target = private.engine(to);
    let home = TestHome::new(source);
    let work = tempfile::tempdir().unwrap();
    let projects = work.path().join("projects");
    std::fs::create_dir_all(&projects).unwrap();
    copy_projects(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("projects"),
        &projects,
        private.registry_port,
    );

    // 1. Every image the projects need, built and pulled on the source engine.
    home.bunker()
        .remote(source)
        .arg("--projects-dir")
        .arg(&projects)
        .arg("image-build")
        .run()
        .assert_success();

    // 2. Archive all of projects/ with `bunker image-archive` over SSH, then check every
    //    file against its manifest with `bunker archive verify`.
    // The context bunker uses here (no DOCKER_CONTEXT, a fresh HOME): `default`, whose
    // instance files projects/duo has.
    let catalog = load_catalog(&CatalogOptions {
        context: Some("default".to_string()),
        ..CatalogOptions::new(&projects)
    });
    assert!(catalog.errors.is_empty(), "{:?}", catalog.errors);
    let build_plan = plan(
        &catalog,
        &Selection::default(),
        PlanOptions {
            pull_base_images: false,
            pull_only: false,
        },
    );
    let needed: Vec<(String, String)> = build_plan
        .jobs()
        .filter(|job| job.action != ImageAction::Base)
        .map(|job| (job.project.clone(), job.image.clone()))
        .collect();
    let units: Vec<String> = catalog
        .projects
        .iter()
        .map(|p| format!("{}@{}", p.name, p.instance.as_deref().unwrap_or("-")))
        .collect();
    assert_eq!(
        units,
        [
            "duo@default",
            "duo@second",
            "hooked@-",
            "kv@-",
            "pipeline@-",
            "tools@-",
            "web@-"
        ]
    );
    // Each instance's own images: the pinned version, the .env-dist one, and the
    // service only the override of `second` adds (named after its Compose project).
    for image in [
        "bunker-local/duo:1.1",
        "bunker-local/duo:1.0",
        "duo_second-sidecar",
    ] {
        assert!(
            needed
                .iter()
                .any(|(project, needed)| project == "duo" && needed == image),
            "{image} is not planned for duo: {needed:?}"
        );
    }
    let archive_base = work.path().join("archive");
    let archive = home
        .bunker()
        .remote(source)
        .arg("--projects-dir")
        .arg(&projects)
        .arg("image-archive")
        .arg("--output-dir")
        .arg(&archive_base)
        .run();
    archive.assert_success();
    archive.assert_stdout_contains(" 0 failed");
    let arch = docker_ok(source, ["info", "--format", "{{.Architecture}}"]);
    let manifest_path = archive_base.join(&arch).join("manifest.json");
    let manifest = Manifest::load(&manifest_path)
        .unwrap_or_else(|error| panic!("{}: {error:#}", manifest_path.display()));
    for (project, image) in &needed {
        assert!(
            manifest.find(project, image).is_some(),
            "{} does not list {image} of {project}",
            manifest_path.display()
        );
    }
    let verify = home
        .bunker()
        .args(["archive", "verify", "--archive-dir"])
        .arg(&archive_base)
        .run();
    verify.assert_success();
    verify.assert_stdout_contains(&format!(
        "{} archive(s) checked, 0 bad",
        manifest.images.len()
    ));
    let archived: Vec<(String, String, String)> = needed
        .iter()
        .map(|(_, image)| {
            let id = image_id(source, image).unwrap();
            (image.clone(), id, diff_ids(source, image))
        })
        .collect();

    // 3. Disaster: no registry, and a brand-new target engine with no images at all.
    private.script("registry-stop");
    private.reset_engine(to);
    let pull = docker(target, ["pull", &target.registry_image]);
    assert!(
        !pull.success(),
        "a pull worked although the registry is stopped"
    );

    // 4. Restore onto the target: the archive is chosen by the engine's architecture.
    let home = TestHome::new(target);
    let restore = home
        .bunker()
        .remote(target)
        .env("IMAGE_ARCHIVE_DIR", &archive_base)
        .arg("--projects-dir")
        .arg(&projects)
        .arg("image-restore")
        .run();
    restore.assert_success();
    restore.assert_stdout_contains(" 0 failed");
    for (image, id, layers) in &archived {
        assert_eq!(
            &diff_ids(target, image),
            layers,
            "{image}: other layers after the restore onto engine {to}"
        );
        if from == to {
            assert_eq!(
                image_id(target, image).as_deref(),
                Some(id.as_str()),
                "{image}"
            );
        }
    }

    // 5. Offline install of everything on the target.
    let install = home
        .bunker()
        .remote(target)
        .env("BUILD", "false")
        .arg("--projects-dir")
        .arg(&projects)
        .args(["install", "--all"])
        .run();
    install.assert_success();
    install.assert_stdout_contains("7 of 7 project(s) up");
    for project in &catalog.projects {
        let expected = default_services(project);
        let compose_name = project.compose_name.clone().unwrap();
        assert_eq!(
            running_services(target, &compose_name),
            expected,
            "running services of {} on engine {to}",
            project.name
        );
    }
    assert_eq!(
        running_images(target, "duo"),
        ["greeter=bunker-local/duo:1.1"]
    );
    assert_eq!(
        running_images(target, "duo_second"),
        ["greeter=bunker-local/duo:1.0", "sidecar=duo_second-sidecar"]
    );
}

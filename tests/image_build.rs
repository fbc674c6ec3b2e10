//! `bunker image-build` against the sandbox: the bunker binary reaches the sandbox
//! engine through the sandbox sshd (`DOCKER_HOST=ssh://…`), builds contexts tarred on
//! this machine, pulls from the sandbox registries with credentials from the Docker
//! config, and the results are checked with the docker CLI on the engine.
//!
//! Every test writes its own project tree into a temporary directory, with unique
//! project and image names, so tests run concurrently on the shared engine.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::{
    BunkerCommand, Output, Sandbox, TestHome, build_unique_image, docker, docker_ok, image_id,
    sandbox, unique_name,
};

/// A temporary projects tree; removes the images it names from the engine when dropped.
struct Tree {
    sandbox: Sandbox,
    root: tempfile::TempDir,
    images: Vec<String>,
}

impl Tree {
    fn new() -> Tree {
        Tree {
            sandbox: sandbox(),
            root: tempfile::Builder::new()
                .prefix("bunker-build-tree-")
                .tempdir()
                .expect("create a projects tree"),
            images: Vec::new(),
        }
    }

    fn path(&self) -> &Path {
        self.root.path()
    }

    /// Writes `files` (path, content) into project `name`.
    fn project(&self, name: &str, files: &[(&str, String)]) -> PathBuf {
        let dir = self.root.path().join(name);
        for (path, content) in files {
            let file = dir.join(path);
            fs::create_dir_all(file.parent().expect("file has a parent")).expect("create dirs");
            fs::write(&file, content).expect("write project file");
        }
        dir
    }

    /// Records an image to remove afterwards and returns it.
    fn image(&mut self, name: String) -> String {
        self.images.push(name.clone());
        name
    }

    /// `bunker image-build` over SSH on this tree.
    fn build(&self, home: &TestHome, args: &[&str]) -> Output {
        self.bunker(home).arg("image-build").args(args).run()
    }

    /// `bunker --projects-dir <this tree>` over SSH, the subcommand still to add.
    fn bunker(&self, home: &TestHome) -> BunkerCommand {
        home.bunker()
            .remote(&self.sandbox)
            .projects_dir(self.path())
    }
}

impl Drop for Tree {
    fn drop(&mut self) {
        for image in &self.images {
            let _ = docker(&self.sandbox, ["rmi", "-f", image.as_str()]);
        }
    }
}

/// (ACTION, IMAGE) of every image row of an image-build table (dry run or real run).
fn image_rows(stdout: &str) -> Vec<(String, String)> {
    stdout
        .lines()
        .filter_map(|line| {
            let columns: Vec<&str> = line.split_whitespace().collect();
            match columns.as_slice() {
                [_, action, image, ..] if ["build", "pull", "base"].contains(action) => {
                    Some((action.to_string(), image.to_string()))
                }
                _ => None,
            }
        })
        .collect()
}

fn label(sandbox: &Sandbox, image: &str, name: &str) -> String {
    docker_ok(
        sandbox,
        [
            "image",
            "inspect",
            "--format",
            &format!("{{{{ index .Config.Labels \"{name}\" }}}}"),
            image,
        ],
    )
}

#[test]
fn builds_with_compose_args_and_target() {
    let sandbox = sandbox();
    let home = TestHome::new(&sandbox);
    let mut tree = Tree::new();
    let project = unique_name("argtarget");
    let image = tree.image(format!("{}:1", unique_name("bunker-test/argtarget")));
    tree.project(
        &project,
        &[
            (
                "docker-compose.yaml",
                "services:\n  app:\n    build:\n      context: .\n      target: runtime\n      args:\n        GREETING: ${GREETING}\n        FLAVOR: plain\n    image: ${APP_IMAGE}\n".to_string(),
            ),
            (".env-dist", format!("APP_IMAGE={image}\nGREETING=hello-from-env-dist\n")),
            (
                "Dockerfile",
                format!(
                    "FROM {seed} AS builder\nARG GREETING=default\nRUN echo \"$GREETING\" > /greeting\n\
                     FROM {seed} AS runtime\nARG FLAVOR=none\nARG GREETING=default\n\
                     LABEL stage=runtime flavor=$FLAVOR greeting=$GREETING\n\
                     COPY --from=builder /greeting /greeting\n\
                     FROM runtime AS debug\nLABEL stage=debug\n",
                    seed = sandbox.seed_image
                ),
            ),
        ],
    );
    let output = tree.build(&home, &["--project", &project]);
    output.assert_success();
    assert_eq!(
        image_rows(&output.stdout),
        vec![("build".to_string(), image.clone())]
    );
    output.assert_stdout_contains("1 built, 0 pulled, 0 failed, 0 skipped");
    assert_eq!(
        label(&sandbox, &image, "stage"),
        "runtime",
        "target was not honoured"
    );
    assert_eq!(label(&sandbox, &image, "flavor"), "plain");
    assert_eq!(label(&sandbox, &image, "greeting"), "hello-from-env-dist");
    let greeting = docker_ok(
        &sandbox,
        ["run", "--rm", image.as_str(), "cat", "/greeting"],
    );
    assert_eq!(greeting, "hello-from-env-dist");
}

#[test]
fn dockerignore_keeps_large_files_out_of_the_image() {
    let sandbox = sandbox();
    let home = TestHome::new(&sandbox);
    let mut tree = Tree::new();
    let project = unique_name("ignored");
    let image = tree.image(format!("{}:1", unique_name("bunker-test/ignored")));
    let dir = tree.project(
        &project,
        &[
            (
                "docker-compose.yaml",
                format!("services:\n  app:\n    build: .\n    image: {image}\n"),
            ),
            (
                "Dockerfile",
                format!("FROM {}\nCOPY . /ctx/\n", sandbox.seed_image),
            ),
            // Docker rules, not gitignore rules: `*.iso` matches only at the top level,
            // and the exception re-includes one file inside an excluded directory.
            (".dockerignore", "big\n*.iso\n!big/wanted.txt\n".to_string()),
            ("keep.txt", "kept\n".to_string()),
            ("big/wanted.txt", "wanted\n".to_string()),
            (
                "nested/inner.iso",
                "small iso in a subdirectory\n".to_string(),
            ),
        ],
    );
    let large = vec![0x5a_u8; 16 * 1024 * 1024];
    fs::write(dir.join("big/blob.bin"), &large).expect("write big/blob.bin");
    fs::write(dir.join("disk.iso"), &large).expect("write disk.iso");

    let output = tree.build(&home, &["--project", &project]);
    output.assert_success();
    let listing = docker_ok(
        &sandbox,
        ["run", "--rm", image.as_str(), "find", "/ctx", "-type", "f"],
    );
    let mut files: Vec<&str> = listing.lines().collect();
    files.sort_unstable();
    assert_eq!(
        files,
        vec![
            "/ctx/.dockerignore",
            "/ctx/Dockerfile",
            "/ctx/big/wanted.txt",
            "/ctx/docker-compose.yaml",
            "/ctx/keep.txt",
            "/ctx/nested/inner.iso",
        ]
    );
    let size: u64 = docker_ok(
        &sandbox,
        ["image", "inspect", "--format", "{{.Size}}", image.as_str()],
    )
    .parse()
    .expect("image size is a number");
    assert!(
        size < 8 * 1024 * 1024,
        "the large files reached the image: {size} bytes"
    );
}

#[test]
fn pulls_from_the_sandbox_registry() {
    let sandbox = sandbox();
    let home = TestHome::new(&sandbox);
    let mut tree = Tree::new();
    let project = unique_name("pulled");
    let image = tree.image(format!(
        "{}/{}:1",
        sandbox.registry,
        unique_name("bunker-test/pulled")
    ));
    let original_id = build_unique_image(&sandbox, &image);
    docker_ok(&sandbox, ["push", image.as_str()]);
    docker_ok(&sandbox, ["rmi", image.as_str()]);
    assert_eq!(image_id(&sandbox, &image), None);
    tree.project(
        &project,
        &[
            (
                "docker-compose.yaml",
                "services:\n  app:\n    image: ${APP_IMAGE}\n".to_string(),
            ),
            (".env-dist", format!("APP_IMAGE={image}\n")),
        ],
    );
    let output = tree.build(&home, &[]);
    output.assert_success();
    assert_eq!(
        image_rows(&output.stdout),
        vec![("pull".to_string(), image.clone())]
    );
    output.assert_stdout_contains("0 built, 1 pulled, 0 failed, 0 skipped");
    assert_eq!(image_id(&sandbox, &image), Some(original_id));
}

/// Pushes a unique image to the htpasswd registry; returns its name and ID.
fn push_to_auth_registry(sandbox: &Sandbox, tree: &mut Tree) -> (String, String) {
    let image = tree.image(format!(
        "{}/{}:1",
        sandbox.auth_registry,
        unique_name("bunker-test/private")
    ));
    let id = build_unique_image(sandbox, &image);
    let client = tempfile::tempdir().expect("docker client config dir");
    fs::write(
        client.path().join("config.json"),
        docker_config_with_auth(sandbox),
    )
    .expect("write client config");
    let push = common::run(
        std::process::Command::new("docker")
            .args(["push", image.as_str()])
            .env("DOCKER_HOST", &sandbox.docker_host)
            .env("DOCKER_CONFIG", client.path()),
    );
    push.assert_success();
    docker_ok(sandbox, ["rmi", image.as_str()]);
    (image, id)
}

fn docker_config_with_auth(sandbox: &Sandbox) -> String {
    common::auths_json(
        &sandbox.auth_registry,
        &sandbox.auth_user,
        &sandbox.auth_password,
    )
}

fn pull_project(tree: &Tree, image: &str) -> String {
    let project = unique_name("private");
    tree.project(
        &project,
        &[(
            "docker-compose.yaml",
            format!("services:\n  app:\n    image: {image}\n"),
        )],
    );
    project
}

#[test]
fn pulls_with_credentials_from_the_docker_config() {
    let sandbox = sandbox();
    let mut tree = Tree::new();
    let (image, id) = push_to_auth_registry(&sandbox, &mut tree);
    let project = pull_project(&tree, &image);

    let without = TestHome::new(&sandbox);
    let output = tree.build(&without, &["--project", &project]);
    output.assert_code(1);
    output.assert_stderr_contains(&format!(
        "{project}/app: pull {image} from {} failed:",
        sandbox.auth_registry
    ));
    output.assert_stderr_contains(&format!(
        "run `docker login {}` on this workstation",
        sandbox.auth_registry
    ));
    assert_eq!(image_id(&sandbox, &image), None);

    let with = TestHome::new(&sandbox);
    fs::write(
        with.path().join(".docker/config.json"),
        docker_config_with_auth(&sandbox),
    )
    .expect("write config.json");
    let output = tree.build(&with, &["--project", &project]);
    output.assert_success();
    assert_eq!(image_id(&sandbox, &image), Some(id));
}

#[test]
fn pulls_with_credentials_from_a_credential_helper() {
    use std::os::unix::fs::PermissionsExt;
    let sandbox = sandbox();
    let mut tree = Tree::new();
    let (image, id) = push_to_auth_registry(&sandbox, &mut tree);
    let project = pull_project(&tree, &image);
    let home = TestHome::new(&sandbox);
    let helpers = home.path().join("bin");
    fs::create_dir_all(&helpers).expect("create helper dir");
    let helper = helpers.join("docker-credential-bunkertest");
    fs::write(
        &helper,
        format!(
            "#!/bin/sh\n[ \"$1\" = get ] || exit 1\nread server\n\
             [ \"$server\" = \"{registry}\" ] || {{ echo \"unknown server $server\" >&2; exit 1; }}\n\
             printf '{{\"ServerURL\":\"%s\",\"Username\":\"{user}\",\"Secret\":\"{password}\"}}' \"$server\"\n",
            registry = sandbox.auth_registry,
            user = sandbox.auth_user,
            password = sandbox.auth_password
        ),
    )
    .expect("write helper");
    fs::set_permissions(&helper, fs::Permissions::from_mode(0o755)).expect("chmod helper");
    fs::write(
        home.path().join(".docker/config.json"),
        format!(
            "{{\"credHelpers\":{{\"{}\":\"bunkertest\"}}}}",
            sandbox.auth_registry
        ),
    )
    .expect("write config.json");
    let path = format!(
        "{}:{}",
        helpers.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let output = tree
        .bunker(&home)
        .env("PATH", path)
        .args(["image-build", "--project", &project])
        .run();
    output.assert_success();
    assert_eq!(image_id(&sandbox, &image), Some(id));
}

/// A tree where alphabetical order is wrong: `a-child` is built FROM `z-parent`, plus a
/// service without `image:` (named by Compose) and a pulled image.
fn dependency_tree(sandbox: &Sandbox, tree: &mut Tree) -> (String, Vec<(String, String)>) {
    let project = unique_name("chain");
    let parent = tree.image(format!("{}:1", unique_name("bunker-test/z-parent")));
    let child = tree.image(format!("{}:1", unique_name("bunker-test/a-child")));
    let compose_named = tree.image(format!("{project}-tool"));
    tree.project(
        &project,
        &[
            (
                "docker-compose.yaml",
                format!(
                    "services:\n  a-child:\n    build:\n      context: child\n      args:\n        PARENT: {parent}\n    image: {child}\n\
                     \x20 z-parent:\n    build: parent\n    image: {parent}\n\
                     \x20 tool:\n    build: parent\n\
                     \x20 cache:\n    image: {pulled}\n",
                    pulled = sandbox.registry_image
                ),
            ),
            (
                "child/Dockerfile",
                "ARG PARENT\nFROM ${PARENT}\nLABEL role=child\n".to_string(),
            ),
            (
                "parent/Dockerfile",
                format!("FROM {}\nLABEL role=parent\n", sandbox.seed_image),
            ),
        ],
    );
    let expected = vec![
        ("pull".to_string(), sandbox.registry_image.clone()),
        ("build".to_string(), parent),
        ("build".to_string(), child),
        ("build".to_string(), compose_named),
    ];
    (project, expected)
}

#[test]
fn dry_run_names_equal_real_names_and_builds_follow_dependencies() {
    let sandbox = sandbox();
    let home = TestHome::new(&sandbox);
    let mut tree = Tree::new();
    let (project, expected) = dependency_tree(&sandbox, &mut tree);

    let dry = tree.build(&home, &["--project", &project, "--dry-run"]);
    dry.assert_success();
    let planned = image_rows(&dry.stdout);
    for (_, image) in &planned {
        if image != &sandbox.registry_image {
            assert_eq!(
                image_id(&sandbox, image),
                None,
                "--dry-run produced {image}"
            );
        }
    }

    let real = tree.build(&home, &["--project", &project]);
    real.assert_success();
    let produced = image_rows(&real.stdout);
    assert_eq!(planned, produced, "dry run:\n{dry}\nreal run:\n{real}");
    assert_eq!(produced, expected);
    let json_plan = tree.build(&home, &["--project", &project, "--dry-run", "--json"]);
    json_plan.assert_success();
    let json_plan: serde_json::Value =
        serde_json::from_str(&json_plan.stdout).expect("--dry-run --json prints JSON");
    let json_images: Vec<(String, String)> = json_plan["projects"][0]["jobs"]
        .as_array()
        .expect("jobs array")
        .iter()
        .map(|job| {
            (
                job["action"].as_str().unwrap_or_default().to_string(),
                job["image"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    assert_eq!(json_images, expected);
    let json_run = tree.build(&home, &["--project", &project, "--json"]);
    json_run.assert_success();
    let json_run: serde_json::Value =
        serde_json::from_str(&json_run.stdout).expect("--json prints the report as JSON");
    let steps = json_run["steps"].as_array().expect("steps array");
    assert_eq!(steps.len(), expected.len());
    assert!(
        steps.iter().all(|step| step["outcome"]["result"] == "done"),
        "{json_run}"
    );
    for (_, image) in &produced {
        assert!(
            image_id(&sandbox, image).is_some(),
            "{image} is not on the engine"
        );
    }
    assert_eq!(label(&sandbox, &expected[2].1, "role"), "child");
}

#[test]
fn a_failing_dockerfile_names_project_service_and_step_and_others_still_build() {
    let sandbox = sandbox();
    let home = TestHome::new(&sandbox);
    let mut tree = Tree::new();
    let broken = unique_name("a-broken");
    let fine = unique_name("b-fine");
    let broken_image = tree.image(format!("{}:1", unique_name("bunker-test/broken")));
    let dependent_image = tree.image(format!("{}:1", unique_name("bunker-test/dependent")));
    let fine_image = tree.image(format!("{}:1", unique_name("bunker-test/fine")));
    tree.project(
        &broken,
        &[
            (
                "docker-compose.yaml",
                format!(
                    "services:\n  app:\n    build: .\n    image: {broken_image}\n\
                     \x20 dependent:\n    build: dependent\n    image: {dependent_image}\n"
                ),
            ),
            (
                "Dockerfile",
                format!(
                    "FROM {}\nRUN echo about-to-fail && exit 3\nLABEL never=reached\n",
                    sandbox.seed_image
                ),
            ),
            (
                "dependent/Dockerfile",
                format!("FROM {broken_image}\nLABEL role=dependent\n"),
            ),
        ],
    );
    tree.project(
        &fine,
        &[
            (
                "docker-compose.yaml",
                format!("services:\n  web:\n    build: .\n    image: {fine_image}\n"),
            ),
            (
                "Dockerfile",
                format!("FROM {}\nLABEL role=fine\n", sandbox.seed_image),
            ),
        ],
    );

    let output = tree.build(&home, &["--jobs", "1"]);
    output.assert_code(1);
    output.assert_stderr_contains(&format!(
        "{broken}/app: step 2/3 (RUN echo about-to-fail && exit 3): The command '/bin/sh -c echo about-to-fail && exit 3' returned a non-zero code: 3"
    ));
    output.assert_stderr_contains("about-to-fail");
    output.assert_stderr_contains(&format!(
        "{broken}/dependent: {dependent_image} not built: it is built from {broken_image}, which failed"
    ));
    output.assert_stdout_contains("1 built, 0 pulled, 1 failed, 1 skipped");
    assert_eq!(image_id(&sandbox, &broken_image), None);
    assert_eq!(label(&sandbox, &fine_image, "role"), "fine");

    let fine_image_again = fine_image.clone();
    docker_ok(&sandbox, ["rmi", fine_image_again.as_str()]);
    let output = tree.build(&home, &["--jobs", "1", "--fail-fast"]);
    output.assert_code(1);
    output.assert_stderr_contains(&format!(
        "{fine}/web: {fine_image} not started: --fail-fast stopped the run after an earlier failure"
    ));
    assert_eq!(image_id(&sandbox, &fine_image), None);
}

#[test]
fn the_build_hook_runs_once_per_project_and_its_failure_fails_the_project() {
    let sandbox = sandbox();
    let home = TestHome::new(&sandbox);
    let mut tree = Tree::new();
    let hooked = unique_name("hooked");
    let failing = unique_name("hookfails");
    let first = tree.image(format!("{}:1", unique_name("bunker-test/hook-first")));
    let second = tree.image(format!("{}:1", unique_name("bunker-test/hook-second")));
    let never = tree.image(format!("{}:1", unique_name("bunker-test/hook-never")));
    let dockerfile = format!(
        "FROM {}\nCOPY generated.txt /generated.txt\n",
        sandbox.seed_image
    );
    let hooked_dir = tree.project(
        &hooked,
        &[
            (
                "docker-compose.yaml",
                format!(
                    "services:\n  one:\n    build: .\n    image: {first}\n  two:\n    build: .\n    image: {second}\n"
                ),
            ),
            ("Dockerfile", dockerfile.clone()),
            (".env-dist", "HOOKED_VALUE=from-env-dist\n".to_string()),
            (
                "Makefile",
                "build-hook-pre:\n\techo run >> hook-runs.log\n\techo \"$$HOOKED_VALUE\" > generated.txt\n"
                    .to_string(),
            ),
        ],
    );
    tree.project(
        &failing,
        &[
            (
                "docker-compose.yaml",
                format!("services:\n  app:\n    build: .\n    image: {never}\n"),
            ),
            ("Dockerfile", dockerfile),
            (
                "Makefile",
                "build-hook-pre:\n\t@echo hook-output-marker\n\t@exit 4\n".to_string(),
            ),
        ],
    );

    let output = tree.build(&home, &[]);
    output.assert_code(1);
    assert_eq!(
        fs::read_to_string(hooked_dir.join("hook-runs.log")).expect("hook ran"),
        "run\n",
        "the hook must run exactly once for a project with two built services"
    );
    assert!(image_id(&sandbox, &first).is_some());
    assert!(image_id(&sandbox, &second).is_some());
    let generated = docker_ok(
        &sandbox,
        ["run", "--rm", first.as_str(), "cat", "/generated.txt"],
    );
    assert_eq!(
        generated, "from-env-dist",
        "the hook must see the project's .env-dist"
    );
    output.assert_stderr_contains(&format!("{failing}: `make build-hook-pre` failed in"));
    output.assert_stderr_contains("hook-output-marker");
    output.assert_stderr_contains(&format!(
        "{failing}/app: {never} not built: the project's build-hook-pre failed"
    ));
    assert_eq!(image_id(&sandbox, &never), None);
}

#[test]
fn build_false_checks_presence_instead_of_building() {
    let sandbox = sandbox();
    let home = TestHome::new(&sandbox);
    let mut tree = Tree::new();
    let project = unique_name("offline");
    let missing = tree.image(format!("{}:1", unique_name("bunker-test/offline")));
    tree.project(
        &project,
        &[
            (
                "docker-compose.yaml",
                format!(
                    "services:\n  app:\n    build: .\n    image: {missing}\n  cache:\n    image: {}\n",
                    sandbox.seed_image
                ),
            ),
            ("Dockerfile", format!("FROM {}\n", sandbox.seed_image)),
        ],
    );

    let output = tree
        .bunker(&home)
        .env("BUILD", "false")
        .args(["image-build", "--project", &project])
        .run();
    output.assert_code(1);
    output.assert_stdout_contains("BUILD=false: building nothing");
    output.assert_stderr_contains(&format!("missing: {missing} ({project}/app)"));
    assert!(
        output
            .stdout
            .lines()
            .any(|line| line.contains(&sandbox.seed_image) && line.contains("present")),
        "{output}"
    );
    assert_eq!(
        image_id(&sandbox, &missing),
        None,
        "BUILD=false built an image"
    );

    // `0` in the projects root `.env_<context>` turns building off too; with only
    // present images the check passes.
    fs::write(tree.path().join(".env_default"), "BUILD=0\n").expect("write root env");
    let present_only = unique_name("present");
    tree.project(
        &present_only,
        &[(
            "docker-compose.yaml",
            format!("services:\n  cache:\n    image: {}\n", sandbox.seed_image),
        )],
    );
    let output = tree.build(&home, &["--project", &present_only]);
    output.assert_success();
    output.assert_stdout_contains("all 1 needed images are present");
}

#[test]
fn bad_input_is_reported_with_status() {
    let sandbox = sandbox();
    let home = TestHome::new(&sandbox);
    let tree = Tree::new();
    let output = tree.build(&home, &["--jobs", "0"]);
    output.assert_code(2);
    output.assert_stderr_contains("invalid value '0' for '--jobs <N>'");

    let output = tree.build(&home, &["--project", "no-such-project"]);
    output.assert_code(1);
    output.assert_stderr_contains("no project \"no-such-project\"");

    let missing_context = unique_name("nocontext");
    tree.project(
        &missing_context,
        &[(
            "docker-compose.yaml",
            "services:\n  app:\n    build: ./not-there\n    image: bunker-test/never:1\n"
                .to_string(),
        )],
    );
    let output = tree.build(&home, &["--project", &missing_context]);
    output.assert_code(1);
    output.assert_stderr_contains(&format!("{missing_context}/app:"));
    output.assert_stderr_contains("not-there");
}

#[test]
fn pull_flag_pulls_dockerfile_base_images_first() {
    let sandbox = sandbox();
    let home = TestHome::new(&sandbox);
    let mut tree = Tree::new();
    let project = unique_name("withbase");
    let base = tree.image(format!(
        "{}/{}:1",
        sandbox.registry,
        unique_name("bunker-test/base")
    ));
    let base_id = build_unique_image(&sandbox, &base);
    docker_ok(&sandbox, ["push", base.as_str()]);
    docker_ok(&sandbox, ["rmi", base.as_str()]);
    let image = tree.image(format!("{}:1", unique_name("bunker-test/on-base")));
    tree.project(
        &project,
        &[
            (
                "docker-compose.yaml",
                format!(
                    "services:\n  app:\n    build:\n      context: .\n      args:\n        BASE: {base}\n    image: {image}\n"
                ),
            ),
            (
                "Dockerfile",
                "ARG BASE\nFROM ${BASE}\nLABEL role=on-base\n".to_string(),
            ),
        ],
    );

    let dry = tree.build(&home, &["--project", &project, "--pull", "--dry-run"]);
    dry.assert_success();
    let expected = vec![
        ("base".to_string(), base.clone()),
        ("build".to_string(), image.clone()),
    ];
    assert_eq!(image_rows(&dry.stdout), expected);

    let output = tree.build(&home, &["--project", &project, "--pull"]);
    output.assert_success();
    assert_eq!(image_rows(&output.stdout), expected);
    output.assert_stdout_contains("1 built, 1 pulled, 0 failed, 0 skipped");
    assert_eq!(image_id(&sandbox, &base), Some(base_id));
    assert_eq!(label(&sandbox, &image, "role"), "on-base");

    // --pull-only pulls (with --pull, the base images too) and builds nothing.
    docker_ok(&sandbox, ["rmi", image.as_str(), base.as_str()]);
    let output = tree.build(&home, &["--project", &project, "--pull", "--pull-only"]);
    output.assert_success();
    assert_eq!(
        image_rows(&output.stdout),
        vec![("base".to_string(), base.clone())]
    );
    assert_eq!(image_id(&sandbox, &image), None);
}

#[test]
fn inline_dockerfile_verbose_output_and_no_cache() {
    let sandbox = sandbox();
    let home = TestHome::new(&sandbox);
    let mut tree = Tree::new();
    let project = unique_name("inline");
    let image = tree.image(format!("{}:1", unique_name("bunker-test/inline")));
    tree.project(
        &project,
        &[
            (
                "docker-compose.yaml",
                format!(
                    "services:\n  app:\n    build:\n      context: .\n      dockerfile_inline: |\n        FROM {}\n        COPY hello.txt /hello.txt\n        RUN cat /hello.txt\n    image: {image}\n",
                    sandbox.seed_image
                ),
            ),
            ("hello.txt", "hello inline\n".to_string()),
        ],
    );
    let first = tree.build(&home, &["--project", &project]);
    first.assert_success();
    assert!(
        !first.stderr.contains("Step 1/3"),
        "engine output without --verbose:\n{first}"
    );
    let hello = docker_ok(
        &sandbox,
        ["run", "--rm", image.as_str(), "cat", "/hello.txt"],
    );
    assert_eq!(hello, "hello inline");

    let cached = tree.build(&home, &["--project", &project, "--verbose"]);
    cached.assert_success();
    cached.assert_stderr_contains(&format!(
        "{project}/app: Step 1/3 : FROM {}",
        sandbox.seed_image
    ));
    cached.assert_stderr_contains("Using cache");

    let uncached = tree.build(&home, &["--project", &project, "--verbose", "--no-cache"]);
    uncached.assert_success();
    uncached.assert_stderr_contains(&format!("{project}/app: hello inline"));
    assert!(
        !uncached.stderr.contains("Using cache"),
        "--no-cache used the cache:\n{uncached}"
    );
}

#[test]
fn broken_credential_configuration_is_named() {
    let sandbox = sandbox();
    let tree = Tree::new();
    let project = pull_project(&tree, &sandbox.registry_image);

    let home = TestHome::new(&sandbox);
    let config = home.path().join(".docker/config.json");
    fs::write(&config, "{ not json").expect("write config.json");
    let output = tree.build(&home, &["--project", &project]);
    output.assert_code(1);
    output.assert_stderr_contains(&format!(
        "{project}/app: pull {}: cannot read registry credentials from {}: it is not valid Docker config JSON; fix or remove it",
        sandbox.registry_image,
        config.display()
    ));

    let home = TestHome::new(&sandbox);
    fs::write(
        home.path().join(".docker/config.json"),
        format!(
            "{{\"credHelpers\":{{\"{}\":\"bunker-no-such-helper\"}}}}",
            sandbox.registry
        ),
    )
    .expect("write config.json");
    let output = tree.build(&home, &["--project", &project]);
    output.assert_code(1);
    output.assert_stderr_contains(&format!(
        "{project}/app: pull {}: cannot get the credentials for {}",
        sandbox.registry_image, sandbox.registry
    ));
    output.assert_stderr_contains("install that docker-credential-* program on PATH");
}

mod signal_support;

#[test]
fn ctrl_c_during_a_build_cuts_it_reports_so_far_and_a_rerun_completes() {
    let sandbox = sandbox();
    let home = TestHome::new(&sandbox);
    let mut tree = Tree::new();
    let quick = unique_name("a-quick");
    let slow = unique_name("b-slow");
    let quick_image = tree.image(format!("{}:1", unique_name("bunker-test/int-quick")));
    let slow_image = tree.image(format!("{}:1", unique_name("bunker-test/int-slow")));
    let later_image = tree.image(format!("{}:1", unique_name("bunker-test/int-later")));
    tree.project(
        &quick,
        &[
            (
                "docker-compose.yaml",
                format!("services:\n  web:\n    build: .\n    image: {quick_image}\n"),
            ),
            (
                "Dockerfile",
                format!("FROM {}\nRUN echo {quick} > /marker\n", sandbox.seed_image),
            ),
        ],
    );
    // The unique echo defeats the build cache; DELAY comes from the process
    // environment, so the rerun builds the same Dockerfile without the wait.
    tree.project(
        &slow,
        &[
            (
                "docker-compose.yaml",
                format!(
                    "services:\n  app:\n    build:\n      context: .\n      args:\n        DELAY: ${{DELAY:-30}}\n    image: {slow_image}\n  \
                     later:\n    build:\n      context: .\n      args:\n        DELAY: \"0\"\n    image: {later_image}\n"
                ),
            ),
            (
                "Dockerfile",
                format!(
                    "FROM {}\nARG DELAY\nRUN sleep $DELAY && echo {slow} > /marker\n",
                    sandbox.seed_image
                ),
            ),
        ],
    );
    let command = |delay: &str| {
        tree.bunker(&home)
            .env("DELAY", delay)
            .args(["--verbose", "image-build", "--jobs", "1"])
    };

    let running = signal_support::Running::start(command("30"));
    running.wait_for_line("the slow build's RUN step", |line| {
        line.contains(&format!("{slow}/app: Step 3/3 : RUN sleep"))
    });
    let interrupted = running.interrupted(libc::SIGINT);

    interrupted.assert_stderr_contains("images already built or pulled stay on the engine");
    // The cut build and the unstarted one are named.
    interrupted.assert_stderr_contains(&format!(
        "skipped {slow}/app: {slow_image} build cut: bunker was interrupted after"
    ));
    interrupted.assert_stderr_contains(&format!(
        "skipped {slow}/later: {later_image} not started: bunker was interrupted"
    ));
    interrupted.assert_stderr_contains(&format!(
        "stopped by Ctrl-C: cut 1 running step(s): {slow} build {slow_image}; 1 step(s) not started"
    ));
    interrupted.assert_stdout_contains("1 built, 0 pulled, 0 failed, 2 skipped");
    let stdout = &interrupted.stdout;
    assert_eq!(
        image_rows(stdout),
        [
            ("build".to_string(), quick_image.clone()),
            ("build".to_string(), slow_image.clone()),
            ("build".to_string(), later_image.clone()),
        ],
        "{stdout}"
    );
    assert!(
        image_id(&sandbox, &quick_image).is_some(),
        "finished work stays"
    );
    assert_eq!(
        image_id(&sandbox, &slow_image),
        None,
        "the cut build left no image"
    );
    assert_eq!(
        signal_support::processes_mentioning(&tree.path().display().to_string()),
        Vec::<String>::new(),
        "no process bunker started is left"
    );

    let rerun = command("0").run();
    rerun.assert_success();
    rerun.assert_stdout_contains("3 built, 0 pulled, 0 failed, 0 skipped");
    assert!(image_id(&sandbox, &slow_image).is_some(), "{rerun}");
    assert!(image_id(&sandbox, &later_image).is_some(), "{rerun}");
    let containers = docker_ok(
        &sandbox,
        ["ps", "--all", "--no-trunc", "--format", "{{.Command}}"],
    );
    assert!(
        !containers.contains(&slow),
        "the engine dropped the cut build's container:\n{containers}"
    );
}

#[test]
fn sigterm_during_the_build_hook_kills_its_commands_and_builds_nothing() {
    let sandbox = sandbox();
    let home = TestHome::new(&sandbox);
    let mut tree = Tree::new();
    let project = unique_name("hook-term");
    let image = tree.image(format!("{}:1", unique_name("bunker-test/hook-term")));
    let marker = unique_name("hook-sleeps");
    tree.project(
        &project,
        &[
            (
                "docker-compose.yaml",
                format!("services:\n  app:\n    build: .\n    image: {image}\n"),
            ),
            ("Dockerfile", format!("FROM {}\n", sandbox.seed_image)),
            (
                "Makefile",
                format!("build-hook-pre:\n\tsleep 3600 && echo {marker}\n"),
            ),
        ],
    );
    let mut running = signal_support::Running::start(tree.bunker(&home).arg("image-build"));
    running.wait_until_every(
        std::time::Duration::from_millis(20),
        "its hook was seen running",
        |_| !signal_support::processes_mentioning(&marker).is_empty(),
    );
    let interrupted = running.interrupted(libc::SIGTERM);

    interrupted.assert_stderr_contains(&format!(
        "skipped {project}: `make build-hook-pre` cut: bunker was interrupted after"
    ));
    interrupted.assert_stderr_contains(&format!(
        "skipped {project}/app: {image} not started: bunker was interrupted"
    ));
    interrupted.assert_stdout_contains("0 built, 0 pulled, 0 failed, 1 skipped");
    assert_eq!(
        signal_support::processes_mentioning(&marker),
        Vec::<String>::new(),
        "the hook's commands are killed"
    );
    assert_eq!(image_id(&sandbox, &image), None);
}

/// `pull_policy` decides the refresh pull as `docker compose pull` does. The
/// images are named after a registry that never resolves, so any pull bunker
/// tries shows up as a stale warning.
#[test]
fn pull_policy_skips_the_pulls_compose_pull_skips() {
    let sandbox = sandbox();
    let home = TestHome::new(&sandbox);
    let mut tree = Tree::new();
    let project = unique_name("policy");
    let name = |what: &str| format!("registry.invalid/acc/{project}-{what}:1");
    let never = tree.image(name("never"));
    let missing = tree.image(name("missing"));
    let always = tree.image(name("always"));
    let absent = name("absent");
    for image in [&never, &missing, &always] {
        docker_ok(&sandbox, ["tag", &sandbox.seed_image, image.as_str()]);
    }
    tree.project(
        &project,
        &[(
            "docker-compose.yaml",
            format!(
                "services:\n  never:\n    image: {never}\n    pull_policy: never\n  \
                 missing:\n    image: {missing}\n    pull_policy: if_not_present\n  \
                 always:\n    image: {always}\n    pull_policy: always\n  \
                 absent:\n    image: {absent}\n    pull_policy: never\n"
            ),
        )],
    );
    let output = tree.build(&home, &["--json"]);
    output.assert_code(1);
    let report: serde_json::Value = serde_json::from_str(&output.stdout).expect("JSON report");
    let result_of = |image: &str| -> String {
        report["steps"]
            .as_array()
            .expect("steps")
            .iter()
            .find(|step| step["image"] == image)
            .unwrap_or_else(|| panic!("no step for {image}: {output}"))["outcome"]["result"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(result_of(&never), "kept", "{output}");
    assert_eq!(result_of(&missing), "kept", "{output}");
    assert_eq!(result_of(&always), "stale", "{output}");
    assert_eq!(result_of(&absent), "failed", "{output}");
    output.assert_stderr_contains(&format!(
        "{project}/absent: {absent} is not on the engine and its pull_policy: never forbids pulling it"
    ));
    assert!(
        !output.stderr.contains(&format!("pull {never} from")),
        "{output}"
    );
    let table = tree.build(&home, &[]);
    table.assert_stdout_contains("0 built, 0 pulled, 1 failed, 0 skipped, 1 stale, 2 kept");
}

/// A dry run executes nothing, not even the parts of a hook `make -n` runs
/// (`$(shell …)` and `+` lines): it prints the hook's target and recipe as written.
#[test]
fn a_dry_run_prints_the_build_hook_without_running_any_of_it() {
    let home = TestHome::new(&sandbox());
    let mut tree = Tree::new();
    let project = unique_name("hook-dry");
    let image = tree.image(format!("{}:1", unique_name("bunker-test/hook-dry")));
    let directory = tree.project(
        &project,
        &[
            (
                "docker-compose.yaml",
                format!("services:\n  app:\n    build: .\n    image: {image}\n"),
            ),
            ("Dockerfile", "FROM scratch\nCOPY Makefile /\n".to_string()),
            (
                "Makefile",
                "TOP := $(shell touch top-level-shell-ran)\n\n.PHONY: build-hook-pre\nbuild-hook-pre:\n\techo $(shell touch recipe-shell-ran)\n\t+touch plus-line-ran\n"
                    .to_string(),
            ),
        ],
    );

    let output = tree.build(&home, &["--project", &project, "--dry-run"]);
    output.assert_success();
    for file in ["top-level-shell-ran", "recipe-shell-ran", "plus-line-ran"] {
        assert!(
            !directory.join(file).exists(),
            "--dry-run executed part of the hook: {file} was created; stdout:\n{}",
            output.stdout
        );
    }
    output.assert_stdout_contains(&format!("{project}: build-hook-pre in "));
    output.assert_stdout_contains("build-hook-pre:\n");
    output.assert_stdout_contains("\techo $(shell touch recipe-shell-ran)\n");
    output.assert_stdout_contains("\t+touch plus-line-ran\n");
    assert_eq!(
        image_id(&tree.sandbox, &image),
        None,
        "--dry-run built {image}"
    );
}

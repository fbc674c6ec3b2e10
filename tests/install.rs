//! `bunker install` against the sandbox engine over real SSH: Docker Compose v2 on the
//! workstation reaches the engine through bunker's forwarded socket.

mod common;

use std::path::{Path, PathBuf};

use common::*;

/// A projects tree with one project `<name>` whose compose file is `compose`.
fn tree_with(name: &str, compose: &str, files: &[(&str, &str)]) -> tempfile::TempDir {
    let tree = tempfile::tempdir().unwrap();
    let dir = add_project(tree.path(), name, compose);
    for (file, text) in files {
        std::fs::write(dir.join(file), text).unwrap();
    }
    tree
}

/// Names of the running containers of Compose project `project`, sorted.
fn running_containers(sandbox: &Sandbox, project: &str) -> Vec<String> {
    compose_project_running(sandbox, project, "{{.Names}}")
}

/// `docker compose down` of a project on the sandbox engine.
fn compose_down(sandbox: &Sandbox, project: &str) {
    run(std::process::Command::new("docker-compose")
        .args([
            "--project-name",
            project,
            "down",
            "--volumes",
            "--remove-orphans",
        ])
        .env("DOCKER_HOST", &sandbox.docker_host))
    .assert_success();
}

/// Adds project `<name>` whose compose file is `compose` to the projects tree `tree`;
/// returns its directory.
fn add_project(tree: &Path, name: &str, compose: &str) -> PathBuf {
    let dir = tree.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("docker-compose.yaml"), compose).unwrap();
    dir
}

/// `bunker --projects-dir <tree> install <extra>` on the sandbox engine over SSH.
fn install(home: &TestHome, sandbox: &Sandbox, tree: &Path, extra: &[&str]) -> Output {
    install_command(home, sandbox, tree, extra).run()
}

/// `bunker --projects-dir <tree> install --project <project> <extra>` over SSH.
fn install_project(
    home: &TestHome,
    sandbox: &Sandbox,
    tree: &Path,
    project: &str,
    extra: &[&str],
) -> Output {
    install_command(home, sandbox, tree, &["--project", project])
        .args(extra)
        .run()
}

/// `install` with `BUILD=<build>` in bunker's environment.
fn install_with_build(
    home: &TestHome,
    sandbox: &Sandbox,
    tree: &Path,
    build: &str,
    extra: &[&str],
) -> Output {
    install_command(home, sandbox, tree, extra)
        .env("BUILD", build)
        .run()
}

fn install_command(
    home: &TestHome,
    sandbox: &Sandbox,
    tree: &Path,
    extra: &[&str],
) -> BunkerCommand {
    home.bunker()
        .remote(sandbox)
        .projects_dir(tree)
        .arg("install")
        .args(extra)
}

fn long_running(image: &str) -> String {
    format!("services:\n  app:\n    image: {image}\n    command: [\"sleep\", \"3600\"]\n")
}

#[test]
fn build_false_from_the_root_env_file_starts_a_project_whose_images_are_there() {
    let sandbox = sandbox();
    let home = TestHome::new(&sandbox);
    let project = unique_name("offline");
    let tree = tree_with(&project, &long_running(&sandbox.seed_image), &[]);
    std::fs::write(tree.path().join(".env_default"), "BUILD=false\n").unwrap();
    let output = install_project(&home, &sandbox, tree.path(), &project, &[]);
    output.assert_success();
    output.assert_stderr_contains("BUILD=false: nothing is built or pulled");
    output.assert_stdout_contains("--no-build --pull never");
    assert_eq!(running_containers(&sandbox, &project).len(), 1, "{output}");
    compose_down(&sandbox, &project);
}

#[test]
fn build_false_names_every_missing_image_and_starts_nothing() {
    let sandbox = sandbox();
    let home = TestHome::new(&sandbox);
    let project = unique_name("lacking");
    let absent = format!("bunker-test/{project}-absent:1");
    let compose = format!(
        "services:\n  here:\n    image: {}\n    command: [\"sleep\", \"3600\"]\n  gone:\n    image: {absent}\n",
        sandbox.seed_image
    );
    let tree = tree_with(&project, &compose, &[]);
    let output = install_with_build(&home, &sandbox, tree.path(), "0", &["--all"]);
    output.assert_code(1);
    output.assert_stderr_contains(&format!("lacks 1 image(s): {absent}"));
    output.assert_stderr_contains(&format!("bunker image-restore --project {project}"));
    assert_eq!(running_containers(&sandbox, &project), Vec::<String>::new());
}

#[test]
fn build_true_builds_then_starts() {
    let sandbox = sandbox();
    let home = TestHome::new(&sandbox);
    let project = unique_name("online");
    let image = format!("bunker-test/{project}:1");
    let compose = format!(
        "services:\n  app:\n    build: .\n    image: {image}\n    command: [\"sleep\", \"3600\"]\n"
    );
    let dockerfile = format!("FROM {}\nRUN echo built > /built\n", sandbox.seed_image);
    let tree = tree_with(&project, &compose, &[("Dockerfile", &dockerfile)]);
    let output = install_project(&home, &sandbox, tree.path(), &project, &[]);
    output.assert_success();
    assert!(
        image_id(&sandbox, &image).is_some(),
        "{image} was not built"
    );
    assert_eq!(running_containers(&sandbox, &project).len(), 1, "{output}");
    compose_down(&sandbox, &project);
    docker_ok(&sandbox, ["rmi", &image]);
}

#[test]
fn an_unknown_project_and_no_selection_are_errors() {
    let sandbox = sandbox();
    let home = TestHome::new(&sandbox);
    let tree = tree_with("present", &long_running(&sandbox.seed_image), &[]);
    let unknown = install(&home, &sandbox, tree.path(), &["--project", "absent"]);
    unknown.assert_code(1);
    unknown.assert_stderr_contains("no project \"absent\"");

    let neither = install(&home, &sandbox, tree.path(), &[]);
    neither.assert_code(2);
    neither.assert_stderr_contains("--project");
}

#[test]
fn containers_that_do_not_run_fail_the_install() {
    let sandbox = sandbox();
    let home = TestHome::new(&sandbox);
    let project = unique_name("norun");
    // One container cannot start (no such command); the other runs.
    let compose = format!(
        "services:\n  app:\n    image: {}\n    command: [\"/bin/{project}-missing\"]\n  fine:\n    image: {}\n    command: [\"sleep\", \"3600\"]\n",
        sandbox.seed_image, sandbox.seed_image
    );
    let tree = tree_with(&project, &compose, &[]);
    let output = install_with_build(&home, &sandbox, tree.path(), "false", &["--all"]);
    output.assert_code(1);
    output.assert_stderr_contains(&format!("container {project}-app-1 is created"));
    output.assert_stderr_contains(&format!("see `docker logs {project}-app-1`"));
    assert!(
        !output.stderr.contains(&format!("{project}-fine-1")),
        "{output}"
    );
    compose_down(&sandbox, &project);
}

#[test]
fn json_report_lists_each_project_and_only_json_is_on_stdout() {
    let sandbox = sandbox();
    let home = TestHome::new(&sandbox);
    let up = unique_name("json-up");
    let lacking = unique_name("json-lacking");
    let absent = format!("bunker-test/{lacking}-absent:1");
    let tree = tree_with(&up, &long_running(&sandbox.seed_image), &[]);
    add_project(tree.path(), &lacking, &long_running(&absent));
    let output = install_with_build(&home, &sandbox, tree.path(), "false", &["--all", "--json"]);
    output.assert_code(1);
    output.assert_stderr_contains(&format!("lacks 1 image(s): {absent}"));
    let report: serde_json::Value = serde_json::from_str(&output.stdout)
        .unwrap_or_else(|error| panic!("stdout is not only JSON ({error}):\n{output}"));
    assert_eq!(report["engine"], sandbox.ssh_url().as_str(), "{report:#}");
    assert_eq!(report["offline"], true, "{report:#}");
    assert_eq!(report["ok"], false, "{report:#}");
    assert_eq!(report["problems"], serde_json::json!([]), "{report:#}");
    let project = |name: &str| json_entry(&report, "projects", "project", name).clone();
    let started = project(&up);
    assert_eq!(started["installed"], true, "{report:#}");
    assert_eq!(
        started["detail"], "up (BUILD=false: --no-build --pull never)",
        "{report:#}"
    );
    assert_eq!(started["missing_images"], serde_json::json!([]));
    let blocked = project(&lacking);
    assert_eq!(blocked["installed"], false, "{report:#}");
    assert_eq!(blocked["missing_images"], serde_json::json!([absent]));
    assert!(
        blocked["detail"]
            .as_str()
            .unwrap()
            .contains("bunker image-restore --project"),
        "{report:#}"
    );
    assert_eq!(running_containers(&sandbox, &up).len(), 1, "{output}");
    assert_eq!(running_containers(&sandbox, &lacking), Vec::<String>::new());
    compose_down(&sandbox, &up);
}

mod signal_support;

/// A project whose `up --wait` lasts until its container has slept `$DELAY`
/// seconds (from bunker's environment): only then is it healthy.
fn waiting_until_ready(image: &str) -> String {
    format!(
        "services:\n  app:\n    image: {image}\n    command: [\"sh\", \"-c\", \"sleep $${{DELAY}}; touch /ready; sleep 3600\"]\n    \
         environment:\n      DELAY: ${{DELAY}}\n    \
         healthcheck:\n      test: [\"CMD\", \"test\", \"-e\", \"/ready\"]\n      interval: 1s\n      retries: 3\n      start_period: 1h\n"
    )
}

#[test]
fn ctrl_c_during_compose_up_stops_it_reports_so_far_and_a_rerun_completes() {
    let sandbox = sandbox();
    let home = TestHome::new(&sandbox);
    let first = unique_name("a-int-up");
    let waiting = unique_name("b-int-wait");
    let later = unique_name("c-int-later");
    let tree = tree_with(&first, &long_running(&sandbox.seed_image), &[]);
    for (name, compose) in [
        (&waiting, waiting_until_ready(&sandbox.seed_image)),
        (&later, long_running(&sandbox.seed_image)),
    ] {
        add_project(tree.path(), name, &compose);
    }
    // bunker's temporary files (the forwarded engine socket) go here.
    let temp = tempfile::tempdir().unwrap();
    let command = |delay: &str| {
        install_command(&home, &sandbox, tree.path(), &["--all", "--wait"])
            .env("BUILD", "false")
            .env("DELAY", delay)
            .env("TMPDIR", temp.path())
    };

    let mut running = signal_support::Running::start(command("3600"));
    running.wait_for_line("the install of the waiting project", |line| {
        line.starts_with(&format!("[install] {waiting} ..."))
    });
    // Compose has started the container and now waits for it to be healthy.
    running.wait_until_every(
        std::time::Duration::from_millis(50),
        "the waiting project's container was seen running",
        |_| !running_containers(&sandbox, &waiting).is_empty(),
    );
    let interrupted = running.interrupted(libc::SIGINT);

    for line in [
        "projects already up stay up".to_string(),
        format!("stopped: {waiting}: `docker-compose up` stopped: bunker was interrupted"),
        format!("stopped: {later}: not started: bunker was interrupted"),
    ] {
        interrupted.assert_stderr_contains(&line);
    }
    // The summary so far.
    interrupted.assert_stdout_contains("1 of 3 project(s) up on");
    let stdout = &interrupted.stdout;
    let row = |name: &str| {
        stdout
            .lines()
            .find(|line| line.starts_with(name))
            .map(|line| line.split_whitespace().nth(1).unwrap_or("").to_string())
    };
    assert_eq!(row(&first).as_deref(), Some("up"), "{stdout}");
    assert_eq!(row(&waiting).as_deref(), Some("stopped"), "{stdout}");
    assert_eq!(row(&later).as_deref(), Some("stopped"), "{stdout}");
    assert_eq!(running_containers(&sandbox, &later), Vec::<String>::new());
    assert_eq!(
        signal_support::processes_mentioning(&tree.path().display().to_string()),
        Vec::<String>::new(),
        "no Compose is left running"
    );
    assert_eq!(
        std::fs::read_dir(temp.path()).unwrap().count(),
        0,
        "the forwarded socket and its directory are removed"
    );

    let rerun = command("0").run();
    rerun.assert_success();
    rerun.assert_stdout_contains("3 of 3 project(s) up on");
    for project in [&first, &waiting, &later] {
        assert_eq!(running_containers(&sandbox, project).len(), 1, "{rerun}");
        compose_down(&sandbox, project);
    }
}

#[test]
fn an_image_whose_registry_is_down_is_installed_from_the_engines_copy_as_stale() {
    let sandbox = sandbox();
    let home = TestHome::new(&sandbox);
    let project = unique_name("stale");
    let image = format!("registry.invalid/acc/{project}:1");
    docker_ok(&sandbox, ["tag", &sandbox.seed_image, &image]);
    // `always`: `docker compose up` pulls it, so bunker does too.
    let compose = format!("{}    pull_policy: always\n", long_running(&image));
    let tree = tree_with(&project, &compose, &[]);

    let output = install_project(&home, &sandbox, tree.path(), &project, &["--json"]);
    let strict = install_project(&home, &sandbox, tree.path(), &project, &["--strict"]);
    compose_down(&sandbox, &project);
    docker_ok(&sandbox, ["rmi", &image]);

    output.assert_success();
    output.assert_stderr_contains(&format!(
        "warning: {project}/app: pull {image} from registry.invalid failed"
    ));
    output.assert_stderr_contains("installed from the engine's copy (created ");
    let report: serde_json::Value = serde_json::from_str(&output.stdout).expect("JSON report");
    assert_eq!(report["ok"], true, "{output}");
    assert_eq!(report["stale"][0]["image"], image.as_str(), "{output}");
    assert_eq!(
        report["stale"][0]["registry"], "registry.invalid",
        "{output}"
    );
    assert!(report["stale"][0]["created"].is_string(), "{output}");
    assert_eq!(report["projects"][0]["installed"], true, "{output}");
    strict.assert_code(1);
    strict.assert_stderr_contains("--strict: 1 image(s) are stale");
}

#[test]
fn install_pulls_only_missing_images_by_default_as_compose_up_does() {
    let sandbox = sandbox();
    let home = TestHome::new(&sandbox);
    let project = unique_name("uppolicy");
    // Its registry never resolves: a pull attempt would show as a stale warning.
    let image = format!("registry.invalid/acc/{project}:1");
    docker_ok(&sandbox, ["tag", &sandbox.seed_image, &image]);
    let tree = tree_with(&project, &long_running(&image), &[]);

    let output = install_project(&home, &sandbox, tree.path(), &project, &["--json"]);
    compose_down(&sandbox, &project);
    docker_ok(&sandbox, ["rmi", &image]);

    output.assert_success();
    assert!(!output.stderr.contains("warning:"), "{output}");
    let report: serde_json::Value = serde_json::from_str(&output.stdout).expect("JSON report");
    assert!(report.get("stale").is_none(), "{output}");
    assert_eq!(report["projects"][0]["installed"], true, "{output}");
}

/// A project with configured instances (context `default`): each instance comes up as
/// its own Compose project (`<project>` for `default`, `<project>_blue`) with its env
/// file and its override file; `--instance` brings up only the one named.
#[test]
fn configured_instances_come_up_with_their_env_file_override_and_project_name() {
    let sandbox = sandbox();
    let home = TestHome::new(&sandbox);
    let project = unique_name("instances");
    let compose = "services:\n  app:\n    image: ${APP_IMAGE}\n    command: [\"sleep\", \"3600\"]\n    environment:\n      MARK: ${MARK}\n";
    let override_blue = format!(
        "services:\n  extra:\n    image: {}\n    command: [\"sleep\", \"3600\"]\n",
        sandbox.seed_image
    );
    let tree = tree_with(
        &project,
        compose,
        &[
            (
                ".env-dist",
                &format!("APP_IMAGE={}\nMARK=dist\n", sandbox.seed_image),
            ),
            (".env_default_default", "MARK=default\n"),
            (".env_default_blue", "MARK=blue\n"),
            ("docker-compose.override_default_blue.yaml", &override_blue),
        ],
    );
    std::fs::write(tree.path().join(".env_default"), "BUILD=false\n").unwrap();
    let blue = format!("{project}_blue");
    let mark = |container: &str| {
        docker_ok(
            &sandbox,
            [
                "inspect",
                "--format",
                "{{range .Config.Env}}{{println .}}{{end}}",
                container,
            ],
        )
        .lines()
        .find_map(|line| line.strip_prefix("MARK=").map(str::to_string))
    };

    let unknown = install_project(
        &home,
        &sandbox,
        tree.path(),
        &project,
        &["--instance", "nosuch"],
    );
    assert!(!unknown.success(), "{unknown}");
    unknown.assert_stderr_contains("no configured instance \"nosuch\"");

    let only_blue = install_project(
        &home,
        &sandbox,
        tree.path(),
        &project,
        &["--instance", "blue"],
    );
    only_blue.assert_success();
    only_blue.assert_stdout_contains(&format!("{project}@blue"));
    only_blue.assert_stdout_contains("1 of 1 project(s) up");
    assert_eq!(running_containers(&sandbox, &project), Vec::<String>::new());
    assert_eq!(
        running_containers(&sandbox, &blue),
        [format!("{blue}-app-1"), format!("{blue}-extra-1")]
    );
    assert_eq!(mark(&format!("{blue}-app-1")).as_deref(), Some("blue"));

    let both = install_project(&home, &sandbox, tree.path(), &project, &[]);
    both.assert_success();
    both.assert_stdout_contains("2 of 2 project(s) up");
    assert_eq!(
        running_containers(&sandbox, &project),
        [format!("{project}-app-1")]
    );
    assert_eq!(
        mark(&format!("{project}-app-1")).as_deref(),
        Some("default")
    );
    assert_eq!(running_containers(&sandbox, &blue).len(), 2);
    compose_down(&sandbox, &project);
    compose_down(&sandbox, &blue);
}

//! `bunker archive verify --load [--run CMD]` against real engines: loaded under a
//! scratch name, checked, run with no network, and removed again; an existing image or
//! tag is never touched; a corrupt archive never reaches the engine; on a scratch engine
//! every layer is read from the archive.

mod common;
mod drill_support;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use common::archive_tree::ArchiveTree;
use common::{
    BunkerCommand, Output, Sandbox, TestHome, build_unique_image, docker_ok, image_id, unique_name,
};
use drill_support::PrivateSandbox;

/// Waits until the test has looked at its container (`/go` appears), then succeeds only
/// with no network interface but loopback.
const GATED_OFFLINE_COMMAND: &str = "sh -c 'while [ ! -e /go ]; do sleep 0.1; done; \
     test ! -e /sys/class/net/eth0 && cat /marker'";

/// Runs `bunker` (whose `--run` is [`GATED_OFFLINE_COMMAND`]) while watching the engine's
/// events: for every container it starts, reads the network mode the engine gave it while
/// it runs, then lets it go on. Returns bunker's output and those network modes.
fn run_gated(engine: &Sandbox, bunker: BunkerCommand) -> (Output, Vec<String>) {
    let (docker_host, docker_config) =
        (engine.docker_host.clone(), engine.dir.join("docker-client"));
    let docker_cli = move |args: &[&str]| {
        let mut command = Command::new("docker");
        command
            .args(args)
            .env("DOCKER_HOST", &docker_host)
            .env("DOCKER_CONFIG", &docker_config)
            .env_remove("DOCKER_CONTEXT");
        command
    };
    let mut events = docker_cli(&[
        "events",
        "--filter",
        "type=container",
        "--filter",
        "type=network",
        "--filter",
        "event=start",
        "--filter",
        "event=create",
        "--format",
        "{{.Type}} {{.Action}} {{.Actor.ID}}",
    ])
    .stdout(Stdio::piped())
    .spawn()
    .expect("start docker events");
    let mut lines = BufReader::new(events.stdout.take().expect("events output")).lines();
    // The stream is live once it reports a network this test creates.
    let ready = unique_name("bunker-verifyload-ready");
    docker_ok(engine, ["network", "create", &ready]);
    loop {
        let line = lines
            .next()
            .expect("docker events ended before it was ready")
            .expect("read docker events");
        if line.starts_with("network create") {
            break;
        }
    }
    docker_ok(engine, ["network", "rm", &ready]);
    let watcher = std::thread::spawn(move || {
        let mut modes = Vec::new();
        for line in lines.map_while(Result::ok) {
            let Some(id) = line.strip_prefix("container start ") else {
                continue;
            };
            let mode = docker_cli(&["inspect", "--format", "{{.HostConfig.NetworkMode}}", id])
                .output()
                .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_string())
                .unwrap_or_default();
            modes.push(mode);
            let _ = docker_cli(&["exec", id, "touch", "/go"]).output();
        }
        modes
    });
    let output = common::run(&mut bunker.into_command());
    let _ = events.kill();
    let _ = events.wait();
    (output, watcher.join().expect("the events watcher"))
}

fn verify_load(bunker: BunkerCommand, archive: &Path, extra: &[&str]) -> Output {
    bunker
        .args(["archive", "verify", "--load", "--json", "--archive-dir"])
        .arg(archive)
        .args(extra)
        .run()
}

fn report(output: &Output) -> serde_json::Value {
    serde_json::from_str(&output.stdout)
        .unwrap_or_else(|error| panic!("--json printed no JSON ({error}):\n{output}"))
}

/// The run's token, from the scratch name `bunker-verify/<token>:<n>`.
fn token(report: &serde_json::Value) -> String {
    let name = report["images"][0]["scratch_name"]
        .as_str()
        .expect("scratch_name");
    name.trim_start_matches("bunker-verify/")
        .split(':')
        .next()
        .expect("token")
        .to_string()
}

/// Nothing of the run `token` is left: no image under its scratch names, no container
/// with its label.
fn assert_nothing_left(sandbox: &Sandbox, token: &str) {
    let images = docker_ok(
        sandbox,
        [
            "images",
            "-q",
            "--filter",
            &format!("reference=bunker-verify/{token}"),
        ],
    );
    assert_eq!(images, "", "scratch images left on the engine");
    let containers = docker_ok(
        sandbox,
        [
            "ps",
            "-aq",
            "--filter",
            &format!("label=bunker.verify={token}"),
        ],
    );
    assert_eq!(containers, "", "containers of the check left on the engine");
}

#[test]
fn on_a_scratch_engine_every_layer_is_read_the_command_runs_offline_and_nothing_stays() {
    let private = PrivateSandbox::start(true);
    let tree = tempfile::tempdir().expect("projects tree");
    let archive = tempfile::tempdir().expect("archive directory");
    // One image archived from each engine: a classic docker-save tar (20.10) and the
    // OCI-style one with index.json (26), so both renaming paths reach both stores.
    for number in [1u8, 2] {
        let engine = private.engine(number);
        let image = format!("{}:v{number}", unique_name("bunker-verifyload/scratch"));
        build_unique_image(engine, &image);
        let project = tree.path().join(format!("p{number}"));
        std::fs::create_dir_all(&project).expect("project directory");
        std::fs::write(
            project.join("docker-compose.yaml"),
            format!("services:\n  app:\n    image: {image}\n"),
        )
        .expect("compose file");
        TestHome::new(engine)
            .bunker()
            .remote(engine)
            .arg("--projects-dir")
            .arg(tree.path())
            .args(["image-archive", "--project", &format!("p{number}")])
            .arg("--output-dir")
            .arg(archive.path())
            .env("BUILD", "false")
            .run()
            .assert_success();
    }
    for number in [1u8, 2] {
        private.reset_engine(number);
        let engine = private.engine(number);
        let home = TestHome::new(engine);
        let bunker = home
            .bunker()
            .remote(engine)
            .args(["archive", "verify", "--load", "--json", "--archive-dir"])
            .arg(archive.path())
            .args(["--run", GATED_OFFLINE_COMMAND]);
        let (output, network_modes) = run_gated(engine, bunker);
        output.assert_success();
        assert_eq!(
            network_modes,
            vec!["none", "none"],
            "engine {number}: each check's container runs with no network"
        );
        let report = report(&output);
        let images = report["images"].as_array().expect("images");
        assert_eq!(images.len(), 2, "{output}");
        for image in images {
            assert_eq!(image["ok"], true, "engine {number}: {image:#}");
            let layers = image["layers"].as_u64().expect("layers");
            assert!(layers > 0, "{image:#}");
            assert_eq!(
                image["layers_read"].as_u64(),
                Some(layers),
                "a scratch engine reads every layer: {image:#}"
            );
            assert_eq!(image["run"]["exit_code"], 0, "{image:#}");
        }
        assert!(
            !output.stderr.contains("scratch engine"),
            "no note about present layers on a scratch engine:\n{output}"
        );
        assert_eq!(
            docker_ok(engine, ["images", "-aq"]),
            "",
            "engine {number} was empty before the check and must be after it"
        );
        assert_eq!(docker_ok(engine, ["ps", "-aq"]), "", "engine {number}");
    }
}

/// A tree with one built image, archived; returns (tree, image, its ID).
fn archived_unique_image(kind: &str) -> (ArchiveTree, String, String) {
    let mut tree = ArchiveTree::new(kind);
    let image = tree.image(format!("{}:1", unique_name("bunker-verifyload/app")));
    let id = build_unique_image(&tree.sandbox, &image);
    tree.image_project("app", &image);
    tree.archive_present(&[]).assert_success();
    (tree, image, id)
}

#[test]
fn existing_images_and_tags_stay_as_they_were() {
    // "moved": the archived image's tag now names another image, and the archived
    // image is gone. "present": the archived image is still on the engine.
    let (mut tree, moved, archived_id) = archived_unique_image("verifyload-tags");
    let present = tree.image(format!("{}:1", unique_name("bunker-verifyload/present")));
    let present_id = build_unique_image(&tree.sandbox, &present);
    tree.image_project("present", &present);
    tree.archive_present(&["--project", "present"])
        .assert_success();
    let newer_id = build_unique_image(&tree.sandbox, &moved);
    assert_ne!(newer_id, archived_id);
    docker_ok(&tree.sandbox, ["rmi", &archived_id]);

    let output = verify_load(
        tree.bunker(),
        tree.archive.path(),
        &["--run", "cat /marker"],
    );
    output.assert_success();
    let report = report(&output);
    let by_image = |name: &str| {
        report["images"]
            .as_array()
            .expect("images")
            .iter()
            .find(|image| image["image"] == name)
            .unwrap_or_else(|| panic!("{name} not in the report:\n{output}"))
            .clone()
    };
    let moved_report = by_image(&moved);
    assert_eq!(moved_report["ok"], true, "{moved_report:#}");
    assert_eq!(moved_report["loaded_id"], archived_id.as_str());
    let present_report = by_image(&present);
    assert_eq!(present_report["ok"], true, "{present_report:#}");
    assert_eq!(present_report["was_present"], true);
    assert_eq!(
        present_report["layers_read"], 0,
        "the engine had every layer: none is read from the archive"
    );
    output.assert_stderr_contains("check against a scratch engine");

    assert_eq!(
        image_id(&tree.sandbox, &moved).as_deref(),
        Some(newer_id.as_str()),
        "the tag must still name the image it named before"
    );
    assert_eq!(
        image_id(&tree.sandbox, &archived_id),
        None,
        "the image the check loaded must be removed again"
    );
    assert_eq!(
        image_id(&tree.sandbox, &present).as_deref(),
        Some(present_id.as_str()),
        "the image that was there stays, with its name"
    );
    assert_nothing_left(&tree.sandbox, &token(&report));
}

#[test]
fn a_failing_command_fails_the_check_and_its_container_and_image_go() {
    let (tree, _image, id) = archived_unique_image("verifyload-fail");
    docker_ok(&tree.sandbox, ["rmi", &id]);
    let output = verify_load(
        tree.bunker(),
        tree.archive.path(),
        &["--run", "sh -c 'echo broken-marker >&2; exit 3'"],
    );
    output.assert_code(1);
    output.assert_stderr_contains("1 archive(s) failed to load or run");
    let report = report(&output);
    let trial = &report["images"][0];
    assert_eq!(trial["ok"], false, "{trial:#}");
    assert_eq!(trial["run"]["exit_code"], 3, "{trial:#}");
    assert!(
        trial["run"]["output"].to_string().contains("broken-marker"),
        "the command's output is reported: {trial:#}"
    );
    assert!(
        trial["problems"][0]
            .as_str()
            .is_some_and(|problem| problem.contains("exited with status 3")),
        "{trial:#}"
    );
    assert_eq!(
        image_id(&tree.sandbox, &id),
        None,
        "the loaded image is removed"
    );
    assert_nothing_left(&tree.sandbox, &token(&report));

    // The same in the table: one BAD line with the output below it.
    let output = tree
        .bunker()
        .args(["archive", "verify", "--load", "--archive-dir"])
        .arg(tree.archive.path())
        .args(["--run", "sh -c 'echo broken-marker >&2; exit 3'"])
        .run();
    output.assert_code(1);
    output.assert_stdout_contains("  BAD  ");
    output.assert_stdout_contains("exited with status 3");
    output.assert_stdout_contains("| broken-marker");
    output.assert_stdout_contains("1 archive(s) loaded and checked on ");
}

#[test]
fn a_corrupt_archive_is_refused_before_the_engine_sees_it() {
    let (tree, image, id) = archived_unique_image("verifyload-corrupt");
    docker_ok(&tree.sandbox, ["rmi", &image]);
    assert_eq!(image_id(&tree.sandbox, &id), None);
    let file = tree
        .manifest()
        .get("images")
        .and_then(|images| images[0]["file"].as_str())
        .map(|file| tree.arch_dir().join(file))
        .expect("manifest names the file");
    let mut bytes = std::fs::read(&file).expect("read the archive");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&file, bytes).expect("corrupt the archive");

    let output = verify_load(tree.bunker(), tree.archive.path(), &[]);
    output.assert_code(1);
    let report = report(&output);
    let trial = &report["images"][0];
    assert_eq!(trial["ok"], false);
    assert!(
        trial["problems"][0].as_str().is_some_and(|problem| problem
            .contains("refused before the engine saw a whole tar")
            && problem.contains(file.file_name().unwrap().to_str().unwrap())),
        "{trial:#}"
    );
    assert_eq!(trial["loaded_id"], serde_json::Value::Null);
    assert_eq!(
        image_id(&tree.sandbox, &id),
        None,
        "no image of a corrupt archive may reach the engine"
    );
    assert_nothing_left(&tree.sandbox, &token(&report));
}

#[test]
fn run_needs_load_and_a_command() {
    let sandbox = common::sandbox();
    let home = TestHome::new(&sandbox);
    let output = home
        .bunker()
        .args(["archive", "verify", "--run", "true"])
        .run();
    output.assert_code(2);
    output.assert_stderr_contains("--load");
    let output = home
        .bunker()
        .args(["archive", "verify", "--load", "--run", "echo 'unclosed"])
        .run();
    output.assert_code(2);
    output.assert_stderr_contains("unclosed quote");
    // The engine side of a missing image: nothing to check is an error, not a pass.
    let empty = tempfile::tempdir().expect("empty archive directory");
    let output = home
        .bunker()
        .remote(&sandbox)
        .args(["archive", "verify", "--load", "--archive-dir"])
        .arg(empty.path())
        .run();
    output.assert_code(1);
    output.assert_stderr_contains("manifest.json");
}

//! `image-catalog --deployed` and `image-archive --deployed` against the sandbox engine
//! over real SSH, with containers started by the real Docker Compose: each kind of
//! difference is set up (a running cataloged service, a cataloged service that does
//! not run, a container whose tag was re-pointed after it started, a Compose project
//! the catalog does not know), and the running image of a moved tag is archived and
//! restored under the name its containers used.
//!
//! Every name is unique to the test run, and the guard removes only what the test
//! created; other tests' containers on the shared engine are never touched (and the
//! assertions look only at this test's own rows).

mod common;

use std::path::Path;

use common::*;
use serde_json::Value;

/// Removes this test's Compose projects and image names when the test ends.
struct Cleanup<'a> {
    sandbox: &'a Sandbox,
    projects: Vec<String>,
    images: Vec<String>,
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        for project in &self.projects {
            let _ = run(std::process::Command::new("docker-compose")
                .args(["--project-name", project, "down", "--remove-orphans"])
                .env("DOCKER_HOST", &self.sandbox.docker_host));
        }
        for image in &self.images {
            let _ = docker(self.sandbox, ["rmi", image]);
        }
    }
}

/// Builds `tag` from the seed image with `content` in a file, so each content gives
/// its own image ID. Returns the ID.
fn build_with(sandbox: &Sandbox, tag: &str, content: &str) -> String {
    let context = tempfile::tempdir().unwrap();
    std::fs::write(context.path().join("marker"), format!("{content}\n")).unwrap();
    std::fs::write(
        context.path().join("Dockerfile"),
        format!(
            "FROM {}\nCOPY marker /marker\nCMD [\"sleep\", \"3600\"]\n",
            sandbox.seed_image
        ),
    )
    .unwrap();
    let context_path = context.path().to_string_lossy().into_owned();
    docker_ok(sandbox, ["build", "-q", "-t", tag, &context_path]);
    image_id(sandbox, tag).unwrap()
}

/// `docker-compose up -d SERVICES` of the compose file in `dir` as project `project`.
fn compose_up(sandbox: &Sandbox, dir: &Path, project: &str, services: &[&str]) {
    run(std::process::Command::new("docker-compose")
        .args(["--project-name", project, "up", "--detach", "--no-build"])
        .args(services)
        .current_dir(dir)
        .env("DOCKER_HOST", &sandbox.docker_host))
    .assert_success();
}

fn service(name: &str, image: &str) -> String {
    format!("  {name}:\n    image: {image}\n    command: [\"sleep\", \"3600\"]\n")
}

fn json(output: &Output) -> Value {
    serde_json::from_str(&output.stdout)
        .unwrap_or_else(|error| panic!("stdout is not JSON ({error}):\n{output}"))
}

/// This test's differences as (kind, project or compose project, service).
fn differences_of(report: &Value, names: &[&str]) -> Vec<(String, String, String)> {
    let mut found: Vec<(String, String, String)> = report["differences"]
        .as_array()
        .expect("differences[]")
        .iter()
        .filter_map(|difference| {
            let project = difference["project"]
                .as_str()
                .or_else(|| difference["compose_project"].as_str())?;
            names.contains(&project).then(|| {
                (
                    difference["kind"].as_str().unwrap().to_string(),
                    project.to_string(),
                    difference["service"].as_str().unwrap_or("-").to_string(),
                )
            })
        })
        .collect();
    found.sort();
    found
}

#[test]
fn catalog_deployed_reports_every_kind_of_difference() {
    let sandbox = sandbox();
    let home = TestHome::new(&sandbox);
    let project = unique_name("deployed");
    let stranger = unique_name("stranger");
    let app = format!("bunker-test/{project}-app:1");
    let idle = format!("bunker-test/{project}-idle:1");
    let moved = format!("bunker-test/{project}-moved:1");
    let moved_next = format!("bunker-test/{project}-moved:2");
    let other = format!("bunker-test/{stranger}-x:1");
    let _cleanup = Cleanup {
        sandbox: &sandbox,
        projects: vec![project.clone(), stranger.clone()],
        images: vec![
            app.clone(),
            moved.clone(),
            moved_next.clone(),
            other.clone(),
        ],
    };
    // Names of the seed image, except the tag's next image: one build only.
    for name in [&app, &moved, &other] {
        docker_ok(
            &sandbox,
            ["tag", sandbox.seed_image.as_str(), name.as_str()],
        );
    }
    let running_id = image_id(&sandbox, &moved).unwrap();

    let tree = tempfile::tempdir().unwrap();
    let dir = tree.path().join(&project);
    std::fs::create_dir_all(&dir).unwrap();
    let compose = format!(
        "services:\n{}{}{}",
        service("app", &app),
        service("idle", &idle),
        service("moved", &moved)
    );
    std::fs::write(dir.join("docker-compose.yaml"), compose).unwrap();
    compose_up(&sandbox, &dir, &project, &["app", "moved"]);
    let elsewhere = tempfile::tempdir().unwrap();
    std::fs::write(
        elsewhere.path().join("docker-compose.yaml"),
        format!("services:\n{}", service("x", &other)),
    )
    .unwrap();
    compose_up(&sandbox, elsewhere.path(), &stranger, &[]);
    // The tag moves after the container started.
    let next_id = build_with(&sandbox, &moved_next, &moved_next);
    docker_ok(&sandbox, ["tag", &moved_next, &moved]);

    let catalog = |extra: &[&str]| {
        home.bunker()
            .remote(&sandbox)
            .arg("--projects-dir")
            .arg(tree.path())
            .args(["image-catalog", "--deployed"])
            .args(extra)
            .run()
    };
    let output = catalog(&["--json"]);
    output.assert_code(0);
    let report = json(&output);
    assert_eq!(
        differences_of(&report, &[&project, &stranger]),
        [
            ("not_cataloged".into(), stranger.clone(), "x".into()),
            ("not_deployed".into(), project.clone(), "idle".into()),
            ("tag_moved".into(), project.clone(), "moved".into()),
        ],
        "{output}"
    );
    let tag_moved = report["differences"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["kind"] == "tag_moved" && d["project"] == project.as_str())
        .unwrap();
    assert_eq!(tag_moved["image_id"], running_id.as_str());
    assert_eq!(tag_moved["image_now"], next_id.as_str());
    assert_eq!(
        tag_moved["container"],
        format!("{project}-moved-1").as_str()
    );
    let app_container = report["containers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == format!("{project}-app-1").as_str())
        .expect("the app container is listed");
    assert_eq!(app_container["catalog_project"], project.as_str());
    assert_eq!(app_container["cataloged"], true);
    assert_eq!(app_container["service"], "app");
    assert!(
        app_container["working_dir"]
            .as_str()
            .is_some_and(|dir_label| dir_label.ends_with(&project)),
        "{app_container}"
    );

    // The table names each difference; --exit-code makes a difference exit 1.
    let text = catalog(&["--exit-code"]);
    text.assert_code(1);
    text.assert_stderr_contains("--exit-code: ");
    text.assert_stdout_contains(&format!("{project}-moved-1"));
    text.assert_stdout_contains(&format!(
        "runs {}, but {moved} now points to {}",
        &running_id[7..19],
        &next_id[7..19]
    ));
    text.assert_stdout_contains(&format!("Compose project {stranger} is not in the catalog"));

    // --project limits the comparison to the catalog's projects.
    let only = catalog(&["--json", "--project", &project]);
    only.assert_code(0);
    assert_eq!(
        differences_of(&json(&only), &[&project, &stranger]),
        [
            ("not_deployed".into(), project.clone(), "idle".into()),
            ("tag_moved".into(), project.clone(), "moved".into()),
        ],
        "{only}"
    );
}

#[test]
fn archive_deployed_keeps_the_running_image_and_restore_gives_back_its_name() {
    let sandbox = sandbox();
    let home = TestHome::new(&sandbox);
    let project = unique_name("deployed-archive");
    let moved = format!("bunker-test/{project}-moved:1");
    let running_id = build_with(&sandbox, &moved, &moved);
    let short = &running_id[7..19];
    let deployed_name = format!("{moved}-deployed-{short}");
    let _cleanup = Cleanup {
        sandbox: &sandbox,
        projects: vec![project.clone()],
        images: vec![moved.clone(), deployed_name.clone()],
    };
    let tree = tempfile::tempdir().unwrap();
    let dir = tree.path().join(&project);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("docker-compose.yaml"),
        format!("services:\n{}", service("moved", &moved)),
    )
    .unwrap();
    compose_up(&sandbox, &dir, &project, &[]);
    // The tag moves to the seed image (which keeps its other names when this test
    // removes the tag).
    docker_ok(
        &sandbox,
        ["tag", sandbox.seed_image.as_str(), moved.as_str()],
    );
    let next_id = image_id(&sandbox, &moved).unwrap();
    assert_ne!(next_id, running_id);

    let archive = tempfile::tempdir().unwrap();
    let bunker = |args: &[&str]| {
        home.bunker()
            .remote(&sandbox)
            .env("BUILD", "false")
            .arg("--projects-dir")
            .arg(tree.path())
            .args(args)
            .arg("--project")
            .arg(&project)
            .run()
    };
    let archive_dir = archive.path().to_string_lossy().into_owned();
    let archived = bunker(&[
        "image-archive",
        "--deployed",
        "--output-dir",
        &archive_dir,
        "--json",
    ]);
    archived.assert_code(0);
    let report = json(&archived);
    let rows = report["report"]["images"].as_array().unwrap();
    let row = rows
        .iter()
        .find(|row| row["image"] == deployed_name.as_str())
        .unwrap_or_else(|| panic!("no row for {deployed_name}:\n{archived}"));
    assert_eq!(row["result"], "archived", "{archived}");
    assert_eq!(row["docker_id"], running_id.as_str());
    assert_eq!(row["deployed_as"], moved.as_str());

    // Both are in the manifest: the tag's new image under its name, the running one
    // under its own name with the name its containers used.
    let arch = std::fs::read_dir(archive.path())
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let manifest: Value = serde_json::from_str(&read_text(&arch.join("manifest.json"))).unwrap();
    let entries = manifest["images"].as_array().unwrap();
    let entry = |image: &str| {
        entries
            .iter()
            .find(|entry| entry["image"] == image)
            .unwrap_or_else(|| panic!("no manifest entry for {image}: {manifest}"))
    };
    assert_eq!(entry(&moved)["docker_id"], next_id.as_str());
    assert!(entry(&moved).get("deployed_as").is_none());
    assert_eq!(entry(&deployed_name)["docker_id"], running_id.as_str());
    assert_eq!(entry(&deployed_name)["deployed_as"], moved.as_str());
    assert_eq!(entry(&deployed_name)["project"], project.as_str());

    // Disaster: the containers and every name of both images are gone.
    run(std::process::Command::new("docker-compose")
        .args(["--project-name", &project, "down"])
        .env("DOCKER_HOST", &sandbox.docker_host))
    .assert_success();
    for image in [&deployed_name, &moved] {
        docker_ok(&sandbox, ["rmi", image.as_str()]);
    }
    assert_eq!(
        image_id(&sandbox, &running_id),
        None,
        "the running image is gone"
    );

    let restored = bunker(&["image-restore", "--archive-dir", &archive_dir]);
    restored.assert_code(0);
    restored.assert_stderr_contains(&format!("{moved}: its containers ran {short}"));
    assert_eq!(
        image_id(&sandbox, &moved).as_deref(),
        Some(running_id.as_str()),
        "the containers' name is back on the image they ran:\n{restored}"
    );
    assert_eq!(
        image_id(&sandbox, &deployed_name).as_deref(),
        Some(running_id.as_str())
    );

    // A second restore changes nothing.
    let again = bunker(&["image-restore", "--archive-dir", &archive_dir, "--json"]);
    again.assert_code(0);
    let again_report = json(&again);
    let outcomes: Vec<&str> = again_report["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|image| image["outcome"].as_str().unwrap_or("?"))
        .collect();
    assert_eq!(outcomes, ["skipped"], "{again}");
    assert_eq!(
        image_id(&sandbox, &moved).as_deref(),
        Some(running_id.as_str())
    );
}

//! Unreachable registries (issue 11, item 3): a refresh pull that fails for an
//! image the engine already has is a warning naming the registry and the error,
//! and the engine's copy is archived or built from; the report counts it as
//! `stale` with when that copy was created. Only an image the engine lacks
//! fails. A run whose only problem is stale images exits 0, `--strict` makes it
//! exit 1.
//!
//! The registries are down for real: `registry.invalid` never resolves (RFC
//! 6761) and nothing listens on `localhost:1`, so the sandbox engine's own pull
//! fails as it would in an outage. Each test tags the seed image under its own
//! unique name and removes only that tag.

mod common;

use std::fs;

use common::archive_tree::ArchiveTree;
use common::{Output, Sandbox, docker_ok, unique_name};
use serde_json::Value;

/// A temporary projects tree and archive directory; untags its images when dropped.
fn tree() -> ArchiveTree {
    ArchiveTree::new("stale")
}

fn json(output: &Output) -> Value {
    serde_json::from_str(&output.stdout)
        .unwrap_or_else(|error| panic!("stdout is not JSON ({error}):\n{output}"))
}

/// The engine's creation time of `image`, as `docker image inspect` prints it.
fn created(sandbox: &Sandbox, image: &str) -> String {
    docker_ok(
        sandbox,
        ["image", "inspect", "--format", "{{.Created}}", image],
    )
}

/// Checks the `stale` object of a report row or step.
#[track_caller]
fn assert_stale(value: &Value, registry: &str, created: &str, context: &Output) {
    let stale = &value["stale"];
    assert_eq!(stale["registry"], registry, "{context}");
    assert!(
        stale["error"]
            .as_str()
            .is_some_and(|error| !error.is_empty()),
        "{context}"
    );
    let recorded = stale["created"].as_str().unwrap_or_default();
    assert!(
        !recorded.is_empty() && created.starts_with(&recorded[..19]),
        "created {recorded:?} is not the engine's {created:?}: {context}"
    );
}

#[test]
fn an_image_on_the_engine_whose_registry_is_down_is_archived_as_stale() {
    let mut tree = tree();
    let image = format!("registry.invalid/acc/{}:1", unique_name("offline"));
    tree.tag_seed(&image);
    tree.image_project("offline", &image);
    let engine_created = created(&tree.sandbox, &image);

    let output = tree.archive(&["--json"]);
    output.assert_success();
    output.assert_stderr_contains(&format!(
        "warning: offline/app: pull {image} from registry.invalid failed"
    ));
    output.assert_stderr_contains("archiving the engine's copy");
    let report = json(&output);
    assert_eq!(report["ok"], true, "{output}");
    assert_eq!(report["totals"]["stale"], 1, "{output}");
    assert_eq!(report["totals"]["failed"], 0, "{output}");
    let row = &report["report"]["images"][0];
    assert_eq!(row["result"], "archived", "{output}");
    assert_stale(row, "registry.invalid", &engine_created, &output);
    assert_eq!(tree.archived_files("offline").len(), 1, "{output}");

    let table = tree.archive(&[]);
    table.assert_success();
    table.assert_stdout_contains("0 failed, 1 stale;");

    let strict = tree.archive(&["--strict", "--json"]);
    strict.assert_code(1);
    assert_eq!(json(&strict)["totals"]["stale"], 1, "{strict}");
    assert_eq!(json(&strict)["ok"], false, "{strict}");
    strict.assert_stderr_contains("--strict");
}

#[test]
fn an_image_the_engine_lacks_fails_naming_the_image_and_the_registry() {
    let tree = tree();
    let image = format!("registry.invalid/acc/{}:1", unique_name("absent"));
    tree.image_project("absent", &image);

    let output = tree.archive(&["--json"]);
    output.assert_code(1);
    output.assert_stderr_contains(&format!(
        "absent/app: pull {image} from registry.invalid failed"
    ));
    output.assert_stderr_contains("check that the engine can reach registry.invalid");
    let report = json(&output);
    assert_eq!(report["totals"]["stale"], 0, "{output}");
    assert_eq!(report["totals"]["failed"], 1, "{output}");
    assert!(tree.archived_files("absent").is_empty(), "{output}");

    let build = tree.run("image-build", &[]);
    build.assert_code(1);
    build.assert_stdout_contains("0 built, 0 pulled, 1 failed, 0 skipped, 0 stale");
}

#[test]
fn a_refused_connection_to_localhost_builds_from_the_engines_copy_as_stale() {
    let mut tree = tree();
    let base = format!("localhost:1/acc/{}:1", unique_name("local"));
    tree.tag_seed(&base);
    let built = format!("bunker-test/{}:1", unique_name("from-local"));
    tree.images.push(built.clone());
    let dir = tree.path().join("local");
    fs::create_dir_all(&dir).expect("create the project");
    fs::write(
        dir.join("docker-compose.yaml"),
        format!(
            "services:\n  base:\n    image: {base}\n  app:\n    image: {built}\n    build: .\n"
        ),
    )
    .expect("write docker-compose.yaml");
    fs::write(
        dir.join("Dockerfile"),
        format!("FROM {base}\nCOPY Dockerfile /Dockerfile\n"),
    )
    .expect("write Dockerfile");
    let engine_created = created(&tree.sandbox, &base);

    let output = tree.run("image-build", &["--json"]);
    output.assert_success();
    output.assert_stderr_contains(&format!(
        "warning: local/base: pull {base} from localhost:1 failed"
    ));
    let report = json(&output);
    let steps = report["steps"].as_array().expect("steps");
    let pull = steps
        .iter()
        .find(|step| step["image"] == base.as_str())
        .unwrap_or_else(|| panic!("no step for {base}: {output}"));
    assert_eq!(pull["outcome"]["result"], "stale", "{output}");
    assert_stale(pull, "localhost:1", &engine_created, &output);
    let build = steps
        .iter()
        .find(|step| step["image"] == built.as_str())
        .unwrap_or_else(|| panic!("no step for {built}: {output}"));
    assert_eq!(build["outcome"]["result"], "done", "{output}");
    assert!(
        common::image_id(&tree.sandbox, &built).is_some(),
        "{built} was not built: {output}"
    );

    let table = tree.run("image-build", &[]);
    table.assert_success();
    table.assert_stdout_contains("1 built, 0 pulled, 0 failed, 0 skipped, 1 stale");
    let strict = tree.run("image-build", &["--strict"]);
    strict.assert_code(1);
    strict.assert_stderr_contains("--strict");

    let archived = tree.archive(&["--json", "--no-base-images"]);
    archived.assert_success();
    assert_eq!(json(&archived)["totals"]["stale"], 1, "{archived}");
    assert_eq!(tree.archived_files("local").len(), 2, "{archived}");
}

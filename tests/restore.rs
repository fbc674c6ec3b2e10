//! `bunker image-restore` against the sandbox engine over real SSH: archives made
//! from `docker save` with bunker's writer, loaded back through the SSH session.

mod common;
mod restore_support;

use std::path::Path;

use bunker::archive::{Compression, Manifest};
use common::*;
use restore_support::*;

struct Images {
    names: Vec<String>,
    ids: Vec<String>,
}

/// `count` fresh images named `bunker-test/<prefix>-<unique>-<n>:1`.
fn fresh_images(sandbox: &Sandbox, prefix: &str, count: usize) -> Images {
    let unique = unique_name(prefix);
    let names: Vec<String> = (0..count)
        .map(|index| format!("bunker-test/{unique}-{index}:1"))
        .collect();
    let ids = names
        .iter()
        .map(|name| build_unique_image(sandbox, name))
        .collect();
    Images { names, ids }
}

fn restore(home: &TestHome, sandbox: &Sandbox, arch_dir: &Path, extra: &[&str]) -> Output {
    home.bunker()
        .remote(sandbox)
        .args(["image-restore", "--archive-dir"])
        .arg(arch_dir)
        .args(extra)
        .run()
}

fn json(output: &Output) -> serde_json::Value {
    serde_json::from_str(&output.stdout)
        .unwrap_or_else(|error| panic!("not JSON ({error}):\n{output}"))
}

fn outcome_of<'a>(report: &'a serde_json::Value, image: &str) -> &'a serde_json::Value {
    report["images"]
        .as_array()
        .unwrap()
        .iter()
        .find(|item| item["image"] == image)
        .unwrap_or_else(|| panic!("{image} not in the report: {report:#}"))
}

#[test]
fn only_missing_or_different_images_are_loaded() {
    let sandbox = sandbox();
    let home = TestHome::new(&sandbox);
    let images = fresh_images(&sandbox, "partial", 4);
    let base = tempfile::tempdir().unwrap();
    let to_archive: Vec<_> = images
        .names
        .iter()
        .enumerate()
        .map(|(index, name)| gz(if index < 2 { "alpha" } else { "beta" }, name))
        .collect();
    let arch_dir = archive_from_sandbox(&sandbox, base.path(), &to_archive);

    // 0: missing. 1: present, untouched. 2: its name now points at another image.
    // 3: present only under another name.
    remove_images(&sandbox, &[&images.names[0]]);
    docker_ok(&sandbox, ["rmi", &images.names[2]]);
    docker_ok(&sandbox, ["tag", &sandbox.seed_image, &images.names[2]]);
    let other_name = format!("{}-other", images.names[3].replace(":1", ""));
    docker_ok(
        &sandbox,
        ["tag", &images.names[3], &format!("{other_name}:1")],
    );
    docker_ok(&sandbox, ["rmi", &images.names[3]]);

    let since = now_seconds();
    let output = restore(&home, &sandbox, arch_dir.path(), &["--json"]);
    output.assert_success();
    let report = json(&output);
    let outcome = |index: usize| outcome_of(&report, &images.names[index]);
    assert_eq!(outcome(0)["outcome"], "loaded", "{report:#}");
    assert_eq!(outcome(1)["outcome"], "skipped", "{report:#}");
    assert_eq!(outcome(1)["bytes_sent"], 0);
    assert_eq!(outcome(2)["outcome"], "loaded", "{report:#}");
    assert_eq!(outcome(3)["outcome"], "retagged", "{report:#}");
    assert_eq!(outcome(3)["bytes_sent"], 0);
    for (name, id) in images.names.iter().zip(&images.ids) {
        assert_eq!(
            image_id(&sandbox, name).as_deref(),
            Some(id.as_str()),
            "{name}"
        );
    }
    let loads = load_events(&sandbox, since, &images.ids);
    assert_eq!(
        loads.len(),
        2,
        "expected two loads, engine events: {loads:?}"
    );

    // Everything is in place now: a second run sends nothing.
    let since = now_seconds();
    let again = restore(&home, &sandbox, arch_dir.path(), &["--json"]);
    again.assert_success();
    let report = json(&again);
    for name in &images.names {
        assert_eq!(
            outcome_of(&report, name)["outcome"],
            "skipped",
            "{report:#}"
        );
        assert_eq!(outcome_of(&report, name)["bytes_sent"], 0);
    }
    assert_eq!(
        load_events(&sandbox, since, &images.ids),
        Vec::<String>::new()
    );

    // --force loads even what is there; --project limits the selection.
    let forced = restore(
        &home,
        &sandbox,
        arch_dir.path(),
        &["--json", "--force", "--project", "beta"],
    );
    forced.assert_success();
    let report = json(&forced);
    assert_eq!(report["images"].as_array().unwrap().len(), 2, "{report:#}");
    assert_eq!(outcome_of(&report, &images.names[2])["outcome"], "loaded");

    for name in &images.names {
        docker_ok(&sandbox, ["rmi", name]);
    }
    docker_ok(&sandbox, ["rmi", &format!("{other_name}:1")]);
}

#[test]
fn a_flipped_byte_is_reported_corrupt_and_the_others_restore() {
    let sandbox = sandbox();
    let home = TestHome::new(&sandbox);
    let images = fresh_images(&sandbox, "corrupt", 3);
    let base = tempfile::tempdir().unwrap();
    let to_archive: Vec<_> = images.names.iter().map(|name| gz("proj", name)).collect();
    let arch_dir = archive_from_sandbox(&sandbox, base.path(), &to_archive);
    let names: Vec<&str> = images.names.iter().map(String::as_str).collect();
    remove_images(&sandbox, &names);
    let manifest = Manifest::load(&arch_dir.manifest_path()).unwrap();
    let damaged = arch_dir.resolve(&manifest.find("proj", &images.names[1]).unwrap().file);
    flip_byte(&damaged);

    let output = restore(&home, &sandbox, arch_dir.path(), &[]);
    output.assert_code(1);
    output.assert_stderr_contains("CORRUPT");
    output.assert_stderr_contains(&damaged.display().to_string());
    output.assert_stdout_contains("2 loaded, 0 skipped, 0 retagged, 1 failed");
    assert_eq!(
        image_id(&sandbox, &images.names[0]).as_deref(),
        Some(images.ids[0].as_str())
    );
    assert_eq!(
        image_id(&sandbox, &images.names[2]).as_deref(),
        Some(images.ids[2].as_str())
    );
    assert_eq!(
        image_id(&sandbox, &images.names[1]),
        None,
        "the corrupt image was loaded"
    );
    assert_eq!(
        image_id(&sandbox, &images.ids[1]),
        None,
        "the corrupt image's ID exists"
    );

    docker_ok(&sandbox, ["rmi", &images.names[0], &images.names[2]]);
}

#[test]
fn zstd_and_plain_archives_load_on_any_engine() {
    let sandbox = sandbox();
    let home = TestHome::new(&sandbox);
    let images = fresh_images(&sandbox, "codecs", 2);
    let base = tempfile::tempdir().unwrap();
    let arch_dir = archive_from_sandbox(
        &sandbox,
        base.path(),
        &[
            ToArchive {
                project: "p",
                image: &images.names[0],
                compression: Compression::Zstd,
            },
            ToArchive {
                project: "p",
                image: &images.names[1],
                compression: Compression::None,
            },
        ],
    );
    let names: Vec<&str> = images.names.iter().map(String::as_str).collect();
    remove_images(&sandbox, &names);
    let output = restore(&home, &sandbox, arch_dir.path(), &["--jobs", "2"]);
    output.assert_success();
    output.assert_stdout_contains("2 loaded");
    for (name, id) in images.names.iter().zip(&images.ids) {
        assert_eq!(image_id(&sandbox, name).as_deref(), Some(id.as_str()));
    }
    docker_ok(&sandbox, ["rmi", &images.names[0], &images.names[1]]);
}

#[test]
fn dry_run_reads_no_file_and_verify_hashes_them() {
    let sandbox = sandbox();
    let home = TestHome::new(&sandbox);
    let images = fresh_images(&sandbox, "dryrun", 2);
    let base = tempfile::tempdir().unwrap();
    let to_archive: Vec<_> = images.names.iter().map(|name| gz("proj", name)).collect();
    let arch_dir = archive_from_sandbox(&sandbox, base.path(), &to_archive);
    docker_ok(&sandbox, ["rmi", &images.names[0]]);
    let manifest = Manifest::load(&arch_dir.manifest_path()).unwrap();
    // Same size, different content: only hashing can tell.
    let damaged = arch_dir.resolve(&manifest.find("proj", &images.names[0]).unwrap().file);
    flip_byte(&damaged);

    let since = now_seconds();
    let dry = restore(&home, &sandbox, arch_dir.path(), &["--dry-run"]);
    dry.assert_success();
    dry.assert_stdout_contains("would load");
    dry.assert_stdout_contains("would skip");
    dry.assert_stdout_contains("dry run: 1 would load, 1 would skip");

    let verified = restore(&home, &sandbox, arch_dir.path(), &["--dry-run", "--verify"]);
    verified.assert_code(1);
    verified.assert_stderr_contains("CORRUPT");
    verified.assert_stderr_contains(&damaged.display().to_string());
    assert_eq!(
        image_id(&sandbox, &images.names[0]),
        None,
        "a dry run loaded an image"
    );
    assert_eq!(
        load_events(&sandbox, since, &images.ids),
        Vec::<String>::new()
    );

    let no_dry = home
        .bunker()
        .remote(&sandbox)
        .args(["image-restore", "--verify"])
        .run();
    no_dry.assert_code(2);
    no_dry.assert_stderr_contains("--dry-run");
    docker_ok(&sandbox, ["rmi", &images.names[1]]);
}

#[test]
fn a_missing_archive_file_fails_that_image_with_its_path() {
    let sandbox = sandbox();
    let home = TestHome::new(&sandbox);
    let images = fresh_images(&sandbox, "missing", 2);
    let base = tempfile::tempdir().unwrap();
    let to_archive: Vec<_> = images.names.iter().map(|name| gz("proj", name)).collect();
    let arch_dir = archive_from_sandbox(&sandbox, base.path(), &to_archive);
    let names: Vec<&str> = images.names.iter().map(String::as_str).collect();
    remove_images(&sandbox, &names);
    let manifest = Manifest::load(&arch_dir.manifest_path()).unwrap();
    let lost = arch_dir.resolve(&manifest.find("proj", &images.names[0]).unwrap().file);
    std::fs::remove_file(&lost).unwrap();

    let output = restore(&home, &sandbox, arch_dir.path(), &[]);
    output.assert_code(1);
    output.assert_stderr_contains(&format!("archive file {} is missing", lost.display()));
    output.assert_stderr_contains("restore the file from a backup");
    assert_eq!(
        image_id(&sandbox, &images.names[1]).as_deref(),
        Some(images.ids[1].as_str())
    );
    docker_ok(&sandbox, ["rmi", &images.names[1]]);
}

#[test]
fn a_manifest_from_a_newer_bunker_is_refused() {
    let sandbox = sandbox();
    let home = TestHome::new(&sandbox);
    let base = tempfile::tempdir().unwrap();
    let arch_dir = base.path().join("x86_64");
    std::fs::create_dir_all(&arch_dir).unwrap();
    let manifest = arch_dir.join("manifest.json");
    std::fs::write(
        &manifest,
        r#"{"schema_version": 9, "arch": "x86_64", "images": []}"#,
    )
    .unwrap();
    let output = restore(&home, &sandbox, &arch_dir, &[]);
    output.assert_code(1);
    output.assert_stderr_contains(&manifest.display().to_string());
    output.assert_stderr_contains("schema_version 9");
    output.assert_stderr_contains("use a newer bunker");
}

#[test]
fn an_archive_for_another_architecture_is_refused() {
    let sandbox = sandbox();
    let home = TestHome::new(&sandbox);
    let base = tempfile::tempdir().unwrap();
    let arch_dir = base.path().join("aarch64");
    std::fs::create_dir_all(&arch_dir).unwrap();
    Manifest::new("aarch64")
        .save_atomic(&arch_dir.join("manifest.json"))
        .unwrap();

    // Chosen by the engine's architecture from IMAGE_ARCHIVE_DIR.
    let by_engine = home
        .bunker()
        .remote(&sandbox)
        .env("IMAGE_ARCHIVE_DIR", base.path())
        .args(["image-restore"])
        .run();
    by_engine.assert_code(1);
    by_engine.assert_stderr_contains("no archive for x86_64");
    by_engine.assert_stderr_contains("holds only aarch64");
    by_engine.assert_stderr_contains("is x86_64");

    // The base given as --archive-dir is searched the same way.
    let base_given = restore(&home, &sandbox, base.path(), &[]);
    base_given.assert_code(1);
    base_given.assert_stderr_contains("no archive for x86_64");

    // Named directly.
    let direct = restore(&home, &sandbox, &arch_dir, &[]);
    direct.assert_code(1);
    direct.assert_stderr_contains("holds aarch64 images");
    direct.assert_stderr_contains("--arch aarch64");
}

#[test]
fn nothing_matching_the_selection_is_a_failure() {
    let sandbox = sandbox();
    let home = TestHome::new(&sandbox);
    let images = fresh_images(&sandbox, "nomatch", 1);
    let base = tempfile::tempdir().unwrap();
    let arch_dir = archive_from_sandbox(&sandbox, base.path(), &[gz("proj", &images.names[0])]);
    let output = restore(&home, &sandbox, arch_dir.path(), &["--project", "nope"]);
    output.assert_code(1);
    output.assert_stderr_contains("no archived images of project nope");
    output.assert_stderr_contains("archived projects: proj");
    docker_ok(&sandbox, ["rmi", &images.names[0]]);
}

#[test]
fn a_per_project_restore_includes_an_image_shared_with_another_project() {
    let sandbox = sandbox();
    let home = TestHome::new(&sandbox);
    let images = fresh_images(&sandbox, "shared", 2);
    let (shared, own) = (&images.names[0], &images.names[1]);
    // A projects tree where `site` and `status` both run `shared`; `status` also runs `own`.
    let projects = tempfile::tempdir().unwrap();
    for (project, compose) in [
        ("site", format!("services:\n  web:\n    image: {shared}\n")),
        (
            "status",
            format!("services:\n  page:\n    image: {shared}\n  own:\n    image: {own}\n"),
        ),
    ] {
        let dir = projects.path().join(project);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("docker-compose.yaml"), compose).unwrap();
    }

    // bunker's manifests list the shared image for both projects.
    let base = tempfile::tempdir().unwrap();
    let arch_dir = archive_from_sandbox(
        &sandbox,
        base.path(),
        &[gz("site", shared), gz("status", shared), gz("status", own)],
    );
    remove_images(&sandbox, &[shared.as_str(), own.as_str()]);
    let output = restore(
        &home,
        &sandbox,
        arch_dir.path(),
        &["--project", "status", "--json"],
    );
    output.assert_success();
    let report = json(&output);
    assert_eq!(
        outcome_of(&report, shared)["outcome"],
        "loaded",
        "{report:#}"
    );
    assert_eq!(
        outcome_of(&report, shared)["projects"],
        serde_json::json!(["status"])
    );
    assert_eq!(
        image_id(&sandbox, shared).as_deref(),
        Some(images.ids[0].as_str())
    );

    // The old tool's manifests listed it under the last project only; the projects
    // tree says `status` needs it too.
    let mut manifest = Manifest::load(&arch_dir.manifest_path()).unwrap();
    manifest.remove("status", shared).unwrap();
    manifest.save_atomic(&arch_dir.manifest_path()).unwrap();
    remove_images(&sandbox, &[shared.as_str(), own.as_str()]);
    let old_style = home
        .bunker()
        .remote(&sandbox)
        .arg("--projects-dir")
        .arg(projects.path())
        .args([
            "image-restore",
            "--json",
            "--project",
            "status",
            "--archive-dir",
        ])
        .arg(arch_dir.path())
        .run();
    old_style.assert_success();
    let report = json(&old_style);
    assert_eq!(
        outcome_of(&report, shared)["outcome"],
        "loaded",
        "{report:#}"
    );
    assert_eq!(outcome_of(&report, own)["outcome"], "loaded", "{report:#}");
    assert_eq!(
        image_id(&sandbox, shared).as_deref(),
        Some(images.ids[0].as_str())
    );
    docker_ok(&sandbox, ["rmi", shared, own]);
}

#[test]
fn a_corrupt_copy_of_a_shared_image_falls_back_to_another_projects_copy() {
    let sandbox = sandbox();
    let home = TestHome::new(&sandbox);
    let images = fresh_images(&sandbox, "fallback", 1);
    let shared = &images.names[0];
    let base = tempfile::tempdir().unwrap();
    let arch_dir = archive_from_sandbox(
        &sandbox,
        base.path(),
        &[gz("one", shared), gz("two", shared)],
    );
    remove_images(&sandbox, &[shared.as_str()]);
    // Archived at the same moment, the copies are tried in manifest order: "one" first.
    let mut manifest = Manifest::load(&arch_dir.manifest_path()).unwrap();
    for entry in &mut manifest.images {
        entry.archived_at = Some("2026-01-01T00:00:00Z".to_string());
    }
    manifest.save_atomic(&arch_dir.manifest_path()).unwrap();
    let damaged = arch_dir.resolve(&manifest.find("one", shared).unwrap().file);
    flip_byte(&damaged);

    let output = restore(&home, &sandbox, arch_dir.path(), &[]);
    // The image is back, but the damaged file still fails the run so it gets fixed.
    output.assert_code(1);
    output.assert_stdout_contains(
        "1 loaded, 0 skipped, 0 retagged, 0 failed (1 loaded from another copy",
    );
    output.assert_stderr_contains(&format!(
        "CORRUPT: archive {} is corrupt",
        damaged.display()
    ));
    assert_eq!(
        image_id(&sandbox, shared).as_deref(),
        Some(images.ids[0].as_str())
    );
    docker_ok(&sandbox, ["rmi", shared]);
}

//! `bunker image-restore` against the sandbox engine over real SSH: archives made
//! from `docker save` with bunker's writer, loaded back through the SSH session.

mod common;
use common::{bytes_read, read_offset};
mod restore_support;
mod signal_support;
use signal_support::Running;

use std::path::{Path, PathBuf};

use bunker::archive::{ArchDir, Manifest};
use common::*;
use restore_support::*;

/// The setup every restore test shares: a HOME reaching the sandbox, `count` fresh images
/// named `bunker-test/<prefix>-<unique>-<n>:1` and a temporary archive base for them.
struct Fixture {
    sandbox: Sandbox,
    home: TestHome,
    names: Vec<String>,
    ids: Vec<String>,
    base: tempfile::TempDir,
}

impl Fixture {
    fn new(prefix: &str, count: usize) -> Fixture {
        let sandbox = sandbox();
        let home = TestHome::new(&sandbox);
        let unique = unique_name(prefix);
        let names: Vec<String> = (0..count)
            .map(|index| format!("bunker-test/{unique}-{index}:1"))
            .collect();
        let ids = names
            .iter()
            .map(|name| build_unique_image(&sandbox, name))
            .collect();
        Fixture {
            sandbox,
            home,
            names,
            ids,
            base: tempfile::tempdir().unwrap(),
        }
    }

    /// Archives `wanted` from the sandbox engine under the fixture's base.
    fn archive(&self, wanted: &[ToArchive<'_>]) -> ArchDir {
        archive_from_sandbox(&self.sandbox, self.base.path(), wanted)
    }

    /// Archives every fresh image (gzip) for `project`.
    fn archive_all(&self, project: &str) -> ArchDir {
        let wanted: Vec<_> = self.names.iter().map(|name| gz(project, name)).collect();
        self.archive(&wanted)
    }

    /// Removes every fresh image from the engine (each must be there).
    fn remove_all(&self) {
        let names: Vec<&str> = self.names.iter().map(String::as_str).collect();
        remove_images(&self.sandbox, &names);
    }

    /// `bunker image-restore --archive-dir <arch_dir> <extra>` over SSH.
    fn restore(&self, arch_dir: &Path, extra: &[&str]) -> Output {
        restore(&self.home, &self.sandbox, arch_dir, extra)
    }

    /// Panics unless fresh image `index` is on the engine under its name with its own ID.
    #[track_caller]
    fn assert_restored(&self, index: usize) {
        assert_eq!(
            image_id(&self.sandbox, &self.names[index]).as_deref(),
            Some(self.ids[index].as_str()),
            "{}",
            self.names[index]
        );
    }
}

/// The file `arch_dir`'s manifest records for `image` of `project`.
fn archived_file(arch_dir: &ArchDir, project: &str, image: &str) -> PathBuf {
    let manifest = Manifest::load(&arch_dir.manifest_path()).unwrap();
    arch_dir.resolve(&manifest.find(project, image).unwrap().file)
}

#[test]
fn only_missing_or_different_images_are_loaded() {
    let fixture = Fixture::new("partial", 4);
    let (sandbox, names) = (&fixture.sandbox, &fixture.names);
    let to_archive: Vec<_> = names
        .iter()
        .enumerate()
        .map(|(index, name)| gz(if index < 2 { "alpha" } else { "beta" }, name))
        .collect();
    let arch_dir = fixture.archive(&to_archive);

    // 0: missing. 1: present, untouched. 2: its name now points at another image.
    // 3: present only under another name.
    remove_images(sandbox, &[&names[0]]);
    docker_ok(sandbox, ["rmi", &names[2]]);
    docker_ok(sandbox, ["tag", &sandbox.seed_image, &names[2]]);
    let other_name = format!("{}-other", names[3].replace(":1", ""));
    docker_ok(sandbox, ["tag", &names[3], &format!("{other_name}:1")]);
    docker_ok(sandbox, ["rmi", &names[3]]);

    let since = now_seconds();
    let output = fixture.restore(arch_dir.path(), &["--json"]);
    output.assert_success();
    let report = json_report(&output);
    let outcome = |index: usize| report_row(&report, &names[index]);
    assert_eq!(outcome(0)["outcome"], "loaded", "{report:#}");
    assert_eq!(outcome(1)["outcome"], "skipped", "{report:#}");
    assert_eq!(outcome(1)["bytes_sent"], 0);
    assert_eq!(outcome(2)["outcome"], "loaded", "{report:#}");
    assert_eq!(outcome(3)["outcome"], "retagged", "{report:#}");
    assert_eq!(outcome(3)["bytes_sent"], 0);
    for index in 0..names.len() {
        fixture.assert_restored(index);
    }
    let loads = load_events(sandbox, since, &fixture.ids);
    assert_eq!(
        loads.len(),
        2,
        "expected two loads, engine events: {loads:?}"
    );

    // Everything is in place now: a second run sends nothing.
    let since = now_seconds();
    let again = fixture.restore(arch_dir.path(), &["--json"]);
    again.assert_success();
    let report = json_report(&again);
    for name in names {
        assert_eq!(
            report_row(&report, name)["outcome"],
            "skipped",
            "{report:#}"
        );
        assert_eq!(report_row(&report, name)["bytes_sent"], 0);
    }
    assert_eq!(
        load_events(sandbox, since, &fixture.ids),
        Vec::<String>::new()
    );

    // --force loads even what is there; --project limits the selection.
    let forced = fixture.restore(arch_dir.path(), &["--json", "--force", "--project", "beta"]);
    forced.assert_success();
    let report = json_report(&forced);
    assert_eq!(report["images"].as_array().unwrap().len(), 2, "{report:#}");
    assert_eq!(report_row(&report, &names[2])["outcome"], "loaded");

    for name in names {
        docker_ok(sandbox, ["rmi", name]);
    }
    docker_ok(sandbox, ["rmi", &format!("{other_name}:1")]);
}

#[test]
fn a_flipped_byte_is_reported_corrupt_and_the_others_restore() {
    let fixture = Fixture::new("corrupt", 3);
    let (sandbox, names) = (&fixture.sandbox, &fixture.names);
    let arch_dir = fixture.archive_all("proj");
    fixture.remove_all();
    let damaged = archived_file(&arch_dir, "proj", &names[1]);
    flip_byte(&damaged);

    let output = fixture.restore(arch_dir.path(), &[]);
    output.assert_code(1);
    output.assert_stderr_contains("CORRUPT");
    output.assert_stderr_contains(&damaged.display().to_string());
    output.assert_stdout_contains("2 loaded, 0 skipped, 0 retagged, 1 failed");
    fixture.assert_restored(0);
    fixture.assert_restored(2);
    assert_eq!(
        image_id(sandbox, &names[1]),
        None,
        "the corrupt image was loaded"
    );
    assert_eq!(
        image_id(sandbox, &fixture.ids[1]),
        None,
        "the corrupt image's ID exists"
    );

    docker_ok(sandbox, ["rmi", &names[0], &names[2]]);
}

#[test]
fn zstd_and_plain_archives_load_on_any_engine() {
    let fixture = Fixture::new("codecs", 2);
    let names = &fixture.names;
    let arch_dir = fixture.archive(&[zst("p", &names[0]), plain("p", &names[1])]);
    fixture.remove_all();
    let output = fixture.restore(arch_dir.path(), &["--jobs", "2"]);
    output.assert_success();
    output.assert_stdout_contains("2 loaded");
    fixture.assert_restored(0);
    fixture.assert_restored(1);
    docker_ok(&fixture.sandbox, ["rmi", &names[0], &names[1]]);
}

#[test]
fn dry_run_reads_no_file_and_verify_hashes_them() {
    let fixture = Fixture::new("dryrun", 2);
    let (sandbox, names) = (&fixture.sandbox, &fixture.names);
    let arch_dir = fixture.archive_all("proj");
    docker_ok(sandbox, ["rmi", &names[0]]);
    // Same size, different content: only hashing can tell.
    let damaged = archived_file(&arch_dir, "proj", &names[0]);
    flip_byte(&damaged);

    let since = now_seconds();
    let dry = fixture.restore(arch_dir.path(), &["--dry-run"]);
    dry.assert_success();
    dry.assert_stdout_contains("would load");
    dry.assert_stdout_contains("would skip");
    dry.assert_stdout_contains("dry run: 1 would load, 1 would skip");

    let verified = fixture.restore(arch_dir.path(), &["--dry-run", "--verify"]);
    verified.assert_code(1);
    verified.assert_stderr_contains("CORRUPT");
    verified.assert_stderr_contains(&damaged.display().to_string());
    assert_eq!(
        image_id(sandbox, &names[0]),
        None,
        "a dry run loaded an image"
    );
    assert_eq!(
        load_events(sandbox, since, &fixture.ids),
        Vec::<String>::new()
    );

    let no_dry = fixture
        .home
        .bunker()
        .remote(sandbox)
        .args(["image-restore", "--verify"])
        .run();
    no_dry.assert_code(2);
    no_dry.assert_stderr_contains("--dry-run");
    docker_ok(sandbox, ["rmi", &names[1]]);
}

#[test]
fn a_missing_archive_file_fails_that_image_with_its_path() {
    let fixture = Fixture::new("missing", 2);
    let arch_dir = fixture.archive_all("proj");
    fixture.remove_all();
    let lost = archived_file(&arch_dir, "proj", &fixture.names[0]);
    std::fs::remove_file(&lost).unwrap();

    let output = fixture.restore(arch_dir.path(), &[]);
    output.assert_code(1);
    output.assert_stderr_contains(&format!("archive file {} is missing", lost.display()));
    output.assert_stderr_contains("restore the file from a backup");
    fixture.assert_restored(1);
    docker_ok(&fixture.sandbox, ["rmi", &fixture.names[1]]);
}

#[test]
fn a_manifest_from_a_newer_bunker_is_refused() {
    let fixture = Fixture::new("newer", 0);
    let arch_dir = fixture.base.path().join("x86_64");
    std::fs::create_dir_all(&arch_dir).unwrap();
    let manifest = arch_dir.join("manifest.json");
    std::fs::write(
        &manifest,
        r#"{"schema_version": 9, "arch": "x86_64", "images": []}"#,
    )
    .unwrap();
    let output = fixture.restore(&arch_dir, &[]);
    output.assert_code(1);
    output.assert_stderr_contains(&manifest.display().to_string());
    output.assert_stderr_contains("schema_version 9");
    output.assert_stderr_contains("use a newer bunker");
}

#[test]
fn an_archive_for_another_architecture_is_refused() {
    let fixture = Fixture::new("otherarch", 0);
    let base = fixture.base.path();
    let arch_dir = base.join("aarch64");
    std::fs::create_dir_all(&arch_dir).unwrap();
    Manifest::new("aarch64")
        .save_atomic(&arch_dir.join("manifest.json"))
        .unwrap();

    // Chosen by the engine's architecture from IMAGE_ARCHIVE_DIR.
    let by_engine = fixture
        .home
        .bunker()
        .remote(&fixture.sandbox)
        .env("IMAGE_ARCHIVE_DIR", base)
        .args(["image-restore"])
        .run();
    by_engine.assert_code(1);
    by_engine.assert_stderr_contains("no archive for x86_64");
    by_engine.assert_stderr_contains("holds only aarch64");
    by_engine.assert_stderr_contains("is x86_64");

    // The base given as --archive-dir is searched the same way.
    let base_given = fixture.restore(base, &[]);
    base_given.assert_code(1);
    base_given.assert_stderr_contains("no archive for x86_64");

    // Named directly.
    let direct = fixture.restore(&arch_dir, &[]);
    direct.assert_code(1);
    direct.assert_stderr_contains("holds aarch64 images");
    direct.assert_stderr_contains("--arch aarch64");
}

#[test]
fn nothing_matching_the_selection_is_a_failure() {
    let fixture = Fixture::new("nomatch", 1);
    let arch_dir = fixture.archive_all("proj");
    let output = fixture.restore(arch_dir.path(), &["--project", "nope"]);
    output.assert_code(1);
    output.assert_stderr_contains("no archived images of project nope");
    output.assert_stderr_contains("archived projects: proj");
    docker_ok(&fixture.sandbox, ["rmi", &fixture.names[0]]);
}

#[test]
fn a_per_project_restore_includes_an_image_shared_with_another_project() {
    let fixture = Fixture::new("shared", 2);
    let sandbox = &fixture.sandbox;
    let (shared, own) = (&fixture.names[0], &fixture.names[1]);
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
    let arch_dir = fixture.archive(&[gz("site", shared), gz("status", shared), gz("status", own)]);
    fixture.remove_all();
    let output = fixture.restore(arch_dir.path(), &["--project", "status", "--json"]);
    output.assert_success();
    let report = json_report(&output);
    assert_eq!(
        report_row(&report, shared)["outcome"],
        "loaded",
        "{report:#}"
    );
    assert_eq!(
        report_row(&report, shared)["projects"],
        serde_json::json!(["status"])
    );
    fixture.assert_restored(0);

    // The old tool's manifests listed it under the last project only; the projects
    // tree says `status` needs it too.
    let mut manifest = Manifest::load(&arch_dir.manifest_path()).unwrap();
    manifest.remove("status", shared).unwrap();
    manifest.save_atomic(&arch_dir.manifest_path()).unwrap();
    fixture.remove_all();
    let old_style = fixture
        .home
        .bunker()
        .remote(sandbox)
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
    let report = json_report(&old_style);
    assert_eq!(
        report_row(&report, shared)["outcome"],
        "loaded",
        "{report:#}"
    );
    assert_eq!(report_row(&report, own)["outcome"], "loaded", "{report:#}");
    fixture.assert_restored(0);
    docker_ok(sandbox, ["rmi", shared, own]);
}

#[test]
fn a_corrupt_copy_of_a_shared_image_falls_back_to_another_projects_copy() {
    let fixture = Fixture::new("fallback", 1);
    let shared = &fixture.names[0];
    let arch_dir = fixture.archive(&[gz("one", shared), gz("two", shared)]);
    fixture.remove_all();
    // Archived at the same moment, the copies are tried in manifest order: "one" first.
    let mut manifest = Manifest::load(&arch_dir.manifest_path()).unwrap();
    for entry in &mut manifest.images {
        entry.archived_at = Some("2026-01-01T00:00:00Z".to_string());
    }
    manifest.save_atomic(&arch_dir.manifest_path()).unwrap();
    let damaged = archived_file(&arch_dir, "one", shared);
    flip_byte(&damaged);

    let output = fixture.restore(arch_dir.path(), &[]);
    // The image is back, but the damaged file still fails the run so it gets fixed.
    output.assert_code(1);
    output.assert_stdout_contains(
        "1 loaded, 0 skipped, 0 retagged, 0 failed (1 loaded from another copy",
    );
    output.assert_stderr_contains(&format!(
        "CORRUPT: archive {} is corrupt",
        damaged.display()
    ));
    fixture.assert_restored(0);
    docker_ok(&fixture.sandbox, ["rmi", shared]);
}

#[test]
fn sigterm_during_a_load_stops_cleanly_keeps_restored_images_and_a_rerun_completes() {
    let fixture = Fixture::new("interrupt", 1);
    let sandbox = &fixture.sandbox;
    // ~200 MB of random bytes, archived uncompressed: a load that takes a while.
    let big = format!("bunker-test/{}:big", unique_name("interrupt-big"));
    let big_id = build_random_image(sandbox, &big, 200 << 20);
    let arch_dir = fixture.archive(&[gz("a-small", &fixture.names[0]), plain("big", &big)]);
    fixture.remove_all();
    remove_images(sandbox, &[&big]);

    // One image at a time, in manifest order: the small one is restored first.
    let mut running = Running::start(
        restore_command(&fixture.home, sandbox, arch_dir.path()).args(["--jobs", "1"]),
    );
    // The load is under way once bunker has hashed the whole big file (the check before
    // the load reads it once, start to end) and read 16 MiB more of it for the load:
    // its total bytes read pass size + 16 MiB while the file is open at 16 MiB or more.
    let big_file = archived_file(&arch_dir, "big", &big);
    let big_size = std::fs::metadata(&big_file).unwrap().len();
    running.wait_until(&format!("the load of {big} was seen in progress"), |pid| {
        read_offset(pid, &big_file).unwrap_or(0) >= (16 << 20)
            && bytes_read(pid) >= big_size + (16 << 20)
    });
    let interrupted = running.interrupted(libc::SIGTERM);
    interrupted.assert_stderr_contains("images already restored stay on the engine");
    interrupted.assert_stderr_contains(&format!(
        "error: {big}: not restored: bunker was interrupted while it loaded"
    ));
    interrupted.assert_stdout_contains("1 loaded, 0 skipped, 0 retagged, 1 failed");
    fixture.assert_restored(0);
    assert_eq!(
        image_id(sandbox, &big),
        None,
        "the interrupted load leaves no {big} behind"
    );

    let rerun = fixture.restore(arch_dir.path(), &["--jobs", "1"]);
    rerun.assert_success();
    assert_eq!(image_id(sandbox, &big).as_deref(), Some(big_id.as_str()));
    remove_images(sandbox, &[&big]);
}

/// The image events (`action id name`) that bring an image in (load, tag, import) the
/// engine recorded between `since` and now naming one of `needles` (image names or IDs).
/// The test's own save/untag/delete of its images in the same second are not counted.
fn image_events_naming(sandbox: &Sandbox, since: u64, needles: &[String]) -> Vec<String> {
    image_events(
        sandbox,
        since,
        &[],
        "{{.Action}} {{.Actor.ID}} {{index .Actor.Attributes \"name\"}}",
    )
    .into_iter()
    .filter(|line| {
        ["load ", "tag ", "import "]
            .iter()
            .any(|action| line.starts_with(action))
    })
    .filter(|line| needles.iter().any(|needle| line.contains(needle.as_str())))
    .collect()
}

#[test]
fn corrupt_archives_never_reach_the_engine_and_the_good_ones_restore() {
    let sandbox = sandbox();
    let home = TestHome::new(&sandbox);
    let unique = unique_name("never");
    // Incompressible layers of 1 MiB, so the archive holds several 256 KiB chunks and a
    // damaged byte lands inside a layer.
    let names: Vec<String> = (0..5)
        .map(|index| format!("bunker-test/{unique}-{index}:1"))
        .collect();
    let ids: Vec<String> = names
        .iter()
        .map(|name| build_random_image(&sandbox, name, 1 << 20))
        .collect();
    let base = tempfile::tempdir().unwrap();
    let wanted: Vec<_> = names.iter().map(|name| gz("proj", name)).collect();
    let arch_dir = archive_from_sandbox(&sandbox, base.path(), &wanted);
    let name_refs: Vec<&str> = names.iter().map(String::as_str).collect();
    remove_images(&sandbox, &name_refs);

    // Image 0 stays good; 1..=4 are damaged four ways.
    let files: Vec<PathBuf> = names
        .iter()
        .map(|name| archived_file(&arch_dir, "proj", name))
        .collect();
    let flip_at = |path: &PathBuf, at: fn(usize) -> usize| {
        let mut bytes = std::fs::read(path).unwrap();
        let offset = at(bytes.len());
        bytes[offset] ^= 0x55;
        std::fs::write(path, bytes).unwrap();
    };
    flip_at(&files[1], |len| len / 20); // early
    flip_at(&files[2], |len| len / 2); // the middle
    flip_at(&files[3], |len| len - 1024); // the last bytes of the tar's last entries
    let whole = std::fs::read(&files[4]).unwrap();
    std::fs::write(&files[4], &whole[..whole.len() * 3 / 4]).unwrap(); // truncated

    let since = now_seconds();
    let output = restore(&home, &sandbox, arch_dir.path(), &["--json"]);
    output.assert_code(1);
    let report = json_report(&output);
    for index in 1..5 {
        let item = report_row(&report, &names[index]);
        assert_eq!(item["outcome"], "failed", "{item:#}");
        assert_eq!(
            item["bytes_sent"],
            0,
            "a byte of the damaged archive {} reached the engine: {item:#}",
            files[index].display()
        );
        let problems = item["problems"].to_string();
        assert!(problems.contains("CORRUPT"), "{problems}");
        assert!(
            problems.contains(&files[index].display().to_string()),
            "{problems}"
        );
        assert_eq!(image_id(&sandbox, &names[index]), None, "{}", names[index]);
        assert_eq!(image_id(&sandbox, &ids[index]), None, "{}", ids[index]);
    }
    assert_eq!(report_row(&report, &names[0])["outcome"], "loaded");
    assert_eq!(
        image_id(&sandbox, &names[0]).as_deref(),
        Some(ids[0].as_str())
    );

    // The engine heard nothing of the damaged images: no load, tag or any other
    // image event under their names or IDs, while the good one was loaded.
    let damaged: Vec<String> = names[1..]
        .iter()
        .chain(&ids[1..])
        .map(|needle| needle.trim_start_matches("sha256:").to_string())
        .collect();
    assert_eq!(
        image_events_naming(&sandbox, since, &damaged),
        Vec::<String>::new(),
        "the engine recorded events for damaged archives"
    );
    assert_eq!(load_events(&sandbox, since, &ids[..1]).len(), 1);

    docker_ok(&sandbox, ["rmi", &names[0]]);
}

#[test]
fn entries_without_a_hash_are_named_and_still_checked_before_the_load() {
    let fixture = Fixture::new("nohash", 2);
    let (sandbox, names) = (&fixture.sandbox, &fixture.names);
    let arch_dir = fixture.archive_all("proj");
    fixture.remove_all();
    // An older manifest: the entries carry no hashes of the file or of the tar.
    let manifest_path = arch_dir.manifest_path();
    let mut manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&manifest_path).unwrap()).unwrap();
    for entry in manifest["images"].as_array_mut().unwrap() {
        let entry = entry.as_object_mut().unwrap();
        entry.remove("sha256");
        entry.remove("uncompressed_sha256");
        entry.remove("uncompressed_size");
    }
    std::fs::write(&manifest_path, manifest.to_string()).unwrap();
    let damaged = archived_file(&arch_dir, "proj", &names[1]);
    flip_byte(&damaged);

    let output = fixture.restore(arch_dir.path(), &["--json"]);
    output.assert_code(1);
    for name in names {
        output.assert_stderr_contains(&format!("note: {name}: proj/"));
    }
    output.assert_stderr_contains("has no SHA-256 in the manifest");
    let report = json_report(&output);
    let item = report_row(&report, &names[1]);
    assert_eq!(item["bytes_sent"], 0, "{item:#}");
    assert!(item["problems"].to_string().contains("CORRUPT"), "{item:#}");
    assert_eq!(image_id(sandbox, &names[1]), None);
    fixture.assert_restored(0);

    docker_ok(sandbox, ["rmi", &names[0]]);
}

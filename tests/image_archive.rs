//! `bunker image-archive` against the sandbox: bunker reaches the sandbox engine
//! through the sandbox sshd, builds or pulls like `image-build`, streams each image
//! off the engine into `<archive>/<arch>/<project>/<file>` and records it in
//! manifest.json. The files are then checked with the real tools: `gzip -t`,
//! `docker load` into the sandbox engine and the loaded image ID against the
//! manifest's `docker_id`.
//!
//! Every test works on its own projects tree and archive directory, and names the
//! images it changes or removes uniquely, since the engine is shared.

mod common;
use common::read_offset;
mod signal_support;
use signal_support::Running;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::{
    Sandbox, SmallDisk, build_random_image, build_unique_image, docker, docker_ok, image_id,
    projects_dir, read_text, run, unique_name,
};
use serde_json::Value;

/// The tree every test here works on (projects, archive directory, images to remove).
type Tree = common::archive_tree::ArchiveTree;

/// A tree named for this file's temporary directories.
fn tree() -> Tree {
    Tree::new("archive")
}

fn entries(manifest: &Value) -> Vec<Value> {
    manifest["images"]
        .as_array()
        .expect("manifest has images")
        .clone()
}

fn entry<'a>(entries: &'a [Value], project: &str, image: &str) -> Option<&'a Value> {
    entries
        .iter()
        .find(|entry| entry["project"] == project && entry["image"] == image)
}

fn text(value: &Value) -> String {
    value
        .as_str()
        .unwrap_or_else(|| panic!("not a string: {value}"))
        .to_string()
}

/// `docker load` of an archive file into the sandbox engine (the engine reads gzip).
fn docker_load(sandbox: &Sandbox, file: &Path) {
    docker_ok(sandbox, ["load", "-q", "-i", &file.to_string_lossy()]);
}

/// Copies a directory tree (files and directories only).
fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).expect("create the copy");
    for entry in fs::read_dir(from).expect("read the source tree") {
        let entry = entry.expect("read an entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), &target).expect("copy a file");
        }
    }
}

fn files_under(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    for project in fs::read_dir(dir).expect("read the arch directory") {
        let project = project.expect("entry").path();
        if project.is_dir() {
            for file in fs::read_dir(&project).expect("read a project directory") {
                found.push(
                    file.expect("entry")
                        .path()
                        .strip_prefix(dir)
                        .expect("under the arch dir")
                        .display()
                        .to_string(),
                );
            }
        }
    }
    found.sort();
    found
}

/// The files of one project directory (`<project>/<name>`), sorted.
fn project_files(arch_dir: &Path, project: &str) -> Vec<String> {
    files_under(arch_dir)
        .into_iter()
        .filter(|file| file.starts_with(&format!("{project}/")))
        .collect()
}

#[test]
fn projects_archive_to_files_that_gzip_and_docker_load_accept_with_the_recorded_ids() {
    let mut tree = tree();
    let suffix = unique_name("arch");
    // The example tree, with the built images and the Compose-named pipeline project
    // renamed so this test may remove and reload them on the shared engine.
    let pipeline = format!("pipeline-{suffix}");
    for project in ["web", "kv", "tools", "hooked"] {
        copy_tree(&projects_dir().join(project), &tree.path().join(project));
    }
    copy_tree(
        &projects_dir().join("pipeline"),
        &tree.path().join(&pipeline),
    );
    let kv = tree.image(format!("bunker-test/kv-{suffix}:1.0"));
    let hooked = tree.image(format!("bunker-test/hooked-{suffix}:1.0"));
    let api = tree.image(format!("bunker-test/pipeline-api-{suffix}:1.0.0"));
    let worker = tree.image(format!("{pipeline}-worker"));
    fs::write(
        tree.path().join(".env_default"),
        format!("KV_IMAGE={kv}\nHOOKED_IMAGE={hooked}\nPIPELINE_API_IMAGE={api}\n"),
    )
    .expect("write the root env file");

    let output = tree.archive(&[]);
    output.assert_success();
    output.assert_stdout_contains("0 failed");
    let arch_dir = tree.arch_dir();
    let machine = run(Command::new("uname").arg("-m"))
        .stdout
        .trim()
        .to_string();
    assert_eq!(
        arch_dir.file_name().unwrap().to_string_lossy(),
        machine,
        "the sandbox engine runs on this machine, so its arch is `uname -m`"
    );
    let manifest = tree.manifest();
    assert_eq!(manifest["schema_version"], 1);
    assert_eq!(manifest["arch"], machine.as_str());
    assert!(manifest["engine_version"].is_string(), "{manifest}");
    assert!(manifest["archived_at"].is_string(), "{manifest}");
    assert!(
        text(&manifest["ssh_host"]).contains(&tree.sandbox.ssh_port.to_string()),
        "{manifest}"
    );
    let entries = entries(&manifest);

    // Every image the tree needs, base images included, under every project that needs it.
    let registry = tree.sandbox.projects_registry();
    let (httpd, busybox, latest) = (
        format!("{registry}/bunker/httpd:1.36"),
        format!("{registry}/bunker/busybox:1.36"),
        format!("{registry}/bunker/busybox:latest"),
    );
    let (httpd, busybox, latest) = (httpd.as_str(), busybox.as_str(), latest.as_str());
    for (project, image, action) in [
        ("web", httpd, "pull+save"),
        ("tools", httpd, "pull+save"),
        ("tools", busybox, "pull+save"),
        ("tools", latest, "pull+save"),
        ("kv", busybox, "pull+save"),
        ("kv", kv.as_str(), "build+save"),
        ("hooked", hooked.as_str(), "build+save"),
        ("hooked", busybox, "base+save"),
        (pipeline.as_str(), api.as_str(), "build+save"),
        (pipeline.as_str(), worker.as_str(), "build+save"),
        (pipeline.as_str(), httpd, "base+save"),
    ] {
        let found = entry(&entries, project, image)
            .unwrap_or_else(|| panic!("no manifest entry for {project} {image}: {manifest}"));
        assert_eq!(found["action"], action, "{found}");
    }
    assert_eq!(entries.len(), 12, "{manifest}");

    // The image shared by web and tools: listed for both, exported once (one inode).
    let web = entry(&entries, "web", httpd).unwrap();
    let tools = entry(&entries, "tools", httpd).unwrap();
    assert_eq!(web["sha256"], tools["sha256"]);
    assert_eq!(
        fs::metadata(arch_dir.join(text(&web["file"])))
            .unwrap()
            .ino(),
        fs::metadata(arch_dir.join(text(&tools["file"])))
            .unwrap()
            .ino()
    );

    let mut reloaded: Vec<String> = Vec::new();
    for found in &entries {
        let file = arch_dir.join(text(&found["file"]));
        assert!(file.to_string_lossy().ends_with(".tar.gz"), "{file:?}");
        run(Command::new("gzip").arg("-t").arg(&file)).assert_success();
        let image = text(&found["image"]);
        let ours = tree.images.contains(&image);
        if ours && !reloaded.contains(&image) {
            docker_ok(&tree.sandbox, ["rmi", "-f", image.as_str()]);
            assert_eq!(image_id(&tree.sandbox, &image), None);
            reloaded.push(image.clone());
        }
        docker_load(&tree.sandbox, &file);
        assert_eq!(
            image_id(&tree.sandbox, &image).as_deref(),
            found["docker_id"].as_str(),
            "docker load of {file:?} gives the recorded image ID"
        );
    }
    assert_eq!(reloaded.len(), 4, "{reloaded:?}");
    assert!(
        files_under(&arch_dir)
            .iter()
            .all(|file| !file.contains(".partial-")),
        "{:?}",
        files_under(&arch_dir)
    );

    // Nothing changed (BUILD=false: nothing rebuilt): everything is skipped, nothing exported.
    let again = tree.archive_present(&["--json"]);
    again.assert_success();
    let report: Value = serde_json::from_str(&again.stdout).expect("--json report");
    assert_eq!(report["totals"]["skipped"], 12, "{report}");
    assert_eq!(report["totals"]["bytes_in"], 0, "{report}");
}

#[test]
fn a_killed_export_leaves_no_archive_file_or_manifest_entry_and_the_rerun_completes() {
    let mut tree = tree();
    let image = tree.image(format!("bunker-test/{}:big", unique_name("kill")));
    // ~200 MB of random bytes in a FROM-scratch image: slow to export, incompressible.
    let context = tempfile::tempdir().expect("build context");
    let mut random = fs::File::open("/dev/urandom").expect("open /dev/urandom");
    let mut payload = fs::File::create(context.path().join("payload")).expect("payload file");
    std::io::copy(
        &mut std::io::Read::take(&mut random, 200 << 20),
        &mut payload,
    )
    .expect("write random payload");
    fs::write(
        context.path().join("Dockerfile"),
        "FROM scratch\nCOPY payload /payload\n",
    )
    .expect("Dockerfile");
    docker_ok(
        &tree.sandbox,
        [
            "build",
            "-q",
            "-t",
            &image,
            &context.path().to_string_lossy(),
        ],
    );
    drop(context);
    tree.image_project("big", &image);

    let mut running = Running::start(
        tree.archive_command(&["--level", "1"])
            .env("BUILD", "false"),
    );
    let mut partial = None;
    running.wait_until("its export was seen in progress", |_| {
        partial = find_partial(tree.archive.path())
            .filter(|path| fs::metadata(path).map(|meta| meta.len()).unwrap_or(0) > (8 << 20));
        partial.is_some()
    });
    let partial = partial.expect("the partial file");
    running.kill();

    let arch_dir = tree.arch_dir();
    assert!(
        partial.exists(),
        "the killed run's partial file stays until the next run"
    );
    let finished: Vec<String> = project_files(&arch_dir, "big")
        .into_iter()
        .filter(|file| !file.contains(".partial-"))
        .collect();
    assert!(
        finished.is_empty(),
        "no finished archive may exist after the kill: {finished:?}"
    );
    let manifest_path = arch_dir.join("manifest.json");
    if manifest_path.exists() {
        let manifest: Value = serde_json::from_str(&read_text(&manifest_path)).unwrap();
        assert!(
            entry(&entries(&manifest), "big", &image).is_none(),
            "{manifest}"
        );
    }

    let rerun = tree.archive_present(&["--level", "1"]);
    rerun.assert_success();
    rerun.assert_stderr_contains("left by an interrupted run");
    assert!(
        !partial.exists(),
        "the rerun removes the dead run's partial file"
    );
    let manifest = tree.manifest();
    let recorded = entry(&entries(&manifest), "big", &image)
        .cloned()
        .expect("entry after the rerun");
    let final_file = arch_dir.join(text(&recorded["file"]));
    assert!(final_file.exists());
    assert_eq!(
        recorded["docker_id"].as_str(),
        image_id(&tree.sandbox, &image).as_deref()
    );
    run(Command::new("gzip").arg("-t").arg(&final_file)).assert_success();
}

fn find_partial(dir: &Path) -> Option<PathBuf> {
    let arch_dirs = fs::read_dir(dir).ok()?;
    for arch in arch_dirs.flatten() {
        let big = arch.path().join("big");
        for file in fs::read_dir(big).into_iter().flatten().flatten() {
            if file.file_name().to_string_lossy().contains(".partial-") {
                return Some(file.path());
            }
        }
    }
    None
}

#[test]
fn a_tag_moved_to_other_content_is_archived_again_and_replaces_the_old_file() {
    let mut tree = tree();
    let name = unique_name("retag");
    let image = tree.image(format!("bunker-test/{name}:1"));
    let first_id = build_unique_image(&tree.sandbox, &image);
    tree.image_project("app", &image);
    tree.archive_present(&[]).assert_success();
    let before = entry(&entries(&tree.manifest()), "app", &image)
        .cloned()
        .expect("first entry");
    assert_eq!(before["docker_id"].as_str(), Some(first_id.as_str()));

    let unchanged = tree.archive_present(&[]);
    unchanged.assert_success();
    unchanged.assert_stdout_contains("0 archived, 0 linked, 1 skipped");

    let other = tree.image(format!("bunker-test/{name}-other:1"));
    let second_id = build_unique_image(&tree.sandbox, &other);
    docker_ok(&tree.sandbox, ["tag", &other, &image]);
    let moved = tree.archive_present(&[]);
    moved.assert_success();
    moved.assert_stdout_contains("1 archived, 0 linked, 0 skipped");
    let after = entry(&entries(&tree.manifest()), "app", &image)
        .cloned()
        .expect("entry after the retag");
    assert_eq!(after["docker_id"].as_str(), Some(second_id.as_str()));
    // The new archive has its own name; the old file goes once the manifest
    // names the new one.
    assert_ne!(after["file"], before["file"]);
    assert_ne!(after["sha256"], before["sha256"]);
    assert!(!tree.arch_dir().join(text(&before["file"])).exists());
    assert_eq!(project_files(&tree.arch_dir(), "app").len(), 1);

    let file = tree.arch_dir().join(text(&after["file"]));
    docker_ok(&tree.sandbox, ["rmi", "-f", &image]);
    docker_load(&tree.sandbox, &file);
    assert_eq!(image_id(&tree.sandbox, &image), Some(second_id));

    // --force archives again even though nothing changed.
    let forced = tree.archive_present(&["--force"]);
    forced.assert_success();
    forced.assert_stdout_contains("1 archived, 0 linked, 0 skipped");
    let forced_entry = entry(&entries(&tree.manifest()), "app", &image)
        .cloned()
        .expect("entry after --force");
    assert_ne!(forced_entry["file"], after["file"]);
    assert!(!tree.arch_dir().join(text(&after["file"])).exists());
    assert_eq!(project_files(&tree.arch_dir(), "app").len(), 1);
}

#[test]
fn an_image_that_does_not_exist_fails_clearly_and_writes_no_file() {
    let tree = tree();
    let missing = format!("bunker-test/{}:1", unique_name("missing"));
    tree.image_project("ghost", &missing);

    let output = tree.archive_present(&[]);
    output.assert_code(1);
    output.assert_stderr_contains(&format!(
        "FAILED ghost: {missing}: {missing} is not on the engine"
    ));
    output.assert_stderr_contains("BUILD=false forbids building or pulling it");
    assert!(files_under(&tree.arch_dir()).is_empty());

    // With BUILD=true the pull from the registry fails, and still no file is written.
    let unknown = format!(
        "{}/bunker-test/{}:1",
        tree.sandbox.registry,
        unique_name("nope")
    );
    tree.image_project("ghost", &unknown);
    let pulled = tree.archive(&[]);
    pulled.assert_code(1);
    pulled.assert_stderr_contains(&format!("FAILED ghost: {unknown}: not archived:"));
    assert!(files_under(&tree.arch_dir()).is_empty());
    assert!(
        !tree.arch_dir().join("manifest.json").exists(),
        "no manifest is written when nothing was archived"
    );
}

#[test]
fn verify_catches_a_flipped_byte_and_a_truncated_file_and_the_run_repairs_them() {
    let mut tree = tree();
    let first = tree.image(format!("bunker-test/{}:1", unique_name("verify-a")));
    let second = tree.image(format!("bunker-test/{}:1", unique_name("verify-b")));
    build_unique_image(&tree.sandbox, &first);
    build_unique_image(&tree.sandbox, &second);
    tree.image_project("a", &first);
    tree.image_project("b", &second);
    tree.archive_present(&[]).assert_success();
    let entries = entries(&tree.manifest());
    let arch_dir = tree.arch_dir();
    let flipped = arch_dir.join(text(&entry(&entries, "a", &first).unwrap()["file"]));
    let truncated = arch_dir.join(text(&entry(&entries, "b", &second).unwrap()["file"]));
    let mut bytes = fs::read(&flipped).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    fs::write(&flipped, &bytes).unwrap();
    let length = fs::metadata(&truncated).unwrap().len();
    fs::OpenOptions::new()
        .write(true)
        .open(&truncated)
        .unwrap()
        .set_len(length - 100)
        .unwrap();

    let verify = tree
        .bunker()
        .args(["archive", "verify", "--archive-dir"])
        .arg(tree.archive.path())
        .run();
    verify.assert_code(1);
    verify.assert_stdout_contains("BAD  a/");
    verify.assert_stdout_contains("BAD  b/");
    verify.assert_stdout_contains("2 archive(s) checked, 2 bad");

    // The size check alone sees the truncation; --verify also sees the flipped byte.
    let plain = tree.archive_present(&[]);
    plain.assert_success();
    plain.assert_stdout_contains("1 archived, 0 linked, 1 skipped");
    let verified = tree.archive_present(&["--verify"]);
    verified.assert_success();
    verified.assert_stderr_contains("fails verification, archiving it again");
    verified.assert_stdout_contains("1 archived, 0 linked, 1 skipped");
    tree.bunker()
        .args(["archive", "verify", "--archive-dir"])
        .arg(tree.archive.path())
        .run()
        .assert_success();
}

#[test]
fn dry_run_lists_the_exact_files_and_skips_and_writes_nothing() {
    let mut tree = tree();
    let image = tree.image(format!("bunker-test/{}:1", unique_name("dry")));
    let id = build_unique_image(&tree.sandbox, &image);
    tree.image_project("one", &image);
    tree.image_project("two", &image);

    let planned = tree.archive_present(&["--dry-run"]);
    planned.assert_success();
    let file_name =
        bunker::archive::versioned_file_name(&image, &id, bunker::archive::Compression::Gzip, None);
    let arch = run(Command::new("uname").arg("-m"))
        .stdout
        .trim()
        .to_string();
    let one = tree.archive.path().join(&arch).join("one").join(&file_name);
    let two = tree.archive.path().join(&arch).join("two").join(&file_name);
    planned.assert_stdout_contains(&format!("archive  {}", one.display()));
    planned.assert_stdout_contains(&format!("link     {}", two.display()));
    assert_eq!(fs::read_dir(tree.archive.path()).unwrap().count(), 0);

    let real = tree.archive_present(&["--json"]);
    real.assert_success();
    let report: Value = serde_json::from_str(&real.stdout).unwrap();
    let files: Vec<String> = report["report"]["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| text(&row["file"]))
        .collect();
    assert_eq!(
        files,
        [format!("one/{file_name}"), format!("two/{file_name}")]
    );
    assert!(one.exists() && two.exists());

    let after = tree.archive_present(&["--dry-run"]);
    after.assert_success();
    after.assert_stdout_contains(&format!("skip   {}", one.display()));
    after.assert_stdout_contains(&format!("skip   {}", two.display()));
}

#[test]
fn switching_compression_replaces_the_file_and_zstd_archives_decompress() {
    let mut tree = tree();
    let image = tree.image(format!("bunker-test/{}:1", unique_name("zstd")));
    let id = build_unique_image(&tree.sandbox, &image);
    tree.image_project("app", &image);
    tree.archive_present(&[]).assert_success();
    let gzip_file = tree.arch_dir().join(text(
        &entry(&entries(&tree.manifest()), "app", &image).unwrap()["file"],
    ));
    tree.archive_present(&["--compression", "zstd", "--level", "5"])
        .assert_success();
    let recorded = entry(&entries(&tree.manifest()), "app", &image)
        .cloned()
        .unwrap();
    assert_eq!(recorded["compression"], "zstd");
    let zstd_file = tree.arch_dir().join(text(&recorded["file"]));
    assert!(zstd_file.to_string_lossy().ends_with(".tar.zst"));
    assert!(
        !gzip_file.exists(),
        "the old .tar.gz goes once the manifest points to the .tar.zst"
    );
    run(Command::new("zstd").arg("-t").arg(&zstd_file)).assert_success();
    assert_eq!(recorded["docker_id"].as_str(), Some(id.as_str()));
}

#[test]
fn delete_removes_archived_images_but_never_one_a_container_uses() {
    let mut tree = tree();
    let free = tree.image(format!("bunker-test/{}:1", unique_name("delete-free")));
    let used = tree.image(format!("bunker-test/{}:1", unique_name("delete-used")));
    build_unique_image(&tree.sandbox, &free);
    build_unique_image(&tree.sandbox, &used);
    let container = unique_name("delete-holder");
    docker_ok(&tree.sandbox, ["create", "--name", &container, &used]);
    tree.image_project("free", &free);
    tree.image_project("used", &used);

    let output = tree.archive_present(&["--delete"]);
    let _ = docker(&tree.sandbox, ["rm", "-f", &container]);
    output.assert_success();
    output.assert_stdout_contains("archived+deleted");
    output.assert_stderr_contains(&format!(
        "kept {used} on the engine: container {container} uses it"
    ));
    assert_eq!(image_id(&tree.sandbox, &free), None, "{free} was deleted");
    assert!(image_id(&tree.sandbox, &used).is_some(), "{used} was kept");
    let entries = entries(&tree.manifest());
    let file = tree
        .arch_dir()
        .join(text(&entry(&entries, "free", &free).unwrap()["file"]));
    docker_load(&tree.sandbox, &file);
    assert!(
        image_id(&tree.sandbox, &free).is_some(),
        "the archive restores {free}"
    );
}

#[test]
fn bad_compression_levels_are_usage_errors() {
    let tree = tree();
    let gzip = tree.archive(&["--level", "12"]);
    gzip.assert_code(2);
    gzip.assert_stderr_contains("--level 12 is out of range for gzip: use 0 to 9");
    let zstd = tree.archive(&["--compression", "zstd", "--level", "0"]);
    zstd.assert_code(2);
    zstd.assert_stderr_contains("--level 0 is out of range for zstd: use 1 to 19");
    let none = tree.archive(&["--compression", "none", "--level", "3"]);
    none.assert_code(2);
    none.assert_stderr_contains("--level 3 needs --compression gzip or zstd");
    assert_eq!(fs::read_dir(tree.archive.path()).unwrap().count(), 0);
}

#[test]
fn a_second_run_on_a_locked_archive_directory_is_refused() {
    let mut tree = tree();
    let image = tree.image(format!("bunker-test/{}:1", unique_name("lock")));
    build_unique_image(&tree.sandbox, &image);
    tree.image_project("app", &image);
    tree.archive_present(&[]).assert_success();
    let lock_path = tree.arch_dir().join("manifest.lock");
    // Hold the lock with flock(1) the way a running bunker holds it.
    // --no-fork: the holder is one process, so killing it releases the lock and leaves
    // no `sleep` behind holding the test's output pipes.
    let mut holder = Command::new("flock")
        .args(["--exclusive", "--no-fork"])
        .arg(&lock_path)
        .args(["sleep", "600"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start flock");
    while run(Command::new("flock")
        .args(["--exclusive", "--nonblock"])
        .arg(&lock_path)
        .arg("true"))
    .success()
    {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let refused = tree.archive_present(&[]);
    let _ = holder.kill();
    let _ = holder.wait();
    refused.assert_code(1);
    refused.assert_stderr_contains("is in use by another bunker run");
    refused.assert_stderr_contains("wait for it to finish");
}

#[test]
fn pull_only_and_no_base_images_leave_out_builds_and_base_images() {
    let tree = tree();
    let dry_run = |args: &[&str]| {
        let output = tree
            .home
            .bunker()
            .remote(&tree.sandbox)
            .arg("--projects-dir")
            .arg(projects_dir())
            .arg("image-archive")
            .arg("--output-dir")
            .arg(tree.archive.path())
            .arg("--dry-run")
            .args(args)
            .run();
        output.assert_success();
        output.stdout
    };
    let everything = dry_run(&[]);
    assert!(everything.contains("base+save"), "{everything}");
    assert!(everything.contains("build+save"), "{everything}");
    // projects/duo's two instances: three builds (1.1, 1.0, duo_second-sidecar) and
    // their shared base image once.
    assert!(everything.contains("16 file(s)"), "{everything}");
    let no_bases = dry_run(&["--no-base-images"]);
    assert!(!no_bases.contains("base+save"), "{no_bases}");
    assert!(no_bases.contains("12 file(s)"), "{no_bases}");
    let pulls = dry_run(&["--pull-only", "--no-base-images"]);
    assert!(!pulls.contains("build+save"), "{pulls}");
    assert!(!pulls.contains("base+save"), "{pulls}");
    assert!(pulls.contains("5 file(s)"), "{pulls}");
    assert_eq!(fs::read_dir(tree.archive.path()).unwrap().count(), 0);
}

#[test]
fn a_failed_build_is_not_archived_and_fail_fast_stops_the_rest() {
    let mut tree = tree();
    let broken = tree.image(format!("bunker-test/{}:1", unique_name("broken")));
    let fine = tree.image(format!("bunker-test/{}:1", unique_name("fine")));
    for (project, image, step) in [
        ("broken", &broken, "RUN false"),
        ("fine", &fine, "COPY Dockerfile /Dockerfile"),
    ] {
        let dir = tree.path().join(project);
        fs::create_dir_all(&dir).unwrap();
        fs::write(
            dir.join("Dockerfile"),
            format!("FROM {}\n{step}\n", tree.sandbox.seed_image),
        )
        .unwrap();
        fs::write(
            dir.join("docker-compose.yaml"),
            format!("services:\n  app:\n    build: .\n    image: {image}\n"),
        )
        .unwrap();
    }

    let output = tree.archive(&["--no-base-images"]);
    output.assert_code(1);
    output.assert_stderr_contains(&format!("FAILED broken: {broken}: not archived:"));
    output.assert_stdout_contains("1 archived, 0 linked, 0 skipped, 1 failed");
    let entries = entries(&tree.manifest());
    assert!(entry(&entries, "broken", &broken).is_none());
    assert!(entry(&entries, "fine", &fine).is_some());

    // One project at a time: "broken" fails before "fine" starts, so nothing
    // is built or exported after the failure. (With more jobs, "fine" may be
    // built and archived before "broken" fails, which is what pipelining is for.)
    let stopped = tree.archive(&["--no-base-images", "--fail-fast", "--force", "--jobs", "1"]);
    stopped.assert_code(1);
    stopped.assert_stderr_contains(&format!("FAILED fine: {fine}: not archived:"));
    stopped.assert_stderr_contains("--fail-fast stopped the run after an earlier failure");
    stopped.assert_stdout_contains("0 archived, 0 linked, 0 skipped, 2 failed");
}

#[test]
fn the_archive_directory_comes_from_the_flag_the_environment_the_root_env_file_or_the_default() {
    let tree = tree();
    tree.image_project("app", &tree.sandbox.seed_image);
    let from_file = tempfile::tempdir().unwrap();
    let from_env = tempfile::tempdir().unwrap();
    let workdir = tempfile::tempdir().unwrap();
    fs::write(
        tree.path().join(".env_default"),
        format!("IMAGE_ARCHIVE_DIR={}\n", from_file.path().display()),
    )
    .unwrap();
    let arch = run(Command::new("uname").arg("-m"))
        .stdout
        .trim()
        .to_string();
    let planned_under = |command: common::BunkerCommand, extra: &[&Path], base: &Path| {
        let output = command
            .args(["image-archive", "--dry-run"])
            .args(
                extra
                    .iter()
                    .flat_map(|dir| [Path::new("--output-dir"), dir]),
            )
            .env("BUILD", "false")
            .current_dir(workdir.path())
            .run();
        output.assert_success();
        output.assert_stdout_contains(&format!("{}/{arch}/app/", base.display()));
    };
    planned_under(tree.bunker(), &[], from_file.path());
    planned_under(
        tree.bunker().env("IMAGE_ARCHIVE_DIR", from_env.path()),
        &[],
        from_env.path(),
    );
    planned_under(
        tree.bunker().env("IMAGE_ARCHIVE_DIR", from_env.path()),
        &[tree.archive.path()],
        tree.archive.path(),
    );
    fs::remove_file(tree.path().join(".env_default")).unwrap();
    planned_under(tree.bunker(), &[], Path::new("_archive/images"));
}

#[test]
fn unusable_archive_directories_and_unknown_projects_are_named_in_the_error() {
    let tree = tree();
    tree.image_project("app", &tree.sandbox.seed_image);
    let not_a_dir = tree.archive.path().join("file");
    fs::write(&not_a_dir, b"x").unwrap();
    let output = tree
        .bunker()
        .arg("image-archive")
        .arg("--output-dir")
        .arg(&not_a_dir)
        .env("BUILD", "false")
        .run();
    output.assert_code(1);
    output.assert_stderr_contains(&format!(
        "cannot lock archive directory {}/",
        not_a_dir.display()
    ));

    let unknown = tree.archive_present(&["--project", "nope"]);
    unknown.assert_code(1);
    unknown.assert_stderr_contains("no project \"nope\": no such directory with a compose file in");
}

#[test]
fn a_full_disk_fails_that_image_clearly_leaves_no_partial_file_and_the_rest_is_archived() {
    let mut tree = tree();
    // An image that cannot fit on a 3 MiB disk once compressed: 6 MiB of random bytes.
    let big = tree.image(format!("bunker-test/{}:1", unique_name("too-big")));
    build_random_image(&tree.sandbox, &big, 6 * 1024 * 1024);
    let small = tree.image(format!("bunker-test/{}:1", unique_name("fits")));
    build_unique_image(&tree.sandbox, &small);
    tree.image_project("a-big", &big);
    tree.image_project("b-small", &small);

    let disk = SmallDisk::new("3m");
    // One export at a time: the big image fills the disk first and must leave
    // nothing behind, so that the small one, next in plan order, still fits.
    let output = tree
        .bunker()
        .arg("image-archive")
        .arg("--output-dir")
        .arg(disk.path())
        .args(["--jobs", "1"])
        .env("BUILD", "false")
        .run();
    output.assert_code(1);
    output.assert_stderr_contains(&big);
    output.assert_stderr_contains("No space left on device");
    output.assert_stdout_contains("1 archived, 0 linked, 0 skipped, 1 failed");

    let arch_dir = fs::read_dir(disk.path())
        .expect("read the small disk")
        .map(|entry| entry.expect("entry").path())
        .find(|path| path.is_dir())
        .expect("an architecture directory");
    let files = files_under(&arch_dir);
    assert!(
        files.iter().all(|file| !file.starts_with("a-big/")),
        "nothing of the image that did not fit may stay behind: {files:?}"
    );
    assert!(
        files.iter().all(|file| !file.contains(".partial-")),
        "no partial file may stay behind: {files:?}"
    );
    let manifest: Value =
        serde_json::from_str(&read_text(&arch_dir.join("manifest.json"))).expect("JSON");
    let entries = entries(&manifest);
    assert!(entry(&entries, "a-big", &big).is_none(), "{manifest}");
    assert!(entry(&entries, "b-small", &small).is_some(), "{manifest}");
}

fn line_index(stderr: &str, wanted: impl Fn(&str) -> bool, what: &str) -> usize {
    stderr
        .lines()
        .position(wanted)
        .unwrap_or_else(|| panic!("no line for {what} in:\n{stderr}"))
}

#[test]
fn an_image_is_archived_while_a_slow_build_of_the_same_run_still_runs() {
    let mut tree = tree();
    let unique = unique_name("pipe");
    let pulled = tree.sandbox.registry_image.clone();
    let slow = tree.image(format!("bunker-test/{unique}-slow:1"));
    let dir = tree.path().join("pipe");
    fs::create_dir_all(&dir).unwrap();
    // The unique echo defeats the build cache: the build really sleeps.
    fs::write(
        dir.join("Dockerfile"),
        format!(
            "FROM {}\nRUN sleep 8 && echo {unique} > /marker\n",
            tree.sandbox.seed_image
        ),
    )
    .unwrap();
    fs::write(
        dir.join("docker-compose.yaml"),
        format!(
            "services:\n  web:\n    image: {pulled}\n  slow:\n    build: .\n    image: {slow}\n"
        ),
    )
    .unwrap();

    let output = tree.archive(&["--no-base-images", "--json"]);
    output.assert_success();
    let report: Value = serde_json::from_str(&output.stdout).expect("--json report");
    assert_eq!(report["totals"]["archived"], 2, "{report}");
    assert_eq!(report["totals"]["failed"], 0, "{report}");
    let steps: Vec<String> = report["report"]["build"]["steps"]
        .as_array()
        .expect("build steps")
        .iter()
        .map(|step| format!("{} {}", text(&step["kind"]), text(&step["image"])))
        .collect();
    assert_eq!(steps, [format!("pull {pulled}"), format!("build {slow}")]);

    // The progress lines: the pulled image's archive ended before the slow build did.
    let archived = line_index(
        &output.stderr,
        |line| line.starts_with(&format!("[archive] pipe {pulled}: ok")),
        "the pulled image's archive",
    );
    let built = line_index(
        &output.stderr,
        |line| line.starts_with(&format!("[build] pipe {slow}: ok")),
        "the slow build",
    );
    assert!(
        archived < built,
        "the archive of {pulled} must end before the build of {slow}:\n{}",
        output.stderr
    );

    // The same from the files and the engine: the pulled image's archive file was
    // complete before the slow image existed.
    let entries = entries(&tree.manifest());
    let file = tree.arch_dir().join(text(
        &entry(&entries, "pipe", &pulled).expect("pulled entry")["file"],
    ));
    let written: chrono::DateTime<chrono::Utc> = fs::metadata(&file)
        .expect("the pulled image's archive")
        .modified()
        .expect("mtime")
        .into();
    let created = docker_ok(
        &tree.sandbox,
        [
            "image",
            "inspect",
            "--format",
            "{{.Created}}",
            slow.as_str(),
        ],
    );
    let created = chrono::DateTime::parse_from_rfc3339(created.trim())
        .unwrap_or_else(|error| panic!("engine time {created:?}: {error}"));
    assert!(
        written < created,
        "{} written at {written}, {slow} created at {created}",
        file.display()
    );
}

#[test]
fn ctrl_c_during_an_export_stops_cleanly_keeps_finished_images_and_a_rerun_completes() {
    let mut tree = tree();
    let small = tree.image(format!("bunker-test/{}:1", unique_name("int-small")));
    build_unique_image(&tree.sandbox, &small);
    // ~200 MB of random bytes: slow to export, incompressible.
    let big = tree.image(format!("bunker-test/{}:big", unique_name("int-big")));
    build_random_image(&tree.sandbox, &big, 200 << 20);
    // One export at a time, in plan order: a-small is finished before big starts.
    tree.image_project("a-small", &small);
    tree.image_project("big", &big);

    let mut running = Running::start(
        tree.archive_command(&["--level", "1", "--jobs", "1"])
            .env("BUILD", "false"),
    );
    running.wait_until("its export was seen in progress", |_| {
        find_partial(tree.archive.path())
            .is_some_and(|path| fs::metadata(path).map(|meta| meta.len()).unwrap_or(0) > (8 << 20))
    });
    let (stdout, stderr) = running.interrupt(libc::SIGINT);
    assert!(
        stderr.contains("finished archives are kept in manifest.json"),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "FAILED big: {big}: not archived: bunker was interrupted during its export"
        )),
        "{stderr}"
    );
    assert!(
        stdout.contains("1 archived, 0 linked, 0 skipped, 1 failed"),
        "the summary so far:\n{stdout}"
    );
    let arch_dir = tree.arch_dir();
    assert_eq!(
        find_partial(tree.archive.path()),
        None,
        "the aborted export's partial file is removed"
    );
    assert!(
        files_under(&arch_dir)
            .iter()
            .all(|file| !file.starts_with("big/")),
        "{:?}",
        files_under(&arch_dir)
    );
    let manifest = tree.manifest();
    assert!(
        entry(&entries(&manifest), "a-small", &small).is_some(),
        "{manifest}"
    );
    assert!(
        entry(&entries(&manifest), "big", &big).is_none(),
        "{manifest}"
    );

    let rerun = tree.archive_present(&["--level", "1", "--jobs", "1"]);
    rerun.assert_success();
    rerun.assert_stdout_contains("1 archived, 0 linked, 1 skipped, 0 failed");
    assert!(
        !rerun.stderr.contains("left by an interrupted run"),
        "nothing was left behind:\n{}",
        rerun.stderr
    );
    let recorded = entry(&entries(&tree.manifest()), "big", &big)
        .cloned()
        .expect("big after the rerun");
    run(Command::new("gzip")
        .arg("-t")
        .arg(arch_dir.join(text(&recorded["file"]))))
    .assert_success();
}

#[test]
fn a_second_ctrl_c_quits_at_once_and_leaves_the_archive_intact() {
    let mut tree = tree();
    let big = tree.image(format!("bunker-test/{}:big", unique_name("int-twice")));
    build_random_image(&tree.sandbox, &big, 200 << 20);
    tree.image_project("big", &big);
    tree.archive_present(&["--level", "1"]).assert_success();
    let manifest_before = read_text(&tree.arch_dir().join("manifest.json"));
    let file = tree.arch_dir().join(text(
        &entry(&entries(&tree.manifest()), "big", &big).expect("big entry")["file"],
    ));

    // --verify re-hashes the archive before skipping it; that read cannot be
    // aborted, so the first Ctrl-C waits for it and the second one quits.
    let mut running = Running::start(
        tree.archive_command(&["--level", "1", "--verify"])
            .env("BUILD", "false"),
    );
    running.wait_until("its verification was seen in progress", |pid| {
        read_offset(pid, &file).unwrap_or(0) >= (16 << 20)
    });
    running.signal(libc::SIGINT);
    // Two signals sent back to back merge into one; the second goes once the
    // first has been handled.
    running.wait_for_line("the first Ctrl-C was handled", |line| {
        line.contains("bunker is stopping")
    });
    running.signal(libc::SIGINT);
    let (code, stdout, stderr) = running.finish();

    assert_eq!(code, Some(130), "exit status:\n{stdout}\n{stderr}");
    assert!(stderr.contains("Ctrl-C: bunker is stopping"), "{stderr}");
    assert!(
        stderr.contains("Ctrl-C again: bunker quits now"),
        "the second Ctrl-C ends bunker at once:\n{stderr}"
    );
    assert_eq!(stdout, "", "no report after the second Ctrl-C");
    assert_eq!(
        read_text(&tree.arch_dir().join("manifest.json")),
        manifest_before
    );
    run(Command::new("gzip").arg("-t").arg(&file)).assert_success();
    let rerun = tree.archive_present(&["--level", "1"]);
    rerun.assert_success();
    rerun.assert_stdout_contains("0 archived, 0 linked, 1 skipped, 0 failed");
}

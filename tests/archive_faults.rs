//! Faults injected into `bunker image-archive` (real engine over real sshd),
//! and what the archive looks like afterwards.
//!
//! The invariant under test: at every instant and after any crash, each
//! manifest entry describes the file at its path byte for byte, or the
//! previous state is intact; a failed image is never recorded. The tests kill
//! the run (SIGKILL) at points spread over a first archive and over a
//! re-archive after every tag moved to new content, make the manifest save
//! fail at the moment of the switch, and archive two images whose names the
//! old file name rule mapped to one file. Each kill test prints its figures on
//! one `FAULTS` line for the README table.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};

use common::{
    Output, Sandbox, TestHome, build_random_image, build_unique_image, docker, docker_ok, image_id,
    read_text, sandbox, unique_name,
};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// A projects tree (one project, `app`, one service per image) and the images
/// it names, removed from the engine when dropped.
struct Tree {
    sandbox: Sandbox,
    home: TestHome,
    root: tempfile::TempDir,
    images: Vec<String>,
}

impl Tree {
    fn new(images: &[String]) -> Tree {
        let sandbox = sandbox();
        let root = tempfile::Builder::new()
            .prefix("bunker-faults-tree-")
            .tempdir()
            .expect("create a projects tree");
        let project = root.path().join("app");
        fs::create_dir_all(&project).expect("create the project");
        let services: String = images
            .iter()
            .enumerate()
            .map(|(index, image)| format!("  s{index}:\n    image: {image}\n"))
            .collect();
        fs::write(
            project.join("docker-compose.yaml"),
            format!("services:\n{services}"),
        )
        .expect("write docker-compose.yaml");
        Tree {
            home: TestHome::new(&sandbox),
            sandbox,
            root,
            images: images.to_vec(),
        }
    }

    /// `bunker image-archive --output-dir <archive> --jobs 1` with BUILD=false.
    fn archive_command(&self, archive: &Path, extra: &[&str]) -> std::process::Command {
        self.home
            .bunker()
            .remote(&self.sandbox)
            .arg("--projects-dir")
            .arg(self.root.path())
            .arg("image-archive")
            .arg("--output-dir")
            .arg(archive)
            .args(["--jobs", "1", "--level", "1"])
            .args(extra)
            .env("BUILD", "false")
            .into_command()
    }

    fn archive(&self, archive: &Path) -> Output {
        common::run(&mut self.archive_command(archive, &[]))
    }

    /// `bunker archive verify --json`: (checked, bad).
    fn verify(&self, archive: &Path) -> (u64, u64) {
        let output = self
            .home
            .bunker()
            .args(["archive", "verify", "--json", "--archive-dir"])
            .arg(archive)
            .run();
        let report: Value = serde_json::from_str(&output.stdout)
            .unwrap_or_else(|error| panic!("verify --json is not JSON ({error}):\n{output}"));
        let checked = report["checked"]
            .as_u64()
            .unwrap_or_else(|| panic!("{output}"));
        let bad = report["bad"].as_u64().unwrap_or_else(|| panic!("{output}"));
        (checked, bad)
    }
}

impl Drop for Tree {
    fn drop(&mut self) {
        for image in &self.images {
            let _ = docker(&self.sandbox, ["rmi", "-f", image.as_str()]);
        }
    }
}

/// The one architecture directory under `archive`, if the run made it.
fn arch_dir(archive: &Path) -> Option<PathBuf> {
    let dirs: Vec<PathBuf> = fs::read_dir(archive)
        .ok()?
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.is_dir())
        .collect();
    assert!(dirs.len() <= 1, "more than one arch directory: {dirs:?}");
    dirs.into_iter().next()
}

fn manifest_entries(arch: &Path) -> Vec<Value> {
    let path = arch.join("manifest.json");
    if !path.exists() {
        return Vec::new();
    }
    let manifest: Value = serde_json::from_str(&read_text(&path)).expect("manifest.json");
    manifest["images"].as_array().cloned().unwrap_or_default()
}

fn text(value: &Value) -> String {
    value.as_str().unwrap_or_default().to_string()
}

/// Every file under the project directories, `<project>/<name>`.
fn files(arch: &Path) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for project in fs::read_dir(arch).into_iter().flatten().flatten() {
        if project.path().is_dir() {
            let project_name = project.file_name().to_string_lossy().into_owned();
            for file in fs::read_dir(project.path()).into_iter().flatten().flatten() {
                found.insert(format!(
                    "{project_name}/{}",
                    file.file_name().to_string_lossy()
                ));
            }
        }
    }
    found
}

fn sha256_hex(path: &Path) -> Option<String> {
    let mut file = fs::File::open(path).ok()?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let read = file.read(&mut buffer).ok()?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
    }
    Some(
        hasher
            .finalize()
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect(),
    )
}

/// Entries whose file is missing or differs from what they record (size, SHA-256).
fn lying_entries(arch: &Path) -> Vec<String> {
    manifest_entries(arch)
        .iter()
        .filter_map(|entry| {
            let path = arch.join(text(&entry["file"]));
            let size = fs::metadata(&path).map(|meta| meta.len()).ok();
            let sha = sha256_hex(&path);
            (size != entry["size"].as_u64() || sha.as_deref() != entry["sha256"].as_str()).then(
                || {
                    format!(
                        "{} -> {} ({size:?})",
                        text(&entry["image"]),
                        text(&entry["file"])
                    )
                },
            )
        })
        .collect()
}

/// What must be equal between a completed rerun and an uninterrupted run.
fn comparable(arch: &Path) -> BTreeMap<String, (String, String, Value)> {
    manifest_entries(arch)
        .iter()
        .map(|entry| {
            (
                format!("{} {}", text(&entry["project"]), text(&entry["image"])),
                (
                    text(&entry["file"]),
                    text(&entry["docker_id"]),
                    entry["layers"].clone(),
                ),
            )
        })
        .collect()
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).expect("create the copy");
    for entry in fs::read_dir(from).expect("read the directory") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), &target).expect("copy a file");
        }
    }
}

/// The state of a run seen from outside, for choosing where to kill it.
#[derive(Debug, Default)]
struct Seen {
    /// Temporary files and the largest one's size.
    partials: usize,
    partial_bytes: u64,
    /// Finished archive files the run started without.
    new_files: usize,
    /// Manifest entries that name such a new file.
    switched: usize,
}

/// The archive before a run: files with their inode numbers (a file renamed
/// into place under a name that was there before shows as a new inode), and
/// each listed file's recorded SHA-256.
#[derive(Default)]
struct Snapshot {
    inodes: BTreeMap<String, u64>,
    recorded: BTreeMap<String, Value>,
}

fn snapshot(archive: &Path) -> Snapshot {
    use std::os::unix::fs::MetadataExt;
    let Some(arch) = arch_dir(archive) else {
        return Snapshot::default();
    };
    Snapshot {
        inodes: files(&arch)
            .into_iter()
            .filter_map(|file| {
                let inode = fs::metadata(arch.join(&file)).ok()?.ino();
                Some((file, inode))
            })
            .collect(),
        recorded: manifest_entries(&arch)
            .iter()
            .map(|entry| (text(&entry["file"]), entry["sha256"].clone()))
            .collect(),
    }
}

fn seen(archive: &Path, before: &Snapshot) -> Seen {
    use std::os::unix::fs::MetadataExt;
    let Some(arch) = arch_dir(archive) else {
        return Seen::default();
    };
    let mut state = Seen::default();
    for file in files(&arch) {
        if file.contains(".partial-") {
            state.partials += 1;
            let size = fs::metadata(arch.join(&file)).map_or(0, |meta| meta.len());
            state.partial_bytes = state.partial_bytes.max(size);
        } else if before.inodes.get(&file)
            != fs::metadata(arch.join(&file))
                .ok()
                .map(|meta| meta.ino())
                .as_ref()
        {
            state.new_files += 1;
        }
    }
    state.switched = manifest_entries(&arch)
        .iter()
        .filter(|entry| before.recorded.get(&text(&entry["file"])) != Some(&entry["sha256"]))
        .count();
    state
}

/// A kill point: a name and the state that must be reached first.
struct Point {
    name: &'static str,
    reached: fn(&Seen) -> bool,
}

const fn point(name: &'static str, reached: fn(&Seen) -> bool) -> Point {
    Point { name, reached }
}

/// Points spread over a run of three images, in run order.
const POINTS: &[Point] = &[
    point("at start", |_| true),
    point("1st export begun", |seen| {
        seen.partials > 0 || seen.new_files > 0
    }),
    point("1st export half written", |seen| {
        seen.partial_bytes >= 1 << 20 || seen.new_files > 0
    }),
    point("1st file renamed", |seen| seen.new_files >= 1),
    point("1st entry switched", |seen| seen.switched >= 1),
    point("2nd export begun", |seen| {
        (seen.switched >= 1 && seen.partials > 0) || seen.new_files >= 2
    }),
    point("2nd file renamed", |seen| seen.new_files >= 2),
    point("2nd entry switched", |seen| seen.switched >= 2),
    point("3rd export half written", |seen| {
        (seen.switched >= 2 && seen.partial_bytes >= 1 << 20) || seen.new_files >= 3
    }),
    point("3rd file renamed", |seen| seen.new_files >= 3),
    point("3rd entry switched", |seen| seen.switched >= 3),
];

/// Polls (bounded: the run ends by itself long before) until `point` is
/// reached or the run ended; SIGKILLs it. Returns whether it was still running.
fn kill_at(child: &mut Child, archive: &Path, before: &Snapshot, point: &Point) -> bool {
    for _ in 0..2_000_000 {
        if child.try_wait().expect("poll image-archive").is_some() {
            return false;
        }
        if (point.reached)(&seen(archive, before)) {
            let _ = child.kill();
            let status = child.wait().expect("reap image-archive");
            return status.code().is_none();
        }
        std::thread::yield_now();
    }
    panic!("image-archive neither reached '{}' nor ended", point.name);
}

/// Runs the kill matrix from the state in `start` (an archive directory, or
/// none for a first archive) and compares every rerun with `reference`.
fn kill_matrix(tree: &Tree, start: Option<&Path>, reference: &Path, label: &str) {
    let expected = comparable(&arch_dir(reference).expect("reference arch dir"));
    let mut killed = 0;
    let mut hit = Vec::new();
    let mut bad_entries = 0;
    let mut reruns_ok = 0;
    for point in POINTS {
        let archive = tempfile::Builder::new()
            .prefix("bunker-faults-kill-")
            .tempdir()
            .expect("archive directory");
        if let Some(start) = start {
            copy_dir(start, archive.path());
        }
        let before = snapshot(archive.path());
        let mut child = tree
            .archive_command(archive.path(), &[])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start image-archive");
        if kill_at(&mut child, archive.path(), &before, point) {
            killed += 1;
            hit.push(point.name);
        }

        if let Some(arch) = arch_dir(archive.path()) {
            let lying = lying_entries(&arch);
            assert!(
                lying.is_empty(),
                "{label}, killed {}: {lying:?}",
                point.name
            );
            if arch.join("manifest.json").exists() {
                let (_, bad) = tree.verify(archive.path());
                bad_entries += bad;
                assert_eq!(
                    bad, 0,
                    "{label}, killed {}: verify found bad entries",
                    point.name
                );
            }
        }

        let rerun = tree.archive(archive.path());
        rerun.assert_success();
        let arch = arch_dir(archive.path()).expect("arch dir after the rerun");
        assert_eq!(
            comparable(&arch),
            expected,
            "{label}, killed {}: the rerun's entries differ from an uninterrupted run",
            point.name
        );
        let listed: BTreeSet<String> = manifest_entries(&arch)
            .iter()
            .map(|entry| text(&entry["file"]))
            .collect();
        assert_eq!(
            files(&arch),
            listed,
            "{label}, killed {}: files other than the listed ones stay",
            point.name
        );
        assert!(lying_entries(&arch).is_empty());
        let (checked, bad) = tree.verify(archive.path());
        assert_eq!((checked, bad), (listed.len() as u64, 0));
        reruns_ok += 1;
    }
    println!(
        "FAULTS image-archive {label}: {killed} kills mid-run at {} points ({}), \
         bad entries after a kill 0 (found {bad_entries}), lying entries 0, reruns ok {reruns_ok}/{}",
        hit.len(),
        hit.join(", "),
        POINTS.len()
    );
    assert!(
        killed >= 8,
        "{label}: only {killed} kills landed before the run ended ({hit:?})"
    );
}

#[test]
fn sigkill_at_any_point_of_a_first_archive_and_a_re_archive_leaves_a_true_manifest() {
    let sandbox = sandbox();
    let name = unique_name("faults-kill");
    let images: Vec<String> = (0..3)
        .map(|index| format!("bunker-test/{name}-{index}:1"))
        .collect();
    for image in &images {
        build_random_image(&sandbox, image, 2 << 20);
    }
    let tree = Tree::new(&images);

    // First archive: the uninterrupted reference, then the kills from nothing.
    let first = tempfile::tempdir().expect("reference archive");
    tree.archive(first.path()).assert_success();
    kill_matrix(&tree, None, first.path(), "first archive");

    // Every tag moves to new content: the re-archive replaces every file.
    let retagged: Vec<String> = images
        .iter()
        .map(|image| {
            let other = format!("{image}-next");
            build_random_image(&sandbox, &other, 2 << 20);
            docker_ok(&sandbox, ["tag", &other, image]);
            docker_ok(&sandbox, ["rmi", &other]);
            other
        })
        .collect();
    drop(retagged);
    let second = tempfile::tempdir().expect("reference re-archive");
    copy_dir(first.path(), second.path());
    tree.archive(second.path()).assert_success();
    let second_arch = arch_dir(second.path()).unwrap();
    let first_arch = arch_dir(first.path()).unwrap();
    assert!(
        files(&second_arch).is_disjoint(&files(&first_arch)),
        "the re-archive writes every image under a new name"
    );
    kill_matrix(&tree, Some(first.path()), second.path(), "re-archive");
}

/// Sets the immutable flag on a directory (refused even to root: no file can be
/// created or renamed in it, while its subdirectories stay writable); cleared on drop.
struct Immutable(PathBuf);

impl Immutable {
    fn set(dir: &Path) -> Immutable {
        chattr("+i", dir);
        Immutable(dir.to_path_buf())
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        chattr("-i", &self.0);
    }
}

fn chattr(flag: &str, dir: &Path) {
    let status = std::process::Command::new("chattr")
        .arg(flag)
        .arg(dir)
        .status()
        .expect("chattr (e2fsprogs) must be installed: this test needs it");
    assert!(status.success(), "chattr {flag} {} failed", dir.display());
}

#[test]
fn a_manifest_save_that_fails_at_the_switch_keeps_the_old_file_and_entry() {
    let sandbox = sandbox();
    let image = format!("bunker-test/{}:1", unique_name("faults-save"));
    build_unique_image(&sandbox, &image);
    let tree = Tree::new(std::slice::from_ref(&image));
    let archive = tempfile::tempdir().expect("archive directory");
    tree.archive(archive.path()).assert_success();
    let arch = arch_dir(archive.path()).unwrap();
    let manifest_path = arch.join("manifest.json");
    let manifest_before = fs::read(&manifest_path).unwrap();
    let entry_before = manifest_entries(&arch)[0].clone();
    let old_file = arch.join(text(&entry_before["file"]));
    let old_bytes = fs::read(&old_file).unwrap();

    let other = format!("{image}-next");
    let new_id = build_unique_image(&sandbox, &other);
    docker_ok(&sandbox, ["tag", &other, &image]);
    docker_ok(&sandbox, ["rmi", &other]);

    let failed = {
        let _frozen = Immutable::set(&arch);
        tree.archive(archive.path())
    };
    failed.assert_code(1);
    let shown = format!("{}{}", failed.stdout, failed.stderr);
    for needle in [
        format!("cannot write archive manifest {}", manifest_path.display()),
        "the previous archive and its manifest entry are unchanged".to_string(),
        format!("make {} writable", arch.display()),
        "run image-archive again".to_string(),
    ] {
        assert!(shown.contains(&needle), "missing {needle:?} in:\n{failed}");
    }
    assert_eq!(fs::read(&manifest_path).unwrap(), manifest_before);
    assert_eq!(fs::read(&old_file).unwrap(), old_bytes);
    assert_eq!(
        files(&arch),
        BTreeSet::from([text(&entry_before["file"])]),
        "the new file, which nothing lists, is removed"
    );
    assert_eq!(tree.verify(archive.path()), (1, 0));

    let rerun = tree.archive(archive.path());
    rerun.assert_success();
    let after = manifest_entries(&arch)[0].clone();
    assert_eq!(after["docker_id"].as_str(), Some(new_id.as_str()));
    assert_ne!(after["file"], entry_before["file"]);
    assert_eq!(files(&arch), BTreeSet::from([text(&after["file"])]));
    assert_eq!(tree.verify(archive.path()), (1, 0));
}

#[test]
fn two_images_the_old_name_rule_merged_get_two_files_that_verify_and_restore() {
    let sandbox = sandbox();
    let name = unique_name("faults-names");
    let images = [
        format!("bunker-test/{name}/col/x:1"),
        format!("bunker-test/{name}/col_x:1"),
    ];
    let ids: Vec<String> = images
        .iter()
        .map(|image| build_unique_image(&sandbox, image))
        .collect();
    let tree = Tree::new(&images);
    let archive = tempfile::tempdir().expect("archive directory");
    let output = tree.archive(archive.path());
    output.assert_success();
    output.assert_stdout_contains("2 archived");
    let arch = arch_dir(archive.path()).unwrap();
    let entries = manifest_entries(&arch);
    assert_eq!(entries.len(), 2);
    assert_ne!(entries[0]["file"], entries[1]["file"]);
    assert_eq!(files(&arch).len(), 2);
    assert!(lying_entries(&arch).is_empty());
    assert_eq!(tree.verify(archive.path()), (2, 0));

    for image in &images {
        docker_ok(&sandbox, ["rmi", image]);
    }
    let restored = tree
        .home
        .bunker()
        .remote(&sandbox)
        .args(["image-restore", "--archive-dir"])
        .arg(&arch)
        .run();
    restored.assert_success();
    for (image, id) in images.iter().zip(&ids) {
        assert_eq!(
            image_id(&sandbox, image).as_deref(),
            Some(id.as_str()),
            "{image}"
        );
    }
}

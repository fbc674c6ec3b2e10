//! Bad input "a full disk", for the writers that are not image-archive's (whose test is in
//! tests/image_archive.rs): `bunker registry pull` into an archive directory on a small
//! tmpfs, filled once by the blob cache (the download does not fit) and once by the
//! docker-save archive (the blobs fit, the archive does not).
//!
//! Each time the image that does not fit fails with the disk's error and exit status 1,
//! named as failed for lack of space, with the bytes it needs against the bytes free; an
//! image before it is pulled, none starts after it (one at a time, so this is exact; run in
//! parallel, every image is either pulled or named as lacking space); nothing
//! half-written or corrupt stays in the blob cache or the archive, and a rerun once the
//! disk is bigger pulls everything.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::{Output, Sandbox, SmallDisk, TestHome, read_text, registry_image_of_size, sandbox};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// `bunker registry pull <images> --archive-dir <dir> --jobs 1`: one image after the
/// other, so the one that fills the disk is done before the next starts.
fn pull(home: &TestHome, archive_dir: &Path, images: &[&str]) -> Output {
    pull_with(home, archive_dir, images, &["--jobs", "1"])
}

/// The same with the default number of jobs: images pulled at the same time.
fn pull_parallel(home: &TestHome, archive_dir: &Path, images: &[&str]) -> Output {
    pull_with(home, archive_dir, images, &[])
}

fn pull_with(home: &TestHome, archive_dir: &Path, images: &[&str], extra: &[&str]) -> Output {
    home.bunker()
        .args(["registry", "pull"])
        .args(images)
        .arg("--archive-dir")
        .arg(archive_dir)
        .args(extra)
        .run()
}

/// Panics unless stdout says `images` image(s) failed for lack of space in `dir`, needing
/// more bytes than are free.
#[track_caller]
fn assert_shortfall_reported(output: &Output, dir: &Path, images: usize) {
    let line = regex::Regex::new(&format!(
        r"(?m)^{images} image\(s\) failed for lack of space in {}: they need about [^(]+\(([0-9]+) bytes\), [^(]+\(([0-9]+) bytes\) are free; free space or use a bigger disk and run again$",
        regex::escape(&dir.display().to_string())
    ))
    .unwrap();
    let captures = line
        .captures(&output.stdout)
        .unwrap_or_else(|| panic!("no shortfall line for {images} image(s): {output}"));
    let needed: u64 = captures[1].parse().unwrap();
    let free: u64 = captures[2].parse().unwrap();
    assert!(needed > free, "needed {needed} <= free {free}: {output}");
}

/// Every file below `dir`, recursively.
fn all_files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in fs::read_dir(dir).unwrap_or_else(|error| panic!("read {dir:?}: {error}")) {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            found.extend(all_files(&path));
        } else {
            found.push(path);
        }
    }
    found
}

/// Panics unless `archive_dir` holds no partial or temporary file, every blob of the
/// cache hashes to its name, and every remembered digest is whole.
#[track_caller]
fn assert_nothing_half_written(archive_dir: &Path) {
    let files = all_files(archive_dir);
    let names = |path: &PathBuf| path.file_name().unwrap().to_string_lossy().into_owned();
    let leftovers: Vec<_> = files
        .iter()
        .filter(|path| {
            let name = names(path);
            name.contains(".partial") || name.contains(".tmp-")
        })
        .collect();
    assert!(
        leftovers.is_empty(),
        "half-written files stayed behind: {leftovers:?}"
    );
    let blobs = archive_dir.join("blobs").join("sha256");
    let whole_memo = regex::Regex::new(r"^sha256:[0-9a-f]{64} [0-9]+$").unwrap();
    for path in &files {
        if path.parent() == Some(blobs.as_path()) {
            let bytes = fs::read(path).unwrap_or_else(|error| panic!("read {path:?}: {error}"));
            let actual: String = Sha256::digest(&bytes)
                .iter()
                .map(|byte| format!("{byte:02x}"))
                .collect();
            assert_eq!(actual, names(path), "corrupt blob in the cache: {path:?}");
        } else if path.starts_with(archive_dir.join(".bunker").join("diffids"))
            || path.starts_with(archive_dir.join(".bunker").join("compressed"))
        {
            let memo = read_text(path);
            assert!(
                whole_memo.is_match(memo.trim()),
                "truncated memo {path:?}: {memo:?}"
            );
        }
    }
}

/// The images manifest.json of the single architecture directory lists.
fn archived_images(archive_dir: &Path) -> Vec<String> {
    let manifests: Vec<PathBuf> = all_files(archive_dir)
        .into_iter()
        .filter(|path| {
            path.ends_with("manifest.json") && !path.starts_with(archive_dir.join("blobs"))
        })
        .collect();
    assert_eq!(manifests.len(), 1, "one manifest.json: {manifests:?}");
    let manifest: Value = serde_json::from_str(&read_text(&manifests[0])).expect("JSON");
    manifest["images"]
        .as_array()
        .expect("manifest has images")
        .iter()
        .map(|entry| entry["image"].as_str().expect("image name").to_string())
        .collect()
}

/// The archive files (`.tar.gz`) written below `archive_dir`.
fn archive_files(archive_dir: &Path) -> Vec<PathBuf> {
    all_files(archive_dir)
        .into_iter()
        .filter(|path| path.to_string_lossy().ends_with(".tar.gz"))
        .collect()
}

/// Panics unless `bunker archive verify` finds exactly `count` intact archives.
#[track_caller]
fn assert_archives_verify(home: &TestHome, archive_dir: &Path, count: usize) {
    let verify = home
        .bunker()
        .args(["archive", "verify", "--archive-dir"])
        .arg(archive_dir)
        .run();
    verify.assert_success();
    verify.assert_stdout_contains(&format!("{count} archive(s) checked, 0 bad"));
}

/// Pulls the sandbox's small registry image then `too_big` onto `disk`, one at a time:
/// the small one is pulled, `too_big` fails for lack of space with `expected_error`.
/// Then `too_big` first: it fails and the small one is not started. Then both in
/// parallel: `too_big` fails, the small one is pulled or named as lacking space. After
/// `disk.grow` a rerun pulls both.
fn full_disk_fails_one_image_and_a_rerun_on_a_bigger_disk_pulls_it(
    home: &TestHome,
    sandbox: &Sandbox,
    disk: &SmallDisk,
    too_big: &str,
    expected_error: &str,
) {
    let small = sandbox.registry_image.as_str();
    let output = pull(home, disk.path(), &[small, too_big]);
    output.assert_code(1);
    output.assert_stderr_contains(&format!("FAILED {too_big} (no space left): "));
    output.assert_stderr_contains(expected_error);
    output.assert_stderr_contains("No space left on device");
    output.assert_stdout_contains(&format!("pulled {small} "));
    output.assert_stdout_contains("2 image(s), 1 failed");
    assert_shortfall_reported(&output, disk.path(), 1);
    assert!(
        !output.stdout.contains(&format!("pulled {too_big} ")),
        "{output}"
    );
    assert_nothing_half_written(disk.path());
    assert_eq!(archived_images(disk.path()), vec![small.to_string()]);
    let files = archive_files(disk.path());
    assert_eq!(files.len(), 1, "only the small image's archive: {files:?}");
    assert_archives_verify(home, disk.path(), 1);

    // Once a write hit ENOSPC nothing new starts.
    let output = pull(home, disk.path(), &[too_big, small]);
    println!("{output}");
    output.assert_code(1);
    output.assert_stderr_contains(&format!("FAILED {too_big} (no space left): "));
    output.assert_stderr_contains(&format!(
        "FAILED {small} (no space left): not started for lack of space: an earlier write to {} failed",
        disk.path().display()
    ));
    output.assert_stdout_contains("2 image(s), 2 failed");
    assert_shortfall_reported(&output, disk.path(), 2);
    assert_nothing_half_written(disk.path());
    assert_eq!(archived_images(disk.path()), vec![small.to_string()]);
    assert_archives_verify(home, disk.path(), 1);

    // In parallel the small image may or may not start before the disk fills: either
    // way it is pulled or named as lacking space, and nothing is left half-written.
    let output = pull_parallel(home, disk.path(), &[too_big, small]);
    output.assert_code(1);
    output.assert_stderr_contains(&format!("FAILED {too_big} (no space left): "));
    let small_pulled = output.stdout.contains(&format!("pulled {small} "));
    let small_short = output
        .stderr
        .contains(&format!("FAILED {small} (no space left): "));
    assert!(small_pulled != small_short, "{output}");
    output.assert_stdout_contains(&format!(
        "2 image(s), {} failed",
        if small_pulled { 1 } else { 2 }
    ));
    assert_shortfall_reported(&output, disk.path(), if small_pulled { 1 } else { 2 });
    assert_nothing_half_written(disk.path());
    assert_eq!(archived_images(disk.path()), vec![small.to_string()]);
    assert_archives_verify(home, disk.path(), 1);

    disk.grow("64m");
    let rerun = pull_parallel(home, disk.path(), &[too_big, small]);
    rerun.assert_success();
    rerun.assert_stdout_contains(&format!("pulled {too_big} "));
    rerun.assert_stdout_contains("2 image(s), 0 failed");
    assert!(!rerun.stdout.contains("lack of space"), "{rerun}");
    assert_nothing_half_written(disk.path());
    let mut archived = archived_images(disk.path());
    archived.sort();
    let mut expected = vec![too_big.to_string(), small.to_string()];
    expected.sort();
    assert_eq!(archived, expected);
    assert_eq!(archive_files(disk.path()).len(), 2);
    assert_archives_verify(home, disk.path(), 2);
}

#[test]
fn registry_pull_onto_a_disk_too_small_for_the_download() {
    let sandbox = sandbox();
    let home = TestHome::new(&sandbox);
    // 6 MiB of random bytes cannot be downloaded onto 3 MiB.
    let too_big = registry_image_of_size(&sandbox, "download-too-big", 6 * 1024 * 1024);
    let disk = SmallDisk::new("3m");
    full_disk_fails_one_image_and_a_rerun_on_a_bigger_disk_pulls_it(
        &home,
        &sandbox,
        &disk,
        &too_big,
        ".partial (the partial download was removed): ",
    );
}

#[test]
fn registry_pull_onto_a_disk_too_small_for_the_archive() {
    let sandbox = sandbox();
    let home = TestHome::new(&sandbox);
    // Its blobs (2.5 MiB random + the 1 MiB seed layer) fit on 5 MiB; the same again as
    // a docker-save archive does not, while the small image's archive (1 MiB) does.
    let too_big = registry_image_of_size(&sandbox, "archive-too-big", 5 * 512 * 1024);
    let disk = SmallDisk::new("5m");
    full_disk_fails_one_image_and_a_rerun_on_a_bigger_disk_pulls_it(
        &home,
        &sandbox,
        &disk,
        &too_big,
        &format!("cannot write the archive of {too_big}"),
    );
}

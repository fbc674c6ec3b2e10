//! Ctrl-C during `bunker registry pull`: the first signal stops the pull cleanly. The
//! image already pulled stays in manifest.json, the running blob download is aborted
//! with its `.partial` file kept in the blob cache, no archive file is left half-written,
//! the summary so far is printed and the exit status is 130; a rerun resumes the blob
//! instead of downloading it again. SIGTERM during `bunker registry push` aborts the
//! running upload the same way: status 143, the summary so far, and a rerun pushes.

mod common;
use common::read_offset;
mod signal_support;
use signal_support::Running;

use std::fs;
use std::path::{Path, PathBuf};

use common::{
    TestHome, archived_images, login_to_auth_registry, registry_image_of_size, sandbox, unique_name,
};
use serde_json::Value;

/// Bytes of random content in the big image: a download that takes a while.
const BIG_BYTES: usize = 150 << 20;

/// The SIGINT is sent once the big blob's partial download has this many bytes.
const SEEN_IN_PROGRESS: u64 = 8 << 20;

/// Every file below `dir`, recursively (none when it does not exist yet).
fn all_files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(all_files(&path));
        } else {
            found.push(path);
        }
    }
    found
}

/// The partial downloads in the blob cache with their sizes.
fn partial_blobs(archive: &Path) -> Vec<(PathBuf, u64)> {
    all_files(&archive.join("blobs").join("sha256"))
        .into_iter()
        .filter(|path| path.to_string_lossy().ends_with(".partial"))
        .filter_map(|path| Some((path.clone(), fs::metadata(&path).ok()?.len())))
        .collect()
}

#[test]
fn ctrl_c_during_a_pull_keeps_finished_images_and_the_partial_blob_and_a_rerun_resumes() {
    let sandbox = sandbox();
    let home = TestHome::new(&sandbox);
    let work = tempfile::tempdir().expect("temp dir");
    let archive = work.path().join("archive");
    let big = registry_image_of_size(&sandbox, "interrupt-big", BIG_BYTES);
    let small = sandbox.registry_image.clone();

    // One image at a time, in the given order: the small one is finished first.
    let pull = || {
        home.registry_pull(&archive)
            .args(["--jobs", "1", &small, &big])
    };
    let mut running = Running::start(pull());
    running.wait_until("the big blob was seen downloading", |_| {
        partial_blobs(&archive)
            .iter()
            .any(|(_, size)| *size >= SEEN_IN_PROGRESS)
    });
    let (stdout, stderr) = running.interrupt(libc::SIGINT);

    assert!(
        stderr.contains(&format!("STOPPED {big}: not finished")),
        "{stderr}"
    );
    assert!(stdout.contains(&format!("pulled {small} (")), "{stdout}");
    assert!(
        stdout.contains("2 image(s), 0 failed, 1 stopped"),
        "the summary so far:\n{stdout}"
    );
    let partials = partial_blobs(&archive);
    assert_eq!(
        partials.len(),
        1,
        "the big blob's download is kept: {partials:?}"
    );
    let (partial, kept) = partials[0].clone();
    assert!(kept >= SEEN_IN_PROGRESS, "{partial:?} has {kept} bytes");
    let half_written: Vec<PathBuf> = all_files(&archive)
        .into_iter()
        .filter(|path| !path.starts_with(archive.join("blobs")))
        .filter(|path| {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            name.contains(".partial") || name.contains(".tmp-")
        })
        .collect();
    assert!(
        half_written.is_empty(),
        "half-written archive files: {half_written:?}"
    );
    let archived = archived_images(&archive);
    assert_eq!(
        archived,
        std::slice::from_ref(&small),
        "only the finished image"
    );

    let rerun = pull().arg("--json").run();
    rerun.assert_success();
    let report: Value = serde_json::from_str(&rerun.stdout).expect("--json report");
    let downloaded = report["downloaded_bytes"]
        .as_u64()
        .expect("downloaded_bytes");
    let reused = report["reused_bytes"].as_u64().expect("reused_bytes");
    assert!(
        downloaded + kept <= BIG_BYTES as u64 + (4 << 20),
        "the rerun resumes the kept {kept} bytes instead of downloading them again: \
         downloaded {downloaded}"
    );
    assert!(reused >= kept, "the kept {kept} bytes are reused: {reused}");
    assert_eq!(report["failed"], 0, "{report}");
    assert!(
        partial_blobs(&archive).is_empty(),
        "the blob is complete now"
    );
    assert_eq!(archived_images(&archive).len(), 2);
}

#[test]
fn sigterm_during_a_push_aborts_the_upload_and_a_rerun_pushes() {
    let sandbox = sandbox();
    let home = TestHome::new(&sandbox);
    let work = tempfile::tempdir().expect("temp dir");
    let archive = work.path().join("archive");
    let big = registry_image_of_size(&sandbox, "interrupt-push", 96 << 20);
    home.registry_pull(&archive)
        .arg(&big)
        .run()
        .assert_success();
    let big_blob = all_files(&archive.join("blobs").join("sha256"))
        .into_iter()
        .max_by_key(|path| fs::metadata(path).map_or(0, |meta| meta.len()))
        .expect("blobs in the cache");
    let big_blob = fs::canonicalize(&big_blob).expect("canonical blob path");
    login_to_auth_registry(&home, &sandbox);

    let to = format!("{}/{}", sandbox.auth_registry, unique_name("stopped"));
    let push = || home.registry_push(&to, &archive).args(["--jobs", "1"]);
    let mut running = Running::start(push());
    running.wait_until_every(
        std::time::Duration::from_millis(2),
        "the big blob was seen uploading",
        |pid| read_offset(pid, &big_blob).unwrap_or(0) > 0,
    );
    let (stdout, stderr) = running.interrupt(libc::SIGTERM);
    assert!(
        stderr.contains("upload aborted, rerun to push it"),
        "{stderr}"
    );
    assert!(
        stdout.contains("1 image(s), 0 failed, 1 stopped"),
        "the summary so far:\n{stdout}"
    );
    assert!(!stdout.contains("pushed "), "nothing was pushed:\n{stdout}");

    push()
        .run()
        .assert_success()
        .assert_stdout_contains("pushed ")
        .assert_stdout_contains("1 image(s), 0 failed");
}

//! The blob cache under faults: two `registry pull` runs sharing one cache at the same
//! time, and a cached blob corrupted on disk (a flipped byte, same size) before it is
//! linked into a dir output or used as an OCI layout blob.
//!
//! Each time the runs succeed and every blob in the cache hashes to its name afterwards
//! (0 corrupt blobs); a corrupt cached blob is discarded and fetched again, never linked.

mod common;

use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use common::{Output, TestHome, registry_image_of_size, sandbox};
use serde_json::Value;
use sha2::{Digest, Sha256};

fn pull(home: &TestHome, archive_dir: &Path, format: &str, images: &[&str]) -> Output {
    home.bunker()
        .args(["registry", "pull"])
        .args(images)
        .arg("--archive-dir")
        .arg(archive_dir)
        .args(["--format", format, "--json"])
        .run()
}

fn json(output: &Output) -> Value {
    serde_json::from_str(&output.stdout).unwrap_or_else(|error| panic!("{error}: {output}"))
}

fn sha256_hex(path: &Path) -> String {
    let bytes = fs::read(path).unwrap_or_else(|error| panic!("read {path:?}: {error}"));
    Sha256::digest(&bytes)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// The files of the blob cache, with how many of them do not hash to their name.
/// Panics on any partial or temporary file left there.
#[track_caller]
fn corrupt_cached_blobs(archive_dir: &Path) -> (usize, usize) {
    let dir = archive_dir.join("blobs").join("sha256");
    let mut blobs = 0;
    let mut corrupt = 0;
    for entry in fs::read_dir(&dir).unwrap_or_else(|error| panic!("read {dir:?}: {error}")) {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit()),
            "not a finished blob in the cache: {path:?}"
        );
        blobs += 1;
        if sha256_hex(&path) != name {
            corrupt += 1;
        }
    }
    (blobs, corrupt)
}

/// The biggest blob of the cache (the random layer).
fn biggest_blob(archive_dir: &Path) -> PathBuf {
    fs::read_dir(archive_dir.join("blobs").join("sha256"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .max_by_key(|path| fs::metadata(path).unwrap().len())
        .expect("a cached blob")
}

/// Flips one byte in the middle of `path`, in place (same inode, same size).
fn flip_a_byte(path: &Path) {
    let mut file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let middle = file.metadata().unwrap().len() / 2;
    let mut byte = [0u8];
    file.seek(SeekFrom::Start(middle)).unwrap();
    file.read_exact(&mut byte).unwrap();
    file.seek(SeekFrom::Start(middle)).unwrap();
    file.write_all(&[byte[0] ^ 0xff]).unwrap();
    file.sync_all().unwrap();
}

#[test]
fn two_pulls_sharing_one_blob_cache_at_once_both_succeed_with_no_corrupt_blob() {
    let sandbox = sandbox();
    let home = TestHome::new(&sandbox);
    let shared = registry_image_of_size(&sandbox, "cache-shared", 6 * 1024 * 1024);
    let first = registry_image_of_size(&sandbox, "cache-first", 2 * 1024 * 1024);
    let second = registry_image_of_size(&sandbox, "cache-second", 2 * 1024 * 1024);
    let archive = tempfile::tempdir().unwrap();
    // Both start with the shared image, so both want its blobs at the same moment.
    let (a, b) = std::thread::scope(|scope| {
        let a = scope.spawn(|| pull(&home, archive.path(), "oci", &[&shared, &first]));
        let b = scope.spawn(|| pull(&home, archive.path(), "oci", &[&shared, &second]));
        (a.join().unwrap(), b.join().unwrap())
    });
    a.assert_success();
    b.assert_success();
    let (blobs, corrupt) = corrupt_cached_blobs(archive.path());
    println!("two pulls at once: {blobs} cached blobs, {corrupt} corrupt");
    assert_eq!(corrupt, 0);
    // Both runs' entries are in index.json: neither write dropped the other's.
    let index: Value =
        serde_json::from_slice(&fs::read(archive.path().join("index.json")).unwrap()).unwrap();
    let names: Vec<&str> = index["manifests"]
        .as_array()
        .expect("manifests")
        .iter()
        .filter_map(|entry| entry["annotations"]["io.containerd.image.name"].as_str())
        .collect();
    for image in [&shared, &first, &second] {
        assert!(names.contains(&image.as_str()), "{image} in {names:?}");
    }
}

#[test]
fn a_corrupted_cached_blob_is_fetched_again_before_it_is_linked_or_used() {
    let sandbox = sandbox();
    let home = TestHome::new(&sandbox);
    let image = registry_image_of_size(&sandbox, "cache-corrupt", 1024 * 1024);
    let archive = tempfile::tempdir().unwrap();
    let first = pull(&home, archive.path(), "dir", &[&image]);
    first.assert_success();
    let layer = biggest_blob(archive.path());
    let layer_size = fs::metadata(&layer).unwrap().len();
    let hex = layer.file_name().unwrap().to_string_lossy().into_owned();

    for format in ["dir", "oci"] {
        flip_a_byte(&layer);
        assert_ne!(sha256_hex(&layer), hex, "the flip changed the blob");
        let again = pull(&home, archive.path(), format, &[&image]);
        again.assert_success();
        let report = json(&again);
        let downloaded = report["downloaded_bytes"]
            .as_u64()
            .expect("downloaded_bytes");
        assert!(
            downloaded >= layer_size,
            "{format}: the corrupt layer ({layer_size} bytes) was not fetched again: {again}"
        );
        assert_eq!(
            sha256_hex(&layer),
            hex,
            "{format}: the cache holds the layer again"
        );
        assert_eq!(corrupt_cached_blobs(archive.path()).1, 0, "{format}");
        if format == "dir" {
            let output = PathBuf::from(
                report["images"][0]["images"][0]["output"]
                    .as_str()
                    .expect("output dir"),
            );
            assert_eq!(
                sha256_hex(&output.join(&hex)),
                hex,
                "the dir output links the good layer: {again}"
            );
        }
    }
}

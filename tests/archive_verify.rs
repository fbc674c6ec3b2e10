//! `bunker archive verify` end to end through the binary: good archives pass,
//! every kind of damage is reported with its cause and exit status 1, and
//! `--rebuild-manifest` recreates a lost manifest.

mod archive_support;

use std::path::{Path, PathBuf};

use archive_support::*;
use bunker::archive::{ArchDir, ArchiveAction, Compression, Manifest, ManifestEntry, ManifestLock};

struct Fixture {
    _dir: tempfile::TempDir,
    base: PathBuf,
    arch: ArchDir,
    manifest: Manifest,
}

/// `<base>/x86_64` with tools/example_tool_1.0 (gzip), shared postgres:16 in two
/// projects (gzip and zstd) and a plain tar.
fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("images");
    let arch = ArchDir::new(base.join("x86_64"));
    let mut manifest = Manifest::new("x86_64");
    manifest.docker_context = Some("prod".into());
    let images = [
        ("tools", "example/tool:1.0", Compression::Gzip, 21),
        ("nginx", "postgres:16", Compression::Gzip, 22),
        ("nextcloud", "postgres:16", Compression::Zstd, 22),
        ("kv", "valkey/valkey:9", Compression::None, 23),
    ];
    for (project, image, compression, seed) in images {
        let tar = simple_tar(image, seed);
        let file = ArchDir::relative_file(project, image, compression);
        let written = write(
            &tar.bytes,
            &arch.resolve(&file),
            &options(compression, image),
        )
        .unwrap();
        let mut entry = ManifestEntry::from_written(project, image, &file, &written);
        entry.docker_id = Some(tar.config_digest.clone());
        entry.services = vec![format!("{project}-service")];
        entry.action = Some(ArchiveAction::PullSave);
        manifest.upsert(entry);
    }
    manifest.save_atomic(&arch.manifest_path()).unwrap();
    Fixture {
        _dir: dir,
        base,
        arch,
        manifest,
    }
}

fn verify(args: &[&str], dir: &Path) -> (i32, String, String) {
    let mut all = vec!["archive", "verify", "--archive-dir", dir.to_str().unwrap()];
    all.extend_from_slice(args);
    bunker(&all, dir.parent().unwrap())
}

#[test]
fn sound_archives_pass() {
    let fixture = fixture();
    let (code, stdout, stderr) = verify(&[], &fixture.base);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stdout.contains("ok   tools/example_tool+1.0.tar.gz  example/tool:1.0"),
        "{stdout}"
    );
    assert!(
        stdout.contains("ok   nextcloud/postgres+16.tar.zst  postgres:16"),
        "{stdout}"
    );
    assert!(stdout.contains("4 archive(s) checked, 0 bad"), "{stdout}");
    // The arch directory itself works as well.
    let (code, stdout, _) = verify(&[], fixture.arch.path());
    assert_eq!(code, 0, "{stdout}");
}

#[test]
fn a_flipped_byte_is_reported() {
    let fixture = fixture();
    let path = fixture.arch.resolve("tools/example_tool+1.0.tar.gz");
    let mut bytes = std::fs::read(&path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x20;
    std::fs::write(&path, &bytes).unwrap();
    let (code, stdout, stderr) = verify(&[], &fixture.base);
    assert_eq!(code, 1, "{stdout}{stderr}");
    let line = stdout
        .lines()
        .find(|line| line.contains("BAD  tools/example_tool+1.0.tar.gz"))
        .unwrap_or_else(|| panic!("no BAD line: {stdout}"));
    let recorded = &fixture
        .manifest
        .find("tools", "example/tool:1.0")
        .unwrap()
        .sha256;
    assert!(
        line.contains(&format!("the manifest says {recorded}")),
        "{line}"
    );
    assert!(line.contains("the gzip stream is broken"), "{line}");
    assert!(stdout.contains("4 archive(s) checked, 1 bad"), "{stdout}");
    assert!(stderr.contains("error: bad archives found"), "{stderr}");
}

#[test]
fn a_flipped_byte_in_a_plain_tar_is_caught_by_the_hash_and_the_layer_digest() {
    let fixture = fixture();
    let path = fixture.arch.resolve("kv/valkey_valkey+9.tar");
    let mut bytes = std::fs::read(&path).unwrap();
    let position = bytes
        .windows(8)
        .position(|window| window == b"bin/tool")
        .unwrap()
        + 5000;
    bytes[position] ^= 0x01;
    std::fs::write(&path, &bytes).unwrap();
    let (code, stdout, _) = verify(&[], &fixture.base);
    assert_eq!(code, 1, "{stdout}");
    let line = stdout
        .lines()
        .find(|line| line.contains("BAD  kv/"))
        .unwrap();
    assert!(line.contains("SHA-256 is"), "{line}");
    assert!(line.contains("but the config's diff ID is"), "{line}");
}

#[test]
fn a_truncated_file_is_reported() {
    let fixture = fixture();
    let path = fixture.arch.resolve("nextcloud/postgres+16.tar.zst");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 700]).unwrap();
    let (code, stdout, _) = verify(&[], &fixture.base);
    assert_eq!(code, 1, "{stdout}");
    let line = stdout
        .lines()
        .find(|line| line.contains("BAD  nextcloud/postgres+16.tar.zst"))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(
        line.contains(&format!("size is {} bytes", bytes.len() - 700)),
        "{line}"
    );
    assert!(line.contains("zstd stream is broken"), "{line}");
    // The same image in the other project is untouched.
    assert!(stdout.contains("ok   nginx/postgres+16.tar.gz"), "{stdout}");
}

#[test]
fn a_missing_file_is_reported() {
    let fixture = fixture();
    std::fs::remove_file(fixture.arch.resolve("nginx/postgres+16.tar.gz")).unwrap();
    let (code, stdout, _) = verify(&[], &fixture.base);
    assert_eq!(code, 1);
    assert!(
        stdout.contains("BAD  nginx/postgres+16.tar.gz  postgres:16: the file"),
        "{stdout}"
    );
    assert!(stdout.contains("is missing"), "{stdout}");
}

#[test]
fn json_output_lists_the_problems() {
    let fixture = fixture();
    std::fs::write(fixture.arch.resolve("tools/example_tool+1.0.tar.gz"), b"").unwrap();
    let (code, stdout, _) = verify(&["--json"], &fixture.base);
    assert_eq!(code, 1, "{stdout}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["ok"], false);
    assert_eq!(report["checked"], 4);
    assert_eq!(report["bad"], 1);
    let files = report["arch_dirs"][0]["files"].as_array().unwrap();
    let bad: Vec<_> = files
        .iter()
        .filter(|file| !file["problems"].as_array().unwrap().is_empty())
        .collect();
    assert_eq!(bad.len(), 1);
    assert_eq!(bad[0]["file"], "tools/example_tool+1.0.tar.gz");
}

#[test]
fn a_lost_manifest_is_reported_and_rebuilt() {
    let fixture = fixture();
    std::fs::remove_file(fixture.arch.manifest_path()).unwrap();
    let (code, stdout, stderr) = verify(&[], &fixture.base);
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(stderr.contains("has no manifest.json"), "{stderr}");
    assert!(stderr.contains("--rebuild-manifest"), "{stderr}");

    let (code, stdout, stderr) = verify(&["--rebuild-manifest"], &fixture.base);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("with 4 entries"), "{stdout}");
    let rebuilt = Manifest::load(&fixture.arch.manifest_path()).unwrap();
    assert_eq!(rebuilt.arch, "x86_64");
    assert_eq!(rebuilt.images.len(), 4);
    for original in &fixture.manifest.images {
        let entry = rebuilt
            .find(&original.project, &original.image)
            .unwrap_or_else(|| panic!("{} {} not rebuilt", original.project, original.image));
        assert_eq!(entry.file, original.file);
        assert_eq!(entry.size, original.size);
        assert_eq!(entry.sha256, original.sha256);
        assert_eq!(entry.layers, original.layers);
        assert_eq!(entry.uncompressed_sha256, original.uncompressed_sha256);
        assert_eq!(entry.compression, original.compression);
        assert_eq!(entry.platform, original.platform);
        assert_eq!(entry.docker_id, original.docker_id);
        assert_eq!(entry.action, None);
    }
}

#[test]
fn rebuilding_keeps_what_the_old_manifest_knew_and_adds_unlisted_files() {
    let fixture = fixture();
    let mut manifest = fixture.manifest.clone();
    manifest.remove("kv", "valkey/valkey:9");
    manifest.save_atomic(&fixture.arch.manifest_path()).unwrap();
    let (code, stdout, _) = verify(&[], &fixture.base);
    assert_eq!(code, 0, "{stdout}");
    assert!(
        stdout.contains("note kv/valkey_valkey+9.tar is not listed"),
        "{stdout}"
    );

    let (code, stdout, _) = verify(&["--rebuild-manifest"], fixture.arch.path());
    assert_eq!(code, 0, "{stdout}");
    let rebuilt = Manifest::load(&fixture.arch.manifest_path()).unwrap();
    assert_eq!(rebuilt.docker_context.as_deref(), Some("prod"));
    let tool = rebuilt.find("tools", "example/tool:1.0").unwrap();
    assert_eq!(tool.services, vec!["tools-service".to_string()]);
    assert_eq!(tool.action, Some(ArchiveAction::PullSave));
    assert!(rebuilt.find("kv", "valkey/valkey:9").is_some());
}

#[test]
fn a_file_that_is_not_an_archive_is_left_out_of_a_rebuild() {
    let fixture = fixture();
    std::fs::write(
        fixture.arch.resolve("tools/broken.tar.gz"),
        b"not gzip at all",
    )
    .unwrap();
    let (code, stdout, _) = verify(&["--rebuild-manifest"], &fixture.base);
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.contains("LEFT OUT tools/broken.tar.gz"), "{stdout}");
    assert!(stdout.contains("not a tar stream"), "{stdout}");
}

#[test]
fn a_held_lock_stops_a_rebuild() {
    let fixture = fixture();
    let _lock = ManifestLock::acquire(&fixture.arch).unwrap();
    let (code, _, stderr) = verify(&["--rebuild-manifest"], &fixture.base);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "is in use by another bunker run (pid {}",
            std::process::id()
        )),
        "{stderr}"
    );
}

#[test]
fn a_manifest_from_a_newer_bunker_is_refused() {
    let fixture = fixture();
    let path = fixture.arch.manifest_path();
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("\"schema_version\": 1", "\"schema_version\": 99");
    std::fs::write(&path, text).unwrap();
    let (code, _, stderr) = verify(&[], &fixture.base);
    assert_eq!(code, 1);
    assert!(
        stderr.contains(&format!("archive manifest {} is not valid", path.display())),
        "{stderr}"
    );
    assert!(stderr.contains("schema_version 99"), "{stderr}");
}

/// A file as the old scripts made it: `docker save | gzip` by the gzip binary, its
/// size from the file system and its SHA-256 from `sha256sum` (hashlib over the
/// compressed bytes), none of it from bunker's writer.
fn old_tool_file(arch: &ArchDir, file: &str, image: &str, seed: u64) -> (u64, String) {
    let path = arch.resolve(file);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let tar = simple_tar(image, seed);
    let mut gzip = std::process::Command::new("gzip")
        .args(["-c", "-6"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::fs::File::create(&path).unwrap())
        .spawn()
        .expect("gzip is installed");
    std::io::Write::write_all(gzip.stdin.as_mut().unwrap(), &tar.bytes).unwrap();
    drop(gzip.stdin.take());
    assert!(gzip.wait().unwrap().success());
    let summed = std::process::Command::new("sha256sum")
        .arg(&path)
        .output()
        .unwrap();
    assert!(summed.status.success());
    let sha256 = String::from_utf8(summed.stdout).unwrap()[..64].to_string();
    (std::fs::metadata(&path).unwrap().len(), sha256)
}

#[test]
fn the_old_tools_manifests_verify() {
    let fixture = fixture();
    let (size, sha256) = old_tool_file(
        &fixture.arch,
        "legacy/example_legacy_2.0.tar.gz",
        "example/legacy:2.0",
        31,
    );
    let (bad_size, bad_sha256) = old_tool_file(
        &fixture.arch,
        "legacy/example_other_3.0.tar.gz",
        "example/other:3.0",
        32,
    );
    // The shape the old scripts wrote (formats: peer-weaknesses.md §3): no
    // schema_version, no docker_id, no uncompressed hashes, no layer digests.
    let old = serde_json::json!({
        "archived_at": "2026-11-22T10:37:01.226377+00:00",
        "arch": "x86_64",
        "docker_context": "fakehost",
        "ssh_host": "fakehost",
        "output_dir": "/abs/path/_archive/images/x86_64",
        "images": [
            {
                "project": "legacy", "image": "example/legacy:2.0", "action": "pull+save",
                "file": "legacy/example_legacy_2.0.tar.gz", "size": size, "sha256": sha256,
                "services": ["legacy"],
                "archived_at": "2026-11-22T10:36:59.650816+00:00"
            },
            {
                "project": "legacy", "image": "example/other:3.0", "action": "pull+save",
                "file": "legacy/example_other_3.0.tar.gz", "size": bad_size, "sha256": bad_sha256,
                "services": ["other"],
                "archived_at": "2026-11-22T10:36:59.650816+00:00"
            }
        ]
    });
    std::fs::write(fixture.arch.manifest_path(), old.to_string()).unwrap();
    let (code, stdout, stderr) = verify(&[], &fixture.base);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("2 archive(s) checked, 0 bad"), "{stdout}");

    // The old manifest's own hash is what catches damage.
    let damaged = fixture.arch.resolve("legacy/example_other_3.0.tar.gz");
    let mut bytes = std::fs::read(&damaged).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x20;
    std::fs::write(&damaged, &bytes).unwrap();
    let (code, stdout, stderr) = verify(&[], &fixture.base);
    assert_eq!(code, 1, "{stdout}{stderr}");
    let line = stdout
        .lines()
        .find(|line| line.contains("BAD  legacy/example_other_3.0.tar.gz"))
        .unwrap_or_else(|| panic!("no BAD line: {stdout}"));
    assert!(
        line.contains(&format!("the manifest says {bad_sha256}")),
        "{line}"
    );
    assert!(stdout.contains("2 archive(s) checked, 1 bad"), "{stdout}");
}

#[test]
fn the_archive_dir_defaults_to_image_archive_dir() {
    let fixture = fixture();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_bunker"))
        .args(["archive", "verify"])
        .current_dir(fixture.base.parent().unwrap())
        .env("HOME", fixture.base.parent().unwrap())
        .env("IMAGE_ARCHIVE_DIR", &fixture.base)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("4 archive(s) checked, 0 bad"), "{stdout}");
}

#[test]
fn a_missing_archive_directory_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nowhere");
    let (code, _, stderr) = verify(&[], &missing);
    assert_eq!(code, 1);
    assert!(
        stderr.contains(&format!(
            "archive directory {} cannot be read",
            missing.display()
        )),
        "{stderr}"
    );
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let (code, _, stderr) = verify(&[], &empty);
    assert_eq!(code, 1);
    assert!(stderr.contains("no archives under"), "{stderr}");
}

//! Archives made from the sandbox engine for the restore, install and drill tests:
//! `docker save` streamed through bunker's archive writer into the usual layout
//! (`<base>/<arch>/<project>/<file>` + manifest.json), exactly what `image-archive`
//! records.
#![allow(dead_code)] // Each test crate uses a different subset of these helpers.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use bunker::archive::{
    ArchDir, ArchiveAction, ArchiveLayout, Compression, ExpectedImage, Manifest, ManifestEntry,
    WriteOptions, write_archive,
};

use crate::common::{BunkerCommand, Output, Sandbox, TestHome, docker_ok, image_id, json_entry};

/// One image to archive for a project.
pub struct ToArchive<'a> {
    pub project: &'a str,
    pub image: &'a str,
    pub compression: Compression,
}

pub fn gz<'a>(project: &'a str, image: &'a str) -> ToArchive<'a> {
    ToArchive {
        project,
        image,
        compression: Compression::Gzip,
    }
}

pub fn zst<'a>(project: &'a str, image: &'a str) -> ToArchive<'a> {
    ToArchive {
        project,
        image,
        compression: Compression::Zstd,
    }
}

/// Archived as a plain tar (no compression).
pub fn plain<'a>(project: &'a str, image: &'a str) -> ToArchive<'a> {
    ToArchive {
        project,
        image,
        compression: Compression::None,
    }
}

/// Archives `images` from the engine at `docker_host` under `base/<arch>`, adding them
/// to (or creating) that manifest. Returns the arch directory.
pub fn archive_images(
    docker_host: &str,
    base: &Path,
    arch: &str,
    images: &[ToArchive<'_>],
) -> ArchDir {
    let arch_dir = ArchiveLayout::new(base).arch_dir(arch);
    let mut manifest = Manifest::load_or_new(&arch_dir.manifest_path(), arch).unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    for wanted in images {
        let id = engine_image_id(docker_host, wanted.image)
            .unwrap_or_else(|| panic!("{} is not on the engine {docker_host}", wanted.image));
        let file = ArchDir::relative_file(wanted.project, wanted.image, wanted.compression);
        let destination = arch_dir.resolve(&file);
        let written = runtime.block_on(async {
            let mut save = tokio::process::Command::new("docker")
                .args(["save", wanted.image])
                .env("DOCKER_HOST", docker_host)
                .stdout(Stdio::piped())
                .spawn()
                .unwrap();
            let stream = tokio_util::io::ReaderStream::new(save.stdout.take().unwrap());
            let options = WriteOptions {
                compression: wanted.compression,
                level: Some(1),
                threads: 0,
                expected: ExpectedImage {
                    reference: Some(wanted.image.to_string()),
                    image_id: Some(id.clone()),
                },
            };
            let written = write_archive(stream, &destination, &options, |_| {}).await;
            assert!(
                save.wait().await.unwrap().success(),
                "docker save {} failed",
                wanted.image
            );
            written.unwrap()
        });
        let mut entry = ManifestEntry::from_written(wanted.project, wanted.image, &file, &written);
        entry.docker_id = Some(id);
        entry.action = Some(ArchiveAction::PullSave);
        manifest.upsert(entry);
    }
    manifest.save_atomic(&arch_dir.manifest_path()).unwrap();
    arch_dir
}

/// Image ID on the engine at `docker_host`, None when absent.
pub fn engine_image_id(docker_host: &str, image: &str) -> Option<String> {
    let output = std::process::Command::new("docker")
        .args(["image", "inspect", "-f", "{{.Id}}", image])
        .env("DOCKER_HOST", docker_host)
        .output()
        .unwrap();
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_string())
}

/// Archives from the sandbox engine.
pub fn archive_from_sandbox(sandbox: &Sandbox, base: &Path, images: &[ToArchive<'_>]) -> ArchDir {
    archive_images(&sandbox.docker_host, base, "x86_64", images)
}

/// Removes images by name from the sandbox engine (all must exist).
pub fn remove_images(sandbox: &Sandbox, images: &[&str]) {
    for image in images {
        docker_ok(sandbox, ["rmi", image]);
        assert_eq!(image_id(sandbox, image), None, "{image} is still there");
    }
}

/// Flips one byte in the middle of `path`.
pub fn flip_byte(path: &PathBuf) {
    let mut bytes = std::fs::read(path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x55;
    std::fs::write(path, bytes).unwrap();
}

/// The image-load events the engine recorded since `since` (unix seconds) for the image
/// IDs `ids` (other tests load other images on the shared engine meanwhile).
pub fn load_events(sandbox: &Sandbox, since: u64, ids: &[String]) -> Vec<String> {
    image_events(sandbox, since, &["event=load"], "{{.Actor.ID}}")
        .into_iter()
        .filter(|line| ids.contains(line))
        .collect()
}

/// The image events the engine recorded between `since` (unix seconds) and now, one
/// line each as `docker events --format format`, narrowed by the `--filter`s `filters`
/// (`event=load`) besides `type=image`.
pub fn image_events(sandbox: &Sandbox, since: u64, filters: &[&str], format: &str) -> Vec<String> {
    let until = now_seconds() + 1;
    let mut args = vec![
        "events".to_string(),
        "--since".to_string(),
        since.to_string(),
        "--until".to_string(),
        until.to_string(),
        "--filter".to_string(),
        "type=image".to_string(),
    ];
    for filter in filters {
        args.extend(["--filter".to_string(), filter.to_string()]);
    }
    args.extend(["--format".to_string(), format.to_string()]);
    docker_ok(sandbox, args)
        .lines()
        .map(str::to_string)
        .collect()
}

/// `bunker image-restore --archive-dir <arch_dir>` on the sandbox engine over SSH, more
/// arguments still to add.
pub fn restore_command(home: &TestHome, sandbox: &Sandbox, arch_dir: &Path) -> BunkerCommand {
    home.bunker()
        .remote(sandbox)
        .args(["image-restore", "--archive-dir"])
        .arg(arch_dir)
}

/// `bunker image-restore --archive-dir <arch_dir> <extra>` over SSH, run.
pub fn restore(home: &TestHome, sandbox: &Sandbox, arch_dir: &Path, extra: &[&str]) -> Output {
    restore_command(home, sandbox, arch_dir).args(extra).run()
}

/// The JSON report on stdout of `image-restore --json`.
#[track_caller]
pub fn json_report(output: &Output) -> serde_json::Value {
    serde_json::from_str(&output.stdout)
        .unwrap_or_else(|error| panic!("not JSON ({error}):\n{output}"))
}

/// The report's row for `image`.
#[track_caller]
pub fn report_row<'a>(report: &'a serde_json::Value, image: &str) -> &'a serde_json::Value {
    json_entry(report, "images", "image", image)
}

pub fn now_seconds() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

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

use crate::common::{Sandbox, docker_ok, image_id};

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
    let until = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 1;
    let output = docker_ok(
        sandbox,
        [
            "events",
            "--since",
            &since.to_string(),
            "--until",
            &until.to_string(),
            "--filter",
            "type=image",
            "--filter",
            "event=load",
            "--format",
            "{{.Actor.ID}}",
        ],
    );
    output
        .lines()
        .map(str::to_string)
        .filter(|line| ids.contains(line))
        .collect()
}

pub fn now_seconds() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

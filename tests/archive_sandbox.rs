//! The archive writer against the real sandbox engine: `docker save` piped
//! into the writer gives a .tar.gz that `docker load` accepts, restoring the
//! same image ID; `archive verify` passes and the reader streams the tar back
//! unchanged.

mod archive_support;
mod common;

use std::process::Stdio;

use archive_support::{sha256_hex, shell};
use bunker::archive::{
    ArchDir, ArchiveAction, Compression, ExpectedFile, ExpectedImage, Manifest, ManifestEntry,
    WriteOptions, open_archive, write_archive,
};
use common::{build_unique_image, docker, docker_ok, sandbox, unique_name};
use futures_util::StreamExt;

#[test]
fn docker_save_through_the_writer_loads_back_as_the_same_image() {
    let sandbox = sandbox();
    let tag = format!("{}:1", unique_name("bunker-test/archive"));
    let image_id = build_unique_image(&sandbox, &tag);

    let archive = tempfile::tempdir().unwrap();
    let arch = ArchDir::new(archive.path().join("x86_64"));
    let file = ArchDir::relative_file("sandbox", &tag, Compression::Gzip);
    let destination = arch.resolve(&file);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let written = runtime.block_on(async {
        let mut save = tokio::process::Command::new("docker")
            .args(["save", &tag])
            .env("DOCKER_HOST", &sandbox.docker_host)
            .env("DOCKER_CONFIG", sandbox.dir.join("docker-client"))
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stream = tokio_util::io::ReaderStream::new(save.stdout.take().unwrap());
        let options = WriteOptions {
            compression: Compression::Gzip,
            level: None,
            threads: 0,
            expected: ExpectedImage {
                reference: Some(tag.clone()),
                image_id: Some(image_id.clone()),
            },
        };
        let written = write_archive(stream, &destination, &options, |_| {}).await;
        assert!(save.wait().await.unwrap().success(), "docker save failed");
        written.unwrap()
    });
    assert_eq!(written.image.config_digest, image_id);
    assert_eq!(written.image.repo_tags, vec![tag.clone()]);
    shell(&format!("gzip -t '{}'", destination.display()));

    let mut entry = ManifestEntry::from_written("sandbox", &tag, &file, &written);
    entry.docker_id = Some(image_id.clone());
    entry.action = Some(ArchiveAction::BuildSave);
    let mut manifest = Manifest::new("x86_64");
    manifest.upsert(entry.clone());
    manifest.save_atomic(&arch.manifest_path()).unwrap();
    let (code, stdout, stderr) = archive_support::bunker(
        &[
            "archive",
            "verify",
            "--archive-dir",
            archive.path().to_str().unwrap(),
        ],
        archive.path(),
    );
    assert_eq!(code, 0, "{stdout}{stderr}");

    let read_back = runtime.block_on(async {
        let mut stream = open_archive(&destination, ExpectedFile::from_entry(&entry)).unwrap();
        let mut tar = Vec::new();
        while let Some(chunk) = stream.next().await {
            tar.extend_from_slice(&chunk.unwrap());
        }
        tar
    });
    assert_eq!(sha256_hex(&read_back), written.uncompressed_sha256);

    docker_ok(&sandbox, ["rmi", &tag]);
    assert!(
        !docker(&sandbox, ["image", "inspect", &image_id]).success(),
        "the image is still on the engine after rmi"
    );
    docker_ok(&sandbox, ["load", "-i", destination.to_str().unwrap()]);
    let loaded_id = docker_ok(&sandbox, ["image", "inspect", "-f", "{{.Id}}", &tag]);
    docker_ok(&sandbox, ["rmi", &tag]);
    assert_eq!(loaded_id, image_id);
}

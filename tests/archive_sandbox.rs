//! The archive writer against the real sandbox engine: `docker save` piped
//! into the writer gives a .tar.gz that `docker load` accepts, restoring the
//! same image ID; the reader streams it back unchanged.

mod archive_support;

use std::process::Stdio;

use archive_support::*;
use bunker::archive::{
    ArchDir, ArchiveAction, Compression, ExpectedFile, ExpectedImage, Manifest, ManifestEntry,
    WriteOptions, open_archive, write_archive,
};
use futures_util::StreamExt;

#[test]
fn docker_save_through_the_writer_loads_back_as_the_same_image() {
    let (host, seed) = sandbox_engine();
    let unique = format!(
        "{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    let tag = format!("bunker-test/archive-{unique}:1");
    let context = tempfile::tempdir().unwrap();
    std::fs::write(context.path().join("unique.txt"), &unique).unwrap();
    std::fs::write(
        context.path().join("Dockerfile"),
        format!("FROM {seed}\nCOPY unique.txt /unique.txt\n"),
    )
    .unwrap();
    docker(
        &host,
        &["build", "-q", "-t", &tag, context.path().to_str().unwrap()],
    );
    let image_id = docker(&host, &["image", "inspect", "-f", "{{.Id}}", &tag]);

    let archive = tempfile::tempdir().unwrap();
    let arch = ArchDir::new(archive.path().join("x86_64"));
    let file = ArchDir::relative_file("sandbox", &tag, Compression::Gzip);
    let destination = arch.resolve(&file);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let written = runtime.block_on(async {
        let mut save = tokio::process::Command::new("docker")
            .args(["save", &tag])
            .env("DOCKER_HOST", &host)
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
    let (code, stdout, stderr) = bunker(
        &[
            "archive",
            "verify",
            "--archive-dir",
            archive.path().to_str().unwrap(),
        ],
        archive.path(),
    );
    assert_eq!(code, 0, "{stdout}{stderr}");

    // The reader gives back exactly the tar the engine produced.
    let read_back_sha = runtime.block_on(async {
        let mut stream = open_archive(&destination, ExpectedFile::from_entry(&entry)).unwrap();
        let mut hashed = Vec::new();
        while let Some(chunk) = stream.next().await {
            hashed.extend_from_slice(&chunk.unwrap());
        }
        sha256_hex(&hashed)
    });
    assert_eq!(read_back_sha, written.uncompressed_sha256);

    docker(&host, &["rmi", &tag]);
    let gone = std::process::Command::new("docker")
        .args(["image", "inspect", &image_id])
        .env("DOCKER_HOST", &host)
        .output()
        .unwrap();
    assert!(
        !gone.status.success(),
        "the image is still on the engine after rmi"
    );
    docker(&host, &["load", "-i", destination.to_str().unwrap()]);
    let loaded_id = docker(&host, &["image", "inspect", "-f", "{{.Id}}", &tag]);
    docker(&host, &["rmi", &tag]);
    assert_eq!(loaded_id, image_id);
}

//! The archive reader: the decompressed tar comes back byte for byte, and a
//! corrupt file never delivers its final chunk.

mod archive_support;

use std::path::Path;

use archive_support::*;
use bunker::archive::{Compression, ExpectedFile, ManifestEntry, open_archive};
use futures_util::StreamExt;

/// Reads the whole stream: the bytes delivered and the error it ended with, if any.
fn read_all(path: &Path, expected: ExpectedFile) -> (Vec<u8>, Option<std::io::Error>) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let mut stream = open_archive(path, expected).unwrap();
        let mut bytes = Vec::new();
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(chunk) => bytes.extend_from_slice(&chunk),
                Err(error) => return (bytes, Some(error)),
            }
        }
        (bytes, None)
    })
}

/// [`simple_tar`] of example/tool:1.0 archived under `dir`, with its manifest entry.
fn archived(dir: &Path, compression: Compression, seed: u64) -> (SaveTar, ManifestEntry) {
    archive_tar(dir, compression, simple_tar("example/tool:1.0", seed))
}

/// `tar` (of example/tool:1.0) archived with `compression` as project `tools` under
/// `dir`, with the manifest entry recording it.
fn archive_tar(dir: &Path, compression: Compression, tar: SaveTar) -> (SaveTar, ManifestEntry) {
    let file = format!("tools/example_tool_1.0{}", compression.extension());
    let written = write(
        &tar.bytes,
        &dir.join(&file),
        &options(compression, "example/tool:1.0"),
    )
    .unwrap();
    let mut entry = ManifestEntry::from_written("tools", "example/tool:1.0", &file, &written);
    entry.docker_id = Some(tar.config_digest.clone());
    (tar, entry)
}

#[test]
fn every_compression_reads_back_the_exact_tar() {
    for compression in [Compression::Gzip, Compression::Zstd, Compression::None] {
        let dir = tempfile::tempdir().unwrap();
        let (tar, entry) = archived(dir.path(), compression, 11);
        let path = dir.path().join(&entry.file);
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let (bytes, scan) = runtime.block_on(async {
            let mut stream = open_archive(&path, ExpectedFile::from_entry(&entry)).unwrap();
            let scan = stream.take_scan().unwrap();
            let mut bytes = Vec::new();
            while let Some(chunk) = stream.next().await {
                bytes.extend_from_slice(&chunk.unwrap());
            }
            (bytes, scan.await.unwrap())
        });
        assert!(
            bytes == tar.bytes,
            "{compression}: the tar read back differs"
        );
        assert_eq!(scan.compression, compression);
        assert_eq!(scan.sha256, entry.sha256);
        assert_eq!(scan.image.unwrap().diff_ids, tar.diff_ids);
    }
}

#[test]
fn compression_is_detected_from_the_content_not_the_name() {
    let dir = tempfile::tempdir().unwrap();
    let (tar, entry) = archived(dir.path(), Compression::Zstd, 12);
    let misnamed = dir.path().join("tools/misnamed.tar.gz");
    std::fs::rename(dir.path().join(&entry.file), &misnamed).unwrap();
    let (bytes, error) = read_all(&misnamed, ExpectedFile::from_entry(&entry));
    assert!(error.is_none(), "{error:?}");
    assert!(bytes == tar.bytes);
}

/// The reader's chunk: everything but the last chunk of the tar may be delivered
/// before the file is known to be sound (README: "holding back the last 256 KiB").
const CHUNK: usize = 256 << 10;

/// Like [`archived`], with a tar of several chunks (a 900 KB layer).
fn archived_large(dir: &Path, compression: Compression) -> (SaveTar, ManifestEntry) {
    let tar = docker_save_tar(&TarSpec::new(
        "example/tool:1.0",
        vec![layer(&[("big", payload(900_000, 15))])],
    ));
    archive_tar(dir, compression, tar)
}

#[test]
fn a_flipped_byte_withholds_exactly_the_final_chunk() {
    for compression in [Compression::Gzip, Compression::None] {
        let dir = tempfile::tempdir().unwrap();
        let (tar, entry) = archived_large(dir.path(), compression);
        assert!(
            tar.bytes.len() > 3 * CHUNK,
            "the tar must span several chunks"
        );
        let final_chunk_start = (tar.bytes.len() - 1) / CHUNK * CHUNK;
        let path = dir.path().join(&entry.file);
        let mut bytes = std::fs::read(&path).unwrap();
        // A byte inside the last member's data: the stored file still decompresses
        // (plain tar) or fails its CRC (gzip); either way the end must be withheld.
        let position = bytes.len() - 1500;
        bytes[position] ^= 0x01;
        std::fs::write(&path, &bytes).unwrap();
        let (delivered, error) = read_all(&path, ExpectedFile::from_entry(&entry));
        let error =
            error.unwrap_or_else(|| panic!("{compression}: corrupt file read without error"));
        let message = error.to_string();
        assert_eq!(error.kind(), std::io::ErrorKind::InvalidData, "{message}");
        assert!(
            message.contains(&format!("archive {} is corrupt", path.display())),
            "{message}"
        );
        if compression == Compression::None {
            // The promise, exactly: every chunk but the last, byte for byte, then the error.
            assert_eq!(
                delivered.len(),
                final_chunk_start,
                "plain: not exactly the final chunk was withheld"
            );
            assert!(delivered == tar.bytes[..final_chunk_start]);
            assert!(message.contains("SHA-256 is"), "{message}");
        } else {
            // gzip fails its CRC at the very end: the decompressor's last read never
            // reaches the consumer, so at most the chunks before the final one arrive.
            assert!(
                delivered.len() <= final_chunk_start,
                "gzip: {} bytes delivered, the final chunk starts at {final_chunk_start}",
                delivered.len()
            );
            assert!(
                !delivered.is_empty(),
                "gzip: nothing was streamed, the test no longer shows the held-back tail"
            );
            assert!(delivered == tar.bytes[..delivered.len()]);
        }
    }
}

#[test]
fn a_truncated_file_ends_with_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let (tar, entry) = archived(dir.path(), Compression::Gzip, 14);
    let path = dir.path().join(&entry.file);
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() * 2 / 3]).unwrap();
    let (delivered, error) = read_all(&path, ExpectedFile::from_entry(&entry));
    let message = error
        .expect("truncated file read without error")
        .to_string();
    assert!(message.contains("truncated"), "{message}");
    assert!(message.contains("size is"), "{message}");
    assert!(delivered.len() < tar.bytes.len());
}

#[test]
fn a_missing_file_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let path = dir.path().join("nothing.tar.gz");
    let error = runtime
        .block_on(async { open_archive(&path, ExpectedFile::default()).map(|_| ()) })
        .unwrap_err();
    assert!(
        error
            .to_string()
            .contains(&format!("cannot read archive {}", path.display())),
        "{error}"
    );
}

//! Opens an archive file as a stream of the decompressed `docker save` tar,
//! checked against its manifest entry on the way, and checks a whole local
//! file before anything is streamed from it ([`check_file`]).
//!
//! The file's size and SHA-256 (and the tar's, when recorded) are only known
//! at the end, so the stream holds back its last chunk until they match: a
//! consumer such as `docker load` never receives a complete tar from a
//! corrupt file; it receives an error instead of the final bytes. Decompression
//! runs on a blocking thread behind a bounded channel, so memory stays at a
//! few chunks whatever the image size.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::Stream;
use tokio::sync::{mpsc, oneshot};

use super::digest::Hashed;
use super::docker_tar::ExpectedImage;
use super::manifest::ManifestEntry;
use super::scan::{ArchiveScan, ArchiveScanner, scan_archive};

/// Bytes per chunk of a stream read from an archive file.
pub const CHUNK_BYTES: usize = 256 << 10;
const CHANNEL_CHUNKS: usize = 8;
const CHECK_BUFFER_BYTES: usize = 1 << 20;

/// What the file must match before its last chunk is released.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExpectedFile {
    /// Size of the file as stored.
    pub size: u64,
    /// Hex SHA-256 of the file as stored; empty when none was recorded (old manifests).
    pub sha256: String,
    pub uncompressed_size: Option<u64>,
    pub uncompressed_sha256: Option<String>,
    /// The image the tar must hold.
    pub image: ExpectedImage,
}

impl ExpectedFile {
    /// Everything a manifest entry records about its file and image.
    pub fn from_entry(entry: &ManifestEntry) -> ExpectedFile {
        ExpectedFile {
            size: entry.size,
            sha256: entry.sha256.clone(),
            uncompressed_size: entry.uncompressed_size,
            uncompressed_sha256: entry.uncompressed_sha256.clone(),
            image: ExpectedImage {
                reference: Some(entry.image.clone()),
                image_id: entry.docker_id.clone(),
            },
        }
    }

    /// How a stored file of `size` bytes differs from the recorded size and, when
    /// `sha256` is given, from the recorded SHA-256; empty when it matches.
    pub fn stored_mismatches(&self, size: u64, sha256: Option<&str>) -> Vec<String> {
        let mut problems = Vec::new();
        if size != self.size {
            problems.push(format!(
                "size is {size} bytes, the manifest says {}",
                self.size
            ));
        }
        if let Some(sha256) = sha256
            && sha256 != self.sha256
        {
            problems.push(format!(
                "SHA-256 is {sha256}, the manifest says {}",
                self.sha256
            ));
        }
        problems
    }

    /// How a finished scan differs from what was expected; empty when it matches.
    pub fn mismatches(&self, scan: &ArchiveScan) -> Vec<String> {
        let recorded_sha256 = (!self.sha256.is_empty()).then_some(scan.sha256.as_str());
        let mut problems = self.stored_mismatches(scan.size, recorded_sha256);
        problems.extend(scan.problems());
        if scan.decompression_error.is_none() {
            if let Some(size) = self.uncompressed_size
                && size != scan.uncompressed_size
            {
                problems.push(format!(
                    "the tar is {} bytes, the manifest says {size}",
                    scan.uncompressed_size
                ));
            }
            if let Some(sha256) = &self.uncompressed_sha256
                && *sha256 != scan.uncompressed_sha256
            {
                problems.push(format!(
                    "the tar's SHA-256 is {}, the manifest says {sha256}",
                    scan.uncompressed_sha256
                ));
            }
        }
        problems
    }
}

/// The decompressed tar of an archive file, as a stream of chunks.
pub struct ArchiveStream {
    chunks: mpsc::Receiver<io::Result<Bytes>>,
    scan: Option<oneshot::Receiver<ArchiveScan>>,
}

impl ArchiveStream {
    /// Resolves, once the stream has ended cleanly, to what the file held.
    /// Take it before handing the stream on; it can be taken once.
    pub fn take_scan(&mut self) -> Option<oneshot::Receiver<ArchiveScan>> {
        self.scan.take()
    }
}

impl Stream for ArchiveStream {
    type Item = io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.chunks.poll_recv(context)
    }
}

/// Opens an archive file as a stream of its decompressed tar (gzip, zstd or
/// plain, detected from the file's first bytes). The last chunk comes only
/// after the file matched `expected`; otherwise the stream ends with an
/// `InvalidData` error naming the file and every mismatch. Must be called
/// inside a tokio runtime.
pub fn open_archive(path: &Path, expected: ExpectedFile) -> io::Result<ArchiveStream> {
    let scanner = ArchiveScanner::open(path, expected.image.clone())
        .map_err(|error| read_error(path, error))?;
    let (chunk_sender, chunks) = mpsc::channel(CHANNEL_CHUNKS);
    let (scan_sender, scan) = oneshot::channel();
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || {
        pump(scanner, &path, &expected, &chunk_sender, scan_sender)
    });
    Ok(ArchiveStream {
        chunks,
        scan: Some(scan),
    })
}

fn pump(
    mut scanner: ArchiveScanner,
    path: &Path,
    expected: &ExpectedFile,
    sender: &mpsc::Sender<io::Result<Bytes>>,
    scan_sender: oneshot::Sender<ArchiveScan>,
) {
    let mut held_back: Option<Bytes> = None;
    loop {
        let chunk = match read_chunk(&mut scanner) {
            Ok(Some(chunk)) => chunk,
            Ok(None) => break,
            // The scan reports the error with the hash check below.
            Err(_) => break,
        };
        if let Some(previous) = held_back.replace(chunk)
            && sender.blocking_send(Ok(previous)).is_err()
        {
            return;
        }
    }
    let scan = match scanner.finish() {
        Ok(scan) => scan,
        Err(error) => {
            let _ = sender.blocking_send(Err(read_error(path, error)));
            return;
        }
    };
    let mismatches = expected.mismatches(&scan);
    if !mismatches.is_empty() {
        let _ = sender.blocking_send(Err(corrupt_error(path, &mismatches)));
        return;
    }
    if let Some(last) = held_back
        && sender.blocking_send(Ok(last)).is_err()
    {
        return;
    }
    let _ = scan_sender.send(scan);
}

/// `error` from opening or reading the archive file at `path`, naming the file.
pub fn read_error(path: &Path, error: io::Error) -> io::Error {
    io::Error::new(
        error.kind(),
        format!("cannot read archive {}: {error}", path.display()),
    )
}

/// The error for a file that does not match its manifest entry.
pub fn corrupt_error(path: &Path, mismatches: &[String]) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!(
            "archive {} is corrupt: {}; re-archive the image or restore this file from a backup",
            path.display(),
            mismatches.join("; ")
        ),
    )
}

/// Checks a whole local file against `expected` before anything is sent from it.
/// With a recorded SHA-256 that is the size and one plain read of the stored bytes
/// (SHA-256 runs far faster than decompression, and the load that follows reads
/// from the page cache). Without one (older manifests) it is a full scan:
/// decompressed, every layer against its diff ID, the image ID against the
/// manifest's. Returns the mismatches, empty when the file matches. Blocking.
pub fn check_file(path: &Path, expected: &ExpectedFile) -> io::Result<Vec<String>> {
    if expected.sha256.is_empty() {
        let scan = scan_archive(path, expected.image.clone())?;
        return Ok(expected.mismatches(&scan));
    }
    let mut file = File::open(path)?;
    let problems = expected.stored_mismatches(file.metadata()?.len(), None);
    if !problems.is_empty() {
        return Ok(problems);
    }
    let mut hashed = Hashed::new();
    let mut buffer = vec![0u8; CHECK_BUFFER_BYTES];
    loop {
        let read = file.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        hashed.update(&buffer[..read]);
    }
    let (sha256, size) = hashed.finish();
    Ok(expected.stored_mismatches(size, Some(&sha256)))
}

/// Fills a chunk of up to [`CHUNK_BYTES`] from `reader` (the decompressor or a
/// stored file); `None` at the end.
pub fn read_chunk<R: Read>(reader: &mut R) -> io::Result<Option<Bytes>> {
    let mut buffer = vec![0u8; CHUNK_BYTES];
    let mut filled = 0;
    while filled < buffer.len() {
        let read = reader.read(&mut buffer[filled..])?;
        if read == 0 {
            break;
        }
        filled += read;
    }
    if filled == 0 {
        return Ok(None);
    }
    buffer.truncate(filled);
    Ok(Some(Bytes::from(buffer)))
}

/// Compile-time check that the stream feeds bollard's image load as it is.
#[cfg(test)]
const _: fn(bollard::Docker, ArchiveStream) = |docker, stream| {
    let options = bollard::query_parameters::ImportImageOptionsBuilder::new().build();
    drop(docker.import_image_stream(options, stream, None));
};

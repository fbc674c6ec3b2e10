//! Reads an archive file once: hashes the stored bytes, decompresses them
//! (compression detected from the magic bytes, not the name), hashes the tar
//! and inspects it, all in the same pass.
//!
//! [`ArchiveScanner`] is the shared engine of restore's streaming reader and of
//! `archive verify`: both need every byte checked and neither may read a file
//! twice.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use super::digest::{Hashed, HashingReader};
use super::docker_tar::{DockerImageInfo, DockerTarError, DockerTarInspector, ExpectedImage};
use super::layout::Compression;

const READ_BUFFER_BYTES: usize = 256 << 10;

type Source = BufReader<HashingReader<File>>;

enum Decoder {
    Gzip(Box<flate2::bufread::MultiGzDecoder<Source>>),
    Zstd(Box<zstd::stream::read::Decoder<'static, Source>>),
    Plain(Source),
}

impl Decoder {
    fn source(&mut self) -> &mut Source {
        match self {
            Decoder::Gzip(decoder) => decoder.get_mut(),
            Decoder::Zstd(decoder) => decoder.get_mut(),
            Decoder::Plain(source) => source,
        }
    }
}

impl Read for Decoder {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        match self {
            Decoder::Gzip(decoder) => decoder.read(buffer),
            Decoder::Zstd(decoder) => decoder.read(buffer),
            Decoder::Plain(source) => source.read(buffer),
        }
    }
}

/// The outcome of reading a whole archive file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveScan {
    pub path: PathBuf,
    /// Bytes of the file and their hex SHA-256.
    pub size: u64,
    pub sha256: String,
    /// The compression found in the file's first bytes.
    pub compression: Compression,
    /// Bytes of the tar that came out and their hex SHA-256 (up to the point of
    /// a decompression error, if there was one).
    pub uncompressed_size: u64,
    pub uncompressed_sha256: String,
    /// Why the compressed stream is not complete and clean, if it is not.
    pub decompression_error: Option<String>,
    /// The docker-save tar inspection: the image it holds or why it is not loadable.
    pub image: Result<DockerImageInfo, DockerTarError>,
}

impl ArchiveScan {
    /// Every problem found, as sentences for a report; empty when the file is sound.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if let Some(error) = &self.decompression_error {
            problems.push(format!(
                "the {} stream is broken: {error}",
                self.compression
            ));
        }
        // A broken stream also breaks the tar; reporting that as well adds nothing.
        if let (Err(error), None) = (&self.image, &self.decompression_error) {
            problems.push(format!("the tar inside is not loadable: {error}"));
        }
        problems
    }
}

/// Decompresses an archive file while hashing and inspecting it.
pub struct ArchiveScanner {
    path: PathBuf,
    decoder: Decoder,
    compression: Compression,
    tar: Hashed,
    inspector: DockerTarInspector,
    expected: ExpectedImage,
    decompression_error: Option<String>,
}

impl ArchiveScanner {
    /// Opens an archive; fails only when the file cannot be opened or read.
    pub fn open(path: &Path, expected: ExpectedImage) -> io::Result<ArchiveScanner> {
        let file = File::open(path)?;
        let mut source = BufReader::with_capacity(READ_BUFFER_BYTES, HashingReader::new(file));
        let compression = Compression::from_magic(source.fill_buf()?);
        let decoder = match compression {
            Compression::Gzip => {
                Decoder::Gzip(Box::new(flate2::bufread::MultiGzDecoder::new(source)))
            }
            Compression::Zstd => {
                Decoder::Zstd(Box::new(zstd::stream::read::Decoder::with_buffer(source)?))
            }
            Compression::None => Decoder::Plain(source),
        };
        Ok(ArchiveScanner {
            path: path.to_path_buf(),
            decoder,
            compression,
            tar: Hashed::new(),
            inspector: DockerTarInspector::new(),
            expected,
            decompression_error: None,
        })
    }

    pub fn compression(&self) -> Compression {
        self.compression
    }

    /// Reads whatever the decoder left (trailing bytes or the rest after an
    /// error) so the whole file is hashed, and reports the outcome.
    pub fn finish(mut self) -> io::Result<ArchiveScan> {
        let mut trailing: u64 = 0;
        let source = self.decoder.source();
        loop {
            let available = source.fill_buf()?;
            if available.is_empty() {
                break;
            }
            let length = available.len();
            trailing += length as u64;
            source.consume(length);
        }
        if trailing > 0
            && self.decompression_error.is_none()
            && self.compression != Compression::None
        {
            self.decompression_error = Some(format!(
                "{trailing} bytes of unexpected data follow the compressed stream"
            ));
        }
        let hashed = match self.decoder {
            Decoder::Gzip(decoder) => decoder.into_inner(),
            Decoder::Zstd(decoder) => decoder.finish(),
            Decoder::Plain(source) => source,
        }
        .into_inner()
        .into_hashed();
        let (sha256, size) = hashed.finish();
        let (uncompressed_sha256, uncompressed_size) = self.tar.finish();
        Ok(ArchiveScan {
            path: self.path,
            size,
            sha256,
            compression: self.compression,
            uncompressed_size,
            uncompressed_sha256,
            decompression_error: self.decompression_error,
            image: self.inspector.finish(&self.expected),
        })
    }
}

/// The decompressed tar, hashed and inspected as it is read.
impl Read for ArchiveScanner {
    /// Reads the next decompressed bytes into `buffer` (0 at the end). A
    /// decompression or read error is returned once and kept for
    /// [`finish`](Self::finish); later calls return 0.
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        if self.decompression_error.is_some() {
            return Ok(0);
        }
        match self.decoder.read(buffer) {
            Ok(read) => {
                let bytes = &buffer[..read];
                self.tar.update(bytes);
                // The inspector keeps its first error for `finish`; reading goes on
                // so the file is still hashed to the end.
                let _ = self.inspector.feed(bytes);
                Ok(read)
            }
            Err(error) if error.kind() == io::ErrorKind::Interrupted => self.read(buffer),
            Err(error) => {
                self.decompression_error = Some(describe_decompression_error(&error));
                Err(error)
            }
        }
    }
}

/// Reads a whole archive and reports on it (the core of `archive verify`).
pub fn scan_archive(path: &Path, expected: ExpectedImage) -> io::Result<ArchiveScan> {
    let mut scanner = ArchiveScanner::open(path, expected)?;
    let mut buffer = vec![0u8; READ_BUFFER_BYTES];
    // A read error is kept by the scanner and reported by `finish`.
    while let Ok(read) = scanner.read(&mut buffer) {
        if read == 0 {
            break;
        }
    }
    scanner.finish()
}

fn describe_decompression_error(error: &io::Error) -> String {
    if error.kind() == io::ErrorKind::UnexpectedEof {
        "the file ends before the compressed stream does (truncated)".to_string()
    } else {
        error.to_string()
    }
}

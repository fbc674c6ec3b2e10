//! Writes one `docker save` stream into an archive file in a single pass.
//!
//! The async side only forwards the engine's chunks (coalesced to 256 KiB)
//! into a bounded channel, so the SSH transport and the engine keep flowing.
//! A blocking thread hashes the tar, feeds the [`DockerTarInspector`],
//! compresses (gzp parallel multi-member gzip, multi-threaded zstd, or nothing) and hashes
//! the compressed bytes on their way into `<dest>.partial-<pid>-<n>`. Only when
//! the stream ended cleanly and the tar proved to be a complete docker-archive
//! of the expected image is the file fsynced and renamed to the destination
//! (callers pass a name the manifest does not list yet, and switch the
//! manifest to it afterwards: see `archive_run::image`). Memory stays
//! bounded by the channel and the compressor's block queue, whatever the image
//! size.
//!
//! gzip is written as gzp's `Mgzip`: independent 1 MiB blocks, each a complete
//! gzip member compressed by libdeflate. A file of several members is still one
//! gzip file (RFC 1952): `gzip -t`, `gunzip`, Go's `compress/gzip` (hence every
//! `docker load`) and `unpigz` read it whole. libdeflate compresses a block in one
//! call, far cheaper than zlib's streaming at the same size (see
//! [`Compression::default_level`] for the measurement).

use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, anyhow};
use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use gzp::ZWriter;
use gzp::deflate::Mgzip;
use gzp::par::compress::{ParCompress, ParCompressBuilder};
use tokio::sync::mpsc;

use super::digest::{Hashed, HashingWriter};
use super::docker_tar::{DockerImageInfo, DockerTarInspector, ExpectedImage};
use super::durable::PartialFile;
use super::layout::Compression;

/// Chunks in flight between the async side and the compressor thread.
const CHANNEL_CHUNKS: usize = 8;
/// Small engine chunks are gathered to this size before crossing the channel.
const COALESCE_BYTES: usize = 256 << 10;
/// Input each zstd worker compresses at a time.
const ZSTD_JOB_BYTES: u32 = 1 << 20;
/// Input of each gzip member (one libdeflate call). 1 MiB wrote smaller files than
/// gzp's default 128 KiB at the same speed.
const GZIP_BLOCK_BYTES: usize = 1 << 20;
/// Buffer between the compressor and the file.
const FILE_BUFFER_BYTES: usize = 1 << 20;

/// How to write an archive.
#[derive(Debug, Clone, Default)]
pub struct WriteOptions {
    pub compression: Compression,
    /// Compression level; `None` for the compression's default (gzip 5, zstd 3).
    pub level: Option<u32>,
    /// Compressor threads; 0 for one per available core.
    pub threads: usize,
    /// What the tar must hold; also names the image in error messages.
    pub expected: ExpectedImage,
}

impl WriteOptions {
    fn resolved_level(&self) -> anyhow::Result<u32> {
        let level = self.level.unwrap_or(self.compression.default_level());
        let lowest = u32::from(self.compression == Compression::Zstd);
        if self.compression != Compression::None
            && !(lowest..=self.compression.max_level()).contains(&level)
        {
            anyhow::bail!(
                "{} level {level} is out of range: use {lowest} to {}",
                self.compression,
                self.compression.max_level()
            );
        }
        Ok(level)
    }

    fn resolved_threads(&self) -> usize {
        if self.threads > 0 {
            self.threads
        } else {
            std::thread::available_parallelism().map_or(1, usize::from)
        }
    }
}

/// A finished archive file and what it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenArchive {
    pub path: PathBuf,
    /// Bytes of the archive file.
    pub size: u64,
    /// Hex SHA-256 of the archive file.
    pub sha256: String,
    /// Bytes of the `docker save` tar.
    pub uncompressed_size: u64,
    /// Hex SHA-256 of the `docker save` tar.
    pub uncompressed_sha256: String,
    pub compression: Compression,
    /// What the tar's manifest.json and config say.
    pub image: DockerImageInfo,
}

enum Feed {
    Data(Bytes),
    End,
}

/// Streams a `docker save` tar into `destination`, compressed and hashed on the
/// way. `progress` receives the number of tar bytes consumed so far.
///
/// On any failure (the stream errors, the tar is incomplete or not the expected
/// image, the disk fails) the temporary file is removed, an existing file at
/// `destination` is left untouched, and the error names the image and the file.
pub async fn write_archive<S, E>(
    stream: S,
    destination: &Path,
    options: &WriteOptions,
    mut progress: impl FnMut(u64),
) -> anyhow::Result<WrittenArchive>
where
    S: Stream<Item = Result<Bytes, E>>,
    E: std::error::Error + Send + Sync + 'static,
{
    let image = options
        .expected
        .reference
        .clone()
        .unwrap_or_else(|| "the image".to_string());
    let failure = || format!("cannot archive {image} to {}", destination.display());
    let level = options.resolved_level().with_context(failure)?;
    let (sender, receiver) = mpsc::channel::<Feed>(CHANNEL_CHUNKS);
    let sink = {
        let destination = destination.to_path_buf();
        let compression = options.compression;
        let threads = options.resolved_threads();
        let expected = options.expected.clone();
        tokio::task::spawn_blocking(move || {
            write_from_channel(
                receiver,
                &destination,
                compression,
                level,
                threads,
                &expected,
            )
        })
    };

    let fed = forward(stream, &sender, &mut progress).await;
    if fed.is_ok() {
        // A closed channel means the sink already failed; its error is reported below.
        let _ = sender.send(Feed::End).await;
    }
    drop(sender);
    let written = sink
        .await
        .map_err(|error| anyhow!("the archive writer thread failed: {error}"))
        .and_then(|result| result);
    match (fed, written) {
        (Ok(()), Ok(written)) => Ok(written),
        (Err(stream_error), _) => Err(stream_error.context(failure())),
        (Ok(()), Err(sink_error)) => Err(sink_error.context(failure())),
    }
}

/// Moves the stream into the channel; stops early when the sink has gone away.
async fn forward<S, E>(
    stream: S,
    sender: &mpsc::Sender<Feed>,
    progress: &mut impl FnMut(u64),
) -> anyhow::Result<()>
where
    S: Stream<Item = Result<Bytes, E>>,
    E: std::error::Error + Send + Sync + 'static,
{
    let mut stream = std::pin::pin!(stream);
    let mut pending = BytesMut::new();
    let mut consumed: u64 = 0;
    while let Some(chunk) = stream.next().await {
        let chunk =
            chunk.map_err(|error| anyhow::Error::new(error).context("the export stream failed"))?;
        consumed += chunk.len() as u64;
        progress(consumed);
        let ready = if pending.is_empty() && chunk.len() >= COALESCE_BYTES {
            chunk
        } else {
            pending.extend_from_slice(&chunk);
            if pending.len() < COALESCE_BYTES {
                continue;
            }
            pending.split().freeze()
        };
        if sender.send(Feed::Data(ready)).await.is_err() {
            return Ok(());
        }
    }
    if !pending.is_empty() {
        let _ = sender.send(Feed::Data(pending.freeze())).await;
    }
    Ok(())
}

fn write_from_channel(
    mut receiver: mpsc::Receiver<Feed>,
    destination: &Path,
    compression: Compression,
    level: u32,
    threads: usize,
    expected: &ExpectedImage,
) -> anyhow::Result<WrittenArchive> {
    let (partial, file) = PartialFile::create(destination).with_context(|| {
        format!(
            "cannot create a temporary file next to {}",
            destination.display()
        )
    })?;
    let buffered = BufWriter::with_capacity(FILE_BUFFER_BYTES, file);
    // Uncompressed, the file is the tar, whose hash is taken below anyway.
    let sink = if compression == Compression::None {
        HashingWriter::counting(buffered)
    } else {
        HashingWriter::new(buffered)
    };
    let mut encoder = Encoder::new(compression, level, threads, sink)?;
    let mut tar = Hashed::new();
    let mut inspector = DockerTarInspector::new();
    let mut ended = false;
    while let Some(feed) = receiver.blocking_recv() {
        match feed {
            Feed::Data(bytes) => {
                tar.update(&bytes);
                inspector
                    .feed(&bytes)
                    .context("the export is not a valid docker-save tar")?;
                encoder
                    .write_all(&bytes)
                    .with_context(|| format!("cannot write {}", partial.partial().display()))?;
            }
            Feed::End => {
                ended = true;
                break;
            }
        }
    }
    if !ended {
        anyhow::bail!("the export stopped before its end");
    }
    let image = inspector
        .finish(expected)
        .context("the export is not a valid docker-save tar")?;
    let write_error = || format!("cannot write {}", partial.partial().display());
    let (buffered, compressed) = encoder.finish().with_context(write_error)?.into_parts();
    let file = buffered
        .into_inner()
        .map_err(|error| error.into_error())
        .with_context(write_error)?;
    if compression == Compression::None && compressed.size() != tar.size() {
        anyhow::bail!(
            "wrote {} bytes to {} but received {}",
            compressed.size(),
            partial.partial().display(),
            tar.size()
        );
    }
    partial.commit(file).with_context(|| {
        format!(
            "cannot move the finished archive into place at {}",
            destination.display()
        )
    })?;
    let (uncompressed_sha256, uncompressed_size) = tar.finish();
    let (sha256, size) = if compression == Compression::None {
        (uncompressed_sha256.clone(), compressed.size())
    } else {
        compressed.finish()
    };

    Ok(WrittenArchive {
        path: destination.to_path_buf(),
        size,
        sha256,
        uncompressed_size,
        uncompressed_sha256,
        compression,
        image,
    })
}

type FileSink = HashingWriter<BufWriter<std::fs::File>>;

/// The compressor in front of the file. Dropping it unfinished shuts the
/// compressor threads down quietly (the partial file is discarded anyway).
struct Encoder {
    inner: Option<EncoderKind>,
    /// Set once a write failed (a full disk, say). gzp's encoder must then never be
    /// finished again: its `finish` and its `Drop` unwrap channels the failure closed.
    failed: bool,
}

enum EncoderKind {
    Gzip(ParCompress<'static, Mgzip, FileSink>),
    Zstd(zstd::stream::write::Encoder<'static, FileSink>),
    Plain(FileSink),
}

impl Encoder {
    fn new(
        compression: Compression,
        level: u32,
        threads: usize,
        sink: FileSink,
    ) -> anyhow::Result<Encoder> {
        let kind = match compression {
            Compression::Gzip => EncoderKind::Gzip(
                ParCompressBuilder::<Mgzip>::new()
                    .num_threads(threads)
                    .and_then(|builder| builder.buffer_size(GZIP_BLOCK_BYTES))
                    .map_err(|error| anyhow!("cannot start {threads} gzip threads: {error}"))?
                    .compression_level(flate2::Compression::new(level))
                    .from_writer(sink),
            ),
            Compression::Zstd => {
                let mut encoder = zstd::stream::write::Encoder::new(sink, level as i32)
                    .context("cannot start the zstd compressor")?;
                if threads > 1 {
                    // Small jobs keep each worker's buffers small: memory stays bounded
                    // however many cores there are.
                    encoder
                        .multithread(threads as u32)
                        .and_then(|()| {
                            encoder.set_parameter(zstd::stream::raw::CParameter::JobSize(
                                ZSTD_JOB_BYTES,
                            ))
                        })
                        .context("cannot start the zstd compressor threads")?;
                }
                EncoderKind::Zstd(encoder)
            }
            Compression::None => EncoderKind::Plain(sink),
        };
        Ok(Encoder {
            inner: Some(kind),
            failed: false,
        })
    }

    fn kind(&mut self) -> &mut EncoderKind {
        self.inner.as_mut().expect("encoder used after finish")
    }

    fn finish(mut self) -> io::Result<FileSink> {
        let mut sink = match self.inner.take().expect("encoder finished twice") {
            EncoderKind::Gzip(mut encoder) => match encoder.finish() {
                Ok(sink) => sink,
                Err(error) => {
                    // Its Drop would finish (and unwrap) once more.
                    std::mem::forget(encoder);
                    return Err(gzp_error(error));
                }
            },
            EncoderKind::Zstd(encoder) => encoder.finish()?,
            EncoderKind::Plain(sink) => sink,
        };
        sink.flush()?;
        Ok(sink)
    }
}

impl Write for Encoder {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let result = match self.kind() {
            EncoderKind::Gzip(encoder) => encoder.write(bytes),
            EncoderKind::Zstd(encoder) => encoder.write(bytes),
            EncoderKind::Plain(sink) => sink.write(bytes),
        };
        self.failed |= result.is_err();
        result
    }

    fn flush(&mut self) -> io::Result<()> {
        let result = match self.kind() {
            EncoderKind::Gzip(encoder) => encoder.flush(),
            EncoderKind::Zstd(encoder) => encoder.flush(),
            EncoderKind::Plain(sink) => sink.flush(),
        };
        self.failed |= result.is_err();
        result
    }
}

impl Drop for Encoder {
    fn drop(&mut self) {
        // gzp's own Drop unwraps the result of finishing; finish here and ignore it.
        // After a failed write its channels are gone and finishing would panic: its
        // threads have ended with the failure, so only its buffers are leaked.
        if let Some(EncoderKind::Gzip(mut encoder)) = self.inner.take() {
            if self.failed {
                std::mem::forget(encoder);
            } else {
                let _ = encoder.finish();
            }
        }
    }
}

fn gzp_error(error: gzp::GzpError) -> io::Error {
    match error {
        gzp::GzpError::Io(error) => error,
        error => io::Error::other(error),
    }
}

/// Compile-time check that bollard's export stream feeds the writer as it is,
/// and that the write can run in a spawned task.
#[cfg(test)]
const _: fn(bollard::Docker, PathBuf) = |docker, path| {
    drop(tokio::spawn(async move {
        let stream = docker.export_image("image:tag");
        write_archive(stream, &path, &WriteOptions::default(), |_| {}).await
    }));
};

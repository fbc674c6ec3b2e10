//! Writes a docker-save tar stream to a compressed archive file, atomically,
//! hashing both the tar and the file on the way through.
//!
//! Stop-gap until the shared archive writer (`src/archive`) lands on this
//! branch: same contract (stream in, verified file out, nothing left behind on
//! error), so the pull only has to change the call.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use futures_util::{Stream, StreamExt};
use sha2::{Digest as _, Sha256};

use super::blob_cache::Digest;

/// The archive file that was written.
#[derive(Debug, Clone)]
pub struct WrittenArchive {
    pub path: PathBuf,
    pub sha256: Digest,
    pub size: u64,
    pub tar_sha256: Digest,
    pub tar_size: u64,
}

/// Gzip-compresses `stream` into `destination` via a temporary file.
pub async fn write_archive_file(
    mut stream: impl Stream<Item = std::io::Result<bytes::Bytes>> + Unpin,
    destination: &Path,
) -> anyhow::Result<WrittenArchive> {
    let parent = destination
        .parent()
        .context("archive path has no directory")?;
    tokio::fs::create_dir_all(parent)
        .await
        .with_context(|| format!("cannot create {}", parent.display()))?;
    let temporary = destination.with_extension(format!("partial-{}", std::process::id()));
    let (sender, mut receiver) = tokio::sync::mpsc::channel::<bytes::Bytes>(8);
    let file_path = temporary.clone();
    let writer =
        tokio::task::spawn_blocking(move || -> anyhow::Result<(Digest, u64, Digest, u64)> {
            let file = std::fs::File::create(&file_path)
                .with_context(|| format!("cannot create {}", file_path.display()))?;
            let hashing = HashingWrite {
                inner: std::io::BufWriter::with_capacity(1 << 20, file),
                hasher: Sha256::new(),
                count: 0,
            };
            let mut encoder = flate2::write::GzEncoder::new(hashing, flate2::Compression::new(1));
            let mut tar_hasher = Sha256::new();
            let mut tar_size = 0u64;
            while let Some(chunk) = receiver.blocking_recv() {
                tar_hasher.update(&chunk);
                tar_size += chunk.len() as u64;
                encoder.write_all(&chunk)?;
            }
            let hashing = encoder.finish()?;
            let file = hashing.inner.into_inner().map_err(|e| e.into_error())?;
            file.sync_all()?;
            Ok((
                Digest::from_hasher(hashing.hasher),
                hashing.count,
                Digest::from_hasher(tar_hasher),
                tar_size,
            ))
        });
    let mut failure = None;
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(chunk) => {
                if sender.send(chunk).await.is_err() {
                    break;
                }
            }
            Err(error) => {
                failure = Some(error);
                break;
            }
        }
    }
    drop(sender);
    let written = writer.await.context("archive writer task failed")?;
    if let Some(error) = failure {
        let _ = tokio::fs::remove_file(&temporary).await;
        return Err(anyhow::Error::new(error));
    }
    let (sha256, size, tar_sha256, tar_size) = match written {
        Ok(values) => values,
        Err(error) => {
            let _ = tokio::fs::remove_file(&temporary).await;
            return Err(error);
        }
    };
    tokio::fs::rename(&temporary, destination)
        .await
        .with_context(|| format!("cannot move {} into place", destination.display()))?;
    Ok(WrittenArchive {
        path: destination.to_path_buf(),
        sha256,
        size,
        tar_sha256,
        tar_size,
    })
}

struct HashingWrite<W> {
    inner: W,
    hasher: Sha256,
    count: u64,
}

impl<W: Write> Write for HashingWrite<W> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let written = self.inner.write(bytes)?;
        self.hasher.update(&bytes[..written]);
        self.count += written as u64;
        Ok(written)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

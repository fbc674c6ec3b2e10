//! A `docker save` (classic docker-archive) tar stream built from cached blobs.
//!
//! Layout, as `docker load` of every Docker version reads it: `manifest.json`,
//! the config as `<config-hex>.json`, and each layer uncompressed as
//! `<diff-id-hex>.tar`. Layers are decompressed while they stream into the tar,
//! so nothing is written twice; the tar is produced on a blocking thread and
//! handed over in chunks through a bounded channel.

use std::io::{self, Read, Write};

use anyhow::Context;
use bytes::Bytes;
use serde_json::json;
use tokio::sync::mpsc;
pub use tokio_stream_shim::ReceiverStream;

use super::blob_cache::{BlobCache, Digest, open_uncompressed};
use super::image::ResolvedImage;

const CHUNK: usize = 256 * 1024;

/// The tar as a stream of chunks; an error ends the stream (the consumer must
/// then discard what it wrote).
pub fn docker_save_stream(
    cache: &BlobCache,
    image: &ResolvedImage,
    uncompressed_sizes: Vec<u64>,
) -> ReceiverStream {
    let (sender, receiver) = mpsc::channel::<io::Result<Bytes>>(8);
    let cache = cache.clone();
    let image = image.clone();
    tokio::task::spawn_blocking(move || {
        let writer = ChannelWriter {
            sender: sender.clone(),
            buffer: Vec::with_capacity(CHUNK),
        };
        if let Err(error) = write_tar(writer, &cache, &image, &uncompressed_sizes) {
            let _ = sender.blocking_send(Err(io::Error::other(format!("{error:#}"))));
        }
    });
    ReceiverStream { receiver }
}

fn write_tar(
    writer: ChannelWriter,
    cache: &BlobCache,
    image: &ResolvedImage,
    sizes: &[u64],
) -> anyhow::Result<()> {
    let mut builder = tar::Builder::new(writer);
    let config_digest = image.config_digest()?;
    let config_name = format!("{}.json", config_digest.hex());
    let layer_names: Vec<String> = image
        .config
        .rootfs
        .diff_ids
        .iter()
        .map(|diff_id| format!("{}.tar", diff_id.trim_start_matches("sha256:")))
        .collect();
    let manifest = json!([{
        "Config": config_name,
        "RepoTags": [image.reference.familiar_tagged()],
        "Layers": layer_names,
    }]);
    append_bytes(
        &mut builder,
        "manifest.json",
        &serde_json::to_vec(&manifest)?,
    )?;
    append_bytes(&mut builder, &config_name, &image.config_bytes)?;
    let mut written = std::collections::HashSet::new();
    for ((layer, name), size) in image
        .image_manifest
        .layers
        .iter()
        .zip(&layer_names)
        .zip(sizes)
    {
        if !written.insert(name.clone()) {
            continue;
        }
        let digest = Digest::parse(&layer.digest)?;
        let reader = open_uncompressed(&cache.path(&digest))?;
        let mut verifying = CountingReader {
            inner: reader.take(*size),
            count: 0,
        };
        let mut header = tar::Header::new_ustar();
        header.set_size(*size);
        header.set_mode(0o644);
        header.set_mtime(0);
        header.set_entry_type(tar::EntryType::Regular);
        builder
            .append_data(&mut header, name, &mut verifying)
            .with_context(|| format!("cannot stream layer {digest} of {}", image.reference))?;
        // The archive writer checks each layer against its diff ID; a short
        // read here means the cached blob changed under us.
        if verifying.count != *size {
            anyhow::bail!(
                "{}: layer {digest} decompressed to {} bytes instead of {size}; run the pull again",
                image.reference,
                verifying.count
            );
        }
    }
    let mut writer = builder.into_inner()?;
    writer.flush()?;
    Ok(())
}

fn append_bytes<W: Write>(
    builder: &mut tar::Builder<W>,
    name: &str,
    bytes: &[u8],
) -> io::Result<()> {
    let mut header = tar::Header::new_ustar();
    header.set_size(bytes.len() as u64);
    header.set_mode(0o644);
    header.set_mtime(0);
    header.set_entry_type(tar::EntryType::Regular);
    builder.append_data(&mut header, name, bytes)
}

struct CountingReader<R> {
    inner: R,
    count: u64,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        let read = self.inner.read(buffer)?;
        self.count += read as u64;
        Ok(read)
    }
}

/// Sends what the tar builder writes, in chunks, to the async side.
struct ChannelWriter {
    sender: mpsc::Sender<io::Result<Bytes>>,
    buffer: Vec<u8>,
}

impl ChannelWriter {
    fn send_buffer(&mut self) -> io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(
            &mut self.buffer,
            Vec::with_capacity(CHUNK),
        ));
        self.sender.blocking_send(Ok(chunk)).map_err(|_| {
            io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the archive writer stopped reading",
            )
        })
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.buffer.extend_from_slice(bytes);
        if self.buffer.len() >= CHUNK {
            self.send_buffer()?;
        }
        Ok(bytes.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        self.send_buffer()
    }
}

/// A `Stream` over an mpsc receiver (tokio-stream's wrapper, without the crate).
mod tokio_stream_shim {
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use bytes::Bytes;
    use tokio::sync::mpsc;

    pub struct ReceiverStream {
        pub receiver: mpsc::Receiver<std::io::Result<Bytes>>,
    }

    impl futures_util::Stream for ReceiverStream {
        type Item = std::io::Result<Bytes>;
        fn poll_next(
            mut self: Pin<&mut Self>,
            context: &mut Context<'_>,
        ) -> Poll<Option<Self::Item>> {
            self.receiver.poll_recv(context)
        }
    }
}

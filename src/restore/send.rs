//! The byte streams a load sends, each checked on its way with its end held back.
//!
//! - [`stored_bytes`]: the archive file's own bytes (gzip, zstd or a plain tar),
//!   hashed as they are read; the last [`HELD_BACK_BYTES`] go out only once the
//!   file's size and SHA-256 match the manifest. Otherwise the stream ends with
//!   an error instead: the engine never receives the end of the compressed
//!   stream, so its decompressor never reaches the end of the tar (the encoding
//!   of a tar's last bytes is the last thing in its gzip or zstd stream) and the
//!   request body breaks; `docker load` creates no image.
//! - [`recompressed`]: the decompressed, checked tar of [`open_archive`]
//!   (which holds back its own last chunk) through a fast compressor, for an
//!   engine that cannot read the stored format.
//!
//! [`open_archive`]: crate::archive::open_archive

use std::collections::VecDeque;
use std::fs::File;
use std::io;
use std::path::Path;
use std::pin::Pin;

use async_compression::Level;
use async_compression::tokio::bufread::{GzipEncoder, ZstdEncoder};
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use tokio::sync::mpsc;
use tokio_util::io::{ReaderStream, StreamReader};

use super::wire::RECOMPRESS_LEVEL;
use crate::archive::digest::Hashed;
use crate::archive::reader::{CHUNK_BYTES, corrupt_error, read_chunk, read_error};
use crate::archive::retag::Retagger;
use crate::archive::{Compression, ExpectedFile};

/// Bytes at the end of a stored file that are sent only after the file matched.
/// Far more than the compressed encoding of a tar's closing entries, so a corrupt
/// file never gives the engine a whole tar.
pub const HELD_BACK_BYTES: usize = 1 << 20;
const CHANNEL_CHUNKS: usize = 8;

/// A stream of bytes for the engine.
pub type Body = Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send>>;

/// The file at `path` as it is stored, checked against `expected`'s size and
/// SHA-256 (which must be recorded) before its last bytes go out. Must be called
/// inside a tokio runtime.
pub fn stored_bytes(path: &Path, expected: &ExpectedFile) -> io::Result<Body> {
    let file = File::open(path).map_err(|error| read_error(path, error))?;
    let (sender, mut receiver) = mpsc::channel(CHANNEL_CHUNKS);
    let path = path.to_path_buf();
    let expected = expected.clone();
    tokio::task::spawn_blocking(move || pump_file(file, &path, &expected, &sender));
    Ok(Box::pin(futures_util::stream::poll_fn(move |context| {
        receiver.poll_recv(context)
    })))
}

fn pump_file(
    mut file: File,
    path: &Path,
    expected: &ExpectedFile,
    sender: &mpsc::Sender<io::Result<Bytes>>,
) {
    let mut hashed = Hashed::new();
    let mut held: VecDeque<Bytes> = VecDeque::new();
    let mut held_bytes = 0usize;
    loop {
        let chunk = match read_chunk(&mut file) {
            Ok(Some(chunk)) => chunk,
            Ok(None) => break,
            Err(error) => {
                let _ = sender.blocking_send(Err(read_error(path, error)));
                return;
            }
        };
        hashed.update(&chunk);
        held_bytes += chunk.len();
        held.push_back(chunk);
        while held
            .front()
            .is_some_and(|front| held_bytes - front.len() >= HELD_BACK_BYTES)
        {
            let front = held.pop_front().expect("checked above");
            held_bytes -= front.len();
            if sender.blocking_send(Ok(front)).is_err() {
                return;
            }
        }
    }
    let (sha256, size) = hashed.finish();
    let mismatches = expected.stored_mismatches(size, Some(&sha256));
    if !mismatches.is_empty() {
        let _ = sender.blocking_send(Err(corrupt_error(path, &mismatches)));
        return;
    }
    for chunk in held {
        if sender.blocking_send(Ok(chunk)).is_err() {
            return;
        }
    }
}

/// The checked tar of `tar`, compressed with `to` at [`RECOMPRESS_LEVEL`] (or as
/// it is for [`Compression::None`]). An error of the tar stream (a corrupt file)
/// ends this stream with that error.
pub fn recompressed(tar: Body, to: Compression) -> Body {
    let level = Level::Precise(RECOMPRESS_LEVEL as i32);
    match to {
        Compression::Gzip => Box::pin(ReaderStream::with_capacity(
            GzipEncoder::with_quality(StreamReader::new(tar), level),
            CHUNK_BYTES,
        )),
        Compression::Zstd => Box::pin(ReaderStream::with_capacity(
            ZstdEncoder::with_quality(StreamReader::new(tar), level),
            CHUNK_BYTES,
        )),
        Compression::None => Box::pin(tar),
    }
}

/// The checked tar `tar` (whose source holds back its own last chunk) with its image
/// names rewritten by `retagger`; a tar that cannot be renamed, or that ends inside a
/// member, ends the stream with an error instead of its last bytes.
pub fn retagged(tar: Body, retagger: Retagger) -> Body {
    let retagger = std::sync::Arc::new(std::sync::Mutex::new(Some(retagger)));
    let at_end = retagger.clone();
    let renamed = tar.map(move |chunk| {
        let chunk = chunk?;
        let mut slot = retagger
            .lock()
            .map_err(|_| io::Error::other("the tar renamer failed"))?;
        let retagger = slot
            .as_mut()
            .ok_or_else(|| io::Error::other("the tar renamer failed"))?;
        retagger
            .feed(&chunk)
            .map(Bytes::from)
            .map_err(|error| io::Error::new(io::ErrorKind::InvalidData, error.to_string()))
    });
    let end = futures_util::stream::once(async move {
        let finished = at_end
            .lock()
            .ok()
            .and_then(|mut slot| slot.take())
            .map(Retagger::finish);
        match finished {
            Some(Ok(true)) => Ok(Bytes::new()),
            Some(Ok(false)) => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "the tar names no image (no manifest.json, index.json or repositories), \
                 so it cannot be loaded under a scratch name",
            )),
            Some(Err(error)) => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                error.to_string(),
            )),
            None => Err(io::Error::other("the tar renamer failed")),
        }
    });
    Box::pin(
        renamed
            .chain(end)
            .filter(|chunk| std::future::ready(!matches!(chunk, Ok(bytes) if bytes.is_empty()))),
    )
}

//! Loads one archive file into the engine, checked before the engine sees it.
//!
//! How the check is ordered depends on where the archive lives ([`CheckOrder`]):
//! a local file is hashed whole first and only a file that matches its manifest
//! entry is sent at all; a remote one (object storage, later) is streamed once
//! with its end held back until the hashes match. Either way the stream sent is
//! hashed again and its last chunk held back, so a local file swapped between
//! the check and the load still fails before the engine commits anything.
//!
//! What travels is chosen per file by [`WireSettings::choose`]: the file's own
//! compressed bytes ([`send::stored_bytes`], hashed on the way), or the tar
//! decompressed here ([`open_archive`], every layer checked), recompressed with a
//! fast level where the link needs it ([`send::recompressed`]). On a mismatch the
//! request body ends with an error instead of its last bytes, so the engine sees
//! a broken upload and never a complete tar of a corrupt file. An interrupt ends
//! the request body the same way.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bollard::Docker;
use bollard::query_parameters::ImportImageOptions;
use futures_util::StreamExt;

use tokio_util::sync::CancellationToken;

use super::send::{self, Body};
use super::wire::{WireEncoding, WireSettings};
use crate::archive::reader::{check_file, corrupt_error, read_error};
use crate::archive::retag::Retagger;
use crate::archive::{Compression, ExpectedFile, ManifestEntry, open_archive};
use crate::interrupt::abort_on_cancel;

/// Why a load did not happen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoadFailure {
    /// The file is not what the manifest recorded: another copy may do.
    Corrupt(String),
    /// The file cannot be opened.
    Unreadable(String),
    /// The engine refused the image or the connection broke.
    Engine(String),
    /// Ctrl-C or SIGTERM aborted the upload.
    Interrupted(String),
}

impl LoadFailure {
    pub fn message(&self) -> &str {
        match self {
            LoadFailure::Corrupt(message)
            | LoadFailure::Unreadable(message)
            | LoadFailure::Engine(message)
            | LoadFailure::Interrupted(message) => message,
        }
    }
}

/// A finished load.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Loaded {
    /// Bytes sent to the engine, as they went on the wire (compressed or not).
    pub bytes_sent: u64,
    /// What the engine said (`Loaded image: …`).
    pub engine_messages: Vec<String>,
}

/// When an archive is checked against its manifest entry, chosen by where it lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckOrder {
    /// A local file: read and hashed whole first, loaded only when it matches
    /// (no byte of a corrupt file reaches the engine); the load stream is then
    /// checked again with its end held back.
    HashThenLoad,
    /// A remote archive: one download, streamed with its end held back until the
    /// hashes match, so the engine sees a broken upload, never a whole corrupt tar.
    StreamHoldingTail,
}

impl CheckOrder {
    /// The order for a file in a local archive directory (every archive today).
    pub fn for_local_file() -> CheckOrder {
        CheckOrder::HashThenLoad
    }
}

/// How the file `path` of `entry` travels, from its first bytes (its compression)
/// and `wire`.
pub fn wire_encoding(
    path: &std::path::Path,
    entry: &ManifestEntry,
    wire: &WireSettings,
) -> Result<WireEncoding, LoadFailure> {
    let mut first = [0u8; 4];
    let read = std::fs::File::open(path)
        .and_then(|mut file| std::io::Read::read(&mut file, &mut first))
        .map_err(|error| LoadFailure::Unreadable(read_error(path, error).to_string()))?;
    let stored = Compression::from_magic(&first[..read]);
    Ok(wire.choose(stored, !entry.sha256.is_empty()))
}

/// Loads the archive file `path` of `entry` onto the engine, sent as `encoding`
/// ([`wire_encoding`]). `on_progress` hears of every chunk read (bytes of the file
/// when it goes as stored, else bytes of the tar); `on_wire` of every chunk sent;
/// cancelling `interrupt` aborts the upload.
#[allow(clippy::too_many_arguments)]
pub async fn load_verified(
    docker: &Docker,
    path: &std::path::Path,
    entry: &ManifestEntry,
    order: CheckOrder,
    encoding: WireEncoding,
    on_progress: impl Fn(u64) + Send + Sync + 'static,
    on_wire: impl Fn(u64) + Send + Sync + 'static,
    interrupt: &CancellationToken,
) -> Result<Loaded, LoadFailure> {
    match order {
        CheckOrder::HashThenLoad => tokio::select! {
            checked = check_first(path, entry) => checked?,
            () = interrupt.cancelled() => {
                return Err(LoadFailure::Interrupted(format!(
                    "bunker was interrupted while it checked {}",
                    path.display()
                )));
            }
        },
        CheckOrder::StreamHoldingTail => {}
    }
    let stream = body(path, entry, encoding, on_progress)
        .map_err(|error| LoadFailure::Unreadable(error.to_string()))?;
    send_to_engine(
        docker,
        path,
        stream,
        on_wire,
        interrupt,
        "bunker image-restore",
    )
    .await
}

/// Loads the archive file `path` of `entry` under the name `scratch_name` instead
/// of the names its tar carries ([`Retagger`]): checked whole first, then sent as
/// the checked, renamed tar. No existing tag is moved by this load.
pub async fn load_renamed(
    docker: &Docker,
    path: &std::path::Path,
    entry: &ManifestEntry,
    scratch_name: &str,
    interrupt: &CancellationToken,
) -> Result<Loaded, LoadFailure> {
    tokio::select! {
        checked = check_first(path, entry) => checked?,
        () = interrupt.cancelled() => {
            return Err(LoadFailure::Interrupted(format!(
                "bunker was interrupted while it checked {}",
                path.display()
            )));
        }
    }
    let tar = open_archive(path, ExpectedFile::from_entry(entry))
        .map_err(|error| LoadFailure::Unreadable(error.to_string()))?;
    let stream = send::retagged(Box::pin(tar), Retagger::new(scratch_name));
    let again = "bunker archive verify --load";
    send_to_engine(docker, path, stream, |_| {}, interrupt, again).await
}

/// Sends `stream` to the engine's load endpoint; an error in the stream (a
/// mismatch found on the way) breaks the upload and is reported as corruption.
/// `again` is the command an engine error tells the user to run again.
async fn send_to_engine(
    docker: &Docker,
    path: &std::path::Path,
    stream: Body,
    on_wire: impl Fn(u64) + Send + Sync + 'static,
    interrupt: &CancellationToken,
    again: &str,
) -> Result<Loaded, LoadFailure> {
    let file_error: Arc<Mutex<Option<String>>> = Arc::default();
    let sent = Arc::new(AtomicU64::new(0));
    let counted = {
        let file_error = file_error.clone();
        let sent = sent.clone();
        stream.map(move |chunk| {
            match &chunk {
                Ok(bytes) => {
                    sent.fetch_add(bytes.len() as u64, Ordering::Relaxed);
                    on_wire(bytes.len() as u64);
                }
                Err(error) => {
                    if let Ok(mut slot) = file_error.lock() {
                        slot.get_or_insert_with(|| error.to_string());
                    }
                }
            }
            chunk
        })
    };
    let options = ImportImageOptions {
        quiet: true,
        platform: None,
    };
    let body = abort_on_cancel(counted, interrupt.clone());
    let mut responses = Box::pin(docker.import_image_stream(options, body, None));
    let mut engine_messages = Vec::new();
    let mut engine_error = None;
    while let Some(response) = responses.next().await {
        match response {
            Ok(info) => {
                if let Some(text) = info.stream.as_deref().map(str::trim)
                    && !text.is_empty()
                {
                    engine_messages.push(text.to_string());
                }
            }
            Err(error) => {
                engine_error = Some(error.to_string());
                break;
            }
        }
    }
    drop(responses);
    if engine_error.is_some() && interrupt.is_cancelled() {
        return Err(LoadFailure::Interrupted(format!(
            "bunker was interrupted while it loaded {}",
            path.display()
        )));
    }
    if let Some(problem) = file_error.lock().ok().and_then(|mut slot| slot.take()) {
        return Err(LoadFailure::Corrupt(problem));
    }
    if let Some(error) = engine_error {
        return Err(LoadFailure::Engine(format!(
            "the engine did not load {}: {error}; check the engine and the connection to it, \
             then run {again} again",
            path.display()
        )));
    }
    Ok(Loaded {
        bytes_sent: sent.load(Ordering::Relaxed),
        engine_messages,
    })
}

/// The request body for `encoding`, reporting bytes read to `on_progress`.
fn body(
    path: &std::path::Path,
    entry: &ManifestEntry,
    encoding: WireEncoding,
    on_progress: impl Fn(u64) + Send + Sync + 'static,
) -> std::io::Result<Body> {
    let expected = ExpectedFile::from_entry(entry);
    let read: Body = match encoding {
        WireEncoding::Stored(_) => send::stored_bytes(path, &expected)?,
        WireEncoding::Decompressed | WireEncoding::Recompressed { .. } => {
            Box::pin(open_archive(path, expected)?)
        }
    };
    let read: Body = Box::pin(read.map(move |chunk| {
        if let Ok(bytes) = &chunk {
            on_progress(bytes.len() as u64);
        }
        chunk
    }));
    Ok(match encoding {
        WireEncoding::Recompressed { to, .. } => send::recompressed(read, to),
        _ => read,
    })
}

/// Reads and hashes the whole file before the engine is asked to load anything.
async fn check_first(path: &std::path::Path, entry: &ManifestEntry) -> Result<(), LoadFailure> {
    let owned_path = path.to_path_buf();
    let expected = ExpectedFile::from_entry(entry);
    let checked = tokio::task::spawn_blocking(move || check_file(&owned_path, &expected))
        .await
        .map_err(|error| {
            LoadFailure::Unreadable(format!("cannot check {}: {error}", path.display()))
        })?;
    match checked {
        Ok(mismatches) if mismatches.is_empty() => Ok(()),
        Ok(mismatches) => Err(LoadFailure::Corrupt(
            corrupt_error(path, &mismatches).to_string(),
        )),
        Err(error) => Err(LoadFailure::Unreadable(read_error(path, error).to_string())),
    }
}

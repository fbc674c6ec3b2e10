//! Streams one archive file into the engine's load endpoint, checking it on the way.
//!
//! The file is decompressed here, on the workstation ([`open_archive`]), so gzip,
//! zstd and plain archives load on any engine version (Docker 20.10 cannot load
//! zstd itself), and its size and SHA-256 are checked while the bytes flow: one
//! read of the file, no temporary copy. The reader holds back its last chunk
//! until the hashes match; on a mismatch the request body ends with an error
//! instead, so the engine sees a broken upload and never a complete tar of a
//! corrupt file. An interrupt ends the request body the same way.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bollard::Docker;
use bollard::query_parameters::ImportImageOptions;
use futures_util::StreamExt;

use tokio_util::sync::CancellationToken;

use crate::archive::{ExpectedFile, ManifestEntry, open_archive};
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
    /// Decompressed bytes sent to the engine.
    pub bytes_sent: u64,
    /// What the engine said (`Loaded image: …`).
    pub engine_messages: Vec<String>,
}

/// Loads the archive file `path` of `entry` onto the engine. `on_bytes` hears
/// of every chunk sent (for a progress bar); cancelling `interrupt` aborts the upload.
pub async fn load_verified(
    docker: &Docker,
    path: &std::path::Path,
    entry: &ManifestEntry,
    on_bytes: impl Fn(u64) + Send + Sync + 'static,
    interrupt: &CancellationToken,
) -> Result<Loaded, LoadFailure> {
    let stream = open_archive(path, ExpectedFile::from_entry(entry))
        .map_err(|error| LoadFailure::Unreadable(error.to_string()))?;
    let file_error: Arc<Mutex<Option<String>>> = Arc::default();
    let sent = Arc::new(AtomicU64::new(0));
    let counted = {
        let file_error = file_error.clone();
        let sent = sent.clone();
        stream.map(move |chunk| {
            match &chunk {
                Ok(bytes) => {
                    sent.fetch_add(bytes.len() as u64, Ordering::Relaxed);
                    on_bytes(bytes.len() as u64);
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
            "the engine did not load {}: {error}",
            path.display()
        )));
    }
    Ok(Loaded {
        bytes_sent: sent.load(Ordering::Relaxed),
        engine_messages,
    })
}

//! The content-addressed blob cache: `<dir>/blobs/sha256/<hex>`, shared by every
//! image that uses a blob, filled with resumable, verified downloads.
//!
//! A download writes `<hex>.partial` and keeps it when interrupted; the next
//! attempt (in this run or after a restart) re-hashes the bytes already there
//! and asks only for the rest with a `Range` request. A blob becomes
//! `<hex>` only after its size and SHA-256 match the descriptor, so nothing
//! unverified is ever read from the cache. Content that does not match is
//! discarded and fetched once more in full (no `Range`) before the image fails.

use std::collections::HashMap;
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{Context, bail};
use futures_util::StreamExt;
use reqwest::{Method, StatusCode};
use sha2::{Digest as _, Sha256};
use tokio::io::AsyncWriteExt;

use super::auth::Scope;
use super::client::{RegistryClient, RegistryRequest, check_status};
use super::reference::RepositoryName;
use super::state_file::{FileLock, write_atomic};
use crate::archive::durable::{PartialFile, sync_parent_dir};

/// Bytes gathered before each write of a downloading blob to its file.
const WRITE_BUFFER_BYTES: usize = 1 << 20;

/// A `sha256:<hex>` content digest.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(String);

impl Digest {
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let hex = text
            .strip_prefix("sha256:")
            .with_context(|| format!("unsupported digest {text:?}: only sha256 is supported"))?;
        if hex.len() != 64
            || !hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            bail!("malformed digest {text:?}: expected sha256:<64 lowercase hex digits>");
        }
        Ok(Self(text.to_string()))
    }
    pub fn from_hasher(hasher: Sha256) -> Self {
        Self(format!("sha256:{}", hex(&hasher.finalize())))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// The 64 hex digits.
    pub fn hex(&self) -> &str {
        &self.0["sha256:".len()..]
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The SHA-256 digest of some bytes.
pub fn sha256_digest(bytes: &[u8]) -> Digest {
    let mut hasher = Sha256::new();
    hasher.update(bytes);
    Digest::from_hasher(hasher)
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Bytes moved over the network, for reports and the resume tests.
#[derive(Debug, Default)]
pub struct TransferCounter {
    pub downloaded: AtomicU64,
    pub reused: AtomicU64,
    /// Cached blobs found corrupt (wrong size or digest) and removed.
    pub discarded: AtomicU64,
}

/// The blob store under an archive directory.
#[derive(Clone)]
pub struct BlobCache {
    root: PathBuf,
    locks: Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
    pub counter: Arc<TransferCounter>,
}

/// Called with the bytes of each received chunk (progress bars).
pub type ProgressFn = Arc<dyn Fn(u64) + Send + Sync>;

/// Both locks of one blob: this process's turn, then the inter-process `flock`.
struct BlobLock {
    _file: FileLock,
    _turn: tokio::sync::OwnedMutexGuard<()>,
}

impl BlobCache {
    /// The cache at `<archive_dir>/blobs/sha256`.
    pub fn new(archive_dir: &Path) -> Self {
        Self {
            root: archive_dir.join("blobs").join("sha256"),
            locks: Arc::default(),
            counter: Arc::default(),
        }
    }

    pub fn path(&self, digest: &Digest) -> PathBuf {
        self.root.join(digest.hex())
    }

    fn partial_path(&self, digest: &Digest) -> PathBuf {
        self.root.join(format!("{}.partial", digest.hex()))
    }

    /// `<archive>/.bunker/locks/<hex>.lock`: outside `blobs/`, which stays a clean
    /// OCI layout.
    fn lock_path(&self, digest: &Digest) -> PathBuf {
        self.memo_dir()
            .join("locks")
            .join(format!("{}.lock", digest.hex()))
    }

    pub fn contains(&self, digest: &Digest) -> bool {
        self.path(digest).is_file()
    }

    fn lock_for_key(&self, key: String) -> Arc<tokio::sync::Mutex<()>> {
        self.locks
            .lock()
            .expect("blob lock table")
            .entry(key)
            .or_default()
            .clone()
    }

    /// Waits until this blob is ours alone, in this process and against every
    /// other process sharing the cache (a second pull never truncates our `.partial`).
    async fn lock_blob(&self, digest: &Digest) -> anyhow::Result<BlobLock> {
        let turn = self
            .lock_for_key(digest.as_str().to_string())
            .lock_owned()
            .await;
        let file = FileLock::acquire(self.lock_path(digest)).await?;
        Ok(BlobLock {
            _file: file,
            _turn: turn,
        })
    }

    /// Stores small content (manifests, configs) after checking its digest.
    pub async fn put_bytes(&self, digest: &Digest, bytes: &[u8]) -> anyhow::Result<PathBuf> {
        let cache = self.clone();
        let digest = digest.clone();
        let bytes = bytes.to_vec();
        tokio::task::spawn_blocking(move || cache.put_blocking(&digest, &bytes))
            .await
            .context("the blob store task failed")?
    }

    /// Synchronous [`BlobCache::put_bytes`] for blocking contexts: the content is
    /// checked, written under a temporary name, fsynced and renamed under the
    /// blob's lock. A cached copy that differs from `bytes` is replaced.
    pub fn put_blocking(&self, digest: &Digest, bytes: &[u8]) -> anyhow::Result<PathBuf> {
        let actual = sha256_digest(bytes);
        if &actual != digest {
            bail!("content for {digest} hashes to {actual}; refusing to store it");
        }
        let path = self.path(digest);
        let _lock = FileLock::acquire_blocking(&self.lock_path(digest))?;
        match std::fs::read(&path) {
            Ok(cached) if cached == bytes => return Ok(path),
            Ok(_) => {
                self.counter.discarded.fetch_add(1, Ordering::Relaxed);
                tracing::warn!("cached blob {} was corrupt; it is replaced", path.display());
            }
            Err(_) => {}
        }
        let write = || -> std::io::Result<()> {
            let (partial, mut file) = PartialFile::create(&path)?;
            std::io::Write::write_all(&mut file, bytes)?;
            partial.commit(file)
        };
        write().with_context(|| format!("cannot store {}", path.display()))?;
        Ok(path)
    }

    /// Whether the cached file of `digest` is there, has `size` bytes (when
    /// known) and hashes to `digest`. A file that does not is removed (counted in
    /// `discarded`), so it is fetched again. Blocking; the caller holds the
    /// blob's lock.
    fn check_cached(&self, digest: &Digest, size: Option<u64>) -> anyhow::Result<bool> {
        let path = self.path(digest);
        let metadata = match std::fs::metadata(&path) {
            Ok(metadata) if metadata.is_file() => metadata,
            _ => return Ok(false),
        };
        let problem = if size.is_some_and(|size| metadata.len() != size) {
            Some(format!(
                "has {} bytes, not {}",
                metadata.len(),
                size.unwrap_or_default()
            ))
        } else {
            let actual = hash_file(&path)?;
            (&actual != digest).then(|| format!("hashes to {actual}"))
        };
        match problem {
            None => Ok(true),
            Some(problem) => {
                tracing::warn!(
                    "cached blob {} {problem}: it is discarded and fetched again",
                    path.display()
                );
                std::fs::remove_file(&path)
                    .with_context(|| format!("cannot remove the corrupt {}", path.display()))?;
                self.counter.discarded.fetch_add(1, Ordering::Relaxed);
                Ok(false)
            }
        }
    }

    /// The path of a cached blob after checking its content, for callers about
    /// to hand it on (link, copy, push) with no registry to fetch it from again.
    /// A corrupt file is removed and the error says so.
    pub fn verified_path(&self, digest: &Digest) -> anyhow::Result<PathBuf> {
        let path = self.path(digest);
        if !path.is_file() {
            bail!(
                "blob {digest} is not in the archive's blob cache ({}): the archive is incomplete",
                path.display()
            );
        }
        let _lock = FileLock::acquire_blocking(&self.lock_path(digest))?;
        if !self.check_cached(digest, None)? {
            bail!(
                "blob {digest} in the archive's blob cache ({}) was corrupt and has been removed; pull the image again",
                path.display()
            );
        }
        Ok(path)
    }

    /// [`BlobCache::verified_path`] for async callers: the wait for the lock does
    /// not hold a runtime worker (the holder may be a download of this process).
    pub async fn verified(&self, digest: &Digest) -> anyhow::Result<PathBuf> {
        let _lock = self.lock_blob(digest).await?;
        let cache = self.clone();
        let checked = digest.clone();
        let good = tokio::task::spawn_blocking(move || cache.check_cached(&checked, None))
            .await
            .context("hashing task failed")??;
        let path = self.path(digest);
        if !good {
            bail!(
                "blob {digest} is missing from or was corrupt in the archive's blob cache ({}); pull the image again",
                path.display()
            );
        }
        Ok(path)
    }

    /// Makes sure the blob is in the cache, downloading (or resuming) it from
    /// `repository`. A cached copy is checked (size and digest) before it is
    /// trusted; a download is hashed as written to disk and fsynced before it
    /// becomes `<hex>`. Returns its path.
    pub async fn fetch(
        &self,
        client: &RegistryClient,
        repository: &RepositoryName,
        digest: &Digest,
        size: u64,
        progress: Option<ProgressFn>,
    ) -> anyhow::Result<PathBuf> {
        let _lock = self.lock_blob(digest).await?;
        let path = self.path(digest);
        let cache = self.clone();
        let checked = digest.clone();
        let cached = tokio::task::spawn_blocking(move || cache.check_cached(&checked, Some(size)))
            .await
            .context("hashing task failed")??;
        if cached {
            self.counter.reused.fetch_add(size, Ordering::Relaxed);
            if let Some(progress) = &progress {
                progress(size);
            }
            return Ok(path);
        }
        tokio::fs::create_dir_all(&self.root)
            .await
            .with_context(|| format!("cannot create the blob cache {}", self.root.display()))?;
        let what = format!("blob {digest} of {repository}");
        let first = match self
            .download(client, repository, digest, size, progress.as_ref())
            .await?
        {
            Ok(()) => return self.commit_download(digest, &path).await,
            Err(mismatch) => mismatch,
        };
        // Corrupt content (a flaky proxy, a bad disk on the registry's side): the
        // bytes were discarded, so this second attempt asks for the whole blob.
        eprintln!(
            "{what}: digest mismatch: the content {first}; discarded, fetching it once more in full"
        );
        match self
            .download(client, repository, digest, size, progress.as_ref())
            .await?
        {
            Ok(()) => self.commit_download(digest, &path).await,
            Err(second) => bail!(
                "{what}: digest mismatch on both attempts: attempt 1 {first}, attempt 2 {second}; \
                 both downloads were discarded and nothing was cached (the registry or a proxy \
                 between corrupts data: try again later or from another network)"
            ),
        }
    }

    /// Moves a verified `.partial` download into place.
    async fn commit_download(&self, digest: &Digest, path: &Path) -> anyhow::Result<PathBuf> {
        let partial = self.partial_path(digest);
        tokio::fs::rename(&partial, path)
            .await
            .with_context(|| format!("cannot move {} into place", partial.display()))?;
        let placed = path.to_path_buf();
        tokio::task::spawn_blocking(move || sync_parent_dir(&placed))
            .await
            .context("the fsync task failed")?
            .with_context(|| format!("cannot fsync the blob cache {}", self.root.display()))?;
        Ok(path.to_path_buf())
    }

    /// One download of a blob into its `.partial` file, resuming what is there.
    /// `Ok(Err(_))` when the complete content does not hash to `digest`: the
    /// partial file is then removed and the message says what was received.
    async fn download(
        &self,
        client: &RegistryClient,
        repository: &RepositoryName,
        digest: &Digest,
        size: u64,
        progress: Option<&ProgressFn>,
    ) -> anyhow::Result<Result<(), String>> {
        let partial = self.partial_path(digest);
        let mut offset = partial_length(&partial, size).await;
        if offset > 0 {
            self.counter.reused.fetch_add(offset, Ordering::Relaxed);
            if let Some(progress) = &progress {
                progress(offset);
            }
        }
        let resumed_from = offset;
        let policy = client.retry_policy().clone();
        let mut failures = 0;
        let mut ranged = false;
        let blob_path = format!("/v2/{}/blobs/{digest}", repository.repository);
        let what = format!("blob {digest} of {repository}");
        while offset < size || size == 0 {
            let mut request =
                RegistryRequest::new(Method::GET, &blob_path, Scope::pull(&repository.repository));
            if offset > 0 {
                request = request.header(
                    reqwest::header::RANGE,
                    format!("bytes={offset}-{}", size - 1),
                );
            }
            let response = client.send(&request).await?;
            let response = check_status(response, &format!("GET {what}")).await?;
            let file = if offset > 0 && response.status() == StatusCode::PARTIAL_CONTENT {
                ranged = true;
                tokio::fs::OpenOptions::new()
                    .append(true)
                    .open(&partial)
                    .await?
            } else {
                // No range support: start over.
                offset = 0;
                tokio::fs::File::create(&partial).await?
            };
            // Each write of a tokio file is a trip to the blocking pool: gather
            // the network's small chunks first.
            let mut file = tokio::io::BufWriter::with_capacity(WRITE_BUFFER_BYTES, file);
            let mut stream = response.bytes_stream();
            let mut broke_off = None;
            while let Some(chunk) = stream.next().await {
                match chunk {
                    Ok(chunk) => {
                        if offset + chunk.len() as u64 > size {
                            drop(file);
                            let _ = tokio::fs::remove_file(&partial).await;
                            bail!(
                                "{what}: the registry sent more than the {size} bytes the manifest declares; the blob was discarded"
                            );
                        }
                        if let Err(error) = file.write_all(&chunk).await {
                            return Err(discard_partial(file, &partial, error).await);
                        }
                        offset += chunk.len() as u64;
                        self.counter
                            .downloaded
                            .fetch_add(chunk.len() as u64, Ordering::Relaxed);
                        if let Some(progress) = &progress {
                            progress(chunk.len() as u64);
                        }
                    }
                    Err(error) => {
                        broke_off = Some(error);
                        break;
                    }
                }
            }
            if let Err(error) = file.flush().await {
                return Err(discard_partial(file, &partial, error).await);
            }
            if let Err(error) = file.get_ref().sync_all().await {
                return Err(discard_partial(file, &partial, error).await);
            }
            drop(file);
            if size == 0 {
                break;
            }
            if offset < size {
                failures += 1;
                if failures >= policy.max_attempts {
                    bail!(
                        "{what}: the download broke off {failures} times (at {offset} of {size} bytes); the {offset} bytes are kept in {} and the next run resumes there",
                        partial.display()
                    );
                }
                let wait = policy.delay(failures, None);
                tracing::warn!(
                    "{what}: broke off at {offset}/{size} bytes ({}); resuming in {:.1}s",
                    broke_off
                        .map(|e| e.to_string())
                        .unwrap_or_else(|| "short answer".into()),
                    wait.as_secs_f64()
                );
                tokio::time::sleep(wait).await;
            }
        }
        // What counts is the file as it is on disk, not the bytes as they came in.
        let written = partial.clone();
        let actual = tokio::task::spawn_blocking(move || hash_file(&written))
            .await
            .context("hashing task failed")??;
        if &actual != digest {
            let _ = tokio::fs::remove_file(&partial).await;
            let how = match (resumed_from, ranged) {
                (0, false) => "fetched in full".to_string(),
                (0, true) => "fetched in ranges after a broken connection".to_string(),
                (kept, _) => format!("resumed from {kept} bytes kept by an earlier run"),
            };
            return Ok(Err(format!("({how}, {size} bytes) hashed to {actual}")));
        }
        Ok(Ok(()))
    }

    /// The directory of the cache itself (`<archive>/blobs`).
    pub fn blobs_dir(&self) -> &Path {
        self.root.parent().expect("cache root has a parent")
    }

    /// Where derived facts about blobs are remembered (`<archive>/.bunker`),
    /// outside `blobs/` so the directory stays a clean OCI layout.
    fn memo_dir(&self) -> PathBuf {
        self.blobs_dir()
            .parent()
            .map(|archive| archive.join(".bunker"))
            .unwrap_or_else(|| PathBuf::from(".bunker"))
    }

    /// Removes what dead processes left in the cache, its memo directory and at
    /// the archive root (`index.json`): temporary files whose pid is gone. A `<hex>.partial` download whose lock
    /// is free is kept (the next fetch resumes it); one whose lock is held
    /// belongs to a live pull. Returns the removed paths.
    pub fn remove_leftovers(&self) -> anyhow::Result<Vec<PathBuf>> {
        let memo = self.memo_dir();
        let archive = self.blobs_dir().parent().unwrap_or(Path::new("."));
        let mut removed = Vec::new();
        for dir in [
            archive.to_path_buf(),
            self.root.clone(),
            memo.clone(),
            memo.join("diffids"),
            memo.join("compressed"),
        ] {
            removed.extend(
                crate::archive::remove_stale_partials(&dir)
                    .with_context(|| format!("cannot clean up {}", dir.display()))?,
            );
            removed.extend(remove_dead_temporaries(&dir)?);
        }
        removed.sort();
        removed.dedup();
        Ok(removed)
    }

    /// The compressed blob known to hold the layer with this diff ID, if any
    /// (so a pushed docker archive reuses the registry's original layer blobs).
    pub fn compressed_for(&self, diff_id: &Digest) -> Option<(Digest, u64)> {
        let text =
            std::fs::read_to_string(self.memo_dir().join("compressed").join(diff_id.hex())).ok()?;
        let (digest, size) = text.trim().split_once(' ')?;
        let digest = Digest::parse(digest).ok()?;
        let size = size.parse().ok()?;
        let cached = std::fs::metadata(self.path(&digest)).ok()?;
        (cached.is_file() && cached.len() == size).then_some((digest, size))
    }

    /// Records that `compressed` (of `size` bytes) decompresses to `diff_id`.
    pub fn remember_compressed(
        &self,
        diff_id: &Digest,
        compressed: &Digest,
        size: u64,
    ) -> anyhow::Result<()> {
        let memo = self.memo_dir().join("compressed").join(diff_id.hex());
        write_atomic(&memo, format!("{compressed} {size}").as_bytes())
    }

    /// The DiffID (SHA-256 of the uncompressed tar) and uncompressed size of a
    /// cached layer, computed once and remembered in `.bunker/diffids/<hex>`.
    pub async fn diff_id(&self, digest: &Digest) -> anyhow::Result<(Digest, u64)> {
        // Images sharing a layer ask at the same time: one computes, the rest
        // wait for its memo.
        let lock = self.lock_for_key(format!("diffid {digest}"));
        let _guard = lock.lock().await;
        let memo = self.memo_dir().join("diffids").join(digest.hex());
        if let Ok(text) = tokio::fs::read_to_string(&memo).await
            && let Some((diff_id, size)) = text.trim().split_once(' ')
            && let (Ok(diff_id), Ok(size)) = (Digest::parse(diff_id), size.parse())
        {
            return Ok((diff_id, size));
        }
        let path = self.path(digest);
        let (diff_id, size) = tokio::task::spawn_blocking(move || uncompressed_digest(&path))
            .await
            .context("hashing task failed")??;
        // The memo only saves hashing again: failing to write it (a full disk) fails
        // nothing, and the atomic write leaves no truncated memo behind.
        let text = format!("{diff_id} {size}");
        let written = memo.clone();
        let remembered =
            tokio::task::spawn_blocking(move || write_atomic(&written, text.as_bytes()))
                .await
                .context("the memo task failed")?;
        if let Err(error) = remembered {
            tracing::warn!(
                "cannot remember the DiffID in {}: {error:#}",
                memo.display()
            );
        }
        Ok((diff_id, size))
    }
}

/// After a failed local write (typically a full disk) the partial download is removed,
/// so it neither keeps the disk full nor is resumed from; the error names it.
async fn discard_partial(
    file: tokio::io::BufWriter<tokio::fs::File>,
    partial: &Path,
    error: std::io::Error,
) -> anyhow::Error {
    drop(file);
    let _ = tokio::fs::remove_file(partial).await;
    anyhow::Error::new(error).context(format!(
        "cannot write {} (the partial download was removed)",
        partial.display()
    ))
}

/// SHA-256 of a file's content.
pub fn hash_file(path: &Path) -> anyhow::Result<Digest> {
    let mut file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 256 * 1024];
    loop {
        let read = file
            .read(&mut buffer)
            .with_context(|| format!("cannot read {}", path.display()))?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
    }
    Ok(Digest::from_hasher(hasher))
}

/// The pid in a `<name>.tmp-<pid>` or `<name>.tmp-<pid>-<n>` file name (the
/// temporary names of earlier versions).
fn temporary_pid(name: &str) -> Option<i32> {
    let (_, rest) = name.rsplit_once(".tmp-")?;
    let pid = rest.split('-').next()?;
    if pid.is_empty() || !pid.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    pid.parse().ok()
}

/// Removes `*.tmp-<pid>[-<n>]` files of dead processes in `dir` (not below).
fn remove_dead_temporaries(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => {
            return Err(error).with_context(|| format!("cannot list {}", dir.display()));
        }
    };
    let mut removed = Vec::new();
    for entry in entries {
        let entry = entry.with_context(|| format!("cannot list {}", dir.display()))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(pid) = temporary_pid(&name)
            && entry.file_type().is_ok_and(|kind| kind.is_file())
            && !crate::archive::durable::process_alive(pid)
        {
            std::fs::remove_file(entry.path())
                .with_context(|| format!("cannot remove {}", entry.path().display()))?;
            removed.push(entry.path());
        }
    }
    Ok(removed)
}

/// SHA-256 and length of a layer after decompression (gzip, zstd or none).
pub fn uncompressed_digest(path: &Path) -> anyhow::Result<(Digest, u64)> {
    let reader = open_uncompressed(path)?;
    let mut reader = reader;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    loop {
        let read = reader
            .read(&mut buffer)
            .with_context(|| format!("cannot decompress {}", path.display()))?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
        total += read as u64;
    }
    Ok((Digest::from_hasher(hasher), total))
}

/// Opens a layer blob and undoes its compression, detected from magic bytes.
pub fn open_uncompressed(path: &Path) -> anyhow::Result<Box<dyn Read + Send>> {
    let mut file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut magic = [0u8; 4];
    let read = file.read(&mut magic)?;
    let file = std::fs::File::open(path)?;
    let reader = std::io::BufReader::with_capacity(256 * 1024, file);
    Ok(if read >= 2 && magic[..2] == [0x1f, 0x8b] {
        Box::new(flate2::read::MultiGzDecoder::new(reader))
    } else if read == 4 && magic == [0x28, 0xb5, 0x2f, 0xfd] {
        bail!(
            "{} is zstd-compressed; zstd layers cannot be written to a docker-save archive yet (use --format oci)",
            path.display()
        )
    } else {
        Box::new(reader)
    })
}

/// How much of the blob a previous attempt left in `partial` (the final hash of
/// the whole file checks it); a partial longer than the blob can be, or complete
/// but never renamed, is discarded.
async fn partial_length(partial: &Path, size: u64) -> u64 {
    let length = match tokio::fs::metadata(partial).await {
        Ok(metadata) => metadata.len(),
        Err(_) => return 0,
    };
    if length > size || (length == size && size > 0) {
        let _ = tokio::fs::remove_file(partial).await;
        return 0;
    }
    length
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_validation() {
        assert!(Digest::parse(&format!("sha256:{}", "0".repeat(64))).is_ok());
        assert!(
            Digest::parse("sha512:abc")
                .unwrap_err()
                .to_string()
                .contains("only sha256")
        );
        assert!(
            Digest::parse("sha256:XYZ")
                .unwrap_err()
                .to_string()
                .contains("malformed")
        );
    }

    #[test]
    fn digest_of_known_bytes() {
        assert_eq!(
            sha256_digest(b"").as_str(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn leftovers_of_dead_runs_are_removed_and_resumable_or_live_files_kept() {
        let dir = tempfile::tempdir().unwrap();
        let cache = BlobCache::new(dir.path());
        let hex = "a".repeat(64);
        // Pid numbers are capped well below i32::MAX: these processes cannot be running.
        let dead = i32::MAX - 3;
        let mine = std::process::id();
        let root = dir.path().join("blobs/sha256");
        let memo = dir.path().join(".bunker/diffids");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::create_dir_all(&memo).unwrap();
        let removed_paths = [
            root.join(format!("{hex}.tmp-{dead}-0")),
            root.join(format!("{hex}.partial-{dead}")),
            memo.join(format!("{hex}.partial-{dead}")),
            dir.path().join(format!("index.tmp-{dead}")),
        ];
        let kept_paths = [
            root.join(format!("{hex}.partial")),
            root.join(format!("{hex}.tmp-{mine}-0")),
            memo.join(&hex),
            dir.path().join("index.json"),
        ];
        for path in removed_paths.iter().chain(&kept_paths) {
            std::fs::write(path, b"x").unwrap();
        }
        let mut removed = cache.remove_leftovers().unwrap();
        removed.sort();
        let mut expected = removed_paths.to_vec();
        expected.sort();
        assert_eq!(removed, expected);
        for path in &kept_paths {
            assert!(path.exists(), "{path:?} was kept");
        }
    }

    #[tokio::test]
    async fn put_bytes_refuses_wrong_content_and_diff_id_of_gzip() {
        let dir = tempfile::tempdir().unwrap();
        let cache = BlobCache::new(dir.path());
        let wrong = sha256_digest(b"other");
        let error = cache
            .put_bytes(&wrong, b"content")
            .await
            .unwrap_err()
            .to_string();
        assert!(error.contains("refusing"), "{error}");
        assert!(!cache.contains(&wrong));

        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut encoder, b"layer bytes").unwrap();
        let gz = encoder.finish().unwrap();
        let digest = sha256_digest(&gz);
        cache.put_bytes(&digest, &gz).await.unwrap();
        let (diff_id, size) = cache.diff_id(&digest).await.unwrap();
        assert_eq!(diff_id, sha256_digest(b"layer bytes"));
        assert_eq!(size, 11);
        // Second call reads the memo.
        assert_eq!(cache.diff_id(&digest).await.unwrap().1, 11);
    }
}

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

    pub fn contains(&self, digest: &Digest) -> bool {
        self.path(digest).is_file()
    }

    fn lock_for(&self, digest: &Digest) -> Arc<tokio::sync::Mutex<()>> {
        self.lock_for_key(digest.as_str().to_string())
    }

    fn lock_for_key(&self, key: String) -> Arc<tokio::sync::Mutex<()>> {
        self.locks
            .lock()
            .expect("blob lock table")
            .entry(key)
            .or_default()
            .clone()
    }

    /// Stores small content (manifests, configs) after checking its digest.
    pub async fn put_bytes(&self, digest: &Digest, bytes: &[u8]) -> anyhow::Result<PathBuf> {
        let actual = sha256_digest(bytes);
        if &actual != digest {
            bail!("content for {digest} hashes to {actual}; refusing to store it");
        }
        let path = self.path(digest);
        if path.is_file() {
            return Ok(path);
        }
        tokio::fs::create_dir_all(&self.root)
            .await
            .with_context(|| format!("cannot create {}", self.root.display()))?;
        let temporary = self.root.join(unique_temporary_name(digest));
        if let Err(error) = tokio::fs::write(&temporary, bytes).await {
            let _ = tokio::fs::remove_file(&temporary).await;
            return Err(error).with_context(|| format!("cannot write {}", temporary.display()));
        }
        tokio::fs::rename(&temporary, &path).await?;
        Ok(path)
    }

    /// Makes sure the blob is in the cache, downloading (or resuming) it from
    /// `repository` and verifying size and digest. Returns its path.
    pub async fn fetch(
        &self,
        client: &RegistryClient,
        repository: &RepositoryName,
        digest: &Digest,
        size: u64,
        progress: Option<ProgressFn>,
    ) -> anyhow::Result<PathBuf> {
        let lock = self.lock_for(digest);
        let _guard = lock.lock().await;
        let path = self.path(digest);
        if path.is_file() {
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
        let (mut hasher, mut offset) = rehash_partial(&partial, size).await?;
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
                hasher = Sha256::new();
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
                        hasher.update(&chunk);
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
        let actual = Digest::from_hasher(hasher);
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

    /// Synchronous [`BlobCache::put_bytes`] for blocking contexts.
    pub fn put_blocking(&self, digest: &Digest, bytes: &[u8]) -> anyhow::Result<PathBuf> {
        let actual = sha256_digest(bytes);
        if &actual != digest {
            bail!("content for {digest} hashes to {actual}; refusing to store it");
        }
        let path = self.path(digest);
        if path.is_file() {
            return Ok(path);
        }
        std::fs::create_dir_all(&self.root)
            .with_context(|| format!("cannot create {}", self.root.display()))?;
        let temporary = self.root.join(unique_temporary_name(digest));
        if let Err(error) = std::fs::write(&temporary, bytes) {
            let _ = std::fs::remove_file(&temporary);
            return Err(error).with_context(|| format!("cannot write {}", temporary.display()));
        }
        std::fs::rename(&temporary, &path)?;
        Ok(path)
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

    /// The compressed blob known to hold the layer with this diff ID, if any
    /// (so a pushed docker archive reuses the registry's original layer blobs).
    pub fn compressed_for(&self, diff_id: &Digest) -> Option<(Digest, u64)> {
        let text =
            std::fs::read_to_string(self.memo_dir().join("compressed").join(diff_id.hex())).ok()?;
        let (digest, size) = text.trim().split_once(' ')?;
        let digest = Digest::parse(digest).ok()?;
        self.contains(&digest)
            .then_some((digest, size.parse().ok()?))
    }

    /// Records that `compressed` (of `size` bytes) decompresses to `diff_id`.
    pub fn remember_compressed(
        &self,
        diff_id: &Digest,
        compressed: &Digest,
        size: u64,
    ) -> anyhow::Result<()> {
        let dir = self.memo_dir().join("compressed");
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join(diff_id.hex()), format!("{compressed} {size}"))?;
        Ok(())
    }

    /// The DiffID (SHA-256 of the uncompressed tar) and uncompressed size of a
    /// cached layer, computed once and remembered in `blobs/diffids/<hex>`.
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
        // nothing, and no truncated memo stays behind.
        let remembered = async {
            if let Some(parent) = memo.parent() {
                tokio::fs::create_dir_all(parent).await?;
            }
            tokio::fs::write(&memo, format!("{diff_id} {size}")).await
        }
        .await;
        if let Err(error) = remembered {
            let _ = tokio::fs::remove_file(&memo).await;
            tracing::warn!("cannot remember the DiffID in {}: {error}", memo.display());
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

/// `<hex>.tmp-<pid>-<n>`: unique per write, so concurrent stores of the same
/// content never rename each other's file away.
fn unique_temporary_name(digest: &Digest) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}.tmp-{}-{}",
        digest.hex(),
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
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

/// Hashes what a previous attempt left in `partial`; discards it when it is
/// longer than the blob can be.
async fn rehash_partial(partial: &Path, size: u64) -> anyhow::Result<(Sha256, u64)> {
    let length = match tokio::fs::metadata(partial).await {
        Ok(metadata) => metadata.len(),
        Err(_) => return Ok((Sha256::new(), 0)),
    };
    if length > size || (length == size && size > 0) {
        // A complete-but-unrenamed or oversize partial is re-checked from scratch.
        let _ = tokio::fs::remove_file(partial).await;
        return Ok((Sha256::new(), 0));
    }
    let path = partial.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let mut file = std::fs::File::open(&path)?;
        let mut hasher = Sha256::new();
        let mut buffer = vec![0u8; 256 * 1024];
        let mut copied = 0u64;
        loop {
            let read = file.read(&mut buffer)?;
            if read == 0 {
                break;
            }
            hasher.update(&buffer[..read]);
            copied += read as u64;
        }
        Ok::<_, std::io::Error>((hasher, copied))
    })
    .await
    .context("hashing task failed")?
    .with_context(|| format!("cannot read {}", partial.display()))
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

//! Small shared files of the registry side (`index.json`, `oci-layout`,
//! `sync-state.json`, the blob cache's memos) and the locks that guard them.
//!
//! Every write goes through the one commit path of the archive
//! ([`crate::archive::durable::PartialFile`]: temporary name, fsync, rename,
//! fsync of the directory), so a reader sees the old whole file or the new
//! whole one. [`FileLock`] is an `flock` on a lock file: it serialises
//! read-modify-write cycles between processes and between threads of one
//! process (each holder opens its own descriptor), and the kernel drops it when
//! the holder dies, so a crash never leaves a stale lock.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use anyhow::Context;

use crate::archive::durable::PartialFile;

/// Writes `bytes` to `path` atomically and durably, creating the directory.
/// Concurrent writers of one path in this process take turns (their temporary
/// names would otherwise meet).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let turn = path_turn(path);
    let _turn = turn.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let write = || -> io::Result<()> {
        let (partial, mut file) = PartialFile::create(path)?;
        file.write_all(bytes)?;
        partial.commit(file)
    };
    write().with_context(|| format!("cannot write {}", path.display()))
}

/// Puts `source` at `destination` as a hard link (a copy across file systems)
/// through the same commit path as [`write_atomic`]; an existing destination
/// is replaced only by the finished file.
pub fn link_atomic(source: &Path, destination: &Path) -> anyhow::Result<()> {
    let turn = path_turn(destination);
    let _turn = turn.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let place = || -> io::Result<()> {
        let (partial, file) = PartialFile::create(destination)?;
        drop(file);
        std::fs::remove_file(partial.partial())?;
        if std::fs::hard_link(source, partial.partial()).is_err() {
            std::fs::copy(source, partial.partial())?;
        }
        let file = File::open(partial.partial())?;
        partial.commit(file)
    };
    place().with_context(|| {
        format!(
            "cannot place {} at {}",
            source.display(),
            destination.display()
        )
    })
}

/// Whether two paths are the same file (one inode: a hard link of the other).
pub fn is_same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

fn path_turn(path: &Path) -> Arc<Mutex<()>> {
    static TURNS: OnceLock<Mutex<HashMap<PathBuf, Arc<Mutex<()>>>>> = OnceLock::new();
    TURNS
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .entry(path.to_path_buf())
        .or_default()
        .clone()
}

/// An exclusive `flock` on a lock file, released on drop (or when the process dies).
#[derive(Debug)]
pub struct FileLock {
    file: File,
}

impl FileLock {
    /// Waits until the lock on `path` (created if missing, with its directory) is ours.
    /// Blocking: call it from a blocking context or via [`FileLock::acquire`].
    pub fn acquire_blocking(path: &Path) -> anyhow::Result<FileLock> {
        let open = || -> io::Result<File> {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(path)
        };
        let file = open().with_context(|| format!("cannot open the lock {}", path.display()))?;
        loop {
            // SAFETY: flock on a descriptor we own; no memory is involved.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } == 0 {
                return Ok(FileLock { file });
            }
            let error = io::Error::last_os_error();
            if error.kind() != io::ErrorKind::Interrupted {
                return Err(error).with_context(|| format!("cannot lock {}", path.display()));
            }
        }
    }

    /// Whether someone holds the lock on `path` right now (a missing file is free).
    pub fn is_held(path: &Path) -> bool {
        let Ok(file) = File::open(path) else {
            return false;
        };
        // SAFETY: as above; a successful probe is undone at once.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
            unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_UN) };
            false
        } else {
            true
        }
    }

    /// [`FileLock::acquire_blocking`] on the blocking pool.
    pub async fn acquire(path: PathBuf) -> anyhow::Result<FileLock> {
        tokio::task::spawn_blocking(move || FileLock::acquire_blocking(&path))
            .await
            .context("the lock task failed")?
    }
}

impl Drop for FileLock {
    fn drop(&mut self) {
        // SAFETY: unlocking our own descriptor (closing it would release it too).
        unsafe {
            libc::flock(self.file.as_raw_fd(), libc::LOCK_UN);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lock_excludes_other_descriptors_and_is_released_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("locks/x.lock");
        assert!(!FileLock::is_held(&path));
        let lock = FileLock::acquire_blocking(&path).unwrap();
        assert!(FileLock::is_held(&path));
        drop(lock);
        assert!(!FileLock::is_held(&path));
    }

    #[test]
    fn write_atomic_replaces_whole_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state/s.json");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        let names: Vec<_> = std::fs::read_dir(dir.path().join("state"))
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        assert_eq!(names, vec!["s.json"]);
    }
}

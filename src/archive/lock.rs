//! The lock that stops two runs writing one archive directory.
//!
//! `manifest.lock` next to manifest.json is held with `flock` for the whole
//! run. The kernel releases it when the holder exits, however it exits, so a
//! crashed run never leaves a stale lock behind; the file itself stays and
//! records the holder's pid and start time for the error the next run shows.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use super::layout::ArchDir;

/// File name of the lock, next to manifest.json.
pub const LOCK_FILE_NAME: &str = "manifest.lock";

/// Why the lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "archive directory {dir} is in use by another bunker run ({holder}, lock file {lock}); \
         wait for it to finish"
    )]
    Held {
        dir: PathBuf,
        lock: PathBuf,
        holder: String,
    },
    /// The cause is part of the message, not a `source`, so that printing the error
    /// chain does not repeat it.
    #[error("cannot lock archive directory {dir} (lock file {lock}): {cause}")]
    Io {
        dir: PathBuf,
        lock: PathBuf,
        cause: io::Error,
    },
}

/// Exclusive ownership of an arch directory's manifest for as long as it lives.
#[derive(Debug)]
pub struct ManifestLock {
    file: File,
    path: PathBuf,
}

impl ManifestLock {
    /// Takes the lock of an arch directory (creating the directory), or fails
    /// at once naming the pid that holds it.
    pub fn acquire(arch_dir: &ArchDir) -> Result<ManifestLock, LockError> {
        let dir = arch_dir.path().to_path_buf();
        let path = dir.join(LOCK_FILE_NAME);
        let io_error = |cause| LockError::Io {
            dir: dir.clone(),
            lock: path.clone(),
            cause,
        };
        std::fs::create_dir_all(&dir).map_err(io_error)?;
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io_error)?;
        // SAFETY: flock on a file descriptor we own; no memory is involved.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let error = io::Error::last_os_error();
            if error.raw_os_error() == Some(libc::EWOULDBLOCK) {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                return Err(LockError::Held {
                    dir,
                    lock: path,
                    holder: describe_holder(&holder),
                });
            }
            return Err(io_error(error));
        }
        let record = format!(
            "pid={}\nstarted={}\n",
            std::process::id(),
            super::manifest::now_rfc3339()
        );
        file.set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| file.write_all(record.as_bytes()))
            .and_then(|()| file.flush())
            .map_err(io_error)?;
        Ok(ManifestLock { file, path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ManifestLock {
    fn drop(&mut self) {
        // SAFETY: unlocking our own descriptor; closing it would release the lock too.
        unsafe {
            libc::flock(self.file.as_raw_fd(), libc::LOCK_UN);
        }
    }
}

fn describe_holder(record: &str) -> String {
    let field = |key: &str| {
        record
            .lines()
            .find_map(|line| line.strip_prefix(key)?.strip_prefix('='))
            .map(str::trim)
            .filter(|value| !value.is_empty())
    };
    match (field("pid"), field("started")) {
        (Some(pid), Some(started)) => format!("pid {pid}, started {started}"),
        (Some(pid), None) => format!("pid {pid}"),
        _ => "pid unknown".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_until_the_first_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let arch = ArchDir::new(dir.path().join("x86_64"));
        let first = ManifestLock::acquire(&arch).unwrap();
        let error = ManifestLock::acquire(&arch).unwrap_err();
        let message = error.to_string();
        assert!(
            message.contains(&format!("pid {}", std::process::id())),
            "{message}"
        );
        assert!(message.contains("manifest.lock"), "{message}");
        drop(first);
        ManifestLock::acquire(&arch).unwrap();
    }

    #[test]
    fn holder_records_are_described() {
        assert_eq!(describe_holder("pid=12\nstarted=x\n"), "pid 12, started x");
        assert_eq!(describe_holder(""), "pid unknown");
    }
}

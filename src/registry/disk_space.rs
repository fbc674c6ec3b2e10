//! What a pull does when the disk fills: the first write that fails with
//! ENOSPC marks the run, no image starts after that, and the report names the
//! images that failed only for lack of space with how many bytes they still
//! need against what is free.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

/// Why an image was not started: an earlier write of the run filled the disk.
#[derive(Debug, thiserror::Error)]
#[error(
    "not started for lack of space: an earlier write to {dir} failed with \"No space left on device\""
)]
pub struct NotStartedDiskFull {
    pub dir: PathBuf,
}

/// How far short of space a pull fell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpaceShortfall {
    /// Images that failed only for lack of space.
    pub images: usize,
    /// Bytes those images still needed (blobs not in the cache, plus their
    /// archives for the docker format), an estimate from the manifests.
    pub needed: u64,
    /// Bytes free for this user on the archive's file system at the end.
    pub free: u64,
}

/// Whether `error` is a lack of space: ENOSPC (or EDQUOT) anywhere in its
/// chain, or an image that was not started because of one.
pub fn is_lack_of_space(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause.is::<NotStartedDiskFull>()
            || cause.downcast_ref::<std::io::Error>().is_some_and(|io| {
                matches!(io.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT))
                    || io.kind() == std::io::ErrorKind::StorageFull
            })
            || cause.to_string().contains("No space left on device")
    })
}

/// Bytes available to this user on the file system holding `dir`.
pub fn free_bytes(dir: &Path) -> std::io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes())
        .map_err(|error| std::io::Error::new(std::io::ErrorKind::InvalidInput, error))?;
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: a valid C string and a statvfs struct we own.
    if unsafe { libc::statvfs(path.as_ptr(), &mut stat) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok((stat.f_bavail as u64).saturating_mul(stat.f_frsize as u64))
}

/// The run's disk-full state, shared by its image jobs.
#[derive(Debug, Default)]
pub struct DiskFull {
    hit: AtomicBool,
    /// Per image that lacked space: its blobs (digest → size) and the bytes of
    /// the files it would write besides them.
    short: Mutex<Vec<(HashMap<String, u64>, u64)>>,
}

impl DiskFull {
    /// Fails with [`NotStartedDiskFull`] once a write of the run hit ENOSPC.
    pub fn check(&self, dir: &Path) -> anyhow::Result<()> {
        if self.hit.load(Ordering::SeqCst) {
            return Err(NotStartedDiskFull {
                dir: dir.to_path_buf(),
            }
            .into());
        }
        Ok(())
    }

    /// Looks at an image's result: a lack of space stops new starts and is
    /// remembered with what the image needs.
    pub fn note<T>(
        &self,
        result: &anyhow::Result<T>,
        blobs: impl Iterator<Item = (String, u64)>,
        other_bytes: u64,
    ) {
        if let Err(error) = result
            && is_lack_of_space(error)
        {
            self.hit.store(true, Ordering::SeqCst);
            self.short
                .lock()
                .expect("disk-full table")
                .push((blobs.collect(), other_bytes));
        }
    }

    /// The shortfall, when an image lacked space: blobs not in the cache (each
    /// once) plus the other files, against the free space of `dir` now.
    pub fn shortfall(
        &self,
        dir: &Path,
        in_cache: impl Fn(&str, u64) -> bool,
    ) -> Option<SpaceShortfall> {
        let short = self.short.lock().expect("disk-full table");
        if short.is_empty() {
            return None;
        }
        let mut blobs = HashMap::new();
        let mut other = 0u64;
        for (image_blobs, other_bytes) in short.iter() {
            blobs.extend(image_blobs.iter().map(|(d, s)| (d.clone(), *s)));
            other += other_bytes;
        }
        let missing: u64 = blobs
            .iter()
            .filter(|(digest, size)| !in_cache(digest, **size))
            .map(|(_, size)| size)
            .sum();
        Some(SpaceShortfall {
            images: short.len(),
            needed: missing + other,
            free: free_bytes(dir).unwrap_or(0),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enospc_anywhere_in_the_chain_is_a_lack_of_space() {
        let full = anyhow::Error::new(std::io::Error::from_raw_os_error(libc::ENOSPC))
            .context("cannot write x");
        assert!(is_lack_of_space(&full));
        let other = anyhow::Error::new(std::io::Error::from_raw_os_error(libc::EACCES));
        assert!(!is_lack_of_space(&other));
        let state = DiskFull::default();
        state.check(Path::new("/a")).unwrap();
        state.note::<()>(&Err(full), [("d".to_string(), 5)].into_iter(), 7);
        let error = state.check(Path::new("/a")).unwrap_err();
        assert!(is_lack_of_space(&error));
        let shortfall = state.shortfall(Path::new("/"), |_, _| false).unwrap();
        assert_eq!((shortfall.images, shortfall.needed), (1, 12));
    }
}

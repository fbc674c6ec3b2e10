//! Crash-safe file writes: write under a temporary name unique to this export
//! (`<file>.partial-<pid>-<n>`) in the same directory, fsync, rename over the
//! final name, fsync the directory.
//!
//! A reader therefore sees either the old complete file or the new complete
//! one, never a torn write. A crash leaves at most a temporary file whose name
//! carries the writer's pid; [`remove_stale_partials`] removes those of dead
//! processes (every temporary naming scheme bunker uses) and never one a live
//! process is writing.
//!
//! When the rename succeeded but the directory fsync did not: the rename is
//! the commit point. [`PartialFile::commit`] (a new archive under a name
//! nothing refers to yet) removes the new file again and reports the failure,
//! so nothing is recorded for a file that might not survive a power cut;
//! [`write_atomic`] (manifest.json, replaced in place) cannot undo the rename,
//! so it reports success (readers already see the new file) and warns.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

const PARTIAL_MARKER: &str = ".partial-";
/// Other temporary names (`<hex>.tmp-<pid>-<n>`, `index.tmp-<pid>`) written in
/// the blob cache and OCI layouts; the cleaner knows them too.
const TMP_MARKER: &str = ".tmp-";

/// Numbers the temporary files of this process, so two exports to one
/// destination never share a temporary file.
static NEXT_PARTIAL: AtomicU64 = AtomicU64::new(0);

/// `<dest>.partial-<pid>-<n>`: a fresh temporary name for one write of `destination`.
pub fn partial_path(destination: &Path) -> PathBuf {
    let mut name = destination.as_os_str().to_os_string();
    let number = NEXT_PARTIAL.fetch_add(1, Ordering::Relaxed);
    name.push(format!("{PARTIAL_MARKER}{}-{number}", std::process::id()));
    PathBuf::from(name)
}

/// A file being written under its partial name; removed on drop unless committed.
pub struct PartialFile {
    partial: PathBuf,
    destination: PathBuf,
    committed: bool,
}

impl PartialFile {
    /// Creates `<dest>.partial-<pid>-<n>` (a name no other write uses), creating
    /// the parent directory.
    pub fn create(destination: &Path) -> io::Result<(PartialFile, File)> {
        if let Some(parent) = destination
            .parent()
            .filter(|parent| !parent.as_os_str().is_empty())
        {
            fs::create_dir_all(parent)?;
        }
        let partial = partial_path(destination);
        let file = File::options()
            .write(true)
            .create_new(true)
            .open(&partial)?;
        Ok((
            PartialFile {
                partial,
                destination: destination.to_path_buf(),
                committed: false,
            },
            file,
        ))
    }

    pub fn partial(&self) -> &Path {
        &self.partial
    }

    /// Makes the written file durable and moves it to the destination, which is
    /// replaced atomically only now. When the directory cannot be fsynced after
    /// the rename, the destination is removed again and the error returned: use
    /// this for a destination nothing refers to yet.
    pub fn commit(mut self, file: File) -> io::Result<()> {
        file.sync_all()?;
        drop(file);
        fs::rename(&self.partial, &self.destination)?;
        self.committed = true;
        if let Err(error) = sync_parent_dir(&self.destination) {
            let _ = fs::remove_file(&self.destination);
            return Err(error);
        }
        Ok(())
    }

    /// Like [`commit`](Self::commit), for a file replaced in place: once the
    /// rename succeeded the new file is what readers see, so a failing
    /// directory fsync is only warned about.
    pub fn commit_replacing(mut self, file: File) -> io::Result<()> {
        file.sync_all()?;
        drop(file);
        fs::rename(&self.partial, &self.destination)?;
        self.committed = true;
        if let Err(error) = sync_parent_dir(&self.destination) {
            eprintln!(
                "warning: {} was replaced, but its directory could not be fsynced ({error}): \
                 a power cut may bring the previous version back",
                self.destination.display()
            );
        }
        Ok(())
    }
}

impl Drop for PartialFile {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_file(&self.partial);
        }
    }
}

/// fsyncs the directory holding `path`, so a rename in it survives a crash.
pub fn sync_parent_dir(path: &Path) -> io::Result<()> {
    let parent = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    File::open(parent)?.sync_all()
}

/// Writes a small file atomically (partial name, fsync, rename, fsync dir),
/// replacing the file in place (see [`PartialFile::commit_replacing`]).
pub fn write_atomic(destination: &Path, bytes: &[u8]) -> io::Result<()> {
    let (partial, mut file) = PartialFile::create(destination)?;
    io::Write::write_all(&mut file, bytes)?;
    partial.commit_replacing(file)
}

/// The pid a temporary file name carries: `*.partial-<pid>`,
/// `*.partial-<pid>-<n>`, `*.tmp-<pid>` or `*.tmp-<pid>-<n>`.
fn partial_pid(name: &str) -> Option<i32> {
    [PARTIAL_MARKER, TMP_MARKER].into_iter().find_map(|marker| {
        let (_, suffix) = name.rsplit_once(marker)?;
        let pid = match suffix.split_once('-') {
            Some((pid, number)) if all_digits(number) => pid,
            Some(_) => return None,
            None => suffix,
        };
        if all_digits(pid) {
            pid.parse().ok()
        } else {
            None
        }
    })
}

fn all_digits(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|byte| byte.is_ascii_digit())
}

/// Whether a process with this pid exists (signal 0 probes without signalling).
pub fn process_alive(pid: i32) -> bool {
    if pid <= 0 {
        return false;
    }
    // SAFETY: kill with signal 0 performs only the existence and permission check.
    let result = unsafe { libc::kill(pid, 0) };
    result == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// Removes the temporary files (every naming scheme of [`partial_pid`]) left
/// by processes that died (their pid no longer exists) in `dir` and its
/// subdirectories (an arch dir and its project dirs). A file whose writer is
/// alive is never touched. Returns the removed paths.
pub fn remove_stale_partials(dir: &Path) -> io::Result<Vec<PathBuf>> {
    remove_stale_partials_to_depth(dir, 2)
}

/// [`remove_stale_partials`] looking `depth` directory levels deep (1: `dir`
/// only), for trees such as a blob cache.
pub fn remove_stale_partials_to_depth(dir: &Path, depth: usize) -> io::Result<Vec<PathBuf>> {
    let mut removed = Vec::new();
    remove_stale_partials_in(dir, depth.max(1), &mut removed)?;
    removed.sort();
    Ok(removed)
}

fn remove_stale_partials_in(
    dir: &Path,
    depth: usize,
    removed: &mut Vec<PathBuf>,
) -> io::Result<()> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(error) => return Err(error),
    };
    for entry in entries {
        let entry = entry?;
        let file_type = entry.file_type()?;
        if file_type.is_dir() {
            if depth > 1 {
                remove_stale_partials_in(&entry.path(), depth - 1, removed)?;
            }
            continue;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(pid) = partial_pid(&name)
            && file_type.is_file()
            && !process_alive(pid)
        {
            match fs::remove_file(entry.path()) {
                Ok(()) => removed.push(entry.path()),
                // Another cleaner was faster.
                Err(error) if error.kind() == io::ErrorKind::NotFound => {}
                Err(error) => return Err(error),
            }
        }
    }
    Ok(())
}

/// Leftover `*.partial-<pid>` files (any pid) under `dir`, for reports.
pub fn find_partials(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    for entry in walk_two_levels(dir)? {
        let name = entry
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default();
        if partial_pid(&name).is_some() {
            found.push(entry);
        }
    }
    found.sort();
    Ok(found)
}

fn walk_two_levels(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            for inner in fs::read_dir(entry.path())? {
                let inner = inner?;
                if inner.file_type()?.is_file() {
                    files.push(inner.path());
                }
            }
        } else {
            files.push(entry.path());
        }
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_names_carry_the_pid() {
        let path = partial_path(Path::new("/a/b.tar.gz"));
        let name = path.file_name().unwrap().to_str().unwrap();
        assert_eq!(partial_pid(name), Some(std::process::id() as i32));
        assert_eq!(partial_pid("b.tar.gz"), None);
        assert_eq!(partial_pid("b.tar.gz.partial-"), None);
        assert_eq!(partial_pid("b.tar.gz.partial-12x"), None);
        assert_eq!(partial_pid("b.tar.gz.partial-12-3"), Some(12));
        assert_eq!(partial_pid("b.tar.gz.partial-12-"), None);
        assert_eq!(partial_pid("ab12.tmp-77-0"), Some(77));
        assert_eq!(partial_pid("index.tmp-77"), Some(77));
        assert_eq!(partial_pid("ab12.partial"), None);
        assert_ne!(
            partial_path(Path::new("/a/b")),
            partial_path(Path::new("/a/b"))
        );
    }

    #[test]
    fn commit_replaces_and_drop_removes() {
        let dir = tempfile::tempdir().unwrap();
        let destination = dir.path().join("project/file.tar");
        write_atomic(&destination, b"old").unwrap();
        let (partial, file) = PartialFile::create(&destination).unwrap();
        assert!(partial.partial().exists());
        drop(file);
        drop(partial);
        assert_eq!(fs::read(&destination).unwrap(), b"old");
        assert_eq!(find_partials(dir.path()).unwrap(), Vec::<PathBuf>::new());
        write_atomic(&destination, b"new").unwrap();
        assert_eq!(fs::read(&destination).unwrap(), b"new");
    }

    #[test]
    fn only_partials_of_dead_processes_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("project")).unwrap();
        let mine = dir
            .path()
            .join(format!("project/a.tar.gz.partial-{}", std::process::id()));
        // Pid numbers are capped well below i32::MAX, so this one cannot be running.
        let dead = dir
            .path()
            .join(format!("project/b.tar.gz.partial-{}", i32::MAX - 1));
        let manifest_dead = dir
            .path()
            .join(format!("manifest.json.partial-{}", i32::MAX - 2));
        let numbered_dead = dir
            .path()
            .join(format!("project/c.tar.gz.partial-{}-7", i32::MAX - 1));
        let blob_dead = dir
            .path()
            .join(format!("project/ab.tmp-{}-0", i32::MAX - 3));
        let numbered_mine = dir
            .path()
            .join(format!("project/d.tar.gz.partial-{}-7", std::process::id()));
        for path in [
            &mine,
            &dead,
            &manifest_dead,
            &numbered_dead,
            &blob_dead,
            &numbered_mine,
        ] {
            fs::write(path, b"x").unwrap();
        }
        let removed = remove_stale_partials(dir.path()).unwrap();
        assert_eq!(
            removed,
            vec![
                manifest_dead.clone(),
                blob_dead.clone(),
                dead.clone(),
                numbered_dead.clone()
            ]
        );
        assert!(mine.exists());
        assert!(numbered_mine.exists());
    }
}

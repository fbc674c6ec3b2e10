//! Crash-safe file replacement: write to `<file>.partial-<pid>` in the same
//! directory, fsync, rename over the final name, fsync the directory.
//!
//! A reader therefore sees either the old complete file or the new complete
//! one, never a torn write, and a crash leaves at most a `.partial-<pid>` file
//! that [`remove_stale_partials`] cleans up on the next run.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

const PARTIAL_MARKER: &str = ".partial-";

/// `<dest>.partial-<pid>`: the temporary name a file is written under.
pub fn partial_path(destination: &Path) -> PathBuf {
    let mut name = destination.as_os_str().to_os_string();
    name.push(format!("{PARTIAL_MARKER}{}", std::process::id()));
    PathBuf::from(name)
}

/// A file being written under its partial name; removed on drop unless committed.
pub struct PartialFile {
    partial: PathBuf,
    destination: PathBuf,
    committed: bool,
}

impl PartialFile {
    /// Creates (or truncates) `<dest>.partial-<pid>`, creating the parent directory.
    pub fn create(destination: &Path) -> io::Result<(PartialFile, File)> {
        if let Some(parent) = destination
            .parent()
            .filter(|parent| !parent.as_os_str().is_empty())
        {
            fs::create_dir_all(parent)?;
        }
        let partial = partial_path(destination);
        let file = File::create(&partial)?;
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

    /// Makes the written file durable and moves it over the destination, which
    /// is replaced atomically only now.
    pub fn commit(mut self, file: File) -> io::Result<()> {
        file.sync_all()?;
        drop(file);
        fs::rename(&self.partial, &self.destination)?;
        self.committed = true;
        sync_parent_dir(&self.destination)
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

/// Writes a small file atomically (partial name, fsync, rename, fsync dir).
pub fn write_atomic(destination: &Path, bytes: &[u8]) -> io::Result<()> {
    let (partial, mut file) = PartialFile::create(destination)?;
    io::Write::write_all(&mut file, bytes)?;
    partial.commit(file)
}

/// The pid a `*.partial-<pid>` file name carries.
fn partial_pid(name: &str) -> Option<i32> {
    let (_, pid) = name.rsplit_once(PARTIAL_MARKER)?;
    if pid.is_empty() || !pid.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    pid.parse().ok()
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

/// Removes `*.partial-<pid>` files left by runs that died (their pid no longer
/// exists) in `dir` and its subdirectories (an arch dir and its project dirs).
/// Returns the removed paths.
pub fn remove_stale_partials(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut removed = Vec::new();
    remove_stale_partials_in(dir, 2, &mut removed)?;
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
            fs::remove_file(entry.path())?;
            removed.push(entry.path());
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
        for path in [&mine, &dead, &manifest_dead] {
            fs::write(path, b"x").unwrap();
        }
        let removed = remove_stale_partials(dir.path()).unwrap();
        assert_eq!(removed, vec![manifest_dead.clone(), dead.clone()]);
        assert!(mine.exists());
    }
}

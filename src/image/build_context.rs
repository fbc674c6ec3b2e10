//! The build context of an image build: the context directory tarred on the
//! workstation, honouring `.dockerignore` with Docker's own rules
//! ([`super::dockerignore`]), and streamed to the engine's build endpoint.
//!
//! It does what the docker CLI does for `docker build` with the classic
//! builder:
//!
//! - the walk is lexical and skips ignored directories unless an exception
//!   (`!dir/file`) starts inside them, in which case the directory itself is
//!   left out but its matching entries are sent;
//! - the Dockerfile and `.dockerignore` are always sent, even when ignored;
//! - a Dockerfile outside the context is sent as `.dockerfile.<hash>` and
//!   added to the sent `.dockerignore`, so that `COPY . .` does not pick it up;
//! - entries are regular files, directories and symlinks with their mode bits,
//!   owned by 0:0 (sockets, FIFOs and devices are left out).
//!
//! The entries are listed (and every file opened once, to report an
//! unreadable one before anything is sent) when the context is prepared; the
//! tar is then written on its own thread into a bounded channel, so memory use
//! stays flat whatever the context size.

use std::collections::HashMap;
use std::fs::{File, Metadata};
use std::io::{self, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use futures_util::stream::{BoxStream, Stream, StreamExt};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use walkdir::WalkDir;

use super::dockerignore::{DockerIgnore, DockerIgnoreError, MatchInfo};

/// Bytes per chunk sent to the engine, and chunks buffered ahead of it.
const CHUNK_SIZE: usize = 256 * 1024;
const CHUNKS_AHEAD: usize = 8;

/// Why a build context cannot be sent.
#[derive(Debug, thiserror::Error)]
pub enum BuildContextError {
    #[error(
        "build context {} is missing or not a directory: check the service's `build.context`",
        path.display()
    )]
    ContextMissing { path: PathBuf },
    #[error(
        "Dockerfile {} is missing or not a file: check the service's `build.dockerfile`",
        path.display()
    )]
    DockerfileMissing { path: PathBuf },
    #[error(transparent)]
    DockerIgnore(#[from] DockerIgnoreError),
    #[error("cannot read {}: {source}; fix its permissions or exclude it in .dockerignore", path.display())]
    Unreadable {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot start the thread that writes the build context: {0}")]
    Thread(#[source] io::Error),
}

/// A build context being streamed: a [`Stream`] of tar bytes, plus what the
/// build request needs to know about it.
pub struct BuildContext {
    /// The value of the build endpoint's `dockerfile` parameter: the
    /// Dockerfile's path inside the context, or the generated name of a
    /// Dockerfile that lives outside it.
    pub dockerfile: String,
    /// The paths in the tar, in order.
    pub entries: Vec<PathBuf>,
    stream: BoxStream<'static, Result<Bytes, io::Error>>,
}

impl Stream for BuildContext {
    type Item = Result<Bytes, io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.stream.poll_next_unpin(context)
    }
}

impl std::fmt::Debug for BuildContext {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("BuildContext")
            .field("dockerfile", &self.dockerfile)
            .field("entries", &self.entries.len())
            .finish_non_exhaustive()
    }
}

/// Prepares the context of `context_dir` for a build with `dockerfile` (a path
/// relative to the context, or absolute) and starts tarring it. This lists
/// the context on the calling thread: from async code, call it inside
/// `spawn_blocking`.
pub fn context_stream(
    context_dir: &Path,
    dockerfile: &str,
) -> Result<BuildContext, BuildContextError> {
    let plan = plan(context_dir, dockerfile)?;
    let (sender, mut receiver) = mpsc::channel(CHUNKS_AHEAD);
    let dockerfile = plan.dockerfile.clone();
    let entries = plan.entry_names();
    std::thread::Builder::new()
        .name("build-context".to_string())
        .spawn(move || write_tar(plan, sender))
        .map_err(BuildContextError::Thread)?;
    let stream = futures_util::stream::poll_fn(move |context| receiver.poll_recv(context)).boxed();
    Ok(BuildContext {
        dockerfile,
        entries,
        stream,
    })
}

/// The paths [`context_stream`] would send, in order (for tests and `--dry-run`).
pub fn context_entries(
    context_dir: &Path,
    dockerfile: &str,
) -> Result<Vec<PathBuf>, BuildContextError> {
    Ok(plan(context_dir, dockerfile)?.entry_names())
}

/// Everything decided before the first byte is written.
struct Plan {
    items: Vec<Item>,
    dockerfile: String,
}

struct Item {
    /// The path inside the tar.
    name: PathBuf,
    source: Source,
}

enum Source {
    Directory {
        metadata: Metadata,
    },
    File {
        path: PathBuf,
        metadata: Metadata,
    },
    Symlink {
        path: PathBuf,
        metadata: Metadata,
    },
    Generated {
        content: Vec<u8>,
        mode: u32,
        mtime: u64,
    },
}

impl Plan {
    fn entry_names(&self) -> Vec<PathBuf> {
        self.items.iter().map(|item| item.name.clone()).collect()
    }
}

fn plan(context_dir: &Path, dockerfile: &str) -> Result<Plan, BuildContextError> {
    let root = context_dir
        .canonicalize()
        .ok()
        .filter(|root| root.is_dir())
        .ok_or_else(|| BuildContextError::ContextMissing {
            path: context_dir.to_path_buf(),
        })?;
    let dockerfile_path = context_dir.join(dockerfile);
    let dockerfile_real = dockerfile_path
        .canonicalize()
        .ok()
        .filter(|path| path.is_file())
        .ok_or_else(|| BuildContextError::DockerfileMissing {
            path: dockerfile_path.clone(),
        })?;
    let dockerfile_inside = dockerfile_real.strip_prefix(&root).ok().map(slash_name);

    let ignore_path = root.join(".dockerignore");
    let mut ignore = DockerIgnore::read(&root)?;
    // The docker CLI keeps these two whatever .dockerignore says.
    let mut keep = |path: &str| -> Result<(), BuildContextError> {
        if ignore.is_ignored(path) {
            ignore
                .push(&format!("!{path}"))
                .map_err(|message| DockerIgnoreError {
                    path: ignore_path.clone(),
                    line: 0,
                    message,
                })?;
        }
        Ok(())
    };
    keep(".dockerignore")?;
    if let Some(relative) = &dockerfile_inside {
        keep(relative)?;
    }

    let mut items = walk(&root, &ignore)?;
    let dockerfile = match dockerfile_inside {
        Some(relative) => relative,
        None => add_outside_dockerfile(&mut items, &dockerfile_real)?,
    };
    Ok(Plan { items, dockerfile })
}

/// The lexical walk of the docker CLI's `TarWithOptions`.
fn walk(root: &Path, ignore: &DockerIgnore) -> Result<Vec<Item>, BuildContextError> {
    let mut items = Vec::new();
    let mut directory_matches: HashMap<PathBuf, MatchInfo> = HashMap::new();
    let no_match = MatchInfo::default();
    let mut walker = WalkDir::new(root)
        .min_depth(1)
        .follow_links(false)
        .sort_by_file_name()
        .into_iter();
    while let Some(entry) = walker.next() {
        let entry = entry.map_err(|error| BuildContextError::Unreadable {
            path: error.path().unwrap_or(root).to_path_buf(),
            source: error.into(),
        })?;
        let Ok(relative) = entry.path().strip_prefix(root) else {
            continue;
        };
        let relative = relative.to_path_buf();
        let name = slash_name(&relative);
        let parent_matches = relative
            .parent()
            .and_then(|parent| directory_matches.get(parent))
            .unwrap_or(&no_match);
        let (ignored, matches) = ignore.matches_using_parent_results(&name, parent_matches);
        let is_directory = entry.file_type().is_dir();
        if is_directory {
            directory_matches.insert(relative.clone(), matches);
        }
        if ignored {
            if is_directory {
                let inside = format!("{name}/");
                let exception_inside = ignore
                    .exceptions()
                    .any(|exception| format!("{exception}/").starts_with(&inside));
                if !exception_inside {
                    walker.skip_current_dir();
                }
            }
            continue;
        }
        let path = entry.path().to_path_buf();
        let metadata = entry
            .metadata()
            .map_err(|error| BuildContextError::Unreadable {
                path: path.clone(),
                source: error.into(),
            })?;
        let file_type = metadata.file_type();
        let source = if file_type.is_dir() {
            Source::Directory { metadata }
        } else if file_type.is_symlink() {
            Source::Symlink { path, metadata }
        } else if file_type.is_file() {
            File::open(&path).map_err(|source| BuildContextError::Unreadable {
                path: path.clone(),
                source,
            })?;
            Source::File { path, metadata }
        } else {
            continue;
        };
        items.push(Item {
            name: relative,
            source,
        });
    }
    Ok(items)
}

/// Adds a Dockerfile that lives outside the context under a generated name,
/// and names it in the sent `.dockerignore`; returns the generated name.
fn add_outside_dockerfile(
    items: &mut Vec<Item>,
    dockerfile: &Path,
) -> Result<String, BuildContextError> {
    let unreadable = |source| BuildContextError::Unreadable {
        path: dockerfile.to_path_buf(),
        source,
    };
    let content = std::fs::read(dockerfile).map_err(unreadable)?;
    let mtime = std::fs::metadata(dockerfile)
        .map_err(unreadable)?
        .mtime()
        .max(0) as u64;
    let digest = Sha256::digest(&content);
    let hex: String = digest.iter().map(|byte| format!("{byte:02x}")).collect();
    let name = format!(".dockerfile.{}", &hex[..20]);

    let ignore_name = Path::new(".dockerignore");
    match items.iter_mut().find(|item| item.name == ignore_name) {
        Some(item) => {
            let (mut ignore_content, mode, ignore_mtime) = match &item.source {
                Source::File { path, metadata } => (
                    std::fs::read(path).map_err(|source| BuildContextError::Unreadable {
                        path: path.clone(),
                        source,
                    })?,
                    metadata.mode(),
                    metadata.mtime().max(0) as u64,
                ),
                _ => (Vec::new(), 0o644, mtime),
            };
            ignore_content.extend_from_slice(format!("\n{name}\n").as_bytes());
            item.source = Source::Generated {
                content: ignore_content,
                mode,
                mtime: ignore_mtime,
            };
            items.push(generated(&name, content, mtime));
        }
        None => {
            items.push(generated(&name, content, mtime));
            let ignore_content = format!(".dockerignore\n{name}\n").into_bytes();
            items.push(generated(".dockerignore", ignore_content, mtime));
        }
    }
    Ok(name)
}

fn generated(name: &str, content: Vec<u8>, mtime: u64) -> Item {
    Item {
        name: PathBuf::from(name),
        source: Source::Generated {
            content,
            mode: 0o600,
            mtime,
        },
    }
}

/// A relative path as `.dockerignore` patterns see it: `/`-separated.
fn slash_name(relative: &Path) -> String {
    relative
        .components()
        .filter_map(|component| match component {
            Component::Normal(part) => Some(part.to_string_lossy()),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("/")
}

fn write_tar(plan: Plan, sender: mpsc::Sender<io::Result<Bytes>>) {
    let writer = ChannelWriter {
        sender: sender.clone(),
        buffer: BytesMut::with_capacity(CHUNK_SIZE),
    };
    let result = (|| {
        let mut builder = tar::Builder::new(writer);
        for item in &plan.items {
            append(&mut builder, item)?;
        }
        builder.into_inner()?.flush()
    })();
    if let Err(error) = result {
        // Fails only when nobody reads any more, which needs no report.
        let _ = sender.blocking_send(Err(error));
    }
}

fn append(builder: &mut tar::Builder<ChannelWriter>, item: &Item) -> io::Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_uid(0);
    header.set_gid(0);
    let with_path = |path: &Path, error: io::Error| {
        io::Error::new(error.kind(), format!("{}: {error}", path.display()))
    };
    match &item.source {
        Source::Directory { metadata } => {
            set_metadata(&mut header, metadata.mode(), metadata.mtime());
            header.set_entry_type(tar::EntryType::Directory);
            header.set_size(0);
            builder.append_data(&mut header, &item.name, io::empty())
        }
        Source::File { path, metadata } => {
            set_metadata(&mut header, metadata.mode(), metadata.mtime());
            header.set_entry_type(tar::EntryType::Regular);
            header.set_size(metadata.len());
            let file = File::open(path).map_err(|error| with_path(path, error))?;
            let reader = ExactReader {
                file,
                remaining: metadata.len(),
                path,
            };
            builder.append_data(&mut header, &item.name, reader)
        }
        Source::Symlink { path, metadata } => {
            set_metadata(&mut header, metadata.mode(), metadata.mtime());
            header.set_entry_type(tar::EntryType::Symlink);
            header.set_size(0);
            let target = std::fs::read_link(path).map_err(|error| with_path(path, error))?;
            builder.append_link(&mut header, &item.name, target)
        }
        Source::Generated {
            content,
            mode,
            mtime,
        } => {
            set_metadata(&mut header, *mode, (*mtime).try_into().unwrap_or(0));
            header.set_entry_type(tar::EntryType::Regular);
            header.set_size(content.len() as u64);
            builder.append_data(&mut header, &item.name, content.as_slice())
        }
    }
}

fn set_metadata(header: &mut tar::Header, mode: u32, mtime: i64) {
    header.set_mode(mode & 0o7777);
    header.set_mtime(mtime.max(0) as u64);
}

/// Reads exactly the size announced in the tar header, failing if the file
/// shrank meanwhile (a grown file is cut at the announced size).
struct ExactReader<'a> {
    file: File,
    remaining: u64,
    path: &'a Path,
}

impl Read for ExactReader<'_> {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 {
            return Ok(0);
        }
        let limit = buffer
            .len()
            .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        let read = self.file.read(&mut buffer[..limit])?;
        if read == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "{} shrank while it was being sent; run the build again",
                    self.path.display()
                ),
            ));
        }
        self.remaining -= read as u64;
        Ok(read)
    }
}

/// Collects the tar into chunks and hands them to the bounded channel,
/// blocking while the engine is slower than the disk.
struct ChannelWriter {
    sender: mpsc::Sender<io::Result<Bytes>>,
    buffer: BytesMut,
}

impl ChannelWriter {
    fn send_buffer(&mut self) -> io::Result<()> {
        let chunk = self.buffer.split().freeze();
        self.sender.blocking_send(Ok(chunk)).map_err(|_| {
            io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the build context is no longer being read",
            )
        })
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buffer.extend_from_slice(data);
        if self.buffer.len() >= CHUNK_SIZE {
            self.send_buffer()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        self.send_buffer()
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::{PermissionsExt, symlink};

    use super::*;

    fn write(root: &Path, relative: &str, content: &str) {
        let path = root.join(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    }

    async fn collect(context: BuildContext) -> Vec<u8> {
        let mut bytes = Vec::new();
        let mut context = context;
        while let Some(chunk) = context.next().await {
            bytes.extend_from_slice(&chunk.unwrap());
        }
        bytes
    }

    /// (name, entry type, mode, uid, content or link target) of each tar entry.
    fn tar_entries(bytes: &[u8]) -> Vec<(String, tar::EntryType, u32, u64, Vec<u8>)> {
        let mut archive = tar::Archive::new(bytes);
        archive
            .entries()
            .unwrap()
            .map(|entry| {
                let mut entry = entry.unwrap();
                let header = entry.header().clone();
                let name = entry.path().unwrap().to_string_lossy().into_owned();
                let mut content = Vec::new();
                entry.read_to_end(&mut content).unwrap();
                if header.entry_type() == tar::EntryType::Symlink {
                    content = header
                        .link_name()
                        .unwrap()
                        .unwrap()
                        .to_string_lossy()
                        .into_owned()
                        .into_bytes();
                }
                (
                    name.trim_end_matches('/').to_string(),
                    header.entry_type(),
                    header.mode().unwrap(),
                    header.uid().unwrap(),
                    content,
                )
            })
            .collect()
    }

    fn names(entries: &[PathBuf]) -> Vec<String> {
        entries.iter().map(|entry| slash_name(entry)).collect()
    }

    #[tokio::test]
    async fn excluded_large_file_is_not_sent() {
        let directory = tempfile::tempdir().unwrap();
        let root = directory.path();
        write(root, "Dockerfile", "FROM scratch\nCOPY . /\n");
        write(root, ".dockerignore", "*.iso\n");
        write(root, "app.txt", "hello");
        let big = File::create(root.join("disk.iso")).unwrap();
        big.set_len(64 * 1024 * 1024).unwrap();

        let context = context_stream(root, "Dockerfile").unwrap();
        assert_eq!(context.dockerfile, "Dockerfile");
        assert_eq!(
            names(&context.entries),
            [".dockerignore", "Dockerfile", "app.txt"]
        );
        let bytes = collect(context).await;
        assert!(bytes.len() < 64 * 1024, "tar is {} bytes", bytes.len());
        let entries = tar_entries(&bytes);
        let sent: Vec<&str> = entries.iter().map(|entry| entry.0.as_str()).collect();
        assert_eq!(sent, [".dockerignore", "Dockerfile", "app.txt"]);
        assert_eq!(entries[2].4, b"hello");
    }

    #[tokio::test]
    async fn large_included_file_streams_intact() {
        let directory = tempfile::tempdir().unwrap();
        let root = directory.path();
        write(root, "Dockerfile", "FROM scratch\n");
        let content: Vec<u8> = (0..3 * CHUNK_SIZE + 17)
            .map(|index| (index % 251) as u8)
            .collect();
        std::fs::write(root.join("data.bin"), &content).unwrap();
        let bytes = collect(context_stream(root, "Dockerfile").unwrap()).await;
        let entries = tar_entries(&bytes);
        let data = entries.iter().find(|entry| entry.0 == "data.bin").unwrap();
        assert_eq!(data.4, content);
    }

    #[test]
    fn exceptions_and_root_only_patterns() {
        let directory = tempfile::tempdir().unwrap();
        let root = directory.path();
        write(root, "Dockerfile", "FROM scratch\n");
        write(
            root,
            ".dockerignore",
            "logs\n!logs/keep.txt\n*.md\nnode_modules\n",
        );
        write(root, "logs/a.log", "a");
        write(root, "logs/keep.txt", "keep");
        write(root, "README.md", "readme");
        write(root, "docs/guide.md", "guide");
        write(root, "node_modules/pkg/index.js", "js");
        write(root, "src/node_modules/x.js", "nested, kept");
        let entries = context_entries(root, "Dockerfile").unwrap();
        assert_eq!(
            names(&entries),
            [
                ".dockerignore",
                "Dockerfile",
                "docs",
                "docs/guide.md",
                "logs/keep.txt",
                "src",
                "src/node_modules",
                "src/node_modules/x.js",
            ]
        );
    }

    #[test]
    fn last_matching_pattern_wins_over_an_earlier_exception() {
        let directory = tempfile::tempdir().unwrap();
        let root = directory.path();
        write(root, "Dockerfile", "FROM scratch\n");
        write(root, ".dockerignore", "!foo/keep.txt\nfoo\n");
        write(root, "foo/keep.txt", "keep");
        let entries = context_entries(root, "Dockerfile").unwrap();
        assert_eq!(names(&entries), [".dockerignore", "Dockerfile"]);
    }

    #[tokio::test]
    async fn dockerfile_and_dockerignore_are_always_sent() {
        let directory = tempfile::tempdir().unwrap();
        let root = directory.path();
        write(root, ".dockerignore", "*\n");
        write(root, "build/Dockerfile.prod", "FROM scratch\n");
        write(root, "build/other", "ignored");
        write(root, "top.txt", "ignored");
        let context = context_stream(root, "build/Dockerfile.prod").unwrap();
        assert_eq!(context.dockerfile, "build/Dockerfile.prod");
        assert_eq!(
            names(&context.entries),
            [".dockerignore", "build/Dockerfile.prod"]
        );
        let entries = tar_entries(&collect(context).await);
        let sent: Vec<&str> = entries.iter().map(|entry| entry.0.as_str()).collect();
        assert_eq!(sent, [".dockerignore", "build/Dockerfile.prod"]);
        assert_eq!(entries[1].4, b"FROM scratch\n");
    }

    #[tokio::test]
    async fn dockerfile_outside_the_context_gets_a_generated_name() {
        let directory = tempfile::tempdir().unwrap();
        let context_dir = directory.path().join("context");
        write(&context_dir, "app.txt", "app");
        write(&context_dir, ".dockerignore", "*.tmp");
        write(
            directory.path(),
            "docker/Dockerfile",
            "FROM scratch\nCOPY app.txt /\n",
        );

        let context = context_stream(&context_dir, "../docker/Dockerfile").unwrap();
        let name = context.dockerfile.clone();
        assert!(name.starts_with(".dockerfile."), "{name}");
        assert_eq!(name.len(), ".dockerfile.".len() + 20);
        assert_eq!(
            names(&context.entries),
            [".dockerignore", "app.txt", name.as_str()]
        );
        let first = collect(context).await;
        let entries = tar_entries(&first);
        assert_eq!(entries[0].4, format!("*.tmp\n{name}\n").into_bytes());
        assert_eq!(entries[2].0, name);
        assert_eq!(entries[2].4, b"FROM scratch\nCOPY app.txt /\n");

        // Deterministic: the same context gives the same bytes.
        let again = collect(context_stream(&context_dir, "../docker/Dockerfile").unwrap()).await;
        assert_eq!(first, again);

        // Without a .dockerignore, one is generated.
        std::fs::remove_file(context_dir.join(".dockerignore")).unwrap();
        let entries = tar_entries(
            &collect(context_stream(&context_dir, "../docker/Dockerfile").unwrap()).await,
        );
        let last = entries.last().unwrap();
        assert_eq!(last.0, ".dockerignore");
        assert_eq!(last.4, format!(".dockerignore\n{name}\n").into_bytes());
    }

    #[tokio::test]
    async fn modes_symlinks_and_owner_are_kept() {
        let directory = tempfile::tempdir().unwrap();
        let root = directory.path();
        write(root, "Dockerfile", "FROM scratch\n");
        write(root, "bin/run.sh", "#!/bin/sh\n");
        std::fs::set_permissions(
            root.join("bin/run.sh"),
            std::fs::Permissions::from_mode(0o4755),
        )
        .unwrap();
        symlink("bin/run.sh", root.join("run")).unwrap();
        symlink("/nonexistent/target", root.join("dangling")).unwrap();
        let entries = tar_entries(&collect(context_stream(root, "Dockerfile").unwrap()).await);
        let find = |name: &str| entries.iter().find(|entry| entry.0 == name).unwrap();
        let (_, kind, mode, uid, _) = find("bin");
        assert_eq!((*kind, *uid), (tar::EntryType::Directory, 0));
        assert_eq!(
            *mode & 0o777,
            std::fs::metadata(root.join("bin")).unwrap().mode() & 0o777
        );
        let (_, kind, mode, _, content) = find("bin/run.sh");
        assert_eq!((*kind, *mode), (tar::EntryType::Regular, 0o4755));
        assert_eq!(content, b"#!/bin/sh\n");
        let (_, kind, _, _, target) = find("run");
        assert_eq!(
            (*kind, target.as_slice()),
            (tar::EntryType::Symlink, &b"bin/run.sh"[..])
        );
        let (_, kind, _, _, target) = find("dangling");
        assert_eq!(
            (*kind, target.as_slice()),
            (tar::EntryType::Symlink, &b"/nonexistent/target"[..])
        );
    }

    #[test]
    fn errors_name_the_path() {
        let directory = tempfile::tempdir().unwrap();
        let root = directory.path();

        let missing = root.join("nope");
        let error = context_entries(&missing, "Dockerfile").unwrap_err();
        assert!(
            matches!(error, BuildContextError::ContextMissing { .. }),
            "{error}"
        );
        assert!(
            error.to_string().contains(&missing.display().to_string()),
            "{error}"
        );
        assert!(error.to_string().contains("build.context"), "{error}");

        let error = context_entries(root, "Dockerfile").unwrap_err();
        assert!(
            matches!(error, BuildContextError::DockerfileMissing { .. }),
            "{error}"
        );
        assert!(
            error
                .to_string()
                .contains(&root.join("Dockerfile").display().to_string()),
            "{error}"
        );

        write(root, "Dockerfile", "FROM scratch\n");
        write(root, ".dockerignore", "# fine\nok\n[\n");
        let error = context_entries(root, "Dockerfile").unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with(&format!("{}:3: ", root.join(".dockerignore").display())),
            "{error}"
        );

        std::fs::remove_file(root.join(".dockerignore")).unwrap();
        std::fs::create_dir(root.join(".dockerignore")).unwrap();
        let error = context_entries(root, "Dockerfile").unwrap_err();
        assert!(error.to_string().contains(".dockerignore"), "{error}");
        assert!(error.to_string().contains("cannot read"), "{error}");
    }
}

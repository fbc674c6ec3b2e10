//! The image archive on disk: `<base>/<arch>/<project>/<file>.tar.gz` plus one
//! `manifest.json` per architecture.
//!
//! - [`layout`]: directories, file names, [`Compression`].
//! - [`manifest`]: manifest.json (schema, atomic saves, entries keyed by project × image).
//! - [`lock`]: one run per archive directory.
//! - [`writer`]: a `docker save` stream into a verified, compressed file in one pass.
//! - [`reader`]: an archive file back into a checked stream of the tar.
//! - [`retag`]: that tar with its image names replaced (loading under a scratch name).
//! - [`verify`] and [`rebuild`]: `archive verify` and `--rebuild-manifest`.
//! - [`docker_tar`], [`scan`], [`digest`], [`durable`]: the pieces they share.

pub mod digest;
pub mod docker_tar;
pub mod durable;
pub mod layout;
pub mod lock;
pub mod manifest;
pub mod reader;
pub mod rebuild;
pub mod retag;
pub mod scan;
pub mod verify;
pub mod writer;

pub use docker_tar::{DockerImageInfo, DockerTarError, ExpectedImage};
pub use durable::{remove_stale_partials, remove_stale_partials_to_depth};
pub use layout::{ArchDir, ArchiveLayout, Compression, archive_file_name, versioned_file_name};
pub use lock::{LockError, ManifestLock};
pub use manifest::{ArchiveAction, ContentIdentity, Manifest, ManifestEntry};
pub use reader::{ArchiveStream, ExpectedFile, open_archive};
pub use rebuild::{RebuiltManifest, rebuild_manifest};
pub use scan::{ArchiveScan, scan_archive};
pub use verify::{VerifyReport, verify_arch_dir, verify_archive_dir, verify_entry};
pub use writer::{WriteOptions, WrittenArchive, write_archive};

//! `image-restore`: put archived images back onto an engine, verified.
//!
//! - [`source`]: which `manifest.json` to use (the target engine's architecture,
//!   never the workstation's) and the clear errors when it is missing, from a newer
//!   bunker, or for another architecture.
//! - [`plan`]: which manifest entries the selected projects need, merged into one
//!   item per image so an image several projects share is loaded once, from the
//!   first file that is sound.
//! - [`engine_state`]: what the engine already holds, compared by image ID, and
//!   re-tagging.
//! - [`load`]: one archive file streamed into the engine's load endpoint while its
//!   size and SHA-256 are checked, and the clean-up after a failed load.
//! - [`wire`]: what travels to the engine (the file as stored, the tar, or the tar
//!   recompressed), and `--wire-compression`; [`send`]: those byte streams, checked
//!   on their way with their end held back.
//! - [`run`]: the whole restore (or its dry run) with bounded parallelism.
//! - [`report`]: the summary table and `--json`.
//! - [`verify_load`]: `archive verify --load`, a load under a scratch name that leaves nothing behind.

pub mod engine_state;
pub mod load;
pub mod plan;
pub mod report;
pub mod run;
pub mod send;
pub mod source;
pub mod verify_load;
pub mod wire;

pub use plan::{RestoreItem, RestorePlan, plan_restore};
pub use report::{ItemResult, Outcome, RestoreReport};
pub use run::{RestoreOptions, restore};
pub use source::{ArchiveChoice, choose_archive};

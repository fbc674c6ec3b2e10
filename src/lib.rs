//! bunker: disaster recovery for self-hosted container infrastructure.
//!
//! The library holds everything; `src/main.rs` only parses the command line and
//! hands over to [`cli`]. Tests and benchmarks call the same code.

pub mod archive;
pub mod archive_run;
pub mod build;
pub mod catalog;
pub mod cli;
pub mod deployed;
pub mod engine;
pub mod image;
pub mod install;
pub mod interrupt;
pub mod progress;
pub mod registry;
pub mod restore;
pub mod settings;

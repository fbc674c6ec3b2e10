//! What the engine runs, compared with the catalog, and archived as it runs.
//!
//! A catalog says what the projects tree would start; the engine says what was
//! started, and a tag may have moved since. [`compare`] lists the three kinds of
//! difference (deployed but not cataloged, cataloged but not deployed, running an
//! image its name no longer points to) for `image-catalog --deployed`;
//! [`render`] prints them; [`running`] asks the engine and compares, for both
//! `--deployed` commands. [`archive`] picks the running images the catalog's
//! archive does not cover for `image-archive --deployed`, and [`naming`] gives a
//! running image whose tag moved a name of its own (`<repo>:<tag>-deployed-<12hex>`).

pub mod archive;
pub mod compare;
pub mod naming;
pub mod render;
pub mod running;

pub use compare::{Comparison, DeployedContainer, Difference, DifferenceKind, compare};

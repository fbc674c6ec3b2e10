//! The image catalog: which images a projects tree needs, resolved exactly as
//! Docker Compose resolves them.
//!
//! Pipeline per project: read the compose file to a YAML value (anchors and
//! `<<` merges applied by the parser), interpolate every string with the
//! project's variables, then read the few fields bunker needs into lenient
//! structs. Built services also have their Dockerfile's `FROM` lines analysed.

pub mod compose;
pub mod dockerfile;
pub mod document;
pub mod envfile;
pub mod instances;
pub mod interpolate;
pub mod model;
pub mod pull_policy;
pub mod scan;
pub mod summary;
pub mod table;
pub mod yaml;

pub use model::*;
pub use scan::{CatalogOptions, load_catalog};

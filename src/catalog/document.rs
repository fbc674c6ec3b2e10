//! The `image-catalog --json` document: the catalog plus its summary under a
//! schema version, so scripts can detect format changes.

use serde::{Deserialize, Serialize};

use super::model::Catalog;
use super::summary::Summary;

/// Version of the JSON schema; raised only for incompatible changes (fields are only ever added).
pub const SCHEMA_VERSION: u32 = 1;

/// What `image-catalog --json` prints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogDocument {
    pub schema_version: u32,
    #[serde(flatten)]
    pub catalog: Catalog,
    pub summary: Summary,
}

impl CatalogDocument {
    /// Wraps `catalog` with its summary.
    pub fn new(catalog: Catalog) -> Self {
        let summary = Summary::of(&catalog);
        Self {
            schema_version: SCHEMA_VERSION,
            catalog,
            summary,
        }
    }
}

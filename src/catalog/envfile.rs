//! Parser for Compose `.env` files (`.env-dist`, `.env_<context>`), written by
//! hand because dotenvy differs from Compose (no `${VAR:-default}`, no unquoted
//! spaces).
//!
//! STUB: the interface below is fixed; the implementation is being written.

use std::path::{Path, PathBuf};

use indexmap::IndexMap;

/// A syntax or interpolation error in an env file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}:{line}: {message}", path.display())]
pub struct EnvFileError {
    pub path: PathBuf,
    /// 1-based line number.
    pub line: usize,
    pub message: String,
}

/// Parses env-file `text` (read from `path`, used in messages). Values are
/// interpolated as Compose does: with variables defined earlier in the file,
/// then `lookup` (the variables of earlier files and the process environment).
pub fn parse_env_file(
    path: &Path,
    text: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<IndexMap<String, String>, EnvFileError> {
    let _ = (path, text, lookup);
    Ok(IndexMap::new())
}

/// Reads and parses the env file at `path`.
pub fn read_env_file(
    path: &Path,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<IndexMap<String, String>, EnvFileError> {
    let text = std::fs::read_to_string(path).map_err(|error| EnvFileError {
        path: path.to_path_buf(),
        line: 0,
        message: format!("cannot read: {error}"),
    })?;
    parse_env_file(path, &text, lookup)
}

//! Settings that come from the projects root rather than from one project:
//! the Docker context name, the root `.env_<context>` file, `BUILD` and
//! `IMAGE_ARCHIVE_DIR`.
//!
//! Precedence everywhere: command-line flag, then process environment, then the
//! root `.env_<context>` file, then the built-in default.

use std::path::{Path, PathBuf};

use indexmap::IndexMap;

use crate::catalog::envfile::{EnvFileError, read_env_file};

/// The Docker context in force: `explicit` (`--context` or `DOCKER_CONTEXT`),
/// else `currentContext` of the Docker config file, else `default`.
pub fn context_name(explicit: Option<&str>) -> String {
    if let Some(name) = explicit.filter(|name| !name.is_empty()) {
        return name.to_string();
    }
    docker_config_current_context().unwrap_or_else(|| "default".to_string())
}

/// The directory of the Docker CLI configuration: `$DOCKER_CONFIG` or `~/.docker`.
pub fn docker_config_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG").filter(|dir| !dir.is_empty()) {
        return Some(PathBuf::from(dir));
    }
    home_dir().map(|home| home.join(".docker"))
}

/// The user's home directory from `$HOME`.
pub fn home_dir() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .filter(|home| !home.is_empty())
        .map(PathBuf::from)
}

fn docker_config_current_context() -> Option<String> {
    let text = std::fs::read_to_string(docker_config_dir()?.join("config.json")).ok()?;
    let value: serde_json::Value = serde_json::from_str(&text).ok()?;
    value
        .get("currentContext")?
        .as_str()
        .filter(|name| !name.is_empty())
        .map(str::to_string)
}

/// The root env file of a projects tree for a context: `<projects_dir>/.env_<context>`.
pub fn root_env_path(projects_dir: &Path, context: &str) -> PathBuf {
    projects_dir.join(format!(".env_{context}"))
}

/// Variables of the root env file, empty when the file does not exist.
pub fn root_env(
    projects_dir: &Path,
    context: &str,
) -> Result<IndexMap<String, String>, EnvFileError> {
    let path = root_env_path(projects_dir, context);
    if !path.exists() {
        return Ok(IndexMap::new());
    }
    read_env_file(&path, &|name| std::env::var(name).ok())
}

/// Whether images may be built: `BUILD` from the environment, else from the root
/// env file; only the exact values `false` and `0` turn building off.
pub fn build_enabled(root_env: &IndexMap<String, String>) -> bool {
    let value = std::env::var("BUILD")
        .ok()
        .or_else(|| root_env.get("BUILD").cloned());
    !matches!(value.as_deref().map(str::trim), Some("false") | Some("0"))
}

/// The archive base directory: `explicit` (`--output-dir`/`--archive-dir`), else
/// `IMAGE_ARCHIVE_DIR` from the environment, else from the root env file, else
/// `./_archive/images`.
pub fn archive_dir(explicit: Option<&Path>, root_env: &IndexMap<String, String>) -> PathBuf {
    if let Some(dir) = explicit {
        return dir.to_path_buf();
    }
    if let Some(dir) = std::env::var_os("IMAGE_ARCHIVE_DIR").filter(|dir| !dir.is_empty()) {
        return PathBuf::from(dir);
    }
    if let Some(dir) = root_env
        .get("IMAGE_ARCHIVE_DIR")
        .filter(|dir| !dir.is_empty())
    {
        return PathBuf::from(dir);
    }
    PathBuf::from("_archive/images")
}

//! The catalog model: what every later job (build, archive, restore) reads.
//!
//! One `CatalogEntry` per project × service, plus one per base image a
//! project's Dockerfiles need. The JSON form of these types is the documented,
//! stable `image-catalog --json` schema (see README.md); add fields, never
//! rename them.

use std::path::PathBuf;

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

/// Where an image comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageSource {
    /// Pulled from a registry as named in `image:`.
    Pull,
    /// Built from a `build:` section.
    Build,
    /// Named in a `FROM` (or `COPY --from`) line of a built service's Dockerfile.
    Base,
}

/// How a service is built.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildInfo {
    /// Local context as an absolute path, or the remote URL (git or tarball).
    pub context: String,
    /// True for a remote context (git URL, `https://…`), which the engine fetches itself.
    pub remote: bool,
    /// Dockerfile path relative to the context (Compose's default: `Dockerfile`).
    pub dockerfile: String,
    /// `dockerfile_inline` content, when the compose file gives one.
    pub dockerfile_inline: Option<String>,
    /// Build args after interpolation; `None` means "take the value from the environment".
    pub args: IndexMap<String, Option<String>>,
    /// Build target stage.
    pub target: Option<String>,
    /// External images the build needs (`FROM`, `COPY --from=`), resolved, in Dockerfile order.
    pub from_images: Vec<String>,
    /// False when the Dockerfile could not be analysed offline (remote context) or
    /// failed to parse (see `Catalog::errors`); `from_images` is then incomplete.
    #[serde(default)]
    pub from_images_known: bool,
    /// Services of the same project whose built image is in `from_images`: build them first.
    #[serde(default)]
    pub after_services: Vec<String>,
}

/// One image a project needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogEntry {
    /// Project directory name.
    pub project: String,
    /// The configured instance (`.env_<context>_<instance>`) this entry was resolved
    /// for; `None` when the project has no configured instance for the context (or
    /// with `--defaults`).
    #[serde(default)]
    pub instance: Option<String>,
    /// The Compose project name the instance runs under (`<project>` for instance
    /// `default`, `<project>_<instance>` otherwise, normalised as Compose does): the
    /// `com.docker.compose.project` label of its containers and the prefix of built
    /// image names. `None` when it could not be worked out (see `Catalog::errors`).
    #[serde(default)]
    pub compose_project: Option<String>,
    /// Compose service; `None` for base-image entries.
    pub service: Option<String>,
    /// The image name exactly as Docker Compose uses it; `None` when it cannot be resolved
    /// (the error is then in `Catalog::errors`).
    pub image: Option<String>,
    /// The raw `image:` text before interpolation, when the service has one.
    pub image_ref: Option<String>,
    pub source: ImageSource,
    /// Build details for `source: build`.
    pub build: Option<BuildInfo>,
    /// For base entries: the services whose builds need this image.
    pub base_for: Vec<String>,
    /// Compose profiles of the service (empty: always active).
    pub profiles: Vec<String>,
    /// The variable that controls the image name, when one does.
    pub env_var: Option<String>,
    /// That variable's value from the project's `.env-dist`.
    pub env_default: Option<String>,
    /// True when the reference has a digest or a tag other than `latest`.
    pub pinned: bool,
    /// Registry host the image comes from (`docker.io` for Docker Hub names); `None` for
    /// locally built images that are never pulled.
    pub registry: Option<String>,
    /// `platform:` of the service or `--platform` of the FROM line.
    pub platform: Option<String>,
    /// The service's Compose `pull_policy` as `docker compose config` prints it
    /// (`if_not_present` as `missing`); `None` when unset (Compose's default,
    /// `missing`) and for base-image entries.
    #[serde(default)]
    pub pull_policy: Option<String>,
}

/// A project found under the projects directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectInfo {
    /// Directory name.
    pub name: String,
    /// The configured instance this is, when the project has configured instances for
    /// the context (one `ProjectInfo` per instance then).
    #[serde(default)]
    pub instance: Option<String>,
    /// The instance's compose override file (`docker-compose.override_<context>_<instance>.yaml`),
    /// applied after `compose_file`, when it exists.
    #[serde(default)]
    pub override_file: Option<PathBuf>,
    /// Compose project name (after Compose's normalisation), the prefix of built image names.
    pub compose_name: Option<String>,
    /// The compose file that was read.
    pub compose_file: PathBuf,
    /// Env files whose variables were applied, lowest precedence first
    /// (`.env-dist`, the root `.env_<context>`, then the instance's `.env_<context>_<instance>`);
    /// the process environment wins over all.
    #[serde(default)]
    pub env_files: Vec<PathBuf>,
    /// True when the project was cataloged without any error.
    pub ok: bool,
}

/// A problem found while cataloging; never fatal for the other projects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogError {
    pub project: String,
    /// The configured instance being resolved, when the project has instances.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    pub service: Option<String>,
    /// The file at fault (compose file, env file, Dockerfile).
    pub file: PathBuf,
    /// 1-based line, when the parser knows it.
    pub line: Option<usize>,
    pub message: String,
}

/// The whole catalog of a projects tree.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Catalog {
    pub projects_dir: PathBuf,
    /// Docker context whose `.env_<context>` file was applied, if any.
    pub context: Option<String>,
    pub projects: Vec<ProjectInfo>,
    pub entries: Vec<CatalogEntry>,
    pub errors: Vec<CatalogError>,
    /// Not errors (the exit status stays 0): for example a compose file without services.
    #[serde(default)]
    pub warnings: Vec<CatalogError>,
    /// True for `--defaults`: configured instances were not looked for.
    #[serde(default)]
    pub defaults_only: bool,
    /// Projects with no configured instance (`.env_<context>_<instance>`) for the
    /// context, resolved from `.env-dist`, the root env file and the environment
    /// alone; empty with `--defaults`.
    #[serde(default)]
    pub without_instances: Vec<String>,
}

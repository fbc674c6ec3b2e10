//! Image references as the registry client sees them: a [`RepositoryName`]
//! (registry host + repository path) plus tag and digest.
//!
//! There is one parser, [`crate::image::reference::ImageReference::parse`]
//! (Docker's rules: `docker.io` and `library/` defaults, `index.docker.io`,
//! host and port validation); this module only views its result the way the
//! distribution API addresses it, trims surrounding blanks from user input,
//! and takes `registry-1.docker.io` (Docker Hub's API host) as Docker Hub.

use std::fmt;

use crate::image::reference as shared;

/// Docker Hub's canonical name and the host its API actually lives on.
pub const DOCKER_HUB: &str = shared::DOCKER_HUB;
pub const DOCKER_HUB_API_HOST: &str = "registry-1.docker.io";

/// Why a reference could not be parsed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReferenceError {
    #[error("empty image reference")]
    Empty,
    #[error("invalid image reference {reference:?}: {reason}")]
    Invalid { reference: String, reason: String },
}

/// A repository on a registry, without tag or digest.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RepositoryName {
    /// Registry host as written by the user (`docker.io` for Docker Hub), with port.
    pub registry: String,
    /// Repository path inside the registry, e.g. `library/alpine` or `group/sub/app`.
    pub repository: String,
}

/// A fully parsed image reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ImageReference {
    pub name: RepositoryName,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

impl RepositoryName {
    /// Parses `[registry/]repository` (a tag or digest is refused).
    pub fn parse(text: &str) -> Result<Self, ReferenceError> {
        let reference = ImageReference::parse(text)?;
        if reference.tag.is_some() || reference.digest.is_some() {
            return Err(invalid(text, "expected a repository without tag or digest"));
        }
        Ok(reference.name)
    }

    /// Builds a name from a registry and a repository path, validating the path.
    pub fn new(registry: &str, repository: &str) -> Result<Self, ReferenceError> {
        let full = format!("{registry}/{repository}");
        validate_repository(&full, repository)?;
        Ok(Self {
            registry: registry.to_string(),
            repository: repository.to_string(),
        })
    }

    /// The name Docker shows: Docker Hub names without `docker.io/` and `library/`.
    pub fn familiar(&self) -> String {
        if self.registry == DOCKER_HUB {
            self.repository
                .strip_prefix("library/")
                .unwrap_or(&self.repository)
                .to_string()
        } else {
            format!("{}/{}", self.registry, self.repository)
        }
    }

    /// The same repository with a tag.
    pub fn with_tag(&self, tag: &str) -> ImageReference {
        ImageReference {
            name: self.clone(),
            tag: Some(tag.to_string()),
            digest: None,
        }
    }
}

impl fmt::Display for RepositoryName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)
    }
}

impl ImageReference {
    /// Parses `[registry/]repository[:tag][@digest]`; without tag or digest the tag is
    /// left empty (see [`ImageReference::tag_or_latest`]).
    pub fn parse(text: &str) -> Result<Self, ReferenceError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(ReferenceError::Empty);
        }
        let parsed =
            shared::ImageReference::parse(text).map_err(|error| ReferenceError::Invalid {
                reference: text.to_string(),
                reason: error.reason,
            })?;
        Ok(Self::from(&parsed))
    }

    /// The tag, `latest` when the reference names neither tag nor digest.
    pub fn tag_or_latest(&self) -> &str {
        self.tag.as_deref().unwrap_or("latest")
    }

    /// What to ask the registry for: the digest when pinned, else the tag.
    pub fn manifest_reference(&self) -> &str {
        self.digest
            .as_deref()
            .or(self.tag.as_deref())
            .unwrap_or("latest")
    }

    /// `name:tag` as Docker shows it, for `RepoTags` in a docker-save archive.
    pub fn familiar_tagged(&self) -> String {
        format!("{}:{}", self.name.familiar(), self.tag_or_latest())
    }
}

impl fmt::Display for ImageReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.name)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

/// The registry view of the shared parser's result. Docker Hub's API host
/// counts as Docker Hub, whose one-component names get `library/`.
impl From<&shared::ImageReference> for ImageReference {
    fn from(reference: &shared::ImageReference) -> Self {
        let hub_api = reference.domain == DOCKER_HUB_API_HOST;
        let registry = if hub_api {
            DOCKER_HUB
        } else {
            &reference.domain
        };
        let repository = if hub_api && !reference.path.contains('/') {
            format!("library/{}", reference.path)
        } else {
            reference.path.clone()
        };
        Self {
            name: RepositoryName {
                registry: registry.to_string(),
                repository,
            },
            tag: reference.tag.clone(),
            digest: reference.digest.clone(),
        }
    }
}

fn validate_repository(reference: &str, repository: &str) -> Result<(), ReferenceError> {
    shared::validate_repository_path(repository).map_err(|reason| invalid(reference, &reason))
}

fn invalid(reference: &str, reason: &str) -> ReferenceError {
    ReferenceError::Invalid {
        reference: reference.to_string(),
        reason: reason.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_hub_short_names_get_library_namespace() {
        let reference = ImageReference::parse("alpine").unwrap();
        assert_eq!(reference.name.registry, "docker.io");
        assert_eq!(reference.name.repository, "library/alpine");
        assert_eq!(reference.tag_or_latest(), "latest");
        assert_eq!(reference.familiar_tagged(), "alpine:latest");
    }

    #[test]
    fn registry_with_port_and_nested_path() {
        let reference = ImageReference::parse("127.0.0.1:5999/group/sub/app:1.2").unwrap();
        assert_eq!(reference.name.registry, "127.0.0.1:5999");
        assert_eq!(reference.name.repository, "group/sub/app");
        assert_eq!(reference.tag.as_deref(), Some("1.2"));
        assert_eq!(reference.to_string(), "127.0.0.1:5999/group/sub/app:1.2");
        assert_eq!(
            reference.familiar_tagged(),
            "127.0.0.1:5999/group/sub/app:1.2"
        );
    }

    #[test]
    fn digest_pins() {
        let digest = format!("sha256:{}", "a".repeat(64));
        let reference = ImageReference::parse(&format!("localhost/app:v1@{digest}")).unwrap();
        assert_eq!(reference.manifest_reference(), digest);
        assert_eq!(reference.tag.as_deref(), Some("v1"));
    }

    #[test]
    fn bad_input_is_rejected_with_reason() {
        assert_eq!(ImageReference::parse(" "), Err(ReferenceError::Empty));
        let error = ImageReference::parse("Upper/Case").unwrap_err().to_string();
        assert!(error.contains("lowercase"), "{error}");
        let error = ImageReference::parse("app@sha256:xyz")
            .unwrap_err()
            .to_string();
        assert!(error.contains("digest"), "{error}");
        assert!(RepositoryName::parse("app:1").is_err());
        let error = ImageReference::parse("host:port/app")
            .unwrap_err()
            .to_string();
        assert!(error.contains("port"), "{error}");
        assert_eq!(
            RepositoryName::new("local", "Bad"),
            Err(invalid(
                "local/Bad",
                "repository component \"Bad\" must be lowercase letters and digits separated by single '.', '_', '__' or '-'"
            ))
        );
    }

    #[test]
    fn agrees_with_the_project_wide_reference_type() {
        for text in [
            "nginx",
            "index.docker.io/library/busybox:1",
            "127.0.0.1:5999/group/app:2",
            "ghcr.io/org/app@sha256:0000000000000000000000000000000000000000000000000000000000000000",
        ] {
            let shared = crate::image::reference::ImageReference::parse(text).unwrap();
            assert_eq!(
                ImageReference::from(&shared),
                ImageReference::parse(text).unwrap(),
                "{text}"
            );
        }
    }

    #[test]
    fn hub_aliases_are_normalised() {
        let reference = ImageReference::parse("index.docker.io/library/busybox:1").unwrap();
        assert_eq!(reference.name.registry, "docker.io");
        assert_eq!(reference.familiar_tagged(), "busybox:1");
        let api_host = ImageReference::parse("registry-1.docker.io/busybox:1").unwrap();
        assert_eq!(api_host, ImageReference::parse("busybox:1").unwrap());
    }
}

//! Docker image references (`nginx`, `ghcr.io/org/app:1.2`, `x@sha256:…`): the one
//! reference type of bunker. Parsing, validation and normalisation follow the Docker CLI
//! and engine (`docker.io` and `library/` defaults, `index.docker.io` alias, familiar
//! names).
//!
//! The catalog, the build and restore jobs and the registry client all compare and
//! address images through this type, so "is this the same image" has one answer. A
//! reference is a [`RepositoryName`] (registry host + repository path, the way the
//! distribution API addresses it) plus tag and digest. [`ImageReference::parse`] reads
//! a name from a compose file or Dockerfile exactly as Docker does;
//! [`ImageReference::parse_input`] reads one a user typed for the registry client
//! (blanks trimmed, `registry-1.docker.io`, Docker Hub's API host, taken as Docker Hub).

use std::fmt;

/// The registry Docker Hub names live in.
pub const DOCKER_HUB: &str = "docker.io";
/// The host Docker Hub's registry API actually lives on.
pub const DOCKER_HUB_API_HOST: &str = "registry-1.docker.io";
const LEGACY_DOCKER_HUB: &str = "index.docker.io";
const OFFICIAL_NAMESPACE: &str = "library";

/// A repository on a registry, without tag or digest.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RepositoryName {
    /// Registry host (and port), `docker.io` when the name has none.
    pub registry: String,
    /// Repository path inside the registry, e.g. `library/nginx` or `group/sub/app`.
    pub repository: String,
}

/// A parsed, normalised image reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ImageReference {
    pub name: RepositoryName,
    /// Tag as written; `None` when the name has no tag.
    pub tag: Option<String>,
    /// Digest (`sha256:<hex>`) as written.
    pub digest: Option<String>,
}

/// Why a string is not a valid image reference.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    #[error("empty image reference")]
    Empty,
    #[error("invalid image reference {reference:?}: {reason}")]
    Invalid { reference: String, reason: String },
}

impl ReferenceError {
    /// What is wrong, without the reference.
    pub fn reason(&self) -> &str {
        match self {
            ReferenceError::Empty => "the name is empty",
            ReferenceError::Invalid { reason, .. } => reason,
        }
    }
}

fn invalid(reference: &str, reason: &str) -> ReferenceError {
    ReferenceError::Invalid {
        reference: reference.to_string(),
        reason: reason.to_string(),
    }
}

impl RepositoryName {
    /// Parses `[registry/]repository` typed by a user (a tag or digest is refused).
    pub fn parse(text: &str) -> Result<Self, ReferenceError> {
        let reference = ImageReference::parse_input(text)?;
        if reference.tag.is_some() || reference.digest.is_some() {
            return Err(invalid(text, "expected a repository without tag or digest"));
        }
        Ok(reference.name)
    }

    /// Builds a name from a registry and a repository path, validating the path.
    pub fn new(registry: &str, repository: &str) -> Result<Self, ReferenceError> {
        validate_repository_path(repository)
            .map_err(|reason| invalid(&format!("{registry}/{repository}"), &reason))?;
        Ok(Self {
            registry: registry.to_string(),
            repository: repository.to_string(),
        })
    }

    /// The name Docker shows: Docker Hub names without `docker.io/`, and without
    /// `library/` when nothing else is left of the path (`nginx`, `user/app`, `ghcr.io/org/app`).
    pub fn familiar(&self) -> String {
        if self.registry == DOCKER_HUB {
            self.repository
                .strip_prefix("library/")
                .filter(|rest| !rest.contains('/'))
                .unwrap_or(&self.repository)
                .to_string()
        } else {
            self.to_string()
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
    /// Parses `text` as Docker does (`docker pull`, compose `image:`).
    pub fn parse(text: &str) -> Result<Self, ReferenceError> {
        let fail = |reason: &str| invalid(text, reason);
        if text.is_empty() {
            return Err(fail("the name is empty"));
        }
        if text.len() > 4096 {
            return Err(fail("the name is too long"));
        }
        let (name_and_tag, digest) = match text.split_once('@') {
            Some((name, digest)) => {
                validate_digest(digest).map_err(|reason| fail(&reason))?;
                (name, Some(digest.to_string()))
            }
            None => (text, None),
        };
        let last_slash = name_and_tag.rfind('/').map_or(0, |index| index + 1);
        let (name, tag) = match name_and_tag[last_slash..].rfind(':') {
            Some(colon) => {
                let split = last_slash + colon;
                (&name_and_tag[..split], Some(&name_and_tag[split + 1..]))
            }
            None => (name_and_tag, None),
        };
        if let Some(tag) = tag {
            validate_tag(tag).map_err(|reason| fail(&reason))?;
        }
        let (domain, path) = split_domain(name);
        if let Some(domain) = &domain {
            validate_domain(domain).map_err(|reason| fail(&reason))?;
        }
        validate_repository_path(path).map_err(|reason| fail(&reason))?;
        let mut domain = domain.unwrap_or_else(|| DOCKER_HUB.to_string());
        if domain == LEGACY_DOCKER_HUB {
            domain = DOCKER_HUB.to_string();
        }
        Ok(Self {
            name: RepositoryName {
                repository: official_path(&domain, path),
                registry: domain,
            },
            tag: tag.map(str::to_string),
            digest,
        })
    }

    /// Parses `[registry/]repository[:tag][@digest]` typed by a user for the registry
    /// client: surrounding blanks are trimmed and Docker Hub's API host counts as
    /// Docker Hub. Without tag or digest the tag is left empty (see
    /// [`ImageReference::tag_or_latest`]).
    pub fn parse_input(text: &str) -> Result<Self, ReferenceError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(ReferenceError::Empty);
        }
        let mut reference = Self::parse(text)?;
        if reference.name.registry == DOCKER_HUB_API_HOST {
            reference.name.repository = official_path(DOCKER_HUB, &reference.name.repository);
            reference.name.registry = DOCKER_HUB.to_string();
        }
        Ok(reference)
    }

    /// The registry host the image is pulled from (`docker.io` for Docker Hub).
    pub fn registry(&self) -> &str {
        &self.name.registry
    }

    /// The host that serves the registry API (`registry-1.docker.io` for Docker Hub).
    pub fn registry_api_host(&self) -> &str {
        if self.name.registry == DOCKER_HUB {
            DOCKER_HUB_API_HOST
        } else {
            &self.name.registry
        }
    }

    /// True when the reference cannot silently change: a digest, or a tag other than `latest`.
    pub fn is_pinned(&self) -> bool {
        self.digest.is_some() || self.tag.as_deref().is_some_and(|tag| tag != "latest")
    }

    /// The tag, with Docker's default `latest` when the name has neither tag nor digest.
    pub fn effective_tag(&self) -> Option<&str> {
        match (&self.tag, &self.digest) {
            (Some(tag), _) => Some(tag),
            (None, Some(_)) => None,
            (None, None) => Some("latest"),
        }
    }

    /// The tag, `latest` when the reference names none (even with a digest).
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

    /// Full repository name: `docker.io/library/nginx`.
    pub fn repository(&self) -> String {
        self.name.to_string()
    }

    /// Repository as `docker images` shows it: `nginx`, `user/app`, `ghcr.io/org/app`.
    pub fn familiar_repository(&self) -> String {
        self.name.familiar()
    }

    /// Fully qualified name with the default tag made explicit:
    /// `docker.io/library/nginx:latest`. Two references name the same image exactly
    /// when their canonical names are equal.
    pub fn canonical(&self) -> String {
        self.render(self.repository(), self.effective_tag())
    }

    /// The short name Docker prints, with the default tag made explicit: `nginx:latest`.
    pub fn familiar(&self) -> String {
        self.render(self.familiar_repository(), self.effective_tag())
    }

    /// `name:tag` as Docker shows it, for `RepoTags` in a docker-save archive.
    pub fn familiar_tagged(&self) -> String {
        format!("{}:{}", self.familiar_repository(), self.tag_or_latest())
    }

    fn render(&self, repository: String, tag: Option<&str>) -> String {
        let mut text = repository;
        if let Some(tag) = tag {
            text.push(':');
            text.push_str(tag);
        }
        if let Some(digest) = &self.digest {
            text.push('@');
            text.push_str(digest);
        }
        text
    }
}

/// `registry/repository[:tag][@digest]` as parsed: no tag is added (see
/// [`ImageReference::canonical`] for the name with Docker's default tag).
impl fmt::Display for ImageReference {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.render(self.repository(), self.tag.as_deref()))
    }
}

/// Docker Hub's one-component names live in `library/`.
fn official_path(domain: &str, path: &str) -> String {
    if domain == DOCKER_HUB && !path.contains('/') {
        format!("{OFFICIAL_NAMESPACE}/{path}")
    } else {
        path.to_string()
    }
}

/// The canonical form of `text`, or `text` itself when it does not parse; for
/// comparing names that may be written differently (`nginx` = `docker.io/library/nginx:latest`).
pub fn canonical_name(text: &str) -> String {
    ImageReference::parse(text).map_or_else(|_| text.to_string(), |reference| reference.canonical())
}

/// Splits off the registry host the way Docker does: the first component is a
/// host when it contains `.` or `:`, is `localhost`, or has upper-case letters.
fn split_domain(name: &str) -> (Option<String>, &str) {
    match name.split_once('/') {
        Some((first, rest))
            if first.contains(['.', ':'])
                || first == "localhost"
                || first.chars().any(|c| c.is_ascii_uppercase()) =>
        {
            (Some(first.to_string()), rest)
        }
        _ => (None, name),
    }
}

fn validate_domain(domain: &str) -> Result<(), String> {
    let (host, port) = match domain.rsplit_once(':') {
        Some((host, port)) if !host.ends_with(']') || domain.starts_with('[') => (host, Some(port)),
        _ => (domain, None),
    };
    if let Some(port) = port
        && (port.is_empty() || !port.bytes().all(|byte| byte.is_ascii_digit()))
    {
        return Err(format!("registry port {port:?} is not a number"));
    }
    if host.starts_with('[') && host.ends_with(']') {
        return Ok(());
    }
    let valid_label = |label: &str| {
        !label.is_empty()
            && label
                .bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    };
    if host.split('.').all(valid_label) {
        Ok(())
    } else {
        Err(format!("registry host {host:?} is not a valid host name"))
    }
}

/// Checks a repository path inside a registry (`library/nginx`, `group/sub/app`):
/// not empty, at most 255 characters, every component valid.
pub fn validate_repository_path(path: &str) -> Result<(), String> {
    if path.is_empty() {
        return Err("the repository name is empty".to_string());
    }
    if path.len() > 255 {
        return Err("the repository name is longer than 255 characters".to_string());
    }
    path.split('/').try_for_each(validate_path_component)
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`
fn validate_path_component(component: &str) -> Result<(), String> {
    let invalid = || {
        Err(format!(
            "repository component {component:?} must be lowercase letters and digits separated by single '.', '_', '__' or '-'"
        ))
    };
    let bytes = component.as_bytes();
    if bytes.is_empty() {
        return invalid();
    }
    let is_alnum = |byte: u8| byte.is_ascii_lowercase() || byte.is_ascii_digit();
    let mut index = 0;
    loop {
        let start = index;
        while index < bytes.len() && is_alnum(bytes[index]) {
            index += 1;
        }
        if index == start {
            return invalid();
        }
        if index == bytes.len() {
            return Ok(());
        }
        let separator_start = index;
        while index < bytes.len() && !is_alnum(bytes[index]) {
            index += 1;
        }
        let separator = &component[separator_start..index];
        let valid =
            matches!(separator, "." | "_" | "__") || separator.bytes().all(|byte| byte == b'-');
        if !valid || index == bytes.len() {
            return invalid();
        }
    }
}

/// `[\w][\w.-]{0,127}`
fn validate_tag(tag: &str) -> Result<(), String> {
    let word = |byte: u8| byte.is_ascii_alphanumeric() || byte == b'_';
    let bytes = tag.as_bytes();
    let valid = !bytes.is_empty()
        && bytes.len() <= 128
        && word(bytes[0])
        && bytes
            .iter()
            .all(|&byte| word(byte) || byte == b'.' || byte == b'-');
    if valid {
        Ok(())
    } else {
        Err(format!(
            "tag {tag:?} must be 1-128 letters, digits, '_', '.' or '-' and not start with '.' or '-'"
        ))
    }
}

fn validate_digest(digest: &str) -> Result<(), String> {
    let Some((algorithm, hex)) = digest.split_once(':') else {
        return Err(format!("digest {digest:?} must be <algorithm>:<hex>"));
    };
    let algorithm_ok = !algorithm.is_empty()
        && algorithm.bytes().all(|byte| {
            byte.is_ascii_lowercase() || byte.is_ascii_digit() || b"+._-".contains(&byte)
        });
    let hex_ok = hex.len() >= 32 && hex.bytes().all(|byte| byte.is_ascii_hexdigit());
    let length_ok = algorithm != "sha256" || hex.len() == 64;
    if algorithm_ok && hex_ok && length_ok {
        Ok(())
    } else {
        Err(format!("digest {digest:?} is not a valid content digest"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> ImageReference {
        ImageReference::parse(text).unwrap_or_else(|error| panic!("{error}"))
    }

    const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn docker_hub_defaults() {
        let nginx = parse("nginx");
        assert_eq!(nginx.canonical(), "docker.io/library/nginx:latest");
        assert_eq!(nginx.familiar(), "nginx:latest");
        assert_eq!(nginx.registry(), "docker.io");
        assert_eq!(nginx.registry_api_host(), "registry-1.docker.io");
        assert!(!nginx.is_pinned());
        assert_eq!(parse("user/app:1").canonical(), "docker.io/user/app:1");
        assert_eq!(
            parse("index.docker.io/library/nginx:1").familiar(),
            "nginx:1"
        );
        assert_eq!(
            parse("docker.io/library/nginx").canonical(),
            nginx.canonical()
        );
    }

    #[test]
    fn registries_and_ports() {
        let reference = parse("ghcr.io/org/team/app:v1.2");
        assert_eq!(reference.registry(), "ghcr.io");
        assert_eq!(reference.name.repository, "org/team/app");
        assert_eq!(reference.tag.as_deref(), Some("v1.2"));
        let local = parse("localhost:5000/app");
        assert_eq!(local.registry(), "localhost:5000");
        assert_eq!(local.canonical(), "localhost:5000/app:latest");
        assert_eq!(parse("localhost/mc").registry(), "localhost");
        assert_eq!(
            parse("local/acme-sh-base-image:3.1.1").registry(),
            "docker.io"
        );
        assert_eq!(
            parse("127.0.0.1:5999/x/y:z").familiar(),
            "127.0.0.1:5999/x/y:z"
        );
    }

    #[test]
    fn digests_and_pinning() {
        let by_digest = parse(&format!("alpine@{DIGEST}"));
        assert!(by_digest.is_pinned());
        assert_eq!(by_digest.tag, None);
        assert_eq!(
            by_digest.canonical(),
            format!("docker.io/library/alpine@{DIGEST}")
        );
        let both = parse(&format!("alpine:3.20@{DIGEST}"));
        assert_eq!(both.tag.as_deref(), Some("3.20"));
        assert!(both.is_pinned());
        assert!(!parse("alpine:latest").is_pinned());
        assert!(parse("alpine:3").is_pinned());
    }

    #[test]
    fn rejects_invalid_names() {
        for text in [
            "",
            "nginx:",
            "Nginx",
            "nginx:-x",
            "a//b",
            "a/-b",
            "nginx@sha256:abc",
            "host:port/app",
            ":tag",
            "app/",
        ] {
            assert!(
                ImageReference::parse(text).is_err(),
                "{text:?} should be rejected"
            );
        }
        let error = ImageReference::parse("nginx:").unwrap_err();
        assert!(error.to_string().contains("\"nginx:\""), "{error}");
    }

    #[test]
    fn canonical_name_compares_spellings() {
        assert_eq!(
            canonical_name("nginx"),
            canonical_name("docker.io/library/nginx:latest")
        );
        assert_eq!(canonical_name("not valid"), "not valid");
    }
}

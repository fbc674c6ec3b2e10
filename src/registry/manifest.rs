//! Manifests and indexes: the four media types, parsing, fetching and platform
//! selection.
//!
//! The raw bytes are kept next to the parsed form: a manifest's digest is the
//! hash of exactly the bytes the registry sent, and pushes must send them back
//! unchanged for the digest to survive.

use std::fmt;

use anyhow::{Context, bail};
use bytes::Bytes;
use reqwest::Method;
use serde::{Deserialize, Serialize};

use super::auth::Scope;
use super::blob_cache::{Digest, sha256_digest};
use super::client::{RegistryClient, RegistryRequest, RequestBody, check_status};
use super::reference::{ImageReference, RepositoryName};

pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// Every media type bunker understands, for the `Accept` header.
pub const ACCEPT_MANIFESTS: &str = "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";

/// A content descriptor: what a manifest says about a blob or a child manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    #[serde(default)]
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub urls: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<serde_json::Map<String, serde_json::Value>>,
}

/// An operating system and CPU architecture, as in `linux/arm64/v8`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    #[serde(
        rename = "os.version",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub os_version: Option<String>,
}

impl Platform {
    /// Parses `os/arch[/variant]`.
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let parts: Vec<&str> = text.trim().split('/').collect();
        match parts.as_slice() {
            [os, architecture] | [os, architecture, ""]
                if !os.is_empty() && !architecture.is_empty() =>
            {
                Ok(Self::new(os, architecture, None))
            }
            [os, architecture, variant] if !os.is_empty() && !architecture.is_empty() => {
                Ok(Self::new(os, architecture, Some(variant)))
            }
            _ => bail!(
                "invalid platform {text:?}: expected os/arch[/variant], e.g. linux/amd64 or linux/arm64/v8"
            ),
        }
    }

    pub fn new(os: &str, architecture: &str, variant: Option<&str>) -> Self {
        Self {
            os: os.to_string(),
            architecture: architecture.to_string(),
            variant: variant.map(str::to_string),
            os_version: None,
        }
    }

    /// The platform this program was built for, in OCI names.
    pub fn host() -> Self {
        let architecture = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            "arm" => "arm",
            "powerpc64" => "ppc64le",
            "s390x" => "s390x",
            "riscv64" => "riscv64",
            other => other,
        };
        let variant = match architecture {
            "arm" => Some("v7"),
            _ => None,
        };
        Self::new("linux", architecture, variant)
    }

    /// Whether an index entry for `candidate` serves this platform; a missing
    /// variant on either side matches, and arm64 treats `v8` as the default.
    pub fn matches(&self, candidate: &Platform) -> bool {
        if self.os != candidate.os || self.architecture != candidate.architecture {
            return false;
        }
        let normalise = |variant: &Option<String>| match (self.architecture.as_str(), variant) {
            ("arm64", Some(v)) if v == "v8" => None,
            (_, v) => v.clone(),
        };
        match (normalise(&self.variant), normalise(&candidate.variant)) {
            (Some(wanted), Some(offered)) => wanted == offered,
            _ => true,
        }
    }

    /// A short form for file names and messages: `linux-arm64-v8`.
    pub fn slug(&self) -> String {
        self.to_string().replace('/', "-")
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(variant) = &self.variant {
            write!(f, "/{variant}")?;
        }
        Ok(())
    }
}

/// A single-platform image manifest (Docker v2 schema 2 or OCI).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageManifest {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<serde_json::Map<String, serde_json::Value>>,
}

/// A multi-platform index (Docker manifest list or OCI index).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageIndex {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub manifests: Vec<Descriptor>,
}

/// A parsed manifest document.
#[derive(Debug, Clone)]
pub enum ManifestKind {
    Image(Box<ImageManifest>),
    Index(ImageIndex),
}

/// A manifest as fetched: exact bytes, digest, media type and parsed form.
#[derive(Debug, Clone)]
pub struct FetchedManifest {
    pub bytes: Bytes,
    pub digest: Digest,
    pub media_type: String,
    pub kind: ManifestKind,
}

impl FetchedManifest {
    /// Parses manifest bytes; `content_type` is the registry's `Content-Type`
    /// and is only a fallback for the document's own `mediaType`.
    pub fn parse(bytes: Bytes, content_type: Option<&str>) -> anyhow::Result<Self> {
        let value: serde_json::Value =
            serde_json::from_slice(&bytes).context("the manifest is not valid JSON")?;
        let declared = value.get("mediaType").and_then(|m| m.as_str());
        let media_type = declared
            .or(content_type.filter(|t| t.contains("manifest") || t.contains("index")))
            .map(str::to_string)
            .unwrap_or_else(|| {
                if value.get("manifests").is_some() {
                    OCI_INDEX.to_string()
                } else {
                    OCI_MANIFEST.to_string()
                }
            });
        if value.get("schemaVersion").and_then(|v| v.as_u64()) != Some(2) {
            bail!(
                "unsupported manifest (schemaVersion {}): only schema 2 and OCI manifests are supported",
                value
                    .get("schemaVersion")
                    .map(|v| v.to_string())
                    .unwrap_or_else(|| "missing".into())
            );
        }
        let kind = match media_type.as_str() {
            DOCKER_MANIFEST_LIST | OCI_INDEX => {
                ManifestKind::Index(serde_json::from_value(value).context("malformed image index")?)
            }
            DOCKER_MANIFEST | OCI_MANIFEST => ManifestKind::Image(Box::new(
                serde_json::from_value(value).context("malformed image manifest")?,
            )),
            other => bail!("unsupported manifest media type {other}"),
        };
        let digest = sha256_digest(&bytes);
        Ok(Self {
            bytes,
            digest,
            media_type,
            kind,
        })
    }
}

/// Fetches a manifest by tag or digest, checking the digest when pinned.
pub async fn fetch_manifest(
    client: &RegistryClient,
    repository: &RepositoryName,
    reference: &str,
) -> anyhow::Result<FetchedManifest> {
    let path = format!("/v2/{}/manifests/{reference}", repository.repository);
    let request = RegistryRequest::new(Method::GET, &path, Scope::pull(&repository.repository))
        .header(reqwest::header::ACCEPT, ACCEPT_MANIFESTS);
    let what = format!("manifest {repository}:{reference}");
    let mut attempt = 1;
    let (bytes, content_type) = loop {
        let response = client.send(&request).await?;
        let response = check_status(response, &what).await?;
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .map(str::to_string);
        match response.bytes().await {
            Ok(bytes) => break (bytes, content_type),
            // The connection dropped inside the body: ask again.
            Err(error) if attempt < client.retry_policy().max_attempts => {
                tracing::warn!("{what}: the download broke off ({error}); retrying");
                tokio::time::sleep(client.retry_policy().delay(attempt, None)).await;
                attempt += 1;
            }
            Err(error) => {
                return Err(anyhow::Error::new(error)
                    .context(format!("{what}: the download broke off {attempt} times")));
            }
        }
    };
    let manifest =
        FetchedManifest::parse(bytes, content_type.as_deref()).with_context(|| what.clone())?;
    if reference.starts_with("sha256:") && manifest.digest.as_str() != reference {
        bail!(
            "{what}: the registry sent content with digest {}, refusing it",
            manifest.digest
        );
    }
    Ok(manifest)
}

/// `HEAD` on a manifest: its digest, or `None` when the tag does not exist.
pub async fn head_manifest(
    client: &RegistryClient,
    repository: &RepositoryName,
    reference: &str,
    scope: Scope,
) -> anyhow::Result<Option<Digest>> {
    let path = format!("/v2/{}/manifests/{reference}", repository.repository);
    let request = RegistryRequest::new(Method::HEAD, &path, scope)
        .header(reqwest::header::ACCEPT, ACCEPT_MANIFESTS);
    let response = client.send(&request).await?;
    if response.status() == reqwest::StatusCode::NOT_FOUND {
        return Ok(None);
    }
    let response =
        check_status(response, &format!("HEAD manifest {repository}:{reference}")).await?;
    let digest = response
        .headers()
        .get("docker-content-digest")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| Digest::parse(value).ok());
    match digest {
        Some(digest) => Ok(Some(digest)),
        // Registries may omit the header on HEAD: fall back to hashing the document.
        None => Ok(Some(
            fetch_manifest(client, repository, reference).await?.digest,
        )),
    }
}

/// Uploads a manifest under a tag or digest.
pub async fn put_manifest(
    client: &RegistryClient,
    repository: &RepositoryName,
    reference: &str,
    media_type: &str,
    bytes: Bytes,
) -> anyhow::Result<()> {
    let path = format!("/v2/{}/manifests/{reference}", repository.repository);
    let request = RegistryRequest::new(Method::PUT, &path, Scope::push(&repository.repository))
        .header(reqwest::header::CONTENT_TYPE, media_type)
        .body(RequestBody::Bytes(bytes));
    client
        .send_ok(&request)
        .await
        .with_context(|| format!("cannot upload the manifest {repository}:{reference}"))?;
    Ok(())
}

/// The image manifests to take from `manifest` for the requested platforms: the
/// manifest itself when it is single-platform, else the matching index entries.
pub fn select_platforms<'a>(
    reference: &ImageReference,
    index: &'a ImageIndex,
    selection: &PlatformSelection,
) -> anyhow::Result<Vec<&'a Descriptor>> {
    let images: Vec<&Descriptor> = index
        .manifests
        .iter()
        .filter(|entry| {
            // Attestation manifests (buildx) carry platform unknown/unknown.
            entry
                .platform
                .as_ref()
                .is_some_and(|platform| platform.os != "unknown")
        })
        .collect();
    match selection {
        PlatformSelection::All => Ok(images),
        PlatformSelection::One(wanted) => {
            let found: Vec<&Descriptor> = images
                .iter()
                .copied()
                .filter(|entry| entry.platform.as_ref().is_some_and(|p| wanted.matches(p)))
                .take(1)
                .collect();
            if found.is_empty() {
                let offered: Vec<String> = images
                    .iter()
                    .filter_map(|entry| entry.platform.as_ref().map(Platform::to_string))
                    .collect();
                bail!(
                    "{reference} has no image for {wanted}; it offers {}; choose one with --platform or take all with --all-platforms",
                    offered.join(", ")
                );
            }
            Ok(found)
        }
    }
}

/// Which platforms of a multi-platform image to take.
#[derive(Debug, Clone)]
pub enum PlatformSelection {
    One(Platform),
    All,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index() -> ImageIndex {
        serde_json::from_str(&format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[
              {{"mediaType":"{OCI_MANIFEST}","digest":"sha256:{a}","size":1,"platform":{{"os":"linux","architecture":"amd64"}}}},
              {{"mediaType":"{OCI_MANIFEST}","digest":"sha256:{b}","size":1,"platform":{{"os":"linux","architecture":"arm64","variant":"v8"}}}},
              {{"mediaType":"{OCI_MANIFEST}","digest":"sha256:{c}","size":1,"platform":{{"os":"unknown","architecture":"unknown"}}}}]}}"#,
            a = "a".repeat(64),
            b = "b".repeat(64),
            c = "c".repeat(64)
        ))
        .unwrap()
    }

    #[test]
    fn platform_parsing() {
        assert_eq!(
            Platform::parse("linux/arm64/v8").unwrap().to_string(),
            "linux/arm64/v8"
        );
        assert_eq!(Platform::parse("linux/amd64").unwrap().variant, None);
        let error = Platform::parse("amd64").unwrap_err().to_string();
        assert!(error.contains("os/arch"), "{error}");
    }

    #[test]
    fn selects_matching_platform_and_skips_attestations() {
        let reference = ImageReference::parse_input("localhost/app:1").unwrap();
        let index = index();
        let chosen = select_platforms(
            &reference,
            &index,
            &PlatformSelection::One(Platform::parse("linux/arm64").unwrap()),
        )
        .unwrap();
        assert_eq!(chosen[0].digest, format!("sha256:{}", "b".repeat(64)));
        let all = select_platforms(&reference, &index, &PlatformSelection::All).unwrap();
        assert_eq!(all.len(), 2);
        let error = select_platforms(
            &reference,
            &index,
            &PlatformSelection::One(Platform::parse("linux/s390x").unwrap()),
        )
        .unwrap_err()
        .to_string();
        assert!(
            error.contains("offers linux/amd64, linux/arm64/v8"),
            "{error}"
        );
    }

    #[test]
    fn parses_the_four_media_types() {
        let image = format!(
            r#"{{"schemaVersion":2,"mediaType":"{DOCKER_MANIFEST}","config":{{"mediaType":"{DOCKER_CONFIG}","digest":"sha256:{d}","size":2}},"layers":[]}}"#,
            d = "d".repeat(64)
        );
        let parsed = FetchedManifest::parse(Bytes::from(image.clone()), None).unwrap();
        assert!(matches!(parsed.kind, ManifestKind::Image(_)));
        assert_eq!(parsed.digest, sha256_digest(image.as_bytes()));
        let oci = image.replace(DOCKER_MANIFEST, OCI_MANIFEST);
        assert!(matches!(
            FetchedManifest::parse(Bytes::from(oci), None).unwrap().kind,
            ManifestKind::Image(_)
        ));
        let list = serde_json::to_string(&index()).unwrap();
        assert!(matches!(
            FetchedManifest::parse(Bytes::from(list.clone()), None)
                .unwrap()
                .kind,
            ManifestKind::Index(_)
        ));
        let docker_list = list.replace(OCI_INDEX, DOCKER_MANIFEST_LIST);
        assert!(matches!(
            FetchedManifest::parse(Bytes::from(docker_list), None)
                .unwrap()
                .kind,
            ManifestKind::Index(_)
        ));
        let error = FetchedManifest::parse(Bytes::from_static(br#"{"schemaVersion":1}"#), None)
            .unwrap_err()
            .to_string();
        assert!(error.contains("schemaVersion 1"), "{error}");
    }
}

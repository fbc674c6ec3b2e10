//! A streaming inspector for `docker save` tars.
//!
//! It is fed the tar chunk by chunk as it flows to the compressor (or out of
//! the decompressor) and never holds an image: it parses the 512-byte headers
//! itself (ustar prefixes, GNU long names and PAX headers included), hashes
//! every member, and keeps only the small JSON members (`manifest.json`, the
//! image config, `index.json`). At the end it checks that the stream is a
//! complete, loadable docker-archive of exactly the expected image: the same
//! checks `docker load` makes (manifest.json present, config present, layer
//! count equal to the config's diff IDs, each layer hashing to its diff ID,
//! after decompressing it when the engine saved it compressed), so a broken export is caught before it becomes an archive file.
//! Both the classic layout (`<id>.json`, `<id>/layer.tar`) and the Docker 25+
//! OCI-style layout (`blobs/sha256/<hex>`, symlinks) are understood.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::digest::{DecodedDigest, Hashed};
use crate::image::identity::ConfigFields;

const BLOCK: usize = 512;
/// Members up to this size that look like JSON are kept in memory.
const CAPTURE_FILE_LIMIT: u64 = 4 << 20;
/// Upper bound of all kept members together (bounded memory whatever the tar holds).
const CAPTURE_TOTAL_LIMIT: u64 = 32 << 20;
/// Upper bound of one GNU long name or PAX extended header.
const METADATA_LIMIT: u64 = 1 << 20;
/// Members read even when they do not start like JSON.
const ALWAYS_CAPTURED: [&str; 3] = ["manifest.json", "index.json", "repositories"];

/// What the tar must contain; `None` fields are not checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExpectedImage {
    /// The reference that was saved (`traefik/whoami:v1.11.0`); must be among the
    /// tar's RepoTags (compared in familiar form). Digest references are not checked.
    pub reference: Option<String>,
    /// The engine image ID (`sha256:…`); must equal the config digest (classic image
    /// store) or a manifest digest in `index.json` (containerd image store).
    pub image_id: Option<String>,
}

impl ExpectedImage {
    pub fn reference(reference: impl Into<String>) -> ExpectedImage {
        ExpectedImage {
            reference: Some(reference.into()),
            image_id: None,
        }
    }
}

/// What a valid docker-save tar says about its image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DockerImageInfo {
    /// `RepoTags` of the tar's manifest.json, as the engine wrote them.
    pub repo_tags: Vec<String>,
    /// `sha256:<hex>` of the config member (the image ID on the classic image store).
    pub config_digest: String,
    /// The config's `rootfs.diff_ids`, in order.
    pub diff_ids: Vec<String>,
    /// The layer members listed in manifest.json, in order.
    pub layer_files: Vec<String>,
    /// `os/architecture[/variant]` from the config.
    pub platform: Option<String>,
    /// Manifest digests listed in `index.json` (Docker 25+ OCI-style tars).
    pub manifest_digests: Vec<String>,
    /// [`ConfigFields::fingerprint`] of the config: comparable with any engine's
    /// inspect output, whatever its image store.
    #[serde(default)]
    pub config_fingerprint: Option<String>,
}

/// Why a tar is not a loadable docker-save archive of the expected image.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DockerTarError {
    #[error("not a tar stream: the header at byte {offset} is corrupt{start}")]
    BadHeader { offset: u64, start: String },
    #[error("the tar stream is cut inside member {member} (truncated export)")]
    Truncated { member: String },
    #[error("the tar stream ends without its end-of-archive marker (truncated export)")]
    NoEndMarker,
    #[error("member {member} has a {size}-byte name or PAX header, over the 1 MiB limit")]
    MetadataTooLarge { member: String, size: u64 },
    #[error("the tar has no manifest.json: it is not a `docker save` stream")]
    NoManifest,
    #[error("manifest.json in the tar is not valid: {reason}")]
    BadManifest { reason: String },
    #[error("manifest.json in the tar lists {count} images; exactly one was expected")]
    ImageCount { count: usize },
    #[error("the tar holds {found:?}, not the expected image {expected}")]
    WrongImage {
        expected: String,
        found: Vec<String>,
    },
    #[error("the tar holds image {found}, not the expected image ID {expected}")]
    WrongImageId { expected: String, found: String },
    #[error("config {member} listed in manifest.json is missing from the tar")]
    MissingConfig { member: String },
    #[error("config {member} could not be read: {reason}")]
    BadConfig { member: String, reason: String },
    #[error("config {member} hashes to {actual}, not the digest its name says")]
    ConfigDigestMismatch { member: String, actual: String },
    #[error("layer {member} listed in manifest.json is missing from the tar")]
    MissingLayer { member: String },
    #[error("manifest.json lists {layers} layers but the config has {diff_ids} diff IDs")]
    LayerCount { layers: usize, diff_ids: usize },
    #[error("layer {member} hashes to sha256:{actual}, but the config's diff ID is {expected}")]
    LayerDigestMismatch {
        member: String,
        expected: String,
        actual: String,
    },
    #[error(
        "layer {member} (stored compressed) decompresses to sha256:{actual}, but the config's \
         diff ID is {expected}"
    )]
    CompressedLayerDigestMismatch {
        member: String,
        expected: String,
        actual: String,
    },
    #[error("layer {member} is stored compressed but does not decompress: {reason}")]
    LayerDoesNotDecompress { member: String, reason: String },
}

#[derive(Debug, Clone)]
enum MemberKind {
    File,
    Symlink(String),
    Hardlink(String),
    Directory,
    Other,
}

#[derive(Debug, Clone)]
struct Member {
    kind: MemberKind,
    sha256: Option<String>,
    /// For a compressed file: the SHA-256 of its decompressed bytes, or why it
    /// does not decompress.
    decoded_sha256: Option<Result<String, String>>,
}

enum Target {
    File {
        path: String,
        hashed: Hashed,
        decoded: Box<DecodedDigest>,
        capture: Capture,
    },
    LongName(Vec<u8>),
    LongLink(Vec<u8>),
    Pax(Vec<u8>),
    Skip,
}

enum Capture {
    Undecided { size: u64, always: bool },
    Keep(Vec<u8>),
    Drop,
}

enum State {
    Header,
    Data {
        remaining: u64,
        padding: u64,
        target: Target,
    },
    Padding {
        remaining: u64,
    },
    End,
}

#[derive(Default)]
struct PendingNames {
    path: Option<String>,
    link: Option<String>,
    size: Option<u64>,
}

/// Fed a docker-save tar chunk by chunk; [`finish`](DockerTarInspector::finish)
/// validates it and reports the image it holds.
pub struct DockerTarInspector {
    state: State,
    header: [u8; BLOCK],
    header_filled: usize,
    offset: u64,
    pending: PendingNames,
    members: HashMap<String, Member>,
    captured: HashMap<String, Vec<u8>>,
    captured_total: u64,
    error: Option<DockerTarError>,
}

impl Default for DockerTarInspector {
    fn default() -> Self {
        DockerTarInspector::new()
    }
}

impl DockerTarInspector {
    pub fn new() -> DockerTarInspector {
        DockerTarInspector {
            state: State::Header,
            header: [0; BLOCK],
            header_filled: 0,
            offset: 0,
            pending: PendingNames::default(),
            members: HashMap::new(),
            captured: HashMap::new(),
            captured_total: 0,
            error: None,
        }
    }

    /// Consumes the next piece of the tar. After the first error every call
    /// returns that error again.
    pub fn feed(&mut self, mut data: &[u8]) -> Result<(), DockerTarError> {
        if let Some(error) = &self.error {
            return Err(error.clone());
        }
        while !data.is_empty() {
            let consumed = match self.step(data) {
                Ok(consumed) => consumed,
                Err(error) => {
                    self.error = Some(error.clone());
                    return Err(error);
                }
            };
            self.offset += consumed as u64;
            data = &data[consumed..];
        }
        Ok(())
    }

    fn step(&mut self, data: &[u8]) -> Result<usize, DockerTarError> {
        match &mut self.state {
            State::Header => {
                let header_offset = self.offset - self.header_filled as u64;
                let take = (BLOCK - self.header_filled).min(data.len());
                self.header[self.header_filled..self.header_filled + take]
                    .copy_from_slice(&data[..take]);
                self.header_filled += take;
                if self.header_filled == BLOCK {
                    self.header_filled = 0;
                    let header = self.header;
                    self.start_member(&header, header_offset)?;
                }
                Ok(take)
            }
            State::Data {
                remaining,
                padding,
                target,
            } => {
                let take = usize::try_from(*remaining)
                    .unwrap_or(usize::MAX)
                    .min(data.len());
                let bytes = &data[..take];
                accept_data(target, bytes, &mut self.captured_total);
                *remaining -= take as u64;
                if *remaining == 0 {
                    let padding = *padding;
                    let State::Data { target, .. } =
                        std::mem::replace(&mut self.state, State::Padding { remaining: padding })
                    else {
                        unreachable!("state checked above")
                    };
                    self.end_member(target)?;
                    if padding == 0 {
                        self.state = State::Header;
                    }
                }
                Ok(take)
            }
            State::Padding { remaining } => {
                let take = usize::try_from(*remaining)
                    .unwrap_or(usize::MAX)
                    .min(data.len());
                *remaining -= take as u64;
                if *remaining == 0 {
                    self.state = State::Header;
                }
                Ok(take)
            }
            // Whatever follows the end-of-archive marker (more zero blocks, record padding) is ignored.
            State::End => Ok(data.len()),
        }
    }

    fn start_member(
        &mut self,
        header: &[u8; BLOCK],
        header_offset: u64,
    ) -> Result<(), DockerTarError> {
        if header.iter().all(|byte| *byte == 0) {
            self.state = State::End;
            return Ok(());
        }
        if !checksum_matches(header) {
            return Err(bad_header(header, header_offset));
        }
        let header_size =
            parse_number(&header[124..136]).ok_or_else(|| bad_header(header, header_offset))?;
        let type_flag = header[156];
        let is_metadata = matches!(type_flag, b'L' | b'K' | b'x' | b'g');
        let (path, link, size) = if is_metadata {
            (
                header_name(header),
                field_text(&header[157..257]),
                header_size,
            )
        } else {
            let pending = std::mem::take(&mut self.pending);
            (
                pending.path.unwrap_or_else(|| header_name(header)),
                pending
                    .link
                    .unwrap_or_else(|| field_text(&header[157..257])),
                pending.size.unwrap_or(header_size),
            )
        };
        // Links, directories, devices and FIFOs have no data whatever their size
        // field says (as Go's archive/tar, and so `docker load`, reads them).
        let size = if matches!(type_flag, b'1'..=b'6') {
            0
        } else {
            size
        };
        let path = normalize_member_path(&path);
        if is_metadata && size > METADATA_LIMIT {
            return Err(DockerTarError::MetadataTooLarge { member: path, size });
        }
        let target = match type_flag {
            b'L' => Target::LongName(Vec::new()),
            b'K' => Target::LongLink(Vec::new()),
            b'x' => Target::Pax(Vec::new()),
            b'0' | 0 | b'7' => {
                let always = ALWAYS_CAPTURED.contains(&path.as_str());
                Target::File {
                    path: path.clone(),
                    hashed: Hashed::new(),
                    decoded: Box::default(),
                    capture: Capture::Undecided { size, always },
                }
            }
            _ => Target::Skip,
        };
        let kind = match type_flag {
            b'1' => Some(MemberKind::Hardlink(normalize_member_path(&link))),
            b'2' => Some(MemberKind::Symlink(link)),
            b'5' => Some(MemberKind::Directory),
            b'0' | 0 | b'7' | b'L' | b'K' | b'x' | b'g' => None,
            _ => Some(MemberKind::Other),
        };
        if let Some(kind) = kind {
            self.members.insert(
                path,
                Member {
                    kind,
                    sha256: None,
                    decoded_sha256: None,
                },
            );
        }
        let padding = (BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64;
        self.state = State::Data {
            remaining: size,
            padding,
            target,
        };
        if size == 0 {
            let State::Data { target, .. } = std::mem::replace(&mut self.state, State::Header)
            else {
                unreachable!("state set above")
            };
            self.end_member(target)?;
        }
        Ok(())
    }

    fn end_member(&mut self, target: Target) -> Result<(), DockerTarError> {
        match target {
            Target::File {
                path,
                hashed,
                decoded,
                capture,
            } => {
                let (sha256, _) = hashed.finish();
                let decoded_sha256 = match decoded.finish() {
                    Ok(Some((sha256, _))) => Some(Ok(sha256)),
                    Ok(None) => None,
                    Err(reason) => Some(Err(reason)),
                };
                if let Capture::Keep(bytes) = capture {
                    self.captured.insert(path.clone(), bytes);
                }
                self.members.insert(
                    path,
                    Member {
                        kind: MemberKind::File,
                        sha256: Some(sha256),
                        decoded_sha256,
                    },
                );
            }
            Target::LongName(bytes) => self.pending.path = Some(c_string(&bytes)),
            Target::LongLink(bytes) => self.pending.link = Some(c_string(&bytes)),
            Target::Pax(bytes) => self.apply_pax(&bytes),
            Target::Skip => {}
        }
        Ok(())
    }

    fn apply_pax(&mut self, mut records: &[u8]) {
        // Each record is "<length> <key>=<value>\n", the length counting the whole record.
        while let Some(space) = records.iter().position(|byte| *byte == b' ') {
            let Some(length) = std::str::from_utf8(&records[..space])
                .ok()
                .and_then(|text| text.parse::<usize>().ok())
            else {
                return;
            };
            if length <= space || length > records.len() {
                return;
            }
            let record = &records[space + 1..length];
            let record = record.strip_suffix(b"\n").unwrap_or(record);
            if let Some(equals) = record.iter().position(|byte| *byte == b'=') {
                let value = String::from_utf8_lossy(&record[equals + 1..]).into_owned();
                match &record[..equals] {
                    b"path" => self.pending.path = Some(value),
                    b"linkpath" => self.pending.link = Some(value),
                    b"size" => self.pending.size = value.parse().ok(),
                    _ => {}
                }
            }
            records = &records[length..];
        }
    }

    /// Checks the whole stream and reports the image it holds.
    pub fn finish(self, expected: &ExpectedImage) -> Result<DockerImageInfo, DockerTarError> {
        if let Some(error) = self.error {
            return Err(error);
        }
        match &self.state {
            State::End => {}
            State::Header if self.header_filled == 0 => return Err(DockerTarError::NoEndMarker),
            State::Header if self.offset < BLOCK as u64 => {
                return Err(bad_header(&self.header[..self.header_filled], 0));
            }
            State::Header => {
                return Err(DockerTarError::Truncated {
                    member: "(header)".to_string(),
                });
            }
            State::Data { target, .. } => {
                return Err(DockerTarError::Truncated {
                    member: match target {
                        Target::File { path, .. } => path.clone(),
                        _ => "(extended header)".to_string(),
                    },
                });
            }
            State::Padding { .. } => return Err(DockerTarError::NoEndMarker),
        }
        let manifest_bytes = match self.captured.get("manifest.json") {
            Some(bytes) => bytes,
            None if self.members.contains_key("manifest.json") => {
                return Err(DockerTarError::BadManifest {
                    reason: "it is larger than 4 MiB".to_string(),
                });
            }
            None => return Err(DockerTarError::NoManifest),
        };
        let manifest: Vec<ManifestItem> =
            serde_json::from_slice(manifest_bytes).map_err(|error| {
                DockerTarError::BadManifest {
                    reason: error.to_string(),
                }
            })?;
        let [item] = manifest.as_slice() else {
            return Err(DockerTarError::ImageCount {
                count: manifest.len(),
            });
        };
        let repo_tags = item.repo_tags.clone().unwrap_or_default();

        let config_path =
            self.resolve(&item.config)
                .ok_or_else(|| DockerTarError::MissingConfig {
                    member: item.config.clone(),
                })?;
        let config_member = &self.members[&config_path];
        let config_sha256 = config_member.sha256.clone().unwrap_or_default();
        let config_bytes =
            self.captured
                .get(&config_path)
                .ok_or_else(|| DockerTarError::BadConfig {
                    member: item.config.clone(),
                    reason: "it is not a JSON document of at most 4 MiB".to_string(),
                })?;
        if let Some(named) = digest_in_name(&item.config)
            && named != config_sha256
        {
            return Err(DockerTarError::ConfigDigestMismatch {
                member: item.config.clone(),
                actual: format!("sha256:{config_sha256}"),
            });
        }
        let config: ImageConfig =
            serde_json::from_slice(config_bytes).map_err(|error| DockerTarError::BadConfig {
                member: item.config.clone(),
                reason: error.to_string(),
            })?;
        let platform = platform_of(&config);
        let config_fingerprint = serde_json::from_slice::<serde_json::Value>(config_bytes)
            .ok()
            .map(|value| ConfigFields::from_config_json(&value).fingerprint());
        let diff_ids = config
            .rootfs
            .map(|rootfs| rootfs.diff_ids)
            .unwrap_or_default();
        if item.layers.len() != diff_ids.len() {
            return Err(DockerTarError::LayerCount {
                layers: item.layers.len(),
                diff_ids: diff_ids.len(),
            });
        }
        for (layer, diff_id) in item.layers.iter().zip(&diff_ids) {
            let path = self
                .resolve(layer)
                .ok_or_else(|| DockerTarError::MissingLayer {
                    member: layer.clone(),
                })?;
            let member = &self.members[&path];
            // Layers kept compressed (containerd image store) carry their registry
            // digest in the name; their diff ID is the digest of what they decompress to.
            match &member.decoded_sha256 {
                None => {
                    let actual = member.sha256.clone().unwrap_or_default();
                    if diff_id.strip_prefix("sha256:") != Some(actual.as_str()) {
                        return Err(DockerTarError::LayerDigestMismatch {
                            member: layer.clone(),
                            expected: diff_id.clone(),
                            actual,
                        });
                    }
                }
                Some(Ok(actual)) => {
                    if diff_id.strip_prefix("sha256:") != Some(actual.as_str()) {
                        return Err(DockerTarError::CompressedLayerDigestMismatch {
                            member: layer.clone(),
                            expected: diff_id.clone(),
                            actual: actual.clone(),
                        });
                    }
                }
                Some(Err(reason)) => {
                    return Err(DockerTarError::LayerDoesNotDecompress {
                        member: layer.clone(),
                        reason: reason.clone(),
                    });
                }
            }
        }

        let manifest_digests = self
            .captured
            .get("index.json")
            .and_then(|bytes| serde_json::from_slice::<OciIndex>(bytes).ok())
            .map(|index| {
                index
                    .manifests
                    .unwrap_or_default()
                    .into_iter()
                    .map(|descriptor| descriptor.digest)
                    .collect()
            })
            .unwrap_or_default();
        let info = DockerImageInfo {
            repo_tags,
            config_digest: format!("sha256:{config_sha256}"),
            diff_ids,
            layer_files: item.layers.clone(),
            platform,
            manifest_digests,
            config_fingerprint,
        };
        check_expected(&info, expected)?;
        Ok(info)
    }

    /// The final member a manifest.json path points to, following symlinks and hard links.
    fn resolve(&self, path: &str) -> Option<String> {
        let mut current = normalize_member_path(path);
        for _ in 0..16 {
            match &self.members.get(&current)?.kind {
                MemberKind::File => return Some(current),
                MemberKind::Hardlink(target) => current = target.clone(),
                MemberKind::Symlink(target) => {
                    current = if target.starts_with('/') {
                        normalize_member_path(target)
                    } else {
                        let parent = current.rsplit_once('/').map_or("", |(parent, _)| parent);
                        normalize_member_path(&format!("{parent}/{target}"))
                    };
                }
                MemberKind::Directory | MemberKind::Other => return None,
            }
        }
        None
    }
}

fn accept_data(target: &mut Target, bytes: &[u8], captured_total: &mut u64) {
    match target {
        Target::File {
            hashed,
            decoded,
            capture,
            ..
        } => {
            hashed.update(bytes);
            decoded.update(bytes);
            if let Capture::Undecided { size, always } = *capture {
                let looks_like_json = matches!(bytes.first(), Some(b'{' | b'['));
                let fits =
                    size <= CAPTURE_FILE_LIMIT && *captured_total + size <= CAPTURE_TOTAL_LIMIT;
                *capture = if (always || looks_like_json) && fits {
                    *captured_total += size;
                    Capture::Keep(Vec::with_capacity(size as usize))
                } else {
                    Capture::Drop
                };
            }
            if let Capture::Keep(buffer) = capture {
                buffer.extend_from_slice(bytes);
            }
        }
        Target::LongName(buffer) | Target::LongLink(buffer) | Target::Pax(buffer) => {
            buffer.extend_from_slice(bytes)
        }
        Target::Skip => {}
    }
}

fn check_expected(info: &DockerImageInfo, expected: &ExpectedImage) -> Result<(), DockerTarError> {
    if let Some(image_id) = &expected.image_id {
        let image_id = if image_id.contains(':') {
            image_id.clone()
        } else {
            format!("sha256:{image_id}")
        };
        if image_id != info.config_digest && !info.manifest_digests.contains(&image_id) {
            return Err(DockerTarError::WrongImageId {
                expected: image_id,
                found: info.config_digest.clone(),
            });
        }
    }
    if let Some(reference) = &expected.reference
        && !reference.contains('@')
    {
        let wanted = familiar_reference(reference);
        if !info
            .repo_tags
            .iter()
            .any(|tag| familiar_reference(tag) == wanted)
        {
            return Err(DockerTarError::WrongImage {
                expected: reference.clone(),
                found: info.repo_tags.clone(),
            });
        }
    }
    Ok(())
}

/// `docker.io/library/busybox` → `busybox:latest`: the form `docker save` writes.
pub fn familiar_reference(reference: &str) -> String {
    let mut name = reference;
    for prefix in ["docker.io/", "index.docker.io/", "registry-1.docker.io/"] {
        name = name.strip_prefix(prefix).unwrap_or(name);
    }
    if name.len() != reference.len() {
        name = name.strip_prefix("library/").unwrap_or(name);
    }
    let last_segment = name.rsplit('/').next().unwrap_or(name);
    if last_segment.contains(':') {
        name.to_string()
    } else {
        format!("{name}:latest")
    }
}

#[derive(Deserialize)]
struct ManifestItem {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags", default)]
    repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers", default)]
    layers: Vec<String>,
}

#[derive(Deserialize)]
struct ImageConfig {
    #[serde(default)]
    os: Option<String>,
    #[serde(default)]
    architecture: Option<String>,
    #[serde(default)]
    variant: Option<String>,
    #[serde(default)]
    rootfs: Option<RootFs>,
}

#[derive(Deserialize)]
struct RootFs {
    #[serde(default)]
    diff_ids: Vec<String>,
}

#[derive(Deserialize)]
struct OciIndex {
    #[serde(default)]
    manifests: Option<Vec<OciDescriptor>>,
}

#[derive(Deserialize)]
struct OciDescriptor {
    digest: String,
}

fn platform_of(config: &ImageConfig) -> Option<String> {
    let os = config.os.as_deref()?;
    let architecture = config.architecture.as_deref()?;
    Some(
        match config
            .variant
            .as_deref()
            .filter(|variant| !variant.is_empty())
        {
            Some(variant) => format!("{os}/{architecture}/{variant}"),
            None => format!("{os}/{architecture}"),
        },
    )
}

/// The hex digest a member's name carries: `<hex>.json`, `blobs/sha256/<hex>`, `sha256:<hex>`.
fn digest_in_name(path: &str) -> Option<String> {
    let name = path.rsplit('/').next()?;
    let name = name.strip_suffix(".json").unwrap_or(name);
    let name = name.strip_prefix("sha256:").unwrap_or(name);
    (name.len() == 64 && name.bytes().all(|byte| byte.is_ascii_hexdigit()))
        .then(|| name.to_ascii_lowercase())
}

/// The error for a corrupt header; at the very start it quotes the bytes, which
/// are usually an engine error message instead of a tar.
fn bad_header(header: &[u8], offset: u64) -> DockerTarError {
    let start = if offset == 0 {
        let text: String = String::from_utf8_lossy(&header[..header.len().min(120)])
            .chars()
            .take_while(|character| *character != '\0')
            .map(|character| {
                if character.is_control() {
                    ' '
                } else {
                    character
                }
            })
            .collect();
        format!(" (it starts with {:?})", text.trim())
    } else {
        String::new()
    };
    DockerTarError::BadHeader { offset, start }
}

fn checksum_matches(header: &[u8; BLOCK]) -> bool {
    let Some(recorded) = parse_number(&header[148..156]) else {
        return false;
    };
    let mut unsigned: u64 = 0;
    let mut signed: i64 = 0;
    for (index, byte) in header.iter().enumerate() {
        let byte = if (148..156).contains(&index) {
            b' '
        } else {
            *byte
        };
        unsigned += u64::from(byte);
        signed += i64::from(byte as i8);
    }
    recorded == unsigned || i64::try_from(recorded).is_ok_and(|recorded| recorded == signed)
}

/// A numeric header field: octal text, or GNU base-256 when the top bit is set.
pub(super) fn parse_number(field: &[u8]) -> Option<u64> {
    if field.first().is_some_and(|byte| byte & 0x80 != 0) {
        let mut value: u64 = u64::from(field[0] & 0x7f);
        for byte in &field[1..] {
            value = value.checked_mul(256)?.checked_add(u64::from(*byte))?;
        }
        return Some(value);
    }
    let text = std::str::from_utf8(field).ok()?;
    let text = text.trim_matches(|character: char| character == ' ' || character == '\0');
    if text.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(text, 8).ok()
}

fn field_text(field: &[u8]) -> String {
    c_string(field)
}

fn c_string(bytes: &[u8]) -> String {
    let end = bytes
        .iter()
        .position(|byte| *byte == 0)
        .unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

pub(super) fn header_name(header: &[u8; BLOCK]) -> String {
    let name = field_text(&header[0..100]);
    // Only POSIX ustar ("ustar\0") has the prefix field; GNU tar keeps times there.
    if &header[257..263] == b"ustar\0" {
        let prefix = field_text(&header[345..500]);
        if !prefix.is_empty() {
            return format!("{prefix}/{name}");
        }
    }
    name
}

/// `./a/b/../c/` → `a/c`: member paths compared the way `docker load` resolves them.
fn normalize_member_path(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            part => parts.push(part),
        }
    }
    parts.join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn familiar_references_match_what_docker_save_writes() {
        assert_eq!(familiar_reference("busybox"), "busybox:latest");
        assert_eq!(
            familiar_reference("docker.io/library/busybox:1.36"),
            "busybox:1.36"
        );
        assert_eq!(
            familiar_reference("docker.io/valkey/valkey:9"),
            "valkey/valkey:9"
        );
        assert_eq!(
            familiar_reference("localhost:5000/mc"),
            "localhost:5000/mc:latest"
        );
        assert_eq!(familiar_reference("library/busybox:1"), "library/busybox:1");
    }

    #[test]
    fn numbers_paths_and_digests_parse() {
        assert_eq!(parse_number(b"0000644\0"), Some(0o644));
        assert_eq!(parse_number(b"  17 \0"), Some(0o17));
        assert_eq!(
            parse_number(&[0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0]),
            Some(256)
        );
        assert_eq!(parse_number(b"9\0"), None);
        assert_eq!(normalize_member_path("./abc/../def.tar"), "def.tar");
        assert_eq!(normalize_member_path("blobs/sha256/"), "blobs/sha256");
        let hex = "a".repeat(64);
        assert_eq!(digest_in_name(&format!("{hex}.json")), Some(hex.clone()));
        assert_eq!(
            digest_in_name(&format!("blobs/sha256/{hex}")),
            Some(hex.clone())
        );
        assert_eq!(digest_in_name("config.json"), None);
    }

    #[test]
    fn pax_records_override_the_next_header() {
        let mut inspector = DockerTarInspector::new();
        inspector.apply_pax(b"28 path=some/very/long/name\n13 size=1024\n");
        assert_eq!(
            inspector.pending.path.as_deref(),
            Some("some/very/long/name")
        );
        assert_eq!(inspector.pending.size, Some(1024));
    }

    #[test]
    fn garbage_is_not_a_tar() {
        let mut inspector = DockerTarInspector::new();
        let error = inspector.feed(&[7u8; 1024]).unwrap_err();
        assert!(matches!(error, DockerTarError::BadHeader { offset: 0, .. }));
        assert_eq!(inspector.feed(b"more").unwrap_err(), error);
    }

    /// A classic docker-save tar whose only layer is stored gzip-compressed (as a
    /// containerd-store engine saves it), with the config's diff ID `diff_id`.
    fn tar_with_gzip_layer(layer_tar: &[u8], diff_id: &str) -> Vec<u8> {
        use std::io::Write;
        let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gzip.write_all(layer_tar).unwrap();
        let compressed = gzip.finish().unwrap();
        let config = serde_json::to_vec(&serde_json::json!({
            "architecture": "amd64", "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        }))
        .unwrap();
        let config_name = format!("blobs/sha256/{}", super::super::digest::sha256_hex(&config));
        let layer_name = format!(
            "blobs/sha256/{}",
            super::super::digest::sha256_hex(&compressed)
        );
        let manifest = serde_json::to_vec(&serde_json::json!([{
            "Config": config_name, "RepoTags": ["example/gz:1"], "Layers": [layer_name],
        }]))
        .unwrap();
        let mut builder = tar::Builder::new(Vec::new());
        for (name, data) in [
            (layer_name.as_str(), compressed.as_slice()),
            (config_name.as_str(), config.as_slice()),
            ("manifest.json", manifest.as_slice()),
        ] {
            let mut header = tar::Header::new_gnu();
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            builder.append_data(&mut header, name, data).unwrap();
        }
        builder.into_inner().unwrap()
    }

    fn inspect(tar: &[u8]) -> Result<DockerImageInfo, DockerTarError> {
        let mut inspector = DockerTarInspector::new();
        for piece in tar.chunks(1000) {
            inspector.feed(piece)?;
        }
        inspector.finish(&ExpectedImage::reference("example/gz:1"))
    }

    #[test]
    fn a_compressed_layer_is_checked_against_its_diff_id_after_decompressing() {
        let mut layer = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_size(5);
        header.set_mode(0o644);
        layer
            .append_data(&mut header, "hello", &b"hello"[..])
            .unwrap();
        let layer = layer.into_inner().unwrap();
        let right = format!("sha256:{}", super::super::digest::sha256_hex(&layer));
        let info = inspect(&tar_with_gzip_layer(&layer, &right)).unwrap();
        assert_eq!(info.diff_ids, vec![right]);

        let wrong = format!("sha256:{}", "0".repeat(64));
        let error = inspect(&tar_with_gzip_layer(&layer, &wrong)).unwrap_err();
        assert!(
            matches!(&error, DockerTarError::CompressedLayerDigestMismatch { expected, .. } if *expected == wrong),
            "{error}"
        );
        assert!(error.to_string().contains("decompresses to"), "{error}");
    }
}

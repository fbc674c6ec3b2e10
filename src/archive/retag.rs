//! A `docker save` tar passed through with its image names replaced.
//!
//! `docker load` gives a loaded image the names its tar carries (`RepoTags` in
//! `manifest.json`, the `repositories` file, the name annotations of the OCI
//! `index.json`), moving those tags away from whatever image held them. A check
//! that loads an archive must never touch an existing tag, so it loads the tar
//! under a scratch name: [`Retagger`] copies every 512-byte block through
//! untouched except those three small top-level members, whose JSON it rewrites
//! (header size and checksum recomputed). Layers, configs and everything else
//! pass byte for byte, so the engine checks exactly what the archive holds.
//!
//! Written here rather than with the `tar` crate because re-emitting every
//! member through a tar writer would normalise headers (long names, PAX records,
//! links), and the point is to load what the archive holds.

use super::docker_tar::{header_name, parse_number};

const BLOCK: usize = 512;
/// The largest member rewritten in memory (these are a few hundred bytes).
const REWRITE_LIMIT: u64 = 16 << 20;
const REWRITTEN: [&str; 3] = ["manifest.json", "index.json", "repositories"];

/// Why a tar could not be renamed.
#[derive(Debug, thiserror::Error)]
pub enum RetagError {
    #[error("the tar has a damaged header at byte {0}")]
    BadHeader(u64),
    #[error("the tar's {0} is {1} bytes, too large to be an image index")]
    TooLarge(String, u64),
    #[error("the tar's {0} is not the JSON docker save writes: {1}")]
    BadJson(String, String),
    #[error("the tar ends inside a member (at byte {0})")]
    Truncated(u64),
}

enum State {
    /// Collecting a header block.
    Header,
    /// Passing `remaining` bytes of member data (padding included) through.
    Copy { remaining: u64 },
    /// Collecting a member to rewrite: its header, its size, the data so far.
    Collect {
        name: String,
        header: Box<[u8; BLOCK]>,
        size: u64,
        padded: u64,
        data: Vec<u8>,
    },
    /// After the end-of-archive blocks: everything passes through.
    Trailer,
}

/// Rewrites the names in a `docker save` tar fed to it chunk by chunk.
pub struct Retagger {
    name: String,
    state: State,
    pending: Vec<u8>,
    offset: u64,
    /// The member after a GNU long-name or PAX header has a name this parser
    /// did not read: it is never one of the three rewritten members.
    extended_name: bool,
    renamed: bool,
}

impl Retagger {
    /// A retagger that names the image `name` (`repository:tag`, familiar form).
    pub fn new(name: impl Into<String>) -> Retagger {
        Retagger {
            name: name.into(),
            state: State::Header,
            pending: Vec::new(),
            offset: 0,
            extended_name: false,
            renamed: false,
        }
    }

    /// Feeds `input`; returns the bytes to pass on.
    pub fn feed(&mut self, mut input: &[u8]) -> Result<Vec<u8>, RetagError> {
        let mut output = Vec::with_capacity(input.len() + BLOCK);
        while !input.is_empty() {
            match &mut self.state {
                State::Trailer => {
                    output.extend_from_slice(input);
                    self.offset += input.len() as u64;
                    input = &[];
                }
                State::Copy { remaining } => {
                    let take = (*remaining).min(input.len() as u64) as usize;
                    output.extend_from_slice(&input[..take]);
                    *remaining -= take as u64;
                    self.offset += take as u64;
                    input = &input[take..];
                    if *remaining == 0 {
                        self.state = State::Header;
                    }
                }
                State::Collect {
                    padded, data, size, ..
                } => {
                    let take = (*padded - data.len() as u64).min(input.len() as u64) as usize;
                    data.extend_from_slice(&input[..take]);
                    self.offset += take as u64;
                    input = &input[take..];
                    if data.len() as u64 == *padded {
                        let size = *size as usize;
                        let State::Collect {
                            name, header, data, ..
                        } = std::mem::replace(&mut self.state, State::Header)
                        else {
                            unreachable!("matched above");
                        };
                        output.extend(self.rewrite(&name, *header, &data[..size])?);
                    }
                }
                State::Header => {
                    let take = (BLOCK - self.pending.len()).min(input.len());
                    self.pending.extend_from_slice(&input[..take]);
                    input = &input[take..];
                    if self.pending.len() == BLOCK {
                        let mut header = Box::new([0u8; BLOCK]);
                        header.copy_from_slice(&self.pending);
                        self.pending.clear();
                        self.header(header, &mut output)?;
                        self.offset += BLOCK as u64;
                    }
                }
            }
        }
        Ok(output)
    }

    /// Checks the tar ended where a tar may end; whether any name was replaced.
    pub fn finish(self) -> Result<bool, RetagError> {
        match self.state {
            State::Header if self.pending.is_empty() => Ok(self.renamed),
            State::Trailer => Ok(self.renamed),
            _ => Err(RetagError::Truncated(self.offset)),
        }
    }

    fn header(&mut self, header: Box<[u8; BLOCK]>, output: &mut Vec<u8>) -> Result<(), RetagError> {
        if header.iter().all(|byte| *byte == 0) {
            output.extend_from_slice(&header[..]);
            self.state = State::Trailer;
            return Ok(());
        }
        let size = parse_number(&header[124..136]).ok_or(RetagError::BadHeader(self.offset))?;
        let padded = size.div_ceil(BLOCK as u64) * BLOCK as u64;
        let kind = header[156];
        let name = header_name(&header);
        let extended = self.extended_name;
        self.extended_name = matches!(kind, b'L' | b'K' | b'x');
        let rewritten = !extended
            && matches!(kind, b'0' | 0)
            && REWRITTEN.contains(&name.trim_start_matches("./"));
        if !rewritten {
            output.extend_from_slice(&header[..]);
            self.state = if padded == 0 {
                State::Header
            } else {
                State::Copy { remaining: padded }
            };
            return Ok(());
        }
        if size > REWRITE_LIMIT {
            return Err(RetagError::TooLarge(name, size));
        }
        if padded == 0 {
            output.extend(self.rewrite(&name, *header, &[])?);
            return Ok(());
        }
        self.state = State::Collect {
            name,
            header,
            size,
            padded,
            data: Vec::with_capacity(padded as usize),
        };
        Ok(())
    }

    /// The member `name` with its JSON rewritten: header, data, padding.
    fn rewrite(
        &mut self,
        name: &str,
        mut header: [u8; BLOCK],
        data: &[u8],
    ) -> Result<Vec<u8>, RetagError> {
        let bad = |error: String| RetagError::BadJson(name.to_string(), error);
        let mut value: serde_json::Value =
            serde_json::from_slice(data).map_err(|error| bad(error.to_string()))?;
        match name.trim_start_matches("./") {
            "manifest.json" => rename_manifest(&mut value, &self.name).map_err(bad)?,
            "index.json" => rename_index(&mut value, &self.name),
            _ => rename_repositories(&mut value, &self.name),
        }
        self.renamed = true;
        let mut data = serde_json::to_vec(&value).map_err(|error| bad(error.to_string()))?;
        set_size(&mut header, data.len() as u64);
        let padding = data.len().div_ceil(BLOCK) * BLOCK - data.len();
        let mut out = Vec::with_capacity(BLOCK + data.len() + padding);
        out.extend_from_slice(&header);
        out.append(&mut data);
        out.resize(out.len() + padding, 0);
        Ok(out)
    }
}

/// `RepoTags` of the first image become `[name]`; any other image gets none.
fn rename_manifest(value: &mut serde_json::Value, name: &str) -> Result<(), String> {
    let images = value
        .as_array_mut()
        .ok_or_else(|| "it is not a list of images".to_string())?;
    for (index, image) in images.iter_mut().enumerate() {
        let object = image
            .as_object_mut()
            .ok_or_else(|| "an image entry is not an object".to_string())?;
        let tags = if index == 0 {
            serde_json::json!([name])
        } else {
            serde_json::Value::Null
        };
        object.insert("RepoTags".to_string(), tags);
    }
    Ok(())
}

/// The image-name annotations of the OCI index (what the containerd image store
/// names a loaded image by) say `name`.
fn rename_index(value: &mut serde_json::Value, name: &str) {
    let tag = name
        .rsplit_once(':')
        .map(|(_, tag)| tag)
        .unwrap_or("latest");
    let full = full_name(name);
    let Some(manifests) = value
        .get_mut("manifests")
        .and_then(serde_json::Value::as_array_mut)
    else {
        return;
    };
    for manifest in manifests {
        let Some(annotations) = manifest
            .get_mut("annotations")
            .and_then(serde_json::Value::as_object_mut)
        else {
            continue;
        };
        if annotations.contains_key("io.containerd.image.name") {
            annotations.insert("io.containerd.image.name".into(), full.clone().into());
        }
        if annotations.contains_key("org.opencontainers.image.ref.name") {
            annotations.insert("org.opencontainers.image.ref.name".into(), tag.into());
        }
    }
}

/// `{"repo": {"tag": "id"}}` → `{"<name's repo>": {"<name's tag>": "id"}}`.
fn rename_repositories(value: &mut serde_json::Value, name: &str) {
    let id = value
        .as_object()
        .and_then(|repositories| repositories.values().next())
        .and_then(serde_json::Value::as_object)
        .and_then(|tags| tags.values().next())
        .cloned();
    let (repository, tag) = name.rsplit_once(':').unwrap_or((name, "latest"));
    *value = match id {
        Some(id) => serde_json::json!({ repository: { tag: id } }),
        None => serde_json::json!({}),
    };
}

/// `bunker-verify/x:1` → `docker.io/bunker-verify/x:1`, as the containerd store names images.
fn full_name(name: &str) -> String {
    let first = name.split('/').next().unwrap_or(name);
    let has_registry =
        name.contains('/') && (first.contains('.') || first.contains(':') || first == "localhost");
    if has_registry {
        name.to_string()
    } else if name.contains('/') {
        format!("docker.io/{name}")
    } else {
        format!("docker.io/library/{name}")
    }
}

/// Writes `size` into the header and recomputes its checksum (the `tar` crate's own
/// field encoding; every other field stays as the archive had it).
fn set_size(header: &mut [u8; BLOCK], size: u64) {
    let mut parsed = tar::Header::new_old();
    parsed.as_mut_bytes().copy_from_slice(header);
    parsed.set_size(size);
    parsed.set_cksum();
    header.copy_from_slice(parsed.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_of(members: &[(&str, &[u8])]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (name, data) in members {
            let mut header = tar::Header::new_ustar();
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            builder.append_data(&mut header, name, *data).unwrap();
        }
        builder.into_inner().unwrap()
    }

    fn members(tar_bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
        let mut archive = tar::Archive::new(tar_bytes);
        archive
            .entries()
            .unwrap()
            .map(|entry| {
                let mut entry = entry.unwrap();
                let name = entry.path().unwrap().display().to_string();
                let mut data = Vec::new();
                std::io::Read::read_to_end(&mut entry, &mut data).unwrap();
                (name, data)
            })
            .collect()
    }

    fn retag_in_chunks(input: &[u8], chunk: usize) -> Vec<u8> {
        let mut retagger = Retagger::new("bunker-verify/abc:1");
        let mut output = Vec::new();
        for piece in input.chunks(chunk) {
            output.extend(retagger.feed(piece).unwrap());
        }
        assert!(retagger.finish().unwrap(), "a name must have been replaced");
        output
    }

    #[test]
    fn names_change_and_every_other_byte_stays() {
        let layer = vec![7u8; 3000];
        let long_name = format!("blobs/sha256/{}", "a".repeat(120));
        let input = tar_of(&[
            ("abc/layer.tar", &layer),
            (&long_name, b"not json and never parsed"),
            (
                "manifest.json",
                br#"[{"Config":"c.json","RepoTags":["postgres:16"],"Layers":["abc/layer.tar"]}]"#,
            ),
            ("repositories", br#"{"postgres":{"16":"abc"}}"#),
            (
                "index.json",
                br#"{"schemaVersion":2,"manifests":[{"digest":"sha256:1","annotations":{"io.containerd.image.name":"docker.io/library/postgres:16","org.opencontainers.image.ref.name":"16"}}]}"#,
            ),
        ]);
        for chunk in [1, 100, 511, 512, 4096, input.len()] {
            let output = retag_in_chunks(&input, chunk);
            let found = members(&output);
            assert_eq!(found[0], ("abc/layer.tar".to_string(), layer.clone()));
            assert_eq!(found[1].0, long_name);
            let manifest: serde_json::Value = serde_json::from_slice(&found[2].1).unwrap();
            assert_eq!(
                manifest[0]["RepoTags"],
                serde_json::json!(["bunker-verify/abc:1"])
            );
            assert_eq!(manifest[0]["Layers"], serde_json::json!(["abc/layer.tar"]));
            let repositories: serde_json::Value = serde_json::from_slice(&found[3].1).unwrap();
            assert_eq!(
                repositories,
                serde_json::json!({"bunker-verify/abc": {"1": "abc"}})
            );
            let index: serde_json::Value = serde_json::from_slice(&found[4].1).unwrap();
            let annotations = &index["manifests"][0]["annotations"];
            assert_eq!(
                annotations["io.containerd.image.name"],
                "docker.io/bunker-verify/abc:1"
            );
            assert_eq!(annotations["org.opencontainers.image.ref.name"], "1");
            // The layer member's header and data are the input's, byte for byte.
            assert_eq!(output[..512 + 3072], input[..512 + 3072]);
        }
    }

    #[test]
    fn a_truncated_tar_is_an_error() {
        let input = tar_of(&[("manifest.json", br#"[{"RepoTags":["a:1"]}]"#)]);
        let mut retagger = Retagger::new("x:1");
        retagger.feed(&input[..600]).unwrap();
        assert!(matches!(retagger.finish(), Err(RetagError::Truncated(_))));
    }

    #[test]
    fn a_manifest_that_is_not_json_is_an_error() {
        let input = tar_of(&[("manifest.json", b"{ not json")]);
        let mut retagger = Retagger::new("x:1");
        let error = retagger.feed(&input).unwrap_err();
        assert!(error.to_string().contains("manifest.json"), "{error}");
    }
}

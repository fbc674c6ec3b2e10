//! Builds `docker save`-shaped tars locally (classic and Docker 25+ OCI-style)
//! for the archive tests, plus small helpers to run them through the writer.
#![allow(dead_code)] // Each test crate uses a different subset of these helpers.

use std::path::Path;
use std::process::Command;

use bunker::archive::{Compression, ExpectedImage, WriteOptions, WrittenArchive, write_archive};
use sha2::{Digest, Sha256};

pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// An uncompressed layer tar holding the given files.
pub fn layer(files: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, data) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        builder
            .append_data(&mut header, path, data.as_slice())
            .unwrap();
    }
    builder.into_inner().unwrap()
}

/// Deterministic, mildly compressible bytes.
pub fn payload(size: usize, seed: u64) -> Vec<u8> {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..size)
        .map(|index| {
            if index % 3 == 0 {
                b'a' + (index % 26) as u8
            } else {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1);
                (state >> 56) as u8
            }
        })
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// moby ≤ 24: `<v1-id>/layer.tar`, `<config-hex>.json`, manifest.json, repositories.
    Classic,
    /// Docker 25+: `blobs/sha256/<hex>`, index.json, oci-layout, manifest.json; the
    /// second and later layers are listed through `<v1-id>/layer.tar` symlinks.
    Oci,
}

/// Which names the tar uses for long paths (the config member gets a long name).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LongNames {
    None,
    Gnu,
    Pax,
    UstarPrefix,
}

pub struct SaveTar {
    pub bytes: Vec<u8>,
    pub config_digest: String,
    pub diff_ids: Vec<String>,
    pub layer_files: Vec<String>,
}

pub struct TarSpec<'a> {
    pub repo_tags: Vec<String>,
    pub layers: Vec<Vec<u8>>,
    pub style: Style,
    pub long_names: LongNames,
    /// Leave manifest.json out (a tar docker load refuses).
    pub without_manifest: bool,
    pub architecture: &'a str,
}

impl<'a> TarSpec<'a> {
    pub fn new(repo_tag: &str, layers: Vec<Vec<u8>>) -> TarSpec<'a> {
        TarSpec {
            repo_tags: vec![repo_tag.to_string()],
            layers,
            style: Style::Classic,
            long_names: LongNames::None,
            without_manifest: false,
            architecture: "amd64",
        }
    }
}

struct TarWriter {
    builder: tar::Builder<Vec<u8>>,
    long_names: LongNames,
}

impl TarWriter {
    fn file(&mut self, path: &str, data: &[u8]) {
        match self.long_names {
            LongNames::Pax if path.len() > 40 => {
                let record_body = format!(" path={path}\n");
                let mut length = record_body.len() + 2;
                if format!("{length}{record_body}").len() != length {
                    length += 1;
                }
                let record = format!("{length}{record_body}");
                let mut pax = tar::Header::new_ustar();
                pax.set_entry_type(tar::EntryType::XHeader);
                pax.set_path("PaxHeaders.0/x").unwrap();
                pax.set_size(record.len() as u64);
                pax.set_mode(0o644);
                pax.set_cksum();
                self.builder.append(&pax, record.as_bytes()).unwrap();
                let mut header = tar::Header::new_ustar();
                header
                    .set_path("truncated-name-the-pax-header-replaces")
                    .unwrap();
                header.set_size(data.len() as u64);
                header.set_mode(0o644);
                header.set_cksum();
                self.builder.append(&header, data).unwrap();
            }
            LongNames::UstarPrefix => {
                let mut header = tar::Header::new_ustar();
                header.set_path(path).unwrap();
                header.set_size(data.len() as u64);
                header.set_mode(0o644);
                header.set_cksum();
                self.builder.append(&header, data).unwrap();
            }
            _ => {
                let mut header = tar::Header::new_gnu();
                header.set_size(data.len() as u64);
                header.set_mode(0o644);
                self.builder.append_data(&mut header, path, data).unwrap();
            }
        }
    }

    fn symlink(&mut self, path: &str, target: &str) {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Symlink);
        header.set_size(0);
        header.set_mode(0o777);
        self.builder.append_link(&mut header, path, target).unwrap();
    }

    fn dir(&mut self, path: &str) {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Directory);
        header.set_size(0);
        header.set_mode(0o755);
        self.builder
            .append_data(&mut header, path, &[][..])
            .unwrap();
    }
}

/// A `docker save`-shaped tar of one image.
pub fn docker_save_tar(spec: &TarSpec) -> SaveTar {
    let diff_ids: Vec<String> = spec
        .layers
        .iter()
        .map(|layer| format!("sha256:{}", sha256_hex(layer)))
        .collect();
    let config = serde_json::json!({
        "architecture": spec.architecture,
        "os": "linux",
        "config": {"Cmd": ["sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [],
    });
    let config_bytes = serde_json::to_vec(&config).unwrap();
    let config_hex = sha256_hex(&config_bytes);
    let v1_ids: Vec<String> = diff_ids
        .iter()
        .map(|diff_id| sha256_hex(format!("v1 {diff_id}").as_bytes()))
        .collect();
    let mut writer = TarWriter {
        builder: tar::Builder::new(Vec::new()),
        long_names: spec.long_names,
    };
    let long_dir = "a-directory-name-long-enough-to-need-an-extension/and-another-level-of-nesting-for-good-measure/and-more";
    let config_path = match (spec.style, spec.long_names) {
        (_, LongNames::None) | (Style::Oci, _) => match spec.style {
            Style::Classic => format!("{config_hex}.json"),
            Style::Oci => format!("blobs/sha256/{config_hex}"),
        },
        (Style::Classic, _) => format!("{long_dir}/{config_hex}.json"),
    };
    let mut layer_files = Vec::new();
    match spec.style {
        Style::Classic => {
            for ((layer, v1_id), index) in spec.layers.iter().zip(&v1_ids).zip(0..) {
                writer.dir(&format!("{v1_id}/"));
                writer.file(&format!("{v1_id}/VERSION"), b"1.0");
                let json = serde_json::json!({"id": v1_id, "layer_index": index});
                writer.file(
                    &format!("{v1_id}/json"),
                    &serde_json::to_vec(&json).unwrap(),
                );
                writer.file(&format!("{v1_id}/layer.tar"), layer);
                layer_files.push(format!("{v1_id}/layer.tar"));
            }
            writer.file(&config_path, &config_bytes);
        }
        Style::Oci => {
            writer.dir("blobs/");
            writer.dir("blobs/sha256/");
            for ((layer, diff_id), index) in spec.layers.iter().zip(&diff_ids).zip(0..) {
                let blob = format!("blobs/sha256/{}", diff_id.trim_start_matches("sha256:"));
                writer.file(&blob, layer);
                if index == 0 {
                    layer_files.push(blob);
                } else {
                    let v1_id = &v1_ids[index];
                    writer.dir(&format!("{v1_id}/"));
                    writer.symlink(&format!("{v1_id}/layer.tar"), &format!("../{blob}"));
                    layer_files.push(format!("{v1_id}/layer.tar"));
                }
            }
            writer.file(&config_path, &config_bytes);
            let oci_manifest = serde_json::json!({
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                           "digest": format!("sha256:{config_hex}"), "size": config_bytes.len()},
                "layers": diff_ids.iter().zip(&spec.layers).map(|(digest, layer)| serde_json::json!({
                    "mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": digest, "size": layer.len()
                })).collect::<Vec<_>>(),
            });
            let manifest_bytes = serde_json::to_vec(&oci_manifest).unwrap();
            let manifest_hex = sha256_hex(&manifest_bytes);
            writer.file(&format!("blobs/sha256/{manifest_hex}"), &manifest_bytes);
            let index = serde_json::json!({
                "schemaVersion": 2,
                "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                               "digest": format!("sha256:{manifest_hex}"), "size": manifest_bytes.len()}],
            });
            writer.file("index.json", &serde_json::to_vec(&index).unwrap());
            writer.file("oci-layout", br#"{"imageLayoutVersion": "1.0.0"}"#);
        }
    }
    if !spec.without_manifest {
        let manifest = serde_json::json!([{
            "Config": config_path,
            "RepoTags": spec.repo_tags,
            "Layers": layer_files,
        }]);
        writer.file("manifest.json", &serde_json::to_vec(&manifest).unwrap());
    }
    writer.file("repositories", b"{}");
    let bytes = writer.builder.into_inner().unwrap();
    SaveTar {
        bytes,
        config_digest: format!("sha256:{config_hex}"),
        diff_ids,
        layer_files,
    }
}

/// A simple valid one-image tar with two layers.
pub fn simple_tar(repo_tag: &str, seed: u64) -> SaveTar {
    let layers = vec![
        layer(&[
            ("bin/tool", payload(300_000, seed)),
            ("etc/conf", b"x=1\n".to_vec()),
        ]),
        layer(&[("data/blob", payload(123_457, seed + 1))]),
    ];
    docker_save_tar(&TarSpec::new(repo_tag, layers))
}

/// The tar as a stream of chunks of `chunk` bytes.
pub fn chunks(bytes: &[u8], chunk: usize) -> Vec<Result<bytes::Bytes, std::io::Error>> {
    bytes
        .chunks(chunk)
        .map(|piece| Ok(bytes::Bytes::copy_from_slice(piece)))
        .collect()
}

pub fn options(compression: Compression, reference: &str) -> WriteOptions {
    WriteOptions {
        compression,
        level: None,
        threads: 2,
        expected: ExpectedImage::reference(reference),
    }
}

/// Writes a tar through the archive writer.
pub fn write(
    bytes: &[u8],
    destination: &Path,
    options: &WriteOptions,
) -> anyhow::Result<WrittenArchive> {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let stream = futures_util::stream::iter(chunks(bytes, 64 * 1024 + 3));
    runtime.block_on(write_archive(stream, destination, options, |_| {}))
}

/// Files (not directories) below `dir`, relative, sorted.
pub fn files_below(dir: &Path) -> Vec<String> {
    let mut files: Vec<String> = walkdir::WalkDir::new(dir)
        .into_iter()
        .map(|entry| entry.unwrap())
        .filter(|entry| entry.file_type().is_file())
        .map(|entry| {
            entry
                .path()
                .strip_prefix(dir)
                .unwrap()
                .display()
                .to_string()
        })
        .collect();
    files.sort();
    files
}

/// Runs a shell pipeline and returns its stdout, panicking with stderr on failure.
pub fn shell(script: &str) -> String {
    let output = Command::new("sh").arg("-c").arg(script).output().unwrap();
    assert!(
        output.status.success(),
        "`{script}` failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

pub fn sha256_of_file(path: &Path) -> String {
    sha256_hex(&std::fs::read(path).unwrap())
}

/// The bunker binary, run with the given arguments; returns (exit code, stdout, stderr).
pub fn bunker(args: &[&str], cwd: &Path) -> (i32, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_bunker"))
        .args(args)
        .current_dir(cwd)
        .env_remove("IMAGE_ARCHIVE_DIR")
        .env("HOME", cwd)
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

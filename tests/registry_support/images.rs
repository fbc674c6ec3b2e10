//! The images registry tests put in the sandbox's registries: docker-save tars built
//! here (no engine involved), pushed and inspected with skopeo, the real client; and the
//! starting point every registry test shares (`registry_test`).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::{Sandbox, TestHome, run, sandbox, unique_name};

/// What a registry test starts from: (the sandbox, a HOME that knows it, a work
/// directory, a name no other test uses (`unique_name(prefix)`) for its repository).
pub fn registry_test(prefix: &str) -> (Sandbox, TestHome, tempfile::TempDir, String) {
    let sandbox = sandbox();
    let home = TestHome::new(&sandbox);
    let work = tempfile::tempdir().expect("create a work directory");
    (sandbox, home, work, unique_name(prefix))
}

/// Writes `text` to the file `name` in `dir` (a sync config, a mapping); its path.
pub fn write_file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap_or_else(|error| panic!("write {path:?}: {error}"));
    path
}

/// Copies a docker-save tar into a registry with skopeo (the real client); credentials
/// come from an auth file, never from the command line.
pub fn skopeo_push(tar: &Path, destination: &str, auth_file: Option<&Path>) {
    let mut command = Command::new("skopeo");
    command.args(["copy", "--quiet", "--dest-tls-verify=false"]);
    if let Some(auth_file) = auth_file {
        command.arg("--dest-authfile").arg(auth_file);
    }
    command
        .arg(format!("docker-archive:{}", tar.display()))
        .arg(format!("docker://{destination}"));
    run(&mut command).assert_success();
}

/// An image in the sandbox's plain registry: one tiny and one big (incompressible) layer.
pub struct Seeded {
    /// `repository:tag` (without the registry).
    pub repository_and_tag: String,
    pub image_id: String,
    pub big_digest: String,
    pub big_size: u64,
    /// Every blob (config and layers) with its size.
    pub blobs: Vec<(String, u64)>,
}

impl Seeded {
    pub fn unique_bytes(&self) -> u64 {
        self.blobs.iter().map(|(_, size)| size).sum()
    }
}

/// Pushes `repository:1` to the plain registry: a tiny layer and one of `big_bytes`
/// incompressible bytes.
pub fn seed_big_image(
    sandbox: &Sandbox,
    work: &Path,
    repository: &str,
    big_bytes: usize,
) -> Seeded {
    let repository_and_tag = format!("{repository}:1");
    let (tar, image_id) = docker_save_tar(
        work,
        &repository_and_tag,
        &[
            vec![("hello.txt".into(), format!("{repository}\n").into_bytes())],
            vec![(
                "noise.bin".into(),
                noise(big_bytes, repository.len() as u64 + 7),
            )],
        ],
    );
    let reference = format!("{}/{repository_and_tag}", sandbox.registry);
    skopeo_push(&tar, &reference, None);
    let manifest = raw_manifest(&reference);
    let descriptor = |value: &serde_json::Value| {
        (
            value["digest"].as_str().expect("digest").to_string(),
            value["size"].as_u64().expect("size"),
        )
    };
    let mut blobs = vec![descriptor(&manifest["config"])];
    blobs.extend(
        manifest["layers"]
            .as_array()
            .expect("layers")
            .iter()
            .map(descriptor),
    );
    let (big_digest, big_size) = blobs[1..]
        .iter()
        .max_by_key(|(_, size)| *size)
        .cloned()
        .expect("a layer");
    Seeded {
        repository_and_tag,
        image_id,
        big_digest,
        big_size,
        blobs,
    }
}

/// `skopeo inspect --raw` of a registry image, parsed.
pub fn raw_manifest(reference: &str) -> serde_json::Value {
    let output = run(Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(format!("docker://{reference}")));
    output.assert_success();
    serde_json::from_str(&output.stdout).expect("manifest JSON")
}

/// A docker-save tar in `work` of `repository_and_tag` with one layer holding one file
/// (name, content): (tar, image ID).
pub fn one_file_tar(
    work: &Path,
    repository_and_tag: &str,
    (name, content): (&str, &[u8]),
) -> (PathBuf, String) {
    docker_save_tar(
        work,
        repository_and_tag,
        &[vec![(name.to_string(), content.to_vec())]],
    )
}

/// [`one_file_tar`], pushed to the sandbox's plain registry under the same name.
pub fn push_one_file_image(
    sandbox: &Sandbox,
    work: &Path,
    repository_and_tag: &str,
    file: (&str, &[u8]),
) -> (PathBuf, String) {
    let (tar, image_id) = one_file_tar(work, repository_and_tag, file);
    skopeo_push(
        &tar,
        &format!("{}/{repository_and_tag}", sandbox.registry),
        None,
    );
    (tar, image_id)
}

/// Builds a docker-save tar with one layer holding `files` (name, content) and
/// returns (tar path, config digest = image ID). `tag` goes into RepoTags.
pub fn docker_save_tar(
    dir: &std::path::Path,
    tag: &str,
    layers: &[Vec<(String, Vec<u8>)>],
) -> (std::path::PathBuf, String) {
    docker_save_tar_for(dir, tag, layers, "amd64")
}

/// [`docker_save_tar`] for another CPU architecture (written into the config).
pub fn docker_save_tar_for(
    dir: &std::path::Path,
    tag: &str,
    layers: &[Vec<(String, Vec<u8>)>],
    architecture: &str,
) -> (std::path::PathBuf, String) {
    use sha2::{Digest, Sha256};
    let hex = |bytes: &[u8]| -> String {
        Sha256::digest(bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    };
    let mut layer_tars = Vec::new();
    for files in layers {
        let mut builder = tar::Builder::new(Vec::new());
        for (name, content) in files {
            let mut header = tar::Header::new_ustar();
            header.set_size(content.len() as u64);
            header.set_mode(0o755);
            header.set_mtime(0);
            header.set_cksum();
            builder
                .append_data(&mut header, name, &content[..])
                .unwrap();
        }
        layer_tars.push(builder.into_inner().unwrap());
    }
    let diff_ids: Vec<String> = layer_tars
        .iter()
        .map(|tar| format!("sha256:{}", hex(tar)))
        .collect();
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": architecture,
        "os": "linux",
        "config": {"Cmd": ["/bin/busybox", "true"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": layer_tars.iter().map(|_| serde_json::json!({"created_by": "bunker test"})).collect::<Vec<_>>(),
    }))
    .unwrap();
    let config_hex = hex(&config);
    let manifest = serde_json::to_vec(&serde_json::json!([{
        "Config": format!("{config_hex}.json"),
        "RepoTags": [tag],
        "Layers": diff_ids.iter().map(|id| format!("{}.tar", &id[7..])).collect::<Vec<_>>(),
    }]))
    .unwrap();
    let mut builder = tar::Builder::new(Vec::new());
    let mut add = |name: &str, data: &[u8]| {
        let mut header = tar::Header::new_ustar();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder.append_data(&mut header, name, data).unwrap();
    };
    add("manifest.json", &manifest);
    add(&format!("{config_hex}.json"), &config);
    for (tar, id) in layer_tars.iter().zip(&diff_ids) {
        add(&format!("{}.tar", &id[7..]), tar);
    }
    let path = dir.join(format!(
        "{}-{architecture}.tar",
        tag.replace(['/', ':'], "_")
    ));
    std::fs::write(&path, builder.into_inner().unwrap()).unwrap();
    (path, format!("sha256:{config_hex}"))
}

/// Deterministic pseudo-random bytes (incompressible layer content).
pub fn noise(length: usize, seed: u64) -> Vec<u8> {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..length)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

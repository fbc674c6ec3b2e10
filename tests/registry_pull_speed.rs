//! `bunker registry pull` of several images that share a layer: the images are
//! fetched and written concurrently into one archive directory, and the result
//! must be what a one-at-a-time pull gives: every shared blob downloaded once,
//! one manifest.json entry per image, every archive verified and `docker
//! load`-able as the pushed image ID, and a second pull that writes nothing.

mod common;
mod registry_support;

use std::path::Path;
use std::process::Command;

use common::{TestHome, docker, docker_ok, image_id, run, sandbox, unique_name};
use registry_support::{docker_save_tar, noise};

const IMAGES: usize = 4;

/// `skopeo inspect --raw` of a registry image, parsed.
fn raw_manifest(reference: &str) -> serde_json::Value {
    let output = run(Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(format!("docker://{reference}")));
    output.assert_success();
    serde_json::from_str(&output.stdout).expect("manifest JSON")
}

/// Pushes `IMAGES` images sharing a 2 MiB incompressible base layer, each with
/// a small layer of its own; returns (reference, image ID) of each.
fn seed_images_sharing_a_base(registry: &str, work: &Path, name: &str) -> Vec<(String, String)> {
    let base = vec![("base.bin".to_string(), noise(2 << 20, name.len() as u64))];
    (0..IMAGES)
        .map(|n| {
            let tag = format!("{name}/img{n}:1");
            let own = vec![(format!("app{n}.txt"), format!("{name} {n}\n").into_bytes())];
            let (tar, image_id) = docker_save_tar(work, &tag, &[base.clone(), own]);
            let reference = format!("{registry}/{tag}");
            run(Command::new("skopeo")
                .args(["copy", "--quiet", "--dest-tls-verify=false"])
                .arg(format!("docker-archive:{}", tar.display()))
                .arg(format!("docker://{reference}")))
            .assert_success();
            (reference, image_id)
        })
        .collect()
}

/// Config and layer bytes of all the images, each distinct blob counted once.
fn unique_blob_bytes(references: &[String]) -> u64 {
    let mut seen = std::collections::HashMap::new();
    for reference in references {
        let manifest = raw_manifest(reference);
        let layers = manifest["layers"].as_array().unwrap().iter();
        for blob in std::iter::once(&manifest["config"]).chain(layers) {
            seen.insert(
                blob["digest"].as_str().unwrap().to_string(),
                blob["size"].as_u64().unwrap(),
            );
        }
    }
    seen.values().sum()
}

#[test]
fn images_sharing_a_layer_are_pulled_concurrently_into_one_verified_archive() {
    let sandbox = sandbox();
    let home = TestHome::new(&sandbox);
    let work = tempfile::tempdir().unwrap();
    let name = unique_name("bunker-pull-shared");
    let images = seed_images_sharing_a_base(&sandbox.registry, work.path(), &name);
    let references: Vec<String> = images.iter().map(|(r, _)| r.clone()).collect();
    let archive = tempfile::tempdir().unwrap();

    let pull = || {
        let output = home
            .bunker()
            .args(["registry", "pull", "--compression", "none", "--json"])
            .args(&references)
            .arg("--archive-dir")
            .arg(archive.path())
            .run();
        output.assert_success();
        serde_json::from_str::<serde_json::Value>(&output.stdout).expect("pull report JSON")
    };
    let report = pull();
    assert_eq!(report["failed"], 0, "{report:#}");
    assert_eq!(
        report["downloaded_bytes"].as_u64(),
        Some(unique_blob_bytes(&references)),
        "the shared base layer must be downloaded once: {report:#}"
    );

    let arch_dir = archive.path().join("x86_64");
    let manifest: serde_json::Value =
        serde_json::from_str(&common::read_text(&arch_dir.join("manifest.json"))).unwrap();
    let entries = manifest["images"].as_array().unwrap();
    assert_eq!(entries.len(), IMAGES, "{manifest:#}");
    for (reference, pushed_id) in &images {
        let entry = entries
            .iter()
            .find(|entry| entry["image"] == reference.as_str())
            .unwrap_or_else(|| panic!("no manifest.json entry for {reference}: {manifest:#}"));
        assert_eq!(entry["docker_id"], pushed_id.as_str(), "{entry:#}");
    }
    home.bunker()
        .args(["archive", "verify", "--archive-dir"])
        .arg(archive.path())
        .run()
        .assert_success();

    for image in report["images"].as_array().unwrap() {
        let reference = image["reference"].as_str().unwrap();
        let file = image["images"][0]["output"].as_str().unwrap();
        let pushed_id = &images.iter().find(|(r, _)| r == reference).unwrap().1;
        docker(&sandbox, ["load", "-i", file])
            .assert_success()
            .assert_stdout_contains(reference);
        assert_eq!(
            image_id(&sandbox, reference).as_deref(),
            Some(pushed_id.as_str())
        );
        docker_ok(&sandbox, ["rmi", reference]);
    }

    // Nothing changed: nothing is downloaded and the archives are kept as they are.
    let hashes_before: Vec<_> = entries.iter().map(|e| e["sha256"].clone()).collect();
    let again = pull();
    assert_eq!(again["failed"], 0, "{again:#}");
    assert_eq!(again["downloaded_bytes"], 0, "{again:#}");
    let manifest: serde_json::Value =
        serde_json::from_str(&common::read_text(&arch_dir.join("manifest.json"))).unwrap();
    let hashes_after: Vec<_> = manifest["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["sha256"].clone())
        .collect();
    assert_eq!(hashes_before, hashes_after);
}

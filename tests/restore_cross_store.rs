//! Image identity across image stores: archives made on the sandbox's Docker 20.10
//! (classic store: image ID = config digest) restored onto its Docker 26 with the
//! containerd image store (image ID = manifest digest), and the reverse, over SSH.
//! A correctly loaded image is never called failed, a different image under the
//! archived name is never called the same (unit tests in `image::identity`), and manifests written before the identity
//! fields existed still restore onto either engine.

mod common;
mod restore_support;

use std::path::Path;

use bunker::archive::{ArchDir, Manifest};
use common::*;
use restore_support::*;

/// Engine 2 of the sandbox (Docker 26, containerd store), as a [`Sandbox`] whose
/// engine, sshd port, known_hosts and remote socket are engine 2's. Panics when the
/// sandbox does not run it.
fn engine2() -> Sandbox {
    let engine1 = sandbox();
    let file = engine1.dir.join("env.sh");
    let values = parse_env_file(&std::fs::read_to_string(&file).unwrap_or_default());
    let value = |name: &str| {
        std::env::var(name)
            .ok()
            .filter(|value| !value.is_empty())
            .or_else(|| values.get(name).cloned())
            .unwrap_or_else(|| {
                panic!(
                    "engine 2 not running: {name} is neither set nor in {}; start it with \
                     scripts/sandbox.sh up-engine2",
                    file.display()
                )
            })
    };
    let engine2 = Sandbox {
        docker_host: value("BUNKER_ENGINE2_DOCKER_HOST"),
        ssh_port: value("BUNKER_ENGINE2_SSH_PORT")
            .parse()
            .expect("BUNKER_ENGINE2_SSH_PORT is a port"),
        known_hosts: value("BUNKER_ENGINE2_KNOWN_HOSTS").into(),
        remote_socket: value("BUNKER_ENGINE2_REMOTE_SOCKET"),
        ..engine1
    };
    let store = docker_ok(&engine2, ["info", "--format", "{{json .DriverStatus}}"]);
    assert!(
        store.contains("io.containerd.snapshotter"),
        "engine 2 at {} does not use the containerd image store: {store}",
        engine2.docker_host
    );
    engine2
}

/// One engine, reached over SSH with its own HOME.
struct Engine {
    sandbox: Sandbox,
    home: TestHome,
}

impl Engine {
    fn new(sandbox: Sandbox) -> Engine {
        let home = TestHome::new(&sandbox);
        Engine { sandbox, home }
    }

    fn restore(&self, arch_dir: &Path, extra: &[&str]) -> Output {
        self.home
            .bunker()
            .remote(&self.sandbox)
            .args(["image-restore", "--json", "--archive-dir"])
            .arg(arch_dir)
            .args(extra)
            .run()
    }

    /// Builds `tag` from the seed image plus a marker file and `extra` Dockerfile lines.
    fn build(&self, tag: &str, extra: &str) {
        let context = tempfile::tempdir().unwrap();
        std::fs::write(context.path().join("marker"), format!("{tag}\n")).unwrap();
        std::fs::write(
            context.path().join("Dockerfile"),
            format!(
                "FROM {}\nCOPY marker /marker\nENV MARKER={tag}\nCMD [\"cat\", \"/marker\"]\n{extra}",
                self.sandbox.seed_image
            ),
        )
        .unwrap();
        docker_ok(
            &self.sandbox,
            ["build", "-q", "-t", tag, &context.path().to_string_lossy()],
        );
    }

    fn inspect(&self, image: &str, format: &str) -> String {
        docker_ok(
            &self.sandbox,
            ["image", "inspect", "--format", format, image],
        )
    }

    /// What identifies the image's content on any store: layers, command, env.
    fn content(&self, image: &str) -> String {
        self.inspect(
            image,
            "{{json .RootFS.Layers}} {{json .Config.Cmd}} {{json .Config.Env}}",
        )
    }

    /// Removes `image` if present (only images this test created).
    fn remove(&self, image: &str) {
        let output = docker(&self.sandbox, ["rmi", "--force", image]);
        assert!(
            output.success() || output.stderr.contains("No such image"),
            "{output}"
        );
    }
}

fn json(output: &Output) -> serde_json::Value {
    serde_json::from_str(&output.stdout)
        .unwrap_or_else(|error| panic!("not JSON ({error}):\n{output}"))
}

/// The one image row of a restore report.
#[track_caller]
fn only_row(output: &Output) -> serde_json::Value {
    let report = json(output);
    let rows = report["images"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{report:#}");
    rows[0].clone()
}

#[track_caller]
fn assert_outcome(output: &Output, outcome: &str) -> serde_json::Value {
    let row = only_row(output);
    assert_eq!(row["outcome"], outcome, "{output}");
    assert_eq!(row["problems"], serde_json::json!([]), "{output}");
    row
}

/// Archives `image` from `from`, restores it onto `to` (where it is absent), then
/// restores again: loaded and checked, then skipped, never failed.
fn round_trip(from: &Engine, to: &Engine, image: &str) {
    let base = tempfile::tempdir().unwrap();
    let arch_dir = archive_images(
        &from.sandbox.docker_host,
        base.path(),
        "x86_64",
        &[gz("cross", image)],
    );
    let content = from.content(image);
    let first = from_to(to, arch_dir.path(), "loaded");
    assert_eq!(to.content(image), content, "{image} on the target");
    assert!(
        first["detail"].as_str().unwrap().contains("match"),
        "{first:#}"
    );
    let again = from_to(to, arch_dir.path(), "skipped");
    assert!(
        again["detail"]
            .as_str()
            .unwrap()
            .contains("already on the engine"),
        "{again:#}"
    );
}

#[track_caller]
fn from_to(to: &Engine, arch_dir: &Path, outcome: &str) -> serde_json::Value {
    let output = to.restore(arch_dir, &[]);
    output.assert_success();
    assert_outcome(&output, outcome)
}

#[test]
fn an_archive_restores_across_image_stores_both_ways() {
    let classic = Engine::new(sandbox());
    let containerd = Engine::new(engine2());

    let from_classic = format!("bunker-test/{}:1", unique_name("cross-c2d"));
    classic.build(&from_classic, "");
    round_trip(&classic, &containerd, &from_classic);
    // On the containerd store the ID is a manifest digest the engine wrote itself.
    assert_ne!(
        containerd.inspect(&from_classic, "{{.Id}}"),
        classic.inspect(&from_classic, "{{.Id}}")
    );
    classic.remove(&from_classic);
    containerd.remove(&from_classic);

    let from_containerd = format!("bunker-test/{}:1", unique_name("cross-d2c"));
    containerd.build(&from_containerd, "");
    round_trip(&containerd, &classic, &from_containerd);
    classic.remove(&from_containerd);
    containerd.remove(&from_containerd);
}

/// Strips what newer bunkers record from every entry of the manifest in `arch_dir`:
/// the identity fields (a manifest of today's bunker), and with `layers` the diff IDs
/// too (the old tool's manifests).
fn age_manifest(arch_dir: &ArchDir, layers: bool) {
    let path = arch_dir.manifest_path();
    let mut value: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    for entry in value["images"].as_array_mut().unwrap() {
        let entry = entry.as_object_mut().unwrap();
        for field in ["config_digest", "manifest_digests", "config_fingerprint"] {
            entry.remove(field);
        }
        if layers {
            entry.remove("layers");
        }
    }
    std::fs::write(&path, serde_json::to_string_pretty(&value).unwrap()).unwrap();
    let manifest = Manifest::load(&path).unwrap();
    assert_eq!(manifest.images.len(), 1);
}

#[test]
fn older_manifests_with_only_docker_id_restore_onto_both_engines() {
    let classic = Engine::new(sandbox());
    let containerd = Engine::new(engine2());
    for layers in [false, true] {
        let image = format!("bunker-test/{}:1", unique_name("cross-old"));
        classic.build(&image, "");
        let content = classic.content(&image);
        let id = classic.inspect(&image, "{{.Id}}");
        let base = tempfile::tempdir().unwrap();
        let arch_dir = archive_images(
            &classic.sandbox.docker_host,
            base.path(),
            "x86_64",
            &[gz("cross", &image)],
        );
        age_manifest(&arch_dir, layers);

        // Engine 2: loaded (not failed), the same content under the name.
        from_to(&containerd, arch_dir.path(), "loaded");
        assert_eq!(containerd.content(&image), content);
        // Nothing certain to compare by: loaded again rather than skipped.
        from_to(&containerd, arch_dir.path(), "loaded");

        // Engine 1: the recorded ID is the config digest; checked exactly, then skipped.
        classic.remove(&image);
        let row = from_to(&classic, arch_dir.path(), "loaded");
        assert!(
            row["detail"].as_str().unwrap().contains("image ID"),
            "{row:#}"
        );
        assert_eq!(classic.inspect(&image, "{{.Id}}"), id);
        from_to(&classic, arch_dir.path(), "skipped");
        classic.remove(&image);
        containerd.remove(&image);
    }
}

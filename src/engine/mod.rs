//! The Docker engine connection: target resolution (`--host`, `DOCKER_HOST`,
//! Docker contexts, `~/.ssh/config`), the russh session and bollard over it.
//!
//! [`connect`] is the one entry point: it resolves the target ([`target`]), opens one
//! SSH session ([`ssh`]: destination from [`ssh_config`] in [`ssh_destination`], host key
//! against [`known_hosts`], then user authentication), picks the route to the
//! engine (the socket over `direct-streamlocal`, else `docker system dial-stdio`),
//! negotiates the API version and reads the [`EngineFacts`] ([`facts`]). Every later
//! request, and every connection through [`Engine::forward_to_local_socket`], reuses
//! that session.

pub mod containers;
pub mod facts;
pub mod forward;
mod host_key;
pub mod known_hosts;
pub mod ssh;
mod ssh_auth;
pub mod ssh_config;
pub mod ssh_destination;
pub mod target;
pub mod transport;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use forward::LocalSocketForward;
use ssh::{SshDestination, SshSession};
use target::{Endpoint, SshAddress, Target, TargetInputs};
use transport::{DIAL_STDIO_ARGUMENTS, Dialer, Route, docker_client};

/// The engine socket on an SSH server when neither `--remote-socket` nor the URL names one.
pub const DEFAULT_REMOTE_SOCKET: &str = "/var/run/docker.sock";

/// How long connecting may wait for the engine's first answer (not the SSH handshake,
/// which has its own `ConnectTimeout`).
const FIRST_ANSWER_TIMEOUT: Duration = Duration::from_secs(60);

/// How to select and reach the engine: plain settings, filled by the command line
/// (`--host`, `--context`, `--remote-socket`, ...) or by a library caller.
#[derive(Debug, Clone, Default)]
pub struct EngineSettings {
    /// Engine URL: `ssh://[user@]host[:port]` or `unix:///path/to/docker.sock`
    /// (`None`: DOCKER_HOST, then the current Docker context).
    pub host: Option<String>,
    /// Docker context to take the engine from (`--context`/`DOCKER_CONTEXT`).
    pub context: Option<String>,
    /// Path of the engine socket on the SSH server (`None`: the URL's, else
    /// [`DEFAULT_REMOTE_SOCKET`], with the `dial-stdio` fallback).
    pub remote_socket: Option<String>,
    /// Trust and record an SSH host key that is not yet in ~/.ssh/known_hosts.
    pub accept_new_host_key: bool,
    /// The docker CLI on the SSH server for the `docker system dial-stdio` fallback
    /// (`None`: `docker`).
    pub remote_docker: Option<String>,
}

/// Facts about the engine, read once per run.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EngineFacts {
    /// Engine version, e.g. `20.10.24+dfsg1`.
    pub version: String,
    /// Negotiated API version, e.g. `1.41`.
    pub api_version: String,
    /// Architecture in `uname -m` form (`x86_64`, `aarch64`), as the engine reports it.
    pub arch: String,
    /// OS/architecture pair in OCI form, e.g. `linux/amd64`.
    pub platform: String,
    pub storage_driver: String,
    /// Classic or containerd image store: what an image ID is on this engine.
    #[serde(default = "classic_store")]
    pub image_store: crate::image::identity::ImageStore,
    pub images: u64,
    /// Host name of the engine's machine.
    pub name: String,
}

fn classic_store() -> crate::image::identity::ImageStore {
    crate::image::identity::ImageStore::Classic
}

/// A connected engine: one SSH connection reused for every request of the run.
#[derive(Clone)]
pub struct Engine {
    pub docker: bollard::Docker,
    /// Human-readable target, e.g. `ssh://root@127.0.0.1:22922`; used in messages and manifests.
    pub target: String,
    /// The Docker context the target came from, when it came from one.
    pub context: Option<String>,
    /// SSH host (`user@host:port`) when the engine is reached over SSH.
    pub ssh_host: Option<String>,
    pub facts: EngineFacts,
    dialer: Dialer,
    selected_by: String,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("target", &self.target)
            .field("context", &self.context)
            .field("transport", &self.transport())
            .field("facts", &self.facts)
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// How requests reach the engine, e.g. `ssh root@host:22 → socket /var/run/docker.sock`.
    pub fn transport(&self) -> String {
        self.dialer.describe()
    }

    /// What selected this engine: `--host`, `DOCKER_HOST` or the Docker context and its file.
    pub fn selected_by(&self) -> &str {
        &self.selected_by
    }

    /// Listens on the unix socket `path` and forwards each connection to the engine over
    /// a new channel of this run's SSH session (or to the local socket). Give tools
    /// `DOCKER_HOST=<handle>.docker_host()`; dropping the handle stops the forward and
    /// removes the socket file.
    pub fn forward_to_local_socket(&self, path: &Path) -> anyhow::Result<LocalSocketForward> {
        LocalSocketForward::start(path, self.dialer.clone())
    }

    /// This run's SSH session and the route requests take, when the engine is reached
    /// over SSH (for commands run beside the API, e.g. a compressed export).
    pub fn ssh_route(&self) -> Option<(Arc<SshSession>, Route)> {
        match &self.dialer {
            Dialer::Ssh { session, route } => Some((session.clone(), route.clone())),
            Dialer::Local(_) => None,
        }
    }
}

/// Resolves the target and connects.
pub async fn connect(settings: &EngineSettings) -> anyhow::Result<Engine> {
    let home = home_dir()?;
    let inputs = TargetInputs::from_environment(
        settings.host.as_deref(),
        settings.context.as_deref(),
        &home,
    );
    let target = target::resolve(&inputs)?;
    connect_to(&target, settings, &home).await
}

/// Connects to an already resolved target.
pub async fn connect_to(
    target: &Target,
    args: &EngineSettings,
    home: &Path,
) -> anyhow::Result<Engine> {
    match &target.endpoint {
        Endpoint::Unix(path) => {
            let dialer = Dialer::Local(path.clone());
            let docker = negotiate(&dialer).await.map_err(|error| {
                anyhow::anyhow!(
                    "no Docker engine answers on {} (from {}): {error}. Is dockerd running, \
                     and may this user open the socket (docker group)?",
                    path.display(),
                    target.source
                )
            })?;
            finish(docker, dialer, target.url.clone(), target, None).await
        }
        Endpoint::Ssh(address) => connect_ssh(target, address, args, home).await,
    }
}

async fn connect_ssh(
    target: &Target,
    address: &SshAddress,
    args: &EngineSettings,
    home: &Path,
) -> anyhow::Result<Engine> {
    let destination = SshDestination::resolve(address, home)?;
    let server = destination.display();
    let session = Arc::new(SshSession::connect(destination, args.accept_new_host_key).await?);
    let socket = args
        .remote_socket
        .clone()
        .or_else(|| address.socket_path.clone())
        .unwrap_or_else(|| DEFAULT_REMOTE_SOCKET.to_owned());
    let url = format!("ssh://{server}");

    let socket_problem = match session.open_socket_channel(&socket).await {
        Ok(channel) => {
            let _ = channel.close().await;
            let dialer = Dialer::Ssh {
                session: session.clone(),
                route: Route::Socket(socket.clone()),
            };
            match negotiate(&dialer).await {
                Ok(docker) => {
                    return finish(docker, dialer, url, target, Some(server)).await;
                }
                Err(error) => format!("{socket} answered, but not as a Docker engine ({error})"),
            }
        }
        Err(error) => transport::socket_channel_failure(&socket, &error),
    };
    let dial_stdio = format!(
        "{} {DIAL_STDIO_ARGUMENTS}",
        args.remote_docker.as_deref().unwrap_or("docker")
    );
    tracing::warn!(
        "{server}: {socket_problem}; falling back to `{dial_stdio}` on the server \
         (--remote-socket / BUNKER_REMOTE_SOCKET names the engine socket)"
    );
    let dialer = Dialer::Ssh {
        session: session.clone(),
        route: Route::DialStdio(dial_stdio.clone()),
    };
    match negotiate(&dialer).await {
        Ok(docker) => finish(docker, dialer, url, target, Some(server)).await,
        Err(error) => {
            let diagnosis = diagnose_dial_stdio(&session, &dial_stdio)
                .await
                .unwrap_or_else(|| format!("failed: {error}"));
            let next_step = if diagnosis.contains("docker CLI is not found") {
                "or install the docker CLI on the server"
            } else {
                "or check on the server that dockerd runs (`docker info`)"
            };
            anyhow::bail!(
                "cannot reach the Docker engine on {server}.\n  \
                 socket: {socket_problem}\n  \
                 fallback `{dial_stdio}`: {diagnosis}\n\
                 Give the engine socket path with --remote-socket PATH (or BUNKER_REMOTE_SOCKET), \
                 {next_step}."
            )
        }
    }
}

/// Runs dial-stdio with no input to learn why it fails (missing CLI, no engine, ...);
/// `None` when it shows nothing wrong.
async fn diagnose_dial_stdio(session: &SshSession, command: &str) -> Option<String> {
    let output = match tokio::time::timeout(FIRST_ANSWER_TIMEOUT, session.run(command)).await {
        Err(_) => return Some("does not answer".to_owned()),
        Ok(Err(error)) => return Some(format!("cannot be started ({error})")),
        Ok(Ok(output)) => output,
    };
    let stderr = output.stderr.trim();
    let status = output
        .exit_status
        .map(|code| format!("exit status {code}"))
        .unwrap_or_else(|| "no exit status".to_owned());
    let diagnosis = if output.exit_status == Some(127) || stderr.contains("not found") {
        format!("the docker CLI is not found on the server ({status}: {stderr})")
    } else if stderr.contains("permission denied") {
        format!(
            "the SSH user may not use the engine socket; add it to the `docker` group ({status}: {stderr})"
        )
    } else if output.exit_status == Some(0) && stderr.is_empty() {
        return None;
    } else if stderr.is_empty() {
        format!("failed with {status}")
    } else {
        format!("failed with {status}: {stderr}")
    };
    Some(diagnosis)
}

/// Builds the client over `dialer` and negotiates the API version.
async fn negotiate(dialer: &Dialer) -> anyhow::Result<bollard::Docker> {
    let docker = docker_client(dialer.clone())?;
    match tokio::time::timeout(FIRST_ANSWER_TIMEOUT, docker.negotiate_version()).await {
        Err(_) => anyhow::bail!("no answer within {} s", FIRST_ANSWER_TIMEOUT.as_secs()),
        Ok(result) => Ok(result?),
    }
}

async fn finish(
    docker: bollard::Docker,
    dialer: Dialer,
    url: String,
    target: &Target,
    ssh_host: Option<String>,
) -> anyhow::Result<Engine> {
    let facts = facts::read_facts(&docker).await.map_err(|error| {
        anyhow::anyhow!("cannot read the facts of the engine at {url}: {error:#}")
    })?;
    Ok(Engine {
        docker,
        target: url,
        context: target.context_name().map(str::to_owned),
        ssh_host,
        facts,
        dialer,
        selected_by: target.source.to_string(),
    })
}

/// `$HOME`, else the password database.
pub fn home_dir() -> anyhow::Result<PathBuf> {
    if let Some(home) = std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        return Ok(PathBuf::from(home));
    }
    #[allow(deprecated)]
    std::env::home_dir().ok_or_else(|| anyhow::anyhow!("cannot find the home directory: set HOME"))
}

//! The Docker engine connection: target resolution (`--host`, `DOCKER_HOST`,
//! Docker contexts, `~/.ssh/config`), the russh session and bollard over it.
//!
//! STUB: the interface below is fixed (other modules code against it); the
//! implementation is being written.

use clap::Args;

use crate::cli::GlobalArgs;

/// Flags that select and reach the engine; flattened into every engine command.
#[derive(Debug, Clone, Default, Args)]
pub struct EngineArgs {
    /// Engine to use: `ssh://[user@]host[:port]` or `unix:///path/to/docker.sock`
    /// (default: DOCKER_HOST, then the current Docker context).
    #[arg(long = "host", short = 'H', value_name = "URL")]
    pub host: Option<String>,
    /// Path of the engine socket on the SSH server (default /var/run/docker.sock, with a
    /// fallback to `docker system dial-stdio` on the server).
    #[arg(long, env = "BUNKER_REMOTE_SOCKET", value_name = "PATH")]
    pub remote_socket: Option<String>,
    /// Trust and record an SSH host key that is not yet in ~/.ssh/known_hosts.
    #[arg(long)]
    pub accept_new_host_key: bool,
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
    pub images: u64,
    /// Host name of the engine's machine.
    pub name: String,
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
}

/// Resolves the target and connects (STUB: fails until implemented).
pub async fn connect(global: &GlobalArgs, args: &EngineArgs) -> anyhow::Result<Engine> {
    let _ = (global, args);
    anyhow::bail!("the engine connection is being written")
}

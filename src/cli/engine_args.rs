//! The engine flags every engine command flattens in, and their translation into
//! the plain [`EngineSettings`] the engine code takes (it never sees clap).

use clap::Args;

use super::GlobalArgs;
use crate::engine::EngineSettings;

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
    /// The docker CLI on the SSH server, for the `docker system dial-stdio` fallback
    /// (default `docker`; e.g. `sudo -n docker` or `/usr/local/bin/docker`).
    #[arg(long, env = "BUNKER_REMOTE_DOCKER", value_name = "COMMAND")]
    pub remote_docker: Option<String>,
}

impl EngineArgs {
    /// The engine settings these flags and the global `--context` say.
    pub fn settings(&self, global: &GlobalArgs) -> EngineSettings {
        EngineSettings {
            host: self.host.clone(),
            context: global.context.clone(),
            remote_socket: self.remote_socket.clone(),
            accept_new_host_key: self.accept_new_host_key,
            remote_docker: self.remote_docker.clone(),
        }
    }
}

//! A local unix socket that forwards every connection to the engine.
//!
//! Tools that only speak to a Docker socket (the `docker` CLI, `docker-compose`) can then
//! reach a remote engine through bunker's own SSH session with
//! `DOCKER_HOST=unix://<socket>`, without the system `ssh` binary, its config quirks or
//! a second authentication.

use std::path::{Path, PathBuf};

use tokio::net::UnixListener;
use tokio::task::JoinHandle;

use super::transport::Dialer;

/// A running forward; dropping it stops accepting and removes the socket file.
/// Connections already forwarded finish on their own.
pub struct LocalSocketForward {
    path: PathBuf,
    accept_loop: JoinHandle<()>,
}

impl LocalSocketForward {
    /// Listens on `path` (which must not exist yet) and forwards through `dialer`.
    pub fn start(path: &Path, dialer: Dialer) -> anyhow::Result<Self> {
        if path.exists() {
            anyhow::bail!(
                "cannot listen on {}: the path already exists; remove it or choose another path",
                path.display()
            );
        }
        let listener = UnixListener::bind(path).map_err(|error| {
            anyhow::anyhow!(
                "cannot listen on the unix socket {}: {error}",
                path.display()
            )
        })?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            // The socket gives full control of the engine: only this user may use it.
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        }
        let accept_loop = tokio::spawn(accept_connections(listener, dialer));
        Ok(Self {
            path: path.to_owned(),
            accept_loop,
        })
    }

    /// The socket path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The value for `DOCKER_HOST`: `unix://<path>`.
    pub fn docker_host(&self) -> String {
        format!("unix://{}", self.path.display())
    }
}

impl Drop for LocalSocketForward {
    fn drop(&mut self) {
        self.accept_loop.abort();
        let _ = std::fs::remove_file(&self.path);
    }
}

async fn accept_connections(listener: UnixListener, dialer: Dialer) {
    loop {
        let mut local = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(error) => {
                tracing::warn!("engine forward: accept failed: {error}");
                continue;
            }
        };
        let dialer = dialer.clone();
        tokio::spawn(async move {
            let mut remote = match dialer.open().await {
                Ok(stream) => stream,
                Err(error) => {
                    tracing::warn!("engine forward: {error}");
                    return;
                }
            };
            if let Err(error) = tokio::io::copy_bidirectional(&mut local, &mut remote).await {
                tracing::debug!("engine forward: connection ended: {error}");
            }
        });
    }
}

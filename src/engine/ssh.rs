//! The SSH session to the engine's server, with the pure-Rust `russh`.
//!
//! One session per run carries every Docker API request (each HTTP connection is a
//! channel on it). Connecting resolves nothing itself: it takes an [`SshDestination`],
//! verifies the host key ([`super::host_key`]) and authenticates ([`super::ssh_auth`]).
//! The session then opens `direct-streamlocal` channels to the engine socket and
//! command channels (`docker system dial-stdio`), the latter bounded below sshd's
//! `MaxSessions`.

use std::sync::{Arc, Mutex};

use russh::client;
use russh::keys::Algorithm;

use super::host_key::{HostKeyChecker, HostKeyVerdict};
use super::known_hosts;
use super::ssh_auth::authenticate;
pub use super::ssh_destination::{IdentityFile, SshDestination, local_user_name};

/// Large windows keep multi-gigabyte image streams flowing over high-latency links.
const WINDOW_SIZE: u32 = 16 * 1024 * 1024;
/// sshd allows `MaxSessions` (default 10) session channels per connection; commands
/// (`docker system dial-stdio`) beyond this many wait for a free slot instead of failing.
/// `direct-streamlocal` channels are not sessions and are not limited.
const MAX_SESSION_CHANNELS: usize = 8;

/// An authenticated SSH session.
pub struct SshSession {
    handle: client::Handle<HostKeyChecker>,
    pub destination: Arc<SshDestination>,
    session_slots: Arc<tokio::sync::Semaphore>,
    /// The jump host's session, kept open while this one tunnels through it.
    _jump: Option<Arc<SshSession>>,
}

/// The byte stream an SSH session runs over: TCP, or a channel of a jump host.
trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Io for T {}

/// A command channel and the session slot it occupies (released when dropped).
pub type CommandChannel = (
    russh::Channel<client::Msg>,
    tokio::sync::OwnedSemaphorePermit,
);

/// The outcome of a command run on the server.
#[derive(Debug, Clone)]
pub struct CommandOutput {
    pub exit_status: Option<u32>,
    pub stdout: String,
    pub stderr: String,
}

impl SshSession {
    /// Connects, verifies the host key and authenticates.
    pub async fn connect(
        destination: SshDestination,
        accept_new_host_key: bool,
    ) -> anyhow::Result<Self> {
        let destination = Arc::new(destination);
        let config = Arc::new(client_config(&destination)?);
        let verdict = Arc::new(Mutex::new(None));
        let checker = HostKeyChecker {
            destination: destination.clone(),
            accept_new: accept_new_host_key || destination.accept_new_host_keys,
            verdict: verdict.clone(),
        };
        let (stream, jump) = match &destination.jump {
            None => (
                Box::new(tcp_connect(&destination).await?) as Box<dyn Io>,
                None,
            ),
            Some(jump) => {
                let jump =
                    Box::pin(SshSession::connect((**jump).clone(), accept_new_host_key)).await?;
                let channel = jump
                    .handle
                    .channel_open_direct_tcpip(
                        destination.host.clone(),
                        u32::from(destination.port),
                        "127.0.0.1",
                        0,
                    )
                    .await
                    .map_err(|error| {
                        anyhow::anyhow!(
                            "the jump host {} cannot connect to {}:{} (ProxyJump): {error}",
                            jump.destination.display(),
                            destination.host,
                            destination.port
                        )
                    })?;
                (
                    Box::new(channel.into_stream()) as Box<dyn Io>,
                    Some(Arc::new(jump)),
                )
            }
        };
        // ConnectTimeout also bounds the banner and key exchange, as in OpenSSH.
        let handshake = tokio::time::timeout(
            destination.connect_timeout,
            client::connect_stream(config, stream, checker),
        )
        .await
        .map_err(|_| {
            anyhow::anyhow!(
                "SSH handshake with {} got no answer within {} s. Is it an SSH server?",
                destination.display(),
                destination.connect_timeout.as_secs()
            )
        })?;
        let recorded = verdict.lock().ok().and_then(|slot| slot.clone());
        let mut handle = match (handshake, recorded) {
            (Ok(handle), Some(HostKeyVerdict::Learned(file))) => {
                eprintln!(
                    "recorded the SSH host key of {} in {}",
                    known_hosts::host_entry_name(&destination.host, destination.port),
                    destination.show_path(&file)
                );
                handle
            }
            (Ok(handle), _) => handle,
            (Err(_), Some(HostKeyVerdict::Refused(message))) => anyhow::bail!("{message}"),
            (
                Err(russh::Error::NoCommonAlgo {
                    kind: russh::AlgorithmKind::Key,
                    ours,
                    theirs,
                }),
                _,
            ) => anyhow::bail!(
                "SSH handshake with {} failed: no host key type in common with {}: bunker \
                 accepts {} and the server offers {}.{}",
                destination.display(),
                known_hosts::host_entry_name(&destination.host, destination.port),
                ours.join(","),
                theirs.join(","),
                destination
                    .host_key_algorithms
                    .as_ref()
                    .map(|value| format!(
                        " The accepted types come from `HostKeyAlgorithms {value}` in {}.",
                        destination.show_path(&destination.home.join(".ssh").join("config"))
                    ))
                    .unwrap_or_default()
            ),
            (Err(error), _) => anyhow::bail!(
                "SSH handshake with {} failed: {error}. Is an SSH server listening there?",
                destination.display()
            ),
        };
        authenticate(&mut handle, &destination).await?;
        Ok(Self {
            handle,
            destination,
            session_slots: Arc::new(tokio::sync::Semaphore::new(MAX_SESSION_CHANNELS)),
            _jump: jump,
        })
    }

    /// Opens a `direct-streamlocal` channel to a unix socket on the server.
    pub async fn open_socket_channel(
        &self,
        socket_path: &str,
    ) -> Result<russh::Channel<client::Msg>, russh::Error> {
        self.handle
            .channel_open_direct_streamlocal(socket_path)
            .await
    }

    /// Starts `command` on the server; the channel carries its stdin/stdout. Waits while
    /// all session slots are taken.
    pub async fn open_command_channel(
        &self,
        command: &str,
    ) -> Result<CommandChannel, russh::Error> {
        let slot = self
            .session_slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| russh::Error::Disconnect)?;
        let channel = self.handle.channel_open_session().await?;
        channel.exec(true, command).await?;
        Ok((channel, slot))
    }

    /// Runs `command` with empty stdin and collects its output and exit status.
    pub async fn run(&self, command: &str) -> Result<CommandOutput, russh::Error> {
        let (mut channel, _slot) = self.open_command_channel(command).await?;
        channel.eof().await?;
        let mut stdout = Vec::new();
        let mut stderr = Vec::new();
        let mut exit_status = None;
        while let Some(message) = channel.wait().await {
            match message {
                russh::ChannelMsg::Data { data } => stdout.extend_from_slice(&data),
                russh::ChannelMsg::ExtendedData { data, ext: 1 } => stderr.extend_from_slice(&data),
                russh::ChannelMsg::ExitStatus { exit_status: code } => exit_status = Some(code),
                _ => {}
            }
        }
        Ok(CommandOutput {
            exit_status,
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        })
    }

    /// True once the server has closed the connection.
    pub fn is_closed(&self) -> bool {
        self.handle.is_closed()
    }
}

fn client_config(destination: &SshDestination) -> anyhow::Result<client::Config> {
    let mut preferred = russh::Preferred::default();
    // aes256-gcm first: with AES-NI it outruns chacha20-poly1305 (see notes/crates.md §2.3).
    let mut ciphers = vec![russh::cipher::AES_256_GCM];
    ciphers.extend(
        preferred
            .cipher
            .iter()
            .copied()
            .filter(|name| *name != russh::cipher::AES_256_GCM),
    );
    preferred.cipher = ciphers.into();
    // SSH transport compression stays off: measured against the server compressing the
    // export (README, Benchmarks), it lost. BUNKER_SSH_ZLIB=1 turns it on to measure again.
    if std::env::var_os("BUNKER_SSH_ZLIB").is_some_and(|value| value == "1") {
        preferred.compression = vec![
            russh::compression::ZLIB_LEGACY,
            russh::compression::ZLIB,
            russh::compression::NONE,
        ]
        .into();
    }
    if let Some(value) = &destination.host_key_algorithms {
        preferred.key = allowed_host_key_algorithms(destination, value, &preferred.key)?.into();
    }
    // Prefer host-key types already recorded for this host, as OpenSSH does, so a
    // server with several keys is not refused for offering an unrecorded one.
    let recorded = known_hosts::recorded_algorithms(
        &destination.known_hosts_files,
        &destination.host,
        destination.port,
    );
    if !recorded.is_empty() {
        let mut keys: Vec<Algorithm> = Vec::new();
        for algorithm in &recorded {
            if let Algorithm::Rsa { .. } = algorithm {
                keys.extend(
                    preferred
                        .key
                        .iter()
                        .filter(|a| matches!(a, Algorithm::Rsa { .. }))
                        .cloned(),
                );
            } else if preferred.key.contains(algorithm) {
                keys.push(algorithm.clone());
            }
        }
        for algorithm in preferred.key.iter() {
            if !keys.contains(algorithm) {
                keys.push(algorithm.clone());
            }
        }
        preferred.key = keys.into();
    }
    Ok(client::Config {
        client_id: russh::SshId::Standard(
            format!("SSH-2.0-bunker_{}", env!("CARGO_PKG_VERSION")).into(),
        ),
        window_size: WINDOW_SIZE,
        maximum_packet_size: 65535,
        keepalive_interval: Some(destination.keepalive),
        keepalive_max: 3,
        nodelay: true,
        preferred,
        ..Default::default()
    })
}

/// The host-key algorithms bunker offers under `HostKeyAlgorithms value`, or an error
/// when the value leaves none bunker supports (certificate types are not supported).
fn allowed_host_key_algorithms(
    destination: &SshDestination,
    value: &str,
    supported: &[Algorithm],
) -> anyhow::Result<Vec<Algorithm>> {
    let names: Vec<String> = supported.iter().map(|a| a.to_string()).collect();
    let allowed = super::ssh_config::host_key_algorithms(value, &names);
    if allowed.is_empty() {
        anyhow::bail!(
            "`HostKeyAlgorithms {value}` in {} leaves no host key type bunker supports for {} \
             (bunker supports {}; host certificates are not supported). Name one of these.",
            destination.show_path(&destination.home.join(".ssh").join("config")),
            destination.display(),
            names.join(",")
        );
    }
    Ok(allowed
        .iter()
        .filter_map(|name| supported.iter().find(|a| &a.to_string() == name).cloned())
        .collect())
}

async fn tcp_connect(destination: &SshDestination) -> anyhow::Result<tokio::net::TcpStream> {
    let address = (destination.host.as_str(), destination.port);
    let stream = tokio::time::timeout(
        destination.connect_timeout,
        tokio::net::TcpStream::connect(address),
    )
    .await;
    let hint = format!(
        "Check the host and port (ssh://user@host:PORT, or HostName/Port in {}) and that sshd \
         runs there",
        destination.show_path(&destination.home.join(".ssh").join("config"))
    );
    match stream {
        Err(_) => anyhow::bail!(
            "cannot connect to {}:{}: no answer within {} s. {hint}",
            destination.host,
            destination.port,
            destination.connect_timeout.as_secs()
        ),
        Ok(Err(error)) => {
            let reason = match error.kind() {
                std::io::ErrorKind::ConnectionRefused => "connection refused".to_owned(),
                _ => error.to_string(),
            };
            anyhow::bail!(
                "cannot connect to {}:{}: {reason}. {hint}",
                destination.host,
                destination.port
            )
        }
        Ok(Ok(stream)) => {
            stream.set_nodelay(true).ok();
            Ok(stream)
        }
    }
}

//! The SSH session to the engine's server, with the pure-Rust `russh`.
//!
//! One session per run carries every Docker API request (each HTTP connection is a
//! channel on it). This module resolves the destination through `~/.ssh/config`,
//! checks the host key against known_hosts (refusing unknown keys unless
//! `--accept-new-host-key`, and changed keys always), and authenticates with the
//! configured identities, the default ones and ssh-agent, reporting every identity it
//! tried when none works. Key material is never printed or passed on a command line.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use russh::client::{self, AuthResult, Handle};
use russh::keys::{Algorithm, PrivateKeyWithHashAlg, PublicKey, PublicKeyOrCertificate};

use super::known_hosts::{self, HostKeyStatus, KnownHostsLine};
use super::ssh_config::{PathTokens, SshConfig, expand_path_tokens};
use super::target::SshAddress;

const DEFAULT_IDENTITIES: [&str; 3] = ["~/.ssh/id_ed25519", "~/.ssh/id_ecdsa", "~/.ssh/id_rsa"];
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_KEEPALIVE: Duration = Duration::from_secs(30);
/// Large windows keep multi-gigabyte image streams flowing over high-latency links.
const WINDOW_SIZE: u32 = 16 * 1024 * 1024;

/// Where and as whom to connect, after `~/.ssh/config`.
#[derive(Debug, Clone)]
pub struct SshDestination {
    /// The host as written in the target (`ssh://alias`).
    pub alias: String,
    /// The host actually connected to (`HostName`, else the alias).
    pub host: String,
    pub port: u16,
    pub user: String,
    /// Identity files to try, in order: configured ones, then the defaults.
    pub identity_files: Vec<IdentityFile>,
    pub identities_only: bool,
    /// `StrictHostKeyChecking accept-new` in ~/.ssh/config.
    pub accept_new_host_keys: bool,
    /// known_hosts files to check; the first is the one new keys are recorded in.
    pub known_hosts_files: Vec<PathBuf>,
    pub connect_timeout: Duration,
    pub keepalive: Duration,
    pub home: PathBuf,
}

/// One candidate private key file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityFile {
    pub path: PathBuf,
    /// Named in ~/.ssh/config (a missing file is then worth reporting).
    pub configured: bool,
}

impl SshDestination {
    /// Applies `~/.ssh/config` to an `ssh://` address. URL user and port beat the config,
    /// as on the ssh command line.
    pub fn resolve(address: &SshAddress, home: &Path) -> anyhow::Result<Self> {
        let config_file = home.join(".ssh").join("config");
        let config = SshConfig::load(&config_file, home)
            .map_err(|error| anyhow::anyhow!("cannot use the SSH client configuration: {error}"))?;
        let settings = config.settings_for(&address.host);
        if let Some((directive, origin)) = &settings.proxy {
            anyhow::bail!(
                "host `{}` is configured with `{directive}` ({origin}); bunker connects directly \
                 and does not support ProxyJump/ProxyCommand. Use an address reachable directly, \
                 or add a `Host` entry without a proxy for it",
                address.host
            );
        }
        let local_user = local_user_name();
        let host = settings
            .hostname
            .clone()
            .unwrap_or_else(|| address.host.clone());
        let user = address
            .user
            .clone()
            .or(settings.user.clone())
            .unwrap_or_else(|| local_user.clone());
        let port = address.port.or(settings.port).unwrap_or(22);
        let tokens = PathTokens {
            home,
            remote_host: &host,
            alias: &address.host,
            remote_user: &user,
            local_user: &local_user,
            port,
        };
        let mut identity_files: Vec<IdentityFile> = settings
            .identity_files
            .iter()
            .map(|value| IdentityFile {
                path: expand_path_tokens(value, &tokens),
                configured: true,
            })
            .collect();
        if !settings.identities_only || identity_files.is_empty() {
            for value in DEFAULT_IDENTITIES {
                let path = expand_path_tokens(value, &tokens);
                if !identity_files.iter().any(|known| known.path == path) {
                    identity_files.push(IdentityFile {
                        path,
                        configured: false,
                    });
                }
            }
        }
        let mut known_hosts_files: Vec<PathBuf> = if settings.user_known_hosts_files.is_empty() {
            vec![home.join(".ssh").join("known_hosts")]
        } else {
            settings
                .user_known_hosts_files
                .iter()
                .map(|value| expand_path_tokens(value, &tokens))
                .collect()
        };
        known_hosts_files.push(PathBuf::from("/etc/ssh/ssh_known_hosts"));
        Ok(Self {
            alias: address.host.clone(),
            host,
            port,
            user,
            identity_files,
            identities_only: settings.identities_only,
            accept_new_host_keys: settings.accept_new_host_keys,
            known_hosts_files,
            connect_timeout: settings
                .connect_timeout_seconds
                .map(Duration::from_secs)
                .unwrap_or(DEFAULT_CONNECT_TIMEOUT),
            keepalive: settings
                .server_alive_interval_seconds
                .filter(|seconds| *seconds > 0)
                .map(Duration::from_secs)
                .unwrap_or(DEFAULT_KEEPALIVE),
            home: home.to_owned(),
        })
    }

    /// `user@host:port`
    pub fn display(&self) -> String {
        if self.host.contains(':') {
            format!("{}@[{}]:{}", self.user, self.host, self.port)
        } else {
            format!("{}@{}:{}", self.user, self.host, self.port)
        }
    }

    /// A path shown with `~` for the home directory.
    pub fn show_path(&self, path: &Path) -> String {
        match path.strip_prefix(&self.home) {
            Ok(relative) => format!("~/{}", relative.display()),
            Err(_) => path.display().to_string(),
        }
    }
}

/// The local login name (`%u`, and the default remote user).
pub fn local_user_name() -> String {
    for variable in ["USER", "LOGNAME"] {
        if let Ok(name) = std::env::var(variable)
            && !name.is_empty()
        {
            return name;
        }
    }
    password_entry_name().unwrap_or_else(|| "root".to_owned())
}

fn password_entry_name() -> Option<String> {
    // SAFETY: getpwuid_r writes into the buffers we own; the returned pointer is only
    // read while `buffer` is alive.
    unsafe {
        let mut entry: libc::passwd = std::mem::zeroed();
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        let mut buffer = vec![0 as libc::c_char; 4096];
        let status = libc::getpwuid_r(
            libc::getuid(),
            &mut entry,
            buffer.as_mut_ptr(),
            buffer.len(),
            &mut result,
        );
        if status != 0 || result.is_null() || entry.pw_name.is_null() {
            return None;
        }
        std::ffi::CStr::from_ptr(entry.pw_name)
            .to_str()
            .ok()
            .map(str::to_owned)
    }
}

/// What the host-key check decided, kept for the error message after russh gives up.
#[derive(Debug, Clone)]
enum HostKeyVerdict {
    Trusted,
    Learned(PathBuf),
    Refused(String),
}

/// russh handler: verifies the server's host key.
struct HostKeyChecker {
    destination: Arc<SshDestination>,
    accept_new: bool,
    verdict: Arc<Mutex<Option<HostKeyVerdict>>>,
}

impl HostKeyChecker {
    fn decide(&self, key: &PublicKey) -> HostKeyVerdict {
        let destination = &self.destination;
        let name = known_hosts::host_entry_name(&destination.host, destination.port);
        let offered = format!("{} key {}", key.algorithm(), known_hosts::fingerprint(key));
        let user_file = &destination.known_hosts_files[0];
        match known_hosts::check(
            &destination.known_hosts_files,
            &destination.host,
            destination.port,
            key,
        ) {
            HostKeyStatus::Trusted(_) => HostKeyVerdict::Trusted,
            HostKeyStatus::Unknown { .. } if self.accept_new => {
                match known_hosts::learn(user_file, &destination.host, destination.port, key) {
                    Ok(()) => HostKeyVerdict::Learned(user_file.clone()),
                    Err(error) => HostKeyVerdict::Refused(format!(
                        "cannot record the SSH host key of {name} in {}: {error}",
                        user_file.display()
                    )),
                }
            }
            HostKeyStatus::Unknown { other_types } => {
                let others = if other_types.is_empty() {
                    String::new()
                } else {
                    format!(
                        " Keys of other types are recorded for it at {}; the server may have \
                         been reinstalled or offers a new key type.",
                        join_lines(&other_types)
                    )
                };
                let port_flag = if destination.port == 22 {
                    String::new()
                } else {
                    format!("-p {} ", destination.port)
                };
                HostKeyVerdict::Refused(format!(
                    "the SSH host key of {name} is not known: the server offered {offered}, and \
                     {} has no entry for {name}.{others}\nCompare the fingerprint with the one \
                     the server's administrator sees (`ssh-keygen -lf \
                     /etc/ssh/ssh_host_*_key.pub` on the server). If it matches, run again with \
                     --accept-new-host-key to record it, or add it yourself with \
                     `ssh-keyscan {port_flag}{} >> {}`.",
                    destination.show_path(user_file),
                    destination.host,
                    destination.show_path(user_file),
                ))
            }
            HostKeyStatus::Changed {
                recorded,
                recorded_fingerprint,
            } => HostKeyVerdict::Refused(format!(
                "REFUSED: the SSH host key of {name} has CHANGED: the server offered {offered}, \
                 but {} records {recorded_fingerprint}. Someone may be intercepting the \
                 connection (man-in-the-middle), or the server was reinstalled. bunker never \
                 accepts a changed key, not even with --accept-new-host-key. If the change is \
                 expected, remove the old entry with `ssh-keygen -R '{name}' -f {}` and connect \
                 again.",
                show_line(destination, &recorded),
                recorded.file.display(),
            )),
            HostKeyStatus::Revoked(line) => HostKeyVerdict::Refused(format!(
                "REFUSED: the SSH host key of {name} ({offered}) is marked @revoked at {}",
                show_line(destination, &line)
            )),
        }
    }
}

fn show_line(destination: &SshDestination, line: &KnownHostsLine) -> String {
    format!("{} line {}", destination.show_path(&line.file), line.line)
}

fn join_lines(lines: &[KnownHostsLine]) -> String {
    lines
        .iter()
        .map(|line| line.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

impl client::Handler for HostKeyChecker {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let verdict = self.decide(&key.public_key());
        let accepted = matches!(
            verdict,
            HostKeyVerdict::Trusted | HostKeyVerdict::Learned(_)
        );
        if let Ok(mut slot) = self.verdict.lock() {
            *slot = Some(verdict);
        }
        Ok(accepted)
    }
}

/// An authenticated SSH session.
pub struct SshSession {
    handle: Handle<HostKeyChecker>,
    pub destination: Arc<SshDestination>,
}

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
        let config = Arc::new(client_config(&destination));
        let verdict = Arc::new(Mutex::new(None));
        let checker = HostKeyChecker {
            destination: destination.clone(),
            accept_new: accept_new_host_key || destination.accept_new_host_keys,
            verdict: verdict.clone(),
        };
        let stream = tcp_connect(&destination).await?;
        let handshake = client::connect_stream(config, stream, checker).await;
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
            (Err(error), _) => anyhow::bail!(
                "SSH handshake with {} failed: {error}. Is an SSH server listening there?",
                destination.display()
            ),
        };
        authenticate(&mut handle, &destination).await?;
        Ok(Self {
            handle,
            destination,
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

    /// Starts `command` on the server; the channel carries its stdin/stdout.
    pub async fn open_command_channel(
        &self,
        command: &str,
    ) -> Result<russh::Channel<client::Msg>, russh::Error> {
        let channel = self.handle.channel_open_session().await?;
        channel.exec(true, command).await?;
        Ok(channel)
    }

    /// Runs `command` with empty stdin and collects its output and exit status.
    pub async fn run(&self, command: &str) -> Result<CommandOutput, russh::Error> {
        let mut channel = self.open_command_channel(command).await?;
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

fn client_config(destination: &SshDestination) -> client::Config {
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
    client::Config {
        window_size: WINDOW_SIZE,
        maximum_packet_size: 65535,
        keepalive_interval: Some(destination.keepalive),
        keepalive_max: 3,
        nodelay: true,
        preferred,
        ..Default::default()
    }
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

/// Tries configured identities, the default identities and ssh-agent, in that order.
async fn authenticate(
    handle: &mut Handle<HostKeyChecker>,
    destination: &SshDestination,
) -> anyhow::Result<()> {
    let user = destination.user.clone();
    let mut tried: Vec<String> = Vec::new();
    let mut offered: Vec<PublicKey> = Vec::new();
    let mut server_methods = None;
    for identity in &destination.identity_files {
        let shown = destination.show_path(&identity.path);
        if !identity.path.exists() {
            if identity.configured {
                tried.push(format!("{shown}: no such file (named by IdentityFile)"));
            }
            continue;
        }
        let key = match russh::keys::load_secret_key(&identity.path, None) {
            Ok(key) => key,
            Err(russh::keys::Error::KeyIsEncrypted) => {
                tried.push(format!(
                    "{shown}: passphrase-protected, skipped (load it into ssh-agent with `ssh-add {shown}`)"
                ));
                continue;
            }
            Err(error) => {
                tried.push(format!("{shown}: unreadable ({error})"));
                continue;
            }
        };
        let public = key.public_key().clone();
        if offered.iter().any(|k| k.key_data() == public.key_data()) {
            continue;
        }
        offered.push(public);
        let hash = rsa_hash(handle, &key.algorithm()).await;
        let algorithm = key.algorithm().to_string();
        let result = handle
            .authenticate_publickey(&user, PrivateKeyWithHashAlg::new(Arc::new(key), hash))
            .await;
        match result {
            Ok(AuthResult::Success) => return Ok(()),
            Ok(AuthResult::Failure {
                remaining_methods, ..
            }) => {
                tried.push(format!("{shown} ({algorithm}): rejected by the server"));
                server_methods = Some(remaining_methods);
            }
            Err(error) => {
                tried.push(format!("{shown} ({algorithm}): {error}"));
                break;
            }
        }
    }
    if destination.identities_only {
        tried.push("ssh-agent: not used (IdentitiesOnly yes)".into());
    } else if !handle.is_closed() {
        match try_agent(handle, &user, &offered, &mut tried).await {
            AgentOutcome::Success => return Ok(()),
            AgentOutcome::Failed(methods) => server_methods = methods.or(server_methods),
        }
    }
    let methods = match server_methods {
        Some(methods) => {
            let names: Vec<String> = methods
                .iter()
                .map(|method| <&str>::from(method).to_owned())
                .collect();
            format!(" The server accepts: {}.", names.join(", "))
        }
        None => String::new(),
    };
    let tried = if tried.is_empty() {
        format!(
            "  (no identity found: none of {} exists, and no ssh-agent key)",
            DEFAULT_IDENTITIES.join(", ")
        )
    } else {
        tried
            .iter()
            .map(|line| format!("  {line}"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    anyhow::bail!(
        "SSH authentication as `{}` on {}:{} failed.{methods} Identities tried:\n{tried}\n\
         Add the public key of one of them to ~{}/.ssh/authorized_keys on the server, name \
         the right key with IdentityFile in {}, or load it into ssh-agent.",
        destination.user,
        destination.host,
        destination.port,
        destination.user,
        destination.show_path(&destination.home.join(".ssh").join("config")),
    )
}

async fn rsa_hash(
    handle: &Handle<HostKeyChecker>,
    algorithm: &Algorithm,
) -> Option<russh::keys::HashAlg> {
    if !matches!(algorithm, Algorithm::Rsa { .. }) {
        return None;
    }
    handle
        .best_supported_rsa_hash()
        .await
        .ok()
        .flatten()
        .flatten()
}

enum AgentOutcome {
    Success,
    Failed(Option<russh::MethodSet>),
}

async fn try_agent(
    handle: &mut Handle<HostKeyChecker>,
    user: &str,
    already_offered: &[PublicKey],
    tried: &mut Vec<String>,
) -> AgentOutcome {
    let Some(socket) = std::env::var_os("SSH_AUTH_SOCK").filter(|s| !s.is_empty()) else {
        tried.push("ssh-agent: not running (SSH_AUTH_SOCK is not set)".into());
        return AgentOutcome::Failed(None);
    };
    let mut agent = match russh::keys::agent::client::AgentClient::connect_uds(&socket).await {
        Ok(agent) => agent,
        Err(error) => {
            tried.push(format!(
                "ssh-agent: cannot connect to {} ({error})",
                Path::new(&socket).display()
            ));
            return AgentOutcome::Failed(None);
        }
    };
    let identities = match agent.request_identities().await {
        Ok(identities) => identities,
        Err(error) => {
            tried.push(format!("ssh-agent: cannot list keys ({error})"));
            return AgentOutcome::Failed(None);
        }
    };
    let mut methods = None;
    let mut any = false;
    for identity in identities {
        let russh::keys::agent::AgentIdentity::PublicKey { key, comment } = identity else {
            continue;
        };
        if already_offered
            .iter()
            .any(|k| k.key_data() == key.key_data())
        {
            continue;
        }
        any = true;
        let label = format!(
            "ssh-agent key {} ({}{})",
            known_hosts::fingerprint(&key),
            key.algorithm(),
            if comment.is_empty() {
                String::new()
            } else {
                format!(", {comment}")
            }
        );
        let hash = rsa_hash(handle, &key.algorithm()).await;
        match handle
            .authenticate_publickey_with(user, key, hash, &mut agent)
            .await
        {
            Ok(AuthResult::Success) => return AgentOutcome::Success,
            Ok(AuthResult::Failure {
                remaining_methods, ..
            }) => {
                tried.push(format!("{label}: rejected by the server"));
                methods = Some(remaining_methods);
            }
            Err(error) => {
                tried.push(format!("{label}: {error}"));
                if handle.is_closed() {
                    break;
                }
            }
        }
    }
    if !any {
        tried.push("ssh-agent: holds no further keys".into());
    }
    AgentOutcome::Failed(methods)
}

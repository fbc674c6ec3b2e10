//! Where and as whom bunker connects over SSH: an `ssh://` address with
//! `~/.ssh/config` applied (`HostName`, `User`, `Port`, `IdentityFile`, ...), the list of
//! identities to try and the known_hosts files to check, so that `ssh://myserver` means
//! what `ssh myserver` means.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::ssh_config::{PathTokens, ProxyKind, SshConfig, expand_path_tokens};
use super::target::{SshAddress, parse_ssh};

pub(super) const DEFAULT_IDENTITIES: [&str; 3] =
    ["~/.ssh/id_ed25519", "~/.ssh/id_ecdsa", "~/.ssh/id_rsa"];
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_KEEPALIVE: Duration = Duration::from_secs(30);
/// More jump hosts than this is almost surely a loop such as `Host *` + `ProxyJump`.
const MAX_JUMP_DEPTH: usize = 8;

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
    /// `HashKnownHosts yes` in ~/.ssh/config: learned host names are written hashed.
    pub hash_known_hosts: bool,
    /// `HostKeyAlgorithms` in ~/.ssh/config, as written: restricts the host keys accepted.
    pub host_key_algorithms: Option<String>,
    /// known_hosts files to check; the first is the one new keys are recorded in.
    pub known_hosts_files: Vec<PathBuf>,
    pub connect_timeout: Duration,
    pub keepalive: Duration,
    pub home: PathBuf,
    /// The jump host this one is reached through (`ProxyJump`), itself resolved.
    pub jump: Option<Box<SshDestination>>,
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
        Self::resolve_in(&config, address, home, 0)
    }

    fn resolve_in(
        config: &SshConfig,
        address: &SshAddress,
        home: &Path,
        depth: usize,
    ) -> anyhow::Result<Self> {
        let settings = config.settings_for(&address.host);
        let mut jump = None;
        if let Some(proxy) = &settings.proxy {
            if proxy.kind == ProxyKind::Command {
                anyhow::bail!(
                    "host `{}` is configured with `ProxyCommand {}` ({}); bunker does not run \
                     proxy commands. Use ProxyJump, or an address reachable directly",
                    address.host,
                    proxy.value,
                    proxy.origin
                );
            }
            if depth >= MAX_JUMP_DEPTH {
                anyhow::bail!(
                    "more than {MAX_JUMP_DEPTH} ProxyJump hops to reach `{}` (last from {}): is \
                     there a loop, such as `Host *` with ProxyJump? Exclude the jump host \
                     (`Host * !bastion`)",
                    address.host,
                    proxy.origin
                );
            }
            // `ProxyJump a,b`: reach a (with its own configuration), then b through a.
            for hop in proxy.value.split(',').map(str::trim) {
                let hop_address =
                    parse_ssh(hop.strip_prefix("ssh://").unwrap_or(hop)).map_err(|problem| {
                        anyhow::anyhow!(
                            "`ProxyJump {}` ({}): the hop `{hop}` {problem}",
                            proxy.value,
                            proxy.origin
                        )
                    })?;
                let mut hop_destination = Self::resolve_in(config, &hop_address, home, depth + 1)?;
                if let Some(previous) = jump.take() {
                    hop_destination.jump = Some(previous);
                }
                jump = Some(Box::new(hop_destination));
            }
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
            hash_known_hosts: settings.hash_known_hosts,
            host_key_algorithms: settings.host_key_algorithms.clone(),
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
            jump,
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

    /// `user@host:port`, followed by ` via first-hop → second-hop` when jump hosts are used.
    pub fn route(&self) -> String {
        let mut hops = Vec::new();
        let mut hop = self.jump.as_deref();
        while let Some(jump) = hop {
            hops.push(jump.display());
            hop = jump.jump.as_deref();
        }
        if hops.is_empty() {
            return self.display();
        }
        hops.reverse();
        format!("{} via {}", self.display(), hops.join(" → "))
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

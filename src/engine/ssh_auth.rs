//! SSH user authentication: the configured identity files, then the default ones, then
//! ssh-agent. When nothing works the error lists every identity tried and why it failed
//! (never any key material), and the server's accepted methods.

use std::path::Path;
use std::sync::Arc;

use russh::client::{AuthResult, Handle};
use russh::keys::{Algorithm, PrivateKeyWithHashAlg, PublicKey};

use super::host_key::HostKeyChecker;
use super::known_hosts;
use super::ssh_destination::{DEFAULT_IDENTITIES, SshDestination};

/// Tries configured identities, the default identities and ssh-agent, in that order.
pub(super) async fn authenticate(
    handle: &mut Handle<HostKeyChecker>,
    destination: &SshDestination,
) -> anyhow::Result<()> {
    let user = destination.user.clone();
    let mut tried: Vec<String> = Vec::new();
    let mut offered: Vec<PublicKey> = Vec::new();
    // Public halves of identity files that could not be used directly (passphrase):
    // ssh-agent may hold them, and with IdentitiesOnly only these agent keys are used.
    let mut locked: Vec<PublicKey> = Vec::new();
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
                locked.extend(public_half(&identity.path));
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
    if destination.identities_only && locked.is_empty() {
        tried.push("ssh-agent: not used (IdentitiesOnly yes)".into());
    } else if !handle.is_closed() {
        let only = destination.identities_only.then_some(locked.as_slice());
        match try_agent(handle, &user, &offered, only, &mut tried).await {
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

/// The public key of a private key file without decrypting it: OpenSSH-format keys
/// carry it in clear; otherwise `<file>.pub`.
fn public_half(path: &Path) -> Option<PublicKey> {
    let text = std::fs::read_to_string(path).ok()?;
    if let Ok(key) = russh::keys::PrivateKey::from_openssh(text.as_bytes()) {
        return Some(key.public_key().clone());
    }
    let mut public = path.as_os_str().to_owned();
    public.push(".pub");
    russh::keys::load_public_key(Path::new(&public)).ok()
}

/// Offers the agent's keys not offered yet; with `only`, just those keys.
async fn try_agent(
    handle: &mut Handle<HostKeyChecker>,
    user: &str,
    already_offered: &[PublicKey],
    only: Option<&[PublicKey]>,
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
        let same = |k: &PublicKey| k.key_data() == key.key_data();
        if already_offered.iter().any(same) || only.is_some_and(|only| !only.iter().any(same)) {
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
        tried.push(match only {
            Some(_) => "ssh-agent: holds none of the IdentityFile keys (IdentitiesOnly yes)".into(),
            None => "ssh-agent: holds no further keys".into(),
        });
    }
    AgentOutcome::Failed(methods)
}

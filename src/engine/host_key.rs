//! The russh handler that decides whether to trust the server's host key, and the
//! messages that explain a refusal (fingerprint, known_hosts file and line, next step).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use russh::client;
use russh::keys::{PublicKey, PublicKeyOrCertificate};

use super::known_hosts::{self, HostKeyStatus, KnownHostsLine};
use super::ssh_destination::SshDestination;

/// What the host-key check decided, kept for the error message after russh gives up.
#[derive(Debug, Clone)]
pub(super) enum HostKeyVerdict {
    Trusted,
    Learned(PathBuf),
    Refused(String),
}

/// russh handler: verifies the server's host key.
pub(super) struct HostKeyChecker {
    pub(super) destination: Arc<SshDestination>,
    pub(super) accept_new: bool,
    pub(super) verdict: Arc<Mutex<Option<HostKeyVerdict>>>,
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
            HostKeyStatus::Unknown if self.accept_new => {
                let form = if destination.hash_known_hosts {
                    known_hosts::NameForm::Hashed
                } else {
                    known_hosts::NameForm::Plain
                };
                match known_hosts::learn(user_file, &destination.host, destination.port, key, form)
                {
                    Ok(()) => HostKeyVerdict::Learned(user_file.clone()),
                    Err(error) => HostKeyVerdict::Refused(format!(
                        "cannot record the SSH host key of {name} in {}: {error}",
                        user_file.display()
                    )),
                }
            }
            HostKeyStatus::Unknown => {
                let port_flag = if destination.port == 22 {
                    String::new()
                } else {
                    format!("-p {} ", destination.port)
                };
                HostKeyVerdict::Refused(format!(
                    "the SSH host key of {name} is not known: the server offered {offered}, and \
                     {} has no entry for {name}.\nCompare the fingerprint with the one \
                     the server's administrator sees (`ssh-keygen -lf \
                     /etc/ssh/ssh_host_*_key.pub` on the server). If it matches, run again with \
                     --accept-new-host-key to record it, or add it yourself with \
                     `ssh-keyscan {port_flag}{} >> {}`.",
                    destination.show_path(user_file),
                    destination.host,
                    destination.show_path(user_file),
                ))
            }
            HostKeyStatus::Changed { recorded } => {
                HostKeyVerdict::Refused(changed_message(destination, &name, &offered, &recorded))
            }
            HostKeyStatus::CertAuthorityOnly(line) => HostKeyVerdict::Refused(format!(
                "REFUSED: the SSH host {name} is known only through a @cert-authority line \
                 ({}), and bunker does not verify host certificates. The server offered \
                 {offered}. Record the host's own key: compare it with `ssh-keygen -lf \
                 /etc/ssh/ssh_host_*_key.pub` on the server, then run again with \
                 --accept-new-host-key or add it with `ssh-keyscan` to {}.",
                show_line(destination, &line),
                destination.show_path(user_file),
            )),
            HostKeyStatus::Revoked(line) => HostKeyVerdict::Refused(format!(
                "REFUSED: the SSH host key of {name} ({offered}) is marked @revoked at {}",
                show_line(destination, &line)
            )),
        }
    }
}

/// A known host offered a key not recorded for it (of the same type or another one).
fn changed_message(
    destination: &SshDestination,
    name: &str,
    offered: &str,
    recorded: &[known_hosts::RecordedKey],
) -> String {
    let records = recorded
        .iter()
        .map(|key| {
            format!(
                "{} records {} ({})",
                show_line(destination, &key.line),
                key.fingerprint,
                key.algorithm
            )
        })
        .collect::<Vec<_>>()
        .join("; ");
    let mut files: Vec<&std::path::Path> = Vec::new();
    for key in recorded {
        if !files.contains(&key.line.file.as_path()) {
            files.push(&key.line.file);
        }
    }
    let removals = files
        .iter()
        .map(|file| format!("`ssh-keygen -R '{name}' -f {}`", file.display()))
        .collect::<Vec<_>>()
        .join(" and ");
    format!(
        "REFUSED: the SSH host key of {name} has CHANGED: the server offered {offered}, but \
         {records}. Someone may be intercepting the connection (man-in-the-middle), or the \
         server was reinstalled. bunker never accepts a key that is not recorded for a known \
         host, whatever its type, not even with --accept-new-host-key or \
         StrictHostKeyChecking accept-new/no. If the change is expected, remove the old \
         entry with {removals} and connect again."
    )
}

fn show_line(destination: &SshDestination, line: &KnownHostsLine) -> String {
    format!("{} line {}", destination.show_path(&line.file), line.line)
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

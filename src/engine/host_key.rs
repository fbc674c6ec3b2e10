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
            HostKeyStatus::Unknown { .. } if self.accept_new => {
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

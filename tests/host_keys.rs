//! Host-key trust through the binary against real sshds: the sandbox's sshd (ed25519
//! host key) and a second sshd started here on loopback that presents only an ECDSA or
//! only an RSA key. A host known_hosts records with any key is refused when it presents
//! a key not recorded for it, whatever the flags, and known_hosts is never extended.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use bunker::engine::known_hosts;
use common::second_sshd::{SecondSshd, SshdOptions};
use common::{Output, Sandbox, TestHome, sandbox};

fn fingerprint_of(public_key: &Path) -> String {
    let text = common::read_text(public_key);
    let key = russh::keys::PublicKey::from_openssh(text.trim()).expect("host key parses");
    known_hosts::fingerprint(&key)
}

/// `ssh-ed25519 AAAA…` of the sandbox sshd's host key.
fn sandbox_key(sandbox: &Sandbox) -> String {
    let line = sandbox.known_hosts_line();
    let fields: Vec<&str> = line.split_whitespace().collect();
    format!("{} {}", fields[1], fields[2])
}

fn sandbox_name(sandbox: &Sandbox) -> String {
    format!("[{}]:{}", sandbox.ssh_host, sandbox.ssh_port)
}

struct Home {
    home: TestHome,
}

impl Home {
    fn new(sandbox: &Sandbox, known_hosts: &str) -> Home {
        let home = Home {
            home: TestHome::new(sandbox),
        };
        std::fs::write(home.known_hosts_path(), known_hosts).unwrap();
        home
    }

    fn known_hosts_path(&self) -> PathBuf {
        self.home.ssh_dir().join("known_hosts")
    }

    fn known_hosts(&self) -> Vec<u8> {
        std::fs::read(self.known_hosts_path()).unwrap()
    }

    fn write_ssh_config(&self, text: &str) {
        std::fs::write(self.home.ssh_dir().join("config"), text).unwrap();
    }

    fn info(&self, host: &str, extra: &[&str]) -> Output {
        self.home
            .bunker()
            .args(["engine", "info", "--host", host])
            .args(extra)
            .run()
    }
}

/// A known host presenting a key of another type than the one recorded for it.
struct ChangedKey {
    /// `[127.0.0.1]:port`.
    name: String,
    /// What the refusal says of the presented key (`<algorithm> key <fingerprint>`).
    offered: String,
    /// The fingerprint of the recorded key.
    recorded: String,
}

impl ChangedKey {
    /// `server` presenting its own key to a known_hosts that records the sandbox's for
    /// it; `algorithm`, when given, is checked in the refusal next to the fingerprint.
    fn presented_by(server: &SecondSshd, sandbox: &Sandbox, algorithm: Option<&str>) -> Self {
        let fingerprint = fingerprint_of(&server.host_key_pub);
        ChangedKey {
            name: server.name(),
            offered: match algorithm {
                Some(algorithm) => format!("{algorithm} key {fingerprint}"),
                None => fingerprint,
            },
            recorded: fingerprint_of(&sandbox.ssh_host_key_pub),
        }
    }

    /// `output` is the refusal of the changed key, and known_hosts still holds exactly
    /// `known_hosts`.
    #[track_caller]
    fn assert_refused(&self, output: &Output, home: &Home, known_hosts: &[u8]) {
        let name = &self.name;
        output
            .assert_code(1)
            .assert_stderr_contains(&format!("REFUSED: the SSH host key of {name} has CHANGED"))
            .assert_stderr_contains(&self.offered)
            .assert_stderr_contains(&self.recorded)
            .assert_stderr_contains("man-in-the-middle")
            .assert_stderr_contains(&format!(
                "ssh-keygen -R '{name}' -f {}",
                home.known_hosts_path().display()
            ));
        assert_eq!(home.known_hosts(), known_hosts, "{output}");
    }
}

fn known_by_sandbox_key_refuses_other_type(key_type: &str, algorithm: &str) {
    let sandbox = sandbox();
    let server = SecondSshd::start(SshdOptions::host_key(key_type));
    let recorded = format!("{} {}\n", server.name(), sandbox_key(&sandbox));
    let home = Home::new(&sandbox, &recorded);
    let changed = ChangedKey::presented_by(&server, &sandbox, Some(algorithm));
    for extra in [&[][..], &["--accept-new-host-key"][..]] {
        changed.assert_refused(&home.info(&server.url(), extra), &home, recorded.as_bytes());
    }
    // The same through ~/.ssh/config with StrictHostKeyChecking accept-new and no.
    for strict in ["accept-new", "no"] {
        home.write_ssh_config(&format!(
            "Host second\n  HostName 127.0.0.1\n  Port {}\n  User root\n  \
             StrictHostKeyChecking {strict}\n",
            server.port
        ));
        changed.assert_refused(&home.info("ssh://second", &[]), &home, recorded.as_bytes());
    }
}

#[test]
fn ecdsa_key_for_a_host_known_by_ed25519_is_refused_whatever_the_flags() {
    known_by_sandbox_key_refuses_other_type("ecdsa", "ecdsa-sha2-nistp256");
}

#[test]
fn rsa_key_for_a_host_known_by_ed25519_is_refused_whatever_the_flags() {
    known_by_sandbox_key_refuses_other_type("rsa", "ssh-rsa");
}

#[test]
fn hashed_entry_still_refuses_an_other_type_and_still_trusts_its_key() {
    let sandbox = sandbox();
    let server = SecondSshd::start(SshdOptions::host_key("ecdsa"));
    let home = Home::new(
        &sandbox,
        &format!(
            "{} {}\n{} {}\n",
            server.name(),
            sandbox_key(&sandbox),
            sandbox_name(&sandbox),
            sandbox_key(&sandbox)
        ),
    );
    common::run(
        Command::new("ssh-keygen")
            .args(["-q", "-H", "-f"])
            .arg(home.known_hosts_path()),
    )
    .assert_success();
    let hashed = home.known_hosts();
    assert!(hashed.starts_with(b"|1|"));
    ChangedKey::presented_by(&server, &sandbox, None).assert_refused(
        &home.info(&server.url(), &["--accept-new-host-key"]),
        &home,
        &hashed,
    );
    home.home
        .bunker()
        .args(["engine", "info", "--host", &sandbox.ssh_url()])
        .env("BUNKER_REMOTE_SOCKET", &sandbox.remote_socket)
        .run()
        .assert_success();
    assert_eq!(home.known_hosts(), hashed);
}

#[test]
fn revoked_key_is_refused_even_when_also_recorded() {
    let sandbox = sandbox();
    let text = format!(
        "@revoked * {key}\n{name} {key}\n",
        key = sandbox_key(&sandbox),
        name = sandbox_name(&sandbox)
    );
    let home = Home::new(&sandbox, &text);
    let output = home.info(&sandbox.ssh_url(), &["--accept-new-host-key"]);
    output
        .assert_code(1)
        .assert_stderr_contains(&format!(
            "REFUSED: the SSH host key of {} (ssh-ed25519 key {}) is marked @revoked at ~/.ssh/known_hosts line 1",
            sandbox_name(&sandbox),
            fingerprint_of(&sandbox.ssh_host_key_pub)
        ));
    assert_eq!(home.known_hosts(), text.as_bytes());
}

#[test]
fn host_known_only_through_a_cert_authority_is_refused() {
    let sandbox = sandbox();
    let text = format!(
        "@cert-authority {} {}\n",
        sandbox_name(&sandbox),
        sandbox_key(&sandbox)
    );
    let home = Home::new(&sandbox, &text);
    let output = home.info(&sandbox.ssh_url(), &["--accept-new-host-key"]);
    output
        .assert_code(1)
        .assert_stderr_contains(&format!(
            "the SSH host {} is known only through a @cert-authority line (~/.ssh/known_hosts line 1)",
            sandbox_name(&sandbox)
        ))
        .assert_stderr_contains("bunker does not verify host certificates");
    assert_eq!(home.known_hosts(), text.as_bytes());
}

#[test]
fn host_key_algorithms_restrict_what_bunker_accepts() {
    let sandbox = sandbox();
    let home = Home::new(
        &sandbox,
        &format!("{} {}\n", sandbox_name(&sandbox), sandbox_key(&sandbox)),
    );
    let block = |algorithms: &str| {
        format!(
            "Host sbx\n  HostName {}\n  Port {}\n  User {}\n  IdentityFile ~/.ssh/id_ed25519\n  \
             HostKeyAlgorithms {algorithms}\n",
            sandbox.ssh_host, sandbox.ssh_port, sandbox.ssh_user
        )
    };
    home.write_ssh_config(&block("ecdsa-sha2-nistp256,rsa-sha2-512"));
    let output = home.info("ssh://sbx", &["--accept-new-host-key"]);
    output
        .assert_code(1)
        .assert_stderr_contains(&format!(
            "no host key type in common with {}",
            sandbox_name(&sandbox)
        ))
        .assert_stderr_contains("HostKeyAlgorithms ecdsa-sha2-nistp256,rsa-sha2-512");
    home.write_ssh_config(&block("ssh-ed25519"));
    home.home
        .bunker()
        .args(["engine", "info", "--host", "ssh://sbx"])
        .env("BUNKER_REMOTE_SOCKET", &sandbox.remote_socket)
        .run()
        .assert_success();
}

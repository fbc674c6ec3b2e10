//! Host-key trust through the binary against real sshds: the sandbox's sshd (ed25519
//! host key) and a second sshd started here on loopback that presents only an ECDSA or
//! only an RSA key. A host known_hosts records with any key is refused when it presents
//! a key not recorded for it, whatever the flags, and known_hosts is never extended.

mod common;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use bunker::engine::known_hosts;
use common::{Output, Sandbox, TestHome, sandbox};

/// A private sshd on 127.0.0.1 presenting one host key of `key_type`; killed (by its pid)
/// when dropped, also when the test panics.
struct SecondSshd {
    child: Child,
    port: u16,
    host_key_pub: PathBuf,
    _dir: tempfile::TempDir,
}

impl SecondSshd {
    fn start(key_type: &str) -> SecondSshd {
        let dir = tempfile::Builder::new()
            .prefix("bunker-sshd-")
            .tempdir()
            .unwrap();
        let host_key = dir.path().join(format!("ssh_host_{key_type}_key"));
        common::run(
            Command::new("ssh-keygen")
                .args(["-q", "-t", key_type, "-N", "", "-C", "second-sshd", "-f"])
                .arg(&host_key),
        )
        .assert_success();
        // Another process may take the free port between our probe and sshd's bind:
        // then sshd exits and we try another port (bounded).
        let mut failures = Vec::new();
        for _ in 0..20 {
            let port = free_port();
            let config = dir.path().join("sshd_config");
            std::fs::write(
                &config,
                format!(
                    "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nPidFile none\n\
                     UsePAM no\nStrictModes no\nPasswordAuthentication no\n\
                     KbdInteractiveAuthentication no\nAuthorizedKeysFile none\n\
                     LogLevel VERBOSE\n",
                    host_key.display()
                ),
            )
            .unwrap();
            let log = dir.path().join(format!("sshd-{port}.log"));
            let mut child = Command::new("/usr/sbin/sshd")
                .args(["-D", "-e", "-f"])
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).unwrap())
                .spawn()
                .expect("start /usr/sbin/sshd (openssh-server must be installed)");
            if wait_for_banner(&mut child, port) {
                return SecondSshd {
                    child,
                    port,
                    host_key_pub: host_key.with_extension("pub"),
                    _dir: dir,
                };
            }
            let _ = child.kill();
            let _ = child.wait();
            failures.push(format!(
                "port {port}: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            ));
        }
        panic!("the second sshd never answered:\n{}", failures.join("\n"));
    }

    fn fingerprint(&self) -> String {
        fingerprint_of(&self.host_key_pub)
    }

    fn name(&self) -> String {
        format!("[127.0.0.1]:{}", self.port)
    }

    fn url(&self) -> String {
        format!("ssh://root@127.0.0.1:{}", self.port)
    }
}

impl Drop for SecondSshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// True once sshd on `port` sends its `SSH-2.0` banner; false if it exited first or never
/// answered within generous bounded retries.
fn wait_for_banner(child: &mut Child, port: u16) -> bool {
    use std::io::Read;
    for _ in 0..600 {
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        if let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            stream
                .set_read_timeout(Some(std::time::Duration::from_secs(30)))
                .ok();
            let mut banner = [0u8; 7];
            if stream.read_exact(&mut banner).is_ok() && &banner == b"SSH-2.0" {
                return true;
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    false
}

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

/// The refusal of a known host presenting an unrecorded key of another type.
#[track_caller]
fn assert_refused_as_changed(
    output: &Output,
    home: &Home,
    name: &str,
    offered: &str,
    recorded: &str,
) {
    output
        .assert_code(1)
        .assert_stderr_contains(&format!("REFUSED: the SSH host key of {name} has CHANGED"))
        .assert_stderr_contains(offered)
        .assert_stderr_contains(recorded)
        .assert_stderr_contains("man-in-the-middle")
        .assert_stderr_contains(&format!(
            "ssh-keygen -R '{name}' -f {}",
            home.known_hosts_path().display()
        ));
}

fn known_by_sandbox_key_refuses_other_type(key_type: &str, algorithm: &str) {
    let sandbox = sandbox();
    let server = SecondSshd::start(key_type);
    let recorded = format!("{} {}\n", server.name(), sandbox_key(&sandbox));
    let home = Home::new(&sandbox, &recorded);
    let sandbox_fingerprint = fingerprint_of(&sandbox.ssh_host_key_pub);
    let offered = format!("{algorithm} key {}", server.fingerprint());
    for extra in [&[][..], &["--accept-new-host-key"][..]] {
        let output = home.info(&server.url(), extra);
        assert_refused_as_changed(
            &output,
            &home,
            &server.name(),
            &offered,
            &sandbox_fingerprint,
        );
        assert_eq!(home.known_hosts(), recorded.as_bytes(), "{output}");
    }
    // The same through ~/.ssh/config with StrictHostKeyChecking accept-new and no.
    for strict in ["accept-new", "no"] {
        home.write_ssh_config(&format!(
            "Host second\n  HostName 127.0.0.1\n  Port {}\n  User root\n  \
             StrictHostKeyChecking {strict}\n",
            server.port
        ));
        let output = home.info("ssh://second", &[]);
        assert_refused_as_changed(
            &output,
            &home,
            &server.name(),
            &offered,
            &sandbox_fingerprint,
        );
        assert_eq!(home.known_hosts(), recorded.as_bytes(), "{output}");
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
    let server = SecondSshd::start("ecdsa");
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
    let output = home.info(&server.url(), &["--accept-new-host-key"]);
    assert_refused_as_changed(
        &output,
        &home,
        &server.name(),
        &server.fingerprint(),
        &fingerprint_of(&sandbox.ssh_host_key_pub),
    );
    assert_eq!(home.known_hosts(), hashed);
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

//! A second sshd, started by a test on 127.0.0.1 next to the sandbox's: for the servers
//! the sandbox cannot play (one presenting only an ECDSA or RSA host key, one whose
//! sessions lack compressors, one whose key runs a forced command). Each test says what
//! differs with `SshdOptions`; the start, the port retry and the cleanup are here once.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use super::{free_port, run};

/// What the second sshd presents and whom it lets in.
pub struct SshdOptions {
    host_key_type: String,
    authorized_key: Option<String>,
    session_tools: Option<Vec<String>>,
}

impl SshdOptions {
    /// An sshd with one host key of `key_type` (`ssh-keygen -t`: ed25519, ecdsa, rsa)
    /// that lets nobody in.
    pub fn host_key(key_type: &str) -> SshdOptions {
        SshdOptions {
            host_key_type: key_type.to_string(),
            authorized_key: None,
            session_tools: None,
        }
    }

    /// Lets in the key of this `authorized_keys` line (options such as `command="…"`
    /// included), as root, with stream-local forwarding (the engine socket).
    pub fn authorize(mut self, key_line: &str) -> SshdOptions {
        self.authorized_key = Some(key_line.trim().to_string());
        self
    }

    /// Sessions get a PATH holding only these tools (`SetEnv PATH=` a private directory
    /// of symlinks to them); each must be on this process's PATH.
    pub fn session_path(mut self, tools: &[&str]) -> SshdOptions {
        self.session_tools = Some(tools.iter().map(|tool| tool.to_string()).collect());
        self
    }
}

/// The running second sshd; killed (by its pid) when dropped, also when the test panics.
pub struct SecondSshd {
    child: Child,
    pub port: u16,
    /// Its host key's public key file.
    pub host_key_pub: PathBuf,
    _dir: tempfile::TempDir,
}

impl SecondSshd {
    pub fn start(options: SshdOptions) -> SecondSshd {
        let dir = tempfile::Builder::new()
            .prefix("bunker-sshd-")
            .tempdir()
            .expect("create the second sshd's directory");
        let host_key = dir
            .path()
            .join(format!("ssh_host_{}_key", options.host_key_type));
        run(Command::new("ssh-keygen")
            .args(["-q", "-t", &options.host_key_type])
            .args(["-N", "", "-C", "second-sshd", "-f"])
            .arg(&host_key))
        .assert_success();
        let settings = session_settings(dir.path(), &options);
        // Another process may take the free port between our probe and sshd's bind:
        // then sshd exits and we try another port (bounded).
        let mut failures = Vec::new();
        for _ in 0..20 {
            let port = free_port();
            let config = dir.path().join("sshd_config");
            fs::write(
                &config,
                format!(
                    "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nPidFile none\n\
                     UsePAM no\nStrictModes no\nPasswordAuthentication no\n\
                     KbdInteractiveAuthentication no\nLogLevel VERBOSE\n{settings}",
                    host_key.display()
                ),
            )
            .expect("write sshd_config");
            let log = dir.path().join(format!("sshd-{port}.log"));
            let mut child = Command::new("/usr/sbin/sshd")
                .args(["-D", "-e", "-f"])
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(fs::File::create(&log).expect("create the sshd log"))
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
                fs::read_to_string(&log).unwrap_or_default()
            ));
        }
        panic!(
            "the second sshd on 127.0.0.1 never answered:\n{}",
            failures.join("\n")
        );
    }

    /// `[127.0.0.1]:port`, its name in known_hosts.
    pub fn name(&self) -> String {
        format!("[127.0.0.1]:{}", self.port)
    }

    pub fn url(&self) -> String {
        format!("ssh://root@127.0.0.1:{}", self.port)
    }
}

impl Drop for SecondSshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The sshd_config lines for who logs in and what the sessions see; writes the files
/// they name (authorized_keys, the PATH directory) into `dir`.
fn session_settings(dir: &Path, options: &SshdOptions) -> String {
    let mut settings = String::new();
    match &options.authorized_key {
        Some(key_line) => {
            let authorized_keys = dir.join("authorized_keys");
            fs::write(&authorized_keys, format!("{key_line}\n")).expect("write authorized_keys");
            settings.push_str(&format!(
                "AuthorizedKeysFile {}\nPermitRootLogin prohibit-password\n\
                 AllowStreamLocalForwarding yes\nMaxSessions 64\n",
                authorized_keys.display()
            ));
        }
        None => settings.push_str("AuthorizedKeysFile none\n"),
    }
    if let Some(tools) = &options.session_tools {
        let bin = dir.join("bin");
        fs::create_dir_all(&bin).expect("create the sessions' PATH directory");
        for tool in tools {
            std::os::unix::fs::symlink(which(tool), bin.join(tool))
                .unwrap_or_else(|error| panic!("link {tool} into {}: {error}", bin.display()));
        }
        settings.push_str(&format!("SetEnv PATH={}\n", bin.display()));
    }
    settings
}

/// The absolute path of `tool` on this process's PATH; panics when it is not there.
fn which(tool: &str) -> PathBuf {
    let output = run(Command::new("sh").args(["-c", &format!("command -v {tool}")]));
    output.assert_success();
    let path = PathBuf::from(output.stdout.trim());
    assert!(path.is_absolute(), "{tool} is not on PATH: {output}");
    path
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

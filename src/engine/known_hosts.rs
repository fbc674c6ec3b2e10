//! Host-key verification against OpenSSH `known_hosts` files.
//!
//! Trusting the wrong host would hand the engine (root on the server) to whoever
//! answers, so this follows OpenSSH closely: plain, wildcard (`*`, `?`), negated (`!`)
//! and hashed (`|1|salt|hash`) host patterns, the `[host]:port` form for ports other
//! than 22, `@revoked` lines. A host with any recorded key that offers a key not
//! recorded for it (of any type) is "changed", never "unknown": accepting it would let
//! a man in the middle in by presenting another key type. `@cert-authority` lines are
//! recognised but bunker verifies no host certificates, so a host known only through
//! one is reported as such. russh's own `check_known_hosts_path` stops at the first recorded key
//! of the same type (so a rotated key with two lines fails), miscounts line numbers
//! after comments and splits on single spaces, so bunker reads the files itself.
//! New keys are appended in OpenSSH's format, hashed when `HashKnownHosts yes`.

use std::io::Write;
use std::path::{Path, PathBuf};

use hmac::{KeyInit, Mac};
use russh::keys::{Algorithm, HashAlg, PublicKey};

use super::ssh_config::pattern_list_matches;

/// A place in a known_hosts file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownHostsLine {
    pub file: PathBuf,
    pub line: usize,
}

impl std::fmt::Display for KnownHostsLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

/// What the known_hosts files say about a server's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostKeyStatus {
    /// The key is recorded for this host.
    Trusted(KnownHostsLine),
    /// No key at all is recorded for this host (it may be learned).
    Unknown,
    /// Other keys (of any type) are recorded for this host, not this one: possible
    /// man-in-the-middle. Never learned.
    Changed { recorded: Vec<RecordedKey> },
    /// The key is marked `@revoked`.
    Revoked(KnownHostsLine),
    /// The host is named only by `@cert-authority` lines, which bunker does not use.
    CertAuthorityOnly(KnownHostsLine),
}

/// A key recorded for a host, for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedKey {
    pub line: KnownHostsLine,
    /// `ssh-ed25519`, `ecdsa-sha2-nistp256`, `ssh-rsa`, ...
    pub algorithm: String,
    pub fingerprint: String,
}

/// One usable known_hosts entry.
struct Entry {
    marker: Marker,
    hosts: String,
    key: PublicKey,
    line: KnownHostsLine,
}

#[derive(PartialEq, Eq)]
enum Marker {
    None,
    Revoked,
    CertAuthority,
}

/// The name known_hosts records for `host` on `port`.
pub fn host_entry_name(host: &str, port: u16) -> String {
    if port == 22 {
        host.to_owned()
    } else {
        format!("[{host}]:{port}")
    }
}

/// `SHA256:...` as OpenSSH prints it.
pub fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

/// Checks `key` for `host`:`port` against `files` (missing files are empty).
pub fn check(files: &[PathBuf], host: &str, port: u16, key: &PublicKey) -> HostKeyStatus {
    let entries = matching_entries(files, host, port);
    if let Some(revoked) = entries
        .iter()
        .find(|e| e.marker == Marker::Revoked && e.key.key_data() == key.key_data())
    {
        return HostKeyStatus::Revoked(revoked.line.clone());
    }
    let plain = || entries.iter().filter(|e| e.marker == Marker::None);
    if let Some(trusted) = plain().find(|e| e.key.key_data() == key.key_data()) {
        return HostKeyStatus::Trusted(trusted.line.clone());
    }
    // Same type first, so the message leads with the key the server should have shown.
    let mut recorded: Vec<&Entry> = plain()
        .filter(|e| same_key_type(&e.key.algorithm(), &key.algorithm()))
        .collect();
    recorded.extend(plain().filter(|e| !same_key_type(&e.key.algorithm(), &key.algorithm())));
    if !recorded.is_empty() {
        return HostKeyStatus::Changed {
            recorded: recorded
                .into_iter()
                .map(|e| RecordedKey {
                    line: e.line.clone(),
                    algorithm: e.key.algorithm().to_string(),
                    fingerprint: fingerprint(&e.key),
                })
                .collect(),
        };
    }
    if let Some(authority) = entries.iter().find(|e| e.marker == Marker::CertAuthority) {
        return HostKeyStatus::CertAuthorityOnly(authority.line.clone());
    }
    HostKeyStatus::Unknown
}

/// Key algorithms recorded for `host`:`port`, so the key exchange can prefer them
/// (as OpenSSH does) and not be refused for offering an unrecorded type.
pub fn recorded_algorithms(files: &[PathBuf], host: &str, port: u16) -> Vec<Algorithm> {
    let mut algorithms: Vec<Algorithm> = Vec::new();
    for entry in matching_entries(files, host, port) {
        if entry.marker == Marker::None && !algorithms.contains(&entry.key.algorithm()) {
            algorithms.push(entry.key.algorithm());
        }
    }
    algorithms
}

/// How a learned host name is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameForm {
    Plain,
    /// `|1|salt|hash`, as with `HashKnownHosts yes`.
    Hashed,
}

/// Appends `key` for `host`:`port` to `file` (creating it and its directory, mode 0600/0700).
pub fn learn(
    file: &Path,
    host: &str,
    port: u16,
    key: &PublicKey,
    form: NameForm,
) -> std::io::Result<()> {
    if let Some(directory) = file.parent() {
        create_private_dir(directory)?;
    }
    let existing = std::fs::read(file).unwrap_or_default();
    let mut options = std::fs::OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut handle = options.open(file)?;
    let key_text = key.to_openssh().map_err(std::io::Error::other)?;
    // Keep the key's own comment out: OpenSSH writes `name type base64`.
    let mut parts = key_text.split_whitespace();
    let (Some(algorithm), Some(base64)) = (parts.next(), parts.next()) else {
        return Err(std::io::Error::other("cannot encode the host key"));
    };
    let separator = if existing.is_empty() || existing.ends_with(b"\n") {
        ""
    } else {
        "\n"
    };
    let name = match form {
        NameForm::Plain => host_entry_name(host, port),
        NameForm::Hashed => hashed_name(&host_entry_name(host, port))?,
    };
    let line = format!("{separator}{name} {algorithm} {base64}\n");
    handle.write_all(line.as_bytes())?;
    handle.flush()
}

/// `|1|base64(salt)|base64(HMAC-SHA1(salt, name))` with a fresh 20-byte salt.
fn hashed_name(name: &str) -> std::io::Result<String> {
    use russh::keys::ssh_encoding::base64::{Base64, Encoding};
    let mut salt = [0u8; 20];
    std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom")?, &mut salt)?;
    let mut mac = hmac::Hmac::<sha1::Sha1>::new_from_slice(&salt).map_err(std::io::Error::other)?;
    mac.update(name.as_bytes());
    let hash = mac.finalize().into_bytes();
    Ok(format!(
        "|1|{}|{}",
        Base64::encode_string(&salt),
        Base64::encode_string(&hash)
    ))
}

fn create_private_dir(directory: &Path) -> std::io::Result<()> {
    if directory.exists() {
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(directory)
}

fn same_key_type(a: &Algorithm, b: &Algorithm) -> bool {
    // rsa-sha2-256/512 and ssh-rsa are the same RSA key.
    match (a, b) {
        (Algorithm::Rsa { .. }, Algorithm::Rsa { .. }) => true,
        _ => a == b,
    }
}

fn matching_entries(files: &[PathBuf], host: &str, port: u16) -> Vec<Entry> {
    let name = host_entry_name(host, port).to_ascii_lowercase();
    files
        .iter()
        .flat_map(|file| read_entries(file))
        .filter(|entry| hosts_field_matches(&entry.hosts, &name))
        .collect()
}

fn read_entries(file: &Path) -> Vec<Entry> {
    let Ok(text) = std::fs::read_to_string(file) else {
        return Vec::new();
    };
    text.lines()
        .enumerate()
        .filter_map(|(index, line)| {
            let entry = parse_line(line, file, index + 1);
            if entry.is_none() && !line.trim().is_empty() && !line.trim_start().starts_with('#') {
                tracing::debug!(
                    "{}:{}: unreadable known_hosts line",
                    file.display(),
                    index + 1
                );
            }
            entry
        })
        .collect()
}

fn parse_line(line: &str, file: &Path, number: usize) -> Option<Entry> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let mut fields = line.split_whitespace();
    let mut first = fields.next()?;
    let marker = match first {
        "@revoked" => Marker::Revoked,
        "@cert-authority" => Marker::CertAuthority,
        _ => Marker::None,
    };
    if marker != Marker::None {
        first = fields.next()?;
    }
    let algorithm = fields.next()?;
    let base64 = fields.next()?;
    let key = PublicKey::from_openssh(&format!("{algorithm} {base64}")).ok()?;
    Some(Entry {
        marker,
        hosts: first.to_owned(),
        key,
        line: KnownHostsLine {
            file: file.to_owned(),
            line: number,
        },
    })
}

/// The hosts field is either one hashed name or a comma-separated pattern list.
fn hosts_field_matches(field: &str, name: &str) -> bool {
    if let Some(hashed) = field.strip_prefix("|1|") {
        return hashed_name_matches(hashed, name);
    }
    let patterns: Vec<String> = field.split(',').map(str::to_owned).collect();
    pattern_list_matches(&patterns, name)
}

/// `|1|base64(salt)|base64(HMAC-SHA1(salt, name))`
fn hashed_name_matches(hashed: &str, name: &str) -> bool {
    let Some((salt, hash)) = hashed.split_once('|') else {
        return false;
    };
    let (Some(salt), Some(hash)) = (decode_base64(salt), decode_base64(hash)) else {
        return false;
    };
    let Ok(mut mac) = hmac::Hmac::<sha1::Sha1>::new_from_slice(&salt) else {
        return false;
    };
    mac.update(name.as_bytes());
    mac.verify_slice(&hash).is_ok()
}

/// Standard base64 with padding (what OpenSSH writes in hashed names).
fn decode_base64(text: &str) -> Option<Vec<u8>> {
    use russh::keys::ssh_encoding::base64::{Base64, Encoding};
    Base64::decode_vec(text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY_A: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJdD7y3aLq454yWBdwLWbieU1ebz9/cu7/QEXn9OIeZJ";
    const KEY_B: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILIG2T/B0l0gaqj3puu510tu9N1OkQ4znY3LYuEm5zCF";

    fn key(text: &str) -> PublicKey {
        PublicKey::from_openssh(text).unwrap()
    }

    fn file_with(text: &str) -> (tempfile::TempDir, Vec<PathBuf>) {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("known_hosts");
        std::fs::write(&path, text).unwrap();
        (directory, vec![path])
    }

    #[test]
    fn trusted_with_port_form_and_right_line_after_comments() {
        let (_dir, files) = file_with(&format!("# comment\n\n[127.0.0.1]:2222 {KEY_A}\n"));
        match check(&files, "127.0.0.1", 2222, &key(KEY_A)) {
            HostKeyStatus::Trusted(line) => assert_eq!(line.line, 3),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            check(&files, "127.0.0.1", 22, &key(KEY_A)),
            HostKeyStatus::Unknown
        ));
    }

    #[test]
    fn hashed_entry_from_openssh_matches() {
        // The hashed line from russh's test suite is for example.com port 22.
        let (_dir, files) = file_with(&format!(
            "|1|O33ESRMWPVkMYIwJ1Uw+n877jTo=|nuuC5vEqXlEZ/8BXQR7m619W6Ak= {KEY_B}\n"
        ));
        assert!(matches!(
            check(&files, "example.com", 22, &key(KEY_B)),
            HostKeyStatus::Trusted(_)
        ));
        assert!(matches!(
            check(&files, "example.org", 22, &key(KEY_B)),
            HostKeyStatus::Unknown
        ));
    }

    #[test]
    fn changed_key_reports_recorded_line_unless_another_line_matches() {
        let (_dir, files) = file_with(&format!("host.lan {KEY_B}\n"));
        match check(&files, "host.lan", 22, &key(KEY_A)) {
            HostKeyStatus::Changed { recorded } => {
                assert_eq!(recorded[0].line.line, 1);
                assert!(recorded[0].fingerprint.starts_with("SHA256:"));
            }
            other => panic!("{other:?}"),
        }
        let (_dir, files) = file_with(&format!("host.lan {KEY_B}\nhost.lan {KEY_A}\n"));
        assert!(matches!(
            check(&files, "host.lan", 22, &key(KEY_A)),
            HostKeyStatus::Trusted(_)
        ));
    }

    #[test]
    fn wildcards_negation_and_revoked() {
        let (_dir, files) = file_with(&format!("*.lan,!bad.lan {KEY_A}\n"));
        assert!(matches!(
            check(&files, "box.lan", 22, &key(KEY_A)),
            HostKeyStatus::Trusted(_)
        ));
        assert!(matches!(
            check(&files, "bad.lan", 22, &key(KEY_A)),
            HostKeyStatus::Unknown
        ));
        let (_dir, files) = file_with(&format!("@revoked * {KEY_A}\nbox.lan {KEY_A}\n"));
        assert!(matches!(
            check(&files, "box.lan", 22, &key(KEY_A)),
            HostKeyStatus::Revoked(_)
        ));
    }

    #[test]
    fn other_key_type_is_changed_and_cert_authority_alone_is_reported() {
        const ECDSA: &str = "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBImX2NCh8jKAjvHvwfNJe4PzSg/CIO7UlNNVHmAAPCgMlEUmO8fCljDQ90cHxCyfYHBhWOD4ibyItPXEc+llyWw=";
        let (_dir, files) = file_with(&format!("host.lan {KEY_A}\n"));
        match check(&files, "host.lan", 22, &key(ECDSA)) {
            HostKeyStatus::Changed { recorded } => {
                assert_eq!(recorded.len(), 1);
                assert_eq!(recorded[0].algorithm, "ssh-ed25519");
            }
            other => panic!("{other:?}"),
        }
        let (_dir, files) = file_with(&format!("@cert-authority *.lan {KEY_A}\n"));
        assert!(matches!(
            check(&files, "host.lan", 22, &key(KEY_B)),
            HostKeyStatus::CertAuthorityOnly(_)
        ));
    }

    #[test]
    fn learn_hashed_is_then_trusted_only_for_that_name() {
        let (_dir, files) = file_with("");
        learn(&files[0], "10.1.2.3", 2200, &key(KEY_A), NameForm::Hashed).unwrap();
        let text = std::fs::read_to_string(&files[0]).unwrap();
        assert!(
            text.starts_with("|1|") && !text.contains("10.1.2.3"),
            "{text}"
        );
        assert!(matches!(
            check(&files, "10.1.2.3", 2200, &key(KEY_A)),
            HostKeyStatus::Trusted(_)
        ));
        assert!(matches!(
            check(&files, "10.1.2.3", 22, &key(KEY_A)),
            HostKeyStatus::Unknown
        ));
    }

    #[test]
    fn learn_appends_in_port_form_and_is_then_trusted() {
        let (_dir, files) = file_with("other.host ssh-ed25519 AAAA-broken-line-no-newline");
        learn(&files[0], "10.1.2.3", 2200, &key(KEY_A), NameForm::Plain).unwrap();
        let text = std::fs::read_to_string(&files[0]).unwrap();
        assert!(
            text.ends_with(&format!("\n[10.1.2.3]:2200 {KEY_A}\n")),
            "{text}"
        );
        assert!(matches!(
            check(&files, "10.1.2.3", 2200, &key(KEY_A)),
            HostKeyStatus::Trusted(_)
        ));
    }
}

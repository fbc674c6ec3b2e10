//! `bunker login REGISTRY`: checks credentials against the registry, then
//! stores them the way the Docker CLI does, so `docker`, skopeo and bunker all
//! share them: through the configured credential helper (`credHelpers` entry
//! or `credsStore`) when there is one, else base64 in `config.json` `auths`.
//!
//! The password is read from the terminal without echo or from standard input
//! (`--password-stdin`); it is never taken from the command line.

use std::io::{BufRead, Write};
use std::path::Path;

use anyhow::{Context, bail};

use super::auth::{Credential, config_keys};
use super::client::{ClientOptions, RegistryClient};

/// Verifies `username`/`password` on `registry` and saves them.
pub async fn login(
    registry: &str,
    username: &str,
    password: &str,
    options: &ClientOptions,
    config_path: &Path,
) -> anyhow::Result<String> {
    let credential = Credential::Basic {
        username: username.to_string(),
        password: password.to_string(),
    };
    let client = RegistryClient::with_credential(registry, options, Some(credential))?;
    client
        .ping()
        .await
        .with_context(|| format!("login to {registry} failed"))?;
    store(registry, username, password, config_path)
}

/// Saves credentials; returns where they went.
pub fn store(
    registry: &str,
    username: &str,
    password: &str,
    config_path: &Path,
) -> anyhow::Result<String> {
    let mut config: serde_json::Value = match std::fs::read(config_path) {
        Ok(bytes) => serde_json::from_slice(&bytes).with_context(|| {
            format!(
                "{} is not valid JSON; fix or remove it",
                config_path.display()
            )
        })?,
        Err(_) => serde_json::json!({}),
    };
    let key = config_keys(registry).remove(0);
    let helper = config
        .get("credHelpers")
        .and_then(|helpers| helpers.get(&key))
        .or_else(|| config.get("credsStore"))
        .and_then(|value| value.as_str())
        .filter(|name| !name.is_empty())
        .map(str::to_string);
    if let Some(helper) = helper {
        let program = format!("docker-credential-{helper}");
        let mut child = std::process::Command::new(&program)
            .arg("store")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot run the credential helper {program}"))?;
        let payload =
            serde_json::json!({"ServerURL": key, "Username": username, "Secret": password});
        child
            .stdin
            .take()
            .context("helper stdin")?
            .write_all(payload.to_string().as_bytes())?;
        let output = child.wait_with_output()?;
        if !output.status.success() {
            bail!(
                "{program} store failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        return Ok(format!("credential helper {program}"));
    }
    let auths = config
        .as_object_mut()
        .context("config.json is not a JSON object")?
        .entry("auths")
        .or_insert_with(|| serde_json::json!({}));
    auths[&key] =
        serde_json::json!({ "auth": base64(format!("{username}:{password}").as_bytes()) });
    if let Some(parent) = config_path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let temporary = config_path.with_extension(format!("tmp-{}", std::process::id()));
    {
        use std::os::unix::fs::OpenOptionsExt;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&temporary)
            .with_context(|| format!("cannot write {}", temporary.display()))?;
        file.write_all(serde_json::to_string_pretty(&config)?.as_bytes())?;
    }
    std::fs::rename(&temporary, config_path)?;
    Ok(config_path.display().to_string())
}

/// Reads the password: the first line of standard input, or the terminal without echo.
pub fn read_password(from_stdin: bool) -> anyhow::Result<String> {
    let mut line = String::new();
    if from_stdin {
        std::io::stdin().lock().read_line(&mut line)?;
    } else {
        if !std::io::IsTerminal::is_terminal(&std::io::stdin()) {
            bail!("no terminal to ask for the password: use --password-stdin");
        }
        eprint!("Password: ");
        std::io::stderr().flush()?;
        let _echo = EchoOff::new();
        std::io::stdin().lock().read_line(&mut line)?;
        eprintln!();
    }
    let password = line.trim_end_matches(['\n', '\r']).to_string();
    if password.is_empty() {
        bail!("empty password");
    }
    Ok(password)
}

/// Turns terminal echo off until dropped.
struct EchoOff {
    saved: Option<libc::termios>,
}

impl EchoOff {
    fn new() -> Self {
        // SAFETY: tcgetattr/tcsetattr on stdin with a zeroed, then filled, termios.
        unsafe {
            let mut settings: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(0, &mut settings) != 0 {
                return Self { saved: None };
            }
            let saved = settings;
            settings.c_lflag &= !libc::ECHO;
            libc::tcsetattr(0, libc::TCSANOW, &settings);
            Self { saved: Some(saved) }
        }
    }
}

impl Drop for EchoOff {
    fn drop(&mut self) {
        if let Some(saved) = self.saved {
            // SAFETY: restores the settings read in `new`.
            unsafe {
                libc::tcsetattr(0, libc::TCSANOW, &saved);
            }
        }
    }
}

/// Standard base64 with padding (config.json's `auth` field).
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut text = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let value = (u32::from(chunk[0]) << 16)
            | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
            | u32::from(*chunk.get(2).unwrap_or(&0));
        for position in 0..4 {
            if position <= chunk.len() {
                text.push(ALPHABET[((value >> (18 - 6 * position)) & 63) as usize] as char);
            } else {
                text.push('=');
            }
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"user:pass"), "dXNlcjpwYXNz");
    }

    #[test]
    fn stores_auth_readable_by_docker_credential() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(&path, r#"{"auths":{"other.example":{"auth":"eDp5"}}}"#).unwrap();
        store("r.example:5000", "user", "secret", &path).unwrap();
        let text = std::fs::read(&path).unwrap();
        let credential = docker_credential::get_credential_from_reader(
            std::io::Cursor::new(&text),
            "r.example:5000",
        )
        .unwrap();
        assert_eq!(
            credential,
            docker_credential::DockerCredential::UsernamePassword("user".into(), "secret".into())
        );
        assert!(String::from_utf8_lossy(&text).contains("other.example"));
    }
}

//! Which engine to talk to: `--host`, `--context`, `DOCKER_HOST`, `DOCKER_CONTEXT` and
//! the current Docker context, in the docker CLI's order of precedence.
//!
//! Docker contexts live in `$DOCKER_CONFIG` (default `~/.docker`): `config.json` names the
//! `currentContext`, and each context's `contexts/meta/<sha256 of its name>/meta.json`
//! holds `{"Name": ..., "Endpoints": {"docker": {"Host": "ssh://..."}}}`. Reading them
//! directly keeps bunker independent of the docker CLI. Unlike the docker CLI, bunker
//! never silently falls back to a local socket: with nothing configured it says how to
//! configure a target.

use std::fmt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// The context name docker uses for "DOCKER_HOST or the local socket".
const DEFAULT_CONTEXT: &str = "default";
const DEFAULT_LOCAL_SOCKET: &str = "/var/run/docker.sock";

/// An engine address bunker can reach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    Ssh(SshAddress),
    Unix(PathBuf),
}

/// `ssh://[user@]host[:port][/socket/path]` as written by the user (before ~/.ssh/config).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshAddress {
    pub user: Option<String>,
    /// Host name or alias (IPv6 addresses without brackets).
    pub host: String,
    pub port: Option<u16>,
    /// Engine socket path given in the URL path, if any.
    pub socket_path: Option<String>,
}

/// Where the target came from, for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetSource {
    HostFlag,
    DockerHostVariable,
    Context { name: String, meta_file: PathBuf },
}

impl fmt::Display for TargetSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TargetSource::HostFlag => f.write_str("--host"),
            TargetSource::DockerHostVariable => f.write_str("DOCKER_HOST"),
            TargetSource::Context { name, meta_file } => {
                write!(f, "Docker context `{name}` ({})", meta_file.display())
            }
        }
    }
}

/// The resolved target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub endpoint: Endpoint,
    /// The URL as given (e.g. `ssh://deploy@web`).
    pub url: String,
    pub source: TargetSource,
}

impl Target {
    /// The Docker context name, when the target came from a context.
    pub fn context_name(&self) -> Option<&str> {
        match &self.source {
            TargetSource::Context { name, .. } => Some(name),
            _ => None,
        }
    }
}

/// Inputs of the resolution, separated from the process environment for tests.
#[derive(Debug, Clone, Default)]
pub struct TargetInputs {
    /// `--host`
    pub host_flag: Option<String>,
    /// `--context` given on the command line.
    pub context_flag: Option<String>,
    /// `DOCKER_HOST`
    pub docker_host: Option<String>,
    /// `DOCKER_CONTEXT`
    pub docker_context: Option<String>,
    /// `$DOCKER_CONFIG`, else `~/.docker`.
    pub docker_config_dir: PathBuf,
}

impl TargetInputs {
    /// Reads the environment. `context` is bunker's `--context` value, which clap also
    /// fills from `DOCKER_CONTEXT`; it counts as the flag only when it differs from the variable.
    pub fn from_environment(host_flag: Option<&str>, context: Option<&str>, home: &Path) -> Self {
        let variable = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let docker_context = variable("DOCKER_CONTEXT");
        let context_flag = context
            .filter(|c| Some(*c) != docker_context.as_deref())
            .map(str::to_owned);
        Self {
            host_flag: host_flag.map(str::to_owned),
            context_flag,
            docker_host: variable("DOCKER_HOST"),
            docker_context,
            docker_config_dir: variable("DOCKER_CONFIG")
                .map(PathBuf::from)
                .unwrap_or_else(|| home.join(".docker")),
        }
    }
}

/// Resolves the target in the docker CLI's order: `--host`, `--context`, `DOCKER_HOST`,
/// `DOCKER_CONTEXT`, `currentContext` in config.json.
pub fn resolve(inputs: &TargetInputs) -> anyhow::Result<Target> {
    if let (Some(_), Some(context)) = (&inputs.host_flag, &inputs.context_flag) {
        anyhow::bail!(
            "both --host and --context ({context}) are given; use only one of them to pick the engine"
        );
    }
    if let Some(url) = &inputs.host_flag {
        return target_from_url(url, TargetSource::HostFlag);
    }
    if let Some(name) = &inputs.context_flag {
        return target_from_context(name, inputs);
    }
    if let Some(url) = &inputs.docker_host {
        return target_from_url(url, TargetSource::DockerHostVariable);
    }
    if let Some(name) = &inputs.docker_context {
        return target_from_context(name, inputs);
    }
    if let Some(name) = current_context(&inputs.docker_config_dir)? {
        return target_from_context(&name, inputs);
    }
    anyhow::bail!("{}", no_target_message(&inputs.docker_config_dir))
}

fn no_target_message(config_dir: &Path) -> String {
    format!(
        "no Docker engine is selected. Pick one with any of:\n  \
         --host ssh://user@server[:port]   (or --host unix:///var/run/docker.sock for a local engine)\n  \
         export DOCKER_HOST=ssh://user@server[:port]\n  \
         --context NAME or DOCKER_CONTEXT=NAME, for a context made with `docker context create NAME --docker host=ssh://user@server`\n  \
         `docker context use NAME` (sets currentContext in {})",
        config_dir.join("config.json").display()
    )
}

/// Reads `currentContext` from config.json; `None` when unset, `default` or no file.
fn current_context(config_dir: &Path) -> anyhow::Result<Option<String>> {
    let path = config_dir.join("config.json");
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => anyhow::bail!("cannot read {}: {error}", path.display()),
    };
    let config: serde_json::Value = serde_json::from_str(&text).map_err(|error| {
        anyhow::anyhow!(
            "{} is not valid JSON ({error}); fix or remove it",
            path.display()
        )
    })?;
    Ok(config
        .get("currentContext")
        .and_then(|value| value.as_str())
        .filter(|name| !name.is_empty() && *name != DEFAULT_CONTEXT)
        .map(str::to_owned))
}

/// The metadata directory of a context: `contexts/meta/<hex sha256 of the name>/meta.json`.
pub fn context_meta_file(config_dir: &Path, name: &str) -> PathBuf {
    let digest = Sha256::digest(name.as_bytes());
    let hex: String = digest.iter().map(|byte| format!("{byte:02x}")).collect();
    config_dir
        .join("contexts")
        .join("meta")
        .join(hex)
        .join("meta.json")
}

fn target_from_context(name: &str, inputs: &TargetInputs) -> anyhow::Result<Target> {
    let meta_file = context_meta_file(&inputs.docker_config_dir, name);
    if name == DEFAULT_CONTEXT {
        let url = inputs
            .docker_host
            .clone()
            .unwrap_or_else(|| format!("unix://{DEFAULT_LOCAL_SOCKET}"));
        let source = TargetSource::Context {
            name: name.to_owned(),
            meta_file,
        };
        return target_from_url(&url, source);
    }
    let text = match std::fs::read_to_string(&meta_file) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => anyhow::bail!(
            "Docker context `{name}` does not exist (no {}). `docker context ls` lists the \
             contexts; create it with `docker context create {name} --docker host=ssh://user@server`",
            meta_file.display()
        ),
        Err(error) => anyhow::bail!("cannot read {}: {error}", meta_file.display()),
    };
    let meta: serde_json::Value = serde_json::from_str(&text).map_err(|error| {
        anyhow::anyhow!(
            "{} (Docker context `{name}`) is not valid JSON: {error}",
            meta_file.display()
        )
    })?;
    let Some(url) = meta
        .pointer("/Endpoints/docker/Host")
        .and_then(|value| value.as_str())
        .filter(|url| !url.is_empty())
    else {
        anyhow::bail!(
            "Docker context `{name}` ({}) has no Endpoints.docker.Host; recreate it with \
             `docker context create {name} --docker host=ssh://user@server`",
            meta_file.display()
        );
    };
    target_from_url(
        url,
        TargetSource::Context {
            name: name.to_owned(),
            meta_file,
        },
    )
}

fn target_from_url(url: &str, source: TargetSource) -> anyhow::Result<Target> {
    let endpoint = parse_url(url).map_err(|problem| {
        anyhow::anyhow!(
            "engine address `{url}` (from {source}) {problem}; use ssh://[user@]host[:port] \
             or unix:///path/to/docker.sock"
        )
    })?;
    Ok(Target {
        endpoint,
        url: url.to_owned(),
        source,
    })
}

/// Parses `ssh://...` and `unix://...`; the error text completes "engine address `x` ...".
pub fn parse_url(url: &str) -> Result<Endpoint, String> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err("has no scheme".into());
    };
    match scheme.to_ascii_lowercase().as_str() {
        "ssh" => parse_ssh(rest).map(Endpoint::Ssh),
        "unix" => {
            if !rest.starts_with('/') {
                return Err("must name an absolute socket path (unix:///path)".into());
            }
            Ok(Endpoint::Unix(PathBuf::from(rest)))
        }
        "tcp" | "http" | "https" => Err(
            "uses TCP, which bunker does not support (an engine's TCP port is unauthenticated \
             unless TLS is set up); reach the server over SSH instead"
                .into(),
        ),
        other => Err(format!("has the unsupported scheme `{other}`")),
    }
}

/// Parses `[user@]host[:port][/path]` (the part after `ssh://`; also a ProxyJump hop).
pub fn parse_ssh(rest: &str) -> Result<SshAddress, String> {
    let (authority, path) = match rest.find('/') {
        Some(index) => (&rest[..index], Some(&rest[index..])),
        None => (rest, None),
    };
    let (user, host_port) = match authority.rsplit_once('@') {
        Some((user, host_port)) if !user.is_empty() => (Some(user.to_owned()), host_port),
        Some(_) => return Err("has an empty user name before `@`".into()),
        None => (None, authority),
    };
    let (host, port) = if let Some(bracketed) = host_port.strip_prefix('[') {
        let Some((host, after)) = bracketed.split_once(']') else {
            return Err("has an unclosed `[` in the host".into());
        };
        match after {
            "" => (host, None),
            _ => match after.strip_prefix(':') {
                Some(port) => (host, Some(port)),
                None => return Err("has text after `]` that is not `:port`".into()),
            },
        }
    } else {
        match host_port.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (host_port, None),
        }
    };
    if host.is_empty() {
        return Err("has no host".into());
    }
    let port = match port {
        None => None,
        Some(text) => match text.parse::<u16>() {
            Ok(port) if port > 0 => Some(port),
            _ => return Err(format!("has the invalid port `{text}`")),
        },
    };
    let socket_path = path.filter(|p| *p != "/").map(str::to_owned);
    Ok(SshAddress {
        user,
        host: host.to_owned(),
        port,
        socket_path,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ssh(user: Option<&str>, host: &str, port: Option<u16>) -> Endpoint {
        Endpoint::Ssh(SshAddress {
            user: user.map(str::to_owned),
            host: host.to_owned(),
            port,
            socket_path: None,
        })
    }

    #[test]
    fn parses_ssh_forms() {
        assert_eq!(parse_url("ssh://web"), Ok(ssh(None, "web", None)));
        assert_eq!(
            parse_url("ssh://root@10.0.0.1:2222"),
            Ok(ssh(Some("root"), "10.0.0.1", Some(2222)))
        );
        assert_eq!(
            parse_url("ssh://u@[::1]:22"),
            Ok(ssh(Some("u"), "::1", Some(22)))
        );
        assert_eq!(
            parse_url("ssh://u@h/run/user/1000/docker.sock"),
            Ok(Endpoint::Ssh(SshAddress {
                user: Some("u".into()),
                host: "h".into(),
                port: None,
                socket_path: Some("/run/user/1000/docker.sock".into()),
            }))
        );
    }

    #[test]
    fn rejects_bad_addresses() {
        assert_eq!(
            parse_url("ssh://h:99999"),
            Err("has the invalid port `99999`".into())
        );
        assert_eq!(
            parse_url("ssh://@h"),
            Err("has an empty user name before `@`".into())
        );
        assert_eq!(parse_url("ssh://"), Err("has no host".into()));
        assert_eq!(parse_url("web:22"), Err("has no scheme".into()));
        assert!(parse_url("tcp://h:2375").unwrap_err().contains("TCP"));
        assert_eq!(
            parse_url("unix://relative.sock"),
            Err("must name an absolute socket path (unix:///path)".into())
        );
        assert_eq!(
            parse_url("unix:///run/docker.sock"),
            Ok(Endpoint::Unix("/run/docker.sock".into()))
        );
    }

    fn write_context(config_dir: &Path, name: &str, host: &str) {
        let meta = context_meta_file(config_dir, name);
        std::fs::create_dir_all(meta.parent().unwrap()).unwrap();
        std::fs::write(
            &meta,
            format!(r#"{{"Name":"{name}","Metadata":{{}},"Endpoints":{{"docker":{{"Host":"{host}","SkipTLSVerify":false}}}}}}"#),
        )
        .unwrap();
    }

    #[test]
    fn meta_dir_is_sha256_of_name() {
        // sha256("default"), as docker itself names it.
        assert!(context_meta_file(Path::new("/c"), "default").ends_with(
            "37a8eec1ce19687d132fe29051dca629d164e2c4958ba141d5f4133a33f0688f/meta.json"
        ));
    }

    #[test]
    fn precedence_follows_the_docker_cli() {
        let dir = tempfile::tempdir().unwrap();
        let config_dir = dir.path().to_owned();
        write_context(&config_dir, "prod", "ssh://deploy@prod");
        write_context(&config_dir, "lab", "ssh://lab:2200");
        std::fs::write(
            config_dir.join("config.json"),
            r#"{"currentContext":"prod"}"#,
        )
        .unwrap();
        let mut inputs = TargetInputs {
            docker_config_dir: config_dir.clone(),
            ..Default::default()
        };
        let target = resolve(&inputs).unwrap();
        assert_eq!(target.url, "ssh://deploy@prod");
        assert_eq!(target.context_name(), Some("prod"));

        inputs.docker_context = Some("lab".into());
        assert_eq!(resolve(&inputs).unwrap().url, "ssh://lab:2200");

        inputs.docker_host = Some("ssh://env-host".into());
        let target = resolve(&inputs).unwrap();
        assert_eq!(target.url, "ssh://env-host");
        assert_eq!(target.source, TargetSource::DockerHostVariable);

        inputs.context_flag = Some("prod".into());
        assert_eq!(resolve(&inputs).unwrap().url, "ssh://deploy@prod");

        inputs.host_flag = Some("ssh://flag".into());
        assert!(
            resolve(&inputs)
                .unwrap_err()
                .to_string()
                .contains("both --host and --context")
        );
        inputs.context_flag = None;
        assert_eq!(resolve(&inputs).unwrap().url, "ssh://flag");
    }

    #[test]
    fn missing_context_and_no_target_explain_next_step() {
        let dir = tempfile::tempdir().unwrap();
        let inputs = TargetInputs {
            docker_config_dir: dir.path().to_owned(),
            ..Default::default()
        };
        let message = resolve(&inputs).unwrap_err().to_string();
        assert!(
            message.starts_with("no Docker engine is selected"),
            "{message}"
        );
        assert!(message.contains("DOCKER_HOST=ssh://"), "{message}");

        let inputs = TargetInputs {
            context_flag: Some("nope".into()),
            ..inputs
        };
        let message = resolve(&inputs).unwrap_err().to_string();
        assert!(
            message.contains("Docker context `nope` does not exist"),
            "{message}"
        );
        assert!(message.contains("docker context create nope"), "{message}");
    }

    #[test]
    fn default_context_means_docker_host_or_local_socket() {
        let dir = tempfile::tempdir().unwrap();
        let inputs = TargetInputs {
            context_flag: Some("default".into()),
            docker_config_dir: dir.path().to_owned(),
            ..Default::default()
        };
        assert_eq!(
            resolve(&inputs).unwrap().endpoint,
            Endpoint::Unix("/var/run/docker.sock".into())
        );
    }
}

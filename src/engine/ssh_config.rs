//! A small reader for OpenSSH client configuration (`~/.ssh/config`).
//!
//! bunker talks SSH with the pure-Rust `russh`, which does not read ssh_config, yet
//! users expect `ssh://myserver` to mean what `ssh myserver` means. This reads the
//! keywords that decide *where* and *as whom* to connect (`HostName`, `User`, `Port`,
//! `IdentityFile`, `IdentitiesOnly`, `UserKnownHostsFile`, `ConnectTimeout`,
//! `ServerAliveInterval`, `StrictHostKeyChecking`, `HashKnownHosts`,
//! `HostKeyAlgorithms`) with OpenSSH's rules: `Host` patterns with `*`, `?` and `!`,
//! case-insensitive keywords, `Key Value` or `Key=Value`, quoted values, `Include`,
//! the first value of a keyword wins, `IdentityFile` accumulates. `ProxyJump` is read
//! for the caller to follow; `ProxyCommand` is reported so the caller can refuse it
//! with a clear message.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Nested `Include`s deeper than this are refused (OpenSSH uses the same limit).
const MAX_INCLUDE_DEPTH: usize = 16;

/// A parse problem, naming the file and line at fault.
#[derive(Debug, thiserror::Error)]
#[error("{file}:{line}: {message}")]
pub struct SshConfigError {
    pub file: PathBuf,
    pub line: usize,
    pub message: String,
}

/// Where a directive was read from, for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub file: PathBuf,
    pub line: usize,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} line {}", self.file.display(), self.line)
    }
}

/// The block a directive belongs to: which host names it applies to.
#[derive(Debug, Clone)]
enum Condition {
    /// Before any `Host`/`Match` line: applies to every host.
    Always,
    /// `Host pattern...`
    Host(Vec<String>),
    /// `Match all`
    MatchAll,
    /// `Match host pattern,...` (other `Match` criteria never match: bunker cannot evaluate them).
    MatchHost(Vec<String>),
    Never,
}

impl Condition {
    fn applies_to(&self, alias: &str, hostname: &str) -> bool {
        match self {
            Condition::Always | Condition::MatchAll => true,
            Condition::Host(patterns) => pattern_list_matches(patterns, alias),
            Condition::MatchHost(patterns) => pattern_list_matches(patterns, hostname),
            Condition::Never => false,
        }
    }
}

#[derive(Debug, Clone)]
struct Directive {
    condition: Arc<Condition>,
    keyword: String,
    value: String,
    origin: Origin,
}

/// A parsed configuration file (with its includes inlined).
#[derive(Debug, Clone, Default)]
pub struct SshConfig {
    directives: Vec<Directive>,
}

/// What the configuration says about one host alias.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostSettings {
    /// `HostName`, with `%h` already replaced by the alias.
    pub hostname: Option<String>,
    pub user: Option<String>,
    pub port: Option<u16>,
    /// `IdentityFile` values in order, not yet expanded (see [`expand_path_tokens`]).
    pub identity_files: Vec<String>,
    pub identities_only: bool,
    /// `UserKnownHostsFile` values, not yet expanded.
    pub user_known_hosts_files: Vec<String>,
    pub connect_timeout_seconds: Option<u64>,
    pub server_alive_interval_seconds: Option<u64>,
    /// `StrictHostKeyChecking accept-new`: record unknown host keys (never changed ones).
    pub accept_new_host_keys: bool,
    /// `HashKnownHosts yes`: record host names hashed.
    pub hash_known_hosts: bool,
    /// `HostKeyAlgorithms` as written (see [`host_key_algorithms`] for what it allows).
    pub host_key_algorithms: Option<String>,
    /// `ProxyJump` or `ProxyCommand`, whichever comes first (as in OpenSSH).
    pub proxy: Option<Proxy>,
}

/// How the host is reached when not directly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proxy {
    pub kind: ProxyKind,
    /// The value as written (`ProxyJump a,b` → `a,b`).
    pub value: String,
    pub origin: Origin,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyKind {
    /// `ProxyJump [user@]host[:port][,...]`: supported.
    Jump,
    /// `ProxyCommand`: not supported (bunker runs no local commands to connect).
    Command,
}

impl SshConfig {
    /// Reads `path`; a missing file is an empty configuration.
    pub fn load(path: &Path, home: &Path) -> Result<Self, SshConfigError> {
        let mut directives = Vec::new();
        if path.exists() {
            read_file(path, home, Arc::new(Condition::Always), 0, &mut directives)?;
        }
        Ok(Self { directives })
    }

    /// Parses configuration text (used by tests and by [`SshConfig::load`]).
    pub fn parse(text: &str, file: &Path, home: &Path) -> Result<Self, SshConfigError> {
        let mut directives = Vec::new();
        parse_text(
            text,
            file,
            home,
            Arc::new(Condition::Always),
            0,
            &mut directives,
        )?;
        Ok(Self { directives })
    }

    /// The settings for `alias` (the name given in `ssh://alias`), first value wins.
    pub fn settings_for(&self, alias: &str) -> HostSettings {
        let alias = alias.to_ascii_lowercase();
        let mut settings = HostSettings::default();
        // Outer `Option`: seen yet (first value wins, even when unparsable or `none`).
        let mut identities_only = None;
        let mut port: Option<Option<u16>> = None;
        let mut known_hosts_files: Option<Vec<String>> = None;
        let mut connect_timeout: Option<Option<u64>> = None;
        let mut server_alive: Option<Option<u64>> = None;
        let mut proxy_setting: Option<Option<Proxy>> = None;
        let mut strict_host_key_checking: Option<String> = None;
        let mut hash_known_hosts: Option<bool> = None;
        // `Match host` compares against HostName once it is known, as OpenSSH does.
        let hostname_for_match = self
            .directives
            .iter()
            .find(|d| {
                d.keyword == "hostname"
                    && matches!(*d.condition, Condition::Always | Condition::Host(_))
                    && d.condition.applies_to(&alias, &alias)
            })
            .map(|d| d.value.replace("%h", &alias).to_ascii_lowercase())
            .unwrap_or_else(|| alias.clone());
        for directive in &self.directives {
            if !directive.condition.applies_to(&alias, &hostname_for_match) {
                continue;
            }
            let value = directive.value.clone();
            match directive.keyword.as_str() {
                "hostname" => set_once(&mut settings.hostname, Some(value.replace("%h", &alias))),
                "user" => set_once(&mut settings.user, Some(value)),
                "port" => set_once(&mut port, Some(value.parse().ok())),
                "identityfile" => settings.identity_files.push(value),
                "identitiesonly" => set_once(
                    &mut identities_only,
                    Some(value.eq_ignore_ascii_case("yes")),
                ),
                "userknownhostsfile" => set_once(
                    &mut known_hosts_files,
                    Some(value.split_whitespace().map(str::to_owned).collect()),
                ),
                "connecttimeout" => set_once(&mut connect_timeout, Some(value.parse().ok())),
                "serveraliveinterval" => set_once(&mut server_alive, Some(value.parse().ok())),
                "hostkeyalgorithms" => set_once(&mut settings.host_key_algorithms, Some(value)),
                "hashknownhosts" => set_once(
                    &mut hash_known_hosts,
                    Some(value.eq_ignore_ascii_case("yes")),
                ),
                "stricthostkeychecking" => set_once(
                    &mut strict_host_key_checking,
                    Some(value.to_ascii_lowercase()),
                ),
                "proxyjump" | "proxycommand" => {
                    // `none` as the first value disables a later, broader proxy setting.
                    let kind = if directive.keyword == "proxyjump" {
                        ProxyKind::Jump
                    } else {
                        ProxyKind::Command
                    };
                    let proxy = (!value.eq_ignore_ascii_case("none")).then(|| Proxy {
                        kind,
                        value: value.clone(),
                        origin: directive.origin.clone(),
                    });
                    set_once(&mut proxy_setting, Some(proxy));
                }
                _ => {}
            }
        }
        settings.port = port.flatten();
        settings.user_known_hosts_files = known_hosts_files.unwrap_or_default();
        settings.connect_timeout_seconds = connect_timeout.flatten();
        settings.server_alive_interval_seconds = server_alive.flatten();
        settings.proxy = proxy_setting.flatten();
        // `no`/`off` would also accept unknown keys in OpenSSH; bunker only honours the
        // explicit `accept-new`, and never accepts a changed key.
        settings.accept_new_host_keys = strict_host_key_checking.as_deref() == Some("accept-new");
        settings.hash_known_hosts = hash_known_hosts.unwrap_or(false);
        settings.identities_only = identities_only.unwrap_or(false);
        settings
    }
}

/// The host-key algorithm names a `HostKeyAlgorithms` value allows, in order, out of
/// `supported` (bunker's own list): a comma-separated pattern list (`*`, `?`), or one
/// starting with `+` (append: bunker offers all it supports anyway), `-` (remove the
/// matching ones) or `^` (put the matching ones first), as in OpenSSH.
pub fn host_key_algorithms(value: &str, supported: &[String]) -> Vec<String> {
    let (mode, list) = match value.chars().next() {
        Some(c @ ('+' | '-' | '^')) => (Some(c), &value[1..]),
        _ => (None, value),
    };
    let patterns: Vec<String> = list
        .split(',')
        .map(|p| p.trim().to_ascii_lowercase())
        .filter(|p| !p.is_empty())
        .collect();
    let matches = |name: &String| patterns.iter().any(|p| wildcard_match(p, name));
    match mode {
        Some('+') => supported.to_vec(),
        Some('-') => supported.iter().filter(|n| !matches(n)).cloned().collect(),
        Some('^') => {
            let mut first: Vec<String> = Vec::new();
            for pattern in &patterns {
                for name in supported {
                    if wildcard_match(pattern, name) && !first.contains(name) {
                        first.push(name.clone());
                    }
                }
            }
            let rest: Vec<String> = supported
                .iter()
                .filter(|n| !first.contains(n))
                .cloned()
                .collect();
            first.into_iter().chain(rest).collect()
        }
        _ => {
            let mut allowed: Vec<String> = Vec::new();
            for pattern in &patterns {
                for name in supported {
                    if wildcard_match(pattern, name) && !allowed.contains(name) {
                        allowed.push(name.clone());
                    }
                }
            }
            allowed
        }
    }
}

fn set_once<T>(slot: &mut Option<T>, value: Option<T>) {
    if slot.is_none() {
        *slot = value;
    }
}

fn read_file(
    path: &Path,
    home: &Path,
    inherited: Arc<Condition>,
    depth: usize,
    out: &mut Vec<Directive>,
) -> Result<(), SshConfigError> {
    let text = std::fs::read_to_string(path).map_err(|error| SshConfigError {
        file: path.to_owned(),
        line: 0,
        message: format!("cannot read: {error}"),
    })?;
    parse_text(&text, path, home, inherited, depth, out)
}

fn parse_text(
    text: &str,
    file: &Path,
    home: &Path,
    inherited: Arc<Condition>,
    depth: usize,
    out: &mut Vec<Directive>,
) -> Result<(), SshConfigError> {
    let mut condition = inherited;
    for (index, raw_line) in text.lines().enumerate() {
        let origin = Origin {
            file: file.to_owned(),
            line: index + 1,
        };
        let error = |message: String| SshConfigError {
            file: origin.file.clone(),
            line: origin.line,
            message,
        };
        let Some((keyword, arguments)) = split_directive(raw_line).map_err(error)? else {
            continue;
        };
        match keyword.as_str() {
            "host" => {
                if arguments.is_empty() {
                    return Err(error("`Host` needs at least one pattern".into()));
                }
                condition = Arc::new(Condition::Host(arguments));
            }
            "match" => condition = Arc::new(parse_match(&arguments)),
            "include" => {
                if depth >= MAX_INCLUDE_DEPTH {
                    return Err(error("`Include` nested too deeply".into()));
                }
                for argument in &arguments {
                    for included in include_paths(argument, home) {
                        read_file(&included, home, condition.clone(), depth + 1, out)?;
                    }
                }
            }
            _ => {
                let Some(value) = arguments.into_iter().reduce(|a, b| a + " " + &b) else {
                    return Err(error(format!("`{keyword}` needs a value")));
                };
                out.push(Directive {
                    condition: condition.clone(),
                    keyword,
                    value,
                    origin,
                });
            }
        }
    }
    Ok(())
}

/// `Match all` and `Match host a,b` are understood; anything else never matches.
fn parse_match(arguments: &[String]) -> Condition {
    let lowered: Vec<String> = arguments.iter().map(|a| a.to_ascii_lowercase()).collect();
    match lowered.as_slice() {
        [all] if all == "all" => Condition::MatchAll,
        [host, patterns] if host == "host" => {
            Condition::MatchHost(patterns.split(',').map(str::to_owned).collect())
        }
        _ => {
            tracing::debug!(
                "ssh config: `Match {}` is not supported; its block is ignored",
                arguments.join(" ")
            );
            Condition::Never
        }
    }
}

/// Splits a line into its lower-cased keyword and arguments (quotes removed).
/// Returns `None` for blank lines and comments.
fn split_directive(line: &str) -> Result<Option<(String, Vec<String>)>, String> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return Ok(None);
    }
    let keyword_end = line
        .find(|c: char| c.is_whitespace() || c == '=')
        .unwrap_or(line.len());
    let keyword = line[..keyword_end].to_ascii_lowercase();
    let mut rest = line[keyword_end..].trim_start();
    if let Some(after_equals) = rest.strip_prefix('=') {
        rest = after_equals.trim_start();
    }
    let mut arguments = Vec::new();
    let mut chars = rest.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        if c == '#' {
            break;
        }
        let mut argument = String::new();
        if c == '"' {
            chars.next();
            let mut closed = false;
            for c in chars.by_ref() {
                if c == '"' {
                    closed = true;
                    break;
                }
                argument.push(c);
            }
            if !closed {
                return Err(format!("unterminated quote after `{keyword}`"));
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                argument.push(c);
                chars.next();
            }
        }
        arguments.push(argument);
    }
    Ok(Some((keyword, arguments)))
}

/// Files an `Include` argument names: `~` expanded, relative to `~/.ssh`, `*`/`?` globs in
/// the last component, sorted as OpenSSH does.
fn include_paths(argument: &str, home: &Path) -> Vec<PathBuf> {
    let expanded = expand_tilde(argument, home);
    let path = if Path::new(&expanded).is_absolute() {
        PathBuf::from(expanded)
    } else {
        home.join(".ssh").join(expanded)
    };
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return Vec::new();
    };
    if !name.contains(['*', '?']) {
        return if path.is_file() {
            vec![path]
        } else {
            Vec::new()
        };
    }
    let Some(directory) = path.parent() else {
        return Vec::new();
    };
    let mut matches: Vec<PathBuf> = std::fs::read_dir(directory)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|entry| {
            entry
                .file_name()
                .to_str()
                .is_some_and(|candidate| wildcard_match(name, candidate))
        })
        .map(|entry| entry.path())
        .filter(|p| p.is_file())
        .collect();
    matches.sort();
    matches
}

/// OpenSSH pattern lists: a negated entry that matches excludes the host outright;
/// otherwise any positive match includes it. Case-insensitive.
pub fn pattern_list_matches(patterns: &[String], host: &str) -> bool {
    let host = host.to_ascii_lowercase();
    let mut matched = false;
    for pattern in patterns {
        let pattern = pattern.to_ascii_lowercase();
        if let Some(negated) = pattern.strip_prefix('!') {
            if wildcard_match(negated, &host) {
                return false;
            }
        } else if wildcard_match(&pattern, &host) {
            matched = true;
        }
    }
    matched
}

/// `*` matches any run of characters, `?` exactly one.
pub fn wildcard_match(pattern: &str, text: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().collect();
    let text: Vec<char> = text.chars().collect();
    let (mut p, mut t) = (0, 0);
    let mut backtrack: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some('*') => {
                backtrack = Some((p, t));
                p += 1;
            }
            Some(&c) if c == '?' || c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match backtrack {
                Some((star, star_text)) => {
                    p = star + 1;
                    t = star_text + 1;
                    backtrack = Some((star, star_text + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == '*')
}

fn expand_tilde(value: &str, home: &Path) -> String {
    if value == "~" {
        home.display().to_string()
    } else if let Some(rest) = value.strip_prefix("~/") {
        home.join(rest).display().to_string()
    } else {
        value.to_owned()
    }
}

/// Values substituted into `IdentityFile` / `UserKnownHostsFile` paths.
#[derive(Debug, Clone)]
pub struct PathTokens<'a> {
    pub home: &'a Path,
    /// `%h`: the host name actually connected to.
    pub remote_host: &'a str,
    /// `%n`: the name as given on the command line.
    pub alias: &'a str,
    /// `%r`: the remote user.
    pub remote_user: &'a str,
    /// `%u`: the local user.
    pub local_user: &'a str,
    /// `%p`
    pub port: u16,
}

/// Expands `~`, `%d`, `%h`, `%n`, `%r`, `%u`, `%p` and `%%` as OpenSSH does for paths;
/// a path not absolute after expansion is taken relative to the home directory.
pub fn expand_path_tokens(value: &str, tokens: &PathTokens<'_>) -> PathBuf {
    let value = expand_tilde(value, tokens.home);
    let mut expanded = String::with_capacity(value.len());
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            expanded.push(c);
            continue;
        }
        match chars.next() {
            Some('d') => expanded.push_str(&tokens.home.display().to_string()),
            Some('h') => expanded.push_str(tokens.remote_host),
            Some('n') => expanded.push_str(tokens.alias),
            Some('r') => expanded.push_str(tokens.remote_user),
            Some('u') => expanded.push_str(tokens.local_user),
            Some('p') => expanded.push_str(&tokens.port.to_string()),
            Some('%') => expanded.push('%'),
            Some(other) => {
                expanded.push('%');
                expanded.push(other);
            }
            None => expanded.push('%'),
        }
    }
    let path = PathBuf::from(expanded);
    if path.is_absolute() {
        path
    } else {
        tokens.home.join(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> SshConfig {
        SshConfig::parse(text, Path::new("/home/u/.ssh/config"), Path::new("/home/u")).unwrap()
    }

    #[test]
    fn host_key_algorithms_lists_and_prefixes() {
        let supported: Vec<String> = [
            "ssh-ed25519",
            "ecdsa-sha2-nistp256",
            "rsa-sha2-512",
            "ssh-rsa",
        ]
        .map(str::to_owned)
        .to_vec();
        assert_eq!(
            host_key_algorithms("rsa-sha2-512,ssh-ed25519", &supported),
            ["rsa-sha2-512", "ssh-ed25519"]
        );
        assert_eq!(
            host_key_algorithms("ecdsa-*", &supported),
            ["ecdsa-sha2-nistp256"]
        );
        assert_eq!(
            host_key_algorithms("-ssh-rsa,ecdsa*", &supported),
            ["ssh-ed25519", "rsa-sha2-512"]
        );
        assert_eq!(host_key_algorithms("^ssh-rsa", &supported)[0], "ssh-rsa");
        assert_eq!(host_key_algorithms("+ssh-dss", &supported), supported);
        assert!(host_key_algorithms("ssh-ed25519-cert-v01@openssh.com", &supported).is_empty());
    }

    #[test]
    fn alias_with_hostname_user_port_identity() {
        let config = parse(
            "Host web\n  HostName 10.0.0.5\n  User deploy\n  Port 2222\n  IdentityFile ~/.ssh/web_key\n\
             Host *\n  User fallback\n  IdentityFile ~/.ssh/id_other\n",
        );
        let settings = config.settings_for("web");
        assert_eq!(settings.hostname.as_deref(), Some("10.0.0.5"));
        assert_eq!(settings.user.as_deref(), Some("deploy"));
        assert_eq!(settings.port, Some(2222));
        assert_eq!(
            settings.identity_files,
            vec!["~/.ssh/web_key", "~/.ssh/id_other"]
        );
        let other = config.settings_for("db");
        assert_eq!(other.hostname, None);
        assert_eq!(other.user.as_deref(), Some("fallback"));
    }

    #[test]
    fn first_value_wins_and_keywords_are_case_insensitive() {
        let config = parse(
            "PORT=2200\nHost x\n  port 3300\n  USER \"a b\"\n  StrictHostKeyChecking Accept-New\n\
             Host *\n  ProxyJump none\n  StrictHostKeyChecking no\nHost x\n  ProxyJump bastion\n",
        );
        let settings = config.settings_for("X");
        assert_eq!(settings.port, Some(2200));
        assert_eq!(settings.user.as_deref(), Some("a b"));
        assert!(settings.accept_new_host_keys);
        assert_eq!(settings.proxy, None);
        assert!(!config.settings_for("y").accept_new_host_keys);
    }

    #[test]
    fn negated_patterns_exclude() {
        let config = parse("Host *.lan !secret.lan\n  User lanuser\n");
        assert_eq!(
            config.settings_for("box.lan").user.as_deref(),
            Some("lanuser")
        );
        assert_eq!(config.settings_for("secret.lan").user, None);
        assert_eq!(config.settings_for("box.wan").user, None);
    }

    #[test]
    fn question_mark_and_star_wildcards() {
        assert!(wildcard_match("web?", "web1"));
        assert!(!wildcard_match("web?", "web12"));
        assert!(wildcard_match("*.example.*", "a.example.org"));
        assert!(wildcard_match("a*b*c", "aXXbYYc"));
        assert!(!wildcard_match("a*b*c", "aXXbYY"));
        assert!(wildcard_match("*", ""));
    }

    #[test]
    fn hostname_percent_h_and_match_host() {
        let config =
            parse("Host *.short\n  HostName %h.example.com\nMatch host *.example.com\n  User m\n");
        let settings = config.settings_for("a.short");
        assert_eq!(settings.hostname.as_deref(), Some("a.short.example.com"));
        assert_eq!(settings.user.as_deref(), Some("m"));
    }

    #[test]
    fn unsupported_match_is_ignored_and_proxy_reported() {
        let config = parse("Match exec \"true\"\n  User never\nHost j\n  ProxyJump bastion\n");
        let settings = config.settings_for("j");
        assert_eq!(settings.user, None);
        let proxy = settings.proxy.unwrap();
        assert_eq!(proxy.kind, ProxyKind::Jump);
        assert_eq!(proxy.value, "bastion");
        assert_eq!(proxy.origin.line, 4);
    }

    #[test]
    fn unterminated_quote_names_file_and_line() {
        let error = SshConfig::parse(
            "Host a\n  User \"x\n",
            Path::new("/h/.ssh/config"),
            Path::new("/h"),
        )
        .unwrap_err();
        assert_eq!(
            error.to_string(),
            "/h/.ssh/config:2: unterminated quote after `user`"
        );
    }

    #[test]
    fn include_inlines_files_relative_to_dot_ssh() {
        let home = tempfile::tempdir().unwrap();
        let ssh = home.path().join(".ssh");
        std::fs::create_dir_all(ssh.join("conf.d")).unwrap();
        std::fs::write(ssh.join("conf.d/a.conf"), "Host inc\n  Port 4444\n").unwrap();
        std::fs::write(
            ssh.join("config"),
            "Include conf.d/*.conf\nHost inc\n  Port 5555\n",
        )
        .unwrap();
        let config = SshConfig::load(&ssh.join("config"), home.path()).unwrap();
        assert_eq!(config.settings_for("inc").port, Some(4444));
    }

    #[test]
    fn path_tokens_expand() {
        let tokens = PathTokens {
            home: Path::new("/home/u"),
            remote_host: "10.0.0.5",
            alias: "web",
            remote_user: "deploy",
            local_user: "u",
            port: 22,
        };
        assert_eq!(
            expand_path_tokens("~/.ssh/%r@%h-%p_%n_%u%%", &tokens),
            PathBuf::from("/home/u/.ssh/deploy@10.0.0.5-22_web_u%")
        );
        assert_eq!(
            expand_path_tokens("keys/id", &tokens),
            PathBuf::from("/home/u/keys/id")
        );
    }
}

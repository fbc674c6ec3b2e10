//! Registry authentication: credentials from the Docker CLI configuration and the
//! `WWW-Authenticate` challenge flow (anonymous, Basic, Bearer tokens with scopes).
//!
//! Credentials come from `$DOCKER_CONFIG/config.json` (or `~/.docker/config.json`):
//! `auths` entries, `credHelpers` and `credsStore`, through the `docker_credential`
//! crate. Tokens are cached per scope for the life of the client, so a pull of
//! many blobs asks the token endpoint once per repository.

use std::collections::HashMap;
use std::io::Cursor;
use std::path::PathBuf;

use docker_credential::{CredentialRetrievalError, DockerCredential};

use super::reference::DOCKER_HUB;

/// What the user logged in with.
#[derive(Clone, PartialEq, Eq)]
pub enum Credential {
    Basic {
        username: String,
        password: String,
    },
    /// An OAuth2 refresh token (`identitytoken` in config.json).
    IdentityToken(String),
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Basic { username, .. } => write!(f, "Basic({username}, ***)"),
            Self::IdentityToken(_) => write!(f, "IdentityToken(***)"),
        }
    }
}

/// A parsed `WWW-Authenticate` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
}

/// The access a request needs, in the token-scope syntax of the distribution spec.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Scope(pub String);

impl Scope {
    pub fn pull(repository: &str) -> Self {
        Self(format!("repository:{repository}:pull"))
    }
    pub fn push(repository: &str) -> Self {
        Self(format!("repository:{repository}:pull,push"))
    }
    pub fn catalog() -> Self {
        Self("registry:catalog:*".to_string())
    }
    /// No repository access (the `/v2/` version check).
    pub fn none() -> Self {
        Self(String::new())
    }
}

/// The path of the Docker CLI configuration file.
pub fn docker_config_path() -> Option<PathBuf> {
    crate::settings::docker_config_dir().map(|dir| dir.join("config.json"))
}

/// The keys under which the Docker CLI stores a registry's credentials.
pub fn config_keys(registry: &str) -> Vec<String> {
    if registry == DOCKER_HUB {
        return vec![
            "https://index.docker.io/v1/".to_string(),
            "index.docker.io".to_string(),
            "docker.io".to_string(),
        ];
    }
    vec![
        registry.to_string(),
        format!("https://{registry}"),
        format!("http://{registry}"),
    ]
}

/// Looks up the credentials for `registry`; `Ok(None)` means anonymous.
pub fn credential_for(registry: &str) -> anyhow::Result<Option<Credential>> {
    let Some(path) = docker_config_path() else {
        return Ok(None);
    };
    let text = match std::fs::read(&path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => anyhow::bail!("cannot read {}: {error}", path.display()),
    };
    for key in config_keys(registry) {
        match docker_credential::get_credential_from_reader(Cursor::new(&text), &key) {
            Ok(DockerCredential::UsernamePassword(username, password)) => {
                return Ok(Some(Credential::Basic { username, password }));
            }
            Ok(DockerCredential::IdentityToken(token)) => {
                return Ok(Some(Credential::IdentityToken(token)));
            }
            Err(CredentialRetrievalError::NoCredentialConfigured) => continue,
            Err(CredentialRetrievalError::HelperFailure {
                helper,
                stdout,
                stderr,
            }) => {
                // Helpers answer "credentials not found" for unknown servers: try the next key.
                let output = format!("{stdout}{stderr}");
                if output.to_lowercase().contains("not found") {
                    continue;
                }
                anyhow::bail!(
                    "credential helper docker-credential-{helper} failed for {registry}: {}",
                    output.trim()
                );
            }
            Err(error) => anyhow::bail!(
                "cannot read the credentials for {registry} from {}: {error:?}; fix the file or run `bunker login {registry}`",
                path.display()
            ),
        }
    }
    Ok(None)
}

/// Parses a `WWW-Authenticate` header value.
pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
    let params = parse_params(rest);
    match scheme.to_ascii_lowercase().as_str() {
        "basic" => Some(Challenge::Basic),
        "bearer" => Some(Challenge::Bearer {
            realm: params.get("realm")?.clone(),
            service: params.get("service").cloned(),
            scope: params.get("scope").cloned(),
        }),
        _ => None,
    }
}

/// `key="value", key=value` pairs; quoted values may contain commas.
fn parse_params(text: &str) -> HashMap<String, String> {
    let mut params = HashMap::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if key.is_empty() {
            break;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    other => value.push(other),
                }
            }
        } else {
            value = chars.by_ref().take_while(|c| *c != ',').collect();
        }
        params.insert(key.trim().to_ascii_lowercase(), value.trim().to_string());
    }
    params
}

/// The token endpoint's answer (`token` per the Docker spec, `access_token` per OAuth2).
#[derive(Debug, serde::Deserialize)]
pub struct TokenResponse {
    pub token: Option<String>,
    pub access_token: Option<String>,
}

impl TokenResponse {
    pub fn into_token(self) -> Option<String> {
        self.token
            .or(self.access_token)
            .filter(|token| !token.is_empty())
    }
}

/// Percent-encodes a query or form value.
pub fn url_encode(value: &str) -> String {
    let mut encoded = String::with_capacity(value.len());
    for byte in value.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                encoded.push(byte as char)
            }
            other => encoded.push_str(&format!("%{other:02X}")),
        }
    }
    encoded
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_challenge_with_comma_in_scope() {
        let challenge = parse_challenge(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull,push""#,
        )
        .unwrap();
        assert_eq!(
            challenge,
            Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into()),
                scope: Some("repository:library/alpine:pull,push".into()),
            }
        );
    }

    #[test]
    fn basic_and_unknown_challenges() {
        assert_eq!(
            parse_challenge(r#"Basic realm="Registry Realm""#),
            Some(Challenge::Basic)
        );
        assert_eq!(parse_challenge("Negotiate"), None);
        assert_eq!(parse_challenge("Bearer service=x"), None);
    }

    #[test]
    fn config_keys_for_docker_hub() {
        assert_eq!(config_keys("docker.io")[0], "https://index.docker.io/v1/");
        assert_eq!(config_keys("r.example:5000")[1], "https://r.example:5000");
    }

    #[test]
    fn encodes_query_values() {
        assert_eq!(
            url_encode("repository:a/b:pull,push"),
            "repository%3Aa%2Fb%3Apull%2Cpush"
        );
    }

    #[test]
    fn credentials_are_never_printed() {
        let credential = Credential::Basic {
            username: "user".into(),
            password: "secret".into(),
        };
        assert!(!format!("{credential:?}").contains("secret"));
    }
}

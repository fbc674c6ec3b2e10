//! Where a registry's credentials may be sent, decided in this one place.
//!
//! A registry's answers name other URLs (the token realm of a `WWW-Authenticate`
//! challenge, absolute upload `Location`s, redirects to blob storage). Whoever answers
//! for the registry, or sits between, can name any host there, so credentials must not
//! follow them blindly. The rules:
//!
//! - The registry's `Authorization` (its Basic credentials or a Bearer token issued for
//!   it) goes only on requests to the registry's own origin (scheme, host and port).
//!   Upload URLs and anything else on another host get no `Authorization`; a challenge
//!   from another host is not answered. Redirects: reqwest (0.13) drops `Authorization`
//!   itself when a redirect changes host, port or scheme.
//! - The credentials themselves (user and password, or an identity token) go to the
//!   token realm of the registry's challenge only over HTTPS, or over plain HTTP when the
//!   realm is on the registry's own host and the registry is reached over plain HTTP
//!   anyway (loopback, or named by `--insecure`).
//!
//! The only cross-host uses allowed are the ones a registry's protocol names, over HTTPS:
//! - the token realm of the registry's own `WWW-Authenticate` challenge;
//! - Docker Hub's API host for `docker.io` credentials (once namespace listing comes;
//!   `docker.io` itself is already reached at its API host, the client's origin).

use reqwest::Url;

/// The origin a registry's credentials belong to.
#[derive(Debug, Clone)]
pub struct CredentialScope {
    registry: String,
    origin: Url,
}

impl CredentialScope {
    /// `base_url` is where the registry is reached (`https://host[:port]` or
    /// `http://host[:port]` for loopback or `--insecure` registries).
    pub fn new(registry: &str, base_url: &str) -> anyhow::Result<Self> {
        let origin = Url::parse(base_url)
            .map_err(|error| anyhow::anyhow!("bad registry address {base_url}: {error}"))?;
        Ok(Self {
            registry: registry.to_string(),
            origin,
        })
    }

    /// Whether a request to `url` may carry the registry's `Authorization`.
    pub fn may_authorize(&self, url: &str) -> bool {
        Url::parse(url).is_ok_and(|url| same_origin(&url, &self.origin))
    }

    /// `host:port` of `url`, for messages.
    pub fn host_of(url: &str) -> String {
        Url::parse(url)
            .ok()
            .map(|url| {
                let host = url.host_str().unwrap_or("").to_string();
                match url.port_or_known_default() {
                    Some(port) => format!("{host}:{port}"),
                    None => host,
                }
            })
            .unwrap_or_else(|| url.to_string())
    }

    /// Checks that the registry's credentials may be sent to the token `realm` its
    /// challenge names; the error says why not and what to do.
    pub fn check_token_realm(&self, realm: &str) -> anyhow::Result<()> {
        let Ok(url) = Url::parse(realm) else {
            anyhow::bail!(
                "{} names an unusable token service {realm:?} in its WWW-Authenticate \
                 challenge",
                self.registry
            );
        };
        match url.scheme() {
            "https" => Ok(()),
            "http"
                if self.origin.scheme() == "http" && url.host_str() == self.origin.host_str() =>
            {
                Ok(())
            }
            _ => anyhow::bail!(
                "not sending the credentials for {registry} to the token service {realm}: it \
                 is {what}. bunker sends registry credentials only over HTTPS, or over plain \
                 HTTP to the registry's own host when that is loopback or named by \
                 --insecure. Someone may be redirecting the login; if this really is your \
                 registry's token service, serve it over HTTPS",
                registry = self.registry,
                what = if url.scheme() == "http" {
                    format!(
                        "plain HTTP on another host ({}) than the registry",
                        Self::host_of(realm)
                    )
                } else {
                    format!("not HTTPS ({})", url.scheme())
                },
            ),
        }
    }
}

fn same_origin(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme()
        && a.host_str().map(str::to_ascii_lowercase) == b.host_str().map(str::to_ascii_lowercase)
        && a.port_or_known_default() == b.port_or_known_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorization_only_on_the_registry_origin() {
        let scope = CredentialScope::new("r.example", "https://r.example").unwrap();
        assert!(scope.may_authorize("https://r.example/v2/a/blobs/uploads/1"));
        assert!(scope.may_authorize("https://R.example:443/v2/"));
        assert!(!scope.may_authorize("https://s3.example/upload?sig=1"));
        assert!(!scope.may_authorize("https://r.example:8443/v2/"));
        assert!(!scope.may_authorize("http://r.example/v2/"));
    }

    #[test]
    fn token_realm_over_https_or_plain_on_the_plain_registry_host() {
        let https = CredentialScope::new("r.example", "https://r.example").unwrap();
        assert!(
            https
                .check_token_realm("https://auth.example/token")
                .is_ok()
        );
        assert!(https.check_token_realm("http://r.example/token").is_err());
        let plain = CredentialScope::new("127.0.0.1:5000", "http://127.0.0.1:5000").unwrap();
        assert!(
            plain
                .check_token_realm("http://127.0.0.1:5001/token")
                .is_ok()
        );
        let error = plain
            .check_token_realm("http://127.0.0.2:5001/token")
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("plain HTTP on another host (127.0.0.2:5001)"),
            "{error}"
        );
        assert!(plain.check_token_realm("ftp://127.0.0.1/token").is_err());
    }
}

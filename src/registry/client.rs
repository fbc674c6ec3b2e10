//! The OCI distribution API client: one per registry host, shared by every job.
//!
//! HTTP goes through `reqwest` (rustls with the `ring` provider, so no C
//! toolchain or cmake is needed, the same crypto russh already links; trust roots from
//! [`super::trust_roots`]: the system's, else bundled). reqwest
//! brings connection pooling, redirects to blob storage (dropping the
//! `Authorization` header across hosts, as registries behind S3 need), HTTP/1.1
//! and streaming bodies; writing the same on hyper-util would mean redoing TLS,
//! pooling and redirects by hand.
//!
//! Every request goes through [`RegistryClient::send`], which adds
//! authentication, answers `401` challenges, and retries `408/429/5xx` and
//! dropped connections with backoff (see [`super::retry`]). Credentials go only where
//! [`super::credential_scope`] allows. Docker Hub's
//! `RateLimit-Remaining` header is read on every answer.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use anyhow::{Context, bail};
use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, Response, StatusCode};

use super::auth::{self, Challenge, Credential, Scope, TokenResponse};
use super::credential_scope::CredentialScope;
use super::reference::{DOCKER_HUB, DOCKER_HUB_API_HOST};
use super::retry::{RetryPolicy, is_retryable_status, parse_retry_after};
use super::trust_roots::TrustRoots;

/// How to reach registries.
#[derive(Debug, Clone, Default)]
pub struct ClientOptions {
    /// Use plain HTTP for every registry (always used for localhost/127.0.0.1).
    pub insecure: bool,
    pub retry: RetryPolicy,
}

/// The body of a request, re-creatable for each attempt.
#[derive(Debug, Clone)]
pub enum RequestBody {
    Empty,
    Bytes(Bytes),
    /// `length` bytes of a file from `offset`, streamed.
    File {
        path: PathBuf,
        offset: u64,
        length: u64,
    },
}

/// One request to the registry, described so it can be sent again.
#[derive(Debug, Clone)]
pub struct RegistryRequest {
    pub method: Method,
    /// A path below the registry root (`/v2/...`) or an absolute URL (upload locations).
    pub url: String,
    pub headers: Vec<(HeaderName, String)>,
    pub body: RequestBody,
    pub scope: Scope,
    /// Whether repeating the request after a failure is harmless (not for
    /// upload-session PATCH/PUT, whose caller restarts the whole upload).
    pub retryable: bool,
}

impl RegistryRequest {
    pub fn new(method: Method, url: impl Into<String>, scope: Scope) -> Self {
        Self {
            method,
            url: url.into(),
            headers: Vec::new(),
            body: RequestBody::Empty,
            scope,
            retryable: true,
        }
    }
    /// Marks the request as unsafe to repeat automatically.
    pub fn not_retryable(mut self) -> Self {
        self.retryable = false;
        self
    }
    pub fn header(mut self, name: HeaderName, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }
    pub fn body(mut self, body: RequestBody) -> Self {
        self.body = body;
        self
    }
}

/// Docker Hub's pull allowance as last reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub limit: Option<u64>,
    pub remaining: u64,
    pub window_seconds: Option<u64>,
}

#[derive(Debug, Clone)]
enum AuthScheme {
    Anonymous,
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

/// A client for one registry host.
pub struct RegistryClient {
    http: reqwest::Client,
    registry: String,
    base_url: String,
    credential: Option<Credential>,
    credential_scope: CredentialScope,
    scheme: Mutex<AuthScheme>,
    tokens: Mutex<HashMap<String, String>>,
    rate_limit: Mutex<Option<RateLimit>>,
    retry: RetryPolicy,
}

/// Makes ring the process's rustls crypto provider (reqwest is built without one).
fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Whether `registry` is served over plain HTTP without asking: loopback hosts.
pub fn is_loopback(registry: &str) -> bool {
    let host = registry
        .rsplit_once(':')
        .filter(|(_, port)| port.chars().all(|c| c.is_ascii_digit()))
        .map(|(host, _)| host)
        .unwrap_or(registry);
    matches!(host, "localhost" | "127.0.0.1" | "[::1]" | "::1") || host.ends_with(".localhost")
}

impl RegistryClient {
    /// A client for `registry` (as written in references: `docker.io`, `host:port`),
    /// with the credentials the Docker configuration holds for it.
    pub fn new(registry: &str, options: &ClientOptions) -> anyhow::Result<Arc<Self>> {
        let credential = auth::credential_for(registry)?;
        Self::with_credential(registry, options, credential)
    }

    /// A client with explicit credentials (used by `login` to test them).
    pub fn with_credential(
        registry: &str,
        options: &ClientOptions,
        credential: Option<Credential>,
    ) -> anyhow::Result<Arc<Self>> {
        install_crypto_provider();
        let host = if registry == DOCKER_HUB {
            DOCKER_HUB_API_HOST
        } else {
            registry
        };
        let protocol = if options.insecure || is_loopback(registry) {
            "http"
        } else {
            "https"
        };
        // Without system CA certificates the bundled roots: a plain-HTTP registry must
        // never fail for lack of them, and HTTPS still works on a bare host.
        let http = TrustRoots::for_process()
            .apply(reqwest::Client::builder())
            .user_agent(concat!("bunker/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(30))
            .read_timeout(Duration::from_secs(120))
            .pool_max_idle_per_host(16)
            .build()
            .context("cannot set up the HTTP client")?;
        let base_url = format!("{protocol}://{host}");
        Ok(Arc::new(Self {
            http,
            registry: registry.to_string(),
            credential_scope: CredentialScope::new(registry, &base_url)?,
            base_url,
            credential,
            scheme: Mutex::new(AuthScheme::Anonymous),
            tokens: Mutex::new(HashMap::new()),
            rate_limit: Mutex::new(None),
            retry: options.retry.clone(),
        }))
    }

    /// The registry name this client talks to.
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The retry policy (the blob cache uses it for mid-stream resumes).
    pub fn retry_policy(&self) -> &RetryPolicy {
        &self.retry
    }

    /// Docker Hub's allowance from the last answer that carried it.
    pub fn rate_limit(&self) -> Option<RateLimit> {
        *self.rate_limit.lock().expect("rate limit lock")
    }

    /// An absolute URL for a registry path or a `Location` header value.
    pub fn url(&self, path_or_url: &str) -> String {
        if path_or_url.starts_with("http://") || path_or_url.starts_with("https://") {
            path_or_url.to_string()
        } else if path_or_url.starts_with('/') {
            format!("{}{}", self.base_url, path_or_url)
        } else {
            format!("{}/{}", self.base_url, path_or_url)
        }
    }

    /// Sends a request with authentication and retries; returns any final answer
    /// (the caller checks the status, see [`check_status`]).
    pub async fn send(&self, request: &RegistryRequest) -> anyhow::Result<Response> {
        let mut attempt = 1;
        let mut challenges_answered = 0;
        loop {
            let built = self.build(request).await?;
            let outcome = built.send().await;
            let response = match outcome {
                Ok(response) => response,
                Err(error)
                    if request.retryable
                        && attempt < self.retry.max_attempts
                        && is_transient(&error) =>
                {
                    let wait = self.retry.delay(attempt, None);
                    tracing::warn!(
                        "{} {}: {error}; retrying in {:.1}s",
                        request.method,
                        self.url(&request.url),
                        wait.as_secs_f64()
                    );
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                    continue;
                }
                Err(error) => {
                    return Err(anyhow::Error::new(error).context(format!(
                        "{} {} failed after {attempt} attempt(s); is the registry {} reachable{}?",
                        request.method,
                        self.url(&request.url),
                        self.registry,
                        if self.base_url.starts_with("https") {
                            " over HTTPS (use --insecure for a plain-HTTP registry)"
                        } else {
                            ""
                        }
                    )));
                }
            };
            self.record_rate_limit(response.headers());
            let status = response.status();
            let url = self.url(&request.url);
            if (status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN)
                && !self.credential_scope.may_authorize(&url)
            {
                bail!(
                    "{} {url} answered {status}: {} is another host than the registry {}, and \
                     bunker does not send the registry's credentials to other hosts. The \
                     registry (or something in between) sent bunker there; check its \
                     configuration (upload URLs, redirects)",
                    request.method,
                    CredentialScope::host_of(&url),
                    self.registry
                );
            }
            if status == StatusCode::UNAUTHORIZED && challenges_answered < 1 {
                let header = response
                    .headers()
                    .get(reqwest::header::WWW_AUTHENTICATE)
                    .and_then(|value| value.to_str().ok())
                    .map(str::to_string);
                if let Some(challenge) = header.as_deref().and_then(auth::parse_challenge)
                    && self.answer_challenge(challenge, &request.scope).await?
                {
                    challenges_answered += 1;
                    continue;
                }
                return Ok(response);
            }
            let may_repeat = request.retryable || status == StatusCode::TOO_MANY_REQUESTS;
            if is_retryable_status(status) && may_repeat && attempt < self.retry.max_attempts {
                let retry_after = response
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|value| value.to_str().ok())
                    .and_then(|value| parse_retry_after(value, SystemTime::now()));
                let exhausted = status == StatusCode::TOO_MANY_REQUESTS
                    && self.rate_limit().is_some_and(|limit| limit.remaining == 0);
                let wait = if exhausted && retry_after.is_none() {
                    Duration::from_secs(60)
                } else {
                    self.retry.delay(attempt, retry_after)
                };
                if exhausted {
                    eprintln!(
                        "{}: pull rate limit reached (0 pulls left); pausing {}s instead of failing",
                        self.registry,
                        wait.as_secs()
                    );
                } else {
                    tracing::warn!(
                        "{} {}: {status}; retrying in {:.1}s",
                        request.method,
                        self.url(&request.url),
                        wait.as_secs_f64()
                    );
                    attempt += 1;
                }
                tokio::time::sleep(wait).await;
                continue;
            }
            return Ok(response);
        }
    }

    /// Sends a request and fails unless the status is a success.
    pub async fn send_ok(&self, request: &RegistryRequest) -> anyhow::Result<Response> {
        let response = self.send(request).await?;
        check_status(
            response,
            &format!("{} {}", request.method, self.url(&request.url)),
        )
        .await
    }

    async fn build(&self, request: &RegistryRequest) -> anyhow::Result<reqwest::RequestBuilder> {
        let url = self.url(&request.url);
        let mut builder = self.http.request(request.method.clone(), &url);
        for (name, value) in &request.headers {
            builder = builder.header(name, value);
        }
        builder = match &request.body {
            RequestBody::Empty => builder,
            RequestBody::Bytes(bytes) => builder.body(bytes.clone()),
            RequestBody::File {
                path,
                offset,
                length,
            } => {
                use tokio::io::{AsyncReadExt, AsyncSeekExt};
                let mut file = tokio::fs::File::open(path)
                    .await
                    .with_context(|| format!("cannot open {}", path.display()))?;
                file.seek(std::io::SeekFrom::Start(*offset)).await?;
                let stream =
                    tokio_util::io::ReaderStream::with_capacity(file.take(*length), 256 * 1024);
                builder
                    .header(reqwest::header::CONTENT_LENGTH, length.to_string())
                    .body(reqwest::Body::wrap_stream(stream))
            }
        };
        if !self.credential_scope.may_authorize(&url) {
            // Upload URLs and other hosts never see the registry's Authorization.
            return Ok(builder);
        }
        let scheme = self.scheme.lock().expect("auth lock").clone();
        Ok(match scheme {
            AuthScheme::Anonymous => builder,
            AuthScheme::Basic => match &self.credential {
                Some(Credential::Basic { username, password }) => {
                    builder.basic_auth(username, Some(password))
                }
                _ => builder,
            },
            AuthScheme::Bearer { realm, service } => {
                let cached = self
                    .tokens
                    .lock()
                    .expect("token lock")
                    .get(&request.scope.0)
                    .cloned();
                // A new scope on a token registry: ask for its token up front
                // instead of collecting a 401 first.
                let token = match cached {
                    Some(token) => Some(token),
                    None if !request.scope.0.is_empty() => {
                        let token = self
                            .fetch_token(&realm, service.as_deref(), &request.scope.0)
                            .await?;
                        self.tokens
                            .lock()
                            .expect("token lock")
                            .insert(request.scope.0.clone(), token.clone());
                        Some(token)
                    }
                    None => None,
                };
                match token {
                    Some(token) => builder.bearer_auth(token),
                    None => builder,
                }
            }
        })
    }

    /// Reacts to a `401` challenge; `Ok(true)` when the request should be repeated.
    async fn answer_challenge(&self, challenge: Challenge, scope: &Scope) -> anyhow::Result<bool> {
        match challenge {
            Challenge::Basic => {
                if !matches!(self.credential, Some(Credential::Basic { .. })) {
                    bail!(
                        "{} requires a user name and password: run `bunker login {}`",
                        self.registry,
                        self.registry
                    );
                }
                // Concurrent requests may all meet the challenge before the first
                // switches the scheme: each repeats once with the credentials.
                *self.scheme.lock().expect("auth lock") = AuthScheme::Basic;
                Ok(true)
            }
            Challenge::Bearer {
                realm,
                service,
                scope: challenged_scope,
            } => {
                let scope_text = if scope.0.is_empty() {
                    challenged_scope.unwrap_or_default()
                } else {
                    scope.0.clone()
                };
                let token = self
                    .fetch_token(&realm, service.as_deref(), &scope_text)
                    .await?;
                self.tokens
                    .lock()
                    .expect("token lock")
                    .insert(scope.0.clone(), token);
                *self.scheme.lock().expect("auth lock") = AuthScheme::Bearer { realm, service };
                Ok(true)
            }
        }
    }

    async fn fetch_token(
        &self,
        realm: &str,
        service: Option<&str>,
        scope: &str,
    ) -> anyhow::Result<String> {
        if self.credential.is_some() {
            self.credential_scope.check_token_realm(realm)?;
        }
        let mut attempt = 1;
        loop {
            let builder = match &self.credential {
                Some(Credential::IdentityToken(refresh_token)) => {
                    let mut form = format!(
                        "grant_type=refresh_token&client_id=bunker&refresh_token={}",
                        auth::url_encode(refresh_token)
                    );
                    if let Some(service) = service {
                        form.push_str(&format!("&service={}", auth::url_encode(service)));
                    }
                    if !scope.is_empty() {
                        // OAuth2 form: space-separated scopes in one field.
                        form.push_str(&format!("&scope={}", auth::url_encode(scope)));
                    }
                    self.http
                        .post(realm)
                        .header(
                            reqwest::header::CONTENT_TYPE,
                            "application/x-www-form-urlencoded",
                        )
                        .body(form)
                }
                credential => {
                    let mut query = Vec::new();
                    if let Some(service) = service {
                        query.push(format!("service={}", auth::url_encode(service)));
                    }
                    for single in scope.split(' ').filter(|s| !s.is_empty()) {
                        query.push(format!("scope={}", auth::url_encode(single)));
                    }
                    let separator = if realm.contains('?') { '&' } else { '?' };
                    let url = if query.is_empty() {
                        realm.to_string()
                    } else {
                        format!("{realm}{separator}{}", query.join("&"))
                    };
                    let builder = self.http.get(url);
                    match credential {
                        Some(Credential::Basic { username, password }) => {
                            builder.basic_auth(username, Some(password))
                        }
                        _ => builder,
                    }
                }
            };
            let response = match builder.send().await {
                Ok(response) => response,
                Err(error) if attempt < self.retry.max_attempts && is_transient(&error) => {
                    tokio::time::sleep(self.retry.delay(attempt, None)).await;
                    attempt += 1;
                    continue;
                }
                Err(error) => {
                    return Err(anyhow::Error::new(error)
                        .context(format!("cannot reach the token service {realm}")));
                }
            };
            let status = response.status();
            if is_retryable_status(status) && attempt < self.retry.max_attempts {
                tokio::time::sleep(self.retry.delay(attempt, None)).await;
                attempt += 1;
                continue;
            }
            if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
                bail!(
                    "{} refused the credentials for {scope:?} ({status}); check them with `bunker login {}`",
                    self.registry,
                    self.registry
                );
            }
            if !status.is_success() {
                bail!("token service {realm} answered {status} for scope {scope:?}");
            }
            let body: TokenResponse = response
                .json()
                .await
                .with_context(|| format!("token service {realm} sent an unreadable answer"))?;
            return body
                .into_token()
                .with_context(|| format!("token service {realm} sent no token"));
        }
    }

    fn record_rate_limit(&self, headers: &HeaderMap) {
        let Some(remaining) = headers.get("ratelimit-remaining").and_then(parse_limit) else {
            return;
        };
        let limit = headers.get("ratelimit-limit").and_then(parse_limit);
        *self.rate_limit.lock().expect("rate limit lock") = Some(RateLimit {
            limit: limit.map(|(count, _)| count),
            remaining: remaining.0,
            window_seconds: remaining.1,
        });
    }

    /// `GET /v2/`: checks that the registry answers and the credentials work.
    pub async fn ping(&self) -> anyhow::Result<()> {
        let request = RegistryRequest::new(Method::GET, "/v2/", Scope::none());
        let response = self.send(&request).await?;
        if response.status() == StatusCode::UNAUTHORIZED {
            bail!(
                "{} refused the credentials (401 Unauthorized); check the user name and password",
                self.registry
            );
        }
        check_status(response, &format!("GET {}", self.url("/v2/"))).await?;
        Ok(())
    }
}

/// `100;w=21600` → (100, Some(21600)).
fn parse_limit(value: &HeaderValue) -> Option<(u64, Option<u64>)> {
    let text = value.to_str().ok()?;
    let mut parts = text.split(';');
    let count = parts.next()?.trim().parse().ok()?;
    let window = parts
        .filter_map(|part| part.trim().strip_prefix("w="))
        .find_map(|window| window.parse().ok());
    Some((count, window))
}

fn is_transient(error: &reqwest::Error) -> bool {
    error.is_connect() || error.is_timeout() || error.is_request() || error.is_body()
}

/// Turns a non-success answer into an error carrying the registry's own message
/// (`{"errors":[{"code","message"}]}`).
pub async fn check_status(response: Response, what: &str) -> anyhow::Result<Response> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let body = response.text().await.unwrap_or_default();
    let detail = serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|value| {
            let errors = value.get("errors")?.as_array()?.clone();
            Some(
                errors
                    .iter()
                    .map(|error| {
                        format!(
                            "{} {}",
                            error.get("code").and_then(|c| c.as_str()).unwrap_or(""),
                            error.get("message").and_then(|m| m.as_str()).unwrap_or("")
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("; "),
            )
        })
        .unwrap_or_else(|| body.chars().take(200).collect());
    let hint = match status {
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
            " (check the credentials: `bunker login REGISTRY`)"
        }
        StatusCode::NOT_FOUND => " (check the repository, tag or digest)",
        _ => "",
    };
    bail!("{what}: {status} {}{hint}", detail.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts_use_plain_http() {
        assert!(is_loopback("localhost:5000"));
        assert!(is_loopback("127.0.0.1:5999"));
        assert!(is_loopback("127.0.0.1"));
        assert!(!is_loopback("registry.example.com"));
        assert!(!is_loopback("10.0.0.1:5000"));
    }

    #[test]
    fn rate_limit_header_values() {
        let value = HeaderValue::from_static("76;w=21600");
        assert_eq!(parse_limit(&value), Some((76, Some(21600))));
        let value = HeaderValue::from_static("0");
        assert_eq!(parse_limit(&value), Some((0, None)));
    }

    #[test]
    fn docker_hub_uses_its_api_host() {
        let client =
            RegistryClient::with_credential("docker.io", &ClientOptions::default(), None).unwrap();
        assert_eq!(client.url("/v2/"), "https://registry-1.docker.io/v2/");
        let client =
            RegistryClient::with_credential("127.0.0.1:5999", &ClientOptions::default(), None)
                .unwrap();
        assert_eq!(client.url("/v2/x"), "http://127.0.0.1:5999/v2/x");
    }
}

//! Pulling an image on the engine, with the workstation's registry credentials.
//!
//! The engine pulls, but the credentials live on the workstation: bunker reads
//! them from `~/.docker/config.json` (`auths`, `credsStore`, `credHelpers`,
//! through the `docker_credential` crate, so credential helpers work) and sends
//! them with the request, as `docker pull` does. Errors name the image and the
//! registry and say what to try next.

use std::collections::HashMap;
use std::path::PathBuf;

use bollard::Docker;
use bollard::auth::DockerCredentials;
use bollard::query_parameters::CreateImageOptionsBuilder;
use futures_util::StreamExt;

use crate::image::reference::{DOCKER_HUB, ImageReference};
use crate::progress::Task;

/// The key Docker stores Docker Hub credentials under.
const DOCKER_HUB_CREDENTIAL_KEY: &str = "https://index.docker.io/v1/";

/// The registry host of an image name (`docker.io` for Docker Hub names).
pub fn registry_of(image: &str) -> String {
    ImageReference::parse(image)
        .map(|reference| reference.registry().to_string())
        .unwrap_or_else(|_| DOCKER_HUB.to_string())
}

/// The name to pull: Docker pulls every tag of a name without tag or digest,
/// so the implicit `latest` is made explicit.
pub fn pull_reference(image: &str) -> String {
    if image.contains('@') {
        return image.to_string();
    }
    let last_component = image.rsplit('/').next().unwrap_or(image);
    if last_component.contains(':') {
        image.to_string()
    } else {
        format!("{image}:latest")
    }
}

fn docker_config_file() -> Option<PathBuf> {
    crate::settings::docker_config_dir().map(|dir| dir.join("config.json"))
}

/// Credentials for `registry` from the Docker config, `None` when none are configured.
/// `Err` when the config file is unreadable or a credential helper fails.
pub async fn registry_credentials(registry: &str) -> Result<Option<DockerCredentials>, String> {
    let Some(config) = docker_config_file().filter(|path| path.is_file()) else {
        return Ok(None);
    };
    let server = if registry == DOCKER_HUB {
        DOCKER_HUB_CREDENTIAL_KEY.to_string()
    } else {
        registry.to_string()
    };
    let lookup_server = server.clone();
    let found =
        tokio::task::spawn_blocking(move || docker_credential::get_credential(&lookup_server))
            .await
            .map_err(|error| format!("credential lookup for {registry} stopped: {error}"))?;
    use docker_credential::{CredentialRetrievalError as Failure, DockerCredential};
    match found {
        Ok(DockerCredential::UsernamePassword(username, password)) => Ok(Some(DockerCredentials {
            username: Some(username),
            password: Some(password),
            serveraddress: Some(server),
            ..Default::default()
        })),
        Ok(DockerCredential::IdentityToken(token)) => Ok(Some(DockerCredentials {
            identitytoken: Some(token),
            serveraddress: Some(server),
            ..Default::default()
        })),
        Err(Failure::NoCredentialConfigured | Failure::ConfigNotFound) => Ok(None),
        Err(Failure::ConfigReadError) => Err(format!(
            "cannot read registry credentials from {}: it is not valid Docker config JSON; fix or remove it",
            config.display()
        )),
        Err(Failure::HelperCommunicationError) => Err(format!(
            "cannot get the credentials for {registry} configured in {}: the credential helper \
             (`credHelpers`/`credsStore`) could not be run; install that docker-credential-* \
             program on PATH or remove it from the file",
            config.display()
        )),
        Err(error) => Err(format!(
            "cannot get the credentials for {registry} configured in {}: {error}",
            config.display()
        )),
    }
}

/// Credentials for every registry among `images`, keyed by registry as the
/// build endpoint's `X-Registry-Config` expects; registries without credentials are left out.
pub async fn credentials_for_images(
    images: &[String],
) -> Result<HashMap<String, DockerCredentials>, String> {
    let mut credentials = HashMap::new();
    for image in images {
        let registry = registry_of(image);
        if credentials.contains_key(&registry) {
            continue;
        }
        if let Some(found) = registry_credentials(&registry).await? {
            let key = if registry == DOCKER_HUB {
                DOCKER_HUB_CREDENTIAL_KEY.to_string()
            } else {
                registry.clone()
            };
            credentials.insert(key, found);
        }
    }
    Ok(credentials)
}

/// Why a pull failed: the workstation's own configuration, or the engine's
/// pull from the registry (which an older copy on the engine may stand in for).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PullFailure {
    /// The Docker config or a credential helper is broken: fix it first.
    Configuration(String),
    /// The engine could not pull from the registry.
    Registry(String),
}

impl PullFailure {
    pub fn message(&self) -> &str {
        match self {
            PullFailure::Configuration(message) | PullFailure::Registry(message) => message,
        }
    }
}

/// Pulls `image` (for `who`, e.g. `web/app`) on the engine, showing layer progress on `task`.
pub async fn pull_image(
    docker: &Docker,
    who: &str,
    image: &str,
    platform: Option<&str>,
    task: &Task,
) -> Result<(), PullFailure> {
    let registry = registry_of(image);
    let credentials = registry_credentials(&registry)
        .await
        .map_err(|error| PullFailure::Configuration(format!("{who}: pull {image}: {error}")))?;
    let had_credentials = credentials.is_some();
    let reference = pull_reference(image);
    let mut options = CreateImageOptionsBuilder::default().from_image(&reference);
    if let Some(platform) = platform {
        options = options.platform(platform);
    }
    let mut stream = docker.create_image(Some(options.build()), None, credentials);
    while let Some(message) = stream.next().await {
        match message {
            Ok(info) => {
                let status = info.status.unwrap_or_default();
                let line = match info.id {
                    Some(id) => format!("{id}: {status}"),
                    None => status,
                };
                if !line.is_empty() {
                    task.set_message(&line);
                    if info.progress_detail.is_none()
                        || info
                            .progress_detail
                            .is_some_and(|detail| detail.total.is_none())
                    {
                        task.detail(format!("{who}: {line}"));
                    }
                }
            }
            Err(error) => {
                return Err(PullFailure::Registry(describe_pull_error(
                    who,
                    image,
                    &registry,
                    had_credentials,
                    &error,
                )));
            }
        }
    }
    Ok(())
}

fn describe_pull_error(
    who: &str,
    image: &str,
    registry: &str,
    had_credentials: bool,
    error: &bollard::errors::Error,
) -> String {
    let message = match error {
        bollard::errors::Error::DockerResponseServerError { message, .. } => message.clone(),
        bollard::errors::Error::DockerStreamError { error } => error.clone(),
        other => other.to_string(),
    };
    let lowered = message.to_lowercase();
    let hint = if lowered.contains("unauthorized")
        || lowered.contains("authentication required")
        || lowered.contains("no basic auth credentials")
        || lowered.contains("access denied")
        || lowered.contains("denied")
    {
        if had_credentials {
            format!(
                "the credentials for {registry} in the Docker config were refused; run `docker login {registry}` again"
            )
        } else {
            format!(
                "{registry} wants credentials; run `docker login {registry}` on this workstation"
            )
        }
    } else if lowered.contains("not found") || lowered.contains("manifest unknown") {
        format!("check that {image} exists on {registry} (name and tag)")
    } else {
        format!("check that the engine can reach {registry}")
    };
    format!("{who}: pull {image} from {registry} failed: {message}; {hint}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registries_are_found_as_docker_finds_them() {
        assert_eq!(registry_of("busybox"), "docker.io");
        assert_eq!(registry_of("user/app:1"), "docker.io");
        assert_eq!(registry_of("ghcr.io/org/app:1"), "ghcr.io");
        assert_eq!(
            registry_of("127.0.0.1:5999/bunker/busybox:1.36"),
            "127.0.0.1:5999"
        );
        assert_eq!(registry_of("localhost/app"), "localhost");
        assert_eq!(registry_of("index.docker.io/library/redis"), "docker.io");
        let digest = format!("sha256:{}", "a".repeat(64));
        assert_eq!(registry_of(&format!("quay.io/x@{digest}")), "quay.io");
    }

    #[test]
    fn the_implicit_latest_tag_is_made_explicit() {
        assert_eq!(pull_reference("busybox"), "busybox:latest");
        assert_eq!(
            pull_reference("localhost:5000/app"),
            "localhost:5000/app:latest"
        );
        assert_eq!(
            pull_reference("localhost:5000/app:1"),
            "localhost:5000/app:1"
        );
        assert_eq!(pull_reference("app@sha256:abc"), "app@sha256:abc");
    }

    #[test]
    fn pull_errors_name_image_registry_and_next_step() {
        let error = bollard::errors::Error::DockerResponseServerError {
            status_code: 500,
            message: "Head \"https://r.example/v2/app/manifests/1\": no basic auth credentials"
                .into(),
        };
        let text = describe_pull_error("web/app", "r.example/app:1", "r.example", false, &error);
        assert!(
            text.starts_with("web/app: pull r.example/app:1 from r.example failed:"),
            "{text}"
        );
        assert!(
            text.ends_with("run `docker login r.example` on this workstation"),
            "{text}"
        );
        let missing = bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            message: "manifest for r.example/app:9 not found: manifest unknown".into(),
        };
        let text = describe_pull_error("web/app", "r.example/app:9", "r.example", false, &missing);
        assert!(
            text.contains("check that r.example/app:9 exists on r.example"),
            "{text}"
        );
    }
}

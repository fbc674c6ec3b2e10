//! Which platform to take from a multi-platform image when the user names
//! none: the target's, not the workstation's. In order: `--platform`;
//! `DOCKER_DEFAULT_PLATFORM` (the docker CLI's variable); the engine's own
//! platform when an engine is configured (`--host`, `DOCKER_HOST`,
//! `--context`/`DOCKER_CONTEXT` or the current Docker context, except the
//! local `default` one); else this workstation's. Only the third case
//! connects to an engine, so with none configured the choice costs nothing.

use std::path::PathBuf;

use anyhow::Context;
use serde::Serialize;

use super::manifest::Platform;
use crate::engine::EngineSettings;
use crate::engine::target::{self, TargetInputs};

/// What decided the platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PlatformSource {
    Flag,
    DockerDefaultPlatform,
    Engine,
    Workstation,
}

/// The platform chosen, with why, for the report.
#[derive(Debug, Clone, Serialize)]
pub struct PlatformChoice {
    #[serde(serialize_with = "as_text")]
    pub platform: Platform,
    pub chosen_by: PlatformSource,
    /// A sentence for people, e.g. `the engine's (ssh://… from DOCKER_HOST)`.
    pub reason: String,
}

fn as_text<S: serde::Serializer>(platform: &Platform, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(platform)
}

/// Everything the choice may look at.
#[derive(Debug, Clone)]
pub struct PlatformInputs {
    /// `--platform`.
    pub flag: Option<String>,
    /// `DOCKER_DEFAULT_PLATFORM`.
    pub docker_default_platform: Option<String>,
    pub target: TargetInputs,
    pub engine: EngineSettings,
    pub home: PathBuf,
}

impl PlatformInputs {
    /// From the flags, the engine settings and the process environment.
    pub fn from_environment(flag: Option<&str>, engine: &EngineSettings) -> anyhow::Result<Self> {
        let home = crate::engine::home_dir()?;
        Ok(Self {
            flag: flag.map(str::to_string),
            docker_default_platform: std::env::var("DOCKER_DEFAULT_PLATFORM")
                .ok()
                .filter(|value| !value.trim().is_empty()),
            target: TargetInputs::from_environment(
                engine.host.as_deref(),
                engine.context.as_deref(),
                &home,
            ),
            engine: engine.clone(),
            home,
        })
    }
}

/// Chooses the platform; connects to the engine only when one is configured.
pub async fn choose_platform(inputs: &PlatformInputs) -> anyhow::Result<PlatformChoice> {
    if let Some(text) = &inputs.flag {
        return Ok(PlatformChoice {
            platform: Platform::parse(text)?,
            chosen_by: PlatformSource::Flag,
            reason: "given with --platform".into(),
        });
    }
    if let Some(text) = &inputs.docker_default_platform {
        return Ok(PlatformChoice {
            platform: Platform::parse(text).context("DOCKER_DEFAULT_PLATFORM")?,
            chosen_by: PlatformSource::DockerDefaultPlatform,
            reason: "from DOCKER_DEFAULT_PLATFORM".into(),
        });
    }
    let workstation = |why: &str| PlatformChoice {
        platform: Platform::host(),
        chosen_by: PlatformSource::Workstation,
        reason: format!("this workstation's ({why})"),
    };
    let configured = inputs.target.host_flag.is_some()
        || inputs.target.context_flag.is_some()
        || inputs.target.docker_host.is_some()
        || inputs.target.docker_context.is_some();
    let target = match target::resolve(&inputs.target) {
        Ok(target) => target,
        // Nothing set and no current context: no engine to ask.
        Err(error) if !configured && error.to_string().starts_with("no Docker engine") => {
            return Ok(workstation("no engine is configured"));
        }
        Err(error) => {
            return Err(error.context(
                "cannot tell which engine's platform to take; name one with --platform os/arch or DOCKER_DEFAULT_PLATFORM",
            ));
        }
    };
    if target.context_name() == Some("default") {
        return Ok(workstation(
            "the Docker context `default` is the local engine",
        ));
    }
    let engine = crate::engine::connect_to(&target, &inputs.engine, &inputs.home)
        .await
        .with_context(|| {
            format!(
                "cannot read the platform of the engine {} (from {}); name one with --platform os/arch or DOCKER_DEFAULT_PLATFORM",
                target.url, target.source
            )
        })?;
    let platform = Platform::parse(&engine.facts.platform)
        .with_context(|| format!("the engine {} reports an odd platform", engine.target))?;
    Ok(PlatformChoice {
        platform,
        chosen_by: PlatformSource::Engine,
        reason: format!(
            "the engine's ({} from {})",
            engine.target,
            engine.selected_by()
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs(home: &tempfile::TempDir) -> PlatformInputs {
        let home = home.path().to_path_buf();
        PlatformInputs {
            flag: None,
            docker_default_platform: None,
            target: TargetInputs {
                docker_config_dir: home.join(".docker"),
                ..TargetInputs::default()
            },
            engine: EngineSettings::default(),
            home,
        }
    }

    #[tokio::test]
    async fn flag_beats_variable_beats_workstation() {
        let home = tempfile::tempdir().unwrap();
        let mut inputs = inputs(&home);
        let chosen = choose_platform(&inputs).await.unwrap();
        assert_eq!(chosen.chosen_by, PlatformSource::Workstation);
        assert_eq!(chosen.platform, Platform::host());
        assert!(
            chosen.reason.contains("no engine is configured"),
            "{chosen:?}"
        );

        inputs.docker_default_platform = Some("linux/arm64".into());
        let chosen = choose_platform(&inputs).await.unwrap();
        assert_eq!(chosen.chosen_by, PlatformSource::DockerDefaultPlatform);
        assert_eq!(chosen.platform.to_string(), "linux/arm64");

        inputs.flag = Some("linux/s390x".into());
        let chosen = choose_platform(&inputs).await.unwrap();
        assert_eq!(chosen.chosen_by, PlatformSource::Flag);
        assert_eq!(chosen.platform.to_string(), "linux/s390x");
    }

    #[tokio::test]
    async fn default_context_is_the_workstation_and_bad_values_are_named() {
        let home = tempfile::tempdir().unwrap();
        let mut inputs = inputs(&home);
        inputs.target.docker_context = Some("default".into());
        let chosen = choose_platform(&inputs).await.unwrap();
        assert_eq!(chosen.chosen_by, PlatformSource::Workstation);
        assert!(chosen.reason.contains("`default`"), "{chosen:?}");

        inputs.target.docker_context = Some("nowhere".into());
        let error = format!("{:#}", choose_platform(&inputs).await.unwrap_err());
        assert!(error.contains("--platform os/arch"), "{error}");
        assert!(error.contains("nowhere"), "{error}");

        inputs.docker_default_platform = Some("arm64".into());
        let error = format!("{:#}", choose_platform(&inputs).await.unwrap_err());
        assert!(error.contains("DOCKER_DEFAULT_PLATFORM"), "{error}");
    }
}

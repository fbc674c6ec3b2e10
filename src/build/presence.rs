//! `BUILD=false`: check that every needed image is already on the engine.
//!
//! An offline server cannot build or pull. With `BUILD=false` (environment or the
//! projects root `.env_<context>`), `image-build` changes nothing and instead
//! inspects every image the plan would produce, so a missing image is found now
//! rather than when `docker compose up --no-build` fails halfway through an install.

use bollard::Docker;

use super::plan::{BuildPlan, ImageAction};

/// One image the projects need.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct NeededImage {
    pub project: String,
    pub image: String,
    pub services: Vec<String>,
    /// How a run with `BUILD=true` would get it.
    pub action: ImageAction,
    /// The engine's image ID when present.
    pub id: Option<String>,
}

/// Which needed images are on the engine and which are not.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct PresenceReport {
    pub present: Vec<NeededImage>,
    pub missing: Vec<NeededImage>,
}

/// Inspects every pulled or built image of `plan` (base images are not needed to run).
pub async fn check_presence(docker: &Docker, plan: &BuildPlan) -> Result<PresenceReport, String> {
    let mut report = PresenceReport::default();
    for job in plan.jobs().filter(|job| job.action != ImageAction::Base) {
        let mut needed = NeededImage {
            project: job.project.clone(),
            image: job.image.clone(),
            services: job.services.clone(),
            action: job.action,
            id: None,
        };
        match docker.inspect_image(&job.image).await {
            Ok(inspect) => {
                needed.id = inspect.id;
                report.present.push(needed);
            }
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => report.missing.push(needed),
            Err(error) => {
                return Err(format!(
                    "cannot inspect {} ({}) on the engine: {error}",
                    job.image,
                    job.display_name()
                ));
            }
        }
    }
    Ok(report)
}

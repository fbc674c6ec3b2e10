//! `image-archive --deployed`: the running images the catalog's own archive does
//! not cover, and the names they are archived under.
//!
//! A running image is already archived when its project catalogs its name and
//! the name still points to it. Otherwise it is archived too:
//! - its tag moved (or the name is gone): bunker tags the running image ID on the
//!   engine as `<repo>:<tag>-deployed-<12hex>` ([`super::naming`]), archives it
//!   under that name and records the original name (`deployed_as`) in its
//!   manifest entry, so `image-restore` gives the containers' name back;
//! - it is not cataloged: under its own name, for its catalog project, else for
//!   its Compose project, else for `_containers` (not started by Compose).
//!
//! A container created from a bare image ID has no name to archive it under: it
//! is named in a note and left out.

use bollard::Docker;

use super::compare::{Comparison, short};
use super::naming::deployed_name;
use crate::catalog::{Catalog, ImageSource};
use crate::image::reference::canonical_name;

/// The manifest project of running containers not started by Compose.
pub const STANDALONE_PROJECT: &str = "_containers";

/// One running image to archive besides the catalog's.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DeployedImage {
    /// The manifest project it is archived for.
    pub project: String,
    /// The name it is exported and archived under.
    pub reference: String,
    /// The name the containers use, when `reference` is a name bunker gave it.
    pub deployed_as: Option<String>,
    /// The image ID the containers run.
    pub image_id: String,
    /// Services (or container names, outside Compose) that run it.
    pub services: Vec<String>,
    /// True when the catalog builds the image (the manifest action `build+save`).
    pub built: bool,
}

/// The running images to archive besides the catalog's, and notes on those left out.
pub fn images_to_archive(
    comparison: &Comparison,
    catalog: &Catalog,
) -> (Vec<DeployedImage>, Vec<String>) {
    let mut images: Vec<DeployedImage> = Vec::new();
    let mut notes = Vec::new();
    for deployed in &comparison.containers {
        let container = &deployed.container;
        let moved = container.tag_moved();
        if deployed.cataloged && !moved {
            continue;
        }
        let (reference, deployed_as) = if moved {
            match deployed_name(&container.image, &container.image_id) {
                Some(name) => (name, Some(container.image.clone())),
                None => {
                    notes.push(format!(
                        "container {} runs {} without a name; it is not archived (start it \
                         from a named image)",
                        container.name,
                        short(&container.image_id)
                    ));
                    continue;
                }
            }
        } else {
            (container.image.clone(), None)
        };
        let project = deployed
            .catalog_project
            .clone()
            .or_else(|| container.project.clone())
            .unwrap_or_else(|| STANDALONE_PROJECT.to_string());
        let service = container
            .service
            .clone()
            .unwrap_or_else(|| container.name.clone());
        let canonical = canonical_name(&container.image);
        let built = catalog.entries.iter().any(|entry| {
            entry.project == project
                && entry.source == ImageSource::Build
                && entry.image.as_deref().map(canonical_name) == Some(canonical.clone())
        });
        match images
            .iter_mut()
            .find(|image| image.project == project && image.reference == reference)
        {
            Some(image) => {
                if !image.services.contains(&service) {
                    image.services.push(service);
                }
            }
            None => images.push(DeployedImage {
                project,
                reference,
                deployed_as,
                image_id: container.image_id.clone(),
                services: vec![service],
                built,
            }),
        }
    }
    (images, notes)
}

/// Gives every running image whose tag moved its own name on the engine, so it can
/// be exported under it. Tagging an ID with a name it already has changes nothing.
pub async fn name_on_engine(docker: &Docker, images: &[DeployedImage]) -> Result<(), String> {
    for image in images.iter().filter(|image| image.deployed_as.is_some()) {
        crate::restore::engine_state::tag(docker, &image.image_id, &image.reference).await?;
    }
    Ok(())
}

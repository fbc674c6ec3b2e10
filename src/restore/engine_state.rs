//! What the engine already holds, by content rather than by name.
//!
//! A name match alone says nothing (the old tool skipped `postgres:16` whenever
//! some `postgres:16` was there, and missed `docker.io/…` names entirely because
//! it compared the text of `docker images`). Asking the engine to inspect the
//! name resolves it the way Docker does, and what it reports is compared with
//! what the archive recorded ([`crate::image::identity`]: the ID where the
//! engine's store makes it comparable, else the layers and the config).

use bollard::Docker;
use bollard::query_parameters::{RemoveImageOptions, TagImageOptions};

use crate::image::identity::{EngineImage, ImageStore, RecordedIdentity, compare};
use crate::image::reference::ImageReference;

/// What `name` (a name or an image ID) resolves to on the engine, `None` when there is no such image.
pub async fn inspect(docker: &Docker, name: &str) -> Result<Option<EngineImage>, String> {
    match docker.inspect_image(name).await {
        Ok(inspect) => Ok(EngineImage::from_inspect(&inspect)),
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => Ok(None),
        Err(error) => Err(format!("cannot inspect {name} on the engine: {error}")),
    }
}

/// An image on the engine with one of the IDs `recorded` may have (or one of
/// `more_ids`) whose content is the recorded image; its engine ID.
pub async fn find_recorded(
    docker: &Docker,
    recorded: &RecordedIdentity,
    more_ids: &[String],
    store: ImageStore,
) -> Result<Option<String>, String> {
    let mut ids = recorded.candidate_ids();
    ids.extend(more_ids.iter().cloned());
    for id in ids {
        if let Some(image) = inspect(docker, &id).await?
            && compare(recorded, &image, store).is_same()
        {
            return Ok(Some(image.id));
        }
    }
    Ok(None)
}

/// The image ID `name` resolves to on the engine, `None` when there is no such image.
pub async fn image_id(docker: &Docker, name: &str) -> Result<Option<String>, String> {
    match docker.inspect_image(name).await {
        Ok(inspect) => Ok(inspect.id),
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => Ok(None),
        Err(error) => Err(format!("cannot inspect {name} on the engine: {error}")),
    }
}

/// Whether an image with ID `id` exists.
pub async fn id_exists(docker: &Docker, id: &str) -> Result<bool, String> {
    Ok(image_id(docker, id).await?.is_some())
}

/// Tags the image `id` as `name`.
pub async fn tag(docker: &Docker, id: &str, name: &str) -> Result<(), String> {
    let reference = ImageReference::parse(name).map_err(|error| error.to_string())?;
    let Some(tag) = reference.tag.clone() else {
        return Err(format!(
            "{name} has no tag, so {id} cannot be given that name; the image is on the engine as {id}"
        ));
    };
    let repository = reference.familiar_repository();
    docker
        .tag_image(
            id,
            Some(TagImageOptions {
                repo: Some(repository),
                tag: Some(tag),
            }),
        )
        .await
        .map_err(|error| format!("cannot tag {id} as {name}: {error}"))
}

/// Removes the image `id` with all its names (what a failed load created).
pub async fn remove(docker: &Docker, id: &str) -> Result<(), String> {
    docker
        .remove_image(
            id,
            Some(RemoveImageOptions {
                force: true,
                noprune: false,
                platforms: None,
            }),
            None,
        )
        .await
        .map(|_| ())
        .map_err(|error| format!("cannot remove {id}: {error}"))
}

/// `sha256:0123456789ab…` → `0123456789ab`, as `docker images` shows IDs.
pub fn short_id(id: &str) -> &str {
    let hex = id.strip_prefix("sha256:").unwrap_or(id);
    &hex[..hex.len().min(12)]
}

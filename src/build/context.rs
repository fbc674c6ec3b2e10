//! The request body for a local build: the context directory as a tar stream.
//!
//! The tar itself is [`crate::image::build_context`]'s (Docker's `.dockerignore`
//! rules, bounded memory); this module adapts it to bollard's body type and
//! handles `dockerfile_inline`, which is written to a temporary file outside the
//! context and sent the way Docker sends any Dockerfile that lives outside it.

use std::io::Write;
use std::path::PathBuf;

use super::plan::BuildSpec;
use crate::image::build_context::context_stream;

/// bollard's request body type, which it names only through `BollardRequest`.
pub type EngineBody = <bollard::BollardRequest as RequestBody>::Body;

/// Names the body type of an `http::Request`.
pub trait RequestBody {
    type Body;
}

impl<B> RequestBody for http::Request<B> {
    type Body = B;
}

/// A context ready to send: the body, the `dockerfile` parameter, and the
/// temporary inline Dockerfile that must live until the body is sent.
pub struct ContextBody {
    pub body: EngineBody,
    pub dockerfile: String,
    pub inline_dockerfile: Option<tempfile::NamedTempFile>,
}

/// Tars `spec`'s context (on a blocking thread: listing a big context takes a while).
pub async fn context_body(spec: &BuildSpec) -> Result<ContextBody, String> {
    let context_dir = PathBuf::from(&spec.info.context);
    let inline_dockerfile = match &spec.info.dockerfile_inline {
        Some(text) => Some(write_inline_dockerfile(text)?),
        None => None,
    };
    let dockerfile = match &inline_dockerfile {
        Some(file) => file.path().display().to_string(),
        None => spec.info.dockerfile.clone(),
    };
    let context = tokio::task::spawn_blocking(move || context_stream(&context_dir, &dockerfile))
        .await
        .map_err(|error| {
            format!(
                "tarring the build context {} stopped: {error}",
                spec.info.context
            )
        })?
        .map_err(|error| error.to_string())?;
    Ok(ContextBody {
        dockerfile: context.dockerfile.clone(),
        body: bollard::body_try_stream(context),
        inline_dockerfile,
    })
}

fn write_inline_dockerfile(text: &str) -> Result<tempfile::NamedTempFile, String> {
    let mut file = tempfile::Builder::new()
        .prefix("bunker-inline-")
        .suffix(".Dockerfile")
        .tempfile()
        .map_err(|error| {
            format!("cannot write the inline Dockerfile to a temporary file: {error}")
        })?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.flush())
        .map_err(|error| {
            format!(
                "cannot write the inline Dockerfile to {}: {error}",
                file.path().display()
            )
        })?;
    Ok(file)
}

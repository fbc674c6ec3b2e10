//! The request body for a local build: the context directory as a tar stream.
//!
//! TEMPORARY: until `crate::image::build_context::context_stream` (which honours
//! `.dockerignore` with Docker's rules) lands from the `interp` branch, this tars
//! the whole context in memory. It is replaced by a call to that stream.

use bollard::body_full;
use bytes::Bytes;

use super::plan::BuildSpec;

/// bollard's request body type, which it names only through `BollardRequest`.
pub type EngineBody = <bollard::BollardRequest as RequestBody>::Body;

/// Names the body type of an `http::Request`.
pub trait RequestBody {
    type Body;
}

impl<B> RequestBody for http::Request<B> {
    type Body = B;
}

/// Name of the Dockerfile bunker adds to the context for `dockerfile_inline`.
pub const INLINE_DOCKERFILE_NAME: &str = ".bunker-inline.Dockerfile";

/// The tarred context of `spec` and the Dockerfile's path inside it.
pub fn context_body(spec: &BuildSpec) -> Result<(EngineBody, String), String> {
    let mut builder = tar::Builder::new(Vec::new());
    builder.follow_symlinks(false);
    builder
        .append_dir_all(".", &spec.context)
        .map_err(|error| format!("cannot read the build context {}: {error}", spec.context))?;
    let dockerfile = match &spec.dockerfile_inline {
        Some(text) => {
            let mut header = tar::Header::new_gnu();
            header.set_size(text.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            builder
                .append_data(&mut header, INLINE_DOCKERFILE_NAME, text.as_bytes())
                .map_err(|error| format!("cannot add the inline Dockerfile: {error}"))?;
            INLINE_DOCKERFILE_NAME.to_string()
        }
        None => spec.dockerfile.clone(),
    };
    let bytes = builder
        .into_inner()
        .map_err(|error| format!("cannot tar the build context {}: {error}", spec.context))?;
    Ok((body_full(Bytes::from(bytes)), dockerfile))
}

//! The image model shared by every source and sink: references, docker-archive
//! and OCI layout readers/writers.

pub mod build_context;
pub mod dockerignore;
pub mod identity;
pub mod reference;

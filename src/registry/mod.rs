//! Registry work without any Docker engine: an OCI distribution API client
//! (auth, retries, manifests, a resumable content-addressed blob cache) and the
//! jobs built on it (list tags, catalog, pull, push, export, sync).

pub mod archived;
pub mod auth;
pub mod blob_cache;
pub mod client;
pub mod docker_save;
pub mod export;
pub mod image;
pub mod login;
pub mod manifest;
pub mod mapping;
pub mod oci_layout;
pub mod pull;
pub mod push;
pub mod reference;
pub mod retry;
pub mod sync;
pub mod tags;

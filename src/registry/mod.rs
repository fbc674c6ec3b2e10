//! Registry work without any Docker engine, over the OCI distribution API.
//!
//! The client core: [`reference`] (image names), [`auth`] (docker config, cred
//! helpers, Basic/Bearer challenges), [`retry`] (backoff, `Retry-After`),
//! [`client`] (one HTTP client per registry, rate limits; TLS roots from
//! [`trust_roots`]), [`manifest`] (the four
//! manifest media types, platform selection), [`platform_choice`] (the default
//! platform: the target engine's) and [`blob_cache`] (resumable,
//! verified, content-addressed downloads under `<archive>/blobs/sha256`).
//!
//! The jobs built on it: [`tags`] (list-tags, catalog), [`image`] + [`pull`]
//! (registry → docker-save stream [`docker_save`], OCI layout [`oci_layout`] or
//! directory), [`archived`] + [`mapping`] + [`push`] (archive → registry with
//! renaming and conflict checks), [`export`] (registry-storage layout),
//! [`sync`] (many repositories in one run) and [`login`].

pub mod archived;
pub mod auth;
pub mod blob_cache;
pub mod client;
pub mod credential_scope;
pub mod disk_space;
pub mod docker_save;
pub mod export;
pub mod image;
pub mod login;
pub mod manifest;
pub mod mapping;
pub mod oci_layout;
pub mod platform_choice;
pub mod pull;
pub mod push;
pub mod reference;
pub mod retry;
pub mod state_file;
pub mod sync;
pub mod tags;
pub mod trust_roots;

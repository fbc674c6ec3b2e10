//! `install`: bring projects up with Docker Compose on the (remote) engine.
//!
//! - [`compose`]: finds the Docker Compose v2 binary on the workstation and builds
//!   the `up -d` command line for a project.
//! - [`run`]: per project, makes sure the images are there (with `BUILD=false` by
//!   checking, otherwise by building and pulling with `image-build`'s code), then
//!   runs Compose.
//! - [`containers`]: checks afterwards that the containers really run.
//!
//! Compose talks to the engine through [`crate::engine::Engine::forward_to_local_socket`]:
//! a unix socket on the workstation, private to this user, forwarded over bunker's
//! own SSH session. Compose gets `DOCKER_HOST=unix://<that socket>` rather than
//! `DOCKER_HOST=ssh://…`, so no system `ssh` binary, ssh-agent or known_hosts
//! setup is needed for it, bunker's host-key checks apply to every byte, and the
//! run opens one SSH connection instead of one per Compose request.

pub mod compose;
pub mod containers;
pub mod run;

pub use compose::{ComposeCommand, find_compose};
pub use run::{InstallOptions, InstallReport, ProjectResult, install};

//! The cross-engine disaster drills of issue #12: the old server runs one Docker, the
//! rebuilt one another. Everything `projects/` needs is archived from one engine, the
//! registries stop, the other engine is replaced by a fresh one with no images, and
//! `image-restore` plus `BUILD=false bunker install --all` onto it must bring every
//! project back: from Docker 20.10 (classic store) to Docker 26 (containerd image store),
//! and the reverse. The restored images must have the archived layers (diff IDs); their
//! IDs differ between the stores (config digest versus manifest digest).
//!
//! Each drill runs on its own private sandbox with both engines, never on the shared one.
//!
//! Before the identity fix of #12 both drills failed at the restore with "the load
//! finished but the engine has no image sha256:… (recorded ID)".

mod common;
mod drill_support;

use drill_support::{PrivateSandbox, archive_wipe_restore_install};

#[test]
fn archive_from_docker_20_restore_onto_docker_26_containerd_store() {
    let private = PrivateSandbox::start(true);
    archive_wipe_restore_install(&private, 1, 2);
}

#[test]
fn archive_from_docker_26_containerd_store_restore_onto_docker_20() {
    let private = PrivateSandbox::start(true);
    archive_wipe_restore_install(&private, 2, 1);
}

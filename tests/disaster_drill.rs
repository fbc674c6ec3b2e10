//! The disaster drill: everything `projects/` needs is archived with `bunker
//! image-archive` (and checked with `bunker archive verify`), the engine is destroyed
//! (data directory deleted) and replaced by a fresh one with no images while the
//! registry is down, then `image-restore` and `BUILD=false bunker install --all` bring
//! every project back up, over real SSH. `projects/duo` has two configured instances
//! (context `default`): each is archived with its own images and comes back up as its
//! own Compose project.
//!
//! It runs on its own private sandbox (another state directory, other ports), never on
//! the shared one that other tests use, and tears it down at the end, also on failure.
//! With `BUNKER_TEST_ENGINE=2` the drill runs on engine 2 (Docker 26, containerd image
//! store) of that private sandbox.

mod common;
mod drill_support;

use common::test_engine;
use drill_support::{PrivateSandbox, archive_wipe_restore_install};

#[test]
fn archive_destroy_restore_install_brings_every_project_back() {
    let engine = test_engine();
    let private = PrivateSandbox::start(engine == 2);
    archive_wipe_restore_install(&private, engine, engine);
}

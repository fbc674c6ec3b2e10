//! `image-build`: put every cataloged image on the engine, built or pulled.
//!
//! [`plan`] turns a catalog into ordered image jobs per project (what `--dry-run`
//! prints and `image-archive` archives); [`run`] executes a plan on an engine with
//! [`hook`], [`pull`] and [`build`]; [`presence`] checks, for `BUILD=false`, that
//! the images are already there instead.

#[allow(clippy::module_inception)]
pub mod build;
pub mod context;
pub mod hook;
pub mod plan;
pub mod policy;
pub mod presence;
pub mod pull;
pub mod run;

pub use build::BuildFlags;
pub use plan::{
    BuildPlan, BuildSpec, ImageAction, ImageJob, PlanOptions, ProjectPlan, Selection, plan,
};
pub use policy::PullMode;
pub use presence::{NeededImage, PresenceReport, check_presence};
pub use run::{
    Outcome, RunOptions, RunReport, RunWatch, StaleImage, StepKind, StepResult, execute_job,
    run_plan, run_plan_interruptible, run_plan_watched,
};

//! `image-build`: put every cataloged image on the engine, built or pulled.
//!
//! [`plan`] turns a catalog into ordered image jobs per project (what `--dry-run`
//! prints and `image-archive` archives); [`run`] executes a plan on an engine with
//! [`hook`], [`pull`] and [`build`]; [`presence`] checks, for `BUILD=false`, that
//! the images are already there instead.

pub mod plan;

pub use plan::{BuildPlan, BuildSpec, ImageAction, ImageJob, PlanOptions, ProjectPlan, Selection};

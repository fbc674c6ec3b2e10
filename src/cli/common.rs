//! Pieces the image commands share, so each flag, setting and loading step is
//! written once: the `--project`/`--exclude` flags, the build flags (`--pull`,
//! `--pull-only`, `--no-cache`), `--jobs`, the settings of the projects root (context,
//! root env file, BUILD, archive directory) and "catalog → build plan".
use std::path::{Path, PathBuf};

use clap::Args;
use indexmap::IndexMap;

use super::GlobalArgs;
use crate::build::{BuildFlags, BuildPlan, PlanOptions, Selection, plan};
use crate::catalog::{Catalog, CatalogOptions, load_catalog};
use crate::interrupt::Interrupt;
use crate::progress::Progress;
use crate::settings;

/// `--project NAME` / `--exclude NAME`, both repeatable.
#[derive(Debug, Clone, Args)]
pub struct ProjectSelectionArgs {
    /// Only these projects (repeatable).
    #[arg(long = "project", value_name = "NAME")]
    pub projects: Vec<String>,
    /// Skip these projects (repeatable).
    #[arg(long = "exclude", value_name = "NAME")]
    pub excludes: Vec<String>,
    /// Only these configured instances (`.env_<context>_<NAME>`, repeatable); projects
    /// without configured instances are then left out.
    #[arg(long = "instance", value_name = "NAME", conflicts_with = "defaults")]
    pub instances: Vec<String>,
    /// Ignore configured instances: resolve every project from `.env-dist`, the root
    /// env file and the environment, as for generic images.
    #[arg(long)]
    pub defaults: bool,
}

impl ProjectSelectionArgs {
    pub fn selection(&self) -> Selection {
        Selection {
            only: self.projects.clone(),
            exclude: self.excludes.clone(),
            instances: self.instances.clone(),
            defaults: self.defaults,
        }
    }
}

/// How images are pulled and built: `--pull`, `--pull-only`, `--no-cache`
/// (image-build and image-archive build the same plan the same way).
#[derive(Debug, Clone, Args)]
pub struct BuildFlagArgs {
    /// Pull the base images of the Dockerfiles first and refresh them during builds.
    #[arg(long)]
    pub pull: bool,
    /// Only the images that are pulled: build nothing.
    #[arg(long)]
    pub pull_only: bool,
    /// Build without the engine's layer cache.
    #[arg(long)]
    pub no_cache: bool,
}

impl BuildFlagArgs {
    /// The build plan's options; with BUILD=false nothing is pulled first.
    pub fn plan_options(&self, build_enabled: bool) -> PlanOptions {
        PlanOptions {
            pull_base_images: self.pull && build_enabled,
            pull_only: self.pull_only,
        }
    }

    /// What every build passes to the engine.
    pub fn build_flags(&self) -> BuildFlags {
        BuildFlags {
            pull: self.pull,
            no_cache: self.no_cache,
        }
    }
}

/// `--jobs N` / `-j N` (at least 1, default 2). What runs N at once differs per command,
/// so each names it with `mut_arg("jobs", ...)`.
#[derive(Debug, Clone, Args)]
pub struct JobsArgs {
    /// How many run at once.
    #[arg(long, short = 'j', value_name = "N", default_value_t = 2,
          value_parser = clap::value_parser!(u16).range(1..))]
    pub jobs: u16,
}

impl JobsArgs {
    pub fn get(&self) -> usize {
        usize::from(self.jobs)
    }
}

/// Settings of the projects root for the chosen Docker context.
pub struct RootSettings {
    pub context: String,
    /// Variables of `<projects_dir>/.env_<context>` (empty when it does not exist).
    pub root_env: IndexMap<String, String>,
    /// `BUILD` from the environment or the root env file is not `false`/`0`.
    pub build_enabled: bool,
}

impl RootSettings {
    pub fn load(global: &GlobalArgs) -> anyhow::Result<Self> {
        let context = settings::context_name(global.context.as_deref());
        let root_env = settings::root_env(&global.projects_dir, &context)
            .map_err(|error| anyhow::anyhow!("{error}"))?;
        let build_enabled = settings::build_enabled(&root_env);
        Ok(Self {
            context,
            root_env,
            build_enabled,
        })
    }

    /// The archive base directory: `explicit`, else `IMAGE_ARCHIVE_DIR` (environment,
    /// then root env file), else `./_archive/images`.
    pub fn archive_dir(&self, explicit: Option<&Path>) -> PathBuf {
        settings::archive_dir(explicit, &self.root_env)
    }
}

/// Loads the catalog of the selected projects and plans their images.
pub fn load_build_plan(
    global: &GlobalArgs,
    context: &str,
    selection: &Selection,
    options: PlanOptions,
) -> (Catalog, BuildPlan) {
    let catalog = load_catalog(&CatalogOptions {
        projects_dir: global.projects_dir.clone(),
        context: Some(context.to_string()),
        only: selection.only.clone(),
        exclude: selection.exclude.clone(),
        environment: std::env::vars().collect(),
        defaults: selection.defaults,
        instances: selection.instances.clone(),
    });
    let build_plan = plan(&catalog, selection, options);
    (catalog, build_plan)
}

/// Progress for a long command: bars on a terminal, plain lines when `--json`
/// owns stdout.
pub fn command_progress(json: bool, verbose: bool) -> Progress {
    if json {
        Progress::plain(verbose)
    } else {
        Progress::auto(verbose)
    }
}

/// Starts listening for Ctrl-C/SIGTERM; the first one prints the stop line,
/// ending with what the command keeps, through `progress`.
pub fn listen_for_stop(progress: &Progress, kept: &'static str) -> anyhow::Result<Interrupt> {
    let progress = progress.clone();
    Interrupt::listen(move |signal| progress.println(signal.stop_line(kept)))
}

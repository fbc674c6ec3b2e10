//! Pieces the image commands share, so each flag, setting and loading step is
//! written once: the `--project`/`--exclude` flags, the settings of the projects
//! root (context, root env file, BUILD, archive directory) and "catalog → build plan".
use std::path::{Path, PathBuf};

use clap::Args;
use indexmap::IndexMap;

use super::GlobalArgs;
use crate::build::{BuildPlan, PlanOptions, Selection, plan};
use crate::catalog::{Catalog, CatalogOptions, load_catalog};
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
}

impl ProjectSelectionArgs {
    pub fn selection(&self) -> Selection {
        Selection {
            only: self.projects.clone(),
            exclude: self.excludes.clone(),
        }
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
    });
    let build_plan = plan(&catalog, selection, options);
    (catalog, build_plan)
}

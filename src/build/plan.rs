//! The build plan: from a catalog, a project selection and the flags to an
//! ordered list of image jobs per project.
//!
//! The plan is the single source of truth for which images a run produces:
//! `image-build --dry-run` prints it, a real run executes it, and
//! `image-archive` archives its images. So a dry run cannot name an image a
//! real run would not produce.
//!
//! Inside a project, pulls come first (Dockerfile base images, then service
//! images), then builds in dependency order: a build whose Dockerfile starts
//! `FROM` an image another service of the same project builds comes after it,
//! whatever the names. Catalog order breaks ties, never the alphabet.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use crate::catalog::{BuildInfo, Catalog, CatalogEntry, ImageSource};
use crate::image::reference::canonical_name;

/// What a job does to get its image onto the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageAction {
    /// Pull a service image from its registry.
    Pull,
    /// Pull a base image named in a Dockerfile (`--pull`).
    Base,
    /// Build a service image from its context.
    Build,
}

impl ImageAction {
    /// Short lower-case name used in every listing.
    pub fn as_str(self) -> &'static str {
        match self {
            ImageAction::Pull => "pull",
            ImageAction::Base => "base",
            ImageAction::Build => "build",
        }
    }
}

/// How to build one image: the catalog's build section of its service.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BuildSpec {
    /// The service whose build section this is (the first one when several share the image).
    pub service: String,
    /// The section itself (context, Dockerfile, args with `None` taken from bunker's
    /// environment or omitted, target, the images and services it starts from).
    #[serde(flatten)]
    pub info: BuildInfo,
}

/// One image to put on the engine.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ImageJob {
    pub project: String,
    /// The image name exactly as Docker Compose uses it; the build tags it so.
    pub image: String,
    pub action: ImageAction,
    /// Services that run this image (for base images: the services built from it).
    pub services: Vec<String>,
    /// Registry host for pulls (`docker.io` for Docker Hub names).
    pub registry: Option<String>,
    pub platform: Option<String>,
    /// Present for `ImageAction::Build`.
    pub build: Option<BuildSpec>,
    /// Images built earlier in the same project that this build starts from.
    pub depends_on: Vec<String>,
    /// The Compose `pull_policy` of a pull job's services (the one that pulls
    /// most when they differ; see [`super::policy`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pull_policy: Option<String>,
}

impl ImageJob {
    /// `project/service` (or `project/service1,service2`), the name errors use.
    pub fn display_name(&self) -> String {
        if self.services.is_empty() {
            self.project.clone()
        } else {
            format!("{}/{}", self.project, self.services.join(","))
        }
    }
}

/// Everything one project needs, in the order it must happen.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ProjectPlan {
    pub project: String,
    /// The configured instance this plan is for (one plan per instance), if any.
    pub instance: Option<String>,
    /// The Compose project name the catalog resolved (see `CatalogEntry::compose_project`).
    pub compose_project: Option<String>,
    /// The project directory (where `make build-hook-pre` runs).
    pub directory: PathBuf,
    /// The env files the catalog applied, lowest precedence first (the hook gets them too).
    pub env_files: Vec<PathBuf>,
    pub jobs: Vec<ImageJob>,
    /// Catalog errors and planning conflicts; each makes the project fail.
    pub problems: Vec<String>,
}

impl ProjectPlan {
    /// `project` or `project@instance`, for messages.
    pub fn label(&self) -> String {
        match &self.instance {
            Some(instance) => format!("{}@{instance}", self.project),
            None => self.project.clone(),
        }
    }

    /// True when at least one image of the project is built (so its hook runs).
    pub fn has_builds(&self) -> bool {
        self.jobs.iter().any(|job| job.action == ImageAction::Build)
    }
}

/// The whole run: projects in catalog order.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct BuildPlan {
    pub projects: Vec<ProjectPlan>,
    /// Catalog errors that belong to no selected project (e.g. unreadable projects directory).
    pub problems: Vec<String>,
}

impl BuildPlan {
    /// Every job of every project, in plan order.
    pub fn jobs(&self) -> impl Iterator<Item = &ImageJob> {
        self.projects.iter().flat_map(|project| project.jobs.iter())
    }
}

/// Which projects to plan.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// Only these projects (all when empty).
    pub only: Vec<String>,
    pub exclude: Vec<String>,
    /// Only these configured instances (all when empty).
    pub instances: Vec<String>,
    /// `--defaults`: ignore configured instances.
    pub defaults: bool,
}

impl Selection {
    pub fn includes(&self, project: &str) -> bool {
        (self.only.is_empty() || self.only.iter().any(|name| name == project))
            && !self.exclude.iter().any(|name| name == project)
    }
}

/// Flags that change which jobs exist.
#[derive(Debug, Clone, Copy, Default)]
pub struct PlanOptions {
    /// `--pull`: pull the Dockerfiles' base images first.
    pub pull_base_images: bool,
    /// `--pull-only`: no builds (base images are still pulled with `--pull`).
    pub pull_only: bool,
}

/// Turns the catalog into the ordered plan.
pub fn plan(catalog: &Catalog, selection: &Selection, options: PlanOptions) -> BuildPlan {
    // One plan per project, or per configured instance of a project.
    let mut project_order: Vec<(String, Option<String>)> = Vec::new();
    for unit in catalog
        .projects
        .iter()
        .map(|project| (&project.name, &project.instance))
        .chain(
            catalog
                .entries
                .iter()
                .map(|entry| (&entry.project, &entry.instance)),
        )
    {
        let unit = (unit.0.clone(), unit.1.clone());
        if selection.includes(&unit.0) && !project_order.contains(&unit) {
            project_order.push(unit);
        }
    }
    let mut build_plan = BuildPlan::default();
    for error in &catalog.errors {
        if !project_order
            .iter()
            .any(|(project, _)| *project == error.project)
            && selection.includes(&error.project)
        {
            build_plan.problems.push(describe_catalog_error(error));
        }
    }
    for (project, instance) in project_order {
        build_plan.projects.push(plan_project(
            catalog,
            &project,
            instance.as_deref(),
            options,
        ));
    }
    build_plan
}

fn plan_project(
    catalog: &Catalog,
    project: &str,
    instance: Option<&str>,
    options: PlanOptions,
) -> ProjectPlan {
    let info = catalog
        .projects
        .iter()
        .find(|info| info.name == project && info.instance.as_deref() == instance);
    let directory = info
        .and_then(|info| info.compose_file.parent().map(PathBuf::from))
        .unwrap_or_else(|| catalog.projects_dir.join(project));
    let env_files = info.map(|info| info.env_files.clone()).unwrap_or_default();
    let mut problems: Vec<String> = catalog
        .errors
        .iter()
        .filter(|error| {
            error.project == project
                && (error.instance.is_none() || error.instance.as_deref() == instance)
        })
        .map(describe_catalog_error)
        .collect();
    let entries: Vec<&CatalogEntry> = catalog
        .entries
        .iter()
        .filter(|entry| entry.project == project && entry.instance.as_deref() == instance)
        .collect();

    let mut builds: Vec<ImageJob> = Vec::new();
    let mut pulls: Vec<ImageJob> = Vec::new();
    let mut bases: Vec<ImageJob> = Vec::new();
    for entry in &entries {
        let Some(image) = entry.image.clone() else {
            let already_reported = catalog
                .errors
                .iter()
                .any(|error| error.project == project && error.service == entry.service);
            if !already_reported {
                problems.push(format!(
                    "{project}/{}: the image name could not be resolved; run `bunker image-catalog --project {project}` to see why",
                    entry.service.as_deref().unwrap_or("?")
                ));
            }
            continue;
        };
        match (entry.source, &entry.build) {
            (ImageSource::Build, Some(build)) => {
                add_build(&mut builds, &mut problems, entry, image, build);
            }
            (ImageSource::Build, None) => problems.push(format!(
                "{project}/{}: cataloged as built but has no build section",
                entry.service.as_deref().unwrap_or("?")
            )),
            (ImageSource::Pull, _) => add_pull(&mut pulls, entry, image, ImageAction::Pull),
            (ImageSource::Base, _) => add_pull(&mut bases, entry, image, ImageAction::Base),
        }
    }

    // An image the project builds is never pulled; a pull job that names it is the
    // same image seen from the service that runs it.
    let built: HashSet<String> = builds.iter().map(|job| image_key(&job.image)).collect();
    for pull in pulls
        .iter()
        .filter(|pull| built.contains(&image_key(&pull.image)))
    {
        if let Some(build) = builds
            .iter_mut()
            .find(|build| image_key(&build.image) == image_key(&pull.image))
        {
            merge_services(&mut build.services, &pull.services);
        }
    }
    pulls.retain(|pull| !built.contains(&image_key(&pull.image)));
    let pulled: HashSet<String> = pulls.iter().map(|job| image_key(&job.image)).collect();
    bases.retain(|base| {
        let key = image_key(&base.image);
        !built.contains(&key) && !pulled.contains(&key)
    });

    let mut jobs = Vec::new();
    if options.pull_base_images {
        jobs.extend(bases);
    }
    jobs.extend(pulls);
    if !options.pull_only {
        jobs.extend(order_builds(project, builds, &mut problems));
    }
    ProjectPlan {
        project: project.to_string(),
        instance: instance.map(str::to_string),
        compose_project: info.and_then(|info| info.compose_name.clone()),
        directory,
        env_files,
        jobs,
        problems,
    }
}

fn add_build(
    builds: &mut Vec<ImageJob>,
    problems: &mut Vec<String>,
    entry: &CatalogEntry,
    image: String,
    build: &BuildInfo,
) {
    let service = entry.service.clone().unwrap_or_default();
    let spec = BuildSpec {
        service: service.clone(),
        info: build.clone(),
    };
    if let Some(existing) = builds
        .iter_mut()
        .find(|job| image_key(&job.image) == image_key(&image))
    {
        let existing_spec = existing.build.as_ref().map(|spec| BuildSpec {
            service: service.clone(),
            ..spec.clone()
        });
        if existing_spec.as_ref() != Some(&spec) || existing.platform != entry.platform {
            problems.push(format!(
                "{}/{service}: builds image {image} with other build settings than service {}; \
                 only one build can own a name: give one of them its own `image:`",
                entry.project,
                existing.services.first().map(String::as_str).unwrap_or("?"),
            ));
        }
        merge_services(&mut existing.services, std::slice::from_ref(&service));
        return;
    }
    builds.push(ImageJob {
        project: entry.project.clone(),
        image,
        action: ImageAction::Build,
        services: vec![service],
        registry: None,
        platform: entry.platform.clone(),
        build: Some(spec),
        depends_on: Vec::new(),
        pull_policy: None,
    });
}

fn add_pull(jobs: &mut Vec<ImageJob>, entry: &CatalogEntry, image: String, action: ImageAction) {
    let services: Vec<String> = match action {
        ImageAction::Base => entry.base_for.clone(),
        _ => entry.service.iter().cloned().collect(),
    };
    if let Some(existing) = jobs
        .iter_mut()
        .find(|job| image_key(&job.image) == image_key(&image))
    {
        merge_services(&mut existing.services, &services);
        existing.pull_policy = super::policy::stronger(
            existing.pull_policy.as_deref(),
            entry.pull_policy.as_deref(),
        )
        .map(str::to_string);
        return;
    }
    jobs.push(ImageJob {
        project: entry.project.clone(),
        registry: entry.registry.clone(),
        image,
        action,
        services,
        platform: entry.platform.clone(),
        build: None,
        depends_on: Vec::new(),
        pull_policy: entry.pull_policy.clone(),
    });
}

fn merge_services(into: &mut Vec<String>, services: &[String]) {
    for service in services {
        if !into.contains(service) {
            into.push(service.clone());
        }
    }
}

/// Sorts builds so every image comes after the same-project images it is built
/// from (Kahn's algorithm, always taking the earliest ready job in catalog order).
fn order_builds(project: &str, builds: Vec<ImageJob>, problems: &mut Vec<String>) -> Vec<ImageJob> {
    let index_of: HashMap<String, usize> = builds
        .iter()
        .enumerate()
        .map(|(index, job)| (image_key(&job.image), index))
        .collect();
    let dependencies: Vec<Vec<usize>> = builds
        .iter()
        .enumerate()
        .map(|(index, job)| {
            let mut needs: Vec<usize> = Vec::new();
            for from in job.build.iter().flat_map(|spec| &spec.info.from_images) {
                if let Some(&other) = index_of.get(&image_key(from))
                    && other != index
                    && !needs.contains(&other)
                {
                    needs.push(other);
                }
            }
            for service in job.build.iter().flat_map(|spec| &spec.info.after_services) {
                if let Some(other) = builds
                    .iter()
                    .position(|other| other.services.contains(service))
                    && other != index
                    && !needs.contains(&other)
                {
                    needs.push(other);
                }
            }
            needs
        })
        .collect();
    let mut builds: Vec<Option<ImageJob>> = builds.into_iter().map(Some).collect();
    for (index, needs) in dependencies.iter().enumerate() {
        let names: Vec<String> = needs
            .iter()
            .filter_map(|&other| builds[other].as_ref().map(|job| job.image.clone()))
            .collect();
        if let Some(job) = builds[index].as_mut() {
            job.depends_on = names;
        }
    }

    let mut ordered = Vec::new();
    let mut done = vec![false; builds.len()];
    loop {
        let ready = (0..builds.len())
            .find(|&index| !done[index] && dependencies[index].iter().all(|&need| done[need]));
        let Some(index) = ready else { break };
        done[index] = true;
        if let Some(job) = builds[index].take() {
            ordered.push(job);
        }
    }
    let stuck: Vec<String> = builds
        .iter()
        .flatten()
        .map(|job| format!("{} ({})", job.image, job.services.join(",")))
        .collect();
    if !stuck.is_empty() {
        problems.push(format!(
            "{project}: these images are built from each other in a cycle, none can be built first: {}",
            stuck.join(", ")
        ));
    }
    ordered
}

/// A comparison key for image names written differently (`busybox` and
/// `docker.io/library/busybox:latest` are the same image).
fn image_key(name: &str) -> String {
    canonical_name(name)
}

fn describe_catalog_error(error: &crate::catalog::CatalogError) -> String {
    let place = match error.line {
        Some(line) => format!("{}:{line}", error.file.display()),
        None => error.file.display().to_string(),
    };
    let project = match &error.instance {
        Some(instance) => format!("{}@{instance}", error.project),
        None => error.project.clone(),
    };
    match &error.service {
        Some(service) => format!("{project}/{service}: {place}: {}", error.message),
        None if project.is_empty() => format!("{place}: {}", error.message),
        None => format!("{project}: {place}: {}", error.message),
    }
}

#[cfg(test)]
mod tests {
    use indexmap::IndexMap;

    use super::*;
    use crate::catalog::{CatalogError, ProjectInfo};

    fn project(name: &str) -> ProjectInfo {
        ProjectInfo {
            name: name.into(),
            instance: None,
            override_file: None,
            compose_name: Some(name.into()),
            compose_file: PathBuf::from(format!("/p/{name}/docker-compose.yaml")),
            env_files: vec![],
            ok: true,
        }
    }

    fn pull(project: &str, service: &str, image: &str) -> CatalogEntry {
        CatalogEntry {
            project: project.into(),
            instance: None,
            compose_project: Some(project.into()),
            service: Some(service.into()),
            image: Some(image.into()),
            image_ref: Some(image.into()),
            source: ImageSource::Pull,
            build: None,
            base_for: vec![],
            profiles: vec![],
            env_var: None,
            env_default: None,
            pinned: true,
            registry: Some("docker.io".into()),
            platform: None,
            pull_policy: None,
        }
    }

    fn build(project: &str, service: &str, image: &str, from: &[&str]) -> CatalogEntry {
        CatalogEntry {
            source: ImageSource::Build,
            registry: None,
            build: Some(BuildInfo {
                context: format!("/p/{project}"),
                remote: false,
                dockerfile: "Dockerfile".into(),
                dockerfile_inline: None,
                args: IndexMap::new(),
                target: None,
                from_images: from.iter().map(|name| name.to_string()).collect(),
                from_images_known: true,
                after_services: vec![],
            }),
            ..pull(project, service, image)
        }
    }

    fn base(project: &str, image: &str, base_for: &[&str]) -> CatalogEntry {
        CatalogEntry {
            service: None,
            source: ImageSource::Base,
            base_for: base_for.iter().map(|name| name.to_string()).collect(),
            ..pull(project, "", image)
        }
    }

    fn catalog(entries: Vec<CatalogEntry>) -> Catalog {
        let mut projects: Vec<ProjectInfo> = Vec::new();
        for entry in &entries {
            if !projects.iter().any(|info| info.name == entry.project) {
                projects.push(project(&entry.project));
            }
        }
        Catalog {
            projects_dir: PathBuf::from("/p"),
            context: None,
            projects,
            entries,
            errors: vec![],
            warnings: vec![],
            ..Catalog::default()
        }
    }

    #[test]
    fn each_configured_instance_is_a_plan_of_its_own() {
        let instance = |name: &str, entry: CatalogEntry| CatalogEntry {
            instance: Some(name.into()),
            compose_project: Some(format!("app_{name}")),
            ..entry
        };
        let mut catalog = catalog(vec![
            instance("default", pull("app", "db", "postgres:16")),
            instance("blue", pull("app", "db", "postgres:15")),
            instance("blue", pull("app", "cache", "redis:7")),
        ]);
        catalog.projects = ["default", "blue"]
            .into_iter()
            .map(|name| ProjectInfo {
                instance: Some(name.into()),
                compose_name: Some(format!("app_{name}")),
                ..project("app")
            })
            .collect();
        catalog.errors.push(CatalogError {
            instance: Some("blue".into()),
            project: "app".into(),
            service: Some("cache".into()),
            file: PathBuf::from("/p/app/.env_c_blue"),
            line: None,
            message: "bad".into(),
        });
        let plan = plan(&catalog, &Selection::default(), PlanOptions::default());
        let units: Vec<String> = plan
            .projects
            .iter()
            .map(|p| {
                format!(
                    "{} {:?} {:?} jobs={} problems={}",
                    p.label(),
                    p.instance,
                    p.compose_project,
                    p.jobs.len(),
                    p.problems.len()
                )
            })
            .collect();
        assert_eq!(
            units,
            [
                "app@default Some(\"default\") Some(\"app_default\") jobs=1 problems=0",
                "app@blue Some(\"blue\") Some(\"app_blue\") jobs=2 problems=1",
            ]
        );
        assert!(plan.projects[1].problems[0].starts_with("app@blue/cache: "));
    }

    fn names(plan: &BuildPlan) -> Vec<(String, &'static str, String)> {
        plan.jobs()
            .map(|job| (job.project.clone(), job.action.as_str(), job.image.clone()))
            .collect()
    }

    #[test]
    fn builds_follow_from_dependencies_not_the_alphabet() {
        // "a-child" sorts before "z-parent" but is built FROM it.
        let catalog = catalog(vec![
            build("app", "child", "local/a-child:1", &["local/z-parent:1"]),
            build("app", "parent", "local/z-parent:1", &["busybox:1.36"]),
            base("app", "busybox:1.36", &["parent"]),
        ]);
        let plan = plan(&catalog, &Selection::default(), PlanOptions::default());
        assert_eq!(
            names(&plan),
            vec![
                ("app".into(), "build", "local/z-parent:1".into()),
                ("app".into(), "build", "local/a-child:1".into()),
            ]
        );
        let child = plan
            .jobs()
            .find(|job| job.image == "local/a-child:1")
            .unwrap();
        assert_eq!(child.depends_on, vec!["local/z-parent:1".to_string()]);
        assert!(plan.projects[0].problems.is_empty());
    }

    #[test]
    fn dependency_names_match_however_they_are_written() {
        let catalog = catalog(vec![
            build(
                "app",
                "child",
                "child",
                &["docker.io/library/parent:latest"],
            ),
            build("app", "parent", "parent", &[]),
        ]);
        let plan = plan(&catalog, &Selection::default(), PlanOptions::default());
        let order: Vec<&str> = plan.jobs().map(|job| job.image.as_str()).collect();
        assert_eq!(order, vec!["parent", "child"]);
    }

    #[test]
    fn catalog_order_is_kept_for_independent_builds() {
        let catalog = catalog(vec![
            build("app", "zeta", "app-zeta", &[]),
            build("app", "alpha", "app-alpha", &[]),
        ]);
        let plan = plan(&catalog, &Selection::default(), PlanOptions::default());
        let order: Vec<&str> = plan.jobs().map(|job| job.image.as_str()).collect();
        assert_eq!(order, vec!["app-zeta", "app-alpha"]);
    }

    #[test]
    fn a_cycle_is_a_problem_not_a_hang() {
        let catalog = catalog(vec![
            build("app", "a", "img-a", &["img-b"]),
            build("app", "b", "img-b", &["img-a"]),
            build("app", "c", "img-c", &[]),
        ]);
        let plan = plan(&catalog, &Selection::default(), PlanOptions::default());
        let order: Vec<&str> = plan.jobs().map(|job| job.image.as_str()).collect();
        assert_eq!(order, vec!["img-c"]);
        assert_eq!(plan.projects[0].problems.len(), 1);
        assert!(plan.projects[0].problems[0].contains("cycle"));
        assert!(plan.projects[0].problems[0].contains("img-a (a)"));
    }

    #[test]
    fn pulls_come_first_and_base_images_only_with_pull() {
        let entries = vec![
            build("app", "web", "app-web", &["busybox:1.36"]),
            pull("app", "db", "postgres:16"),
            base("app", "busybox:1.36", &["web"]),
        ];
        let without = plan(
            &catalog(entries.clone()),
            &Selection::default(),
            PlanOptions::default(),
        );
        assert_eq!(
            names(&without),
            vec![
                ("app".into(), "pull", "postgres:16".into()),
                ("app".into(), "build", "app-web".into()),
            ]
        );
        let with = plan(
            &catalog(entries.clone()),
            &Selection::default(),
            PlanOptions {
                pull_base_images: true,
                pull_only: false,
            },
        );
        assert_eq!(
            names(&with),
            vec![
                ("app".into(), "base", "busybox:1.36".into()),
                ("app".into(), "pull", "postgres:16".into()),
                ("app".into(), "build", "app-web".into()),
            ]
        );
        assert_eq!(with.projects[0].jobs[0].services, vec!["web".to_string()]);
        let pull_only = plan(
            &catalog(entries),
            &Selection::default(),
            PlanOptions {
                pull_base_images: true,
                pull_only: true,
            },
        );
        assert_eq!(
            names(&pull_only),
            vec![
                ("app".into(), "base", "busybox:1.36".into()),
                ("app".into(), "pull", "postgres:16".into()),
            ]
        );
        assert!(!pull_only.projects[0].has_builds());
    }

    #[test]
    fn an_image_built_here_is_never_pulled() {
        let catalog = catalog(vec![
            build("app", "base", "local/base:1", &[]),
            build("app", "child", "local/child:1", &["local/base:1"]),
            base("app", "local/base:1", &["child"]),
            pull("app", "runner", "local/base:1"),
        ]);
        let plan = plan(
            &catalog,
            &Selection::default(),
            PlanOptions {
                pull_base_images: true,
                pull_only: false,
            },
        );
        assert_eq!(
            names(&plan),
            vec![
                ("app".into(), "build", "local/base:1".into()),
                ("app".into(), "build", "local/child:1".into()),
            ]
        );
        assert_eq!(
            plan.projects[0].jobs[0].services,
            vec!["base".to_string(), "runner".to_string()]
        );
    }

    #[test]
    fn shared_images_are_one_job_with_every_service() {
        let catalog = catalog(vec![
            pull("app", "one", "redis:7"),
            pull("app", "two", "docker.io/library/redis:7"),
        ]);
        let plan = plan(&catalog, &Selection::default(), PlanOptions::default());
        assert_eq!(plan.projects[0].jobs.len(), 1);
        assert_eq!(
            plan.projects[0].jobs[0].services,
            vec!["one".to_string(), "two".to_string()]
        );
        assert_eq!(plan.projects[0].jobs[0].display_name(), "app/one,two");
    }

    #[test]
    fn two_different_builds_of_one_name_are_a_problem() {
        let mut other = build("app", "two", "app-img", &[]);
        if let Some(build) = other.build.as_mut() {
            build.target = Some("other".into());
        }
        let catalog = catalog(vec![build("app", "one", "app-img", &[]), other]);
        let plan = plan(&catalog, &Selection::default(), PlanOptions::default());
        assert_eq!(plan.projects[0].jobs.len(), 1);
        assert!(plan.projects[0].problems[0].contains("app/two: builds image app-img"));
    }

    #[test]
    fn selection_and_errors_are_per_project() {
        let mut catalog = catalog(vec![
            pull("one", "a", "redis:7"),
            pull("two", "b", "redis:7"),
            CatalogEntry {
                image: None,
                ..pull("three", "c", "x")
            },
        ]);
        catalog.errors.push(CatalogError {
            instance: None,
            project: "two".into(),
            service: Some("b".into()),
            file: PathBuf::from("/p/two/docker-compose.yaml"),
            line: Some(3),
            message: "undefined variable".into(),
        });
        let selection = Selection {
            only: vec![],
            exclude: vec!["one".into()],
            ..Selection::default()
        };
        let plan = plan(&catalog, &selection, PlanOptions::default());
        let projects: Vec<&str> = plan.projects.iter().map(|p| p.project.as_str()).collect();
        assert_eq!(projects, vec!["two", "three"]);
        assert_eq!(
            plan.projects[0].problems,
            vec!["two/b: /p/two/docker-compose.yaml:3: undefined variable".to_string()]
        );
        assert!(
            plan.projects[1].problems[0]
                .starts_with("three/c: the image name could not be resolved")
        );
        assert_eq!(plan.projects[0].directory, PathBuf::from("/p/two"));
    }
}

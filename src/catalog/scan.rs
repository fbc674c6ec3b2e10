//! Builds the catalog of a projects tree: finds the projects, works out each
//! project's variables and Compose project name, reads its services and
//! Dockerfiles, and turns them into catalog entries.
//!
//! Nothing here spawns a process or touches the network; a problem in one
//! project is recorded in `Catalog::errors` and never stops the others.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use indexmap::IndexMap;

use super::compose::{BuildSpec, ComposeDocument, ComposeIssue, ServiceSpec, read_model};
use super::dockerfile::base_images;
use super::envfile::{parse_env_file_over, read_env_file};
use super::instances::{Instance, env_directory, find_instances, instance_project_name};
use super::model::{BuildInfo, Catalog, CatalogEntry, CatalogError, ImageSource, ProjectInfo};
use crate::image::reference::{ImageReference, canonical_name};

/// Compose file names in the order Docker Compose looks for them.
pub const COMPOSE_FILE_NAMES: [&str; 4] = [
    "compose.yaml",
    "compose.yml",
    "docker-compose.yml",
    "docker-compose.yaml",
];

/// The per-project defaults file.
pub const PROJECT_ENV_FILE: &str = ".env-dist";

/// What to catalog.
#[derive(Debug, Clone, Default)]
pub struct CatalogOptions {
    pub projects_dir: PathBuf,
    /// Docker context name; its `<projects_dir>/.env_<context>` applies when it exists.
    pub context: Option<String>,
    /// Only these projects (all when empty).
    pub only: Vec<String>,
    pub exclude: Vec<String>,
    /// The process environment (highest precedence for variables).
    pub environment: HashMap<String, String>,
    /// `--defaults`: ignore configured instances, resolve every project from
    /// `.env-dist`, the root env file and the environment (generic images).
    pub defaults: bool,
    /// Only these configured instances (all when empty); a project without
    /// instances is kept only when this is empty.
    pub instances: Vec<String>,
}

impl CatalogOptions {
    /// Options for `projects_dir` with the current process environment.
    pub fn new(projects_dir: impl Into<PathBuf>) -> Self {
        Self {
            projects_dir: projects_dir.into(),
            environment: std::env::vars().collect(),
            ..Self::default()
        }
    }
}

/// A project directory and its compose file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectDir {
    pub name: String,
    pub directory: PathBuf,
    pub compose_file: PathBuf,
}

/// Top-level directories of `projects_dir` that hold a compose file, sorted by
/// name; names starting with `.` or `_` are skipped.
pub fn discover_projects(projects_dir: &Path) -> std::io::Result<Vec<ProjectDir>> {
    let mut projects = Vec::new();
    for entry in std::fs::read_dir(projects_dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || name.starts_with('_') {
            continue;
        }
        let directory = entry.path();
        if !directory.is_dir() {
            continue;
        }
        if let Some(compose_file) = COMPOSE_FILE_NAMES
            .iter()
            .map(|file| directory.join(file))
            .find(|path| path.is_file())
        {
            projects.push(ProjectDir {
                name,
                directory,
                compose_file,
            });
        }
    }
    projects.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(projects)
}

/// Catalogs every selected project under `options.projects_dir`.
pub fn load_catalog(options: &CatalogOptions) -> Catalog {
    // Absolute, like Compose's build contexts, but without resolving symlinks.
    let projects_dir = &std::path::absolute(&options.projects_dir)
        .unwrap_or_else(|_| options.projects_dir.clone());
    let mut catalog = Catalog {
        projects_dir: projects_dir.clone(),
        ..Catalog::default()
    };
    let discovered = match discover_projects(projects_dir) {
        Ok(projects) => projects,
        Err(error) => {
            catalog.errors.push(CatalogError {
                instance: None,
                project: String::new(),
                service: None,
                file: projects_dir.clone(),
                line: None,
                message: format!(
                    "cannot read the projects directory: {error}; pass --projects-dir DIR or set BUNKER_PROJECTS_DIR"
                ),
            });
            return catalog;
        }
    };
    for wanted in &options.only {
        if !discovered.iter().any(|project| &project.name == wanted) {
            catalog.errors.push(CatalogError {
                instance: None,
                project: wanted.clone(),
                service: None,
                file: projects_dir.join(wanted),
                line: None,
                message: format!(
                    "no project {wanted:?}: no such directory with a compose file in {}",
                    projects_dir.display()
                ),
            });
        }
    }

    let root_env = options.context.as_ref().and_then(|context| {
        let path = crate::settings::root_env_path(projects_dir, context);
        let text = std::fs::read_to_string(&path).ok()?;
        Some((path, text))
    });
    catalog.context = root_env.as_ref().and(options.context.clone());
    catalog.defaults_only = options.defaults;
    let drt_env_dir = options
        .environment
        .get("DRT_ENV_DIR")
        .filter(|dir| !dir.is_empty())
        .map(PathBuf::from);

    let mut instances_seen = Vec::new();
    for project in discovered {
        if (!options.only.is_empty() && !options.only.contains(&project.name))
            || options.exclude.contains(&project.name)
        {
            continue;
        }
        let instances = match (&options.context, options.defaults) {
            (Some(context), false) => {
                let env_dir =
                    env_directory(&project.directory, &project.name, drt_env_dir.as_deref());
                match find_instances(&project.directory, &env_dir, context) {
                    Ok(instances) => instances,
                    Err(error) => {
                        catalog.errors.push(CatalogError {
                            instance: None,
                            project: project.name.clone(),
                            service: None,
                            file: env_dir.clone(),
                            line: None,
                            message: format!(
                                "cannot list the instance env files: {error}; check DRT_ENV_DIR and the directory's permissions"
                            ),
                        });
                        continue;
                    }
                }
            }
            _ => Vec::new(),
        };
        if instances.is_empty() {
            if !options.defaults {
                catalog.without_instances.push(project.name.clone());
            }
            if options.instances.is_empty() {
                catalog_project(
                    &project,
                    root_env.as_ref(),
                    None,
                    &options.environment,
                    &mut catalog,
                );
            }
            continue;
        }
        for instance in &instances {
            if !options.instances.is_empty() && !options.instances.contains(&instance.name) {
                continue;
            }
            instances_seen.push(instance.name.clone());
            catalog_project(
                &project,
                root_env.as_ref(),
                Some(instance),
                &options.environment,
                &mut catalog,
            );
        }
    }
    for wanted in &options.instances {
        if !instances_seen.contains(wanted) {
            catalog.errors.push(CatalogError {
                instance: Some(wanted.clone()),
                project: options.only.first().cloned().unwrap_or_default(),
                service: None,
                file: drt_env_dir.clone().unwrap_or_else(|| projects_dir.clone()),
                line: None,
                message: format!(
                    "no configured instance {wanted:?} for context {:?}: no selected project has a file .env_{}_{wanted}; list them with `bunker image-catalog`",
                    options.context.as_deref().unwrap_or_default(),
                    options.context.as_deref().unwrap_or_default(),
                ),
            });
        }
    }
    catalog
}

/// The variables of one project, with their sources.
struct ProjectVariables {
    /// Values from `.env-dist` alone (the documented defaults).
    defaults: IndexMap<String, String>,
    /// Every env file merged, later files winning.
    files: IndexMap<String, String>,
    env_files: Vec<PathBuf>,
}

fn catalog_project(
    project: &ProjectDir,
    root_env: Option<&(PathBuf, String)>,
    instance: Option<&Instance>,
    environment: &HashMap<String, String>,
    catalog: &mut Catalog,
) {
    let mut errors = Vec::new();
    let mut info = ProjectInfo {
        name: project.name.clone(),
        instance: instance.map(|instance| instance.name.clone()),
        override_file: instance.and_then(|instance| instance.override_file.clone()),
        compose_name: None,
        compose_file: project.compose_file.clone(),
        env_files: Vec::new(),
        ok: false,
    };
    let error =
        |file: &Path, line: Option<usize>, service: Option<String>, message: String| CatalogError {
            instance: None,
            project: project.name.clone(),
            service,
            file: file.to_path_buf(),
            line,
            message,
        };

    let variables = match project_variables(project, root_env, instance, environment) {
        Ok(variables) => variables,
        Err(env_error) => {
            errors.push(error(
                &env_error.path,
                Some(env_error.line).filter(|line| *line > 0),
                None,
                format!("{}; fix the env file", env_error.message),
            ));
            finish(catalog, info, Vec::new(), errors);
            return;
        }
    };
    info.env_files = variables.env_files.clone();
    let lookup = |name: &str| {
        environment
            .get(name)
            .or_else(|| variables.files.get(name))
            .cloned()
    };

    let mut document = match ComposeDocument::load(&project.compose_file) {
        Ok(document) => document,
        Err(issue) => {
            errors.push(issue_to_error(&project.name, issue));
            finish(catalog, info, Vec::new(), errors);
            return;
        }
    };
    if let Some(override_file) = &info.override_file {
        match ComposeDocument::load(override_file) {
            Ok(override_document) => document.apply_override(override_document),
            Err(issue) => {
                errors.push(issue_to_error(&project.name, issue));
                finish(catalog, info, Vec::new(), errors);
                return;
            }
        }
    }
    let model = read_model(&document, &lookup);
    catalog.warnings.extend(
        model
            .warnings
            .iter()
            .cloned()
            .map(|issue| issue_to_error(&project.name, issue))
            .map(|warning| CatalogError {
                instance: info.instance.clone(),
                ..warning
            }),
    );
    errors.extend(
        model
            .issues
            .into_iter()
            .map(|issue| issue_to_error(&project.name, issue)),
    );

    // An instance is brought up with `--project-name`, which wins over `name:` and
    // COMPOSE_PROJECT_NAME.
    let compose_name = match instance {
        Some(instance) => Some(instance_project_name(&project.name, &instance.name)),
        None => match compose_project_name(&project.name, model.name.as_deref(), &lookup) {
            Ok(name) => Some(name),
            Err(message) => {
                errors.push(error(&project.compose_file, None, None, message));
                None
            }
        },
    };
    info.compose_name = compose_name.clone();

    let mut entries = Vec::new();
    let mut built: Vec<(usize, Vec<super::dockerfile::BaseImage>)> = Vec::new();
    for service in &model.services {
        let entry_index = entries.len();
        let (entry, bases) = service_entry(
            project,
            &document,
            service,
            compose_name.as_deref(),
            &variables,
            &mut errors,
        );
        entries.push(entry);
        if let Some(bases) = bases {
            built.push((entry_index, bases));
        }
    }
    link_build_dependencies(&mut entries);
    let base_entries = base_entries(project, &entries, &built, &model.services, &variables);
    entries.extend(base_entries);
    for entry in &mut entries {
        entry.instance = info.instance.clone();
    }
    finish(catalog, info, entries, errors);
}

fn finish(
    catalog: &mut Catalog,
    mut info: ProjectInfo,
    entries: Vec<CatalogEntry>,
    errors: Vec<CatalogError>,
) {
    info.ok = errors.is_empty();
    let mut seen = Vec::new();
    for mut error in errors {
        error.instance = info.instance.clone();
        if !seen.contains(&error) {
            seen.push(error);
        }
    }
    catalog.projects.push(info);
    catalog.entries.extend(entries);
    catalog.errors.extend(seen);
}

fn issue_to_error(project: &str, issue: ComposeIssue) -> CatalogError {
    CatalogError {
        instance: None,
        project: project.to_string(),
        service: issue.service,
        file: issue.file,
        line: issue.line,
        message: issue.message,
    }
}

/// `.env-dist`, then the root `.env_<context>`, then the instance's
/// `.env_<context>_<instance>`; each file's values may refer to the process
/// environment and to the files before it (the environment first, as Compose does).
fn project_variables(
    project: &ProjectDir,
    root_env: Option<&(PathBuf, String)>,
    instance: Option<&Instance>,
    environment: &HashMap<String, String>,
) -> Result<ProjectVariables, super::envfile::EnvFileError> {
    let mut env_files = Vec::new();
    let dist_path = project.directory.join(PROJECT_ENV_FILE);
    let defaults = if dist_path.is_file() {
        env_files.push(dist_path.clone());
        read_env_file(&dist_path, &|name| environment.get(name).cloned())?
    } else {
        IndexMap::new()
    };
    let files = match root_env {
        Some((path, text)) => {
            env_files.push(path.clone());
            parse_env_file_over(path, text, defaults.clone(), &|name| {
                environment.get(name).cloned()
            })?
        }
        None => defaults.clone(),
    };
    let files = match instance {
        Some(instance) => {
            env_files.push(instance.env_file.clone());
            let text = std::fs::read_to_string(&instance.env_file).map_err(|error| {
                super::envfile::EnvFileError {
                    path: instance.env_file.clone(),
                    line: 0,
                    message: format!("cannot read the instance env file: {error}"),
                }
            })?;
            parse_env_file_over(&instance.env_file, &text, files, &|name| {
                environment.get(name).cloned()
            })?
        }
        None => files,
    };
    Ok(ProjectVariables {
        defaults,
        files,
        env_files,
    })
}

/// Compose's project name: `COMPOSE_PROJECT_NAME` (must already be valid), else the
/// top-level `name:`, else the directory name, the latter two normalised
/// (lower-cased, characters other than `a-z0-9_-` dropped, leading `_`/`-` trimmed).
pub fn compose_project_name(
    directory_name: &str,
    name_field: Option<&str>,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<String, String> {
    if let Some(explicit) = lookup("COMPOSE_PROJECT_NAME").filter(|name| !name.is_empty()) {
        let valid = explicit.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
            && explicit
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
        return if valid {
            Ok(explicit)
        } else {
            Err(format!(
                "invalid project name {explicit:?} from COMPOSE_PROJECT_NAME: it must consist only of lower-case letters, digits, '-' and '_' and start with a letter or digit"
            ))
        };
    }
    let source = name_field
        .filter(|name| !name.is_empty())
        .unwrap_or(directory_name);
    let normalized = normalize_project_name(source);
    if normalized.is_empty() {
        Err(format!(
            "project name {source:?} is empty after Compose's normalisation; set `name:` in the compose file"
        ))
    } else {
        Ok(normalized)
    }
}

/// Compose's `NormalizeProjectName`.
pub fn normalize_project_name(name: &str) -> String {
    let kept: String = name
        .to_lowercase()
        .chars()
        .filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_' || *c == '-')
        .collect();
    kept.trim_start_matches(['_', '-']).to_string()
}

/// The variable that most likely selects an image: the first whose name contains
/// `IMAGE`, else `VERSION` or `TAG`, else the first one.
fn controlling_variable(variables: &[String]) -> Option<String> {
    let find = |needle: &str| {
        variables
            .iter()
            .find(|name| name.to_uppercase().contains(needle))
    };
    find("IMAGE")
        .or_else(|| find("VERSION"))
        .or_else(|| find("TAG"))
        .or_else(|| variables.first())
        .cloned()
}

fn service_entry(
    project: &ProjectDir,
    document: &ComposeDocument,
    service: &ServiceSpec,
    compose_name: Option<&str>,
    variables: &ProjectVariables,
    errors: &mut Vec<CatalogError>,
) -> (CatalogEntry, Option<Vec<super::dockerfile::BaseImage>>) {
    let report =
        |errors: &mut Vec<CatalogError>, file: &Path, line: Option<usize>, message: String| {
            errors.push(CatalogError {
                instance: None,
                project: project.name.clone(),
                service: Some(service.name.clone()),
                file: file.to_path_buf(),
                line,
                message,
            })
        };
    let env_var = controlling_variable(&service.image_variables);
    let mut entry = CatalogEntry {
        project: project.name.clone(),
        instance: None,
        compose_project: compose_name.map(str::to_string),
        service: Some(service.name.clone()),
        image: None,
        image_ref: service.image_ref.clone(),
        source: if service.build.is_some() {
            ImageSource::Build
        } else {
            ImageSource::Pull
        },
        build: None,
        base_for: Vec::new(),
        profiles: service.profiles.clone(),
        env_default: env_var
            .as_ref()
            .and_then(|name| variables.defaults.get(name).cloned()),
        env_var,
        pinned: false,
        registry: None,
        platform: service.platform.clone(),
        pull_policy: service.pull_policy.clone(),
    };
    if service.unresolved {
        return (entry, None);
    }

    match &service.build {
        None => {
            let image = service.image.clone().unwrap_or_default();
            match ImageReference::parse(&image) {
                Ok(reference) => {
                    entry.pinned = reference.is_pinned();
                    entry.registry = Some(reference.registry().to_string());
                    entry.image = Some(image);
                }
                Err(error) => {
                    let hint = match &entry.env_var {
                        Some(name) => format!("; set {name} in .env-dist or the environment"),
                        None => String::new(),
                    };
                    let line = service
                        .image_ref
                        .as_deref()
                        .and_then(|raw| document.line_of(raw));
                    report(
                        errors,
                        &project.compose_file,
                        line,
                        format!(
                            "services.{}.image {:?} resolves to {image:?}: {}{hint}",
                            service.name,
                            service.image_ref.as_deref().unwrap_or_default(),
                            error.reason()
                        ),
                    );
                }
            }
            (entry, None)
        }
        Some(build) => {
            entry.image = match (&service.image, compose_name) {
                (Some(image), _) => Some(image.clone()),
                (None, Some(compose_name)) => Some(format!("{compose_name}-{}", service.name)),
                (None, None) => None,
            };
            entry.pinned = entry
                .image
                .as_deref()
                .and_then(|image| ImageReference::parse(image).ok())
                .is_some_and(|reference| reference.is_pinned());
            let (bases, known) = analyse_build(project, service, build, errors);
            entry.build = Some(BuildInfo {
                context: build.context.clone(),
                remote: build.remote,
                dockerfile: build.dockerfile.clone(),
                dockerfile_inline: build.dockerfile_inline.clone(),
                args: build
                    .args
                    .iter()
                    .map(|(key, value)| (key.clone(), Some(value.clone())))
                    .collect(),
                target: build.target.clone(),
                from_images: bases.iter().map(|base| base.image.clone()).collect(),
                from_images_known: known,
                after_services: Vec::new(),
            });
            (entry, Some(bases))
        }
    }
}

/// The Dockerfile's base images; `false` when they are not (fully) known.
fn analyse_build(
    project: &ProjectDir,
    service: &ServiceSpec,
    build: &BuildSpec,
    errors: &mut Vec<CatalogError>,
) -> (Vec<super::dockerfile::BaseImage>, bool) {
    let (path, text) = if let Some(inline) = &build.dockerfile_inline {
        (project.compose_file.clone(), inline.clone())
    } else if build.remote {
        return (Vec::new(), false);
    } else {
        let path = Path::new(&build.context).join(&build.dockerfile);
        match std::fs::read_to_string(&path) {
            Ok(text) => (path, text),
            Err(error) => {
                errors.push(CatalogError {
                    instance: None,
                    project: project.name.clone(),
                    service: Some(service.name.clone()),
                    file: path.clone(),
                    line: None,
                    message: format!(
                        "cannot read the Dockerfile of service {:?}: {error}; check build.context and build.dockerfile",
                        service.name
                    ),
                });
                return (Vec::new(), false);
            }
        }
    };
    match base_images(&text, &build.args, build.target.as_deref()) {
        Ok(bases) => (bases, true),
        Err(error) => {
            errors.push(CatalogError {
                instance: None,
                project: project.name.clone(),
                service: Some(service.name.clone()),
                file: path,
                line: error.line,
                message: error.message,
            });
            (Vec::new(), false)
        }
    }
}

/// Fills `after_services`: builds whose `FROM` is another service's built image.
fn link_build_dependencies(entries: &mut [CatalogEntry]) {
    let built: Vec<(String, String)> = entries
        .iter()
        .filter(|entry| entry.source == ImageSource::Build)
        .filter_map(|entry| {
            Some((
                canonical_name(entry.image.as_deref()?),
                entry.service.clone()?,
            ))
        })
        .collect();
    for entry in entries.iter_mut() {
        let own = entry.service.clone();
        let Some(build) = entry.build.as_mut() else {
            continue;
        };
        for from in &build.from_images {
            let from = canonical_name(from);
            for (image, service) in &built {
                if *image == from
                    && Some(service) != own.as_ref()
                    && !build.after_services.contains(service)
                {
                    build.after_services.push(service.clone());
                }
            }
        }
    }
}

/// One entry per external base image of the project's builds (images built by the
/// project itself are dependencies between builds, not base images).
fn base_entries(
    project: &ProjectDir,
    entries: &[CatalogEntry],
    built: &[(usize, Vec<super::dockerfile::BaseImage>)],
    services: &[ServiceSpec],
    variables: &ProjectVariables,
) -> Vec<CatalogEntry> {
    let built_images: Vec<String> = entries
        .iter()
        .filter(|entry| entry.source == ImageSource::Build)
        .filter_map(|entry| entry.image.as_deref().map(canonical_name))
        .collect();
    let mut bases: IndexMap<String, CatalogEntry> = IndexMap::new();
    for (entry_index, images) in built {
        let entry = &entries[*entry_index];
        let Some(service_name) = entry.service.clone() else {
            continue;
        };
        let service = services.iter().find(|service| service.name == service_name);
        let arg_variables = service
            .and_then(|service| service.build.as_ref())
            .map(|build| &build.arg_variables);
        for base in images {
            let canonical = canonical_name(&base.image);
            if built_images.contains(&canonical) {
                continue;
            }
            let candidates: Vec<String> = base
                .args_used
                .iter()
                .filter_map(|arg| arg_variables.and_then(|variables| variables.get(arg)))
                .flatten()
                .cloned()
                .collect();
            let base_entry = bases.entry(canonical).or_insert_with(|| {
                let reference = ImageReference::parse(&base.image).ok();
                let env_var = controlling_variable(&candidates);
                CatalogEntry {
                    project: project.name.clone(),
                    instance: None,
                    compose_project: entry.compose_project.clone(),
                    service: None,
                    image: Some(base.image.clone()),
                    image_ref: None,
                    source: ImageSource::Base,
                    build: None,
                    base_for: Vec::new(),
                    profiles: entry.profiles.clone(),
                    env_default: env_var
                        .as_ref()
                        .and_then(|name| variables.defaults.get(name).cloned()),
                    env_var,
                    pinned: reference.as_ref().is_some_and(ImageReference::is_pinned),
                    registry: reference.map(|reference| reference.registry().to_string()),
                    platform: base.platform.clone(),
                    pull_policy: None,
                }
            });
            if !base_entry.base_for.contains(&service_name) {
                if base_entry.base_for.is_empty() {
                    base_entry.profiles = entry.profiles.clone();
                } else if entry.profiles.is_empty() || base_entry.profiles.is_empty() {
                    base_entry.profiles.clear();
                } else {
                    for profile in &entry.profiles {
                        if !base_entry.profiles.contains(profile) {
                            base_entry.profiles.push(profile.clone());
                        }
                    }
                }
                base_entry.base_for.push(service_name.clone());
            }
        }
    }
    bases.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_name_normalisation() {
        let none = |_: &str| None;
        assert_eq!(
            compose_project_name("My.Proj", None, &none).unwrap(),
            "myproj"
        );
        assert_eq!(
            compose_project_name("dir", Some("_Up"), &none).unwrap(),
            "up"
        );
        let explicit = |name: &str| (name == "COMPOSE_PROJECT_NAME").then(|| "Bad".to_string());
        let error = compose_project_name("dir", None, &explicit).unwrap_err();
        assert!(error.contains("\"Bad\""), "{error}");
        assert!(compose_project_name("...", None, &none).is_err());
    }

    #[test]
    fn controlling_variable_prefers_image_names() {
        let names = |list: &[&str]| list.iter().map(|name| name.to_string()).collect::<Vec<_>>();
        assert_eq!(
            controlling_variable(&names(&["REG", "APP_VERSION", "APP_IMAGE"])).as_deref(),
            Some("APP_IMAGE")
        );
        assert_eq!(
            controlling_variable(&names(&["REG", "APP_VERSION"])).as_deref(),
            Some("APP_VERSION")
        );
        assert_eq!(
            controlling_variable(&names(&["REG"])).as_deref(),
            Some("REG")
        );
        assert_eq!(controlling_variable(&[]), None);
    }
}

//! Reads the services of one compose file the way Docker Compose v2 does, as far
//! as images are concerned: YAML with anchors and merges, `extends` (same file or
//! another file), Compose interpolation, `image`, `build` (string or mapping,
//! args as map or list), `profiles` and `platform`.
//!
//! The tree stays an untyped `serde_json::Value` and fields are read leniently:
//! an unknown key never fails a file, a wrong shape fails only the field that has it.

use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use serde_json::{Map, Value};

use super::interpolate::{InterpolationError, interpolate};
use super::yaml::parse_yaml;

/// Variable lookup: `None` means unset.
pub type Lookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// A problem in a compose file, located as precisely as the loader can.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComposeIssue {
    pub file: PathBuf,
    pub line: Option<usize>,
    pub service: Option<String>,
    pub message: String,
}

/// A compose file read into a JSON-shaped tree, with its text kept for locating errors.
#[derive(Debug, Clone)]
pub struct ComposeDocument {
    pub path: PathBuf,
    pub text: String,
    pub root: Map<String, Value>,
}

impl ComposeDocument {
    /// Reads and parses `path`; errors name the file and line.
    pub fn load(path: &Path) -> Result<Self, ComposeIssue> {
        let issue = |line, message| ComposeIssue {
            file: path.to_path_buf(),
            line,
            service: None,
            message,
        };
        let text = std::fs::read_to_string(path)
            .map_err(|error| issue(None, format!("cannot read the compose file: {error}")))?;
        Self::parse(path, text)
    }

    /// Parses compose `text` read from `path` (used for messages and relative paths).
    pub fn parse(path: &Path, text: String) -> Result<Self, ComposeIssue> {
        let issue = |line, message| ComposeIssue {
            file: path.to_path_buf(),
            line,
            service: None,
            message,
        };
        let root = match parse_yaml(&text) {
            Ok(Value::Object(root)) => root,
            Ok(Value::Null) => Map::new(),
            Ok(_) => {
                return Err(issue(
                    Some(1),
                    "the compose file must be a mapping at the top level".into(),
                ));
            }
            Err(error) => {
                return Err(issue(
                    error.line,
                    format!("invalid YAML: {}; fix the syntax", error.message),
                ));
            }
        };
        Ok(Self {
            path: path.to_path_buf(),
            text,
            root,
        })
    }

    /// Applies a later compose file (`-f base -f override`) as Compose merges it:
    /// services merge key by key (`build` in its mapping form, sequences appended
    /// without duplicates, scalars such as `image` replaced), other top-level keys
    /// merge the same way. Relative paths stay relative to this file's directory,
    /// as Compose resolves every file against the project directory.
    pub fn apply_override(&mut self, other: ComposeDocument) {
        for (key, value) in other.root {
            let merged = match (self.root.remove(&key), value) {
                (Some(Value::Object(mut services)), Value::Object(overrides))
                    if key == "services" =>
                {
                    for (name, definition) in overrides {
                        let merged = match services.remove(&name) {
                            Some(Value::Object(base)) => match definition {
                                Value::Object(own) => {
                                    Value::Object(merge_service_definitions(base, own))
                                }
                                _ => Value::Object(base),
                            },
                            _ => definition,
                        };
                        services.insert(name, merged);
                    }
                    Value::Object(services)
                }
                (Some(base), value) => merge_values(base, value),
                (None, value) => value,
            };
            self.root.insert(key, merged);
        }
    }

    fn directory(&self) -> PathBuf {
        self.path
            .parent()
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
    }

    /// The 1-based line where `needle` first appears in the file.
    pub fn line_of(&self, needle: &str) -> Option<usize> {
        let needle = needle
            .lines()
            .next()
            .filter(|line| !line.trim().is_empty())?;
        let offset = self.text.find(needle)?;
        Some(self.text[..offset].matches('\n').count() + 1)
    }

    /// The line of the service key `name:` under `services:`.
    fn line_of_key(&self, name: &str) -> Option<usize> {
        let services_line = self
            .text
            .lines()
            .position(|line| line.starts_with("services:"))
            .unwrap_or(0);
        self.text
            .lines()
            .enumerate()
            .skip(services_line)
            .find(|(_, line)| {
                let trimmed = line.trim_start();
                [name.to_string(), format!("\"{name}\""), format!("'{name}'")]
                    .iter()
                    .any(|key| {
                        trimmed
                            .strip_prefix(key.as_str())
                            .is_some_and(|rest| rest.trim_start().starts_with(':'))
                    })
            })
            .map(|(index, _)| index + 1)
    }
}

/// How a service is built, after interpolation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildSpec {
    /// Absolute local directory, or the remote URL as written.
    pub context: String,
    pub remote: bool,
    pub dockerfile: String,
    pub dockerfile_inline: Option<String>,
    /// Args with values resolved from the project variables; unset ones are dropped, as Compose does.
    pub args: IndexMap<String, String>,
    /// For each arg, the variables its compose text referenced.
    pub arg_variables: IndexMap<String, Vec<String>>,
    pub target: Option<String>,
}

/// One service, as far as its image is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceSpec {
    pub name: String,
    /// `image:` as written (after `extends`), before interpolation.
    pub image_ref: Option<String>,
    /// `image:` after interpolation; `None` when absent or unresolvable.
    pub image: Option<String>,
    /// Variables `image:` referenced, in order.
    pub image_variables: Vec<String>,
    pub build: Option<BuildSpec>,
    pub profiles: Vec<String>,
    pub platform: Option<String>,
    /// `pull_policy:` as `docker compose config` prints it (checked as Compose does).
    pub pull_policy: Option<String>,
    /// True when `image`/`build` could not be determined (the reason is in the issues).
    pub unresolved: bool,
}

/// What a compose file declares: its top-level `name:` and its services.
#[derive(Debug, Clone, Default)]
pub struct ComposeModel {
    pub name: Option<String>,
    pub services: Vec<ServiceSpec>,
    pub issues: Vec<ComposeIssue>,
    /// Not errors: a compose file without a `services` key (Compose accepts it).
    pub warnings: Vec<ComposeIssue>,
}

/// Reads the services of `document` (and of the files it `include`s) with variables from `lookup`.
pub fn read_model(document: &ComposeDocument, lookup: Lookup) -> ComposeModel {
    read_model_nested(document, lookup, 0)
}

/// The warning for a compose file without services, in Docker Compose's words.
pub const EMPTY_COMPOSE_FILE: &str =
    "empty compose file: it defines no services, so this project has no images";

const MAX_INCLUDE_DEPTH: usize = 16;

fn read_model_nested(document: &ComposeDocument, lookup: Lookup, depth: usize) -> ComposeModel {
    let mut model = ComposeModel::default();
    let mut report = |line: Option<usize>, service: Option<&str>, message: String| {
        model.issues.push(ComposeIssue {
            file: document.path.clone(),
            line,
            service: service.map(str::to_string),
            message,
        })
    };

    let mut includes = Vec::new();
    for (key, value) in &document.root {
        if key == "services" {
            continue;
        }
        let mut errors = Vec::new();
        let interpolated = interpolate_tree(value, lookup, key, &mut errors);
        for error in errors {
            report(document.line_of(&error.text), None, error.message);
        }
        match key.as_str() {
            "name" => model.name = scalar_text(&interpolated),
            "include" => match include_paths(&interpolated) {
                Ok(paths) => includes = paths,
                Err(message) => report(document.line_of_key("include"), None, message),
            },
            _ => {}
        }
    }

    let no_services = Map::new();
    let services = match document.root.get("services") {
        None | Some(Value::Null) if !includes.is_empty() => &no_services,
        None => {
            model.warnings.push(ComposeIssue {
                file: document.path.clone(),
                line: None,
                service: None,
                message: EMPTY_COMPOSE_FILE.into(),
            });
            return model;
        }
        Some(Value::Null) => {
            report(None, None, "the compose file defines no services".into());
            return model;
        }
        Some(Value::Object(services)) => services,
        Some(_) => {
            report(
                document.line_of_key("services"),
                None,
                "`services` must be a mapping of service names to definitions".into(),
            );
            return model;
        }
    };

    for name in services.keys() {
        let resolved = match resolve_extends(document, name, lookup, &mut Vec::new()) {
            Ok(resolved) => resolved,
            Err(issue) => {
                model.issues.push(ComposeIssue {
                    service: Some(name.clone()),
                    line: issue.line.or_else(|| document.line_of_key(name)),
                    ..issue
                });
                model.services.push(unresolved_service(name));
                continue;
            }
        };
        let mut issues = Vec::new();
        let service = read_service(document, name, &resolved, lookup, &mut issues);
        model.issues.extend(issues);
        model.services.push(service);
    }

    for path in includes {
        let include_issue = |message: String| ComposeIssue {
            file: document.path.clone(),
            line: document
                .line_of(&path)
                .or_else(|| document.line_of_key("include")),
            service: None,
            message,
        };
        if depth >= MAX_INCLUDE_DEPTH {
            model.issues.push(include_issue(format!(
                "`include` of {path:?} nests too deep (a cycle?)"
            )));
            continue;
        }
        let included_path = document.directory().join(&path);
        if !included_path.is_file() {
            model.issues.push(include_issue(format!(
                "the included compose file {} does not exist; fix `include:`",
                included_path.display()
            )));
            continue;
        }
        let included = match ComposeDocument::load(&included_path) {
            Ok(included) => included,
            Err(issue) => {
                model.issues.push(issue);
                continue;
            }
        };
        let nested = read_model_nested(&included, lookup, depth + 1);
        model.issues.extend(nested.issues);
        model.warnings.extend(nested.warnings);
        for service in nested.services {
            if model
                .services
                .iter()
                .any(|known| known.name == service.name)
            {
                model.issues.push(include_issue(format!(
                    "service {:?} from the included {path:?} conflicts with a service of the same name",
                    service.name
                )));
            } else {
                model.services.push(service);
            }
        }
    }
    model
}

/// The files of an `include:` list (`- file.yaml` or `- path: file.yaml | [files]`).
fn include_paths(include: &Value) -> Result<Vec<String>, String> {
    let invalid = || "`include` must be a list of paths or of mappings with `path`".to_string();
    let Value::Array(items) = include else {
        return Err(invalid());
    };
    let mut paths = Vec::new();
    for item in items {
        match item {
            Value::String(path) => paths.push(path.clone()),
            Value::Object(map) => match map.get("path") {
                Some(Value::String(path)) => paths.push(path.clone()),
                Some(Value::Array(list)) => {
                    paths.extend(list.iter().filter_map(Value::as_str).map(str::to_string))
                }
                _ => return Err(invalid()),
            },
            _ => return Err(invalid()),
        }
    }
    Ok(paths)
}

fn unresolved_service(name: &str) -> ServiceSpec {
    ServiceSpec {
        name: name.to_string(),
        image_ref: None,
        image: None,
        image_variables: Vec::new(),
        build: None,
        profiles: Vec::new(),
        platform: None,
        pull_policy: None,
        unresolved: true,
    }
}

/// A service definition with `extends` applied, and the directory its build
/// context is relative to.
struct ResolvedService {
    definition: Map<String, Value>,
    context_directory: PathBuf,
}

const MAX_EXTENDS_DEPTH: usize = 32;

fn resolve_extends(
    document: &ComposeDocument,
    name: &str,
    lookup: Lookup,
    chain: &mut Vec<(PathBuf, String)>,
) -> Result<ResolvedService, ComposeIssue> {
    let issue = |message: String| ComposeIssue {
        file: document.path.clone(),
        line: document.line_of_key(name),
        service: Some(name.to_string()),
        message,
    };
    let key = (document.path.clone(), name.to_string());
    if chain.contains(&key) || chain.len() > MAX_EXTENDS_DEPTH {
        return Err(issue(format!(
            "`extends` of service {name:?} forms a cycle"
        )));
    }
    chain.push(key);
    let definition = match document
        .root
        .get("services")
        .and_then(|services| services.get(name))
    {
        Some(Value::Object(definition)) => definition.clone(),
        Some(Value::Null) => Map::new(),
        Some(_) => return Err(issue(format!("service {name:?} must be a mapping"))),
        None => {
            return Err(issue(format!(
                "service {name:?} (named in `extends`) does not exist in {}",
                document.path.display()
            )));
        }
    };
    let own = ResolvedService {
        definition,
        context_directory: document.directory(),
    };
    let Some(extends) = own.definition.get("extends").cloned() else {
        return Ok(own);
    };
    let mut errors = Vec::new();
    let extends = interpolate_tree(&extends, lookup, "extends", &mut errors);
    if let Some(error) = errors.into_iter().next() {
        return Err(issue(error.message));
    }
    let (base_file, base_name) = match &extends {
        Value::String(base) => (None, base.clone()),
        Value::Object(map) => {
            let Some(base) = map.get("service").and_then(Value::as_str) else {
                return Err(issue("`extends` needs a `service`".into()));
            };
            (
                map.get("file").and_then(Value::as_str).map(str::to_string),
                base.to_string(),
            )
        }
        _ => {
            return Err(issue(
                "`extends` must be a service name or a mapping".into(),
            ));
        }
    };
    let base = match base_file {
        None => resolve_extends(document, &base_name, lookup, chain)?,
        Some(file) => {
            let path = document.directory().join(file);
            let other = ComposeDocument::load(&path)?;
            resolve_extends(&other, &base_name, lookup, chain)?
        }
    };
    chain.pop();
    Ok(merge_extended(base, own))
}

/// Compose's `extends` merge: the extending service's keys win; mappings merge key by key.
fn merge_extended(base: ResolvedService, own: ResolvedService) -> ResolvedService {
    let own_sets_context = match own.definition.get("build") {
        Some(Value::String(_)) => true,
        Some(Value::Object(build)) => build.contains_key("context"),
        _ => false,
    };
    let context_directory = if own_sets_context || !base.definition.contains_key("build") {
        own.context_directory
    } else {
        base.context_directory
    };
    let mut base_definition = base.definition;
    base_definition.remove("extends");
    let mut own_definition = own.definition;
    own_definition.remove("extends");
    ResolvedService {
        definition: merge_service_definitions(base_definition, own_definition),
        context_directory,
    }
}

/// One service definition over another (`extends`, override files): `own`'s keys
/// win; mappings merge key by key, `build` in its mapping form.
fn merge_service_definitions(
    mut definition: Map<String, Value>,
    own: Map<String, Value>,
) -> Map<String, Value> {
    for (key, value) in own {
        let merged = match (definition.remove(&key), value) {
            (Some(base), own) if key == "build" => {
                merge_values(build_as_map(base), build_as_map(own))
            }
            (Some(base), own) => merge_values(base, own),
            (None, own) => own,
        };
        definition.insert(key, merged);
    }
    definition
}

/// `build` in mapping form with `args` as a mapping, so two builds merge key by key.
fn build_as_map(build: Value) -> Value {
    match build {
        Value::String(context) => {
            let mut map = Map::new();
            map.insert("context".into(), Value::String(context));
            Value::Object(map)
        }
        Value::Object(mut map) => {
            if let Some(Value::Array(items)) = map.get("args") {
                let args: Map<String, Value> = items
                    .iter()
                    .filter_map(Value::as_str)
                    .map(|item| match item.split_once('=') {
                        Some((key, value)) => (key.to_string(), Value::String(value.to_string())),
                        None => (item.to_string(), Value::Null),
                    })
                    .collect();
                map.insert("args".into(), Value::Object(args));
            }
            Value::Object(map)
        }
        other => other,
    }
}

fn merge_values(base: Value, own: Value) -> Value {
    match (base, own) {
        (Value::Object(mut base), Value::Object(own)) => {
            for (key, value) in own {
                let merged = match base.remove(&key) {
                    Some(existing) => merge_values(existing, value),
                    None => value,
                };
                base.insert(key, merged);
            }
            Value::Object(base)
        }
        // Sequences (profiles, ports, ...) are appended without duplicates, as Compose does.
        (Value::Array(mut base), Value::Array(own)) => {
            for item in own {
                if !base.contains(&item) {
                    base.push(item);
                }
            }
            Value::Array(base)
        }
        (_, own) => own,
    }
}

/// An interpolation failure with the raw text that caused it.
struct TreeError {
    text: String,
    message: String,
}

/// Interpolates every string value of `value` (keys are left alone, as in Compose).
fn interpolate_tree(
    value: &Value,
    lookup: Lookup,
    path: &str,
    errors: &mut Vec<TreeError>,
) -> Value {
    match value {
        Value::String(text) => match interpolate(text, lookup) {
            Ok(result) => Value::String(result.value),
            Err(error) => {
                errors.push(TreeError {
                    text: text.clone(),
                    message: format!("{path}: {}", describe_interpolation_error(&error)),
                });
                Value::Null
            }
        },
        Value::Array(items) => Value::Array(
            items
                .iter()
                .enumerate()
                .map(|(index, item)| {
                    interpolate_tree(item, lookup, &format!("{path}[{index}]"), errors)
                })
                .collect(),
        ),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(key, item)| {
                    (
                        key.clone(),
                        interpolate_tree(item, lookup, &format!("{path}.{key}"), errors),
                    )
                })
                .collect(),
        ),
        other => other.clone(),
    }
}

fn describe_interpolation_error(error: &InterpolationError) -> String {
    match error {
        InterpolationError::Required { variable, .. } => {
            format!(
                "{error}; set {variable} in the project's .env-dist, the root .env_<context> or the environment"
            )
        }
        InterpolationError::Syntax { .. } => {
            format!("{error}; write `$$` for a literal dollar sign")
        }
    }
}

/// Reads `image`, `build`, `profiles` and `platform` of a resolved service.
fn read_service(
    document: &ComposeDocument,
    name: &str,
    resolved: &ResolvedService,
    lookup: Lookup,
    issues: &mut Vec<ComposeIssue>,
) -> ServiceSpec {
    let mut report = |line: Option<usize>, message: String| {
        issues.push(ComposeIssue {
            file: document.path.clone(),
            line: line.or_else(|| document.line_of_key(name)),
            service: Some(name.to_string()),
            message,
        })
    };
    let mut failed_fields = Vec::new();
    let mut definition = Map::new();
    for (key, value) in &resolved.definition {
        let mut errors = Vec::new();
        let interpolated = interpolate_tree(
            value,
            lookup,
            &format!("services.{name}.{key}"),
            &mut errors,
        );
        if !errors.is_empty() {
            failed_fields.push(key.clone());
        }
        for error in errors {
            report(document.line_of(&error.text), error.message);
        }
        definition.insert(key.clone(), interpolated);
    }
    let image_failed = failed_fields.iter().any(|field| field == "image");
    let build_failed = failed_fields.iter().any(|field| field == "build");

    let image_ref = resolved.definition.get("image").and_then(scalar_text);
    let mut unresolved = image_failed || build_failed;
    let image_variables = image_ref
        .as_deref()
        .and_then(|raw| interpolate(raw, lookup).ok())
        .map(|result| result.variables)
        .unwrap_or_default();
    let image = match definition.get("image") {
        None | Some(Value::Null) => None,
        Some(value) => match scalar_text(value) {
            Some(text) => Some(text),
            None => {
                report(
                    image_ref.as_deref().and_then(|raw| document.line_of(raw)),
                    format!("services.{name}.image must be a string"),
                );
                unresolved = true;
                None
            }
        },
    };

    let build = if build_failed {
        None
    } else {
        match definition.get("build") {
            None | Some(Value::Null) => None,
            Some(build) => {
                match read_build(
                    build,
                    resolved.definition.get("build"),
                    &resolved.context_directory,
                    lookup,
                ) {
                    Ok(build) => Some(build),
                    Err(message) => {
                        let line = document.line_of_key(name).map(|line| {
                            find_key_after(&document.text, line, "build").unwrap_or(line)
                        });
                        report(line, format!("services.{name}.build: {message}"));
                        unresolved = true;
                        None
                    }
                }
            }
        }
    };

    // Compose treats an image that interpolates to "" as no image at all.
    let image_was_empty = image.as_deref() == Some("");
    let image = image.filter(|image| !image.is_empty());
    if image.is_none() && build.is_none() && !unresolved {
        let message = match (&image_ref, image_was_empty) {
            (Some(raw), true) => format!(
                "services.{name}.image {raw:?} resolves to an empty name and there is no `build:`; set {} in .env-dist or the environment",
                if image_variables.is_empty() {
                    "its variables".to_string()
                } else {
                    image_variables.join(", ")
                }
            ),
            _ => format!(
                "service {name:?} has neither an image nor a build context; add `image:` or `build:`"
            ),
        };
        report(
            image_ref.as_deref().and_then(|raw| document.line_of(raw)),
            message,
        );
        unresolved = true;
    }

    let profiles = match definition.get("profiles") {
        Some(Value::Array(items)) => items.iter().filter_map(scalar_text).collect(),
        Some(Value::String(profile)) => vec![profile.clone()],
        _ => Vec::new(),
    };
    let platform = definition.get("platform").and_then(scalar_text);
    let pull_policy = match definition.get("pull_policy") {
        None | Some(Value::Null) => None,
        Some(value) => {
            let text = scalar_text(value).unwrap_or_default();
            match super::pull_policy::normalize(name, &text) {
                Ok(policy) => Some(policy),
                Err(message) => {
                    let line = document
                        .line_of_key(name)
                        .and_then(|line| find_key_after(&document.text, line, "pull_policy"));
                    report(line, message);
                    None
                }
            }
        }
    };

    ServiceSpec {
        name: name.to_string(),
        image_ref,
        image,
        image_variables,
        build,
        profiles,
        platform,
        pull_policy,
        unresolved,
    }
}

/// The line of `key:` at or after `from_line` (1-based), for pointing into a service.
fn find_key_after(text: &str, from_line: usize, key: &str) -> Option<usize> {
    text.lines()
        .enumerate()
        .skip(from_line)
        .find(|(_, line)| line.trim_start().starts_with(&format!("{key}:")))
        .map(|(index, _)| index + 1)
}

/// Docker's rule for a build context the engine fetches itself.
pub fn is_remote_context(context: &str) -> bool {
    context.contains("://") || context.starts_with("git@") || context.starts_with("github.com/")
}

fn read_build(
    build: &Value,
    raw_build: Option<&Value>,
    base_directory: &Path,
    lookup: Lookup,
) -> Result<BuildSpec, String> {
    let (context, options) = match build {
        Value::String(context) => (context.clone(), Map::new()),
        Value::Object(options) => {
            let context = match options.get("context") {
                None | Some(Value::Null) => ".".to_string(),
                Some(value) => scalar_text(value).ok_or("`context` must be a string")?,
            };
            (context, options.clone())
        }
        _ => {
            return Err("unknown build form: expected a context path or URL, or a mapping with `context`, `dockerfile`, `args`, `target`".into());
        }
    };
    let remote = is_remote_context(&context);
    let context = if remote {
        context
    } else {
        let path = Path::new(&context);
        let joined = if path.is_absolute() {
            path.to_path_buf()
        } else {
            base_directory.join(path)
        };
        normalize_path(&joined).to_string_lossy().into_owned()
    };
    let text_field = |key: &str| -> Result<Option<String>, String> {
        match options.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(value) => scalar_text(value)
                .map(Some)
                .ok_or_else(|| format!("`{key}` must be a string")),
        }
    };
    let dockerfile = text_field("dockerfile")?.unwrap_or_else(|| "Dockerfile".to_string());
    let dockerfile_inline = text_field("dockerfile_inline")?;
    let target = text_field("target")?;

    let raw_args = raw_build.and_then(|raw| raw.get("args"));
    let arg_variables_of = |key: &str, index: usize| -> Vec<String> {
        let raw_text = match raw_args {
            Some(Value::Object(map)) => map.get(key).and_then(scalar_text),
            Some(Value::Array(items)) => items.get(index).and_then(scalar_text),
            _ => None,
        };
        raw_text
            .and_then(|text| interpolate(&text, lookup).ok())
            .map(|result| result.variables)
            .unwrap_or_default()
    };
    let mut args = IndexMap::new();
    let mut arg_variables = IndexMap::new();
    let mut add_arg = |key: String, value: Option<String>, variables: Vec<String>| {
        let value = value.or_else(|| lookup(&key));
        let variables = if variables.is_empty() && value.is_some() {
            vec![key.clone()]
        } else {
            variables
        };
        if let Some(value) = value {
            arg_variables.insert(key.clone(), variables);
            args.insert(key, value);
        }
    };
    match options.get("args") {
        None | Some(Value::Null) => {}
        Some(Value::Object(map)) => {
            for (index, (key, value)) in map.iter().enumerate() {
                let variables = arg_variables_of(key, index);
                let value = match value {
                    Value::Null => None,
                    other => Some(
                        scalar_text(other)
                            .ok_or_else(|| format!("arg {key:?} must be a scalar"))?,
                    ),
                };
                add_arg(key.clone(), value, variables);
            }
        }
        Some(Value::Array(items)) => {
            for (index, item) in items.iter().enumerate() {
                let text = scalar_text(item)
                    .ok_or("each `args` list item must be `NAME=value` or `NAME`")?;
                let variables = arg_variables_of("", index);
                match text.split_once('=') {
                    Some((key, value)) => {
                        add_arg(key.to_string(), Some(value.to_string()), variables)
                    }
                    None => add_arg(text, None, variables),
                }
            }
        }
        Some(_) => return Err("`args` must be a mapping or a list of `NAME=value`".into()),
    }
    Ok(BuildSpec {
        context,
        remote,
        dockerfile,
        dockerfile_inline,
        args,
        arg_variables,
        target,
    })
}

/// Removes `.` and resolves `..` lexically, as Compose does for contexts.
fn normalize_path(path: &Path) -> PathBuf {
    let mut normalized = PathBuf::new();
    for component in path.components() {
        match component {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                if !normalized.pop() {
                    normalized.push("..");
                }
            }
            other => normalized.push(other.as_os_str()),
        }
    }
    normalized
}

/// The text of a scalar (numbers and booleans as Compose prints them); `None` for
/// null, sequences and mappings.
pub fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        Value::Bool(flag) => Some(flag.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model_of(text: &str, variables: &[(&str, &str)]) -> ComposeModel {
        let document =
            ComposeDocument::parse(Path::new("/p/docker-compose.yaml"), text.to_string()).unwrap();
        let lookup = |name: &str| {
            variables
                .iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| value.to_string())
        };
        read_model(&document, &lookup)
    }

    #[test]
    fn extends_merges_build_args_from_list_and_map_and_appends_profiles() {
        let model = model_of(
            "services:\n  base:\n    build:\n      context: b\n      args: [A=1, B=2]\n    profiles: [x]\n  child:\n    extends: base\n    build:\n      args:\n        B: 3\n    profiles: [y, x]\n",
            &[],
        );
        let child = model
            .services
            .iter()
            .find(|service| service.name == "child")
            .unwrap();
        let build = child.build.as_ref().unwrap();
        assert_eq!(build.context, "/p/b");
        assert_eq!(build.args.get("A").map(String::as_str), Some("1"));
        assert_eq!(build.args.get("B").map(String::as_str), Some("3"));
        assert_eq!(child.profiles, ["x", "y"]);
        assert!(model.issues.is_empty(), "{:?}", model.issues);
    }

    #[test]
    fn args_without_value_come_from_the_variables_or_are_dropped() {
        let model = model_of(
            "services:\n  s:\n    build:\n      args:\n        - KNOWN\n        - UNKNOWN\n        - REF=${KNOWN}-x\n",
            &[("KNOWN", "k")],
        );
        let build = model.services[0].build.as_ref().unwrap();
        assert_eq!(build.context, "/p");
        assert_eq!(
            build
                .args
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>(),
            ["KNOWN=k", "REF=k-x"]
        );
        assert_eq!(build.arg_variables["REF"], ["KNOWN"]);
    }

    #[test]
    fn an_override_file_merges_services_as_compose_does() {
        let mut document = ComposeDocument::parse(
            Path::new("/p/docker-compose.yaml"),
            "services:\n  a:\n    image: x:1\n    build:\n      context: b\n      args: [A=1]\n    profiles: [p]\n".to_string(),
        )
        .unwrap();
        let other = ComposeDocument::parse(
            Path::new("/p/docker-compose.override_c_i.yaml"),
            "services:\n  a:\n    image: x:2\n    build: .\n    profiles: [q]\n  new:\n    image: y:${V}\n".to_string(),
        )
        .unwrap();
        document.apply_override(other);
        let lookup = |name: &str| (name == "V").then(|| "3".to_string());
        let model = read_model(&document, &lookup);
        assert!(model.issues.is_empty(), "{:?}", model.issues);
        let a = &model.services[0];
        assert_eq!(a.image.as_deref(), Some("x:2"));
        let build = a.build.as_ref().unwrap();
        assert_eq!(build.context, "/p");
        assert_eq!(build.args.get("A").map(String::as_str), Some("1"));
        assert_eq!(a.profiles, ["p", "q"]);
        assert_eq!(model.services[1].image.as_deref(), Some("y:3"));
    }

    #[test]
    fn remote_contexts_are_recognised() {
        for context in [
            "https://github.com/a/b.git#main",
            "git@github.com:a/b.git",
            "github.com/a/b",
            "git://example.com/x.git",
        ] {
            assert!(is_remote_context(context), "{context}");
        }
        assert!(!is_remote_context("./app"));
        assert!(!is_remote_context("/abs/app"));
    }

    #[test]
    fn interpolation_errors_point_at_the_line() {
        let model = model_of(
            "services:\n  s:\n    image: nginx\n    environment:\n      A: ${MISSING:?needed}\n",
            &[],
        );
        assert_eq!(model.issues.len(), 1);
        assert_eq!(model.issues[0].line, Some(5));
        assert!(
            model.issues[0].message.contains("MISSING"),
            "{:?}",
            model.issues
        );
        assert_eq!(model.services[0].image.as_deref(), Some("nginx"));
    }
}

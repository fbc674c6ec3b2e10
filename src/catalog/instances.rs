//! Configured instances of a project, as the d.rymcg.tech tooling keeps them:
//! one env file `.env_<context>_<instance>` per instance (in the project
//! directory, or under `DRT_ENV_DIR/<project>/` when that variable is set), an
//! optional override `docker-compose.override_<context>_<instance>.yaml` in the
//! project directory, and the Compose project name `<project>` for instance
//! `default`, `<project>_<instance>` otherwise.
//!
//! What a server runs is configured per instance, so the catalog resolves each
//! instance on its own; a project without one falls back to `.env-dist`.

use std::path::{Path, PathBuf};

use super::scan::normalize_project_name;

/// The instance every d.rymcg.tech project has first.
pub const DEFAULT_INSTANCE: &str = "default";

/// One configured instance of a project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    pub name: String,
    /// `.env_<context>_<instance>`.
    pub env_file: PathBuf,
    /// `docker-compose.override_<context>_<instance>.yaml`, when it exists.
    pub override_file: Option<PathBuf>,
}

/// Where a project's instance env files live: `DRT_ENV_DIR/<project>` when
/// `drt_env_dir` is given, else the project directory.
pub fn env_directory(project_dir: &Path, project: &str, drt_env_dir: Option<&Path>) -> PathBuf {
    match drt_env_dir {
        Some(base) => base.join(project),
        None => project_dir.to_path_buf(),
    }
}

/// The instances configured for `context`, sorted by name (`default` first).
/// A missing directory has none.
pub fn find_instances(
    project_dir: &Path,
    env_dir: &Path,
    context: &str,
) -> std::io::Result<Vec<Instance>> {
    let prefix = format!(".env_{context}_");
    let entries = match std::fs::read_dir(env_dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(error),
    };
    let mut instances = Vec::new();
    for entry in entries {
        let entry = entry?;
        let file_name = entry.file_name().to_string_lossy().into_owned();
        let Some(name) = file_name.strip_prefix(&prefix) else {
            continue;
        };
        if name.is_empty() || !entry.path().is_file() {
            continue;
        }
        let override_file = project_dir.join(override_file_name(context, name));
        instances.push(Instance {
            name: name.to_string(),
            env_file: entry.path(),
            override_file: override_file.is_file().then_some(override_file),
        });
    }
    instances.sort_by(|a, b| {
        (a.name != DEFAULT_INSTANCE, &a.name).cmp(&(b.name != DEFAULT_INSTANCE, &b.name))
    });
    Ok(instances)
}

/// `docker-compose.override_<context>_<instance>.yaml`.
pub fn override_file_name(context: &str, instance: &str) -> String {
    format!("docker-compose.override_{context}_{instance}.yaml")
}

/// The Compose project name of an instance: the project's own name for
/// `default`, `<project>_<instance>` otherwise, normalised as Compose does.
pub fn instance_project_name(project: &str, instance: &str) -> String {
    if instance == DEFAULT_INSTANCE {
        normalize_project_name(project)
    } else {
        normalize_project_name(&format!("{project}_{instance}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instances_are_found_for_the_context_only() {
        let dir = tempfile::tempdir().unwrap();
        for name in [
            ".env_prod_default",
            ".env_prod_second",
            ".env_prod_",
            ".env_test_default",
            ".env_prod",
            ".env-dist",
            "docker-compose.override_prod_second.yaml",
        ] {
            std::fs::write(dir.path().join(name), "").unwrap();
        }
        let found = find_instances(dir.path(), dir.path(), "prod").unwrap();
        let names: Vec<&str> = found.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(names, ["default", "second"]);
        assert_eq!(found[0].override_file, None);
        assert_eq!(
            found[1].override_file.as_deref(),
            Some(
                dir.path()
                    .join("docker-compose.override_prod_second.yaml")
                    .as_path()
            )
        );
        assert!(
            find_instances(dir.path(), &dir.path().join("missing"), "prod")
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn project_names_follow_the_instance() {
        assert_eq!(instance_project_name("Demo", "default"), "demo");
        assert_eq!(instance_project_name("demo", "second"), "demo_second");
    }
}

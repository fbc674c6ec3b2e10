//! The catalog against the running containers: three kinds of difference.
//!
//! A container belongs to the catalog project whose Compose project name
//! (`compose_name`, what `docker compose` labels it with) equals its
//! `com.docker.compose.project` label. Its image is cataloged when that project
//! catalogs the same image (compared by canonical name). A catalog service is
//! deployed when a running container of its project uses its image. A container
//! whose image name now resolves to another image ID (or to none) runs an image
//! its tag no longer names: the tag moved after it started.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use crate::catalog::{Catalog, ImageSource};
use crate::engine::containers::RunningContainer;
use crate::image::reference::canonical_name;

/// The kinds of difference, as `--json` and the table name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DifferenceKind {
    /// A running container whose image the catalog does not list for its project.
    NotCataloged,
    /// A cataloged service image no running container of its project uses.
    NotDeployed,
    /// A running container whose image name now points to another image (or none).
    TagMoved,
}

impl DifferenceKind {
    pub fn word(self) -> &'static str {
        match self {
            DifferenceKind::NotCataloged => "not-cataloged",
            DifferenceKind::NotDeployed => "not-deployed",
            DifferenceKind::TagMoved => "tag-moved",
        }
    }
}

/// One difference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Difference {
    pub kind: DifferenceKind,
    /// Catalog project (directory name), when the container or entry belongs to one.
    pub project: Option<String>,
    /// Compose project of the container (or of the catalog project).
    pub compose_project: Option<String>,
    pub service: Option<String>,
    /// Image name as the container was created from it, or as the catalog has it.
    pub image: String,
    /// The container's name (`None` for not-deployed).
    pub container: Option<String>,
    /// The image ID the container runs.
    pub image_id: Option<String>,
    /// The image ID the name points to now (tag-moved; `None`: the name is gone).
    pub image_now: Option<String>,
    /// A sentence saying what differs.
    pub detail: String,
}

/// A running container with the catalog project it belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeployedContainer {
    #[serde(flatten)]
    pub container: RunningContainer,
    /// The catalog project whose Compose project name is the container's.
    pub catalog_project: Option<String>,
    /// True when that project catalogs the container's image.
    pub cataloged: bool,
}

/// The whole comparison.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Comparison {
    /// The engine asked (`ssh://…`).
    pub engine: String,
    /// The running containers compared (those of the selected projects when
    /// `--project`/`--exclude` select some).
    pub containers: Vec<DeployedContainer>,
    /// Every difference, ordered by kind, project, service, image.
    pub differences: Vec<Difference>,
}

impl Comparison {
    pub fn count(&self, kind: DifferenceKind) -> usize {
        self.differences
            .iter()
            .filter(|difference| difference.kind == kind)
            .count()
    }
}

/// Which containers to compare: all, or those of the catalog's projects only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerScope {
    /// Every running container (no `--project`/`--exclude`).
    All,
    /// Only containers of the cataloged (selected) projects.
    CatalogProjects,
}

/// Compares `catalog` with the running `containers` of `engine`.
pub fn compare(
    engine: &str,
    catalog: &Catalog,
    containers: Vec<RunningContainer>,
    scope: ContainerScope,
) -> Comparison {
    let by_compose_name: HashMap<String, String> = catalog
        .projects
        .iter()
        .map(|project| {
            (
                project
                    .compose_name
                    .clone()
                    .unwrap_or_else(|| project.name.clone()),
                project.name.clone(),
            )
        })
        .collect();
    let compose_name_of: HashMap<&str, &str> = by_compose_name
        .iter()
        .map(|(compose, project)| (project.as_str(), compose.as_str()))
        .collect();
    // The Compose project an entry runs under: its configured instance's, else its
    // project's (`<project>` or `<project>_<instance>`, as `docker compose -p`).
    let compose_of = |entry: &crate::catalog::CatalogEntry| -> String {
        entry
            .compose_project
            .clone()
            .or_else(|| {
                compose_name_of
                    .get(entry.project.as_str())
                    .map(|name| name.to_string())
            })
            .unwrap_or_else(|| entry.project.clone())
    };
    // Compose project -> canonical images of its services -> services
    let mut cataloged: HashMap<String, BTreeMap<String, Vec<&str>>> = HashMap::new();
    for entry in &catalog.entries {
        if let (Some(image), Some(service)) = (&entry.image, &entry.service) {
            cataloged
                .entry(compose_of(entry))
                .or_default()
                .entry(canonical_name(image))
                .or_default()
                .push(service.as_str());
        }
    }

    let mut deployed = Vec::new();
    let mut differences = Vec::new();
    for container in containers {
        let catalog_project = container
            .project
            .as_ref()
            .and_then(|compose| by_compose_name.get(compose).cloned());
        if scope == ContainerScope::CatalogProjects && catalog_project.is_none() {
            continue;
        }
        let canonical = canonical_name(&container.image);
        let is_cataloged = container
            .project
            .as_deref()
            .and_then(|compose| cataloged.get(compose))
            .is_some_and(|images| images.contains_key(&canonical));
        let difference = |kind, detail: String| Difference {
            kind,
            project: catalog_project.clone(),
            compose_project: container.project.clone(),
            service: container.service.clone(),
            image: container.image.clone(),
            container: Some(container.name.clone()),
            image_id: Some(container.image_id.clone()),
            image_now: container.image_now.clone(),
            detail,
        };
        if !is_cataloged {
            let detail = match (&container.project, &catalog_project) {
                (None, _) => "not started by Docker Compose (no com.docker.compose.project label)"
                    .to_string(),
                (Some(compose), None) => format!(
                    "Compose project {compose} is not in the catalog{}",
                    container
                        .working_dir
                        .as_deref()
                        .map(|dir| format!(" (started from {dir})"))
                        .unwrap_or_default()
                ),
                (Some(_), Some(project)) => {
                    not_cataloged_detail(catalog, project, container.service.as_deref())
                }
            };
            differences.push(difference(DifferenceKind::NotCataloged, detail));
        }
        if container.tag_moved() {
            let detail = match &container.image_now {
                Some(now) => format!(
                    "runs {}, but {} now points to {}",
                    short(&container.image_id),
                    container.image,
                    short(now)
                ),
                None => format!(
                    "runs {}, but the engine no longer has an image named {}",
                    short(&container.image_id),
                    container.image
                ),
            };
            differences.push(difference(DifferenceKind::TagMoved, detail));
        }
        deployed.push(DeployedContainer {
            container,
            catalog_project,
            cataloged: is_cataloged,
        });
    }

    for entry in &catalog.entries {
        let (Some(image), Some(service)) = (&entry.image, &entry.service) else {
            continue;
        };
        if entry.source == ImageSource::Base {
            continue;
        }
        let canonical = canonical_name(image);
        let compose_project = compose_of(entry);
        let runs = deployed.iter().any(|found| {
            found.container.project.as_deref() == Some(compose_project.as_str())
                && canonical_name(&found.container.image) == canonical
        });
        if runs {
            continue;
        }
        let compose = Some(compose_project);
        let mut detail = format!(
            "no running container of Compose project {} uses it",
            compose.as_deref().unwrap_or(&entry.project)
        );
        if !entry.profiles.is_empty() {
            detail.push_str(&format!(
                " (service only started with profile {})",
                entry.profiles.join(", ")
            ));
        }
        differences.push(Difference {
            kind: DifferenceKind::NotDeployed,
            project: Some(entry.project.clone()),
            compose_project: compose,
            service: Some(service.clone()),
            image: image.clone(),
            container: None,
            image_id: None,
            image_now: None,
            detail,
        });
    }
    differences.sort_by(|left, right| {
        (
            left.kind,
            &left.project,
            &left.compose_project,
            &left.service,
            &left.container,
        )
            .cmp(&(
                right.kind,
                &right.project,
                &right.compose_project,
                &right.service,
                &right.container,
            ))
    });
    Comparison {
        engine: engine.to_string(),
        containers: deployed,
        differences,
    }
}

/// Why a container of a cataloged project is not cataloged: its service has
/// another image in the catalog, or the service is not in it at all.
fn not_cataloged_detail(catalog: &Catalog, project: &str, service: Option<&str>) -> String {
    let service_images: Vec<&str> = catalog
        .entries
        .iter()
        .filter(|entry| entry.project == project && entry.service.as_deref() == service)
        .filter_map(|entry| entry.image.as_deref())
        .collect();
    match (service, service_images.is_empty()) {
        (Some(service), false) => format!(
            "the catalog has {} for {project}/{service}",
            service_images.join(", ")
        ),
        (Some(service), true) => {
            format!("service {service} is not in the catalog of project {project}")
        }
        (None, _) => format!("no service label; project {project} does not catalog this image"),
    }
}

/// `sha256:0123456789ab…` → `0123456789ab`.
pub fn short(id: &str) -> &str {
    let hex = id.strip_prefix("sha256:").unwrap_or(id);
    &hex[..hex.len().min(12)]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{CatalogEntry, ProjectInfo};

    fn container(
        name: &str,
        project: &str,
        service: &str,
        image: &str,
        id: &str,
        now: &str,
    ) -> RunningContainer {
        RunningContainer {
            id: format!("id-{name}"),
            name: name.into(),
            image: image.into(),
            image_id: id.into(),
            image_now: (!now.is_empty()).then(|| now.to_string()),
            project: (!project.is_empty()).then(|| project.to_string()),
            service: Some(service.into()),
            working_dir: None,
            config_files: vec![],
        }
    }

    fn entry(project: &str, service: &str, image: &str) -> CatalogEntry {
        CatalogEntry {
            project: project.into(),
            service: Some(service.into()),
            image: Some(image.into()),
            image_ref: None,
            source: ImageSource::Pull,
            build: None,
            base_for: vec![],
            profiles: vec![],
            instance: None,
            compose_project: None,
            env_var: None,
            env_default: None,
            pinned: true,
            registry: None,
            platform: None,
            pull_policy: None,
        }
    }

    fn catalog() -> Catalog {
        Catalog {
            projects: vec![ProjectInfo {
                name: "Web".into(),
                compose_name: Some("web".into()),
                compose_file: "Web/compose.yaml".into(),
                env_files: vec![],
                instance: None,
                override_file: None,
                ok: true,
            }],
            entries: vec![
                entry("Web", "app", "app:1"),
                entry("Web", "db", "docker.io/library/db:2"),
            ],
            ..Catalog::default()
        }
    }

    #[test]
    fn each_kind_of_difference_is_found() {
        let containers = vec![
            container(
                "web-app-1",
                "web",
                "app",
                "app:1",
                "sha256:old",
                "sha256:new",
            ),
            container(
                "web-cache-1",
                "web",
                "cache",
                "cache:1",
                "sha256:c",
                "sha256:c",
            ),
            container("other-x-1", "other", "x", "x:1", "sha256:x", "sha256:x"),
        ];
        let comparison = compare("e", &catalog(), containers, ContainerScope::All);
        let kinds: Vec<(DifferenceKind, Option<&str>, &str)> = comparison
            .differences
            .iter()
            .map(|d| (d.kind, d.service.as_deref(), d.image.as_str()))
            .collect();
        assert_eq!(
            kinds,
            [
                (DifferenceKind::NotCataloged, Some("x"), "x:1"),
                (DifferenceKind::NotCataloged, Some("cache"), "cache:1"),
                (
                    DifferenceKind::NotDeployed,
                    Some("db"),
                    "docker.io/library/db:2"
                ),
                (DifferenceKind::TagMoved, Some("app"), "app:1"),
            ]
        );
        assert!(
            comparison.differences[0]
                .detail
                .contains("Compose project other is not in the catalog")
        );
        assert!(
            comparison.differences[1]
                .detail
                .contains("service cache is not in the catalog of project Web")
        );
        assert!(
            comparison.differences[3]
                .detail
                .contains("runs old, but app:1 now points to new")
        );

        let only = compare(
            "e",
            &catalog(),
            vec![container(
                "other-x-1",
                "other",
                "x",
                "x:1",
                "sha256:x",
                "sha256:x",
            )],
            ContainerScope::CatalogProjects,
        );
        assert!(only.containers.is_empty());
        assert_eq!(only.count(DifferenceKind::NotDeployed), 2);
    }
}

//! Which images a restore loads, and from which files.
//!
//! The manifest has one entry per project × image, so an image two projects use
//! is listed (and archived) for both. The plan selects the entries of the chosen
//! projects, then merges them into one [`RestoreItem`] per image: the image is
//! loaded once, and every archived copy of it (whichever project's directory it
//! is in) is a fallback when the first file turns out corrupt or missing.
//!
//! Manifests written by the old tool listed a shared image under the last project
//! only. When the projects tree is at hand, the catalog says which images a
//! project needs, and those are selected too wherever the manifest lists them, so
//! `--project X` restores everything X runs.

use std::collections::HashMap;

use crate::archive::{Manifest, ManifestEntry};
use crate::image::identity::RecordedIdentity;
use crate::image::reference::canonical_name;

/// Which projects to restore.
#[derive(Debug, Clone, Default)]
pub struct ProjectSelection {
    /// Only these projects (all when empty).
    pub only: Vec<String>,
    pub exclude: Vec<String>,
}

impl ProjectSelection {
    pub fn includes(&self, project: &str) -> bool {
        (self.only.is_empty() || self.only.iter().any(|name| name == project))
            && !self.exclude.iter().any(|name| name == project)
    }
}

/// One image to put on the engine.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RestoreItem {
    /// The image name as the projects use it.
    pub image: String,
    /// The engine image ID recorded at archive time (`None` in old manifests).
    pub docker_id: Option<String>,
    /// What identifies the image's content on any image store.
    #[serde(skip)]
    pub identity: RecordedIdentity,
    /// Selected projects that need the image.
    pub projects: Vec<String>,
    /// Manifest entries whose files hold the image, tried in order.
    #[serde(skip)]
    pub sources: Vec<ManifestEntry>,
    /// The name the running containers used when the image was archived under a
    /// name of its own (`image-archive --deployed`): given back after the restore.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deployed_as: Option<String>,
}

/// Everything a restore will look at.
#[derive(Debug, Clone, Default)]
pub struct RestorePlan {
    pub items: Vec<RestoreItem>,
    /// Selected projects with nothing archived: each makes the run fail.
    pub problems: Vec<String>,
    /// Things worth knowing that change nothing (older copies left out).
    pub notes: Vec<String>,
}

/// Plans a restore of `manifest` for `selection`. `needed` lists (project, image)
/// pairs the catalog knows about; pass an empty slice without a projects tree.
pub fn plan_restore(
    manifest: &Manifest,
    selection: &ProjectSelection,
    needed: &[(String, String)],
    manifest_name: &str,
) -> RestorePlan {
    let mut plan = RestorePlan::default();
    // (canonical image) -> requests in manifest order: (project, entry)
    let mut requests: Vec<(String, String, &ManifestEntry)> = Vec::new();
    for entry in &manifest.images {
        if selection.includes(&entry.project) {
            requests.push((canonical_name(&entry.image), entry.project.clone(), entry));
        }
    }
    for (project, image) in needed {
        if !selection.includes(project) {
            continue;
        }
        let canonical = canonical_name(image);
        let already = requests
            .iter()
            .any(|(name, asked_by, _)| *name == canonical && asked_by == project);
        if already {
            continue;
        }
        if let Some(entry) = newest(
            manifest
                .images
                .iter()
                .filter(|entry| canonical_name(&entry.image) == canonical),
        ) {
            requests.push((canonical, project.clone(), entry));
        }
    }

    let mut order: Vec<String> = Vec::new();
    let mut by_image: HashMap<String, Vec<(String, &ManifestEntry)>> = HashMap::new();
    for (canonical, project, entry) in requests {
        if !by_image.contains_key(&canonical) {
            order.push(canonical.clone());
        }
        by_image
            .entry(canonical)
            .or_default()
            .push((project, entry));
    }
    for canonical in order {
        let asked = &by_image[&canonical];
        let chosen = newest(asked.iter().map(|(_, entry)| *entry)).unwrap_or(asked[0].1);
        let mut projects: Vec<String> = Vec::new();
        for (project, _) in asked {
            if !projects.contains(project) {
                projects.push(project.clone());
            }
        }
        for (project, entry) in asked {
            if entry.docker_id != chosen.docker_id {
                plan.notes.push(format!(
                    "{}: {project}'s copy ({}, image {}) is older than {}'s ({}); restoring the newer one",
                    entry.image,
                    entry.file,
                    entry.docker_id.as_deref().unwrap_or("unknown"),
                    chosen.project,
                    chosen.docker_id.as_deref().unwrap_or("unknown"),
                ));
            }
        }
        // The chosen file first, then the selected projects' other copies of the same
        // image, then any other project's copy.
        let mut sources: Vec<ManifestEntry> = vec![chosen.clone()];
        let same_image = |entry: &&ManifestEntry| {
            canonical_name(&entry.image) == canonical && entry.docker_id == chosen.docker_id
        };
        let selected_copies = asked.iter().map(|(_, entry)| *entry).filter(same_image);
        let other_copies = manifest.images.iter().filter(same_image);
        for entry in selected_copies.chain(other_copies) {
            if !sources.iter().any(|source| source.file == entry.file) {
                sources.push(entry.clone());
            }
        }
        for source in sources.iter().filter(|source| source.sha256.is_empty()) {
            plan.notes.push(format!(
                "{}: {} has no SHA-256 in the manifest (an older manifest); before the load it \
                 is decompressed and every layer checked against the image's own digests \
                 instead; archive the image again to record one",
                source.image, source.file
            ));
        }
        plan.items.push(RestoreItem {
            image: chosen.image.clone(),
            docker_id: chosen.docker_id.clone(),
            identity: chosen.recorded_identity(),
            projects,
            sources,
            deployed_as: chosen.deployed_as.clone(),
        });
    }
    leave_out_claimed_names(&mut plan);
    for project in &selection.only {
        if selection.exclude.contains(project) {
            continue;
        }
        if !plan
            .items
            .iter()
            .any(|item| item.projects.contains(project))
        {
            plan.problems.push(format!(
                "no archived images of project {project} in {manifest_name}; check the name \
                 (archived projects: {})",
                archived_projects(manifest).join(", ")
            ));
        }
    }
    plan
}

/// A running image archived under a name of its own claims the name its containers
/// used: an item that would restore another image under that name (the newer image
/// the tag moved to) is left out with a note, so the name ends on the image that
/// ran and a second restore changes nothing.
fn leave_out_claimed_names(plan: &mut RestorePlan) {
    let claims: Vec<(String, String, Option<String>)> = plan
        .items
        .iter()
        .filter_map(|item| {
            let name = item.deployed_as.as_deref()?;
            Some((
                canonical_name(name),
                item.image.clone(),
                item.docker_id.clone(),
            ))
        })
        .collect();
    let mut notes = Vec::new();
    plan.items.retain(|item| {
        let canonical = canonical_name(&item.image);
        match claims.iter().find(|(name, _, _)| *name == canonical) {
            Some((_, deployed, id)) if item.docker_id != *id => {
                notes.push(format!(
                    "{}: its containers ran {} (archived as {deployed}); that image gets the \
                     name, not the newer {} of {} (it stays in the archive)",
                    item.image,
                    id.as_deref().map_or("an unknown image", short),
                    item.docker_id.as_deref().map_or("image", short),
                    item.projects.join(", ")
                ));
                false
            }
            _ => true,
        }
    });
    plan.notes.extend(notes);
}

fn short(id: &str) -> &str {
    super::engine_state::short_id(id)
}

/// The entry archived last (entries without a time count as oldest).
fn newest<'a>(entries: impl Iterator<Item = &'a ManifestEntry>) -> Option<&'a ManifestEntry> {
    let mut best: Option<&ManifestEntry> = None;
    for entry in entries {
        match best {
            Some(current) if current.archived_at >= entry.archived_at => {}
            _ => best = Some(entry),
        }
    }
    best
}

fn archived_projects(manifest: &Manifest) -> Vec<String> {
    let mut projects: Vec<String> = manifest
        .images
        .iter()
        .map(|entry| entry.project.clone())
        .collect();
    projects.sort();
    projects.dedup();
    projects
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::Compression;

    /// When most test copies were archived.
    const JANUARY: &str = "2026-01-01T00:00:00Z";

    fn entry(project: &str, image: &str, id: &str, at: &str) -> ManifestEntry {
        ManifestEntry {
            project: project.into(),
            image: image.into(),
            services: vec![],
            action: None,
            file: format!("{project}/{}", image.replace(['/', ':'], "_")),
            size: 1,
            sha256: "00".into(),
            docker_id: Some(id.into()),
            repo_digests: vec![],
            layers: vec![],
            identity: Default::default(),
            uncompressed_size: None,
            uncompressed_sha256: None,
            compression: Compression::Gzip,
            platform: None,
            archived_at: Some(at.into()),
            deployed_as: None,
        }
    }

    fn manifest(entries: Vec<ManifestEntry>) -> Manifest {
        let mut manifest = Manifest::new("x86_64");
        manifest.images = entries;
        manifest
    }

    fn select(only: &[&str]) -> ProjectSelection {
        ProjectSelection {
            only: only.iter().map(|name| name.to_string()).collect(),
            exclude: vec![],
        }
    }

    #[test]
    fn a_shared_image_is_one_item_with_every_copy_as_fallback() {
        let manifest = manifest(vec![
            entry("tools", "httpd:1", "sha256:a", JANUARY),
            entry("web", "docker.io/library/httpd:1", "sha256:a", JANUARY),
            entry("web", "other:1", "sha256:b", JANUARY),
        ]);
        let plan = plan_restore(&manifest, &ProjectSelection::default(), &[], "m");
        assert_eq!(plan.items.len(), 2);
        assert_eq!(plan.items[0].projects, ["tools", "web"]);
        assert_eq!(plan.items[0].sources.len(), 2);

        let only_web = plan_restore(&manifest, &select(&["web"]), &[], "m");
        assert_eq!(only_web.items.len(), 2);
        assert_eq!(only_web.items[0].projects, ["web"]);
        // tools' copy is still a fallback for web's.
        assert_eq!(only_web.items[0].sources[0].project, "web");
        assert_eq!(only_web.items[0].sources[1].project, "tools");
    }

    #[test]
    fn the_catalog_brings_in_images_listed_under_another_project() {
        // The old tool kept postgres under the last project only.
        let manifest = manifest(vec![
            entry("nginx", "postgres:16", "sha256:p", JANUARY),
            entry("commentario", "commentario:1", "sha256:c", JANUARY),
        ]);
        let needed = vec![
            ("commentario".to_string(), "commentario:1".to_string()),
            ("commentario".to_string(), "postgres:16".to_string()),
        ];
        let plan = plan_restore(&manifest, &select(&["commentario"]), &needed, "m");
        let images: Vec<_> = plan.items.iter().map(|item| item.image.as_str()).collect();
        assert_eq!(images, ["commentario:1", "postgres:16"]);
        assert_eq!(plan.items[1].projects, ["commentario"]);
        assert!(plan.problems.is_empty());
    }

    #[test]
    fn the_newest_copy_wins_when_ids_differ() {
        let manifest = manifest(vec![
            entry("a", "pg:16", "sha256:old", JANUARY),
            entry("b", "pg:16", "sha256:new", "2026-02-01T00:00:00Z"),
        ]);
        let plan = plan_restore(&manifest, &ProjectSelection::default(), &[], "m");
        assert_eq!(plan.items.len(), 1);
        assert_eq!(plan.items[0].docker_id.as_deref(), Some("sha256:new"));
        assert_eq!(plan.items[0].sources.len(), 1);
        assert_eq!(plan.notes.len(), 1, "{:?}", plan.notes);
    }

    #[test]
    fn a_running_image_takes_the_name_its_containers_used() {
        let mut running = entry("web", "app:1-deployed-0123456789ab", "sha256:old", "t");
        running.deployed_as = Some("app:1".into());
        let manifest = manifest(vec![
            entry("web", "app:1", "sha256:new", "t"),
            running,
            entry("web", "db:1", "sha256:db", "t"),
        ]);
        let plan = plan_restore(&manifest, &ProjectSelection::default(), &[], "m");
        let images: Vec<_> = plan.items.iter().map(|item| item.image.as_str()).collect();
        assert_eq!(images, ["app:1-deployed-0123456789ab", "db:1"]);
        assert_eq!(plan.items[0].deployed_as.as_deref(), Some("app:1"));
        assert!(
            plan.notes[0].contains("app:1: its containers ran old"),
            "{:?}",
            plan.notes
        );
    }

    #[test]
    fn an_unknown_project_is_a_problem_and_exclude_wins() {
        let manifest = manifest(vec![entry("web", "httpd:1", "sha256:a", "t")]);
        let plan = plan_restore(&manifest, &select(&["nope"]), &[], "m.json");
        assert!(plan.items.is_empty());
        assert!(
            plan.problems[0].contains("project nope in m.json"),
            "{:?}",
            plan.problems
        );
        assert!(plan.problems[0].contains("archived projects: web"));
        let excluded = ProjectSelection {
            only: vec![],
            exclude: vec!["web".into()],
        };
        assert!(
            plan_restore(&manifest, &excluded, &[], "m")
                .items
                .is_empty()
        );
    }
}

//! Counts over a catalog (projects, services, unique images, pulled/built/base,
//! unpinned images, registries), shared by the table, `--summary` and `--json`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::model::{Catalog, ImageSource};
use crate::image::reference::canonical_name;

/// The catalog's totals. Images are counted once however often they appear.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// Projects cataloged (a project with configured instances counts once).
    pub projects: usize,
    /// Projects with at least one error.
    pub projects_with_errors: usize,
    /// Service entries (one per project × service).
    pub services: usize,
    /// Distinct images over all entries (pulled, built and base), compared by canonical name.
    pub unique_images: usize,
    /// Services whose image is pulled.
    pub pulled: usize,
    /// Services whose image is built.
    pub built: usize,
    /// Distinct base images the builds need.
    pub base: usize,
    /// Services whose image could not be resolved (see the errors).
    pub unresolved: usize,
    /// Distinct pulled or base images without a digest or a tag other than `latest`.
    pub unpinned: Vec<String>,
    /// Distinct pulled and base images per registry, by registry name.
    pub registries: BTreeMap<String, usize>,
    /// Errors reported.
    pub errors: usize,
    /// Configured instances cataloged, as `project@instance`.
    #[serde(default)]
    pub instances: Vec<String>,
    /// Projects without a configured instance for the context, resolved from
    /// `.env-dist`, the root env file and the environment (see `Catalog::without_instances`).
    #[serde(default)]
    pub without_instances: Vec<String>,
    /// `--defaults`: configured instances were ignored.
    #[serde(default)]
    pub defaults_only: bool,
}

impl Summary {
    /// Computes the totals of `catalog`.
    pub fn of(catalog: &Catalog) -> Self {
        let mut summary = Summary {
            // Distinct projects: a project with configured instances counts once.
            projects: catalog
                .projects
                .iter()
                .map(|project| project.name.as_str())
                .collect::<std::collections::HashSet<_>>()
                .len(),
            projects_with_errors: catalog
                .projects
                .iter()
                .filter(|project| !project.ok)
                .count(),
            errors: catalog.errors.len(),
            instances: catalog
                .projects
                .iter()
                .filter_map(|project| {
                    Some(format!("{}@{}", project.name, project.instance.as_deref()?))
                })
                .collect(),
            without_instances: catalog.without_instances.clone(),
            defaults_only: catalog.defaults_only,
            ..Summary::default()
        };
        let mut unique = std::collections::HashSet::new();
        let mut unique_base = std::collections::HashSet::new();
        let mut registry_images = std::collections::HashSet::new();
        for entry in &catalog.entries {
            match (entry.source, &entry.service) {
                (ImageSource::Pull, Some(_)) => summary.pulled += 1,
                (ImageSource::Build, Some(_)) => summary.built += 1,
                _ => {}
            }
            if entry.service.is_some() {
                summary.services += 1;
            }
            let Some(image) = &entry.image else {
                summary.unresolved += 1;
                continue;
            };
            let canonical = canonical_name(image);
            unique.insert(canonical.clone());
            if entry.source == ImageSource::Build {
                continue;
            }
            if entry.source == ImageSource::Base {
                unique_base.insert(canonical.clone());
            }
            if let Some(registry) = &entry.registry
                && registry_images.insert(canonical.clone())
            {
                *summary.registries.entry(registry.clone()).or_default() += 1;
            }
            if !entry.pinned && !summary.unpinned.contains(image) {
                summary.unpinned.push(image.clone());
            }
        }
        summary.unique_images = unique.len();
        summary.base = unique_base.len();
        summary.unpinned.sort();
        summary
    }

    /// The summary as text lines no wider than `width` columns.
    pub fn render(&self, width: usize) -> Vec<String> {
        let mut lines = vec![format!(
            "{}, {}, {}",
            plural(self.projects, "project"),
            plural(self.services, "service"),
            plural(self.unique_images, "unique image")
        )];
        let mut counts = format!(
            "  pulled {}, built {}, base images {}",
            self.pulled, self.built, self.base
        );
        if self.unresolved > 0 {
            counts.push_str(&format!(", unresolved {}", self.unresolved));
        }
        lines.push(counts);
        let registries: Vec<String> = self
            .registries
            .iter()
            .map(|(registry, count)| format!("{registry} {count}"))
            .collect();
        wrap_list(
            &mut lines,
            &format!("  registries ({}): ", registries.len()),
            &registries,
            width,
        );
        if self.unpinned.is_empty() {
            lines.push("  unpinned images: none".to_string());
        } else {
            wrap_list(
                &mut lines,
                &format!("  unpinned images ({}): ", self.unpinned.len()),
                &self.unpinned,
                width,
            );
        }
        if !self.instances.is_empty() {
            wrap_list(
                &mut lines,
                &format!("  configured instances ({}): ", self.instances.len()),
                &self.instances,
                width,
            );
        }
        if self.defaults_only {
            lines.push(
                "  --defaults: configured instances ignored, every project resolved from .env-dist"
                    .to_string(),
            );
        } else if !self.without_instances.is_empty() {
            wrap_list(
                &mut lines,
                &format!(
                    "  no configured instance, resolved from .env-dist ({}): ",
                    self.without_instances.len()
                ),
                &self.without_instances,
                width,
            );
        }
        if self.errors > 0 {
            lines.push(format!(
                "  errors: {} in {} project(s), listed on stderr",
                self.errors, self.projects_with_errors
            ));
        }
        lines
    }
}

fn plural(count: usize, noun: &str) -> String {
    if count == 1 {
        format!("{count} {noun}")
    } else {
        format!("{count} {noun}s")
    }
}

/// Appends `label` followed by `items` joined with ", ", wrapped at `width` with a hanging indent.
fn wrap_list(lines: &mut Vec<String>, label: &str, items: &[String], width: usize) {
    let indent = " ".repeat(4);
    let mut line = label.to_string();
    let mut first_on_line = true;
    for (index, item) in items.iter().enumerate() {
        let separator = if index + 1 < items.len() { "," } else { "" };
        let piece = format!("{item}{separator}");
        let needed = if first_on_line {
            piece.len()
        } else {
            piece.len() + 1
        };
        if !first_on_line && line.chars().count() + needed > width {
            lines.push(std::mem::replace(&mut line, indent.clone()));
            first_on_line = true;
        }
        if !first_on_line {
            line.push(' ');
        }
        line.push_str(&piece);
        first_on_line = false;
    }
    if items.is_empty() {
        line.push_str("none");
    }
    lines.push(line);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrapping_respects_width() {
        let items: Vec<String> = (0..20)
            .map(|index| format!("registry{index}.example.com 3"))
            .collect();
        let mut lines = Vec::new();
        wrap_list(&mut lines, "  registries: ", &items, 80);
        assert!(lines.len() > 1);
        assert!(
            lines.iter().all(|line| line.chars().count() <= 80),
            "{lines:#?}"
        );
        assert!(lines.concat().contains("registry19.example.com 3"));
    }
}

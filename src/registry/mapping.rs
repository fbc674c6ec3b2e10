//! Destination names for pushes and syncs: a target registry and prefix, plus
//! an optional mapping file with per-repository names, regex rewrites and a
//! flatten rule for registries that allow only a few path levels.
//!
//! Mapping file (YAML):
//! ```yaml
//! repositories:            # exact source repository → destination repository
//!   library/busybox: base/busybox
//! rewrite:                 # applied in order to names not listed above
//!   - match: "^team-(.*)$"
//!     replace: "teams/$1"
//! flatten: 2               # group/project/image → group/project-image
//! ```
//! The prefix from `--to REGISTRY/PREFIX` is added after the rules, and
//! flattening applies to the final path, prefix included.

use std::path::Path;

use anyhow::{Context, bail};
use indexmap::IndexMap;
use regex::Regex;
use serde::Deserialize;

use super::reference::{ImageReference, RepositoryName};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct MappingFile {
    #[serde(default)]
    repositories: IndexMap<String, String>,
    #[serde(default)]
    rewrite: Vec<RewriteRule>,
    #[serde(default)]
    flatten: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RewriteRule {
    #[serde(rename = "match")]
    pattern: String,
    replace: String,
}

/// How source repositories are renamed on the destination.
#[derive(Debug, Clone)]
pub struct NameMapping {
    pub registry: String,
    pub prefix: Option<String>,
    exact: IndexMap<String, String>,
    rewrites: Vec<(Regex, String)>,
    pub flatten: Option<usize>,
}

impl NameMapping {
    /// From `--to REGISTRY[/PREFIX]`, an optional mapping file and an optional
    /// `--flatten N` (which overrides the file's).
    pub fn new(to: &str, file: Option<&Path>, flatten: Option<usize>) -> anyhow::Result<Self> {
        let to = to.trim().trim_end_matches('/');
        let (registry, prefix) = match to.split_once('/') {
            Some((registry, prefix)) => (registry, Some(prefix.to_string())),
            None => (to, None),
        };
        if registry.is_empty()
            || !(registry.contains('.') || registry.contains(':') || registry == "localhost")
        {
            bail!(
                "--to must start with a registry host (e.g. registry.example.com:5000/prefix), got {to:?}"
            );
        }
        if let Some(prefix) = &prefix {
            RepositoryName::new(registry, prefix)
                .with_context(|| format!("invalid prefix in --to {to}"))?;
        }
        let parsed = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read the mapping file {}", path.display()))?;
                serde_saphyr::from_str::<MappingFile>(&text)
                    .with_context(|| format!("invalid mapping file {}", path.display()))?
            }
            None => MappingFile::default(),
        };
        let mut rewrites = Vec::new();
        for rule in parsed.rewrite {
            let regex = Regex::new(&rule.pattern).with_context(|| {
                format!(
                    "invalid rewrite pattern {:?} in the mapping file",
                    rule.pattern
                )
            })?;
            rewrites.push((regex, rule.replace));
        }
        let flatten = flatten.or(parsed.flatten);
        if flatten == Some(0) {
            bail!("flatten must be at least 1 path level");
        }
        Ok(Self {
            registry: registry.to_string(),
            prefix,
            exact: parsed.repositories,
            rewrites,
            flatten,
        })
    }

    /// The destination repository for a source repository path.
    pub fn destination_repository(&self, source: &str) -> anyhow::Result<RepositoryName> {
        let mut path = match self.exact.get(source) {
            Some(name) => name.clone(),
            None => {
                let mut path = source.to_string();
                for (regex, replacement) in &self.rewrites {
                    if regex.is_match(&path) {
                        path = regex.replace(&path, replacement.as_str()).into_owned();
                        break;
                    }
                }
                if let Some(prefix) = &self.prefix {
                    path = format!("{prefix}/{path}");
                }
                path
            }
        };
        if let Some(levels) = self.flatten {
            path = flatten(&path, levels);
        }
        RepositoryName::new(&self.registry, &path)
            .with_context(|| format!("the mapping turns {source:?} into an invalid name"))
    }

    /// The destination reference for a source image (same tag).
    pub fn destination(&self, source: &ImageReference) -> anyhow::Result<ImageReference> {
        Ok(self
            .destination_repository(&source.name.repository)?
            .with_tag(source.tag_or_latest()))
    }
}

/// Joins the trailing path components with `-` so at most `levels` remain:
/// `group/project/image` with 2 levels becomes `group/project-image`.
pub fn flatten(path: &str, levels: usize) -> String {
    let parts: Vec<&str> = path.split('/').collect();
    if parts.len() <= levels || levels == 0 {
        return path.to_string();
    }
    let keep = levels - 1;
    let mut result: Vec<String> = parts[..keep].iter().map(|p| p.to_string()).collect();
    result.push(parts[keep..].join("-"));
    result.join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flatten_joins_trailing_levels() {
        assert_eq!(flatten("group/project/image", 2), "group/project-image");
        assert_eq!(flatten("a/b/c/d", 2), "a/b-c-d");
        assert_eq!(flatten("a/b", 2), "a/b");
        assert_eq!(flatten("a/b/c", 1), "a-b-c");
    }

    #[test]
    fn prefix_exact_and_rewrite() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("map.yaml");
        std::fs::write(
            &file,
            "repositories:\n  library/busybox: base/busybox\nrewrite:\n  - match: '^team-(.*)$'\n    replace: 'teams/$1'\n",
        )
        .unwrap();
        let mapping = NameMapping::new("127.0.0.1:6000/mirror", Some(&file), None).unwrap();
        assert_eq!(
            mapping
                .destination_repository("library/busybox")
                .unwrap()
                .repository,
            "base/busybox"
        );
        assert_eq!(
            mapping
                .destination_repository("team-a/app")
                .unwrap()
                .repository,
            "mirror/teams/a/app"
        );
        assert_eq!(
            mapping.destination_repository("x/y").unwrap().repository,
            "mirror/x/y"
        );
        let flat = NameMapping::new("127.0.0.1:6000", None, Some(2)).unwrap();
        assert_eq!(
            flat.destination_repository("group/project/image")
                .unwrap()
                .to_string(),
            "127.0.0.1:6000/group/project-image"
        );
    }

    #[test]
    fn bad_mapping_input_is_explained() {
        let error = NameMapping::new("nohost", None, None)
            .unwrap_err()
            .to_string();
        assert!(error.contains("registry host"), "{error}");
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("map.yaml");
        std::fs::write(&file, "rewrite:\n  - match: '('\n    replace: x\n").unwrap();
        let error = format!(
            "{:#}",
            NameMapping::new("r.example", Some(&file), None).unwrap_err()
        );
        assert!(error.contains("invalid rewrite pattern"), "{error}");
        std::fs::write(&file, "unknown: 1\n").unwrap();
        let error = format!(
            "{:#}",
            NameMapping::new("r.example", Some(&file), None).unwrap_err()
        );
        assert!(error.contains("invalid mapping file"), "{error}");
    }
}

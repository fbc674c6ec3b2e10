//! Tag listing and repository catalog, with pagination, regex and semver filters
//! and a version-aware sort.
//!
//! Registries page `tags/list` and `_catalog` with `Link: <...>; rel="next"`;
//! every page is followed, so a repository with thousands of tags is complete.

use std::cmp::Ordering;

use anyhow::{Context, bail};
use regex::Regex;
use reqwest::Method;

use super::auth::Scope;
use super::client::{RegistryClient, RegistryRequest};
use super::reference::RepositoryName;

/// Entries asked per page; `BUNKER_REGISTRY_PAGE_SIZE` overrides it (tests use a
/// tiny page to exercise pagination).
fn page_size() -> u32 {
    std::env::var("BUNKER_REGISTRY_PAGE_SIZE")
        .ok()
        .and_then(|value| value.parse().ok())
        .filter(|size| *size > 0)
        .unwrap_or(1000)
}

/// Every tag of a repository, following pagination.
pub async fn list_tags(
    client: &RegistryClient,
    repository: &RepositoryName,
) -> anyhow::Result<Vec<String>> {
    let first = format!("/v2/{}/tags/list?n={}", repository.repository, page_size());
    let pages = fetch_pages(client, first, Scope::pull(&repository.repository), "tags").await;
    pages.with_context(|| format!("cannot list the tags of {repository}"))
}

/// Every repository of a registry (`/v2/_catalog`), following pagination.
pub async fn catalog(client: &RegistryClient) -> anyhow::Result<Vec<String>> {
    let first = format!("/v2/_catalog?n={}", page_size());
    fetch_pages(client, first, Scope::catalog(), "repositories")
        .await
        .with_context(|| format!("cannot list the repositories of {}", client.registry()))
}

async fn fetch_pages(
    client: &RegistryClient,
    first: String,
    scope: Scope,
    field: &str,
) -> anyhow::Result<Vec<String>> {
    let mut items = Vec::new();
    let mut next = Some(first);
    let mut pages = 0;
    while let Some(url) = next.take() {
        pages += 1;
        if pages > 100_000 {
            bail!("more than 100000 pages: the registry's pagination loops");
        }
        let request = RegistryRequest::new(Method::GET, &url, scope.clone());
        let response = client.send_ok(&request).await?;
        next = response
            .headers()
            .get(reqwest::header::LINK)
            .and_then(|value| value.to_str().ok())
            .and_then(next_link);
        let body: serde_json::Value = response.json().await.context("unreadable answer")?;
        if let Some(values) = body.get(field).and_then(|value| value.as_array()) {
            items.extend(values.iter().filter_map(|v| v.as_str()).map(str::to_string));
        }
    }
    Ok(items)
}

/// The target of `rel="next"` in a `Link` header.
pub fn next_link(header: &str) -> Option<String> {
    header.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        if !params.replace(' ', "").contains("rel=\"next\"") && !params.contains("rel=next") {
            return None;
        }
        let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
        Some(target.to_string())
    })
}

/// Which tags to keep.
#[derive(Debug, Clone, Default)]
pub struct TagFilter {
    pub regex: Option<Regex>,
    pub semver: Option<semver::VersionReq>,
}

impl TagFilter {
    pub fn new(regex: Option<&str>, semver_range: Option<&str>) -> anyhow::Result<Self> {
        let regex = regex
            .map(|pattern| {
                Regex::new(&format!("^(?:{pattern})$"))
                    .with_context(|| format!("invalid tag filter regex {pattern:?}"))
            })
            .transpose()?;
        let semver = semver_range
            .map(|range| {
                semver::VersionReq::parse(range).with_context(|| {
                    format!("invalid semver range {range:?} (examples: \">=1.2, <2\", \"^3.1\", \"~1.4\")")
                })
            })
            .transpose()?;
        Ok(Self { regex, semver })
    }

    pub fn matches(&self, tag: &str) -> bool {
        if let Some(regex) = &self.regex
            && !regex.is_match(tag)
        {
            return false;
        }
        if let Some(range) = &self.semver {
            return parse_version(tag).is_some_and(|version| range.matches(&version));
        }
        true
    }
}

/// Reads a tag as a version: `v1.2.3`, `1.2`, `1` and `1.2.3-rc1` all count.
pub fn parse_version(tag: &str) -> Option<semver::Version> {
    let text = tag.strip_prefix('v').unwrap_or(tag);
    if let Ok(version) = semver::Version::parse(text) {
        return Some(version);
    }
    let (core, pre) = match text.split_once('-') {
        Some((core, pre)) => (core, Some(pre)),
        None => (text, None),
    };
    let parts: Vec<&str> = core.split('.').collect();
    if parts.is_empty()
        || parts.len() > 3
        || parts
            .iter()
            .any(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()))
    {
        return None;
    }
    let mut padded = parts.join(".");
    for _ in parts.len()..3 {
        padded.push_str(".0");
    }
    if let Some(pre) = pre {
        padded.push('-');
        padded.push_str(pre);
    }
    semver::Version::parse(&padded).ok()
}

/// Sorts tags: versions in version order first, then other tags alphabetically.
pub fn sort_semantic(tags: &mut [String]) {
    tags.sort_by(|a, b| match (parse_version(a), parse_version(b)) {
        (Some(x), Some(y)) => x.cmp(&y).then_with(|| a.cmp(b)),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => a.cmp(b),
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_header_next() {
        assert_eq!(
            next_link(r#"</v2/app/tags/list?last=b&n=2>; rel="next""#).as_deref(),
            Some("/v2/app/tags/list?last=b&n=2")
        );
        assert_eq!(next_link(r#"</x>; rel="prev""#), None);
    }

    #[test]
    fn semantic_sort_orders_versions_then_names() {
        let mut tags: Vec<String> = ["latest", "1.10.0", "v1.2", "1.9.1", "1.10.0-rc1", "edge"]
            .into_iter()
            .map(String::from)
            .collect();
        sort_semantic(&mut tags);
        assert_eq!(
            tags,
            ["v1.2", "1.9.1", "1.10.0-rc1", "1.10.0", "edge", "latest"]
        );
    }

    #[test]
    fn filters_by_regex_and_semver() {
        let filter = TagFilter::new(Some(r"1\..*"), Some(">=1.9, <2")).unwrap();
        assert!(filter.matches("1.9.1"));
        assert!(!filter.matches("1.2"));
        assert!(!filter.matches("2.0.0"));
        assert!(!filter.matches("latest"));
        let error = TagFilter::new(Some("("), None).unwrap_err().to_string();
        assert!(error.contains("invalid tag filter regex"), "{error}");
        let error = TagFilter::new(None, Some("banana"))
            .unwrap_err()
            .to_string();
        assert!(error.contains("invalid semver range"), "{error}");
    }
}

//! The engine's running containers compared with the catalog: the one query
//! `image-catalog --deployed` and `image-archive --deployed` both start from, so
//! they read the same containers and pick the same [`ContainerScope`].

use super::compare::{Comparison, ContainerScope, compare};
use crate::build::Selection;
use crate::catalog::Catalog;
use crate::engine::Engine;
use crate::engine::containers::running_containers;

/// Every running container without `--project`/`--exclude`; only those of the
/// cataloged projects when either narrowed the selection.
pub fn scope_of(selection: &Selection) -> ContainerScope {
    if selection.only.is_empty() && selection.exclude.is_empty() {
        ContainerScope::All
    } else {
        ContainerScope::CatalogProjects
    }
}

/// Lists the running containers of `engine` and compares them with `catalog`
/// within the scope of `selection`.
pub async fn compare_running(
    engine: &Engine,
    catalog: &Catalog,
    selection: &Selection,
) -> anyhow::Result<Comparison> {
    let containers = running_containers(&engine.docker)
        .await
        .map_err(|error| anyhow::anyhow!("{} ({error})", engine.target))?;
    Ok(compare(
        &engine.target,
        catalog,
        containers,
        scope_of(selection),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_project_flags_narrow_the_scope() {
        let all = Selection::default();
        assert_eq!(scope_of(&all), ContainerScope::All);
        let instances = Selection {
            instances: vec!["prod".into()],
            defaults: true,
            ..Selection::default()
        };
        assert_eq!(scope_of(&instances), ContainerScope::All);
        let only = Selection {
            only: vec!["web".into()],
            ..Selection::default()
        };
        assert_eq!(scope_of(&only), ContainerScope::CatalogProjects);
        let exclude = Selection {
            exclude: vec!["web".into()],
            ..Selection::default()
        };
        assert_eq!(scope_of(&exclude), ContainerScope::CatalogProjects);
    }
}

//! `image-catalog --deployed` as text: one table row per difference, then the totals.

use super::compare::{Comparison, DifferenceKind};
use crate::progress::render_table;

const HEADERS: [&str; 6] = [
    "DIFFERENCE",
    "PROJECT",
    "SERVICE",
    "IMAGE",
    "CONTAINER",
    "DETAIL",
];

/// The table (or a line saying there is no difference) and the totals.
pub fn render(comparison: &Comparison) -> String {
    let mut text = String::new();
    if comparison.differences.is_empty() {
        text.push_str("No differences: every running container's image is cataloged and current, and every cataloged service runs.\n");
    } else {
        let rows: Vec<Vec<String>> = comparison
            .differences
            .iter()
            .map(|difference| {
                vec![
                    difference.kind.word().to_string(),
                    difference
                        .project
                        .clone()
                        .or_else(|| difference.compose_project.clone())
                        .unwrap_or_else(|| "-".into()),
                    difference.service.clone().unwrap_or_else(|| "-".into()),
                    difference.image.clone(),
                    difference.container.clone().unwrap_or_else(|| "-".into()),
                    difference.detail.clone(),
                ]
            })
            .collect();
        text.push_str(&render_table(&HEADERS, &rows));
    }
    text.push('\n');
    text.push_str(&totals(comparison));
    text.push('\n');
    text
}

/// `3 running containers on ENGINE; 1 deployed but not cataloged, ...`.
pub fn totals(comparison: &Comparison) -> String {
    format!(
        "{} running container(s) on {}; {} deployed but not cataloged, {} cataloged but not \
         deployed, {} running an image its tag no longer names",
        comparison.containers.len(),
        comparison.engine,
        comparison.count(DifferenceKind::NotCataloged),
        comparison.count(DifferenceKind::NotDeployed),
        comparison.count(DifferenceKind::TagMoved),
    )
}

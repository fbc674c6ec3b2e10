//! The result of a restore: one row per image, a summary line, and `--json`.

use serde::Serialize;

use super::engine_state::short_id;
use crate::progress::render_table;

/// What happened to one image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// Streamed from its archive and checked on the engine.
    Loaded,
    /// Already on the engine with the recorded ID under the recorded name.
    Skipped,
    /// The recorded ID was on the engine under other names; only tagged.
    Retagged,
    Failed,
    /// Dry run: a real run would load it.
    WouldLoad,
    WouldSkip,
    WouldRetag,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Loaded => "loaded",
            Outcome::Skipped => "skipped",
            Outcome::Retagged => "retagged",
            Outcome::Failed => "FAILED",
            Outcome::WouldLoad => "would load",
            Outcome::WouldSkip => "would skip",
            Outcome::WouldRetag => "would retag",
        }
    }
}

/// One image's row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ItemResult {
    pub image: String,
    pub projects: Vec<String>,
    pub docker_id: Option<String>,
    pub outcome: Outcome,
    /// The archive file loaded (or that a dry run would load), relative to the arch directory.
    pub file: Option<String>,
    /// Bytes sent to the engine as they went on the wire, compressed or not (0 for
    /// skips and dry runs); for a failed image, what its failed attempts sent before
    /// they were cut off.
    pub bytes_sent: u64,
    /// How the loaded file travelled: `gzip (as stored)`, `none (decompressed here)`,
    /// `gzip level 1 (zstd decompressed here)`.
    pub wire: Option<String>,
    /// Short explanation of the outcome.
    pub detail: String,
    /// Corrupt or missing files and engine errors met on the way; any makes the run fail,
    /// even when another copy of the image loaded.
    pub problems: Vec<String>,
}

impl ItemResult {
    pub fn failed(&self) -> bool {
        self.outcome == Outcome::Failed || !self.problems.is_empty()
    }
}

/// The whole run.
#[derive(Debug, Clone, Serialize)]
pub struct RestoreReport {
    pub engine: String,
    pub arch: String,
    pub manifest: String,
    pub dry_run: bool,
    pub images: Vec<ItemResult>,
    /// Selection problems (a project with nothing archived).
    pub problems: Vec<String>,
    pub notes: Vec<String>,
}

impl RestoreReport {
    pub fn count(&self, outcome: Outcome) -> usize {
        self.images
            .iter()
            .filter(|item| item.outcome == outcome)
            .count()
    }

    pub fn failures(&self) -> usize {
        self.images.iter().filter(|item| item.failed()).count()
    }

    /// True when anything failed or nothing matched the selection.
    pub fn failed(&self) -> bool {
        self.images.is_empty() || self.failures() > 0 || !self.problems.is_empty()
    }

    /// The summary table.
    pub fn table(&self) -> String {
        let rows: Vec<Vec<String>> = self
            .images
            .iter()
            .map(|item| {
                vec![
                    item.image.clone(),
                    item.projects.join(","),
                    item.outcome.as_str().to_string(),
                    item.docker_id
                        .as_deref()
                        .map(short_id)
                        .unwrap_or("-")
                        .to_string(),
                    {
                        let mut detail = item.detail.clone();
                        if let Some(wire) = &item.wire {
                            detail.push_str(&format!(
                                "; sent {} {wire}",
                                human_bytes(item.bytes_sent)
                            ));
                        }
                        if !item.problems.is_empty() {
                            detail
                                .push_str(&format!(" ({} problem(s) below)", item.problems.len()));
                        }
                        detail
                    },
                ]
            })
            .collect();
        render_table(&["IMAGE", "PROJECTS", "RESULT", "ID", "DETAIL"], &rows)
    }

    /// `3 loaded, 1 skipped, 0 retagged, 1 failed` (or the dry-run counts).
    pub fn summary(&self) -> String {
        if self.dry_run {
            format!(
                "dry run: {} would load, {} would skip, {} would retag, {} with problems",
                self.count(Outcome::WouldLoad),
                self.count(Outcome::WouldSkip),
                self.count(Outcome::WouldRetag),
                self.failures()
            )
        } else {
            let mut summary = format!(
                "{} loaded, {} skipped, {} retagged, {} failed",
                self.count(Outcome::Loaded),
                self.count(Outcome::Skipped),
                self.count(Outcome::Retagged),
                self.count(Outcome::Failed)
            );
            let rescued = self.failures() - self.count(Outcome::Failed);
            if rescued > 0 {
                summary.push_str(&format!(
                    " ({rescued} loaded from another copy after a damaged or missing file)"
                ));
            }
            let sent: u64 = self.images.iter().map(|item| item.bytes_sent).sum();
            if sent > 0 {
                summary.push_str(&format!("; {} sent to the engine", human_bytes(sent)));
            }
            summary
        }
    }

    /// Every problem, one line each, for stderr.
    pub fn problem_lines(&self) -> Vec<String> {
        let mut lines: Vec<String> = self.problems.clone();
        for item in &self.images {
            for problem in &item.problems {
                lines.push(format!("{}: {problem}", item.image));
            }
        }
        lines
    }
}

/// `12.3 MB`, `512 kB`, `17 B` (decimal units).
fn human_bytes(bytes: u64) -> String {
    match bytes {
        0..1_000 => format!("{bytes} B"),
        1_000..1_000_000 => format!("{:.0} kB", bytes as f64 / 1e3),
        1_000_000..1_000_000_000 => format!("{:.1} MB", bytes as f64 / 1e6),
        _ => format!("{:.2} GB", bytes as f64 / 1e9),
    }
}

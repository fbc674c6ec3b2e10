//! What an `image-archive` run did, image by image: the final table, the
//! one-line summary and the `--json` report all come from [`ArchiveReport`].

use std::time::Duration;

use serde::Serialize;

use super::wire::{WireSummary, WireUse};
use crate::archive::ArchiveAction;
use crate::build::{RunReport, StaleImage};
use crate::progress::{format_duration, render_table};

/// How one project's image ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase", tag = "result", content = "message")]
pub enum ImageResult {
    /// Exported from the engine into a new archive file.
    Archived,
    /// Another project's archive of the same image was hard-linked (or copied).
    Linked,
    /// The manifest already had this image ID with its file intact.
    Skipped,
    /// Nothing was written; the message says why and what to do.
    Failed(String),
}

impl ImageResult {
    pub fn word(&self) -> &'static str {
        match self {
            ImageResult::Archived => "archived",
            ImageResult::Linked => "linked",
            ImageResult::Skipped => "skipped",
            ImageResult::Failed(_) => "FAILED",
        }
    }
}

/// One row of the report: one image of one project.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImageRow {
    pub project: String,
    pub image: String,
    pub services: Vec<String>,
    pub action: ArchiveAction,
    #[serde(flatten)]
    pub result: ImageResult,
    /// Archive file relative to the arch directory (absent when nothing exists).
    pub file: Option<String>,
    pub docker_id: Option<String>,
    /// Bytes read from the engine (the docker-save tar); 0 unless exported.
    pub bytes_in: u64,
    /// Bytes of the archive file written; 0 unless exported.
    pub bytes_out: u64,
    /// True when `--delete` removed the image from the engine afterwards.
    pub deleted: bool,
    /// Why `--delete` left the image on the engine.
    pub kept: Option<String>,
    #[serde(serialize_with = "seconds", rename = "seconds")]
    pub duration: Duration,
    /// The refresh pull failed and the engine's older copy was archived.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stale: Option<StaleImage>,
    /// The name the running containers use, when `image` is the name bunker gave
    /// the running image (`--deployed`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deployed_as: Option<String>,
    /// How the export crossed the link (exported rows only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wire: Option<WireUse>,
}

fn seconds<S: serde::Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_f64(duration.as_secs_f64())
}

/// The whole run.
#[derive(Debug, Clone, Serialize)]
pub struct ArchiveReport {
    pub arch: String,
    /// The arch directory (`<archive>/<arch>`).
    pub archive_dir: String,
    pub engine: String,
    /// Pull and build steps (absent with BUILD=false).
    pub build: Option<RunReport>,
    pub images: Vec<ImageRow>,
    /// Problems outside any image (catalog errors).
    pub problems: Vec<String>,
    #[serde(serialize_with = "seconds", rename = "seconds")]
    pub duration: Duration,
    /// True when Ctrl-C or SIGTERM stopped the run (absent otherwise).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub interrupted: bool,
    /// How exports crossed the link ([`super::wire`]); absent when nothing was planned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wire: Option<WireSummary>,
}

/// Totals of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Totals {
    pub archived: usize,
    pub linked: usize,
    pub skipped: usize,
    pub failed: usize,
    /// Rows archived from the engine's copy because their registry failed.
    pub stale: usize,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Bytes that crossed the link for the exports (compressed when the server compressed).
    pub bytes_received: u64,
}

impl ArchiveReport {
    pub fn totals(&self) -> Totals {
        let count = |word: &str| {
            self.images
                .iter()
                .filter(|row| row.result.word() == word)
                .count()
        };
        Totals {
            archived: count("archived"),
            linked: count("linked"),
            skipped: count("skipped"),
            failed: count("FAILED") + self.problems.len(),
            stale: self.images.iter().filter(|row| row.stale.is_some()).count(),
            bytes_in: self.images.iter().map(|row| row.bytes_in).sum(),
            bytes_out: self.images.iter().map(|row| row.bytes_out).sum(),
            bytes_received: self
                .images
                .iter()
                .filter_map(|row| row.wire.as_ref())
                .map(|wire| wire.bytes_received)
                .sum(),
        }
    }

    pub fn failed(&self) -> bool {
        self.totals().failed > 0
    }

    /// One row per image: PROJECT IMAGE RESULT IN OUT RATIO TIME FILE.
    pub fn table(&self) -> String {
        let rows: Vec<Vec<String>> = self
            .images
            .iter()
            .map(|row| {
                let exported = row.bytes_in > 0;
                vec![
                    row.project.clone(),
                    match &row.deployed_as {
                        Some(name) => format!("{} (running as {name})", row.image),
                        None => row.image.clone(),
                    },
                    match (row.result.word(), row.deleted) {
                        (word, true) => format!("{word}+deleted"),
                        (word, false) => word.to_string(),
                    },
                    if exported {
                        human_bytes(row.bytes_in)
                    } else {
                        "-".into()
                    },
                    if exported {
                        human_bytes(row.bytes_out)
                    } else {
                        "-".into()
                    },
                    if exported {
                        ratio(row.bytes_in, row.bytes_out)
                    } else {
                        "-".into()
                    },
                    format_duration(row.duration),
                    row.file.clone().unwrap_or_else(|| "-".into()),
                ]
            })
            .collect();
        render_table(
            &[
                "PROJECT", "IMAGE", "RESULT", "IN", "OUT", "RATIO", "TIME", "FILE",
            ],
            &rows,
        )
    }

    /// `3 archived, 1 linked, 5 skipped, 0 failed, 0 stale; 12.0 MiB in, 4.1 MiB out (ratio 2.93) in 4.2s`.
    pub fn summary(&self) -> String {
        let totals = self.totals();
        let wire = match (&self.wire, totals.bytes_received) {
            (Some(wire), received) if received > 0 => format!(
                "; wire {}: {} received{}",
                wire.compressor.as_deref().unwrap_or("none"),
                human_bytes(received),
                self.link_rate()
                    .map(|mbit| format!(" at {mbit:.0} Mbit/s"))
                    .unwrap_or_default()
            ),
            _ => String::new(),
        };
        format!(
            "{} archived, {} linked, {} skipped, {} failed, {} stale; {} in, {} out (ratio {}) in {}{wire}",
            totals.archived,
            totals.linked,
            totals.skipped,
            totals.failed,
            totals.stale,
            human_bytes(totals.bytes_in),
            human_bytes(totals.bytes_out),
            ratio(totals.bytes_in, totals.bytes_out),
            format_duration(self.duration),
        )
    }

    /// Bytes received per second of export over the run's exports (Mbit/s).
    fn link_rate(&self) -> Option<f64> {
        let (bytes, seconds) = self
            .images
            .iter()
            .filter_map(|row| row.wire.as_ref())
            .filter(|wire| wire.mbit_per_s > 0.0)
            .fold((0.0, 0.0), |(bytes, seconds), wire| {
                let received = wire.bytes_received as f64;
                (
                    bytes + received,
                    seconds + received * 8.0 / 1e6 / wire.mbit_per_s,
                )
            });
        (seconds > 0.0).then(|| bytes * 8.0 / 1e6 / seconds)
    }

    /// Failure messages and `--delete` notes, one line each.
    pub fn messages(&self) -> Vec<String> {
        let mut messages: Vec<String> = self
            .problems
            .iter()
            .map(|problem| format!("FAILED {problem}"))
            .collect();
        for row in &self.images {
            if let ImageResult::Failed(message) = &row.result {
                messages.push(format!("FAILED {}: {}: {message}", row.project, row.image));
            }
            if let Some(stale) = &row.stale {
                messages.push(format!(
                    "warning: {}; archiving the engine's copy ({})",
                    stale.error,
                    stale.created_text()
                ));
            }
            if let Some(kept) = &row.kept {
                messages.push(format!("kept {} on the engine: {kept}", row.image));
            }
        }
        messages
    }
}

fn ratio(bytes_in: u64, bytes_out: u64) -> String {
    if bytes_out == 0 {
        "-".into()
    } else {
        format!("{:.2}", bytes_in as f64 / bytes_out as f64)
    }
}

/// `512 B`, `1.5 KiB`, `12.0 MiB`, `3.2 GiB`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(result: ImageResult, bytes_in: u64, bytes_out: u64) -> ImageRow {
        ImageRow {
            project: "web".into(),
            image: "httpd:1".into(),
            services: vec!["web".into()],
            action: ArchiveAction::PullSave,
            result,
            file: Some("web/httpd_1.tar.gz".into()),
            docker_id: Some("sha256:aa".into()),
            bytes_in,
            bytes_out,
            deleted: false,
            kept: None,
            duration: Duration::from_millis(1500),
            stale: None,
            deployed_as: None,
            wire: None,
        }
    }

    #[test]
    fn totals_table_and_summary_count_every_row() {
        let report = ArchiveReport {
            arch: "x86_64".into(),
            archive_dir: "/a/x86_64".into(),
            engine: "ssh://h".into(),
            build: None,
            images: vec![
                row(ImageResult::Archived, 4096, 1024),
                row(ImageResult::Skipped, 0, 0),
                row(ImageResult::Failed("boom".into()), 0, 0),
            ],
            problems: vec![],
            duration: Duration::from_secs(2),
            interrupted: false,
            wire: None,
        };
        assert!(report.failed());
        assert_eq!(
            report.summary(),
            "1 archived, 0 linked, 1 skipped, 1 failed, 0 stale; 4.0 KiB in, 1.0 KiB out (ratio 4.00) in 2.0s"
        );
        let table = report.table();
        assert!(table.starts_with("PROJECT  IMAGE    RESULT"), "{table}");
        assert!(
            table.contains("archived  4.0 KiB  1.0 KiB  4.00"),
            "{table}"
        );
        assert_eq!(
            report.messages(),
            vec!["FAILED web: httpd:1: boom".to_string()]
        );
    }

    #[test]
    fn bytes_are_human_readable() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(3 << 30), "3.0 GiB");
    }
}

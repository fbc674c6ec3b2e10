//! Progress bars on a terminal, plain log lines otherwise.
//!
//! Every long-running command (image-build, image-archive, image-restore) shows
//! one line per image. On a terminal that line is an indicatif spinner (or a
//! byte bar when the size is known) that is replaced by its final state; when
//! stderr is not a terminal (CI logs, pipes, tests) each task prints one plain
//! line when it starts and one when it ends, so logs stay readable and greppable.
//! The end-of-run summary table is rendered by [`render_table`].

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Where task lines go: live bars on a terminal, plain lines on stderr otherwise.
#[derive(Clone)]
pub struct Progress {
    bars: Option<MultiProgress>,
    verbose: bool,
}

impl Progress {
    /// Bars when stderr is a terminal, plain lines otherwise.
    pub fn auto(verbose: bool) -> Self {
        if std::io::stderr().is_terminal() {
            Self::bars(verbose)
        } else {
            Self::plain(verbose)
        }
    }

    /// Always plain lines (used when output is captured).
    pub fn plain(verbose: bool) -> Self {
        Self {
            bars: None,
            verbose,
        }
    }

    fn bars(verbose: bool) -> Self {
        Self {
            bars: Some(MultiProgress::with_draw_target(ProgressDrawTarget::stderr())),
            verbose,
        }
    }

    /// True when detail lines (engine output) should be shown.
    pub fn verbose(&self) -> bool {
        self.verbose
    }

    /// Starts a task line labelled `label` (e.g. `[build] pipeline bunker-local/api:1.0`).
    pub fn task(&self, label: impl Into<String>) -> Task {
        let label = label.into();
        let bar = match &self.bars {
            Some(bars) => {
                let bar = bars.add(ProgressBar::new_spinner());
                bar.set_style(spinner_style());
                bar.set_prefix(label.clone());
                bar.enable_steady_tick(Duration::from_millis(120));
                Some(bar)
            }
            None => {
                eprintln!("{label} ...");
                None
            }
        };
        Task {
            inner: Arc::new(TaskInner {
                label,
                bar,
                progress: self.clone(),
                started: Instant::now(),
            }),
        }
    }

    /// Prints a line above the live bars (or plainly on stderr).
    pub fn println(&self, line: impl AsRef<str>) {
        match &self.bars {
            Some(bars) => {
                if bars.println(line.as_ref()).is_err() {
                    eprintln!("{}", line.as_ref());
                }
            }
            None => eprintln!("{}", line.as_ref()),
        }
    }

    /// Ends live drawing: the finished lines stay, and the cursor moves below them
    /// so what the command prints next starts on a fresh line.
    pub fn finish(&self) {
        if self.bars.is_some() {
            eprintln!();
        }
    }

    /// Prints an engine output line when verbose, nothing otherwise.
    pub fn detail(&self, line: impl AsRef<str>) {
        if self.verbose {
            self.println(line);
        }
    }
}

fn spinner_style() -> ProgressStyle {
    ProgressStyle::with_template("{spinner:.cyan} {prefix} {elapsed:>4} {wide_msg:.dim}")
        .unwrap_or_else(|_| ProgressStyle::default_spinner())
}

fn bytes_style() -> ProgressStyle {
    ProgressStyle::with_template(
        "{spinner:.cyan} {prefix} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta} {wide_msg:.dim}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ")
}

/// One image's line; cheap to clone into the code that does the work.
#[derive(Clone)]
pub struct Task {
    inner: Arc<TaskInner>,
}

struct TaskInner {
    label: String,
    bar: Option<ProgressBar>,
    progress: Progress,
    started: Instant,
}

impl Task {
    /// The label given at start.
    pub fn label(&self) -> &str {
        &self.inner.label
    }

    /// Time since the task started.
    pub fn elapsed(&self) -> Duration {
        self.inner.started.elapsed()
    }

    /// Replaces the short status after the label (the current build step, pull layer…).
    /// Plain mode prints nothing: a status is transient.
    pub fn set_message(&self, message: impl Into<String>) {
        if let Some(bar) = &self.inner.bar {
            bar.set_message(message.into());
        }
    }

    /// Switches to a byte bar of `total` bytes (archive, restore).
    pub fn set_length(&self, total: u64) {
        if let Some(bar) = &self.inner.bar {
            bar.set_style(bytes_style());
            bar.set_length(total);
        }
    }

    /// Advances the byte bar.
    pub fn advance(&self, bytes: u64) {
        if let Some(bar) = &self.inner.bar {
            bar.inc(bytes);
        }
    }

    /// Prints an engine output line when verbose.
    pub fn detail(&self, line: impl AsRef<str>) {
        self.inner.progress.detail(line);
    }

    /// Ends the line as a success: `label: <message> (1.2s)`.
    pub fn finish_ok(&self, message: impl AsRef<str>) {
        self.finish("ok", message.as_ref());
    }

    /// Ends the line as a failure: `label: FAILED <message> (1.2s)`.
    pub fn finish_failed(&self, message: impl AsRef<str>) {
        self.finish("FAILED", message.as_ref());
    }

    /// Ends the line as skipped.
    pub fn finish_skipped(&self, message: impl AsRef<str>) {
        self.finish("skipped", message.as_ref());
    }

    fn finish(&self, state: &str, message: &str) {
        let elapsed = format_duration(self.elapsed());
        let first_line = message.lines().next().unwrap_or("");
        let line = if first_line.is_empty() {
            format!("{}: {state} ({elapsed})", self.inner.label)
        } else {
            format!("{}: {state}: {first_line} ({elapsed})", self.inner.label)
        };
        match &self.inner.bar {
            Some(bar) => {
                bar.set_style(
                    ProgressStyle::with_template("{msg}")
                        .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                );
                bar.finish_with_message(line);
            }
            None => eprintln!("{line}"),
        }
    }
}

/// `1.2s`, `2m03s`, `1h02m` — short, fixed meaning.
pub fn format_duration(duration: Duration) -> String {
    let seconds = duration.as_secs_f64();
    if seconds < 60.0 {
        format!("{seconds:.1}s")
    } else if seconds < 3600.0 {
        let whole = duration.as_secs();
        format!("{}m{:02}s", whole / 60, whole % 60)
    } else {
        let whole = duration.as_secs();
        format!("{}h{:02}m", whole / 3600, (whole % 3600) / 60)
    }
}

/// A plain-text table with left-aligned columns separated by two spaces.
pub fn render_table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers
        .iter()
        .map(|header| header.chars().count())
        .collect();
    for row in rows {
        for (column, cell) in row.iter().enumerate() {
            let width = cell.chars().count();
            match widths.get_mut(column) {
                Some(current) => *current = (*current).max(width),
                None => widths.push(width),
            }
        }
    }
    let mut out = String::new();
    let header_cells: Vec<String> = headers.iter().map(|header| header.to_string()).collect();
    for row in std::iter::once(&header_cells).chain(rows) {
        let mut line = String::new();
        for (column, cell) in row.iter().enumerate() {
            if column > 0 {
                line.push_str("  ");
            }
            line.push_str(cell);
            if column + 1 < row.len() {
                let pad = widths[column].saturating_sub(cell.chars().count());
                line.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_short_and_unambiguous() {
        assert_eq!(format_duration(Duration::from_millis(1234)), "1.2s");
        assert_eq!(format_duration(Duration::from_secs(123)), "2m03s");
        assert_eq!(format_duration(Duration::from_secs(3720)), "1h02m");
    }

    #[test]
    fn table_columns_align() {
        let table = render_table(
            &["IMAGE", "RESULT"],
            &[
                vec!["a".into(), "built".into()],
                vec!["longer-name".into(), "failed".into()],
            ],
        );
        assert_eq!(
            table,
            "IMAGE        RESULT\na            built\nlonger-name  failed\n"
        );
    }
}

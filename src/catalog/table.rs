//! The human-readable catalog table: aligned columns that fit the terminal
//! width, long values elided in the middle so tags and names stay visible.

use super::model::{Catalog, CatalogEntry, ImageSource};

const COLUMNS: usize = 7;
const HEADERS: [&str; COLUMNS] = [
    "PROJECT", "SERVICE", "SOURCE", "IMAGE", "VAR", "PINNED", "PULL",
];
/// Narrowest width each column may be squeezed to.
const MINIMUM_WIDTHS: [usize; COLUMNS] = [7, 7, 6, 16, 3, 6, 4];
/// Widths the other columns give up first, so the image keeps its full name.
const COMFORTABLE_WIDTHS: [usize; COLUMNS] = [14, 16, 6, usize::MAX, 14, 6, 6];
/// Then the image shrinks down to this before the others go below comfortable.
const IMAGE_FIRST_WIDTHS: [usize; COLUMNS] = [14, 16, 6, 28, 14, 6, 6];
/// Then the other columns go down to their minimum while the image keeps that width.
const OTHERS_TO_MINIMUM_WIDTHS: [usize; COLUMNS] = [0, 0, 0, 28, 0, 0, 0];
const GAP: &str = "  ";

/// The terminal width: `COLUMNS`, else the size of the terminal on stdout, else 100.
pub fn terminal_width() -> usize {
    if let Some(columns) = std::env::var("COLUMNS")
        .ok()
        .and_then(|text| text.trim().parse::<usize>().ok())
        .filter(|columns| *columns > 0)
    {
        return columns;
    }
    stdout_terminal_width().unwrap_or(100)
}

fn stdout_terminal_width() -> Option<usize> {
    // SAFETY: TIOCGWINSZ only writes a `winsize` into the struct we pass.
    unsafe {
        let mut size: libc::winsize = std::mem::zeroed();
        if libc::isatty(libc::STDOUT_FILENO) == 1
            && libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut size) == 0
            && size.ws_col > 0
        {
            Some(size.ws_col as usize)
        } else {
            None
        }
    }
}

/// The table rows of `catalog` as lines no wider than `width` (at least 60 is assumed).
pub fn render(catalog: &Catalog, width: usize) -> Vec<String> {
    let width = width.max(60);
    let rows: Vec<[String; COLUMNS]> = catalog.entries.iter().map(row).collect();
    let mut widths: Vec<usize> = (0..COLUMNS)
        .map(|column| {
            rows.iter()
                .map(|row| row[column].chars().count())
                .chain([HEADERS[column].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let available = width - GAP.len() * (COLUMNS - 1);
    // Squeeze the other columns to a comfortable width first, then the image, then everything.
    for floors in [
        COMFORTABLE_WIDTHS,
        IMAGE_FIRST_WIDTHS,
        OTHERS_TO_MINIMUM_WIDTHS,
        MINIMUM_WIDTHS,
    ] {
        while widths.iter().sum::<usize>() > available {
            let widest = (0..COLUMNS)
                .filter(|&column| widths[column] > floors[column].max(MINIMUM_WIDTHS[column]))
                .max_by_key(|&column| widths[column]);
            match widest {
                Some(column) => widths[column] -= 1,
                None => break,
            }
        }
    }
    let mut lines = Vec::with_capacity(rows.len() + 1);
    lines.push(format_row(&HEADERS.map(str::to_string), &widths));
    for row in &rows {
        lines.push(format_row(row, &widths));
    }
    lines
}

/// Explains the table's abbreviations that occur in `catalog`.
pub fn legend(catalog: &Catalog) -> Vec<String> {
    let mut lines = Vec::new();
    if catalog
        .entries
        .iter()
        .any(|entry| entry.source == ImageSource::Base)
    {
        lines.push("<svc: base image (FROM, COPY --from) of the build of service svc".to_string());
    }
    if catalog
        .entries
        .iter()
        .any(|entry| entry.build.as_ref().is_some_and(|build| build.remote))
    {
        lines.push(
            "build*: remote build context, its Dockerfile is not analysed offline".to_string(),
        );
    }
    if catalog
        .entries
        .iter()
        .any(|entry| !entry.profiles.is_empty())
    {
        lines.push("service[p]: only started with profile p".to_string());
    }
    if catalog.entries.iter().any(|entry| entry.instance.is_some()) {
        lines.push(
            "project@i: configured instance i (.env_<context>_i, its override file, Compose project project_i)"
                .to_string(),
        );
    }
    lines
}

/// The PULL column: the service's `pull_policy`, `-` when unset or for base images.
fn row(entry: &CatalogEntry) -> [String; COLUMNS] {
    let mut service = match (&entry.service, entry.source) {
        (Some(service), _) => service.clone(),
        (None, _) => format!("<{}", entry.base_for.join(",")),
    };
    if !entry.profiles.is_empty() {
        service.push_str(&format!("[{}]", entry.profiles.join(",")));
    }
    let source = match entry.source {
        ImageSource::Pull => "pull",
        ImageSource::Build if entry.build.as_ref().is_some_and(|build| build.remote) => "build*",
        ImageSource::Build => "build",
        ImageSource::Base => "base",
    };
    let image = entry
        .image
        .clone()
        .unwrap_or_else(|| "(unresolved, see errors)".to_string());
    let pinned = match (&entry.image, entry.source, entry.pinned) {
        (None, _, _) => "-",
        (_, ImageSource::Build, _) => "built",
        (_, _, true) => "yes",
        (_, _, false) => "NO",
    };
    let project = match &entry.instance {
        Some(instance) => format!("{}@{instance}", entry.project),
        None => entry.project.clone(),
    };
    [
        project,
        service,
        source.to_string(),
        image,
        entry.env_var.clone().unwrap_or_else(|| "-".to_string()),
        pinned.to_string(),
        entry.pull_policy.clone().unwrap_or_else(|| "-".to_string()),
    ]
}

fn format_row(cells: &[String; COLUMNS], widths: &[usize]) -> String {
    let mut line = String::new();
    for (column, cell) in cells.iter().enumerate() {
        let text = elide(cell, widths[column], column == 3);
        line.push_str(&text);
        if column < COLUMNS - 1 {
            let padding = widths[column].saturating_sub(text.chars().count());
            line.push_str(&" ".repeat(padding));
            line.push_str(GAP);
        }
    }
    line.trim_end().to_string()
}

/// Shortens `text` to `width` characters with "…": in the middle when `middle`
/// (keeps the registry and the tag of an image), else at the end.
pub fn elide(text: &str, width: usize, middle: bool) -> String {
    let length = text.chars().count();
    if length <= width {
        return text.to_string();
    }
    if width <= 1 {
        return "…".chars().take(width).collect();
    }
    let keep = width - 1;
    if middle {
        let tail = keep / 2 + keep % 2;
        let head = keep - tail;
        let start: String = text.chars().take(head).collect();
        let end: String = text.chars().skip(length - tail).collect();
        format!("{start}…{end}")
    } else {
        let start: String = text.chars().take(keep).collect();
        format!("{start}…")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elision_keeps_both_ends() {
        assert_eq!(
            elide("registry.example.com/org/app:1.2.3", 15, true),
            "registr…p:1.2.3"
        );
        assert_eq!(elide("averylongprojectname", 8, false), "averylo…");
        assert_eq!(elide("short", 8, true), "short");
        assert_eq!(elide("short", 8, true).chars().count(), 5);
    }
}

//! `bunker image-catalog`: list every image the projects need, as a table
//! (default), a summary (`--summary`) or JSON (`--json`). Errors go to stderr
//! with file and line; the exit status is 1 when there were any.
use std::io::Write;
use std::process::ExitCode;

use clap::Args;

use super::GlobalArgs;
use super::common::ProjectSelectionArgs;
use crate::catalog::document::CatalogDocument;
use crate::catalog::summary::Summary;
use crate::catalog::{Catalog, CatalogError, CatalogOptions, load_catalog, table};

#[derive(Debug, Args)]
pub struct CatalogArgs {
    /// Print the catalog as JSON (schema in README.md).
    #[arg(long, conflicts_with = "summary")]
    pub json: bool,
    /// Print only the summary.
    #[arg(long)]
    pub summary: bool,
    #[command(flatten)]
    pub selection: ProjectSelectionArgs,
}

pub fn run(global: &GlobalArgs, args: CatalogArgs) -> anyhow::Result<ExitCode> {
    let mut options = CatalogOptions::new(&global.projects_dir);
    options.context = Some(crate::settings::context_name(global.context.as_deref()));
    options.only = args.selection.projects;
    options.exclude = args.selection.excludes;
    options.instances = args.selection.instances;
    options.defaults = args.selection.defaults;
    let catalog = load_catalog(&options);
    let failed = !catalog.errors.is_empty();
    print_errors(&catalog.errors);
    print_warnings(&catalog.warnings);

    let mut stdout = std::io::stdout().lock();
    if args.json {
        let document = CatalogDocument::new(catalog);
        serde_json::to_writer_pretty(&mut stdout, &document)?;
        writeln!(stdout)?;
    } else {
        write_text(&mut stdout, &catalog, args.summary, table::terminal_width())?;
    }
    stdout.flush()?;
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// The table (unless `summary_only`) followed by the summary, at most `width` columns wide.
pub fn write_text(
    out: &mut impl Write,
    catalog: &Catalog,
    summary_only: bool,
    width: usize,
) -> std::io::Result<()> {
    if !summary_only {
        if catalog.entries.is_empty() {
            writeln!(
                out,
                "No images found in {}.",
                catalog.projects_dir.display()
            )?;
        } else {
            for line in table::render(catalog, width) {
                writeln!(out, "{line}")?;
            }
            let legend = table::legend(catalog);
            if !legend.is_empty() {
                writeln!(out)?;
            }
            for line in legend {
                writeln!(out, "{}", table::elide(&line, width, false))?;
            }
        }
        let empty = projects_without_images(catalog);
        if !empty.is_empty() {
            writeln!(out)?;
            writeln!(out, "No images in: {}.", empty.join(", "))?;
        }
        writeln!(out)?;
    }
    for line in Summary::of(catalog).render(width) {
        writeln!(out, "{line}")?;
    }
    Ok(())
}

/// Projects read without errors that need no image (a compose file without services).
fn projects_without_images(catalog: &Catalog) -> Vec<&str> {
    catalog
        .projects
        .iter()
        .filter(|project| project.ok)
        .filter(|project| !catalog.entries.iter().any(|e| e.project == project.name))
        .map(|project| project.name.as_str())
        .collect()
}

fn print_warnings(warnings: &[CatalogError]) {
    let mut stderr = std::io::stderr().lock();
    for warning in warnings {
        let _ = writeln!(stderr, "warning: {}", describe(warning));
    }
}

fn print_errors(errors: &[CatalogError]) {
    let mut stderr = std::io::stderr().lock();
    for error in errors {
        let _ = writeln!(stderr, "error: {}", describe(error));
    }
}

/// `project/service: file:line: message`.
pub fn describe(error: &CatalogError) -> String {
    let mut text = error.project.clone();
    if let Some(instance) = &error.instance {
        text.push('@');
        text.push_str(instance);
    }
    if let Some(service) = &error.service {
        text.push('/');
        text.push_str(service);
    }
    if !text.is_empty() {
        text.push_str(": ");
    }
    text.push_str(&error.file.display().to_string());
    if let Some(line) = error.line {
        text.push_str(&format!(":{line}"));
    }
    text.push_str(": ");
    text.push_str(&error.message);
    text
}

//! `bunker image-catalog`: list every image the projects need, as a table
//! (default), a summary (`--summary`) or JSON (`--json`). Errors go to stderr
//! with file and line; the exit status is 1 when there were any.
//!
//! `--deployed` asks the engine which containers run and prints the differences
//! with the catalog instead ([`crate::deployed`]); like `git diff`, a difference is
//! information (exit 0) unless `--exit-code` (or `--strict`) asks for status 1.
use std::io::Write;
use std::process::ExitCode;

use clap::Args;

use super::GlobalArgs;
use super::common::ProjectSelectionArgs;
use super::engine_args::EngineArgs;
use crate::catalog::document::CatalogDocument;
use crate::catalog::summary::Summary;
use crate::catalog::{Catalog, CatalogError, CatalogOptions, load_catalog, table};
use crate::deployed::running::compare_running;
use crate::deployed::{compare, render};

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
    /// Compare with what the engine runs: list running images that are not cataloged,
    /// cataloged services that do not run, and containers whose image tag has moved.
    #[arg(long, conflicts_with = "summary")]
    pub deployed: bool,
    /// With --deployed: exit 1 when there is any difference (as `git diff --exit-code`).
    #[arg(long = "exit-code", alias = "strict", requires = "deployed")]
    pub exit_code: bool,
    #[command(flatten)]
    pub engine: EngineArgs,
}

pub async fn run(global: &GlobalArgs, args: CatalogArgs) -> anyhow::Result<ExitCode> {
    let mut options = CatalogOptions::new(&global.projects_dir);
    options.context = Some(crate::settings::context_name(global.context.as_deref()));
    options.only = args.selection.projects.clone();
    options.exclude = args.selection.excludes.clone();
    options.instances = args.selection.instances.clone();
    options.defaults = args.selection.defaults;
    let catalog = load_catalog(&options);
    let failed = !catalog.errors.is_empty();
    print_errors(&catalog.errors);
    print_warnings(&catalog.warnings);
    if args.deployed {
        return run_deployed(global, &args, &catalog, failed).await;
    }

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

/// `--deployed`: the catalog against the engine's running containers.
async fn run_deployed(
    global: &GlobalArgs,
    args: &CatalogArgs,
    catalog: &Catalog,
    catalog_failed: bool,
) -> anyhow::Result<ExitCode> {
    let engine = crate::engine::connect(&args.engine.settings(global)).await?;
    let comparison = compare_running(&engine, catalog, &args.selection.selection()).await?;
    let mut stdout = std::io::stdout().lock();
    if args.json {
        let value = serde_json::json!({
            "schema_version": 1,
            "projects_dir": catalog.projects_dir,
            "context": catalog.context,
            "engine": comparison.engine,
            "containers": comparison.containers,
            "differences": comparison.differences,
            "totals": {
                "containers": comparison.containers.len(),
                "not_cataloged": comparison.count(compare::DifferenceKind::NotCataloged),
                "not_deployed": comparison.count(compare::DifferenceKind::NotDeployed),
                "tag_moved": comparison.count(compare::DifferenceKind::TagMoved),
            },
            "errors": catalog.errors,
        });
        serde_json::to_writer_pretty(&mut stdout, &value)?;
        writeln!(stdout)?;
    } else {
        write!(stdout, "{}", render::render(&comparison))?;
    }
    stdout.flush()?;
    let differ = !comparison.differences.is_empty();
    if args.exit_code && differ {
        eprintln!(
            "--exit-code: {} difference(s) between the catalog and {}; exit status 1",
            comparison.differences.len(),
            engine.target
        );
    }
    Ok(if catalog_failed || (args.exit_code && differ) {
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

//! Command-line entry: one subcommand per user job, each in its own file.
//!
//! Every command is thin: parse flags, build a plan, run it, print a report.
//! Each `run` returns the process exit status: 0 success, 1 when any item
//! failed, 2 for usage errors (clap's own convention).

pub mod archive;
pub mod build;
pub mod catalog;
pub mod common;
pub mod engine;
pub mod engine_args;
pub mod install;
pub mod registry;
pub mod restore;
mod value_enums;
pub mod verify_load;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, CommandFactory, Parser, Subcommand};

/// `bunker --version`: the package version and the git commit it was built from (build.rs).
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("BUNKER_GIT_COMMIT"),
    ")"
);

/// Disaster recovery for self-hosted container infrastructure.
#[derive(Debug, Parser)]
#[command(name = "bunker", version = VERSION, about, long_about = None)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command understands.
#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    /// Root of the project tree (one directory per project).
    #[arg(
        long,
        global = true,
        env = "BUNKER_PROJECTS_DIR",
        default_value = "projects"
    )]
    pub projects_dir: PathBuf,
    /// Docker context: selects the engine and the `.env_<context>` file at the projects root.
    #[arg(long, global = true, env = "DOCKER_CONTEXT")]
    pub context: Option<String>,
    /// More output (engine build logs, skipped items).
    #[arg(long, short, global = true)]
    pub verbose: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List every image the projects need, resolved as Docker Compose resolves it.
    ImageCatalog(catalog::CatalogArgs),
    /// Pull or build every cataloged image on the (remote) engine.
    ImageBuild(build::BuildArgs),
    /// Stream images off the engine into verified, compressed archives.
    ImageArchive(archive::ArchiveArgs),
    /// Verify archives and load them onto an engine.
    ImageRestore(restore::RestoreArgs),
    /// Bring projects up with Docker Compose (offline with BUILD=false).
    Install(install::InstallArgs),
    /// Inspect the Docker engine bunker talks to.
    #[command(subcommand)]
    Engine(engine::EngineCommand),
    /// Check an archive directory (offline; with `verify --load`, on an engine).
    #[command(subcommand)]
    Archive(archive::ArchiveCommand),
    /// Registry work without Docker: pull, push, list tags, catalog, export.
    #[command(subcommand)]
    Registry(registry::RegistryCommand),
    /// Sync many repositories: registry → archive, archive → registry, registry → registry.
    Sync(registry::SyncArgs),
    /// Log in to a registry (credentials shared with the Docker CLI).
    Login(registry::LoginArgs),
    /// Print shell completions.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

/// Parses the command line, runs the command and maps errors to exit status 1.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.global.verbose);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(1)
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let global = cli.global;
    match cli.command {
        Command::ImageCatalog(args) => catalog::run(&global, args).await,
        Command::ImageBuild(args) => build::run(&global, args).await,
        Command::ImageArchive(args) => archive::run(&global, args).await,
        Command::ImageRestore(args) => restore::run(&global, args).await,
        Command::Install(args) => install::run(&global, args).await,
        Command::Engine(command) => engine::run(&global, command).await,
        Command::Archive(command) => archive::run_archive_command(&global, command).await,
        Command::Registry(command) => registry::run(&global, command).await,
        Command::Login(args) => registry::login(args).await,
        Command::Sync(args) => registry::sync(&global, args).await,
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "bunker", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn init_tracing(verbose: bool) {
    let default = if verbose {
        "bunker=debug"
    } else {
        "bunker=warn"
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("BUNKER_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .without_time()
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

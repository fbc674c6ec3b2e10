//! `bunker registry ...`: registry work over the distribution API, no engine.
//!
//! Flags → plan → run → report, like every command; `--json` output for
//! scripts, exit status 1 when any image failed.
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};

use super::GlobalArgs;
use crate::interrupt::Interrupt;
use crate::registry::archived::load_archived_images;
use crate::registry::client::{ClientOptions, RegistryClient};
use crate::registry::manifest::PlatformSelection;
use crate::registry::platform_choice::{PlatformChoice, PlatformInputs, choose_platform};
use crate::registry::pull::{PullFormat, PullOptions, pull_images};
use crate::registry::reference::{ImageReference, RepositoryName};
use crate::registry::retry::RetryPolicy;
use crate::registry::tags::{self, TagFilter};

#[derive(Debug, Subcommand)]
pub enum RegistryCommand {
    /// List the tags of a repository (all pages).
    ListTags(ListTagsArgs),
    /// List the repositories of a registry (all pages).
    Catalog(CatalogArgs),
    /// Pull images into the archive without any Docker engine.
    Pull(PullArgs),
    /// Push archived images to a registry, with renaming.
    Push(PushArgs),
    /// Write archived images in another on-disk format.
    Export(ExportArgs),
}

/// On-disk formats `registry export` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    /// The Docker distribution registry's filesystem storage (`docker/registry/v2/...`).
    RegistryStorage,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Output format.
    #[arg(long, value_enum)]
    pub format: ExportFormat,
    /// The registry's storage root (its `rootdirectory`).
    pub directory: PathBuf,
    /// docker-save archives, OCI layout directories or archive directories
    /// (repeatable); default: the archive directory (its OCI layout if it has
    /// one, else its manifest.json files).
    #[arg(long = "source")]
    pub sources: Vec<PathBuf>,
    #[command(flatten)]
    pub archive: ArchiveDirArgs,
    /// Keep at most N repository path levels (group/project/image → group/project-image).
    #[arg(long)]
    pub flatten: Option<usize>,
}

/// `--archive-dir` of the commands that read or write the archive.
#[derive(Debug, Clone, Args)]
pub struct ArchiveDirArgs {
    /// Archive base directory (default: IMAGE_ARCHIVE_DIR or ./_archive/images).
    #[arg(long, alias = "output-dir")]
    pub archive_dir: Option<PathBuf>,
}

impl ArchiveDirArgs {
    /// The archive directory in force.
    fn resolve(&self, global: &GlobalArgs) -> PathBuf {
        archive_dir_for(global, self.archive_dir.as_deref())
    }
}

/// How to reach the registry.
#[derive(Debug, Clone, Args)]
pub struct ConnectionArgs {
    /// Use plain HTTP (always used for localhost and 127.0.0.1).
    #[arg(long, global = true)]
    pub insecure: bool,
}

impl ConnectionArgs {
    pub fn client_options(&self) -> ClientOptions {
        ClientOptions {
            insecure: self.insecure,
            retry: RetryPolicy::from_env(),
        }
    }
}

#[derive(Debug, Args)]
pub struct ListTagsArgs {
    /// Repository, e.g. `127.0.0.1:5999/group/app` or `alpine`.
    pub repository: String,
    /// Keep tags matching this regular expression (whole tag).
    #[arg(long)]
    pub filter: Option<String>,
    /// Keep tags that are versions inside this semver range, e.g. ">=1.2, <2".
    #[arg(long)]
    pub semver: Option<String>,
    /// Print a JSON object instead of one tag per line.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub connection: ConnectionArgs,
}

#[derive(Debug, Args)]
pub struct CatalogArgs {
    /// Registry host, e.g. `127.0.0.1:5999`.
    pub registry: String,
    /// Print JSON instead of one repository per line.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub connection: ConnectionArgs,
}

#[derive(Debug, Args)]
pub struct PullArgs {
    /// Images to pull, e.g. `127.0.0.1:5999/app:1.0`.
    pub images: Vec<String>,
    /// Read more images from this file (one per line, `#` comments).
    #[arg(long)]
    pub from_file: Option<PathBuf>,
    #[command(flatten)]
    pub archive: ArchiveDirArgs,
    /// Project the archives are filed under.
    #[arg(long, default_value = "registry")]
    pub project: String,
    /// Output format.
    #[arg(long, value_enum, default_value = "docker")]
    pub format: PullFormat,
    /// Platform to take from multi-platform images (default: DOCKER_DEFAULT_PLATFORM,
    /// else the configured engine's, else this workstation's).
    #[arg(long, conflicts_with = "all_platforms")]
    pub platform: Option<String>,
    /// Take every platform of multi-platform images.
    #[arg(long)]
    pub all_platforms: bool,
    /// Parallel blob transfers.
    #[arg(long, short, default_value_t = 8)]
    pub jobs: usize,
    #[command(flatten)]
    pub engine: super::engine_args::EngineArgs,
    /// Compression of docker archives (`none` writes a plain .tar, like `docker save`).
    #[arg(long, value_enum, default_value = "gzip")]
    pub compression: crate::archive::Compression,
    /// Compression level (gzip 1 fastest … 9 smallest, default 5; zstd 1 … 19, default 3).
    #[arg(long)]
    pub compression_level: Option<u32>,
    /// Print a JSON report.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub connection: ConnectionArgs,
}

#[derive(Debug, Args)]
pub struct PushArgs {
    /// docker-save archives (.tar, .tar.gz), OCI layout directories or archive
    /// directories (read through their manifest.json); default: the archive
    /// directory (its OCI layout if it has one, else its manifest.json files).
    pub sources: Vec<PathBuf>,
    #[command(flatten)]
    pub archive: ArchiveDirArgs,
    /// Destination registry and optional prefix: REGISTRY[/PREFIX].
    #[arg(long)]
    pub to: String,
    /// Mapping file: per-repository names, regex rewrites, flatten rule.
    #[arg(long)]
    pub mapping: Option<PathBuf>,
    /// Keep at most N path levels: group/project/image → group/project-image.
    #[arg(long)]
    pub flatten: Option<usize>,
    /// Replace destination tags that hold another image.
    #[arg(long)]
    pub overwrite: bool,
    /// Show every source → destination and the conflicts; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Parallel blob transfers.
    #[arg(long, short, default_value_t = 8)]
    pub jobs: usize,
    /// Upload chunk size in MiB.
    #[arg(long, default_value_t = 16)]
    pub chunk_size_mib: u64,
    #[command(flatten)]
    pub connection: ConnectionArgs,
}

pub async fn run(global: &GlobalArgs, command: RegistryCommand) -> anyhow::Result<ExitCode> {
    match command {
        RegistryCommand::Push(args) => push(global, args).await,
        RegistryCommand::Export(args) => export(global, args).await,
        RegistryCommand::ListTags(args) => list_tags(args).await,
        RegistryCommand::Catalog(args) => catalog(args).await,
        RegistryCommand::Pull(args) => pull(global, args).await,
    }
}

async fn list_tags(args: ListTagsArgs) -> anyhow::Result<ExitCode> {
    let repository = RepositoryName::parse(&args.repository)?;
    let filter = TagFilter::new(args.filter.as_deref(), args.semver.as_deref())?;
    let client = RegistryClient::new(&repository.registry, &args.connection.client_options())?;
    let mut tags: Vec<String> = tags::list_tags(&client, &repository)
        .await?
        .into_iter()
        .filter(|tag| filter.matches(tag))
        .collect();
    tags::sort_semantic(&mut tags);
    if args.json {
        let report = serde_json::json!({
            "repository": repository.to_string(),
            "tags": tags,
        });
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        for tag in &tags {
            println!("{tag}");
        }
    }
    print_rate_limit(&client);
    Ok(ExitCode::SUCCESS)
}

async fn catalog(args: CatalogArgs) -> anyhow::Result<ExitCode> {
    let registry = args.registry.trim_end_matches('/').to_string();
    if registry.is_empty() || registry.contains('/') {
        anyhow::bail!(
            "expected a registry host such as 127.0.0.1:5000, got {:?}",
            args.registry
        );
    }
    let client = RegistryClient::new(&registry, &args.connection.client_options())?;
    let mut repositories = tags::catalog(&client).await?;
    repositories.sort();
    if args.json {
        let report = serde_json::json!({ "registry": registry, "repositories": repositories });
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        for repository in &repositories {
            println!("{repository}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Image references from the command line and `--from-file`.
pub fn collect_references(
    images: &[String],
    from_file: Option<&std::path::Path>,
) -> anyhow::Result<Vec<ImageReference>> {
    let mut texts: Vec<String> = images.to_vec();
    if let Some(path) = from_file {
        let content = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the image list {}", path.display()))?;
        for (number, line) in content.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            ImageReference::parse_input(line)
                .with_context(|| format!("{}:{}", path.display(), number + 1))?;
            texts.push(line.to_string());
        }
    }
    if texts.is_empty() {
        anyhow::bail!("no image given: name images on the command line or with --from-file LIST");
    }
    let mut references = Vec::new();
    for text in texts {
        let reference = ImageReference::parse_input(&text)?;
        if !references.contains(&reference) {
            references.push(reference);
        }
    }
    Ok(references)
}

/// Resolves the default platform (see [`choose_platform`]) and says on stderr
/// which one was chosen and why.
async fn announce_platform(
    global: &GlobalArgs,
    flag: Option<&str>,
    engine: &super::engine_args::EngineArgs,
) -> anyhow::Result<PlatformChoice> {
    let inputs = PlatformInputs::from_environment(flag, &engine.settings(global))?;
    let choice = choose_platform(&inputs).await?;
    eprintln!("platform {}: {}", choice.platform, choice.reason);
    Ok(choice)
}

async fn pull(global: &GlobalArgs, args: PullArgs) -> anyhow::Result<ExitCode> {
    let references = collect_references(&args.images, args.from_file.as_deref())?;
    if args.format == PullFormat::Docker && args.all_platforms {
        // docker-save archives hold one platform; each platform gets its own file.
        tracing::info!("--all-platforms with docker format: one archive per platform");
    }
    let platform = if args.all_platforms {
        None
    } else {
        Some(announce_platform(global, args.platform.as_deref(), &args.engine).await?)
    };
    let options = PullOptions {
        archive_dir: args.archive.resolve(global),
        project: args.project.clone(),
        format: args.format,
        platforms: match &platform {
            Some(choice) => PlatformSelection::One(choice.platform.clone()),
            None => PlatformSelection::All,
        },
        jobs: args.jobs.max(1),
        client: args.connection.client_options(),
        show_progress: std::io::IsTerminal::is_terminal(&std::io::stderr()) && !args.json,
        compression: args.compression,
        compression_level: args.compression_level,
        stop: Default::default(),
    };
    let interrupt = Interrupt::listen(|signal| {
        eprintln!(
            "{}",
            signal.stop_line(
                "finished images are kept in manifest.json and partial blob downloads \
                 are kept for the next run to resume"
            )
        );
    })?;
    let options = PullOptions {
        stop: interrupt.token(),
        ..options
    };
    let started = std::time::Instant::now();
    let (outcomes, totals) = pull_images(&references, &options).await;
    let stopped = outcomes.iter().filter(|o| o.stopped()).count();
    let failed = outcomes.iter().filter(|o| o.result.is_err()).count() - stopped;
    if args.json {
        let images: Vec<serde_json::Value> = outcomes
            .iter()
            .map(|outcome| match &outcome.result {
                Ok(images) => serde_json::json!({
                    "reference": outcome.reference,
                    "status": "ok",
                    "images": images.iter().map(|image| serde_json::json!({
                        "platform": image.platform.to_string(),
                        "manifest_digest": image.manifest_digest.to_string(),
                        "image_id": image.config_digest.to_string(),
                        "output": image.output,
                        "sha256": image.archive.as_ref().map(|a| a.sha256.to_string()),
                        "size": image.archive.as_ref().map(|a| a.size),
                    })).collect::<Vec<_>>(),
                }),
                Err(_) if outcome.stopped() => serde_json::json!({
                    "reference": outcome.reference,
                    "status": "stopped",
                }),
                Err(error) => serde_json::json!({
                    "reference": outcome.reference,
                    "status": "failed",
                    "lack_of_space": outcome.lacks_space(),
                    "error": format!("{error:#}"),
                }),
            })
            .collect();
        let report = serde_json::json!({
            "images": images,
            "downloaded_bytes": totals.downloaded_bytes,
            "reused_bytes": totals.reused_bytes,
            "failed": failed,
            "stopped": stopped,
            "platform": platform,
            "lack_of_space": totals.lack_of_space.map(|short| serde_json::json!({
                "images": short.images,
                "needed_bytes": short.needed,
                "free_bytes": short.free,
            })),
        });
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        for outcome in &outcomes {
            match &outcome.result {
                Ok(images) => {
                    for image in images {
                        println!(
                            "pulled {} ({}) {} -> {}",
                            outcome.reference,
                            image.platform,
                            image.config_digest,
                            image.output.display()
                        );
                    }
                }
                Err(_) if outcome.stopped() => {
                    eprintln!(
                        "STOPPED {}: not finished, rerun to complete it",
                        outcome.reference
                    )
                }
                Err(error) if outcome.lacks_space() => {
                    eprintln!("FAILED {} (no space left): {error:#}", outcome.reference)
                }
                Err(error) => eprintln!("FAILED {}: {error:#}", outcome.reference),
            }
        }
        for (registry, limit) in &totals.rate_limits {
            eprintln!(
                "{registry}: rate limit {} of {} pulls left",
                limit.remaining,
                limit
                    .limit
                    .map(|l| l.to_string())
                    .unwrap_or_else(|| "?".into())
            );
        }
        println!(
            "{} image(s), {} failed, {} stopped, {} downloaded, {} reused from the cache, {:.1}s",
            outcomes.len(),
            failed,
            stopped,
            human_bytes(totals.downloaded_bytes),
            human_bytes(totals.reused_bytes),
            started.elapsed().as_secs_f64()
        );
        if let Some(short) = totals.lack_of_space {
            println!(
                "{} image(s) failed for lack of space in {}: they need about {} ({} bytes), {} ({} bytes) are free; free space or use a bigger disk and run again",
                short.images,
                options.archive_dir.display(),
                human_bytes(short.needed),
                short.needed,
                human_bytes(short.free),
                short.free
            );
        }
    }
    if let Some(code) = interrupt.exit_code() {
        return Ok(code);
    }
    Ok(if failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn print_rate_limit(client: &RegistryClient) {
    if let Some(limit) = client.rate_limit() {
        eprintln!(
            "{}: rate limit {} of {} pulls left{}",
            client.registry(),
            limit.remaining,
            limit
                .limit
                .map(|l| l.to_string())
                .unwrap_or_else(|| "?".into()),
            limit
                .window_seconds
                .map(|w| format!(" (window {}h)", w / 3600))
                .unwrap_or_default()
        );
    }
}

/// `1.5 MiB` style sizes for reports.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// The archive directory in force for a command.
fn archive_dir_for(global: &GlobalArgs, explicit: Option<&std::path::Path>) -> PathBuf {
    let context = crate::settings::context_name(global.context.as_deref());
    let root_env = crate::settings::root_env(&global.projects_dir, &context).unwrap_or_default();
    crate::settings::archive_dir(explicit, &root_env)
}

async fn push(global: &GlobalArgs, args: PushArgs) -> anyhow::Result<ExitCode> {
    use crate::registry::push::{
        DestinationState, PushOptions, PushStats, describe_plan, plan_push, push_item,
    };
    let archive_dir = args.archive.resolve(global);
    let mapping = crate::registry::mapping::NameMapping::new(
        &args.to,
        args.mapping.as_deref(),
        args.flatten,
    )?;
    if args.chunk_size_mib == 0 {
        anyhow::bail!("--chunk-size-mib must be at least 1");
    }
    let mut options = PushOptions {
        mapping,
        overwrite: args.overwrite,
        jobs: args.jobs.max(1),
        chunk_size: args.chunk_size_mib * 1024 * 1024,
        client: args.connection.client_options(),
        progress: None,
    };
    let images = {
        let sources = args.sources.clone();
        let dir = archive_dir.clone();
        tokio::task::spawn_blocking(move || load_archived_images(&sources, &dir)).await??
    };
    if images.is_empty() {
        anyhow::bail!("no images found to push");
    }
    let clients = crate::registry::pull::ClientPool::default();
    let plan = plan_push(images, &options, &clients).await?;
    for line in describe_plan(&plan) {
        println!("{line}");
    }
    let conflicts = plan
        .iter()
        .filter(|item| matches!(item.state, DestinationState::Conflict(_)))
        .count();
    if conflicts > 0 {
        eprintln!(
            "error: {conflicts} conflict(s); nothing was pushed. Fix the mapping or use --overwrite for existing tags."
        );
        return Ok(ExitCode::from(1));
    }
    if args.dry_run {
        println!(
            "dry run: {} image(s) would be pushed",
            plan.iter()
                .filter(|i| i.state != DestinationState::UpToDate)
                .count()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let to_push: Vec<_> = plan
        .iter()
        .filter(|item| item.state != DestinationState::UpToDate)
        .collect();
    let total_bytes: u64 = to_push
        .iter()
        .flat_map(|item| item.image.blobs())
        .map(|blob| blob.size)
        .sum();
    let bar = crate::registry::pull::progress_bar(
        total_bytes,
        std::io::IsTerminal::is_terminal(&std::io::stderr()),
    );
    options.progress = Some({
        let bar = bar.clone();
        std::sync::Arc::new(move |bytes| bar.inc(bytes))
    });
    let cache = crate::registry::blob_cache::BlobCache::new(&archive_dir);
    let mounts = crate::registry::push::MountSources::default();
    let mut total = PushStats::default();
    let mut failed = 0;
    let mut stopped = 0;
    let interrupt = {
        let bar = bar.clone();
        Interrupt::listen(move |signal| {
            // println on a hidden bar prints nothing: suspend it instead.
            bar.suspend(|| {
                eprintln!(
                    "{}",
                    signal.stop_line(
                        "images already pushed stay in the registry; the running upload is \
                         aborted and its manifest is not pushed",
                    )
                )
            });
        })?
    };
    let stop = interrupt.token();
    for item in to_push {
        if stop.is_cancelled() {
            stopped += 1;
            eprintln!("STOPPED {}: not pushed, rerun to push it", item.destination);
            continue;
        }
        let client = clients.get(&item.destination.name.registry, &options.client)?;
        // Dropping a running push aborts its upload; its manifest is pushed last,
        // so the destination never names an incomplete image.
        let pushed = tokio::select! {
            biased;
            () = stop.cancelled() => None,
            result = push_item(item, &cache, &client, &mounts, &options) => Some(result),
        };
        let Some(pushed) = pushed else {
            stopped += 1;
            eprintln!(
                "STOPPED {}: upload aborted, rerun to push it",
                item.destination
            );
            continue;
        };
        match pushed {
            Ok(stats) => {
                println!(
                    "pushed {} ({} uploaded, {} mounted, {} already there)",
                    item.destination,
                    stats.uploaded_blobs,
                    stats.mounted_blobs,
                    stats.skipped_blobs
                );
                total.uploaded_blobs += stats.uploaded_blobs;
                total.uploaded_bytes += stats.uploaded_bytes;
                total.mounted_blobs += stats.mounted_blobs;
                total.skipped_blobs += stats.skipped_blobs;
            }
            Err(error) => {
                failed += 1;
                eprintln!("FAILED {}: {error:#}", item.destination);
            }
        }
    }
    bar.finish_and_clear();
    println!(
        "{} image(s), {failed} failed, {}{} uploaded in {} blob(s), {} mounted, {} skipped",
        plan.len(),
        if stopped > 0 {
            format!("{stopped} stopped, ")
        } else {
            String::new()
        },
        human_bytes(total.uploaded_bytes),
        total.uploaded_blobs,
        total.mounted_blobs,
        total.skipped_blobs
    );
    if let Some(code) = interrupt.exit_code() {
        return Ok(code);
    }
    Ok(if failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

async fn export(global: &GlobalArgs, args: ExportArgs) -> anyhow::Result<ExitCode> {
    let ExportFormat::RegistryStorage = args.format;
    let archive_dir = args.archive.resolve(global);
    if args.flatten == Some(0) {
        anyhow::bail!("--flatten must be at least 1");
    }
    let started = std::time::Instant::now();
    let stats = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        let images = load_archived_images(&args.sources, &archive_dir)?;
        let cache = crate::registry::blob_cache::BlobCache::new(&archive_dir);
        let flatten = args.flatten;
        let destination = |image: &crate::registry::archived::ArchivedImage| {
            let mut path = image.source.name.repository.clone();
            if let Some(levels) = flatten {
                path = crate::registry::mapping::flatten(&path, levels);
            }
            Ok(RepositoryName::new("local", &path)?.with_tag(image.source.tag_or_latest()))
        };
        let stats = crate::registry::export::export_registry_storage(
            &images,
            &destination,
            &cache,
            &args.directory,
        )?;
        for image in &images {
            let target = destination(image)?;
            println!(
                "exported {} -> {}:{}",
                image.source,
                target.name.repository,
                target.tag_or_latest()
            );
        }
        Ok(stats)
    })
    .await??;
    println!(
        "{} image(s), {} blob(s) written, {} already present, {:.1}s",
        stats.images,
        stats.blobs_written,
        stats.blobs_present,
        started.elapsed().as_secs_f64()
    );
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Args)]
pub struct LoginArgs {
    /// Registry host, e.g. `registry.example.com` or `127.0.0.1:5000`.
    pub registry: String,
    /// User name (asked for when missing and a terminal is available).
    #[arg(long, short)]
    pub username: Option<String>,
    /// Read the password from standard input (never from the command line).
    #[arg(long)]
    pub password_stdin: bool,
    #[command(flatten)]
    pub connection: ConnectionArgs,
}

/// `bunker login REGISTRY`.
pub async fn login(args: LoginArgs) -> anyhow::Result<ExitCode> {
    use std::io::{BufRead, Write};
    let registry = match args.registry.as_str() {
        "index.docker.io" | "registry-1.docker.io" | "https://index.docker.io/v1/" => {
            "docker.io".to_string()
        }
        other => other
            .trim_start_matches("https://")
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string(),
    };
    if registry.is_empty() || registry.contains('/') {
        anyhow::bail!(
            "expected a registry host such as registry.example.com:5000, got {:?}",
            args.registry
        );
    }
    let username = match args.username {
        Some(name) => name,
        None => {
            if args.password_stdin || !std::io::IsTerminal::is_terminal(&std::io::stdin()) {
                anyhow::bail!("--username is required with --password-stdin");
            }
            eprint!("Username: ");
            std::io::stderr().flush()?;
            let mut line = String::new();
            std::io::stdin().lock().read_line(&mut line)?;
            line.trim().to_string()
        }
    };
    if username.is_empty() {
        anyhow::bail!("empty user name");
    }
    let password = crate::registry::login::read_password(args.password_stdin)?;
    let config_path = crate::registry::auth::docker_config_path()
        .context("cannot find the Docker config directory: set HOME or DOCKER_CONFIG")?;
    let stored = crate::registry::login::login(
        &registry,
        &username,
        &password,
        &args.connection.client_options(),
        &config_path,
    )
    .await?;
    println!("Login Succeeded ({registry}, saved in {stored})");
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Args)]
pub struct SyncArgs {
    /// The sync configuration (YAML): repositories, tag filters, destinations.
    #[arg(long)]
    pub config: PathBuf,
    /// Archive base directory (overrides the config's `archive_dir`).
    #[arg(long, alias = "output-dir")]
    pub archive_dir: Option<PathBuf>,
    /// Show what would be copied; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Go on with the other repositories and tags after a failure.
    #[arg(long)]
    pub keep_going: bool,
    /// Registry → registry: also `HEAD` every destination tag (two manifest
    /// requests per tag instead of one), to repair tags others re-pointed.
    #[arg(long)]
    pub verify_destination: bool,
    /// Parallel blob transfers (overrides the config's `jobs`).
    #[arg(long, short)]
    pub jobs: Option<usize>,
    /// Platform for entries that name none (default: DOCKER_DEFAULT_PLATFORM,
    /// else the configured engine's, else this workstation's).
    #[arg(long)]
    pub platform: Option<String>,
    #[command(flatten)]
    pub engine: super::engine_args::EngineArgs,
    /// Print a JSON report.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub connection: ConnectionArgs,
}

/// `bunker sync --config sync.yaml`.
pub async fn sync(global: &GlobalArgs, args: SyncArgs) -> anyhow::Result<ExitCode> {
    use crate::registry::sync::{SyncConfig, SyncOptions, needs_default_platform, run_sync};
    let config = SyncConfig::load(&args.config)?;
    let platform = if config.repositories.iter().any(needs_default_platform) {
        Some(announce_platform(global, args.platform.as_deref(), &args.engine).await?)
    } else {
        None
    };
    let explicit = args
        .archive_dir
        .clone()
        .or_else(|| config.archive_dir.clone());
    let options = SyncOptions {
        archive_dir: archive_dir_for(global, explicit.as_deref()),
        jobs: args.jobs.or(config.jobs).unwrap_or(8).max(1),
        dry_run: args.dry_run,
        keep_going: args.keep_going,
        client: args.connection.client_options(),
        default_platform: platform.as_ref().map(|choice| choice.platform.clone()),
        verify_destination: args.verify_destination,
        stop: Default::default(),
    };
    let interrupt = Interrupt::listen(|signal| {
        eprintln!(
            "{}",
            signal.stop_line(
                "finished images and the sync state are kept; partial blob downloads \
                 stay for the next run to resume"
            )
        );
    })?;
    let options = SyncOptions {
        stop: interrupt.token(),
        ..options
    };
    let started = std::time::Instant::now();
    let records = run_sync(&config, &options).await?;
    let failed = records.iter().filter(|r| r.action == "failed").count();
    let stopped = records.iter().filter(|r| r.action == "stopped").count();
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "records": records,
                "failed": failed,
                "stopped": stopped,
                "dry_run": args.dry_run,
                "platform": platform,
            }))?
        );
    } else {
        for record in &records {
            match &record.error {
                Some(error) => eprintln!(
                    "FAILED {} -> {}: {error}",
                    record.source, record.destination
                ),
                None => println!(
                    "{} {} -> {}",
                    record.action, record.source, record.destination
                ),
            }
        }
        let count = |action: &str| records.iter().filter(|r| r.action == action).count();
        println!(
            "{} copied, {} up to date, {} to copy, {failed} failed, {}{:.2}s",
            count("copied"),
            count("up-to-date"),
            count("would-copy"),
            if stopped > 0 {
                format!("{stopped} stopped, ")
            } else {
                String::new()
            },
            started.elapsed().as_secs_f64()
        );
    }
    if let Some(code) = interrupt.exit_code() {
        return Ok(code);
    }
    Ok(if failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

//! How an image's export crosses the SSH link: the engine API's raw `docker save`
//! stream, or the server's own `docker save IMG | zstd -T0 -1` (or `pigz -1`/`gzip -1`)
//! over an SSH exec channel, decompressed here as it arrives.
//!
//! On a slow link the raw tar is three times the bytes a compressor sends, so the
//! compressed route wins; on a fast one the server's compressor can be the slower
//! part. [`plan`] runs once per run: one exec learns what the server has (a probe
//! line that a forced command would not print, the compressors, whether the docker
//! CLI reaches the engine), and with `auto` a second exec times a short transfer to
//! measure the link. [`export_stream`] then gives the decompressed tar, byte for byte
//! what the API would have sent, so the archive, its hashes and its image ID are the
//! same whichever route carried it.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_compression::tokio::bufread::{GzipDecoder, ZstdDecoder};
use bytes::Bytes;
use futures_util::Stream;
use serde::Serialize;
use tokio::io::AsyncRead;
use tokio_util::io::{ReaderStream, StreamReader};

use crate::engine::Engine;
use crate::engine::ssh::SshSession;
use crate::engine::transport::{DIAL_STDIO_ARGUMENTS, Route};
use crate::progress::Progress;

/// What `--wire-compression` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WireCompression {
    /// Measure the link and pick the faster route.
    #[default]
    Auto,
    /// The engine API's raw stream.
    None,
    /// `pigz -1`, else `gzip -1`, on the server.
    Gzip,
    /// `zstd -T0 -1` on the server.
    Zstd,
}

impl WireCompression {
    pub fn name(self) -> &'static str {
        match self {
            WireCompression::Auto => "auto",
            WireCompression::None => "none",
            WireCompression::Gzip => "gzip",
            WireCompression::Zstd => "zstd",
        }
    }
}

/// The compressor run on the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compressor {
    Zstd,
    Pigz,
    Gzip,
}

impl Compressor {
    fn command(self) -> &'static str {
        match self {
            Compressor::Zstd => "zstd -q -T0 -1 -c",
            Compressor::Pigz => "pigz -1 -c",
            Compressor::Gzip => "gzip -1 -c",
        }
    }

    /// The name shown in the report (`zstd -T0 -1`, `pigz -1`, `gzip -1`).
    pub fn shown(self) -> &'static str {
        match self {
            Compressor::Zstd => "zstd -T0 -1",
            Compressor::Pigz => "pigz -1",
            Compressor::Gzip => "gzip -1",
        }
    }

    fn mode(self) -> &'static str {
        match self {
            Compressor::Zstd => "zstd",
            Compressor::Pigz | Compressor::Gzip => "gzip",
        }
    }
}

/// What the run does, and why; printed once and reported in `--json`.
#[derive(Debug, Clone, Serialize)]
pub struct WireSummary {
    /// `none` (the API's raw stream), `gzip` or `zstd`.
    pub mode: String,
    /// The server's compressor, when one runs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compressor: Option<String>,
    /// What `--wire-compression` asked for.
    pub requested: String,
    pub reason: String,
    /// The link measured by the probe (Mbit/s).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link_mbit_per_s: Option<f64>,
}

/// One export's use of the link.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WireUse {
    pub mode: String,
    /// Bytes that crossed the link (compressed when the server compressed).
    pub bytes_received: u64,
    /// `bytes_received` over the export's time (Mbit/s).
    pub mbit_per_s: f64,
}

// Rates are finite (elapsed time is clamped above zero), so equality is total.
impl Eq for WireUse {}

/// The route chosen for the run.
pub struct WirePlan {
    pub summary: WireSummary,
    exec: Option<Exec>,
}

struct Exec {
    session: Arc<SshSession>,
    /// `DOCKER_HOST=unix:///path docker`, or the dial-stdio route's docker command.
    docker: String,
    compressor: Compressor,
}

impl WirePlan {
    /// The API stream, for `reason`.
    pub fn api(requested: WireCompression, reason: impl Into<String>) -> WirePlan {
        WirePlan {
            summary: WireSummary {
                mode: "none".into(),
                compressor: None,
                requested: requested.name().into(),
                reason: reason.into(),
                link_mbit_per_s: None,
            },
            exec: None,
        }
    }

    /// True when exports go through the server's compressor.
    pub fn compresses(&self) -> bool {
        self.exec.is_some()
    }

    /// One line for the progress output.
    pub fn describe(&self) -> String {
        let link = self
            .summary
            .link_mbit_per_s
            .map(|mbit| format!(", link {mbit:.0} Mbit/s"))
            .unwrap_or_default();
        match &self.summary.compressor {
            Some(compressor) => format!(
                "wire: {} (`docker save | {compressor}` on the server{link}): {}",
                self.summary.mode, self.summary.reason
            ),
            None => format!(
                "wire: none (the engine API's raw stream{link}): {}",
                self.summary.reason
            ),
        }
    }
}

/// What the server offers, from one probe exec.
#[derive(Debug, Default, PartialEq, Eq)]
struct ServerTools {
    zstd: bool,
    pigz: bool,
    gzip: bool,
    cores: u32,
    /// The docker CLI reached the engine (`docker version` answered).
    docker: bool,
    /// What `docker version` said when it did not answer.
    docker_problem: String,
}

const PROBE_MARK: &str = "bunker-wire-probe-1";
/// Bytes timed by the link probe, and the most time it may take (slow links stop early).
const LINK_PROBE_BYTES: u64 = 4 << 20;
const LINK_PROBE_TIME: Duration = Duration::from_secs(2);
/// How long the probe command may take to send its first byte.
const FIRST_PROBE_BYTE_TIME: Duration = Duration::from_secs(60);
/// Written on stderr by the export command when `docker save` fails.
const SAVE_FAILED: &str = "bunker-wire: docker save failed with exit status";

/// Conservative rates (bytes/s) for the choice: the server's compressor per core,
/// the workstation's decoder, and the share of the raw tar each sends.
const ZSTD_RATE: f64 = 200e6;
const GZIP_RATE_PER_CORE: f64 = 40e6;
const ZSTD_DECODE_RATE: f64 = 600e6;
const GZIP_DECODE_RATE: f64 = 200e6;
/// Measured on the bench image (shared libraries): zstd -1 sends 0.42 of the tar, gzip -1 0.47.
const ZSTD_RATIO: f64 = 0.42;
const GZIP_RATIO: f64 = 0.47;

/// The run's route, decided at the first export (a run that exports nothing
/// probes nothing, so an unchanged re-run moves no bytes) and shared by the others.
pub struct LazyPlan<'run> {
    engine: &'run Engine,
    requested: WireCompression,
    progress: &'run Progress,
    cell: tokio::sync::OnceCell<WirePlan>,
}

impl<'run> LazyPlan<'run> {
    pub fn new(
        engine: &'run Engine,
        requested: WireCompression,
        progress: &'run Progress,
    ) -> LazyPlan<'run> {
        LazyPlan {
            engine,
            requested,
            progress,
            cell: tokio::sync::OnceCell::new(),
        }
    }

    /// The plan, probing the server on the first call (the others wait for it).
    pub async fn get(&self) -> &WirePlan {
        self.cell
            .get_or_init(|| async {
                let plan = plan(self.engine, self.requested).await;
                self.progress.println(plan.describe());
                plan
            })
            .await
    }

    /// What was decided, when an export needed a decision.
    pub fn summary(&self) -> Option<WireSummary> {
        self.cell.get().map(|plan| plan.summary.clone())
    }
}

/// Decides the route once per run.
pub async fn plan(engine: &Engine, requested: WireCompression) -> WirePlan {
    if requested == WireCompression::None {
        return WirePlan::api(requested, "--wire-compression none");
    }
    let Some((session, route)) = engine.ssh_route() else {
        return WirePlan::api(requested, "the engine is local (no link to save)");
    };
    let docker = docker_command(&route);
    let tools = match probe_tools(&session, &docker).await {
        Ok(tools) => tools,
        Err(reason) => return WirePlan::api(requested, format!("{reason}; using the engine API")),
    };
    if !tools.docker {
        return WirePlan::api(
            requested,
            format!(
                "the docker CLI on the server cannot reach the engine (`{docker} version`: {}); \
                 using the engine API",
                tools.docker_problem
            ),
        );
    }
    let gzip = if tools.pigz {
        Some(Compressor::Pigz)
    } else if tools.gzip {
        Some(Compressor::Gzip)
    } else {
        None
    };
    let zstd = tools.zstd.then_some(Compressor::Zstd);
    let exec = |compressor: Compressor, reason: String, link: Option<f64>| WirePlan {
        summary: WireSummary {
            mode: compressor.mode().into(),
            compressor: Some(compressor.shown().into()),
            requested: requested.name().into(),
            reason,
            link_mbit_per_s: link.map(mbit),
        },
        exec: Some(Exec {
            session: session.clone(),
            docker: docker.clone(),
            compressor,
        }),
    };
    match requested {
        WireCompression::Zstd => match (zstd, gzip) {
            (Some(compressor), _) => exec(compressor, "--wire-compression zstd".into(), None),
            (None, Some(compressor)) => exec(
                compressor,
                format!(
                    "the server has no zstd; falling back to {}",
                    compressor.shown()
                ),
                None,
            ),
            (None, None) => WirePlan::api(
                requested,
                "the server has no zstd, pigz or gzip; falling back to the engine API",
            ),
        },
        WireCompression::Gzip => match gzip {
            Some(compressor) => exec(compressor, "--wire-compression gzip".into(), None),
            None => WirePlan::api(
                requested,
                "the server has no pigz or gzip; falling back to the engine API",
            ),
        },
        WireCompression::Auto | WireCompression::None => {
            let candidates: Vec<Compressor> = zstd.into_iter().chain(gzip).collect();
            if candidates.is_empty() {
                return WirePlan::api(
                    requested,
                    "the server has no zstd, pigz or gzip; using the engine API",
                );
            }
            let link = match measure_link(&session).await {
                Ok(rate) => rate,
                Err(reason) => {
                    return WirePlan::api(
                        requested,
                        format!("the link probe failed ({reason}); using the engine API"),
                    );
                }
            };
            let raw = 1.0 / link;
            let (best, best_time) = candidates
                .iter()
                .map(|compressor| (*compressor, per_byte(*compressor, tools.cores, link)))
                .fold((None, f64::INFINITY), |(best, time), (compressor, t)| {
                    if t < time {
                        (Some(compressor), t)
                    } else {
                        (best, time)
                    }
                });
            match best {
                Some(compressor) if best_time < raw => exec(
                    compressor,
                    format!(
                        "the link is the bottleneck: about {:.1}x faster than raw",
                        raw / best_time
                    ),
                    Some(link),
                ),
                _ => {
                    let mut plan = WirePlan::api(
                        requested,
                        "the link outruns the server's compressor; raw is faster",
                    );
                    plan.summary.link_mbit_per_s = Some(mbit(link));
                    plan
                }
            }
        }
    }
}

/// Estimated seconds per raw byte with `compressor` on a `link` of bytes/s.
fn per_byte(compressor: Compressor, cores: u32, link: f64) -> f64 {
    let (rate, decode, ratio) = match compressor {
        Compressor::Zstd => (ZSTD_RATE, ZSTD_DECODE_RATE, ZSTD_RATIO),
        Compressor::Pigz => (
            GZIP_RATE_PER_CORE * f64::from(cores.max(1)),
            GZIP_DECODE_RATE,
            GZIP_RATIO,
        ),
        Compressor::Gzip => (GZIP_RATE_PER_CORE, GZIP_DECODE_RATE, GZIP_RATIO),
    };
    (1.0 / rate).max(ratio / link).max(1.0 / decode)
}

fn mbit(bytes_per_second: f64) -> f64 {
    (bytes_per_second * 8.0 / 1e6 * 10.0).round() / 10.0
}

/// The docker command on the server that reaches the same engine as the API route.
fn docker_command(route: &Route) -> String {
    match route {
        Route::Socket(path) => format!("DOCKER_HOST={} docker", quote(&format!("unix://{path}"))),
        Route::DialStdio(command) => command
            .strip_suffix(DIAL_STDIO_ARGUMENTS)
            .unwrap_or("docker")
            .trim()
            .to_string(),
    }
}

/// `text` as one POSIX shell word.
pub fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// `script` run by `sh`, whatever the login shell.
fn sh(script: &str) -> String {
    format!("exec sh -c {}", quote(script))
}

async fn probe_tools(session: &SshSession, docker: &str) -> Result<ServerTools, String> {
    let script = format!(
        "echo {PROBE_MARK}; for c in zstd pigz gzip; do command -v $c >/dev/null 2>&1 && \
         echo has-$c; done; echo cores-$(nproc 2>/dev/null || echo 1); \
         {docker} version --format 'docker-ok {{{{.Server.APIVersion}}}}' 2>&1 | head -n 3"
    );
    let output = session
        .run(&sh(&script))
        .await
        .map_err(|error| format!("cannot run a command on the server ({error})"))?;
    parse_tools(&output.stdout)
}

fn parse_tools(stdout: &str) -> Result<ServerTools, String> {
    let mut lines = stdout.lines();
    if lines.next().map(str::trim) != Some(PROBE_MARK) {
        let shown: String = stdout.trim().chars().take(80).collect();
        return Err(format!(
            "the server did not run the probe command (the SSH key has a forced command? it \
             answered {shown:?})"
        ));
    }
    let mut tools = ServerTools {
        cores: 1,
        ..ServerTools::default()
    };
    let mut other = Vec::new();
    for line in lines {
        let line = line.trim();
        match line {
            "has-zstd" => tools.zstd = true,
            "has-pigz" => tools.pigz = true,
            "has-gzip" => tools.gzip = true,
            _ if line.starts_with("docker-ok ") => tools.docker = true,
            _ => match line.strip_prefix("cores-") {
                Some(cores) => tools.cores = cores.parse().unwrap_or(1),
                None if !line.is_empty() => other.push(line.to_string()),
                None => {}
            },
        }
    }
    if !tools.docker {
        tools.docker_problem = if other.is_empty() {
            "no answer".into()
        } else {
            other.join(" ")
        };
    }
    Ok(tools)
}

/// Bytes/s of a short transfer from the server (from its first byte to its last).
async fn measure_link(session: &SshSession) -> Result<f64, String> {
    let command = sh(&format!("head -c {LINK_PROBE_BYTES} /dev/zero"));
    let (mut channel, _slot) = session
        .open_command_channel(&command)
        .await
        .map_err(|error| error.to_string())?;
    let _ = channel.eof().await;
    let mut first: Option<Instant> = None;
    let mut after_first = 0u64;
    let mut total = 0u64;
    let mut cut = false;
    loop {
        // The window opens with the first byte: starting the command is not the link.
        let deadline = match first {
            Some(first) => tokio::time::Instant::from_std(first + LINK_PROBE_TIME),
            None => tokio::time::Instant::now() + FIRST_PROBE_BYTE_TIME,
        };
        let message = match tokio::time::timeout_at(deadline, channel.wait()).await {
            Ok(Some(message)) => message,
            Ok(None) => break,
            Err(_) => {
                // A slow link: what arrived so far measures it well enough.
                cut = true;
                let _ = channel.close().await;
                break;
            }
        };
        if let russh::ChannelMsg::Data { data } = message {
            total += data.len() as u64;
            match first {
                None => first = Some(Instant::now()),
                Some(_) => after_first += data.len() as u64,
            }
        }
    }
    let elapsed = first.map_or(Duration::ZERO, |first| first.elapsed());
    if (!cut && total < LINK_PROBE_BYTES) || after_first < 64 * 1024 {
        return Err(format!("{total} of {LINK_PROBE_BYTES} bytes arrived"));
    }
    Ok(after_first as f64 / elapsed.as_secs_f64().max(1e-6))
}

/// The decompressed `docker save` tar of `reference` through the server's
/// compressor, and the count of bytes received on the link; `None` when the plan
/// uses the API.
pub fn export_stream(
    plan: &WirePlan,
    reference: &str,
) -> Option<(
    impl Stream<Item = io::Result<Bytes>> + Send + 'static,
    Arc<AtomicU64>,
)> {
    let exec = plan.exec.as_ref()?;
    let script = format!(
        "{{ {} save {} || echo \"{SAVE_FAILED} $?\" >&2; }} | {}",
        exec.docker,
        quote(reference),
        exec.compressor.command()
    );
    let command = sh(&script);
    let received = Arc::new(AtomicU64::new(0));
    let (sender, mut receiver) = tokio::sync::mpsc::channel::<io::Result<Bytes>>(32);
    tokio::spawn(pump(
        exec.session.clone(),
        command,
        exec.compressor,
        sender,
        received.clone(),
    ));
    let compressed = StreamReader::new(futures_util::stream::poll_fn(move |cx| {
        receiver.poll_recv(cx)
    }));
    let decoded: Box<dyn AsyncRead + Send + Unpin> = match exec.compressor {
        Compressor::Zstd => {
            let mut decoder = ZstdDecoder::new(compressed);
            decoder.multiple_members(true);
            Box::new(decoder)
        }
        Compressor::Pigz | Compressor::Gzip => {
            let mut decoder = GzipDecoder::new(compressed);
            decoder.multiple_members(true);
            Box::new(decoder)
        }
    };
    Some((ReaderStream::with_capacity(decoded, 256 * 1024), received))
}

/// Relays the export command's output; ends with an error when the command failed.
async fn pump(
    session: Arc<SshSession>,
    command: String,
    compressor: Compressor,
    sender: tokio::sync::mpsc::Sender<io::Result<Bytes>>,
    received: Arc<AtomicU64>,
) {
    let (mut channel, _slot) = match session.open_command_channel(&command).await {
        Ok(opened) => opened,
        Err(error) => {
            let _ = sender
                .send(Err(io::Error::other(format!(
                    "cannot start the compressed export on the server: {error}"
                ))))
                .await;
            return;
        }
    };
    let _ = channel.eof().await;
    let mut stderr: Vec<u8> = Vec::new();
    let mut status = None;
    while let Some(message) = channel.wait().await {
        match message {
            russh::ChannelMsg::Data { data } => {
                received.fetch_add(data.len() as u64, Ordering::Relaxed);
                if sender
                    .send(Ok(Bytes::copy_from_slice(&data)))
                    .await
                    .is_err()
                {
                    // The reader is gone (interrupt or failure): stop the export.
                    let _ = channel.close().await;
                    return;
                }
            }
            russh::ChannelMsg::ExtendedData { data, ext: 1 } if stderr.len() < 16 * 1024 => {
                stderr.extend_from_slice(&data);
            }
            russh::ChannelMsg::ExitStatus { exit_status } => status = Some(exit_status),
            _ => {}
        }
    }
    let stderr = String::from_utf8_lossy(&stderr).trim().to_string();
    if status != Some(0) || stderr.contains(SAVE_FAILED) {
        let status = status.map_or("no exit status".to_string(), |code| {
            format!("exit status {code}")
        });
        let _ = sender
            .send(Err(io::Error::other(format!(
                "`docker save | {}` on the server failed ({status}): {stderr}",
                compressor.shown()
            ))))
            .await;
    }
}

/// The report of one export in `mode` that received `received` bytes in `elapsed`.
pub fn wire_use(mode: &str, received: u64, elapsed: Duration) -> WireUse {
    WireUse {
        mode: mode.to_string(),
        bytes_received: received,
        mbit_per_s: mbit(received as f64 / elapsed.as_secs_f64().max(1e-6)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_probe_reads_tools_and_spots_a_forced_command() {
        let tools = parse_tools(&format!(
            "{PROBE_MARK}\nhas-zstd\nhas-gzip\ncores-4\ndocker-ok 1.41\n"
        ))
        .unwrap();
        assert_eq!(
            tools,
            ServerTools {
                zstd: true,
                pigz: false,
                gzip: true,
                cores: 4,
                docker: true,
                docker_problem: String::new(),
            }
        );
        let tools = parse_tools(&format!(
            "{PROBE_MARK}\ncores-1\nCannot connect to the Docker daemon\n"
        ))
        .unwrap();
        assert!(!tools.docker);
        assert_eq!(tools.docker_problem, "Cannot connect to the Docker daemon");
        let error = parse_tools("only this\n").unwrap_err();
        assert!(error.contains("forced command"), "{error}");
    }

    #[test]
    fn slow_links_compress_and_fast_ones_stay_raw() {
        let slow = 100e6 / 8.0;
        let fast = 20e9 / 8.0;
        assert!(per_byte(Compressor::Zstd, 2, slow) < 1.0 / slow);
        assert!(per_byte(Compressor::Gzip, 1, slow) < 1.0 / slow);
        assert!(per_byte(Compressor::Zstd, 2, fast) > 1.0 / fast);
        assert!(per_byte(Compressor::Pigz, 8, fast) > 1.0 / fast);
    }

    #[test]
    fn shell_words_are_quoted() {
        assert_eq!(quote("a'b"), r"'a'\''b'");
        assert_eq!(
            docker_command(&Route::Socket("/run/d.sock".into())),
            "DOCKER_HOST='unix:///run/d.sock' docker"
        );
        assert_eq!(
            docker_command(&Route::DialStdio("/opt/docker system dial-stdio".into())),
            "/opt/docker"
        );
    }
}

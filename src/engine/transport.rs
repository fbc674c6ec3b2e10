//! bollard's HTTP requests carried over an SSH channel or a local unix socket.
//!
//! bollard has no russh support, and is built here without its default features (so
//! without `connect_with_unix` either). Both transports therefore go through
//! `Docker::connect_with_custom_transport` with a hyper-util legacy `Client`, whose
//! connector opens one stream per HTTP connection: a `direct-streamlocal` channel to the
//! engine socket, a channel running `docker system dial-stdio`, or a tokio `UnixStream`.
//! The `Client` rewrites bollard's absolute URIs to origin form, sets `Host`, and pools
//! keep-alive connections, so one SSH session serves every request of a run.

use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bollard::{API_DEFAULT_VERSION, BollardRequest, Docker};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use russh::ChannelStream;
use russh::client::Msg;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::OwnedSemaphorePermit;

use super::ssh::SshSession;

/// The docker CLI subcommand that relays stdin/stdout to the engine (what the docker
/// CLI itself runs for `ssh://` hosts).
pub const DIAL_STDIO_ARGUMENTS: &str = "system dial-stdio";

/// bollard's timeout covers a request until its response headers arrive; `/build` and
/// `/images/load` answer only after the whole upload, so it must allow for big bodies.
pub const LARGE_BODY_TIMEOUT: Duration = Duration::from_secs(6 * 3600);

/// How a new connection reaches the engine on the SSH server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `direct-streamlocal@openssh.com` to the engine's unix socket.
    Socket(String),
    /// A channel running this command (`docker system dial-stdio`).
    DialStdio(String),
}

/// Opens byte streams to the engine.
#[derive(Clone)]
pub enum Dialer {
    Ssh {
        session: Arc<SshSession>,
        route: Route,
    },
    Local(PathBuf),
}

impl Dialer {
    /// Opens one new stream to the engine.
    pub async fn open(&self) -> io::Result<EngineStream> {
        match self {
            Dialer::Local(path) => tokio::net::UnixStream::connect(path)
                .await
                .map(EngineStream::Unix)
                .map_err(|error| {
                    io::Error::new(
                        error.kind(),
                        format!("cannot connect to {}: {error}", path.display()),
                    )
                }),
            Dialer::Ssh { session, route } => {
                let (channel, slot) = match route {
                    Route::Socket(path) => {
                        let channel = session.open_socket_channel(path).await.map_err(|error| {
                            io::Error::new(
                                io::ErrorKind::ConnectionRefused,
                                format!(
                                    "{}: {}",
                                    session_name(session),
                                    socket_channel_failure(path, &error)
                                ),
                            )
                        })?;
                        (channel, None)
                    }
                    Route::DialStdio(command) => {
                        let (channel, slot) =
                            session
                                .open_command_channel(command)
                                .await
                                .map_err(|error| {
                                    io::Error::other(format!(
                                        "cannot start `{command}` on {}: {error}",
                                        session_name(session)
                                    ))
                                })?;
                        (channel, Some(slot))
                    }
                };
                Ok(EngineStream::Channel(Box::new(channel.into_stream()), slot))
            }
        }
    }

    /// How requests travel, for `engine info` and messages.
    pub fn describe(&self) -> String {
        match self {
            Dialer::Local(path) => format!("unix socket {}", path.display()),
            Dialer::Ssh { session, route } => match route {
                Route::Socket(path) => {
                    format!("ssh {} → socket {path}", session.destination.route())
                }
                Route::DialStdio(command) => {
                    format!("ssh {} → `{command}`", session.destination.route())
                }
            },
        }
    }
}

fn session_name(session: &SshSession) -> String {
    session.destination.display()
}

/// Explains why a `direct-streamlocal` channel to `socket` was refused.
pub fn socket_channel_failure(socket: &str, error: &russh::Error) -> String {
    use russh::ChannelOpenFailure as Failure;
    match error {
        russh::Error::ChannelOpenFailure(Failure::ConnectFailed) => format!(
            "the SSH server could not connect to {socket} (no such socket, or the SSH user \
             may not open it)"
        ),
        russh::Error::ChannelOpenFailure(Failure::AdministrativelyProhibited) => format!(
            "the SSH server forbids forwarding to unix sockets (sshd_config \
             AllowStreamLocalForwarding/DisableForwarding), so {socket} cannot be reached directly"
        ),
        russh::Error::ChannelOpenFailure(Failure::Other { reason, .. }) => {
            format!("the SSH server refused a channel to {socket}: {reason}")
        }
        other => format!("cannot open a channel to {socket}: {other}"),
    }
}

/// One connection to the engine. A command channel keeps its session slot while open.
pub enum EngineStream {
    Channel(Box<ChannelStream<Msg>>, Option<OwnedSemaphorePermit>),
    Unix(tokio::net::UnixStream),
}

impl AsyncRead for EngineStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            EngineStream::Channel(stream, _) => Pin::new(stream.as_mut()).poll_read(cx, buf),
            EngineStream::Unix(stream) => Pin::new(stream).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for EngineStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            EngineStream::Channel(stream, _) => Pin::new(stream.as_mut()).poll_write(cx, buf),
            EngineStream::Unix(stream) => Pin::new(stream).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            EngineStream::Channel(stream, _) => Pin::new(stream.as_mut()).poll_flush(cx),
            EngineStream::Unix(stream) => Pin::new(stream).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            EngineStream::Channel(stream, _) => Pin::new(stream.as_mut()).poll_shutdown(cx),
            EngineStream::Unix(stream) => Pin::new(stream).poll_shutdown(cx),
        }
    }
}

impl Connection for EngineStream {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

/// hyper-util connector: every new HTTP connection is a new engine stream.
#[derive(Clone)]
struct Connector(Dialer);

impl tower_service::Service<http::Uri> for Connector {
    type Response = TokioIo<EngineStream>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<Self::Response>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _uri: http::Uri) -> Self::Future {
        let dialer = self.0.clone();
        Box::pin(async move { dialer.open().await.map(TokioIo::new) })
    }
}

/// A bollard client whose requests all go through `dialer`. Call
/// `negotiate_version()` on it before use (bollard 0.21 sends unversioned paths otherwise).
pub fn docker_client(dialer: Dialer) -> Result<Docker, bollard::errors::Error> {
    // Few, short-lived idle connections: an idle dial-stdio connection holds a session slot.
    let client = Arc::new(
        Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(4)
            .pool_timer(TokioTimer::new())
            .build(Connector(dialer)),
    );
    let transport = move |request: BollardRequest| {
        let client = client.clone();
        async move {
            client.request(request).await.map_err(|error| {
                // Keep the connector's own message (it names the socket or command).
                let message = std::error::Error::source(&error)
                    .map(|source| format!("{error}: {source}"))
                    .unwrap_or_else(|| error.to_string());
                bollard::errors::Error::IOError {
                    err: io::Error::other(message),
                }
            })
        }
    };
    Ok(Docker::connect_with_custom_transport(
        transport,
        Some("http://docker"),
        120,
        API_DEFAULT_VERSION,
    )?
    .with_timeout(LARGE_BODY_TIMEOUT))
}

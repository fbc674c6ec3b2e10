//! Ctrl-C and SIGTERM for long-running commands: the first signal asks the
//! command to stop cleanly, the second ends the process at once.
//!
//! A command calls [`Interrupt::listen`] when its long part begins (before
//! that, dying at once is right: nothing is written yet), hands
//! [`Interrupt::token`] to the work and, when the work has returned, exits with
//! [`Interrupt::exit_code`] if a signal came. Work watches the token: it starts
//! nothing new once it is cancelled, and the byte streams it wraps with
//! [`abort_on_cancel`] end in an error, which aborts an export or a load the
//! way a broken connection would. Archive files are only renamed into place
//! when complete and manifests are replaced atomically, so even the second
//! signal's immediate exit leaves nothing half-written in place.

use std::io;
use std::process::ExitCode;
use std::sync::{Arc, Mutex, PoisonError};

use futures_util::{Stream, StreamExt};
use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

/// The signal that stopped a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// SIGINT (Ctrl-C).
    Interrupt,
    /// SIGTERM.
    Terminate,
}

impl Signal {
    /// How the user knows it: `Ctrl-C` or `SIGTERM`.
    pub fn name(self) -> &'static str {
        match self {
            Signal::Interrupt => "Ctrl-C",
            Signal::Terminate => "SIGTERM",
        }
    }

    /// The shell convention: 128 + the signal number (130, 143).
    pub fn exit_status(self) -> u8 {
        match self {
            Signal::Interrupt => 128 + 2,
            Signal::Terminate => 128 + 15,
        }
    }

    /// The one line printed on the first signal; `kept` says what stays.
    pub fn stop_line(self, kept: &str) -> String {
        format!(
            "{}: bunker is stopping (no new work starts, running work is aborted); {kept}. \
             Press Ctrl-C again to quit at once",
            self.name()
        )
    }
}

/// Listens for SIGINT and SIGTERM while a command runs.
pub struct Interrupt {
    token: CancellationToken,
    received: Arc<Mutex<Option<Signal>>>,
}

impl Interrupt {
    /// Starts listening. On the first signal `on_first` runs (to print the
    /// stop line) and the token is cancelled; on the second the process exits
    /// with the signal's status.
    pub fn listen(on_first: impl Fn(Signal) + Send + 'static) -> anyhow::Result<Interrupt> {
        let mut interrupts = signal(SignalKind::interrupt())
            .map_err(|error| anyhow::anyhow!("cannot listen for Ctrl-C: {error}"))?;
        let mut terminations = signal(SignalKind::terminate())
            .map_err(|error| anyhow::anyhow!("cannot listen for SIGTERM: {error}"))?;
        let interrupt = Interrupt {
            token: CancellationToken::new(),
            received: Arc::default(),
        };
        let token = interrupt.token.clone();
        let received = interrupt.received.clone();
        tokio::spawn(async move {
            loop {
                let signal = tokio::select! {
                    Some(()) = interrupts.recv() => Signal::Interrupt,
                    Some(()) = terminations.recv() => Signal::Terminate,
                    else => return,
                };
                let first = received
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .replace(signal);
                match first {
                    None => {
                        on_first(signal);
                        token.cancel();
                    }
                    Some(first) => {
                        eprintln!(
                            "{} again: bunker quits now; finished work is kept, unfinished \
                             files are removed by the next run",
                            signal.name()
                        );
                        std::process::exit(i32::from(first.exit_status()));
                    }
                }
            }
        });
        Ok(interrupt)
    }

    /// Cancelled by the first signal.
    pub fn token(&self) -> CancellationToken {
        self.token.clone()
    }

    /// The first signal received, if any.
    pub fn received(&self) -> Option<Signal> {
        *self.received.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The exit code the command must end with when a signal stopped it.
    pub fn exit_code(&self) -> Option<ExitCode> {
        self.received()
            .map(|signal| ExitCode::from(signal.exit_status()))
    }
}

/// The error a stream wrapped by [`abort_on_cancel`] ends with.
pub fn interrupted_error() -> io::Error {
    io::Error::new(io::ErrorKind::Interrupted, "bunker was interrupted")
}

/// `stream` until `token` is cancelled; then one [`interrupted_error`] and the end.
/// The consumer sees a failed stream, never a complete-looking short one.
pub fn abort_on_cancel<S, T, E>(
    stream: S,
    token: CancellationToken,
) -> impl Stream<Item = io::Result<T>>
where
    S: Stream<Item = Result<T, E>>,
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let after = token.clone();
    stream
        .map(|item| item.map_err(io::Error::other))
        .take_until(token.cancelled_owned())
        .chain(
            futures_util::stream::once(async move { after.is_cancelled() })
                .filter_map(|cancelled| async move { cancelled.then(|| Err(interrupted_error())) }),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_cancelled_stream_ends_with_the_interrupted_error() {
        let token = CancellationToken::new();
        let chunks = futures_util::stream::iter([Ok::<_, io::Error>(1), Ok(2)])
            .chain(futures_util::stream::pending());
        let mut wrapped = std::pin::pin!(abort_on_cancel(chunks, token.clone()));
        assert_eq!(wrapped.next().await.unwrap().unwrap(), 1);
        assert_eq!(wrapped.next().await.unwrap().unwrap(), 2);
        token.cancel();
        let error = wrapped.next().await.unwrap().unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::Interrupted);
        assert!(wrapped.next().await.is_none());
    }

    #[tokio::test]
    async fn an_uncancelled_stream_passes_through_unchanged() {
        let chunks = futures_util::stream::iter([Ok::<_, io::Error>(1), Ok(2)]);
        let items: Vec<i32> = abort_on_cancel(chunks, CancellationToken::new())
            .map(Result::unwrap)
            .collect()
            .await;
        assert_eq!(items, [1, 2]);
    }

    #[test]
    fn exit_statuses_follow_the_shell_convention() {
        assert_eq!(Signal::Interrupt.exit_status(), 130);
        assert_eq!(Signal::Terminate.exit_status(), 143);
        assert!(
            Signal::Interrupt
                .stop_line("finished archives stay")
                .starts_with("Ctrl-C: bunker is stopping")
        );
    }
}

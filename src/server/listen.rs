//! A listener's accept loop: each accepted socket gets its own task (see [`connection`]),
//! within the listener's `limits.max_connections`; running out of file descriptors or memory
//! backs the loop off instead of spinning, and is logged once per episode.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, UnixListener};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

use super::connection::{self, Admission, Listener, Socket};
use crate::metrics::Metrics;

/// The first pause after a failed accept; it doubles up to [`MAX_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_millis(10);

/// The longest pause between accepts while they fail.
const MAX_PAUSE: Duration = Duration::from_secs(1);

/// Connections over the limit held at once to tell them so; beyond, they are closed unanswered.
const MAX_REFUSING: usize = 32;

/// A bound socket.
pub(super) enum Bound {
    /// A unix socket.
    Unix(UnixListener),
    /// A TCP socket (plain or TLS).
    Tcp(TcpListener),
}

impl Bound {
    async fn accept(&self) -> io::Result<Socket> {
        match self {
            Bound::Unix(listener) => listener.accept().await.map(|(s, _)| Socket::Unix(s)),
            Bound::Tcp(listener) => {
                let (stream, _) = listener.accept().await?;
                // gRPC messages are small and answered at once; do not wait to fill segments.
                let _ = stream.set_nodelay(true);
                Ok(Socket::Tcp(stream))
            }
        }
    }
}

/// Accepts connections until `shutdown`, then closes the socket and waits for the connections
/// to finish their calls (the caller bounds that wait by aborting this task, which aborts them).
pub(super) async fn accept_loop(
    bound: Bound,
    listener: Arc<Listener>,
    metrics: Arc<Metrics>,
    mut shutdown: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(listener.max_connections));
    let refusing = Arc::new(Semaphore::new(MAX_REFUSING));
    let mut connections = JoinSet::new();
    let mut failing = Episode {
        started: "accepting connections fails; retrying with a growing pause (logged once \
                  until an accept succeeds)",
        ended: "accepting connections again",
        ..Episode::new(&listener.name)
    };
    let mut full = Episode {
        started: "this listener is at limits.max_connections; refusing new connections \
                  (logged once until one is served again)",
        ended: "serving new connections again",
        ..Episode::new(&listener.name)
    };
    loop {
        let accepted = tokio::select! {
            biased;
            _ = shutdown.wait_for(|stop| *stop) => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            accepted = bound.accept() => accepted,
        };
        let socket = match accepted {
            Ok(socket) => socket,
            Err(error) if at_once(&error) => continue,
            Err(error) => {
                metrics.accept_failed(&listener.name);
                let pause = failing.happened(&error);
                tokio::select! {
                    () = tokio::time::sleep(pause) => continue,
                    _ = shutdown.wait_for(|stop| *stop) => break,
                }
            }
        };
        failing.ended();
        let admission = match Arc::clone(&slots).try_acquire_owned() {
            Ok(slot) => {
                full.ended();
                Admission::Serve(slot)
            }
            Err(_) => {
                metrics.connection_refused(&listener.name);
                full.happened(&format!(
                    "{} connections open (limits.max_connections)",
                    listener.max_connections
                ));
                match Arc::clone(&refusing).try_acquire_owned() {
                    Ok(slot) => Admission::Refuse(slot),
                    // Too many refusals pending already: closed without an answer.
                    Err(_) => continue,
                }
            }
        };
        connections.spawn(connection::run(
            Arc::clone(&listener),
            socket,
            admission,
            shutdown.clone(),
        ));
    }
    drop(bound);
    while connections.join_next().await.is_some() {}
}

/// Errors that concern only the connection being accepted (it was reset or aborted before the
/// agent took it): the next accept is tried at once.
fn at_once(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
    )
}

/// A run of the same trouble on one listener: a warning when it starts, one line with the
/// count when it ends, and the pause before the next try (for failed accepts).
struct Episode<'a> {
    listener: &'a str,
    started: &'static str,
    ended: &'static str,
    count: u64,
    pause: Duration,
}

impl<'a> Episode<'a> {
    fn new(listener: &'a str) -> Self {
        Episode {
            listener,
            started: "",
            ended: "",
            count: 0,
            pause: FIRST_PAUSE,
        }
    }

    /// Counts one more; returns how long to pause (doubling, at most [`MAX_PAUSE`]).
    fn happened(&mut self, why: &dyn std::fmt::Display) -> Duration {
        if self.count == 0 {
            tracing::warn!(
                listener = %self.listener,
                error = %why,
                "{}",
                self.started
            );
        }
        self.count += 1;
        let pause = self.pause;
        self.pause = (pause * 2).min(MAX_PAUSE);
        pause
    }

    /// Ends the episode, if one was running.
    fn ended(&mut self) {
        if self.count > 0 {
            tracing::info!(
                listener = %self.listener,
                times = self.count,
                "{}",
                self.ended
            );
        }
        self.count = 0;
        self.pause = FIRST_PAUSE;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pause_doubles_to_a_second_and_starts_over_after_an_episode() {
        let mut episode = Episode::new("unix:test.sock");
        let why = "Too many open files";
        let pauses: Vec<u128> = (0..9).map(|_| episode.happened(&why).as_millis()).collect();
        assert_eq!(pauses, [10, 20, 40, 80, 160, 320, 640, 1000, 1000]);
        assert_eq!(episode.count, 9);
        episode.ended();
        assert_eq!(episode.count, 0);
        assert_eq!(episode.happened(&why), FIRST_PAUSE);
    }

    #[test]
    fn only_errors_of_the_one_connection_are_retried_at_once() {
        let kind = |k: io::ErrorKind| at_once(&io::Error::from(k));
        assert!(kind(io::ErrorKind::ConnectionAborted));
        assert!(kind(io::ErrorKind::ConnectionReset));
        // EMFILE, ENFILE, ENOBUFS, ENOMEM back off.
        for errno in [24, 23, 105, 12] {
            assert!(
                !at_once(&io::Error::from_raw_os_error(errno)),
                "errno {errno}"
            );
        }
    }
}

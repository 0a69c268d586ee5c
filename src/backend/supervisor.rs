//! The [`Supervisor`] both HSM backends run: a thread that checks the device while the backend
//! serves and, after a lost connection, reconnects with bounded exponential backoff, publishing
//! the [`HsmState`] the health service follows.
//!
//! A backend supplies what differs through [`Supervised`]: how to probe its device and how to
//! make a new connection (and which refusal is final). The supervisor owns the waiting, the
//! backoff, the state changes and their log lines, and stopping the thread at shutdown.

use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::backend::HsmState;
use crate::error::Error;

/// The first and the longest wait between reconnection attempts. The wait keeps growing across
/// outages until a connection has stayed up for [`STABLE`] (a flapping device is not hammered).
const BACKOFF: (Duration, Duration) = (Duration::from_millis(50), Duration::from_secs(5));
/// How long a connection must last before the backoff starts again from its first step.
const STABLE: Duration = Duration::from_secs(10);

/// What a backend does for its supervisor.
pub(crate) trait Supervised: Send + Sync + 'static {
    /// The backend's supervisor, which its calls share (for the state, and to report a loss).
    fn supervisor(&self) -> &Supervisor;

    /// Checks, while the backend serves, that the device still answers; reports a loss with
    /// [`Supervisor::lost`]. Called each time the thread wakes (every probe interval) while
    /// the state is [`HsmState::Serving`].
    fn probe(&self);

    /// Starts reconnecting after a loss (called once an outage) and returns one attempt, which
    /// the supervisor repeats with backoff until it stops failing. An attempt that works puts the
    /// new connection in place and returns `Ok` (the supervisor then turns the state
    /// [`HsmState::Serving`]). A refusal that must never be retried turns the backend failed
    /// with [`Supervisor::fail`] and returns its [`Error::HsmFailed`]; any other error is tried
    /// again.
    fn reconnect(&self) -> impl FnMut() -> Result<(), Error> + '_;
}

/// A backend's [`HsmState`], the flags that wake its supervisor thread, and the thread.
pub(crate) struct Supervisor {
    /// Names the device in log lines ("HSM", "YubiHSM") and the thread.
    device: &'static str,
    /// How long the thread waits between probes while nothing is reported.
    interval: Duration,
    state: watch::Sender<HsmState>,
    wake: Mutex<Wake>,
    wakeup: Condvar,
    /// Taken by [`Supervisor::stop_and_join`].
    thread: Mutex<Option<JoinHandle<()>>>,
}

/// Why the supervisor thread was woken.
#[derive(Default)]
struct Wake {
    lost: bool,
    stop: bool,
}

impl Supervisor {
    /// A supervisor for a serving backend; its thread starts with [`Supervisor::start`].
    pub(crate) fn new(device: &'static str, interval: Duration) -> Self {
        Supervisor {
            device,
            interval,
            state: watch::channel(HsmState::Serving).0,
            wake: Mutex::new(Wake::default()),
            wakeup: Condvar::new(),
            thread: Mutex::new(None),
        }
    }

    /// Starts the thread supervising `backend` (it keeps `backend` alive until it stops).
    pub(crate) fn start<S: Supervised>(backend: &Arc<S>) -> Result<(), Error> {
        let supervisor = backend.supervisor();
        let device = supervisor.device;
        let supervised = Arc::clone(backend);
        let thread = std::thread::Builder::new()
            .name(format!("signet-{}-supervisor", device.to_lowercase()))
            .spawn(move || run(&*supervised))
            .map_err(|e| Error::io(format!("starting the {device} supervisor thread"), e))?;
        *supervisor.thread.lock().unwrap_or_else(|p| p.into_inner()) = Some(thread);
        Ok(())
    }

    /// The state now.
    pub(crate) fn state(&self) -> HsmState {
        self.state.borrow().clone()
    }

    /// The state, as it changes.
    pub(crate) fn subscribe(&self) -> watch::Receiver<HsmState> {
        self.state.subscribe()
    }

    /// Reports that the connection was lost (the backend has dropped it): the state turns
    /// [`HsmState::Recovering`] and the thread wakes to reconnect.
    pub(crate) fn lost(&self, cause: &Error) {
        tracing::error!(
            error = %cause,
            "lost the {} connection; reconnecting in the background",
            self.device
        );
        // Under the wake lock, so that a reconnection that has just put a connection in place
        // either sees this loss or publishes Serving before it (see `publish_serving`).
        let mut wake = self.wake.lock().unwrap_or_else(|p| p.into_inner());
        self.state.send_replace(HsmState::Recovering);
        wake.lost = true;
        self.wakeup.notify_all();
    }

    /// Forgets a loss reported before a reconnection attempt (it is what is being repaired).
    fn clear_lost(&self) {
        self.wake.lock().unwrap_or_else(|p| p.into_inner()).lost = false;
    }

    /// Publishes [`HsmState::Serving`] after a reconnection, unless the new connection was
    /// itself lost already (calls can use it as soon as it is in place); `false` then.
    fn publish_serving(&self) -> bool {
        let wake = self.wake.lock().unwrap_or_else(|p| p.into_inner());
        if wake.lost {
            return false;
        }
        self.state.send_replace(HsmState::Serving);
        true
    }

    /// Turns the backend [`HsmState::Failed`] for good (`why` says what an operator must do)
    /// and returns the error calls get from now on.
    pub(crate) fn fail(&self, why: String) -> Error {
        self.state.send_replace(HsmState::Failed(why.clone()));
        Error::HsmFailed(why)
    }

    /// Tells the thread to stop, without waiting for it.
    pub(crate) fn stop(&self) {
        let mut wake = self.wake.lock().unwrap_or_else(|p| p.into_inner());
        wake.stop = true;
        self.wakeup.notify_all();
    }

    /// Stops the thread and waits at most `limit` for it to end; `false` (logged) when it is
    /// still inside a blocking device call (a probe, a login), so the caller does not close the
    /// device under it.
    pub(crate) fn stop_and_join(&self, limit: Duration) -> bool {
        self.stop();
        let thread = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        let Some(thread) = thread else {
            return true;
        };
        let until = Instant::now() + limit;
        while !thread.is_finished() && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(5));
        }
        if !thread.is_finished() {
            tracing::error!(
                "the {} supervisor is stuck in an HSM call; not closing the HSM",
                self.device
            );
            return false;
        }
        if thread.join().is_err() {
            tracing::error!("the {} supervisor thread panicked", self.device);
        }
        true
    }

    /// Waits `timeout`, or until stopped, or (with `or_lost`) until a loss is reported, which
    /// it then clears. Returns whether the thread must stop.
    fn wait(&self, timeout: Duration, or_lost: bool) -> bool {
        let wake = self.wake.lock().unwrap_or_else(|p| p.into_inner());
        let (mut wake, _) = self
            .wakeup
            .wait_timeout_while(wake, timeout, |w| !(w.stop || or_lost && w.lost))
            .unwrap_or_else(|p| p.into_inner());
        if or_lost {
            wake.lost = false;
        }
        wake.stop
    }
}

/// The supervisor thread: probes while serving, reconnects after a loss, idles once failed.
fn run<S: Supervised>(backend: &S) {
    let supervisor = backend.supervisor();
    let mut delay = BACKOFF.0;
    let mut up_since = Instant::now();
    loop {
        if supervisor.wait(supervisor.interval, true) {
            return;
        }
        if supervisor.state() == HsmState::Serving {
            backend.probe();
        }
        if supervisor.state() != HsmState::Recovering {
            continue;
        }
        if up_since.elapsed() >= STABLE {
            delay = BACKOFF.0;
        }
        if reconnect_with_backoff(backend, &mut delay) {
            up_since = Instant::now();
        }
    }
}

/// Reconnects until it works, the backend has failed, the new connection is lost at once (the
/// loop then starts a new outage), or the thread must stop; returns whether a new connection is
/// serving. `delay` is the next wait, carried across outages.
fn reconnect_with_backoff<S: Supervised>(backend: &S, delay: &mut Duration) -> bool {
    let supervisor = backend.supervisor();
    let started = Instant::now();
    let mut reconnect = backend.reconnect();
    for attempt in 1u32.. {
        supervisor.clear_lost();
        match reconnect() {
            Ok(()) if !supervisor.publish_serving() => {
                // A new outage: start over, so the backend prepares for it afresh (PKCS#11
                // waits again for calls inside the lost connection before resetting).
                tracing::warn!(
                    attempt,
                    retry_in_ms = delay.as_millis() as u64,
                    "the new {} connection was lost at once; reconnecting again",
                    supervisor.device
                );
                // Backs off all the same: a device that drops every new connection at once is
                // not hammered. (The loss stays flagged, so the loop goes on at once after.)
                supervisor.wait(*delay, false);
                *delay = (*delay * 2).min(BACKOFF.1);
                return false;
            }
            Ok(()) => {
                tracing::info!(
                    attempts = attempt,
                    outage_ms = started.elapsed().as_millis() as u64,
                    "{} connection re-established; serving again",
                    supervisor.device
                );
                return true;
            }
            Err(Error::HsmFailed(_)) => return false,
            Err(e) => {
                tracing::warn!(
                    attempt,
                    error = %e,
                    retry_in_ms = delay.as_millis() as u64,
                    "{} still unavailable",
                    supervisor.device
                );
            }
        }
        if supervisor.wait(*delay, false) {
            return false;
        }
        *delay = (*delay * 2).min(BACKOFF.1);
    }
    false
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    use super::*;

    /// A backend whose first reconnection is lost as soon as it is in place, as when the
    /// first call on a new PKCS#11 connection finds the device gone again.
    struct Flaky {
        supervisor: Supervisor,
        connected: AtomicBool,
        attempts: AtomicUsize,
    }

    impl Supervised for Flaky {
        fn supervisor(&self) -> &Supervisor {
            &self.supervisor
        }

        fn probe(&self) {}

        fn reconnect(&self) -> impl FnMut() -> Result<(), Error> + '_ {
            || {
                self.connected.store(true, Ordering::SeqCst);
                if self.attempts.fetch_add(1, Ordering::SeqCst) == 0 {
                    self.connected.store(false, Ordering::SeqCst);
                    self.supervisor.lost(&Error::Recovering);
                }
                Ok(())
            }
        }
    }

    #[test]
    fn a_connection_lost_while_it_is_put_in_place_is_made_again() {
        let backend = Arc::new(Flaky {
            supervisor: Supervisor::new("HSM", Duration::from_secs(60)),
            connected: AtomicBool::new(true),
            attempts: AtomicUsize::new(0),
        });
        Supervisor::start(&backend).expect("start");
        backend.connected.store(false, Ordering::SeqCst);
        backend.supervisor.lost(&Error::Recovering);
        let deadline = Instant::now() + Duration::from_secs(10);
        while backend.supervisor.state() != HsmState::Serving
            || backend.attempts.load(Ordering::SeqCst) < 2
        {
            assert!(
                Instant::now() < deadline,
                "state {:?} after {} reconnection(s): the lost connection was not made again",
                backend.supervisor.state(),
                backend.attempts.load(Ordering::SeqCst)
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(
            backend.connected.load(Ordering::SeqCst),
            "Serving only with a connection"
        );
        assert_eq!(backend.attempts.load(Ordering::SeqCst), 2);
        assert!(backend.supervisor.stop_and_join(Duration::from_secs(5)));
    }
}

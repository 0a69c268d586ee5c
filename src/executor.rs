//! Runs blocking HSM calls on a fixed set of worker threads fed by one bounded queue, so that
//! async tasks never block and the work waiting for the HSM stays bounded, in requests and in
//! bytes.
//!
//! Every call carries a deadline: a worker does not start work whose deadline has passed, and
//! the caller stops waiting at the deadline (a hung HSM call then ties up one worker, not the
//! caller, and not the other workers).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Sender, TrySendError};
use tokio::sync::oneshot;

use crate::backend::Backend;
use crate::error::Error;

type Job = Box<dyn FnOnce(&dyn Backend) + Send>;

enum Message {
    Run(Job),
    Stop,
}

/// A bounded queue in front of `workers` threads that call the backend.
pub struct Executor {
    queue: Sender<Message>,
    workers: Mutex<Vec<JoinHandle<()>>>,
    backend: Arc<dyn Backend>,
    stopped: AtomicBool,
    queued_bytes: Arc<AtomicUsize>,
    max_queued_bytes: usize,
    /// Workers inside a job.
    busy: Arc<AtomicUsize>,
    workers_started: usize,
}

/// Gives back a call's share of the byte budget when the call finishes or is dropped unrun.
struct Reservation {
    bytes: usize,
    queued: Arc<AtomicUsize>,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.queued.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

impl Executor {
    /// Starts `workers` threads (at least one) behind a queue of `depth` waiting requests
    /// holding at most `max_queued_bytes` of input.
    pub fn start(
        backend: Arc<dyn Backend>,
        workers: usize,
        depth: usize,
        max_queued_bytes: usize,
    ) -> Result<Self, Error> {
        let (queue, messages) = crossbeam_channel::bounded::<Message>(depth);
        let busy = Arc::new(AtomicUsize::new(0));
        let handles = (0..workers.max(1))
            .map(|i| {
                let messages = messages.clone();
                let backend = Arc::clone(&backend);
                let busy = Arc::clone(&busy);
                std::thread::Builder::new()
                    .name(format!("signet-hsm-{i}"))
                    .spawn(move || {
                        while let Ok(Message::Run(job)) = messages.recv() {
                            busy.fetch_add(1, Ordering::Relaxed);
                            job(&*backend);
                            busy.fetch_sub(1, Ordering::Relaxed);
                        }
                    })
                    .map_err(|e| Error::io("starting an HSM worker thread", e))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Executor {
            queue,
            workers: Mutex::new(handles),
            backend,
            stopped: AtomicBool::new(false),
            queued_bytes: Arc::new(AtomicUsize::new(0)),
            max_queued_bytes,
            busy,
            workers_started: workers.max(1),
        })
    }

    /// The calls waiting, the workers inside a call, and the workers, right now.
    pub fn load(&self) -> crate::metrics::Load {
        crate::metrics::Load {
            queued: self.queue.len(),
            busy: self.busy.load(Ordering::Relaxed),
            workers: self.workers_started,
        }
    }

    /// Runs `f` on a worker and waits for its result without blocking the async runtime.
    /// `bytes` is the input the call holds while it waits. A full queue or byte budget fails at
    /// once with `ResourceExhausted`; a call not finished by `deadline` fails with
    /// `DeadlineExceeded`, and is not started if it is still queued then.
    pub async fn run<R, F>(&self, deadline: Instant, bytes: usize, f: F) -> Result<R, Error>
    where
        R: Send + 'static,
        F: FnOnce(&dyn Backend) -> Result<R, Error> + Send + 'static,
    {
        if self.stopped.load(Ordering::Acquire) {
            return Err(Error::ShuttingDown);
        }
        let reservation = self.reserve(bytes)?;
        let (reply, answer) = oneshot::channel();
        let job: Job = Box::new(move |backend| {
            let _reservation = reservation;
            let result = if Instant::now() >= deadline {
                Err(Error::DeadlineExceeded("call could start"))
            } else if reply.is_closed() {
                // The caller gave up (deadline or cancellation): nobody needs the answer.
                return;
            } else {
                f(backend)
            };
            let _ = reply.send(result);
        });
        self.queue
            .try_send(Message::Run(job))
            .map_err(|e| match e {
                TrySendError::Full(_) => Error::ResourceExhausted(
                    "the agent's HSM queue is full; retry with backoff".into(),
                ),
                TrySendError::Disconnected(_) => Error::ShuttingDown,
            })?;
        match tokio::time::timeout_at(deadline.into(), answer).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(Error::ShuttingDown),
            Err(_) => Err(Error::DeadlineExceeded("call finished")),
        }
    }

    fn reserve(&self, bytes: usize) -> Result<Reservation, Error> {
        let mut current = self.queued_bytes.load(Ordering::Acquire);
        loop {
            let next = current.saturating_add(bytes);
            if next > self.max_queued_bytes {
                return Err(Error::ResourceExhausted(
                    "the agent holds as many message bytes for the HSM as it may; retry with \
                     backoff"
                        .into(),
                ));
            }
            match self.queued_bytes.compare_exchange_weak(
                current,
                next,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    return Ok(Reservation {
                        bytes,
                        queued: Arc::clone(&self.queued_bytes),
                    })
                }
                Err(actual) => current = actual,
            }
        }
    }

    /// Refuses new work, lets the queued work finish, stops the workers, then shuts the backend
    /// down (closing the sessions and finalising the module), in that order. Waits at most
    /// `patience` for the workers: a worker stuck in a hung HSM call is left behind (and the
    /// backend is then not finalised under it). Blocking; runs once.
    pub fn shutdown(&self, patience: Duration) {
        if self.stopped.swap(true, Ordering::AcqRel) {
            return;
        }
        let until = Instant::now() + patience;
        let mut workers = self.workers.lock().unwrap_or_else(|p| p.into_inner());
        // One Stop per worker, queued behind the work already waiting (the queue is FIFO).
        for _ in workers.iter() {
            let _ = self.queue.send_deadline(Message::Stop, until);
        }
        while workers.iter().any(|w| !w.is_finished()) && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(5));
        }
        let stuck = workers.iter().filter(|w| !w.is_finished()).count();
        if stuck > 0 {
            tracing::error!(
                stuck,
                "HSM worker threads did not finish in time (a hung HSM call?); not closing the \
                 HSM under them"
            );
            return;
        }
        for worker in workers.drain(..) {
            if worker.join().is_err() {
                tracing::error!("an HSM worker thread panicked");
            }
        }
        self.backend.shutdown();
    }
}

impl Drop for Executor {
    fn drop(&mut self) {
        self.shutdown(Duration::from_secs(10));
    }
}

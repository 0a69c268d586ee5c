//! Runs blocking HSM calls on a fixed set of worker threads fed by one bounded queue, so that
//! async tasks never block and the work waiting for the HSM stays bounded, in requests and in
//! bytes.
//!
//! The queue is a mutex and a condition variable, not a spinning channel: an idle worker
//! sleeps in the kernel at once instead of spinning and yielding its core first (which, on a
//! machine whose cores the client and the HSM share, took time from both), and a call wakes
//! exactly one worker.
//!
//! Every call carries a deadline: a worker does not start work whose deadline has passed, and
//! the caller stops waiting at the deadline (a hung HSM call then ties up one worker, not the
//! caller, and not the other workers).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use crate::backend::Backend;
use crate::error::Error;

type Job = Box<dyn FnOnce(&dyn Backend) + Send>;

enum Message {
    Run(Job),
    Stop,
}

/// The waiting work, FIFO, at most `depth` jobs (the workers' `Stop`s go behind them).
struct Queue {
    messages: Mutex<VecDeque<Message>>,
    ready: Condvar,
    depth: usize,
}

impl Queue {
    fn lock(&self) -> MutexGuard<'_, VecDeque<Message>> {
        self.messages.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn len(&self) -> usize {
        self.lock().len()
    }

    /// Queues a job, or gives it back when `depth` jobs already wait.
    fn try_push(&self, job: Job) -> Result<(), Job> {
        let mut messages = self.lock();
        if messages.len() >= self.depth {
            return Err(job);
        }
        messages.push_back(Message::Run(job));
        drop(messages);
        self.ready.notify_one();
        Ok(())
    }

    /// Queues one `Stop`, behind the work already waiting.
    fn stop_one(&self) {
        self.lock().push_back(Message::Stop);
        self.ready.notify_one();
    }

    /// The next message, sleeping until there is one.
    fn pop(&self) -> Message {
        let mut messages = self.lock();
        loop {
            if let Some(message) = messages.pop_front() {
                return message;
            }
            messages = self
                .ready
                .wait(messages)
                .unwrap_or_else(|p| p.into_inner());
        }
    }
}

/// A bounded queue in front of `workers` threads that call the backend.
pub struct Executor {
    queue: Arc<Queue>,
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
        let queue = Arc::new(Queue {
            messages: Mutex::new(VecDeque::new()),
            ready: Condvar::new(),
            depth,
        });
        let busy = Arc::new(AtomicUsize::new(0));
        let handles = (0..workers.max(1))
            .map(|i| {
                let messages = Arc::clone(&queue);
                let backend = Arc::clone(&backend);
                let busy = Arc::clone(&busy);
                std::thread::Builder::new()
                    .name(format!("signet-hsm-{i}"))
                    .spawn(move || {
                        while let Message::Run(job) = messages.pop() {
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
        self.queue.try_push(job).map_err(|_| {
            Error::ResourceExhausted("the agent's HSM queue is full; retry with backoff".into())
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
            self.queue.stop_one();
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

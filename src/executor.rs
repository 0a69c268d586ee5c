//! Runs blocking HSM calls on a fixed set of worker threads fed by one bounded queue, so that
//! async tasks never block and the number of requests waiting for the HSM stays bounded.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

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
}

impl Executor {
    /// Starts `workers` threads (at least one) behind a queue of `depth` waiting requests.
    pub fn start(backend: Arc<dyn Backend>, workers: usize, depth: usize) -> Result<Self, Error> {
        let (queue, messages) = crossbeam_channel::bounded::<Message>(depth);
        let handles = (0..workers.max(1))
            .map(|i| {
                let messages = messages.clone();
                let backend = Arc::clone(&backend);
                std::thread::Builder::new()
                    .name(format!("signet-hsm-{i}"))
                    .spawn(move || {
                        while let Ok(Message::Run(job)) = messages.recv() {
                            job(&*backend);
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
        })
    }

    /// Runs `f` on a worker and waits for its result without blocking the async runtime.
    /// A full queue fails at once with `ResourceExhausted`.
    pub async fn run<R, F>(&self, f: F) -> Result<R, Error>
    where
        R: Send + 'static,
        F: FnOnce(&dyn Backend) -> Result<R, Error> + Send + 'static,
    {
        if self.stopped.load(Ordering::Acquire) {
            return Err(Error::ShuttingDown);
        }
        let (reply, answer) = oneshot::channel();
        let job: Job = Box::new(move |backend| {
            // The caller may have gone away (cancelled); then nobody needs the answer.
            let _ = reply.send(f(backend));
        });
        self.queue
            .try_send(Message::Run(job))
            .map_err(|e| match e {
                TrySendError::Full(_) => Error::ResourceExhausted(
                    "the agent's HSM queue is full; retry with backoff".into(),
                ),
                TrySendError::Disconnected(_) => Error::ShuttingDown,
            })?;
        answer.await.map_err(|_| Error::ShuttingDown)?
    }

    /// Refuses new work, lets the queued work finish, stops the workers, then shuts the backend
    /// down (closing the sessions and finalising the module), in that order. Blocking; runs once.
    pub fn shutdown(&self) {
        if self.stopped.swap(true, Ordering::AcqRel) {
            return;
        }
        let mut workers = self
            .workers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        // One Stop per worker, queued behind the work already waiting (the queue is FIFO).
        for _ in workers.iter() {
            let _ = self.queue.send(Message::Stop);
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
        self.shutdown();
    }
}

//! Runs blocking HSM calls on a fixed set of worker threads fed by one bounded queue, so that
//! async tasks never block and the number of requests waiting for the HSM stays bounded.

use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::{Sender, TrySendError};
use tokio::sync::oneshot;

use crate::backend::Backend;
use crate::error::Error;

type Job = Box<dyn FnOnce(&dyn Backend) + Send>;

/// A bounded queue in front of `workers` threads that call the backend.
pub struct Executor {
    queue: Option<Sender<Job>>,
    workers: Vec<JoinHandle<()>>,
    backend: Arc<dyn Backend>,
}

impl Executor {
    /// Starts `workers` threads (at least one) behind a queue of `depth` waiting requests.
    pub fn start(backend: Arc<dyn Backend>, workers: usize, depth: usize) -> Result<Self, Error> {
        let (queue, jobs) = crossbeam_channel::bounded::<Job>(depth);
        let handles = (0..workers.max(1))
            .map(|i| {
                let jobs = jobs.clone();
                let backend = Arc::clone(&backend);
                std::thread::Builder::new()
                    .name(format!("signet-hsm-{i}"))
                    .spawn(move || {
                        for job in jobs {
                            job(&*backend);
                        }
                    })
                    .map_err(|e| Error::io("starting an HSM worker thread", e))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Executor {
            queue: Some(queue),
            workers: handles,
            backend,
        })
    }

    /// Runs `f` on a worker and waits for its result without blocking the async runtime.
    /// A full queue fails at once with `ResourceExhausted`.
    pub async fn run<R, F>(&self, f: F) -> Result<R, Error>
    where
        R: Send + 'static,
        F: FnOnce(&dyn Backend) -> Result<R, Error> + Send + 'static,
    {
        let queue = self
            .queue
            .as_ref()
            .ok_or_else(|| Error::Internal("the executor has been stopped".into()))?;
        let (reply, answer) = oneshot::channel();
        let job: Job = Box::new(move |backend| {
            // The caller may have gone away (cancelled); then nobody needs the answer.
            let _ = reply.send(f(backend));
        });
        queue.try_send(job).map_err(|e| match e {
            TrySendError::Full(_) => {
                Error::ResourceExhausted("the agent's HSM queue is full; retry with backoff".into())
            }
            TrySendError::Disconnected(_) => Error::Internal("the HSM workers have stopped".into()),
        })?;
        answer
            .await
            .map_err(|_| Error::Internal("an HSM worker stopped before answering".into()))?
    }
}

impl Drop for Executor {
    /// Lets queued work finish, stops the workers, then shuts the backend down (closing the
    /// sessions and finalising the module), in that order.
    fn drop(&mut self) {
        self.queue = None;
        for worker in self.workers.drain(..) {
            if worker.join().is_err() {
                tracing::error!("an HSM worker thread panicked");
            }
        }
        self.backend.shutdown();
    }
}

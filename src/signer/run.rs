//! Runs prepared HSM work on the executor's workers: one call, or a batch spread over the
//! workers in chunks whose items keep their results as they finish, so a batch that reaches its
//! deadline answers what it finished and never starts an item after it.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::Signer;
use crate::backend::Backend;
use crate::error::Error;

/// One checked piece of HSM work a worker runs: signing ([`HsmCall`]) or verifying
/// ([`verify::VerifyCall`]).
pub(super) trait Job: Send + 'static {
    /// What the work produces.
    type Out: Send + 'static;
    /// The bytes it holds in the queue.
    fn bytes(&self) -> usize;
    /// The work, on a worker thread.
    fn run(&mut self, backend: &dyn Backend) -> Result<Self::Out, Error>;
}

/// A finished job and what it produced.
pub(super) type Done<J> = (J, <J as Job>::Out);

/// The results of a batch's items as the workers finish them.
struct Slots<J: Job> {
    results: Vec<Option<Result<Done<J>, Error>>>,
    /// The batch was answered: later results are dropped and no item is started.
    answered: bool,
}

fn lock<J: Job>(slots: &Mutex<Slots<J>>) -> std::sync::MutexGuard<'_, Slots<J>> {
    slots.lock().unwrap_or_else(|p| p.into_inner())
}

impl Signer {
    /// Runs one prepared call on a worker.
    pub(super) async fn run_one<J: Job>(
        &self,
        call: J,
        deadline: Instant,
    ) -> Result<Done<J>, Error> {
        let bytes = call.bytes();
        self.executor
            .run(deadline, bytes, move |backend| {
                let mut call = call;
                let raw = call.run(backend)?;
                Ok((call, raw))
            })
            .await
    }

    /// Runs the prepared calls on the workers in up to `workers` chunks; keeps the order.
    ///
    /// Each item's result is kept as soon as it is done, so a batch that reaches its deadline
    /// answers what it finished; the rest answer `DEADLINE_EXCEEDED`. A worker starts no item
    /// once the deadline has passed or the batch was answered, and a result that comes back
    /// after that is dropped, never delivered.
    pub(super) async fn run_batch<J: Job>(
        &self,
        calls: Vec<Result<J, Error>>,
        deadline: Instant,
    ) -> Vec<Result<Done<J>, Error>> {
        let slots = Arc::new(Mutex::new(Slots {
            results: calls.iter().map(|_| None).collect(),
            answered: false,
        }));
        let mut chunks: Vec<Vec<(usize, J)>> = (0..self.workers).map(|_| Vec::new()).collect();
        let mut early = Vec::new();
        let mut next = 0;
        for (index, call) in calls.into_iter().enumerate() {
            match call {
                Ok(call) => {
                    chunks[next % self.workers].push((index, call));
                    next += 1;
                }
                Err(e) => early.push((index, e)),
            }
        }
        let runs = chunks.into_iter().filter(|c| !c.is_empty()).map(|chunk| {
            let indexes: Vec<usize> = chunk.iter().map(|(i, _)| *i).collect();
            let bytes = chunk.iter().map(|(_, c)| c.bytes()).sum();
            let slots = Arc::clone(&slots);
            let run = self.executor.run(deadline, bytes, move |backend| {
                for (index, mut call) in chunk {
                    if Instant::now() >= deadline || lock(&slots).answered {
                        break;
                    }
                    let result = call.run(backend).map(|raw| (call, raw));
                    let mut slots = lock(&slots);
                    if slots.answered {
                        break;
                    }
                    slots.results[index] = Some(result);
                }
                Ok(())
            });
            async move { (indexes, run.await) }
        });
        let outcomes = futures_util::future::join_all(runs).await;
        let mut results = {
            let mut slots = lock(&slots);
            slots.answered = true;
            std::mem::take(&mut slots.results)
        };
        for (index, e) in early {
            results[index] = Some(Err(e));
        }
        // A chunk that failed as a whole (queue full, shutting down, deadline) fails each of its
        // items that got no result of its own.
        for (indexes, outcome) in outcomes {
            let failure = outcome.err();
            for index in indexes {
                if results[index].is_none() {
                    results[index] = Some(Err(failure
                        .as_ref()
                        .map_or(Error::DeadlineExceeded("call finished"), |e| {
                            same_error(e, &e.to_string())
                        })));
                }
            }
        }
        results
            .into_iter()
            .map(|r| r.unwrap_or(Err(Error::DeadlineExceeded("call finished"))))
            .collect()
    }
}

/// The same failure for every item of a chunk that failed as a whole (queue full, deadline,
/// shutdown).
fn same_error(error: &Error, message: &str) -> Error {
    match error {
        Error::ResourceExhausted(m) => Error::ResourceExhausted(m.clone()),
        Error::DeadlineExceeded(m) => Error::DeadlineExceeded(m),
        Error::ShuttingDown => Error::ShuttingDown,
        _ => Error::Internal(message.to_owned()),
    }
}

//! [`MapThreads`]: rayon threads that write a plain `try_map`'s values in place.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Mutex;

use super::run::panicked;
use crate::error::TaskError;

/// The threads that run a plain `try_map` (no worker state, task limit or timeout): rayon's
/// work-stealing pool, which writes each value straight into the output vector, where the
/// pool's own workers move owned chunks through a channel and copy them into place (three
/// passes over the data instead of one). Started on the first such call, with as many
/// threads as the pool has workers.
///
/// Written on rayon rather than by hand: splitting an owned vector among threads that write
/// into one output takes lifetime erasure, which rayon does and has been audited for.
pub(crate) struct MapThreads {
    threads: rayon::ThreadPool,
    /// The fewest items a thread takes at once (the pool's `chunk_size`, else 1).
    min_len: usize,
    /// The pool's counters.
    stats: std::sync::Arc<crate::pool::stats::Counters>,
}

impl std::fmt::Debug for MapThreads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MapThreads")
            .field("threads", &self.threads.current_num_threads())
            .finish()
    }
}

/// Ends a `try_map`'s parallel run at its first failure (carried as a panic payload, which
/// rayon hands back to the caller once every thread has stopped).
pub(super) struct Stop;

impl MapThreads {
    pub(super) fn start(
        workers: usize,
        min_len: usize,
        stats: std::sync::Arc<crate::pool::stats::Counters>,
    ) -> Option<MapThreads> {
        let threads = rayon::ThreadPoolBuilder::new()
            .num_threads(workers)
            .thread_name(|i| format!("proctor-map-{i}"))
            // Tasks' panics are caught and become outcomes: keep them off stderr, as the
            // pool's own workers do.
            .start_handler(|_| crate::panic::set_quiet(true))
            .build()
            .ok()?;
        Some(MapThreads {
            threads,
            min_len,
            stats,
        })
    }

    /// The worker id of a map thread, as errors report it.
    pub(super) fn worker() -> u32 {
        rayon::current_thread_index().map_or(0, |i| i as u32)
    }

    /// The values in input order, or the failure with the lowest index. The run stops at
    /// the first failure: what a thread had not started by then never runs.
    pub(crate) fn values<A, R, F>(&self, f: F, items: Vec<A>) -> Result<Vec<R>, TaskError>
    where
        A: Send,
        R: Send,
        F: Fn(A) -> R + Sync,
    {
        use rayon::prelude::*;
        // Each thread runs its items in order and stops at its first failure, so every item
        // before the lowest failure ran: the lowest one recorded is the call's first.
        let first_failure: Mutex<Option<(usize, TaskError)>> = Mutex::new(None);
        let mut out = Vec::new();
        let (n, workers) = (items.len(), self.threads.current_num_threads());
        self.stats.job_started(workers, n);
        let ran = self.threads.install(|| {
            catch_unwind(AssertUnwindSafe(|| {
                items
                    .into_par_iter()
                    .with_min_len(self.min_len)
                    .enumerate()
                    .map(|(i, a)| match catch_unwind(AssertUnwindSafe(|| f(a))) {
                        Ok(v) => v,
                        Err(payload) => stop(&first_failure, i, payload),
                    })
                    .collect_into_vec(&mut out);
            }))
        });
        let first = first_failure
            .into_inner()
            .unwrap_or_else(|p| p.into_inner());
        self.stats.job_ended(workers, n);
        match (ran, first) {
            (Ok(()), _) => {
                self.stats.succeeded(n);
                Ok(out)
            }
            (Err(_), Some((_, e))) => {
                // The call stops at its first failure and keeps no other outcome: the rest
                // count as cancelled.
                self.stats.failed(&e);
                self.stats
                    .failed_n(&TaskError::Cancelled { index: 0 }, n - 1);
                Err(e)
            }
            // Only `Stop` is raised, and only after a failure is recorded.
            (Err(payload), None) => std::panic::resume_unwind(payload),
        }
    }
}

/// Records item `i`'s failure if it is the lowest so far, and stops this thread's share of a
/// `try_map` (out of line, so the loop around each task stays small).
#[cold]
#[inline(never)]
pub(super) fn stop(
    first_failure: &Mutex<Option<(usize, TaskError)>>,
    i: usize,
    payload: Box<dyn std::any::Any + Send>,
) -> ! {
    let e = panicked(payload.as_ref(), MapThreads::worker(), i as u64);
    let mut first = first_failure.lock().unwrap_or_else(|p| p.into_inner());
    if first.as_ref().is_none_or(|(j, _)| i < *j) {
        *first = Some((i, e));
    }
    drop(first);
    std::panic::resume_unwind(Box::new(Stop))
}

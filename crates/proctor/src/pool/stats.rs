//! [`PoolStats`]: what a pool has done so far, read from relaxed atomic counters that the
//! backends bump where they already handle each event (a submission, a job a worker takes,
//! an outcome, a worker started or replaced, a retry). Bumping takes no lock; a snapshot
//! reads the counters one by one.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::error::TaskError;

/// Failed tasks, by what stopped them (see [`TaskError`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Failures {
    /// [`TaskError::Panicked`].
    pub panicked: u64,
    /// [`TaskError::Crashed`]: the worker process died (a signal, an abort, an exit).
    pub crashed: u64,
    /// [`TaskError::TimedOut`].
    pub timed_out: u64,
    /// [`TaskError::OutOfMemory`].
    pub out_of_memory: u64,
    /// [`TaskError::Cancelled`]: never run (the pool or stream was dropped, the task was
    /// cancelled, or a `try_map` stopped at an earlier failure).
    pub cancelled: u64,
    /// Any other [`TaskError`] (a codec error, a lost host, a sandbox violation, a worker
    /// that could not be started, a poisoned state).
    pub other: u64,
}

impl Failures {
    /// All failed tasks.
    pub fn total(&self) -> u64 {
        self.panicked
            + self.crashed
            + self.timed_out
            + self.out_of_memory
            + self.cancelled
            + self.other
    }
}

/// A snapshot of what a pool has done since it was built: see [`Pool::stats`](crate::Pool::stats).
///
/// Each figure is read on its own while the pool works, so a snapshot taken mid-run may be
/// a few tasks off between figures (a task counted done but still counted running); once
/// the pool is quiet, `submitted == done` and `running`, `queued` and `busy_workers` are 0.
///
/// A task is counted once, when its outcome is delivered, whatever call made it. Two
/// approximations, both after a [`Pool::try_map`](crate::Pool::try_map) has failed: it
/// returns the first failure and keeps no other outcome, so in thread mode its items that
/// ran on rayon's threads count as `cancelled`, and in process mode a later failure in the
/// same worker's reply, which it never reads, counts as a success. `map`, streams and
/// `submit` count every outcome by its kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct PoolStats {
    /// Tasks handed to the pool: items of `map`-like calls, `submit`s, and the items streams
    /// have taken from their input so far.
    pub submitted: u64,
    /// Tasks sent to a worker whose outcome has not been delivered yet.
    pub running: u64,
    /// Tasks submitted that no worker has taken yet (the queue depth).
    pub queued: u64,
    /// Tasks with an outcome: `succeeded + failed.total()`.
    pub done: u64,
    /// Tasks that returned a value.
    pub succeeded: u64,
    /// Tasks that failed, by kind.
    pub failed: Failures,
    /// Tasks started again after their worker crashed (see
    /// [`PoolBuilder::retries`](crate::PoolBuilder::retries)).
    pub retried: u64,
    /// Workers started, the first ones and every replacement.
    pub workers_started: u64,
    /// Workers started in place of another: one that died, ran past a timeout, or was
    /// recycled after [`PoolBuilder::max_tasks_per_worker`](crate::PoolBuilder::max_tasks_per_worker).
    pub workers_replaced: u64,
    /// Workers running a task now.
    pub busy_workers: u64,
}

/// The pool's counters, shared by its backend's threads. What the callers bump (`submitted`)
/// and what the workers or the driver bump (the rest) live on cache lines of their own, so
/// a round trip does not move one line between the two sides for counting.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    submitted: Padded<AtomicU64>,
    /// Thread mode's own count of workers at work (the high 16 bits) and of their tasks
    /// (the rest), one word so that a job costs two atomic operations (process mode reads
    /// its scheduler's slots instead).
    at_work: Padded<AtomicU64>,
    succeeded: AtomicU64,
    panicked: AtomicU64,
    crashed: AtomicU64,
    timed_out: AtomicU64,
    out_of_memory: AtomicU64,
    cancelled: AtomicU64,
    other: AtomicU64,
    retried: AtomicU64,
    workers_started: AtomicU64,
    workers_replaced: AtomicU64,
}

/// A value alone on its cache line (two lines: the adjacent-line prefetcher pairs them).
#[derive(Debug, Default)]
#[repr(align(128))]
struct Padded<T>(T);

impl<T> std::ops::Deref for Padded<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

/// Where the workers' count sits in `at_work`.
const WORKER_SHIFT: u32 = 48;

impl Counters {
    #[inline]
    pub(crate) fn submitted(&self, n: usize) {
        self.submitted.fetch_add(n as u64, Relaxed);
    }

    /// `n` tasks returned a value.
    #[inline]
    pub(crate) fn succeeded(&self, n: usize) {
        if n > 0 {
            self.succeeded.fetch_add(n as u64, Relaxed);
        }
    }

    /// One task failed with `e`.
    #[cold]
    pub(crate) fn failed(&self, e: &TaskError) {
        self.failed_n(e, 1);
    }

    /// `n` tasks failed as `e` did.
    #[cold]
    pub(crate) fn failed_n(&self, e: &TaskError, n: usize) {
        let counter = match e {
            TaskError::Panicked { .. } => &self.panicked,
            TaskError::Crashed { .. } => &self.crashed,
            TaskError::TimedOut { .. } => &self.timed_out,
            TaskError::OutOfMemory { .. } => &self.out_of_memory,
            TaskError::Cancelled { .. } => &self.cancelled,
            _ => &self.other,
        };
        counter.fetch_add(n as u64, Relaxed);
    }

    /// A task counted a success (before its record was decoded) failed with `e`.
    #[cold]
    pub(crate) fn failed_record(&self, e: &TaskError) {
        self.failed(e);
        self.succeeded.fetch_sub(1, Relaxed);
    }

    /// One outcome.
    #[inline]
    pub(crate) fn outcome<R>(&self, o: &Result<R, TaskError>) {
        match o {
            Ok(_) => self.succeeded(1),
            Err(e) => self.failed(e),
        }
    }

    /// A run of outcomes.
    pub(crate) fn outcomes<R>(&self, run: &[Result<R, TaskError>]) {
        let mut ok = 0;
        for o in run {
            match o {
                Ok(_) => ok += 1,
                Err(e) => self.failed(e),
            }
        }
        self.succeeded(ok);
    }

    pub(crate) fn retried(&self) {
        self.retried.fetch_add(1, Relaxed);
    }

    pub(crate) fn worker_started(&self, replacing: bool) {
        self.workers_started.fetch_add(1, Relaxed);
        if replacing {
            self.workers_replaced.fetch_add(1, Relaxed);
        }
    }

    /// A worker that was started counts as a replacement after all (thread mode's
    /// watchdog starts one, then gives up on the stuck worker).
    pub(crate) fn worker_replaced(&self) {
        self.workers_replaced.fetch_add(1, Relaxed);
    }

    /// `workers` worker threads take a job of `count` tasks.
    #[inline]
    pub(crate) fn job_started(&self, workers: usize, count: usize) {
        self.at_work
            .fetch_add(((workers as u64) << WORKER_SHIFT) + count as u64, Relaxed);
    }

    /// The job of `count` tasks that `workers` threads took has delivered its outcomes.
    #[inline]
    pub(crate) fn job_ended(&self, workers: usize, count: usize) {
        self.at_work
            .fetch_sub(((workers as u64) << WORKER_SHIFT) + count as u64, Relaxed);
    }

    /// The snapshot; `at_work` is `(running tasks, busy workers)` where the backend knows
    /// them better than the counters (process mode).
    pub(crate) fn snapshot(&self, at_work: Option<(u64, u64)>) -> PoolStats {
        let failed = Failures {
            panicked: self.panicked.load(Relaxed),
            crashed: self.crashed.load(Relaxed),
            timed_out: self.timed_out.load(Relaxed),
            out_of_memory: self.out_of_memory.load(Relaxed),
            cancelled: self.cancelled.load(Relaxed),
            other: self.other.load(Relaxed),
        };
        let succeeded = self.succeeded.load(Relaxed);
        let done = succeeded + failed.total();
        let (running, busy_workers) = at_work.unwrap_or_else(|| {
            let w = self.at_work.load(Relaxed);
            (w & ((1 << WORKER_SHIFT) - 1), w >> WORKER_SHIFT)
        });
        let submitted = self.submitted.load(Relaxed).max(done);
        // Counters read one by one: a task may be counted both done and running for a
        // moment, never a negative queue.
        let running = running.min(submitted - done);
        // A busy worker holds a task without an outcome: none once every task has one (a
        // thread still stuck in a task that timed out is no longer the pool's worker).
        let busy_workers = busy_workers.min(running);
        PoolStats {
            submitted,
            running,
            queued: submitted - done - running,
            done,
            succeeded,
            failed,
            retried: self.retried.load(Relaxed),
            workers_started: self.workers_started.load(Relaxed),
            workers_replaced: self.workers_replaced.load(Relaxed),
            busy_workers,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_classifies_failures_and_never_goes_negative() {
        let c = Counters::default();
        c.submitted(10);
        c.outcomes::<u8>(&[
            Ok(1),
            Err(TaskError::Cancelled { index: 1 }),
            Err(TaskError::Codec {
                message: "x".into(),
                index: 2,
            }),
        ]);
        c.job_started(1, 9);
        let s = c.snapshot(None);
        assert_eq!((s.done, s.succeeded), (3, 1));
        assert_eq!(
            (s.failed.cancelled, s.failed.other, s.failed.total()),
            (1, 1, 2)
        );
        // 9 said running, but only 7 are without an outcome.
        assert_eq!((s.running, s.queued, s.busy_workers), (7, 0, 1));
        c.job_ended(1, 9);
        let s = c.snapshot(Some((2, 1)));
        assert_eq!((s.running, s.queued, s.busy_workers), (2, 5, 1));
    }
}

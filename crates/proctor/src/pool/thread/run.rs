//! Running tasks on a worker thread: one task under the watchdog, a chunk, a panic caught
//! per task and turned into its error.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::WorkerCtx;
use crate::error::TaskError;

/// Runs one task on `ctx`'s worker and hands its outcome to `finish`, exactly once: under a
/// `limit` the watchdog may give up on it first and hand over `TimedOut` instead. `task` is
/// its pool-wide id (the watchdog's key), `index` its item's index in its call (its error's).
pub(super) fn run_task<A, R, F, D>(
    ctx: &WorkerCtx,
    f: F,
    arg: A,
    task: u64,
    index: u64,
    limit: Option<Duration>,
    finish: D,
) where
    F: Fn(A) -> R,
    D: Fn(Result<R, TaskError>) + Send + Sync + 'static,
{
    let Some(limit) = limit else {
        finish(run_one(f, arg, ctx.id, index));
        return;
    };
    let finish = Arc::new(finish);
    let expiring = Arc::clone(&finish);
    let worker = ctx.id;
    ctx.shared.start_running(
        task,
        ctx,
        Box::new(move |after| {
            expiring(Err(TaskError::TimedOut {
                after,
                worker,
                index,
                attempts: 1,
            }))
        }),
    );
    let started = Instant::now();
    let outcome = run_one(f, arg, ctx.id, index);
    let after = started.elapsed();
    if !ctx.shared.finish_running(task) {
        // The watchdog gave up on it and delivered TimedOut.
        return;
    }
    // It overran but returned before the watchdog looked: TimedOut all the same.
    if after >= limit {
        finish(Err(TaskError::TimedOut {
            after,
            worker,
            index,
            attempts: 1,
        }));
    } else {
        finish(outcome);
    }
}

/// The outcomes of `len` tasks that never ran, items `first_index..` of their call.
pub(super) fn cancelled<R>(first_index: u64, len: usize) -> Vec<Result<R, TaskError>> {
    (0..len as u64)
        .map(|k| {
            Err(TaskError::Cancelled {
                index: first_index + k,
            })
        })
        .collect()
}

/// A chunk's outcomes: the values alone while every task succeeds (no room for errors).
pub(super) enum ChunkOut<R> {
    Values(Vec<R>),
    Mixed(Vec<Result<R, TaskError>>),
}

/// Runs a chunk of a `map`'s items, `base..` in their call, catching each task's panic.
pub(super) fn run_chunk<A, R, F: Fn(A) -> R + Copy>(
    f: F,
    part: Vec<A>,
    worker: u32,
    base: u64,
) -> ChunkOut<R> {
    let mut values = Vec::with_capacity(part.len());
    let mut items = part.into_iter();
    for a in items.by_ref() {
        match catch_unwind(AssertUnwindSafe(|| f(a))) {
            Ok(v) => values.push(v),
            Err(payload) => {
                // A failure: from here on, outcomes with room for errors.
                let task = base + values.len() as u64;
                let mut mixed: Vec<Result<R, TaskError>> =
                    Vec::with_capacity(values.len() + items.len() + 1);
                mixed.extend(values.into_iter().map(Ok));
                mixed.push(Err(panicked(payload.as_ref(), worker, task)));
                for a in items {
                    let task = base + mixed.len() as u64;
                    mixed.push(run_one(f, a, worker, task));
                }
                return ChunkOut::Mixed(mixed);
            }
        }
    }
    ChunkOut::Values(values)
}

#[cold]
pub(super) fn panicked(payload: &(dyn std::any::Any + Send), worker: u32, task: u64) -> TaskError {
    let (message, location) = crate::panic::details(payload);
    TaskError::Panicked {
        message: message.into(),
        location: location.map(Into::into),
        worker,
        index: task,
        attempts: 1,
    }
}

pub(super) fn run_one<A, R, F: Fn(A) -> R>(
    f: F,
    a: A,
    worker: u32,
    task: u64,
) -> Result<R, TaskError> {
    catch_unwind(AssertUnwindSafe(|| f(a)))
        .map_err(|payload| panicked(payload.as_ref(), worker, task))
}

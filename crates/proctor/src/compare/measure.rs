//! One round of one mode, timed, and the crash input's probe: what [`CompareModes::run`]
//! repeats.
//!
//! [`CompareModes::run`]: super::CompareModes::run

use std::time::{Duration, Instant};

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{CRASH_TIMEOUT, Crash, CrashOutcome, MAX_TASKS_PER_ROUND, failure};
use crate::error::{Error, ErrorKind, TaskError};
use crate::pool::Pool;

/// One round of one mode.
pub(super) struct Round {
    /// Seconds per task (a pool's: wall × workers ÷ tasks).
    pub(super) per_task: f64,
    /// Tasks per second.
    pub(super) throughput: f64,
}

/// The first failed task of a `map`, as an error.
pub(super) fn all_ok<R>(outcomes: Vec<Result<R, TaskError>>) -> Result<usize, Error> {
    let n = outcomes.len();
    match outcomes.into_iter().find_map(Result::err) {
        Some(e) => Err(Error::new(ErrorKind::Task(e))),
        None => Ok(n),
    }
}

/// One round of `items` through `pool.map`, timed; the outcomes are dropped after the clock
/// stops, as the inline round drops its results.
pub(super) fn time_map<A, R, F>(
    pool: &Pool,
    f: F,
    items: Vec<A>,
    workers: usize,
) -> Result<Round, Error>
where
    F: Fn(A) -> R + Copy + Send + Sync + 'static,
    A: Serialize + DeserializeOwned + Send + 'static,
    R: Serialize + DeserializeOwned + Send + 'static,
{
    let n = items.len();
    let start = Instant::now();
    let outcomes = pool.map_unchecked(f, items);
    let wall = start.elapsed().as_secs_f64();
    all_ok(outcomes)?;
    Ok(Round {
        per_task: wall * workers as f64 / n as f64,
        throughput: n as f64 / wall,
    })
}

/// One round of the task alone on this thread.
pub(super) fn inline_round<A, R, F>(f: F, items: Vec<A>) -> Result<Round, Error>
where
    F: Fn(A) -> R,
{
    let n = items.len();
    let wall = inline_time(f, items)?.as_secs_f64();
    Ok(Round {
        per_task: wall / n as f64,
        throughput: n as f64 / wall,
    })
}

/// How long `f` takes over `items` on this thread, its results kept until the clock stops.
/// A panic (an input that passed through the thread pool, then panicked here) is an error.
pub(super) fn inline_time<A, R, F>(f: F, items: Vec<A>) -> Result<Duration, Error>
where
    F: Fn(A) -> R,
{
    let mut out = Vec::with_capacity(items.len());
    let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let start = Instant::now();
        for a in items {
            out.push(std::hint::black_box(f(a)));
        }
        start.elapsed()
    }));
    drop(out);
    ran.map_err(|payload| {
        let (message, _) = crate::panic::details(payload.as_ref());
        Error::invalid(format!(
            "a sample input's task panicked when run inline (after it succeeded in a thread \
             pool): {message}"
        ))
    })
}

/// Tasks per round: the sample inputs repeated until the task alone takes about
/// `round_time` (at least one pass), rounded up to a multiple of `workers`, at most
/// [`MAX_TASKS_PER_ROUND`] (rounded down to a multiple of `workers` where that allows).
pub(super) fn tasks_per_round(
    inputs: usize,
    pass: Duration,
    round_time: Duration,
    workers: usize,
) -> usize {
    let passes = if pass.is_zero() {
        u64::MAX
    } else {
        (round_time.as_nanos() / pass.as_nanos()).max(1) as u64
    };
    let tasks = (inputs as u64)
        .saturating_mul(passes)
        .min(MAX_TASKS_PER_ROUND as u64) as usize;
    let tasks = tasks.max(inputs.min(MAX_TASKS_PER_ROUND));
    let rounded = tasks.div_ceil(workers) * workers;
    if rounded > MAX_TASKS_PER_ROUND && tasks >= workers {
        tasks / workers * workers
    } else {
        rounded
    }
}

/// Runs the crash input in a worker process of its own pool, then on a thread if it only
/// panicked there.
pub(super) fn probe_crash<A, R, F>(f: F, bad: A, good: A, threads: &Pool) -> Result<Crash, Error>
where
    F: Fn(A) -> R + Copy + Send + Sync + 'static,
    A: Serialize + DeserializeOwned + Clone + Send + 'static,
    R: Serialize + DeserializeOwned + Send + 'static,
{
    let pool = Pool::processes(1)
        .forward_stderr(false)
        .task_timeout(CRASH_TIMEOUT)
        .build()?;
    let processes = run_crash(&pool, f, bad.clone(), good.clone());
    pool.shutdown();
    let threads = match &processes {
        CrashOutcome::Contained { error, .. } if error.is_panicked() => {
            run_crash(threads, f, bad, good)
        }
        CrashOutcome::Contained { error, .. } if error.is_timed_out() => CrashOutcome::NotRun {
            why: "a thread cannot be stopped: it would run on, leaked (the pool's contract)"
                .to_string(),
        },
        CrashOutcome::Contained { error, .. } => CrashOutcome::NotRun {
            why: format!(
                "{} would end this program (a thread catches only a panic)",
                failure(error)
            ),
        },
        CrashOutcome::NoFailure => CrashOutcome::NoFailure,
        other => other.clone(),
    };
    Ok(Crash { threads, processes })
}

pub(super) fn run_crash<A, R, F>(pool: &Pool, f: F, bad: A, good: A) -> CrashOutcome
where
    F: Fn(A) -> R + Copy + Send + Sync + 'static,
    A: Serialize + DeserializeOwned + Send + 'static,
    R: Serialize + DeserializeOwned + Send + 'static,
{
    match pool.submit_unchecked(f, bad).join() {
        Ok(_) => CrashOutcome::NoFailure,
        Err(error) => CrashOutcome::Contained {
            error,
            pool_went_on: pool.submit_unchecked(f, good).join().is_ok(),
        },
    }
}

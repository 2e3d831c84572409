//! Threads or processes for *your* function: [`compare_modes`] runs it in both modes on this
//! machine and says what processes cost here, per task, in throughput and in memory, and what
//! a crash does in each.
//!
//! ```standalone_crate
//! fn checksum(n: u64) -> u64 {
//!     (0..20_000u64).fold(n, |acc, i| acc.rotate_left(5) ^ i.wrapping_mul(0x9e37_79b9))
//! }
//!
//! fn main() -> Result<(), proctor::Error> {
//!     proctor::init(); // first line of main: process mode needs the fork server
//!     let cmp = proctor::CompareModes::new(checksum, 0..64u64)
//!         .workers(2)
//!         .round_time(std::time::Duration::from_millis(20))
//!         .run()?;
//!     // "processes cost +4.2 % per task here (52.1 µs vs 50.0 µs in threads: no clear
//!     // difference); an abort or segfault is contained in a process and ends the program
//!     // in a thread (the pool's contract)"
//!     let verdict = cmp.to_string();
//!     assert!(verdict.starts_with("processes cost "));
//!     assert!(cmp.processes.per_task >= cmp.inline.per_task / 2);
//!     Ok(())
//! }
//! ```
//!
//! # Method
//!
//! The same lab rules as the `proctor` report: warm up, repeat, report medians of independent
//! rounds with their range, and call two figures different only when they clear ±10 % *and*
//! their rounds' ranges do not overlap.
//!
//! 1. Both pools are built (the process pool first: without [`crate::init`] that is the
//!    error, before anything runs). The sample inputs go once through the thread pool (a
//!    failing input is an error here, not a panic of the caller), then once through the
//!    task inline, which sizes a round: the inputs repeated until the task alone takes
//!    about [`CompareModes::round_time`], rounded up to a multiple of the workers so that
//!    each worker can get the same number of tasks.
//! 2. One warm-up round per mode, then [`CompareModes::rounds`] rounds (5 by default, at
//!    least 3), each running the same items inline on the calling thread, through
//!    [`Pool::map`] on the thread pool and on the process pool, in an order that rotates
//!    from round to round so that a drift of the machine's load falls on all three alike.
//! 3. Per-task time of a pool is the round's wall time × workers ÷ tasks: the time one
//!    worker spends per task, overhead included, comparable with the task's own time inline.
//!    Throughput is tasks ÷ wall time. Each figure is the median of the rounds.
//! 4. Memory per worker: in process mode, each worker process's `Rss`, `Pss` and private
//!    pages from `/proc/<pid>/smaps_rollup` ([`Pool::worker_pids`]) and its page tables
//!    (`VmPTE` of `/proc/<pid>/status`), averaged over the workers, read after the rounds;
//!    in thread mode, how much this program's own `Rss` grew from before the thread pool
//!    was built to after one pass of the sample inputs through it, divided by the workers
//!    (stacks touched, the allocator's per-thread arenas, what the tasks kept). The rounds'
//!    items are made later, so their copies are not counted as threads' memory. Kernel
//!    stacks (16 KiB a thread, whether of a worker process or a worker thread, on x86-64)
//!    are in neither figure.
//! 5. A crash: with [`CompareModes::crash_input`], that input runs once in a fresh worker
//!    process of its own pool (its stderr kept off the terminal, a 10 s timeout), then one
//!    sample input on the same pool to show whether it went on. Only if it merely panicked
//!    is it also run on a thread (a panic is caught there); an abort, a segfault or an
//!    `exit` would end this program, so it is not run on a thread, and the outcome says so.
//!    Without a crash input the verdict states the pool's contract instead.
//!
//! The task must end: an input that hangs hangs the comparison (except the crash input).

use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, TaskError};
use crate::pool::{Mode, Pool};

mod measure;
mod memory;
mod text;

use measure::{Round, all_ok, inline_round, inline_time, probe_crash, tasks_per_round, time_map};
use text::{bytes, grouped, range, rate, signed_percent, signed_time, time};

/// Two figures differ clearly only past this ratio either way (the lab's ±10 %).
const TOLERANCE: f64 = 0.10;

/// The most tasks one round holds, however cheap the task.
const MAX_TASKS_PER_ROUND: usize = 250_000;

/// How long the crash input may run before it is stopped.
const CRASH_TIMEOUT: Duration = Duration::from_secs(10);

/// Measures `f` over `inputs` in thread mode and in process mode with the defaults of
/// [`CompareModes`] (one worker per CPU, 5 rounds of about 100 ms of work each).
///
/// [`crate::init`] must have run (process mode needs the fork server). See the
/// [module docs](crate::compare) for the method.
///
/// # Errors
///
/// No inputs; an input whose task fails (an [`Error`] holding its [`TaskError`]); a pool
/// that could not be built (process mode unsupported here, or `init` not called).
pub fn compare_modes<A, R, F>(
    f: F,
    inputs: impl IntoIterator<Item = A>,
) -> Result<ModeComparison, Error>
where
    F: Fn(A) -> R + Copy + Send + Sync + 'static,
    A: Serialize + DeserializeOwned + Clone + Send + 'static,
    R: Serialize + DeserializeOwned + Send + 'static,
{
    crate::pool::plain_fn!(F);
    CompareModes::unchecked(f, inputs).run()
}

/// Configures a comparison of one task in thread mode and in process mode; [`run`] measures.
///
/// The task obeys a pool's rules, since it runs in both pools: a plain `fn` or a closure that
/// captures nothing, with serde arguments and results.
///
/// ```compile_fail
/// let offset = 3u64;
/// let _ = proctor::CompareModes::new(move |n: u64| n + offset, vec![1, 2]).run();
/// ```
///
/// [`run`]: CompareModes::run
#[must_use = "a comparison measures nothing until .run() is called"]
pub struct CompareModes<A, R, F> {
    f: F,
    inputs: Vec<A>,
    workers: usize,
    rounds: usize,
    round_time: Duration,
    crash_input: Option<A>,
    _result: PhantomData<fn() -> R>,
}

impl<A, R, F> fmt::Debug for CompareModes<A, R, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CompareModes")
            .field("task", &std::any::type_name::<F>())
            .field("inputs", &self.inputs.len())
            .field("workers", &self.workers)
            .field("rounds", &self.rounds)
            .field("round_time", &self.round_time)
            .field("crash_input", &self.crash_input.is_some())
            .finish()
    }
}

impl<A, R, F> CompareModes<A, R, F>
where
    F: Fn(A) -> R + Copy + Send + Sync + 'static,
    A: Serialize + DeserializeOwned + Clone + Send + 'static,
    R: Serialize + DeserializeOwned + Send + 'static,
{
    /// A comparison of `f` over the sample `inputs`: one worker per CPU, 5 rounds, each
    /// about 100 ms of the task's own work.
    ///
    /// Like a pool's task, `f` is a plain `fn` or a closure that captures nothing. The inputs
    /// should be typical of the real work: they are repeated to fill a round, so a few
    /// dozen are enough.
    pub fn new(f: F, inputs: impl IntoIterator<Item = A>) -> Self {
        crate::pool::plain_fn!(F);
        Self::unchecked(f, inputs)
    }

    /// [`CompareModes::new`] for a task type its caller has checked: the check is in each
    /// public entry point only, so a bad type is one error at the user's call.
    fn unchecked(f: F, inputs: impl IntoIterator<Item = A>) -> Self {
        let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
        CompareModes {
            f,
            inputs: inputs.into_iter().collect(),
            workers,
            rounds: 5,
            round_time: Duration::from_millis(100),
            crash_input: None,
            _result: PhantomData,
        }
    }

    /// How many workers each pool has (one per CPU by default).
    pub fn workers(mut self, n: usize) -> Self {
        self.workers = n;
        self
    }

    /// How many measured rounds, after a warm-up round (5 by default; at least 3, so that a
    /// median means something).
    pub fn rounds(mut self, n: usize) -> Self {
        self.rounds = n;
        self
    }

    /// About how long the task alone runs over one round's items (100 ms by default): the
    /// sample inputs are repeated until they take this long inline, at most 250 000 tasks.
    pub fn round_time(mut self, d: Duration) -> Self {
        self.round_time = d;
        self
    }

    /// An input on which the task fails (panics, aborts, segfaults, exits...), to see what
    /// each mode does with it. It runs first in a worker process, where whatever it does is
    /// contained, and on a thread only if that showed a plain panic.
    pub fn crash_input(mut self, input: A) -> Self {
        self.crash_input = Some(input);
        self
    }

    /// Measures the task in both modes.
    ///
    /// # Errors
    ///
    /// An invalid setting (no inputs, zero workers, fewer than 3 rounds, a zero round
    /// time); a sample input whose task fails in either mode (an [`Error`] of kind
    /// [`ErrorKind::Task`](crate::ErrorKind::Task) holding its [`TaskError`]); a pool that could not be built.
    pub fn run(self) -> Result<ModeComparison, Error> {
        self.validate()?;
        let CompareModes {
            f,
            inputs,
            workers,
            rounds,
            round_time,
            crash_input,
            ..
        } = self;

        // The process pool first, so that a program without `init()` (or not on Linux)
        // learns it before anything is measured, and so that its own mappings here are
        // already in place when the thread pool is measured by what this program grows by.
        let processes = Pool::processes(workers).build()?;
        let rss_before = memory::own_rss();
        let threads = Pool::threads(workers).build()?;
        all_ok(threads.map_unchecked(f, inputs.clone()))?;
        let thread_growth_bytes = match (rss_before, memory::own_rss()) {
            (Some(before), Some(after)) => Some(after.saturating_sub(before) / workers as u64),
            _ => None,
        };
        let inline_pass = inline_time(f, inputs.clone())?;
        let tasks = tasks_per_round(inputs.len(), inline_pass, round_time, workers);
        let items = || {
            inputs
                .iter()
                .cycle()
                .take(tasks)
                .cloned()
                .collect::<Vec<A>>()
        };
        time_map(&threads, f, items(), workers)?;
        time_map(&processes, f, items(), workers)?;

        let mut per_mode: [Vec<Round>; 3] = Default::default();
        for r in 0..rounds {
            for k in 0..3 {
                let which = (r + k) % 3;
                let round = match which {
                    0 => inline_round(f, items())?,
                    1 => time_map(&threads, f, items(), workers)?,
                    _ => time_map(&processes, f, items(), workers)?,
                };
                per_mode[which].push(round);
            }
        }
        let [inline, in_threads, in_processes] = per_mode.map(|rounds| Timing::of(&rounds));

        let per_worker = memory::workers(&processes.worker_pids());
        let memory = Memory {
            thread_growth_bytes,
            process_rss_bytes: per_worker.map(|m| m.rss),
            process_pss_bytes: per_worker.map(|m| m.pss),
            process_private_bytes: per_worker.map(|m| m.private),
            process_page_tables_bytes: per_worker.map(|m| m.page_tables),
        };
        processes.shutdown();

        let crash = match crash_input {
            Some(bad) => probe_crash(f, bad, inputs[0].clone(), &threads)?,
            None => Crash {
                threads: CrashOutcome::NotTried,
                processes: CrashOutcome::NotTried,
            },
        };
        threads.shutdown();

        Ok(ModeComparison {
            workers,
            tasks_per_round: tasks,
            rounds,
            inline,
            threads: in_threads,
            processes: in_processes,
            memory,
            crash,
        })
    }

    fn validate(&self) -> Result<(), Error> {
        if self.inputs.is_empty() {
            return Err(Error::invalid(
                "compare_modes needs at least one sample input",
            ));
        }
        if self.workers == 0 {
            return Err(Error::invalid(
                "compare_modes needs at least one worker, got workers(0)",
            ));
        }
        if self.rounds < 3 {
            return Err(Error::invalid(format!(
                "compare_modes needs at least 3 rounds for a median, got rounds({})",
                self.rounds
            )));
        }
        if self.round_time.is_zero() {
            return Err(Error::invalid("round_time must be longer than zero"));
        }
        Ok(())
    }
}

/// What [`compare_modes`] measured: the task's per-task time and throughput alone, in
/// threads and in processes, memory per worker, and what a crash did.
///
/// `Display` writes the verdict in one line, in the lab report's words: "processes cost
/// +3.4 % per task here (12.1 µs vs 11.7 µs in threads: no clear difference); an abort or
/// segfault is contained in a process and ends the program in a thread (the pool's
/// contract)". The alternate form (`{:#}`) adds the figures behind it: a table of the
/// per-task times, their rounds' range, the overhead over the task alone and the throughput
/// of each mode, memory per worker, and the crash input's outcomes, in lines that fit an
/// 80-column terminal (the pool's own sentence for a crash aside).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ModeComparison {
    /// Workers in each pool.
    pub workers: usize,
    /// Tasks in each round (the sample inputs, repeated).
    pub tasks_per_round: usize,
    /// Measured rounds per mode (after one warm-up round).
    pub rounds: usize,
    /// The task alone, run inline on the calling thread: its own time.
    pub inline: Timing,
    /// The task through [`Pool::map`] on a thread pool.
    pub threads: Timing,
    /// The task through [`Pool::map`] on a process pool.
    pub processes: Timing,
    /// Memory per worker in each mode.
    pub memory: Memory,
    /// What the crash input did in each mode.
    pub crash: Crash,
}

impl ModeComparison {
    /// The figures of one mode.
    pub fn timing(&self, mode: Mode) -> &Timing {
        match mode {
            Mode::Threads => &self.threads,
            Mode::Processes => &self.processes,
        }
    }

    /// Per-task time in processes ÷ per-task time in threads (medians).
    pub fn process_cost_ratio(&self) -> f64 {
        secs(self.processes.per_task) / secs(self.threads.per_task)
    }

    /// What a pool of `mode` adds to each task, over the task's own time inline (zero where
    /// the pool's median came out below the inline one, which is noise).
    pub fn overhead(&self, mode: Mode) -> Duration {
        self.timing(mode)
            .per_task
            .saturating_sub(self.inline.per_task)
    }

    /// Whether processes cost clearly more per task than threads, clearly less, or neither:
    /// clearly only past ±10 % and with the two modes' round ranges apart.
    pub fn difference(&self) -> Difference {
        Difference::between(&self.processes, &self.threads)
    }

    /// The signed difference of `mode`'s per-task time from the task alone.
    fn overhead_words(&self, mode: Mode) -> String {
        signed_time(secs(self.timing(mode).per_task) - secs(self.inline.per_task))
    }

    /// The one-line verdict (what `Display` writes).
    fn verdict(&self) -> String {
        let pct = (self.process_cost_ratio() - 1.0) * 100.0;
        format!(
            "processes cost {} per task here ({} vs {} in threads: {}); {}",
            signed_percent(pct),
            time(self.processes.per_task),
            time(self.threads.per_task),
            self.difference().words(),
            self.crash.words(),
        )
    }
}

impl fmt::Display for ModeComparison {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.verdict())?;
        if !f.alternate() {
            return Ok(());
        }
        // The lines under the verdict fit an 80-column terminal (the crash input's own
        // error sentence aside).
        writeln!(f)?;
        writeln!(
            f,
            "{} workers, median of {} rounds of {} tasks:",
            self.workers,
            self.rounds,
            grouped(self.tasks_per_round)
        )?;
        writeln!(
            f,
            "  {:<14}{:>10}  {:<18}{:>11}{:>11}",
            "", "per task", "rounds' range", "overhead", "tasks/s"
        )?;
        let rows = [
            ("the task alone", &self.inline, String::new()),
            ("threads", &self.threads, self.overhead_words(Mode::Threads)),
            (
                "processes",
                &self.processes,
                self.overhead_words(Mode::Processes),
            ),
        ];
        for (what, t, overhead) in rows {
            writeln!(
                f,
                "  {what:<14}{:>10}  {:<18}{overhead:>11}{:>11}",
                time(t.per_task),
                range(t),
                rate(t.throughput),
            )?;
        }
        write!(f, "memory per worker:\n{}", self.memory.lines())?;
        if let Some(lines) = self.crash.detail() {
            write!(f, "\n{lines}")?;
        }
        Ok(())
    }
}

/// One mode's figures: medians of the rounds, with the rounds' range.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct Timing {
    /// Per-task time, the median round's: wall time × workers ÷ tasks (inline: wall time ÷
    /// tasks).
    pub per_task: Duration,
    /// The fastest round's per-task time.
    pub per_task_min: Duration,
    /// The slowest round's per-task time.
    pub per_task_max: Duration,
    /// Tasks per second, the median round's (inline: on the calling thread alone).
    pub throughput: f64,
}

impl Timing {
    fn of(rounds: &[Round]) -> Timing {
        let mut per_task: Vec<f64> = rounds.iter().map(|r| r.per_task).collect();
        let mut rates: Vec<f64> = rounds.iter().map(|r| r.throughput).collect();
        per_task.sort_by(f64::total_cmp);
        rates.sort_by(f64::total_cmp);
        let d = Duration::from_secs_f64;
        Timing {
            per_task: d(median(&per_task)),
            per_task_min: d(per_task[0]),
            per_task_max: d(per_task[per_task.len() - 1]),
            throughput: median(&rates),
        }
    }
}

/// Processes against threads, per task, decided as the lab decides a cost claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Difference {
    /// Processes cost more than 10 % more per task, and no round of the two overlaps.
    ClearlyMore,
    /// Processes cost more than 10 % less per task, and no round of the two overlaps.
    ClearlyLess,
    /// Within ±10 %, or the two modes' round ranges overlap.
    NoClearDifference,
}

impl Difference {
    fn between(costly: &Timing, cheap: &Timing) -> Difference {
        let ratio = secs(costly.per_task) / secs(cheap.per_task);
        let overlap =
            costly.per_task_min <= cheap.per_task_max && cheap.per_task_min <= costly.per_task_max;
        if !ratio.is_finite() || overlap {
            Difference::NoClearDifference
        } else if ratio > 1.0 + TOLERANCE {
            Difference::ClearlyMore
        } else if ratio < 1.0 / (1.0 + TOLERANCE) {
            Difference::ClearlyLess
        } else {
            Difference::NoClearDifference
        }
    }

    /// The lab report's words for it.
    pub fn words(self) -> &'static str {
        match self {
            Difference::ClearlyMore => "clearly more",
            Difference::ClearlyLess => "clearly less",
            Difference::NoClearDifference => "no clear difference",
        }
    }
}

/// Memory per worker, in bytes; `None` where `/proc` could not be read (or not on Linux).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Memory {
    /// How much this program's resident memory grew per worker thread, from before the
    /// thread pool was built to after one pass of the sample inputs through it (stacks
    /// touched, the allocator's per-thread arenas, what the tasks kept).
    pub thread_growth_bytes: Option<u64>,
    /// A worker process's resident memory, shared pages counted in full (mean of the
    /// workers).
    pub process_rss_bytes: Option<u64>,
    /// A worker process's proportional share of memory: each shared page divided among the
    /// processes that map it (mean of the workers). The fairest one figure for a process.
    pub process_pss_bytes: Option<u64>,
    /// A worker process's private pages, what it alone holds (mean of the workers).
    pub process_private_bytes: Option<u64>,
    /// A worker process's page tables (`VmPTE`), which no page count includes (mean of the
    /// workers). A thread shares its process's.
    pub process_page_tables_bytes: Option<u64>,
}

impl Memory {
    /// Two lines, a process's and a thread's.
    fn lines(&self) -> String {
        let process = match (
            self.process_pss_bytes,
            self.process_rss_bytes,
            self.process_private_bytes,
            self.process_page_tables_bytes,
        ) {
            (Some(pss), Some(rss), Some(private), Some(pte)) => format!(
                "{} PSS (RSS {}, private {}, page tables {})",
                bytes(pss),
                bytes(rss),
                bytes(private),
                bytes(pte)
            ),
            _ => "unknown (/proc unreadable)".to_string(),
        };
        let thread = match self.thread_growth_bytes {
            Some(b) => format!("{} (this program's RSS growth, per thread)", bytes(b)),
            None => "unknown (/proc unreadable)".to_string(),
        };
        format!("  a process  {process}\n  a thread   {thread}")
    }
}

/// What the crash input did in each mode.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Crash {
    /// On a thread (run only if the process run showed a plain panic).
    pub threads: CrashOutcome,
    /// In a worker process.
    pub processes: CrashOutcome,
}

/// What one mode did with the crash input.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum CrashOutcome {
    /// No crash input was given.
    NotTried,
    /// The crash input's task succeeded: it did not fail.
    NoFailure,
    /// The task failed with `error`, and the pool ran the next task (`pool_went_on`) or not.
    Contained {
        /// What the pool reported for the task.
        error: TaskError,
        /// Whether a sample input ran on the same pool afterwards.
        pool_went_on: bool,
    },
    /// Not run in this mode, and why: what it would do here, from what the process run
    /// showed and the pool's contract.
    NotRun {
        /// Why, in the report's words ("SIGABRT would end this program (...)").
        why: String,
    },
}

impl Crash {
    /// The verdict's clause on crashes.
    fn words(&self) -> String {
        use CrashOutcome::*;
        match (&self.processes, &self.threads) {
            (NotTried, _) => "an abort or segfault is contained in a process and ends the \
                              program in a thread (the pool's contract)"
                .to_string(),
            (NoFailure, _) => "the crash input did not fail".to_string(),
            (Contained { error, .. }, Contained { .. }) if error.is_panicked() => {
                "the crash input's panic is caught in both modes".to_string()
            }
            (Contained { error, .. }, NotRun { .. }) if error.is_timed_out() => {
                "the crash input hangs: a process is stopped, a thread would leak".to_string()
            }
            (Contained { error, .. }, NotRun { .. }) => format!(
                "the crash input ({}) is contained in a process and would end the program \
                 in a thread",
                failure(error)
            ),
            (Contained { error, .. }, _) => {
                format!(
                    "the crash input ({}) is contained in a process",
                    failure(error)
                )
            }
            (NotRun { why }, _) => format!("the crash input was not run: {why}"),
        }
    }

    /// The crash lines of the alternate `Display`, when a crash input was given.
    fn detail(&self) -> Option<String> {
        if self.processes == CrashOutcome::NotTried {
            return None;
        }
        let line = |mode: &str, o: &CrashOutcome| match o {
            CrashOutcome::NotTried => format!("  {mode}: not tried"),
            CrashOutcome::NoFailure => format!("  {mode}: the task succeeded"),
            CrashOutcome::Contained {
                error,
                pool_went_on,
            } => format!(
                "  {mode}: {}\n    {error}",
                if *pool_went_on {
                    "the pool went on after"
                } else {
                    "the pool could not run the next task after"
                }
            ),
            CrashOutcome::NotRun { why } => format!("  {mode}: not run: {why}"),
        };
        Some(format!(
            "the crash input:\n{}\n{}",
            line("in a process", &self.processes),
            line("on a thread", &self.threads)
        ))
    }
}

/// "SIGABRT (abort)", "a panic", "exit code 3": how a task failed, in a few words.
fn failure(e: &TaskError) -> String {
    match e {
        TaskError::Panicked { .. } => "a panic".to_string(),
        TaskError::Crashed {
            signal: Some(sig), ..
        } => {
            // "SIGABRT (abort)" → "SIGABRT": the verdict puts it in brackets already.
            let sig = crate::error::signal_description(*sig);
            sig.split(" (").next().unwrap_or(&sig).to_string()
        }
        TaskError::Crashed {
            exit_code: Some(code),
            ..
        } => format!("exit code {code}"),
        TaskError::Crashed { .. } => "a crash".to_string(),
        TaskError::TimedOut { .. } => "a hang".to_string(),
        TaskError::OutOfMemory { .. } => "out of memory".to_string(),
        _ => "a failure".to_string(),
    }
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

fn median(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

#[cfg(test)]
mod tests;

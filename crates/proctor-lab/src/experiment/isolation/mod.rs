//! `isolation`: what one faulty task does to a pool of threads and to a pool of processes.
//!
//! A fault matrix: panic, `abort()`, a null-pointer read (segfault), a stack overflow, running out
//! of memory under a limit, a hang past the pool's timeout and `exit(3)`, each injected into one
//! task of a batch whose other tasks are fine, once on a process pool and once on a thread pool.
//! The same task function runs in both modes; only the word passed to [`Pool::builder`] differs.
//!
//! A thread-mode fault that kills the whole program (everything but a panic and a hang) must
//! not kill the lab, so every thread-mode cell runs inside a *sacrificial child process*: a
//! one-worker process pool whose single task builds the thread pool and runs the cell. When the
//! fault takes the whole program down, that outer pool reports the worker's death
//! ([`TaskError::Crashed`] with its signal or exit code): "whole program died (SIGABRT)". The
//! child is an ordinary proctor worker, a copy of this program, so no re-execution and no
//! hidden command-line hook is needed; the outer pool's memory limit doubles as the
//! `RLIMIT_DATA` of the whole thread-mode program, the limit that makes the OOM fault fail.
//!
//! This file is long because the fault matrix needs its own machinery: the faulty task and
//! its injections, and every thread-mode cell run inside a sacrificial child process, with
//! the pipe protocol that brings its result back and the search for leftover processes.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use proctor::{Mode, Pool, TaskError};
use serde::{Deserialize, Serialize};

use super::{Experiment, Worker};
use crate::report::{Chart, ChartKind, Figure, Profile, Section, Series, Table, Unit};
use crate::stats::median_and_spread as summarize;
use crate::units::micros_or_millis;
use crate::verdict::keys;
use crate::{LabConfig, Progress};

mod section;
use section::section_from;

/// The fault-isolation experiment.
#[derive(Debug, Clone, Copy, Default)]
pub struct Isolation;

/// A way for a task to fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fault {
    /// `panic!`: unwinds, caught per task in both modes.
    Panic,
    /// `std::process::abort()`: SIGABRT.
    Abort,
    /// A read through a dangling (non-null, aligned) pointer into the unmapped first page.
    Segfault,
    /// Unbounded recursion into the guard page.
    StackOverflow,
    /// An allocation past `RLIMIT_DATA`: the allocator fails and Rust aborts.
    Oom,
    /// A sleep far past the pool's `task_timeout`.
    Timeout,
    /// `std::process::exit(3)` in the middle of the task.
    Exit,
}

impl Fault {
    const ALL: [Fault; 7] = [
        Fault::Panic,
        Fault::Abort,
        Fault::Segfault,
        Fault::StackOverflow,
        Fault::Oom,
        Fault::Timeout,
        Fault::Exit,
    ];

    /// The key fragment: `isolation.completed.process.<name>`.
    pub fn name(self) -> &'static str {
        match self {
            Fault::Panic => "panic",
            Fault::Abort => "abort",
            Fault::Segfault => "segfault",
            Fault::StackOverflow => "stack_overflow",
            Fault::Oom => "oom",
            Fault::Timeout => "timeout",
            Fault::Exit => "exit",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Fault::Panic => "panic",
            Fault::Abort => "abort()",
            Fault::Segfault => "null-pointer read",
            Fault::StackOverflow => "stack overflow",
            Fault::Oom => "out of memory",
            Fault::Timeout => "hang past timeout",
            Fault::Exit => "exit(3)",
        }
    }
}

/// The kinds of pool the matrix runs, in report order.
const SIDES: [Worker; 2] = [Worker::Process, Worker::Thread];

/// The sizes and limits of one run; travels to the sacrificial child with each thread cell.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Plan {
    /// Tasks per batch, one of them the fault.
    pub batch: usize,
    /// Where in the batch the faulty task sits.
    pub fault_index: usize,
    /// Workers of the pool that runs the batch.
    pub workers: usize,
    /// The pool's `task_timeout`.
    pub timeout_ns: u64,
    /// How long the hanging task sleeps (far past the timeout).
    pub hang_ns: u64,
    /// `RLIMIT_DATA` of each worker process (process mode) or of the whole sacrificial program
    /// (thread mode).
    pub memory_limit_bytes: u64,
    /// What the OOM task asks for, past the limit. Never touched, so without a limit the
    /// allocation would simply succeed.
    pub oom_alloc_bytes: u64,
    /// Fault-then-probe repetitions on the one-worker recovery pool.
    pub recovery_reps: usize,
    /// Size of a fine task's work (a sum of squares).
    pub work: u64,
}

/// What a task does.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
enum Job {
    Work(u64),
    Fail {
        fault: Fault,
        hang_ns: u64,
        alloc_bytes: u64,
        /// Silence this process's stderr first (the repeated faults of the recovery probe: the
        /// batch's fault already showed what a crash prints).
        quiet: bool,
    },
}

/// The one task function of the experiment, the same in both modes.
fn task(job: Job) -> u64 {
    match job {
        Job::Work(n) => work(n),
        Job::Fail {
            fault,
            hang_ns,
            alloc_bytes,
            quiet,
        } => {
            if quiet {
                silence_stderr();
            }
            inject(fault, Duration::from_nanos(hang_ns), alloc_bytes)
        }
    }
}

fn work(n: u64) -> u64 {
    (0..std::hint::black_box(n)).fold(0u64, |acc, i| acc.wrapping_add(i.wrapping_mul(i)))
}

fn inject(fault: Fault, hang: Duration, alloc_bytes: u64) -> u64 {
    if !matches!(fault, Fault::Panic | Fault::Timeout) {
        no_core_dump();
    }
    match fault {
        Fault::Panic => panic!("deliberate panic (isolation experiment)"),
        Fault::Abort => std::process::abort(),
        Fault::Segfault => {
            // A dangling pointer is aligned and non-null, so no debug assertion fires first,
            // and it points into the first page, which is never mapped: the read faults.
            let p = std::ptr::dangling::<u64>();
            // SAFETY: not safe at all, deliberately: the point is the SIGSEGV. This only runs
            // in a worker process or in the sacrificial child, never in the lab itself.
            unsafe { p.read_volatile() }
        }
        Fault::StackOverflow => recurse(u64::MAX),
        Fault::Oom => {
            // `with_capacity` allocates without touching; past RLIMIT_DATA the allocator fails
            // and `handle_alloc_error` prints "memory allocation of N bytes failed" and aborts.
            let v = Vec::<u8>::with_capacity(alloc_bytes as usize);
            std::hint::black_box(&v).capacity() as u64
        }
        Fault::Timeout => {
            std::thread::sleep(hang);
            0
        }
        Fault::Exit => std::process::exit(3),
    }
}

/// Recursion that the compiler cannot turn into a loop: each frame keeps a live array.
fn recurse(depth: u64) -> u64 {
    let pad = std::hint::black_box([depth; 64]);
    if depth == 0 {
        pad[3]
    } else {
        recurse(depth - 1).wrapping_add(pad[7])
    }
}

/// Points this process's stderr at /dev/null. Only ever called in a worker process or in the
/// sacrificial child, which are thrown away after the cell.
fn silence_stderr() {
    if let Ok(null) = std::fs::OpenOptions::new().write(true).open("/dev/null") {
        let _ = nix::unistd::dup2_stderr(&null);
    }
}

/// A deliberate crash needs no core file: writing one (or piping it to a crash collector)
/// would only slow the measurement down. Affects the dying process alone.
fn no_core_dump() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((_, hard)) = getrlimit(Resource::RLIMIT_CORE) {
        let _ = setrlimit(Resource::RLIMIT_CORE, 0, hard);
    }
}

/// What one cell measured on a pool that was still there to measure.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CellOutcome {
    /// Tasks of the batch that returned their correct result.
    pub completed: usize,
    /// The faulty task's error (`Display`), or `None` if it returned a value after all.
    pub fault_error: Option<String>,
    /// Errors of tasks that should have been fine.
    pub other_errors: Vec<String>,
    /// The pool ran a small fault-free map after the batch, every task correct.
    pub pool_alive: bool,
    /// The same batch without the fault, on the same (warm) pool.
    pub baseline_ns: u64,
    /// The batch with the fault.
    pub batch_ns: u64,
    /// One fine task's round trip on the warm one-worker recovery pool before any fault
    /// (median of as many as the recovery repetitions).
    pub healthy_round_trip_ns: u64,
    /// Per repetition: from the faulty task's error being returned to the next task's result
    /// being returned, on the one-worker pool.
    pub recovery_ns: Vec<u64>,
    /// Why the recovery probe failed, if it did.
    pub recovery_error: Option<String>,
    /// Threads still alive in the program after both pools were shut down (thread mode only):
    /// timed-out threads cannot be killed.
    pub leaked_threads: Option<i64>,
}

/// One cell of the matrix: a fault on a kind of pool.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Cell {
    /// The kind of pool the cell ran on.
    pub side: Worker,
    /// The fault the cell injected.
    pub fault: Fault,
    /// "the lab process" or "a sacrificial child process".
    pub ran_in: String,
    /// The whole program died: "SIGABRT", "exit code 3" (thread mode only).
    pub program_death: Option<String>,
    /// The outer pool's report of that death.
    pub program_death_error: Option<String>,
    /// Present when the pool was still there to ask.
    pub outcome: Option<CellOutcome>,
    /// The cell could not run as planned (a pool failed to build, the child hung).
    pub error: Option<String>,
    /// Tasks of the batch that completed (0 when the program died: their results died with it).
    pub completed: usize,
    /// The pool survived and every other task of the batch completed.
    pub survived: bool,
}

/// Everything the experiment measured, for `Section::data`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IsolationResult {
    /// The sizes and limits of the run.
    pub plan: Plan,
    /// Every cell of the matrix, one per fault and kind of pool.
    pub cells: Vec<Cell>,
    /// Descendant processes of the lab that appeared during the experiment and were still
    /// there after it (expected: none).
    pub leftover_processes: Vec<u32>,
    /// Whether `/proc/<pid>/task/<tid>/children` could be read, so the check above means
    /// something (the kernel needs `CONFIG_PROC_CHILDREN`).
    pub leftover_check: bool,
}

fn ns(d: Duration) -> u64 {
    d.as_nanos().min(u64::MAX as u128) as u64
}

/// Runs one cell on a pool of `mode` in the current process. In thread mode, that is the
/// sacrificial child (see [`thread_cell_in_child`]).
fn run_cell(mode: Mode, plan: &Plan, fault: Fault) -> Result<CellOutcome, String> {
    let threads_before = (mode == Mode::Threads).then(thread_count).flatten();
    let builder = |workers| {
        let b = Pool::builder(mode, workers).task_timeout(Duration::from_nanos(plan.timeout_ns));
        match mode {
            // The crashes' stderr stays off the terminal; its end is in each TaskError.
            Mode::Processes => b
                .memory_limit(plan.memory_limit_bytes)
                .forward_stderr(false),
            Mode::Threads => b,
        }
    };
    let fail = Job::Fail {
        fault,
        hang_ns: plan.hang_ns,
        alloc_bytes: plan.oom_alloc_bytes,
        quiet: false,
    };
    let fail_quietly = Job::Fail {
        fault,
        hang_ns: plan.hang_ns,
        alloc_bytes: plan.oom_alloc_bytes,
        quiet: true,
    };
    let expected = work(plan.work);
    let fine = |n: usize| vec![Job::Work(plan.work); n];
    let all_fine = |out: &[Result<u64, TaskError>]| out.iter().all(|r| r.as_ref() == Ok(&expected));

    let pool = builder(plan.workers)
        .build()
        .map_err(|e| format!("build the {mode} pool: {e}"))?;
    let _ = pool.map(task, fine(plan.batch)); // warm-up
    let t = Instant::now();
    let _ = pool.map(task, fine(plan.batch));
    let baseline = t.elapsed();

    let mut batch = fine(plan.batch);
    batch[plan.fault_index] = fail;
    let t = Instant::now();
    let out = pool.map(task, batch);
    let batch_time = t.elapsed();
    let mut completed = 0;
    let mut fault_error = None;
    let mut other_errors = Vec::new();
    for (i, r) in out.iter().enumerate() {
        match r {
            Ok(v) if *v == expected && i != plan.fault_index => completed += 1,
            Ok(_) => {}
            Err(e) if i == plan.fault_index => fault_error = Some(e.to_string()),
            Err(e) => other_errors.push(e.to_string()),
        }
    }
    let pool_alive = all_fine(&pool.map(task, fine(plan.workers * 2)));
    pool.shutdown();

    // Recovery: on a one-worker pool the task after the fault must run on the worker that
    // replaced the faulty one (or on the same worker, if the fault did not take it down).
    let mut recovery_ns = Vec::new();
    let mut recovery_error = None;
    let recovery_pool = builder(1)
        .build()
        .map_err(|e| format!("build the one-worker {mode} pool: {e}"))?;
    let _ = recovery_pool.submit(task, Job::Work(plan.work)).join(); // warm-up
    let mut healthy_ns = Vec::new();
    for _ in 0..plan.recovery_reps.max(1) {
        let t = Instant::now();
        let healthy = recovery_pool.submit(task, Job::Work(plan.work)).join();
        healthy_ns.push(t.elapsed().as_nanos() as f64);
        if healthy != Ok(expected) {
            recovery_error = Some(format!("a fine task failed before any fault: {healthy:?}"));
        }
    }
    for _ in 0..plan.recovery_reps {
        if recovery_error.is_some() {
            break;
        }
        let failed = recovery_pool.submit(task, fail_quietly).join();
        let reported = Instant::now();
        let probe = recovery_pool.submit(task, Job::Work(plan.work)).join();
        let recovered = reported.elapsed();
        match (failed, probe) {
            (Err(_), Ok(v)) if v == expected => recovery_ns.push(ns(recovered)),
            (failed, probe) => {
                recovery_error = Some(format!(
                    "fault gave {failed:?}, the task after it gave {probe:?}"
                ));
            }
        }
    }
    recovery_pool.shutdown();

    let leaked_threads = threads_before.map(|before| {
        // Joined threads leave /proc/self/task a moment after `join` returns.
        let deadline = Instant::now() + Duration::from_millis(100);
        loop {
            let now = thread_count().unwrap_or(before);
            if now <= before || Instant::now() >= deadline {
                return now as i64 - before as i64;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    });
    Ok(CellOutcome {
        completed,
        fault_error,
        other_errors,
        pool_alive,
        baseline_ns: ns(baseline),
        batch_ns: ns(batch_time),
        healthy_round_trip_ns: summarize(&healthy_ns).0 as u64,
        recovery_ns,
        recovery_error,
        leaked_threads,
    })
}

/// The sacrificial child's task: run a thread-mode cell in this (worker) process. If the fault
/// kills the process, the outer pool sees the death; otherwise the outcome travels back.
fn thread_cell_in_child(request: (Plan, Fault)) -> Result<CellOutcome, String> {
    let (plan, fault) = request;
    run_cell(Mode::Threads, &plan, fault)
}

fn process_cell(plan: &Plan, fault: Fault) -> Cell {
    let mut cell = Cell {
        side: Worker::Process,
        fault,
        ran_in: "the lab process".to_string(),
        program_death: None,
        program_death_error: None,
        outcome: None,
        error: None,
        completed: 0,
        survived: false,
    };
    match run_cell(Mode::Processes, plan, fault) {
        Ok(o) => cell.set_outcome(o, plan),
        Err(e) => cell.error = Some(e),
    }
    cell
}

fn thread_cell(plan: &Plan, fault: Fault) -> Result<Cell> {
    let mut cell = Cell {
        side: Worker::Thread,
        fault,
        ran_in: "a sacrificial child process".to_string(),
        program_death: None,
        program_death_error: None,
        outcome: None,
        error: None,
        completed: 0,
        survived: false,
    };
    // Generous: the cell's own timeouts end every hang well before this.
    let guard = Duration::from_secs(30)
        + Duration::from_nanos(plan.timeout_ns) * (4 + plan.recovery_reps as u32);
    let child = Pool::processes(1)
        .memory_limit(plan.memory_limit_bytes)
        .task_timeout(guard)
        .forward_stderr(false)
        .build()
        .context("start the sacrificial child process for a thread-mode cell")?;
    match child
        .submit(thread_cell_in_child, (plan.clone(), fault))
        .join()
    {
        Ok(Ok(o)) => cell.set_outcome(o, plan),
        Ok(Err(e)) => cell.error = Some(e),
        Err(
            e @ TaskError::Crashed {
                signal, exit_code, ..
            },
        ) => {
            cell.program_death = Some(match (signal, exit_code) {
                (Some(sig), _) => signal_name(sig),
                (None, Some(code)) => format!("exit code {code}"),
                (None, None) => "vanished".to_string(),
            });
            cell.program_death_error = Some(e.to_string());
        }
        Err(e @ TaskError::OutOfMemory { .. }) => {
            cell.program_death = Some("out of memory (SIGABRT)".to_string());
            cell.program_death_error = Some(e.to_string());
        }
        Err(e) => cell.error = Some(format!("the sacrificial child process failed: {e}")),
    }
    child.shutdown();
    Ok(cell)
}

impl Cell {
    fn set_outcome(&mut self, o: CellOutcome, plan: &Plan) {
        self.completed = o.completed;
        self.survived = o.pool_alive && o.completed == plan.batch - 1;
        self.outcome = Some(o);
    }

    /// What the faulty task got, in words.
    fn verdict(&self) -> String {
        if let Some(death) = &self.program_death {
            return format!("whole program died ({death})");
        }
        if let Some(e) = &self.error {
            return format!("cell failed: {e}");
        }
        match self.outcome.as_ref().and_then(|o| o.fault_error.as_ref()) {
            Some(e) => e.clone(),
            None => "the faulty task returned a value".to_string(),
        }
    }

    fn recovery_median_ns(&self) -> Option<f64> {
        let o = self.outcome.as_ref()?;
        if o.recovery_ns.is_empty() {
            return None;
        }
        let xs: Vec<f64> = o.recovery_ns.iter().map(|&x| x as f64).collect();
        Some(summarize(&xs).0)
    }
}

fn signal_name(sig: i32) -> String {
    nix::sys::signal::Signal::try_from(sig)
        .map(|s| s.as_str().to_string())
        .unwrap_or_else(|_| format!("signal {sig}"))
}

/// This process's thread count.
fn thread_count() -> Option<usize> {
    crate::procfs::thread_count("self").map(|n| n as usize)
}

/// Every process below `pid`, from `/proc/<pid>/task/<tid>/children` (the fork server, its
/// workers, their children...).
fn descendants(pid: u32) -> BTreeSet<u32> {
    let mut found = BTreeSet::new();
    let mut stack = vec![pid];
    while let Some(p) = stack.pop() {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{p}/task")) else {
            continue;
        };
        for t in tasks.flatten() {
            let path = t.path().join("children");
            let Ok(list) = std::fs::read_to_string(path) else {
                continue;
            };
            for child in list.split_whitespace().filter_map(|c| c.parse().ok()) {
                if found.insert(child) {
                    stack.push(child);
                }
            }
        }
    }
    found
}

/// The descendants that appeared since `before` and are still there, after giving the fork
/// server a moment to reap the workers it just killed.
fn leftovers(before: &BTreeSet<u32>) -> Vec<u32> {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let new: Vec<u32> = descendants(std::process::id())
            .difference(before)
            .copied()
            .collect();
        if new.is_empty() || Instant::now() >= deadline {
            return new;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn plan_for(profile: Profile) -> Plan {
    let recovery_reps = match profile {
        Profile::Tiny => 1,
        Profile::Quick => 11,
        Profile::Full => 31,
    };
    Plan {
        batch: 8,
        fault_index: 3,
        workers: 2,
        timeout_ns: ns(Duration::from_millis(200)),
        // Far past the timeout, yet finite. Nothing waits for it: process mode kills the worker
        // at the timeout, and a thread abandoned in thread mode dies with the sacrificial child.
        hang_ns: ns(Duration::from_secs(10)),
        memory_limit_bytes: 256 << 20,
        oom_alloc_bytes: 1 << 30,
        recovery_reps,
        work: 10_000,
    }
}

impl Experiment for Isolation {
    fn id(&self) -> &'static str {
        "isolation"
    }

    fn title(&self) -> &'static str {
        "Fault isolation"
    }

    fn run(&self, config: &LabConfig, progress: &mut dyn Progress) -> Result<Section> {
        let started = Instant::now();
        let plan = plan_for(config.profile);
        // Every cell needs worker processes: fail early, and clearly, if there are none.
        Pool::processes(1)
            .build()
            .context("the isolation experiment runs its faults in worker processes")?
            .shutdown();
        let before = descendants(std::process::id());

        progress.begin("isolation", (SIDES.len() * Fault::ALL.len()) as u64);
        let mut cells = Vec::new();
        for side in SIDES {
            for fault in Fault::ALL {
                let cell = match side {
                    Worker::Process => process_cell(&plan, fault),
                    Worker::Thread => thread_cell(&plan, fault)?,
                };
                cells.push(cell);
                progress.advance(1, &format!("{} × {}", side.pool_mode(), fault.label()));
            }
        }
        progress.end();

        let result = IsolationResult {
            plan,
            cells,
            leftover_processes: leftovers(&before),
            leftover_check: std::fs::metadata(format!(
                "/proc/self/task/{}/children",
                std::process::id()
            ))
            .is_ok(),
        };
        let mut section = section_from(&result);
        section.elapsed_ms = started.elapsed().as_secs_f64() * 1e3;
        Ok(section)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn section_from_hand_made_cells() {
        let plan = plan_for(Profile::Tiny);
        let cells = SIDES
            .into_iter()
            .flat_map(|side| Fault::ALL.into_iter().map(move |fault| (side, fault)))
            .map(|(side, fault)| {
                // Threads contain only a panic; processes contain everything.
                let survived = side == Worker::Process || matches!(fault, Fault::Panic);
                Cell {
                    side,
                    fault,
                    ran_in: "the lab process".to_string(),
                    program_death: (!survived).then(|| "SIGABRT".to_string()),
                    program_death_error: None,
                    outcome: None,
                    error: None,
                    completed: if survived { plan.batch - 1 } else { 0 },
                    survived,
                }
            })
            .collect();
        let result = IsolationResult {
            plan,
            cells,
            leftover_processes: vec![],
            leftover_check: true,
        };
        let s = section_from(&result);
        let value = |k: &str| s.figure(k).map(|f| f.value);
        let kinds = Fault::ALL.len() as f64;
        assert_eq!(value("isolation.faults"), Some(kinds));
        assert_eq!(value("isolation.survived.process"), Some(kinds));
        assert_eq!(value("isolation.survived.thread"), Some(1.0));
        assert_eq!(
            value("isolation.whole_program_died.thread"),
            Some(kinds - 1.0)
        );
        assert_eq!(value("isolation.completed.thread.abort"), Some(0.0));
    }
}

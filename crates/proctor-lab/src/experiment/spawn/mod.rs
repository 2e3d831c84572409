//! `spawn`: creation overhead of a thread, a forked process, a `posix_spawn`ed program and an
//! async task, against the parent's resident memory (LAB-METHODS rules 6 and 7).
//!
//! **The interval** starts just before the create call and ends when the reap returns
//! (`join`, `waitpid`, `.await`): create + the child's first instruction + exit + reap. The
//! child's first instruction is its exit (or returning a value to `join`), and the reap checks
//! it ran: the join value or an exit status of 0. The first op of each kind is timed alone
//! and reported apart as the cold start.
//!
//! **Parent size**: before each row set, the parent allocates and touches a ballast (every
//! page written), so `fork` has that many more page-table entries to copy and the child's exit
//! that many to tear down. `posix_spawn` (glibc: `clone(CLONE_VM | CLONE_VFORK)` then `exec`)
//! and threads share the address space, so they should stay flat.
//!
//! **Pool worker**: `proctor::Pool::processes(1).build()`, one trivial task submitted and
//! joined, then the pool dropped, which kills and reaps the worker. The worker is forked by
//! the pool's fork server, a small process started before `main`, so its cost should not grow
//! with this parent's size. Without a fork server (`proctor::init()` did not run in time) the
//! row is skipped with a note.
//!
//! **Remote worker**: the same with `.remote(..)`: the command launcher runs
//! `/bin/sh -c 'exec <this binary>'`, which becomes an agent in `proctor::init()`, connects back
//! over loopback TCP (an authenticated handshake), forks the worker, whose own connection is
//! authenticated too; then one task and the drop, which closes the connections and waits for
//! the launched process to exit. The time from the start of `build()` to the first result is
//! reported apart, without the drop. ssh or `srun` in place of `/bin/sh` add their own
//! start cost, which this row does not measure.
//!
//! The forked child lives in a process that may have other threads (the test harness, a
//! progress bar), so it only calls `_exit`, which is async-signal-safe.

use std::ffi::CString;
use std::hint::black_box;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid, fork};
use serde::Serialize;

use crate::experiment::{Experiment, ROUNDS, median_round};
use crate::measure::{self, Measurement, Plan, Sampler, time_ops};
use crate::report::{Chart, ChartKind, Figure, Profile, Section, Series, Table, Unit};
use crate::stats::{self, Summary};
use crate::units::micros;
use crate::verdict::keys;
use crate::{LabConfig, Progress};

mod section;
use section::section;

/// The creation-overhead experiment.
#[derive(Debug, Clone, Copy, Default)]
pub struct Spawn;

const MIB: usize = 1 << 20;

/// The tiny program `posix_spawn` starts.
const TRUE_PATH: &str = "/bin/true";

/// What is created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
enum Method {
    Thread,
    Fork,
    PosixSpawn,
    TokioTask,
    /// A one-worker process pool: build, one task, drop.
    PoolWorker,
    /// The same with `StartMethod::Exec`: the worker re-executes this binary.
    PoolExec,
    /// The same with `.remote(..)`: an agent started through the command launcher on this
    /// host connects back over loopback TCP and forks the worker.
    PoolRemote,
}

impl Method {
    fn key(self) -> &'static str {
        match self {
            Method::Thread => "thread",
            Method::Fork => "fork",
            Method::PosixSpawn => "posix_spawn",
            Method::TokioTask => "async",
            Method::PoolWorker => "pool_worker",
            Method::PoolExec => "pool_exec",
            Method::PoolRemote => "pool_remote",
        }
    }

    /// Whether this is a row of the pool, which needs a fork server.
    fn is_pool(self) -> bool {
        matches!(
            self,
            Method::PoolWorker | Method::PoolExec | Method::PoolRemote
        )
    }

    fn label(self) -> &'static str {
        match self {
            Method::Thread => "thread spawn + join",
            Method::Fork => "fork + _exit + waitpid",
            Method::PosixSpawn => "posix_spawn(/bin/true) + waitpid",
            Method::TokioTask => "tokio task spawn + await (current-thread runtime)",
            Method::PoolWorker => {
                "Pool::processes(1).build + one task + drop (worker forked by the fork server)"
            }
            Method::PoolExec => {
                "the same with StartMethod::Exec (the worker re-executes this binary)"
            }
            Method::PoolRemote => {
                "the same with .remote(command launcher, loopback TCP) (an agent exec'd by /bin/sh -c)"
            }
        }
    }
}

/// The methods measured at every parent size; an async task does not depend on it, and a
/// remote worker (tens of ms an op) is measured at the smallest parent only, to keep the quick
/// profile short: its launcher is started by `std::process::Command` (`posix_spawn` or a
/// `vfork`-like clone), which the posix_spawn row shows flat in the parent's size.
const RSS_METHODS: [Method; 5] = [
    Method::Thread,
    Method::Fork,
    Method::PosixSpawn,
    Method::PoolWorker,
    Method::PoolExec,
];

#[derive(Debug, Serialize)]
struct Row {
    method: Method,
    ballast_bytes: usize,
    parent_rss_bytes: u64,
    /// The round whose figure is the median of the rounds.
    measurement: Measurement,
    /// The figure of each independent round (one unless the headline shows it).
    rounds_ns: Vec<f64>,
    /// Remote worker only: the start of `build()` to the first result, per op of the
    /// timestamped batches (the drop is not in it).
    #[serde(skip_serializing_if = "Option::is_none")]
    first_result_ns: Option<Summary>,
}

impl Spawn {
    fn ballast_sizes(profile: Profile) -> Vec<usize> {
        let sizes = match profile {
            Profile::Tiny => vec![0],
            Profile::Quick => vec![0, 64 * MIB, 256 * MIB],
            Profile::Full => vec![0, 16 * MIB, 64 * MIB, 256 * MIB, 1024 * MIB],
        };
        // Never ask for more than a quarter of the machine's memory.
        let limit = crate::machine::total_memory_bytes().unwrap_or(0) as usize / 4;
        sizes
            .into_iter()
            .filter(|&s| s == 0 || limit == 0 || s <= limit)
            .collect()
    }
}

impl Experiment for Spawn {
    fn knobs(&self) -> &'static [super::Knob] {
        use super::Knob;
        &[Knob::Iterations]
    }

    fn id(&self) -> &'static str {
        "spawn"
    }

    fn title(&self) -> &'static str {
        "Creation overhead"
    }

    fn run(&self, config: &LabConfig, progress: &mut dyn Progress) -> Result<Section> {
        let plan = Plan::for_profile(config.profile).with_iterations(config.iterations);
        let sizes = Spawn::ballast_sizes(config.profile);
        let spawn_true = PosixSpawn::new(TRUE_PATH)?;
        let mut notes = Vec::new();
        let mut methods: Vec<Method> = match pool_availability()? {
            None => RSS_METHODS
                .into_iter()
                .chain([Method::PoolRemote])
                .collect(),
            Some(reason) => {
                notes.push(format!("the pool-worker row is skipped: {reason}"));
                RSS_METHODS.into_iter().filter(|m| !m.is_pool()).collect()
            }
        };
        if methods.contains(&Method::PoolRemote) {
            // Loopback TCP or /bin/sh can be missing where forking works (a network-less
            // sandbox): the other rows still stand.
            if let Err(e) = pool_remote() {
                notes.push(format!("the remote-worker row is skipped: {e:#}"));
                methods.retain(|&m| m != Method::PoolRemote);
            }
        }
        let remote = methods.contains(&Method::PoolRemote) as usize;
        progress.begin(
            "spawn",
            (sizes.len() * (methods.len() - remote) + remote + 1) as u64,
        );

        let mut rows = Vec::new();
        for &size in &sizes {
            let ballast = Ballast::new(size);
            let rss = measure::process_rss_bytes().unwrap_or(0);
            for &method in &methods {
                if method == Method::PoolRemote && size != 0 {
                    continue;
                }
                progress.advance(0, &format!("{} at {} MiB parent", method.key(), size / MIB));
                // The headline's figures come from independent rounds.
                let rounds = if size == 0 && matches!(method, Method::Thread | Method::Fork) {
                    ROUNDS
                } else {
                    1
                };
                let ((m, first_result_ns), rounds_ns) = median_round(
                    rounds,
                    || measure_method(method, &plan, &spawn_true),
                    |(m, _)| m.value(),
                )
                .with_context(|| {
                    format!(
                        "measuring {} with a {} MiB parent",
                        method.label(),
                        size / MIB
                    )
                })?;
                rows.push(Row {
                    method,
                    ballast_bytes: size,
                    parent_rss_bytes: rss,
                    measurement: m,
                    rounds_ns,
                    first_result_ns,
                });
                progress.advance(1, "");
            }
            drop(ballast);
        }
        progress.advance(0, "tokio task");
        let ((tokio, _), rounds_ns) = median_round(
            ROUNDS,
            || measure_method(Method::TokioTask, &plan, &spawn_true),
            |(m, _)| m.value(),
        )
        .context("measuring tokio task spawn")?;
        let rss = measure::process_rss_bytes().unwrap_or(0);
        rows.push(Row {
            method: Method::TokioTask,
            ballast_bytes: 0,
            parent_rss_bytes: rss,
            measurement: tokio,
            rounds_ns,
            first_result_ns: None,
        });
        progress.advance(1, "");
        progress.end();

        let mut s = section(&plan, &rows);
        s.notes.extend(notes);
        Ok(s)
    }
}

/// The measurement of `method`, with the remote worker's build-to-first-result summary.
fn measure_method(
    method: Method,
    plan: &Plan,
    spawn_true: &PosixSpawn,
) -> Result<(Measurement, Option<Summary>)> {
    if method == Method::PoolRemote {
        return measure_remote(plan);
    }
    let m = match method {
        Method::Thread => measure::measure(plan, |n, s| time_ops(n, s, spawn_thread)),
        Method::Fork => measure::measure(plan, |n, s| time_ops(n, s, fork_exit_wait)),
        Method::PosixSpawn => measure::measure(plan, |n, s| time_ops(n, s, || spawn_true.run())),
        Method::PoolWorker => measure::measure(plan, |n, s| {
            time_ops(n, s, || pool_worker(proctor::StartMethod::Fork))
        }),
        Method::PoolExec => measure::measure(plan, |n, s| {
            time_ops(n, s, || pool_worker(proctor::StartMethod::Exec))
        }),
        Method::TokioTask => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .build()
                .context("building a current-thread tokio runtime")?;
            measure::measure(plan, |n, s| rt.block_on(tokio_batch(n, s)))
        }
        Method::PoolRemote => unreachable!("measured by measure_remote above"),
    }?;
    Ok((m, None))
}

/// The remote worker's row: each op is timed whole (build + task + drop, as the other pool
/// rows), and its build-to-first-result part is kept, in the timestamped batches only.
fn measure_remote(plan: &Plan) -> Result<(Measurement, Option<Summary>)> {
    let mut first = Vec::new();
    let m = measure::measure(plan, |n, s| {
        let keep = s.is_active();
        time_ops(n, s, || {
            let to_first = pool_remote()?;
            if keep {
                first.push(to_first.as_nanos() as f64);
            }
            Ok(())
        })
    })?;
    Ok((m, stats::summarize(&first)))
}

fn spawn_thread() -> Result<()> {
    let input = black_box(7u64);
    let h = std::thread::Builder::new()
        .spawn(move || black_box(input) + 1)
        .context("spawning a thread")?;
    let out = h
        .join()
        .map_err(|_| anyhow::anyhow!("the spawned thread panicked"))?;
    if black_box(out) != 8 {
        bail!("the spawned thread returned {out}, not 8");
    }
    Ok(())
}

fn fork_exit_wait() -> Result<()> {
    // SAFETY: the child calls only `_exit`, which is async-signal-safe, so forking a
    // multi-threaded process is sound here.
    match unsafe { fork() }.context("fork")? {
        ForkResult::Child => {
            // SAFETY: `_exit` ends the child at once without running destructors or atexit
            // handlers, which could touch locks held by threads that do not exist in the child.
            unsafe { libc::_exit(0) }
        }
        ForkResult::Parent { child } => reap(child),
    }
}

/// `None` when process pools work here, else why not (no fork server, not Linux).
///
/// # Errors
/// When the pool fails for another reason (a worker could not be started).
fn pool_availability() -> Result<Option<String>> {
    match proctor::Pool::processes(1).build() {
        Ok(pool) => {
            drop(pool);
            Ok(None)
        }
        Err(e) if e.is_not_initialized() || e.is_unsupported() => Ok(Some(e.to_string())),
        Err(e) => Err(anyhow::Error::new(e).context("building a one-worker process pool")),
    }
}

fn add_one(n: u64) -> u64 {
    n + 1
}

/// A one-worker process pool: build, run one task, drop (kill and reap the worker).
fn pool_worker(start: proctor::StartMethod) -> Result<()> {
    let pool = proctor::Pool::processes(1)
        .start_method(start)
        .build()
        .context("building a one-worker process pool")?;
    let out = pool
        .submit(add_one, black_box(7u64))
        .join()
        .context("the pool worker's task")?;
    drop(pool);
    if black_box(out) != 8 {
        bail!("the pool worker returned {out}, not 8");
    }
    Ok(())
}

/// A one-worker remote pool on this host: build, run one task, drop (close the connections,
/// wait for the launched agent). Returns the time from the start of `build()` to the result.
fn pool_remote() -> Result<Duration> {
    let start = Instant::now();
    let pool = proctor::Pool::processes(1)
        .remote(super::loopback_remote())
        .forward_stderr(false)
        .build()
        .context("building a one-worker remote pool (command launcher, loopback TCP)")?;
    let out = pool
        .submit(add_one, black_box(7u64))
        .join()
        .context("the remote worker's task")?;
    let to_first = start.elapsed();
    drop(pool);
    if black_box(out) != 8 {
        bail!("the remote worker returned {out}, not 8");
    }
    Ok(to_first)
}

fn reap(child: Pid) -> Result<()> {
    match waitpid(child, None).context("waitpid")? {
        WaitStatus::Exited(_, 0) => Ok(()),
        other => bail!("the child did not exit cleanly: {other:?}"),
    }
}

async fn tokio_batch(n: u64, sampler: &mut Sampler) -> Result<Duration> {
    let start = Instant::now();
    let mut last = start;
    for i in 0..n {
        let input = black_box(i);
        let out = tokio::spawn(async move { black_box(input) + 1 })
            .await
            .context("the tokio task failed")?;
        black_box(out);
        if sampler.is_active() {
            let now = Instant::now();
            sampler.record(now - last);
            last = now;
        }
    }
    Ok(start.elapsed())
}

/// `posix_spawn` of one program with no arguments and an empty environment.
#[derive(Debug)]
struct PosixSpawn {
    path: CString,
}

impl PosixSpawn {
    fn new(path: &str) -> Result<PosixSpawn> {
        if !std::path::Path::new(path).exists() {
            bail!("{path} does not exist: posix_spawn has nothing to start");
        }
        Ok(PosixSpawn {
            path: CString::new(path).context("program path has a NUL byte")?,
        })
    }

    fn run(&self) -> Result<()> {
        let argv: [*mut libc::c_char; 2] = [self.path.as_ptr().cast_mut(), std::ptr::null_mut()];
        let envp: [*mut libc::c_char; 1] = [std::ptr::null_mut()];
        let mut pid: libc::pid_t = 0;
        // SAFETY: `path` is a NUL-terminated string; argv and envp are NULL-terminated arrays
        // of NUL-terminated strings that outlive the call; null file actions and attributes
        // mean the defaults. posix_spawn does not write through argv or envp.
        let rc = unsafe {
            libc::posix_spawn(
                &mut pid,
                self.path.as_ptr(),
                std::ptr::null(),
                std::ptr::null(),
                argv.as_ptr(),
                envp.as_ptr(),
            )
        };
        if rc != 0 {
            bail!(
                "posix_spawn({}): {}",
                self.path.to_string_lossy(),
                std::io::Error::from_raw_os_error(rc)
            );
        }
        reap(Pid::from_raw(pid))
    }
}

/// Touched memory that makes the parent bigger, freed on drop.
#[derive(Debug)]
struct Ballast {
    _memory: Vec<u8>,
}

impl Ballast {
    fn new(bytes: usize) -> Ballast {
        // A non-zero fill writes every byte, so every page is resident and private (a zeroed
        // allocation could stay untouched).
        Ballast {
            _memory: black_box(vec![0xA5u8; bytes]),
        }
    }
}

#[cfg(test)]
mod tests;

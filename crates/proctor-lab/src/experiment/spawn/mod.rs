//! `spawn`: creation overhead of a thread, a forked process, `vfork`, `clone(CLONE_VM)`, a
//! `posix_spawn`ed program and an async task, against the parent's resident memory, with
//! transparent huge pages refused and asked for (LAB-METHODS rules 3, 6 and 7).
//!
//! **The interval** starts just before the create call and ends when the reap returns
//! (`join`, `waitpid`, `.await`): create + the child's first instruction + exit + reap. The
//! child's first instruction reports its CPU (`getcpu`) in its exit code or join value, and
//! the reap checks it ran. The first op of each kind is timed alone and reported apart as the
//! cold start. Thread and fork also report the create call's own part (its return in the
//! parent), the quantity Bendersky (2018) plots.
//!
//! **Placement** ([`placed`]): a create + reap is two hand-offs between parent and child, so
//! where the child runs decides most of the figure. Each row the parent creates itself is
//! measured with parent and child pinned to one CPU (two context switches, no wake-up across
//! CPUs), and thread and fork at the smallest parent also across the nearest pair of CPUs
//! (the child placed by the kernel on the other CPU: two cross-CPU wake-ups), each from ops
//! that really ran there. The creation verdict reads the same-CPU pair.
//!
//! **Parent size** ([`ballast`]): before each row set, the parent maps and touches a ballast
//! (every page written), so `fork` has that many more page-table entries to copy and the
//! child's exit that many to tear down; once with `MADV_NOHUGEPAGE` and once with
//! `MADV_HUGEPAGE` on it, where the system THP mode allows huge pages. `vfork`,
//! `clone(CLONE_VM)`, `posix_spawn` (glibc: `clone(CLONE_VM | CLONE_VFORK)` then `exec`) and
//! threads share the address space, so they should stay flat: the shape of Baumann et al.
//! (2019), Figure 1.
//!
//! **Pool worker**: `proctor::Pool::processes(1).build()`, one trivial task submitted and
//! joined, then the pool dropped, which kills and reaps the worker. The worker is forked by
//! the pool's fork server, a small process started before `main`, so its cost should not grow
//! with this parent's size, and pinning this thread does not place it: the pool rows are
//! unpinned. Without a fork server (`proctor::init()` did not run in time) the row is skipped
//! with a note.
//!
//! **Remote worker**: the same with `.remote(..)`: the command launcher runs
//! `/bin/sh -c 'exec <this binary>'`, which becomes an agent in `proctor::init()`, connects back
//! over loopback TCP (an authenticated handshake), forks the worker, whose own connection is
//! authenticated too; then one task and the drop, which closes the connections and waits for
//! the launched process to exit. The time from the start of `build()` to the first result is
//! reported apart, without the drop. ssh or `srun` in place of `/bin/sh` add their own
//! start cost, which this row does not measure.
//!
//! The children live in a process that may have other threads (the test harness, a progress
//! bar), so they make raw, async-signal-safe system calls only: see [`create`].

use std::ffi::CString;
use std::hint::black_box;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::Pid;
use serde::Serialize;

use crate::experiment::{Experiment, ROUNDS, median_round};
use crate::measure::{self, Measurement, Plan, Sampler, time_ops};
use crate::report::{Chart, ChartKind, Figure, Profile, Published, Section, Series, Table, Unit};
use crate::stats::{self, Summary};
use crate::topology::{Mixture, Pair, Placement, Topology};
use crate::units::micros;
use crate::verdict::keys;
use crate::{LabConfig, Progress};

mod ballast;
mod create;
mod placed;
mod section;
use ballast::{Ballast, Thp};
use create::{ChildStack, Created};
use placed::Sizing;
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
    /// `clone(CLONE_VM | CLONE_VFORK)`, as glibc's `vfork` and `posix_spawn` do.
    Vfork,
    /// `clone(CLONE_VM)`: a process sharing the parent's memory.
    CloneVm,
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
            Method::Vfork => "vfork",
            Method::CloneVm => "clone_vm",
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

    /// Whether this parent creates the child itself, so that pinning this thread places both:
    /// timed op by op on a chosen placement. (A pool's worker is forked by the fork server,
    /// a process of its own; an async task runs on this very thread.)
    fn is_placed(self) -> bool {
        matches!(
            self,
            Method::Thread | Method::Fork | Method::Vfork | Method::CloneVm | Method::PosixSpawn
        )
    }

    /// Whether the headline shows it: measured in independent rounds, on both placements.
    fn is_headline(self) -> bool {
        matches!(self, Method::Thread | Method::Fork)
    }

    fn label(self) -> &'static str {
        match self {
            Method::Thread => "thread spawn + join",
            Method::Fork => "fork + _exit + waitpid",
            Method::Vfork => "vfork (clone(CLONE_VM | CLONE_VFORK)) + _exit + waitpid",
            Method::CloneVm => "clone(CLONE_VM) + _exit + waitpid",
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
const RSS_METHODS: [Method; 7] = [
    Method::Thread,
    Method::Fork,
    Method::Vfork,
    Method::CloneVm,
    Method::PosixSpawn,
    Method::PoolWorker,
    Method::PoolExec,
];

/// How one row was timed: op by op on a placement (the placed rows) or by the batch loop of
/// [`measure`] (pool rows, async).
#[derive(Debug, Clone, Serialize)]
struct Timing {
    /// The figure: the median of the rounds' per-op medians, or of the batch means.
    value_ns: f64,
    /// The spread reported: per op where each op was timed.
    spread: Summary,
    /// The first op, alone.
    cold_ns: f64,
}

impl Timing {
    fn of(m: &Measurement) -> Timing {
        Timing {
            value_ns: m.value(),
            spread: m.summary(),
            cold_ns: m.cold_ns,
        }
    }

    fn figure(&self, key: &str, label: &str) -> Figure {
        Figure::new(key, label, self.value_ns, Unit::Ns).with_spread(self.spread.spread())
    }
}

#[derive(Debug, Serialize)]
struct Row {
    method: Method,
    /// The ballast's huge-page advice.
    thp: Thp,
    /// Where parent and child ran; `None`: unpinned (the pool rows, async).
    pair: Option<Pair>,
    ballast_bytes: usize,
    parent_rss_bytes: u64,
    /// This process's anonymous memory in huge pages while the row was measured.
    anon_huge_bytes: Option<u64>,
    timing: Timing,
    /// The figure of each independent round (one unless the headline shows it).
    rounds_ns: Vec<f64>,
    /// Placed rows: the create call's own part (its return in the parent), per op.
    #[serde(skip_serializing_if = "Option::is_none")]
    launch_ns: Option<Summary>,
    /// Across CPUs: create to the child's move to the other CPU (the `sched_setaffinity`
    /// call included), per op.
    #[serde(skip_serializing_if = "Option::is_none")]
    moved_ns: Option<Summary>,
    /// Placed rows: ops that ran on the placement, of all measured.
    #[serde(skip_serializing_if = "Option::is_none")]
    matched: Option<(usize, usize)>,
    /// Placed rows whose ops did not all run on the placement: where they ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    mixture: Option<Mixture>,
    /// Remote worker only: the start of `build()` to the first result, per op of the
    /// timestamped batches (the drop is not in it).
    #[serde(skip_serializing_if = "Option::is_none")]
    first_result_ns: Option<Summary>,
}

impl Row {
    /// The row of `step` with its timing, the parent's RSS and huge pages as they were when it
    /// was measured; unpinned, in one round, the optional parts empty.
    fn new(step: Step, parent_rss_bytes: u64, anon_huge_bytes: Option<u64>, timing: Timing) -> Row {
        Row {
            method: step.method,
            thp: step.thp,
            pair: None,
            ballast_bytes: step.size,
            parent_rss_bytes,
            anon_huge_bytes,
            rounds_ns: vec![timing.value_ns],
            timing,
            launch_ns: None,
            moved_ns: None,
            matched: None,
            mixture: None,
            first_result_ns: None,
        }
    }

    /// Whether the row ran across two CPUs.
    fn is_cross(&self) -> bool {
        self.pair.is_some_and(|p| p.a != p.b)
    }

    /// The figure key: `spawn.fork`, `spawn.fork.cross_cpu`, `spawn.fork.rss_64mib`,
    /// `spawn.fork.thp.rss_64mib`.
    fn key(&self) -> String {
        let mut key = format!("spawn.{}", self.method.key());
        if self.thp == Thp::On {
            key.push_str(".thp");
        }
        if self.is_cross() {
            key.push_str(".cross_cpu");
        }
        if self.ballast_bytes > 0 {
            key.push_str(&format!(".rss_{}mib", self.ballast_bytes / MIB));
        }
        key
    }
}

/// Everything the experiment measured, for `Section::data`.
#[derive(Debug, Serialize)]
struct SpawnResult {
    /// The system THP mode (`/sys/kernel/mm/transparent_hugepage/enabled`), where THP exists.
    thp_mode: Option<String>,
    /// Every row, in the order measured.
    rows: Vec<Row>,
    /// Why a row or a placement was not measured.
    skipped: Vec<String>,
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

/// One measurement to take: a method at a parent size and huge-page advice, on the same CPU
/// (or unpinned for the pool rows and async) or across the nearest pair of CPUs.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Step {
    size: usize,
    thp: Thp,
    method: Method,
    cross: bool,
}

/// The huge-page variants at `size`: none without a ballast; refused, and (unless the system
/// mode is `never` or THP is missing) asked for.
fn thp_variants(size: usize, mode: Option<&str>) -> Vec<Thp> {
    match (size, mode) {
        (0, _) => vec![Thp::None],
        (_, Some(m)) if m != "never" => vec![Thp::Off, Thp::On],
        _ => vec![Thp::Off],
    }
}

/// Every step of a run, in order: per size and huge-page variant, each method on the same
/// CPU, the headline's methods also across CPUs at the smallest parent; with huge pages asked
/// for, fork only (the others share the address space and do not copy it).
fn steps(sizes: &[usize], mode: Option<&str>, methods: &[Method], cross: bool) -> Vec<Step> {
    let mut out = Vec::new();
    for &size in sizes {
        for thp in thp_variants(size, mode) {
            for &method in methods {
                if (method == Method::PoolRemote && size != 0)
                    || (thp == Thp::On && method != Method::Fork)
                {
                    continue;
                }
                out.push(Step {
                    size,
                    thp,
                    method,
                    cross: false,
                });
                if cross && size == 0 && method.is_headline() {
                    out.push(Step {
                        size,
                        thp,
                        method,
                        cross: true,
                    });
                }
            }
        }
    }
    out
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
        let sizing = Sizing::for_profile(config.profile);
        let sizes = Spawn::ballast_sizes(config.profile);
        let thp_mode = ballast::system_mode();
        let topology = Topology::detect();
        let same = topology
            .pair(Placement::SameCpu)
            .context("this process may run on no CPU")?;
        let cross = topology.nearest_cross();
        let spawn_true = PosixSpawn::new(TRUE_PATH)?;
        let stack = ChildStack::new()?;
        let mut skipped = Vec::new();
        let mut methods: Vec<Method> = match pool_availability()? {
            None => RSS_METHODS
                .into_iter()
                .chain([Method::PoolRemote])
                .collect(),
            Some(reason) => {
                skipped.push(format!("the pool-worker row is skipped: {reason}"));
                RSS_METHODS.into_iter().filter(|m| !m.is_pool()).collect()
            }
        };
        if methods.contains(&Method::PoolRemote) {
            // Loopback TCP or /bin/sh can be missing where forking works (a network-less
            // sandbox): the other rows still stand.
            if let Err(e) = pool_remote() {
                skipped.push(format!("the remote-worker row is skipped: {e:#}"));
                methods.retain(|&m| m != Method::PoolRemote);
            }
        }
        if cross.is_none() {
            skipped.push(
                "only one CPU is allowed here: creation is measured on the same CPU only"
                    .to_string(),
            );
        }
        let steps = steps(&sizes, thp_mode.as_deref(), &methods, cross.is_some());
        progress.begin("spawn", steps.len() as u64 + 1);

        let mut rows = Vec::new();
        let mut current: Option<(usize, Thp, Ballast)> = None;
        for step in steps {
            if current
                .as_ref()
                .is_none_or(|(size, thp, _)| (*size, *thp) != (step.size, step.thp))
            {
                // Free the old ballast before touching the new one.
                drop(current.take());
                current = Some((step.size, step.thp, Ballast::new(step.size, step.thp)?));
            }
            let what = format!(
                "{}{} at {} MiB parent{}",
                step.method.key(),
                if step.cross { " across CPUs" } else { "" },
                step.size / MIB,
                if step.thp == Thp::On { " (THP)" } else { "" },
            );
            progress.advance(0, &what);
            let context = || {
                format!(
                    "measuring {} with a {} MiB parent",
                    step.method.label(),
                    step.size / MIB
                )
            };
            let rss = measure::process_rss_bytes().unwrap_or(0);
            let huge = ballast::anon_huge_bytes();
            let row = |timing: Timing| Row::new(step, rss, huge, timing);
            if step.method.is_placed() {
                let pair = if step.cross {
                    cross.expect("cross steps exist only with two CPUs")
                } else {
                    same
                };
                let rounds = if step.size == 0 && step.method.is_headline() {
                    ROUNDS
                } else {
                    1
                };
                let runs = {
                    let _placed = placed::place(&pair)?;
                    let move_to = (pair.a != pair.b).then_some(pair.b);
                    placed::run(&sizing, rounds, || {
                        placed_op(step.method, move_to, &stack, &spawn_true)
                    })
                    .with_context(context)?
                };
                match placed::matched(&runs, &pair, &topology) {
                    Some(p) => rows.push(Row {
                        pair: Some(pair),
                        rounds_ns: p.rounds_ns,
                        launch_ns: Some(p.launch),
                        moved_ns: p.moved,
                        matched: Some((p.matched, p.total)),
                        mixture: p.mixture,
                        ..row(Timing {
                            value_ns: p.value_ns,
                            spread: p.ops,
                            cold_ns: p.cold_ns,
                        })
                    }),
                    None => skipped.push(format!(
                        "{} on {}: fewer than a quarter of the ops ran there, so no figure \
                         ({})",
                        step.method.label(),
                        pair.describe(),
                        placed::mixture_of(&runs, &topology).map_or_else(
                            || "no op reported its CPUs".to_string(),
                            |m| m.describe(|v| micros(v, 1))
                        ),
                    )),
                }
            } else {
                let ((m, first_result_ns), rounds_ns) = median_round(
                    1,
                    || measure_method(step.method, &plan, &spawn_true),
                    |(m, _)| m.value(),
                )
                .with_context(context)?;
                rows.push(Row {
                    rounds_ns,
                    first_result_ns,
                    ..row(Timing::of(&m))
                });
            }
            progress.advance(1, "");
        }
        drop(current);
        progress.advance(0, "tokio task");
        // On the same CPU as the thread and fork figures it stands beside in the headline (a
        // current-thread runtime runs its tasks on this very thread).
        let ((tokio, _), rounds_ns) = {
            let _placed = placed::place(&same)?;
            median_round(
                ROUNDS,
                || measure_method(Method::TokioTask, &plan, &spawn_true),
                |(m, _)| m.value(),
            )
            .context("measuring tokio task spawn")?
        };
        let tokio_step = Step {
            size: 0,
            thp: Thp::None,
            method: Method::TokioTask,
            cross: false,
        };
        let rss = measure::process_rss_bytes().unwrap_or(0);
        rows.push(Row {
            pair: Some(same),
            rounds_ns,
            ..Row::new(
                tokio_step,
                rss,
                ballast::anon_huge_bytes(),
                Timing::of(&tokio),
            )
        });
        progress.advance(1, "");
        progress.end();

        let result = SpawnResult {
            thp_mode,
            rows,
            skipped,
        };
        Ok(section(&plan, &sizing, &result))
    }
}

/// One creation by a placed method, reaped; `move_to`: the CPU the child is moved to.
fn placed_op(
    method: Method,
    move_to: Option<usize>,
    stack: &ChildStack,
    spawn_true: &PosixSpawn,
) -> Result<Created> {
    match (method, move_to) {
        (Method::Thread, _) => create::thread(move_to),
        (Method::Fork, _) => create::fork_exit_wait(move_to),
        (other, Some(_)) => bail!("{} is measured on one CPU only", other.label()),
        (method, None) => placed_same_cpu_op(method, stack, spawn_true),
    }
}

/// One creation by a method measured on one CPU only.
fn placed_same_cpu_op(
    method: Method,
    stack: &ChildStack,
    spawn_true: &PosixSpawn,
) -> Result<Created> {
    match method {
        Method::Vfork => create::vfork_exit_wait(stack),
        Method::CloneVm => create::clone_vm_exit_wait(stack),
        Method::PosixSpawn => spawn_true.run(),
        other => bail!("{} is not created by this thread", other.label()),
    }
}

/// The measurement of an unplaced `method` (a pool row, async), with the remote worker's
/// build-to-first-result summary.
fn measure_method(
    method: Method,
    plan: &Plan,
    spawn_true: &PosixSpawn,
) -> Result<(Measurement, Option<Summary>)> {
    if method == Method::PoolRemote {
        return measure_remote(plan);
    }
    let m = match method {
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
        Method::PosixSpawn => {
            measure::measure(plan, |n, s| time_ops(n, s, || spawn_true.run().map(drop)))
        }
        other => bail!("{} is timed op by op on a placement", other.label()),
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

    /// Starts the program and reaps it; the launch is `posix_spawn`'s return (after the
    /// child's `exec`: glibc's child runs in the parent's memory until then).
    fn run(&self) -> Result<Created> {
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
        let launched = Instant::now();
        reap(Pid::from_raw(pid))?;
        Ok(Created {
            launched,
            child_cpu: None,
            moved: None,
        })
    }
}

#[cfg(test)]
mod tests;

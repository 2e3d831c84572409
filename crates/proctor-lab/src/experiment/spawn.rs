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

/// The section of a spawn run: every method's figures, the ratios, the table, the chart and the
/// notes, in the order the report shows them.
fn section(plan: &Plan, rows: &[Row]) -> Section {
    let mut s = Section::new("spawn", "Creation overhead", &method(plan));
    row_figures(&mut s, rows);
    ratio_figures(&mut s);
    s.tables.push(rss_table(rows));
    s.charts.push(rss_chart(rows));
    notes(&mut s, rows);
    s.set_data(&rows);
    s
}

/// What the section measured and how, with the run's settings.
fn method(plan: &Plan) -> String {
    format!(
        "One op = create + first instruction + exit + reap: the interval starts before the create \
         call and ends when join/waitpid/.await returns, and the reap checks the child ran (join value \
         or exit status 0). Thread: std::thread::spawn + join. Fork: fork, the child calls _exit(0), \
         the parent waitpid()s. posix_spawn: {TRUE_PATH} with an empty environment, then waitpid. \
         Tokio: tokio::spawn + .await on a current-thread runtime. Pool worker: \
         proctor::Pool::processes(1).build(), submit(trivial fn).join(), drop (kills and reaps the \
         worker); the worker is forked by the pool's fork server, not by this parent; with \
         StartMethod::Exec it then re-executes this binary (a fresh address space). Remote worker: the \
         same with .remote(Remote::command(\"exec {{exe}}\", [\"localhost\"])) listening on 127.0.0.1: \
         /bin/sh -c execs this binary, which becomes an agent in proctor::init(), connects back over \
         loopback TCP with an HMAC challenge-response and forks the worker, which connects and \
         authenticates on its own; the drop closes the connections and waits for the launched \
         process to exit. Its time from the start of build() to the first result (no drop) is \
         reported apart, per op of the timestamped batches. The parent first allocates and \
         touches a ballast of the given size (rule 6). Figure = median over {} batches of the batch \
         mean (batches calibrated to >= {} ms after {} warm-up batches); spread = per-op times \
         where the timer is cheap enough (taken in batches of their own: the figure's batches are \
         timed whole); outliers by modified Z-score > 3.5, kept. When other load preempts the \
         measurement, the batch means absorb the preemption and the figure can sit above the \
         per-op p99. The first op \
         of each kind is reported apart as the cold start. Unpinned. Thread, fork and async at the \
         smallest parent: the figure is the median of 3 independent rounds, each measured as \
         above, with the rounds' run-to-run spread.",
        plan.batches,
        plan.min_batch.as_secs_f64() * 1e3,
        plan.warmup_batches,
    )
}

/// Every method and parent size: the creation cost, its cold start and, for the remote
/// worker, the first result.
fn row_figures(s: &mut Section, rows: &[Row]) {
    for r in rows {
        let base = format!("spawn.{}", r.method.key());
        if let (0, Some(first)) = (r.ballast_bytes, r.first_result_ns) {
            s.figures.push(
                Figure::new(
                    &format!("{base}.first_result"),
                    &format!(
                        "{} (build to first result, drop not timed)",
                        r.method.label()
                    ),
                    first.median,
                    Unit::Ns,
                )
                .with_spread(first.spread())
                .placed("unpinned"),
            );
        }
        if r.ballast_bytes == 0 {
            s.figures.push(
                r.measurement
                    .figure(&base, r.method.label())
                    .with_rounds(&r.rounds_ns)
                    .placed("unpinned"),
            );
            s.figures.push(
                Figure::new(
                    &format!("{base}.cold"),
                    &format!("{} (cold start, first op)", r.method.label()),
                    r.measurement.cold_ns,
                    Unit::Ns,
                )
                .placed("unpinned"),
            );
        } else {
            let mib = r.ballast_bytes / MIB;
            s.figures.push(
                r.measurement
                    .figure(
                        &format!("{base}.rss_{mib}mib"),
                        &format!("{} with a {mib} MiB parent", r.method.label()),
                    )
                    .placed("unpinned"),
            );
        }
    }
}

/// The classic ratios between methods, where both figures were measured.
fn ratio_figures(s: &mut Section) {
    let ratio = |a: &str, b: &str| -> Option<f64> { Some(s.figure(a)?.value / s.figure(b)?.value) };
    let ratios: Vec<Figure> = [
        (
            "spawn.fork_over_thread",
            "fork / thread spawn (small parent)",
            keys::SPAWN_FORK,
            keys::SPAWN_THREAD,
        ),
        (
            "spawn.posix_spawn_over_thread",
            "posix_spawn / thread spawn",
            "spawn.posix_spawn",
            keys::SPAWN_THREAD,
        ),
        (
            "spawn.thread_over_async",
            "thread spawn / tokio task",
            keys::SPAWN_THREAD,
            keys::SPAWN_ASYNC,
        ),
        (
            "spawn.pool_worker_over_fork",
            "pool worker (fork server) / fork (small parent)",
            keys::SPAWN_POOL_WORKER,
            keys::SPAWN_FORK,
        ),
        (
            "spawn.pool_exec_over_pool_worker",
            "pool worker re-executing the binary / forked pool worker",
            "spawn.pool_exec",
            keys::SPAWN_POOL_WORKER,
        ),
        (
            "spawn.pool_remote_over_pool_worker",
            "remote worker (command launcher, loopback) / forked pool worker",
            keys::SPAWN_POOL_REMOTE,
            keys::SPAWN_POOL_WORKER,
        ),
        (
            "spawn.pool_remote_over_pool_exec",
            "remote worker (command launcher, loopback) / pool worker re-executing the binary",
            keys::SPAWN_POOL_REMOTE,
            "spawn.pool_exec",
        ),
    ]
    .into_iter()
    .filter_map(|(k, l, a, b)| Some(Figure::new(k, l, ratio(a, b)?, Unit::Ratio)))
    .collect();
    s.figures.extend(ratios);
}

/// The creation cost against the parent's resident memory, every row.
fn rss_table(rows: &[Row]) -> Table {
    Table {
        title: "Creation cost against the parent's resident memory".into(),
        columns: [
            "method",
            "ballast",
            "parent RSS",
            "median",
            "p1",
            "p99",
            "cold start",
            "outliers",
        ]
        .map(String::from)
        .to_vec(),
        rows: rows
            .iter()
            .map(|r| {
                let sum = r.measurement.summary();
                vec![
                    r.method.label().to_string(),
                    format!("{} MiB", r.ballast_bytes / MIB),
                    format!("{:.0} MiB", r.parent_rss_bytes as f64 / MIB as f64),
                    micros(r.measurement.value(), 1),
                    micros(sum.p1, 1),
                    micros(sum.p99, 1),
                    micros(r.measurement.cold_ns, 1),
                    format!("{}/{}", sum.outliers, sum.samples),
                ]
            })
            .collect(),
    }
}

/// The creation cost against the parent's RSS, per method.
fn rss_chart(rows: &[Row]) -> Chart {
    let series = RSS_METHODS
        .iter()
        .filter(|&&m| rows.iter().any(|r| r.method == m))
        .map(|&m| Series {
            name: m.label().to_string(),
            points: rows
                .iter()
                .filter(|r| r.method == m)
                .map(|r| {
                    (
                        r.parent_rss_bytes as f64 / MIB as f64,
                        r.measurement.value(),
                    )
                })
                .collect(),
        })
        .collect();
    Chart {
        id: "cost-vs-rss".into(),
        title: "Creation cost against parent RSS".into(),
        kind: ChartKind::Line,
        x_label: "parent RSS (MiB)".into(),
        y_label: "ns per create + exit + reap".into(),
        x_log: false,
        y_log: true,
        categories: Vec::new(),
        series,
    }
}

/// How fork grows with the parent, and what the remote start includes.
fn notes(s: &mut Section, rows: &[Row]) {
    let fork_small = rows
        .iter()
        .find(|r| r.method == Method::Fork && r.ballast_bytes == 0);
    let fork_big = rows
        .iter()
        .filter(|r| r.method == Method::Fork && r.ballast_bytes > 0)
        .max_by_key(|r| r.ballast_bytes);
    if let (Some(small), Some(big)) = (fork_small, fork_big) {
        s.notes.push(format!(
            "fork grows with the parent: {} at {:.0} MiB RSS vs {} at {:.0} MiB ({:.1}x)",
            micros(big.measurement.value(), 1),
            big.parent_rss_bytes as f64 / MIB as f64,
            micros(small.measurement.value(), 1),
            small.parent_rss_bytes as f64 / MIB as f64,
            big.measurement.value() / small.measurement.value(),
        ));
    }
    if let Some(note) = remote_note(s) {
        s.notes.push(note);
    }
}

/// What the remote-worker row says beside the local pool rows, when it was measured.
fn remote_note(s: &Section) -> Option<String> {
    let value = |k: &str| s.figure(k).map(|f| f.value);
    let whole = value(keys::SPAWN_POOL_REMOTE)?;
    let mut text = format!(
        "remote worker through the command launcher (/bin/sh -c exec, loopback TCP, small \
         parent): {} with the drop",
        micros(whole, 1)
    );
    if let Some(first) = value("spawn.pool_remote.first_result") {
        text.push_str(&format!(", {} to the first result", micros(first, 1)));
    }
    for (key, what) in [
        (keys::SPAWN_POOL_WORKER, "the forked pool worker"),
        ("spawn.pool_exec", "the exec'd pool worker"),
    ] {
        if let Some(v) = value(key) {
            text.push_str(&format!("; {what} {} ({:.1}x)", micros(v, 1), whole / v));
        }
    }
    text.push_str(
        ". The remote start adds to an exec'd worker a shell, the agent's and the worker's TCP \
         connections and handshakes, and the drop waits for the launched process to exit. All of it is on this host, so it is a \
         lower bound: ssh \
         (a connection, key exchange and a remote shell) and srun (a job step) add their own \
         start cost before the agent runs, and a real network adds its round trips to each \
         handshake, none of which is measured here",
    );
    Some(text)
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
mod tests {
    use super::*;

    #[test]
    fn section_from_hand_made_rows() {
        use crate::fixture::measurement;
        let row = |method, ballast_bytes, ns| Row {
            method,
            ballast_bytes,
            parent_rss_bytes: 10 * MIB as u64,
            measurement: measurement(ns),
            rounds_ns: vec![ns],
            first_result_ns: None,
        };
        let mut thread = row(Method::Thread, 0, 20_000.0);
        thread.rounds_ns = vec![24_000.0, 18_000.0, 20_000.0];
        let rows = [
            thread,
            row(Method::Fork, 0, 100_000.0),
            row(Method::Fork, 64 * MIB, 300_000.0),
            row(Method::TokioTask, 0, 400.0),
        ];
        let s = section(&Plan::for_profile(Profile::Tiny), &rows);
        assert!(s.figure("spawn.pool_remote").is_none());
        assert!(!s.notes.iter().any(|n| n.contains("remote worker")));
        assert_eq!(s.figure("spawn.thread").map(|f| f.value), Some(20_000.0));
        let rounds = s.figure("spawn.thread").and_then(|f| f.rounds.clone());
        let rounds = rounds.expect("the thread figure has its rounds");
        assert_eq!(
            (rounds.min, rounds.max, rounds.spread_pct),
            (18_000.0, 24_000.0, 20.0)
        );
        assert!(s.figure("spawn.fork").is_some_and(|f| f.rounds.is_none()));
        assert_eq!(
            s.figure("spawn.fork.cold").map(|f| f.value),
            Some(200_000.0)
        );
        assert!(s.figure("spawn.fork.rss_64mib").is_some());
        assert_eq!(
            s.figure("spawn.fork_over_thread").map(|f| f.value),
            Some(5.0)
        );
        assert_eq!(
            s.figure("spawn.thread_over_async").map(|f| f.value),
            Some(50.0)
        );
        assert_eq!(s.tables[0].rows.len(), rows.len());
        assert!(
            s.notes
                .iter()
                .any(|n| n.contains("fork grows with the parent"))
        );
    }

    #[test]
    fn remote_row_has_its_first_result_ratios_and_note() {
        use crate::fixture::measurement;
        let row = |method, ns| Row {
            method,
            ballast_bytes: 0,
            parent_rss_bytes: 10 * MIB as u64,
            measurement: measurement(ns),
            rounds_ns: vec![ns],
            first_result_ns: None,
        };
        let mut remote = row(Method::PoolRemote, 12_000_000.0);
        remote.first_result_ns = stats::summarize(&[3_000_000.0, 4_000_000.0, 5_000_000.0]);
        let rows = [
            row(Method::PoolWorker, 400_000.0),
            row(Method::PoolExec, 2_000_000.0),
            remote,
        ];
        let s = section(&Plan::for_profile(Profile::Tiny), &rows);
        let value = |k: &str| s.figure(k).map(|f| f.value);
        assert_eq!(value("spawn.pool_remote"), Some(12_000_000.0));
        assert_eq!(value("spawn.pool_remote.first_result"), Some(4_000_000.0));
        assert!(value("spawn.pool_remote.cold").is_some());
        assert_eq!(value("spawn.pool_remote_over_pool_worker"), Some(30.0));
        assert_eq!(value("spawn.pool_remote_over_pool_exec"), Some(6.0));
        let note = s
            .notes
            .iter()
            .find(|n| n.contains("remote worker"))
            .expect("a note on the remote row");
        assert!(note.contains("12000.0 µs with the drop"), "{note}");
        assert!(note.contains("4000.0 µs to the first result"), "{note}");
        assert!(
            note.contains("the exec'd pool worker 2000.0 µs (6.0x)"),
            "{note}"
        );
        assert!(note.contains("ssh") && note.contains("srun"), "{note}");
        let table_row = s.tables[0]
            .rows
            .iter()
            .find(|r| r[0] == Method::PoolRemote.label())
            .expect("the remote row is in the table");
        assert_eq!(table_row[3], "12000.0 µs");
    }

    use crate::NoProgress;

    #[test]
    #[cfg_attr(not(target_os = "linux"), ignore)]
    fn tiny_profile_gives_positive_finite_figures() {
        let config = LabConfig {
            profile: Profile::Tiny,
            ..LabConfig::default()
        };
        let s = Spawn.run(&config, &mut NoProgress).expect("spawn runs");
        assert_eq!(s.id, "spawn");
        for key in [
            "spawn.thread",
            "spawn.fork",
            "spawn.posix_spawn",
            "spawn.async",
            "spawn.fork.cold",
        ] {
            let f = s
                .figure(key)
                .unwrap_or_else(|| panic!("figure {key} is missing"));
            assert!(f.value > 0.0 && f.value.is_finite(), "{key} = {}", f.value);
            assert_eq!(f.unit, Unit::Ns);
        }
        assert!(
            s.figures
                .iter()
                .all(|f| f.value.is_finite() && f.value > 0.0)
        );
        assert_eq!(s.charts.len(), 1);
        // The lib's unit-test binary starts no fork server, so the pool rows are skipped
        // there.
        let pool = s.figure("spawn.pool_worker").is_some();
        assert_eq!(pool, s.figure("spawn.pool_exec").is_some());
        if !pool {
            assert!(
                s.notes
                    .iter()
                    .any(|n| n.contains("pool-worker row is skipped"))
            );
            assert!(s.figure("spawn.pool_remote").is_none());
        }
        // Where pools work, the remote row is measured or skipped with its reason.
        let remote = s.figure("spawn.pool_remote").is_some();
        assert_eq!(remote, s.figure("spawn.pool_remote.first_result").is_some());
        if pool && !remote {
            assert!(
                s.notes
                    .iter()
                    .any(|n| n.contains("remote-worker row is skipped"))
            );
        }
        let measured = RSS_METHODS.iter().filter(|m| !m.is_pool() || pool).count();
        assert_eq!(s.charts[0].series.len(), measured);
        // Every method at each size (one here), the remote worker and the async task.
        assert_eq!(s.tables[0].rows.len(), measured + usize::from(remote) + 1);
        assert!(
            s.method
                .contains("create + first instruction + exit + reap")
        );
    }

    #[test]
    fn quick_profile_sweeps_parent_size() {
        let sizes = Spawn::ballast_sizes(Profile::Quick);
        assert_eq!(sizes[0], 0);
        assert!(sizes.len() >= 2, "{sizes:?}");
    }
}

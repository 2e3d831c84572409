//! `sandbox`: process mode as a security boundary.
//!
//! A "compromised task" (a task that gained code execution from hostile input) runs through
//! a matrix of attacks, each a plain `fn` (in `attack`), grouped in classes, each class
//! tried by more than one route where there is more than one: files, the network, processes,
//! the parent; signals to a victim process the lab starts (`kill`, `tgkill`,
//! `pidfd_send_signal`, `rt_sigqueueinfo`, and `F_SETOWN`/`FIOSETOWN` + `O_ASYNC` on the
//! worker's request pipe, so that the parent's next write signals); the terminal (`TIOCSTI`
//! on an inherited terminal with a null byte, on the lab's own pty through `/proc`); the
//! parent's stdio; inherited descriptors; a thread an initializer left running; the task
//! timeout and the memory limit (through the arena's header and shared mappings); a later
//! task's code and data; the memory shared with the pool; capabilities; metadata oracles;
//! and the seccomp filter itself (its own SIGSYS handler, a faked violation, `prctl`,
//! `futex` requeue and PI locks).
//!
//! Each attack runs on a fresh one-worker pool (a) on a worker thread (`Pool::threads(1)`:
//! with the lab's own rights), (b) in a plain worker process (`Pool::processes(1)`) and
//! (c) in a sandboxed one (`Sandbox::compute()`), and the lab decides from outside whether
//! it *worked* wherever it can look (see `cell`): the victim died of a signal, the typed
//! line arrived on the lab's pty, the task outlived its timeout, the worker's resident
//! memory passed its limit, a later innocent task returned another value, the bytes matched
//! the lab's own read. After every attack the same pool maps 64 squares and the lab checks
//! every value: a pool that no longer maps right within a second counts as the attack
//! working. An attack that cannot be set up in a place is n/a, with the reason.
//!
//! Every attack is bounded: only the lab's own victim is signalled, nothing is typed into a
//! real terminal, files written are removed, memory attacks stop at 256 MiB.
//!
//! The section's first note says "N of N stopped" for the sandboxed worker, with the attacks
//! that got through; the `security` verdict confirms the boundary only when all are stopped
//! and the plain worker shows attacks working.
//!
//! Then what the sandbox costs: worker start (build + first result) and a task's round trip
//! (`submit(..).join()` of a trivial task), with and without the sandbox.
//!
//! The folder: `attack.rs` holds the attacks (each a plain `fn` run as the task) and their
//! classes; `cell.rs` runs one attack in one place and judges from outside whether it worked;
//! this file holds the experiment, its result types and the section. Only [`SandboxLab`], the
//! result types, [`Attack`], [`Class`] and [`Place`] are for use outside the folder.

use std::time::Instant;

use anyhow::{Context, Result, bail};
use proctor::{LayerStatus, Pool, Sandbox, SandboxReport, TaskError};
use serde::{Deserialize, Serialize};

use super::{Experiment, Placement};
use crate::measure::{Measurement, Plan, allowed_cpus, measure, pin_current_thread, time_ops};
use crate::report::{Chart, ChartKind, Figure, Profile, Section, Series, Table, Unit};
use crate::verdict::keys;
use crate::{LabConfig, Progress};

/// The sandbox experiment.
#[derive(Debug, Clone, Copy, Default)]
pub struct SandboxLab;

/// Worker start with the sandbox at most this many times the start without it (the target).
pub const START_TARGET: f64 = 1.5;

/// A task's round trip with the sandbox at most this many times the one without (the target).
pub const RTT_TARGET: f64 = 1.05;

mod attack;
mod cell;

pub use attack::{Attack, Class};

/// Where an attack runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Place {
    /// On a worker thread of the lab.
    Thread,
    /// In a plain worker process.
    Process,
    /// In a worker process under `Sandbox::compute()`.
    Sandboxed,
}

impl Place {
    /// Every place, in report order.
    pub const ALL: [Place; 3] = [Place::Thread, Place::Process, Place::Sandboxed];

    /// The word figure keys use.
    pub fn key(self) -> &'static str {
        match self {
            Place::Thread => "thread",
            Place::Process => "process",
            Place::Sandboxed => "sandboxed",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Place::Thread => "thread",
            Place::Process => "plain process",
            Place::Sandboxed => "sandboxed process",
        }
    }
}

/// What one attack came to in one place.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// The attack worked: the lab saw its effect (or, where it cannot look, the task got what
    /// it asked for; the method says which).
    Worked {
        /// What it got, and how the lab knows.
        detail: String,
    },
    /// The task did its part and the lab saw no effect.
    NoEffect {
        /// What the task did, and what the lab saw.
        detail: String,
    },
    /// A system call failed (e.g. EACCES), or the pool refused to build, and the task went
    /// on.
    Refused {
        /// The error the task saw.
        error: String,
    },
    /// The sandbox stopped the worker at a forbidden system call.
    Stopped {
        /// The call, by name where known.
        syscall: String,
    },
    /// The task did not end with its own result: its worker crashed, it timed out, or it
    /// broke the pool's protocol (a codec error).
    Broke {
        /// The task's error.
        error: String,
    },
    /// Not tried here, and why.
    NotApplicable {
        /// Why not.
        why: String,
    },
}

impl Outcome {
    /// True when the attack worked.
    pub fn worked(&self) -> bool {
        matches!(self, Outcome::Worked { .. })
    }

    /// True when the attack was tried.
    pub fn tried(&self) -> bool {
        !matches!(self, Outcome::NotApplicable { .. })
    }

    /// The outcome of a task that did not get its own `Ok`.
    fn failed(r: Result<String, TaskError>) -> Outcome {
        match r {
            Ok(error) => Outcome::Refused { error },
            Err(TaskError::SandboxViolation { syscall, .. }) => Outcome::Stopped {
                syscall: syscall.to_string(),
            },
            Err(e) => Outcome::Broke {
                error: e.to_string(),
            },
        }
    }

    fn cell(&self) -> String {
        match self {
            Outcome::Worked { detail } => format!("WORKED: {detail}"),
            Outcome::NoEffect { detail } => format!("no effect: {detail}"),
            Outcome::Refused { error } => format!("refused: {error}"),
            Outcome::Stopped { syscall } => format!("stopped by the sandbox at {syscall}"),
            Outcome::Broke { error } => format!("task failed: {error}"),
            Outcome::NotApplicable { why } => format!("n/a: {why}"),
        }
    }
}

/// One attack in one place.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CellResult {
    /// The attack.
    pub attack: Attack,
    /// Where it ran.
    pub place: Place,
    /// What came of it.
    #[serde(flatten)]
    pub outcome: Outcome,
    /// Whether the same pool then mapped 64 squares with every value right, within a second
    /// (`None`: not checked, the attack was not run).
    pub pool_intact: Option<bool>,
}

impl CellResult {
    /// True when the attack worked, or left the pool unable to map right: either way a
    /// compromised task changed what it should not.
    pub fn worked(&self) -> bool {
        self.outcome.worked() || self.pool_intact == Some(false)
    }
}

/// Worker start and round trip, with and without the sandbox.
#[derive(Debug, Clone, Serialize)]
pub struct Cost {
    /// Build + first result of `Pool::processes(1)`, one per repetition, ns.
    pub start_plain_ns: Vec<f64>,
    /// The same with `Sandbox::compute()`.
    pub start_sandboxed_ns: Vec<f64>,
    /// The same with `Sandbox::compute().network_namespace(true)`: a fresh network namespace
    /// too, the layer one asks for apart, to show what it costs.
    pub start_netns_ns: Vec<f64>,
    /// One task's `submit(..).join()` under the preset itself, where every task gets a fresh
    /// worker (so each includes a worker's start), one per repetition, ns.
    pub fresh_task_ns: Vec<f64>,
    /// Round trips, one entry per placement measured.
    pub rtt: Vec<RttResult>,
}

/// A task's round trip at one placement.
#[derive(Debug, Clone, Serialize)]
pub struct RttResult {
    /// Where it ran.
    pub(crate) placement: Placement,
    /// Without the sandbox (the median round).
    pub plain: Measurement,
    /// With it (the median round).
    pub sandboxed: Measurement,
    /// Each round's plain figure, in the order they ran.
    pub plain_rounds: Vec<f64>,
    /// Each round's sandboxed figure.
    pub sandboxed_rounds: Vec<f64>,
}

/// Every result behind the section, for `Section::data`.
#[derive(Debug, Clone, Serialize)]
pub struct SandboxResult {
    /// How each layer of `Sandbox::compute()` came out in the worker.
    pub report: SandboxReport,
    /// Forks the fork attack tries in a worker process.
    pub forks_process: u32,
    /// Forks it tries on a thread (of the lab itself).
    pub forks_thread: u32,
    /// The loopback port the lab listened on.
    pub port: u16,
    /// Connections the lab's listener saw, over the whole experiment.
    pub connections_seen: u64,
    /// The file the oracle attacks ask about.
    pub oracle_path: String,
    /// Every attack in every place.
    pub cells: Vec<CellResult>,
    /// What the sandbox costs.
    pub cost: Cost,
}

fn noop(n: u64) -> u64 {
    n
}

/// Pins a worker to the first CPU it may run on (the lab pins itself to its own first).
fn pin_worker() {
    if let Some(&cpu) = allowed_cpus().first() {
        crate::measure::pin_to_raw(cpu);
    }
}

/// The CPUs a worker may run on (to check its pin).
fn worker_cpus(_: ()) -> Vec<usize> {
    allowed_cpus()
}

fn compute_sandbox() -> Sandbox {
    Sandbox::compute().allow_unavailable(true)
}

/// Build + first result of a one-worker process pool with `sandbox` (or none); the pool is
/// dropped outside the interval.
fn start_once(sandbox: Option<Sandbox>) -> Result<f64> {
    let t0 = Instant::now();
    let mut b = Pool::processes(1).forward_stderr(false);
    if let Some(s) = sandbox {
        b = b.sandbox(s);
    }
    let pool = b.build().context("build a one-worker process pool")?;
    let got = pool.submit(noop, 7).join().context("its first task")?;
    let ns = t0.elapsed().as_nanos() as f64;
    drop(pool);
    if got != 7 {
        bail!("the first task returned {got}, not 7");
    }
    Ok(ns)
}

/// One round of the round trip at `placement`: a fresh pool, `submit(noop).join()` in
/// calibrated batches.
fn rtt_once(plan: &Plan, placement: Placement, sandboxed: bool) -> Result<Measurement> {
    let _pin = match placement.cpus() {
        Some((cpu, _)) => Some(pin_current_thread(cpu)?),
        None => None,
    };
    let mut b = Pool::processes(1).forward_stderr(false);
    if sandboxed {
        // The filters' own cost on a round trip: one worker, reused (the preset's fresh
        // worker per task is measured apart, as what a task costs there).
        b = b.sandbox(compute_sandbox().reuse_workers(true));
    }
    if placement.cpus().is_some() {
        b = b.init_worker(pin_worker);
    }
    let pool = b.build().context("build a one-worker process pool")?;
    if let Some((cpu, _)) = placement.cpus() {
        let cpus = pool
            .submit(worker_cpus, ())
            .join()
            .context("ask the worker its CPUs")?;
        if cpus != [cpu] {
            bail!("the worker runs on CPUs {cpus:?}, not on cpu {cpu} with the lab");
        }
    }
    let mut i = 0u64;
    measure(plan, |n, sampler| {
        time_ops(n, sampler, || {
            i += 1;
            let got = pool.submit(noop, std::hint::black_box(i)).join()?;
            if got != i {
                bail!("the round trip returned {got}, not {i}");
            }
            Ok(())
        })
    })
}

impl Experiment for SandboxLab {
    fn id(&self) -> &'static str {
        "sandbox"
    }

    fn title(&self) -> &'static str {
        "Process mode as a security boundary"
    }

    fn run(&self, config: &LabConfig, progress: &mut dyn Progress) -> Result<Section> {
        let started = Instant::now();
        let (forks_process, forks_thread, starts, rounds) = match config.profile {
            Profile::Tiny => (20, 10, 3, 1),
            Profile::Quick => (1_000, 100, 20, super::ROUNDS),
            Profile::Full => (1_000, 1_000, 50, super::ROUNDS),
        };
        let plan = Plan::for_profile(config.profile).with_iterations(config.iterations);
        let cpus = allowed_cpus();
        let placements: Vec<Placement> = match cpus.first() {
            Some(&c) => vec![Placement::Pinned(c), Placement::Unpinned],
            None => vec![Placement::Unpinned],
        };
        progress.begin("sandbox", (Place::ALL.len() + 2 + placements.len()) as u64);

        let oracle_path = if std::path::Path::new("/etc/shadow").exists() {
            "/etc/shadow"
        } else {
            "/etc/passwd"
        };
        let mut env = cell::Env::new(attack::Try {
            attack: Attack::ReadPasswd,
            port: 0,
            home: std::env::var("HOME").unwrap_or_else(|_| "/root".into()),
            scratch: std::env::temp_dir().display().to_string(),
            forks: 0,
            pid: 0,
            fd: -1,
            path: oracle_path.to_string(),
        })?;
        let port = env.base.port;

        // The layers, as a sandboxed worker reports them.
        let report = Pool::processes(1)
            .forward_stderr(false)
            .sandbox(compute_sandbox())
            .build()
            .context("build a sandboxed one-worker pool")?
            .sandbox_report()
            .cloned()
            .context("a sandboxed pool reports its layers")?;
        let mut cells = Vec::new();
        for place in Place::ALL {
            let forks = if place == Place::Thread {
                forks_thread
            } else {
                forks_process
            };
            for attack in Attack::ALL {
                cells.push(cell::run(attack, place, &mut env, forks));
            }
            progress.advance(1, &format!("attacks in a {}", place.label()));
        }
        let connections_seen = env.connections_seen;
        drop(env);

        // Worker start: interleaved, so that outside load spreads over both.
        let netns = || Some(compute_sandbox().network_namespace(true));
        let (mut start_plain_ns, mut start_sandboxed_ns, mut start_netns_ns) =
            (Vec::new(), Vec::new(), Vec::new());
        start_once(None)?;
        start_once(Some(compute_sandbox()))?;
        start_once(netns())?;
        for _ in 0..starts {
            start_plain_ns.push(start_once(None)?);
            start_sandboxed_ns.push(start_once(Some(compute_sandbox()))?);
            start_netns_ns.push(start_once(netns())?);
        }
        // A task under the preset: a fresh worker each (one pool, warm).
        let preset = Pool::processes(1)
            .forward_stderr(false)
            .sandbox(compute_sandbox())
            .build()
            .context("build a pool under Sandbox::compute()")?;
        let mut fresh_task_ns = Vec::new();
        for k in 0..=starts {
            let t0 = Instant::now();
            let got = preset
                .submit(noop, k as u64)
                .join()
                .context("a task under the preset")?;
            if got != k as u64 {
                bail!("a task under the preset returned {got}, not {k}");
            }
            if k > 0 {
                fresh_task_ns.push(t0.elapsed().as_nanos() as f64);
            }
        }
        drop(preset);
        progress.advance(2, "worker start");

        let mut rtt = Vec::new();
        for &placement in &placements {
            // Rounds alternate which side goes first.
            let (mut plain, mut sandboxed) = (Vec::new(), Vec::new());
            for k in 0..rounds {
                if k % 2 == 0 {
                    plain.push(rtt_once(&plan, placement, false)?);
                    sandboxed.push(rtt_once(&plan, placement, true)?);
                } else {
                    sandboxed.push(rtt_once(&plan, placement, true)?);
                    plain.push(rtt_once(&plan, placement, false)?);
                }
            }
            let plain_rounds: Vec<f64> = plain.iter().map(Measurement::value).collect();
            let sandboxed_rounds: Vec<f64> = sandboxed.iter().map(Measurement::value).collect();
            let plain = plain.swap_remove(middle(&plain_rounds));
            let sandboxed = sandboxed.swap_remove(middle(&sandboxed_rounds));
            rtt.push(RttResult {
                placement,
                plain,
                sandboxed,
                plain_rounds,
                sandboxed_rounds,
            });
            progress.advance(1, &format!("round trip, {}", placement.describe()));
        }
        progress.end();

        let result = SandboxResult {
            report,
            forks_process,
            forks_thread,
            port,
            connections_seen,
            oracle_path: oracle_path.to_string(),
            cells,
            cost: Cost {
                start_plain_ns,
                start_sandboxed_ns,
                start_netns_ns,
                fresh_task_ns,
                rtt,
            },
        };
        let mut section = section_from(&result);
        section.elapsed_ms = started.elapsed().as_secs_f64() * 1e3;
        Ok(section)
    }
}

/// The index of the median value (the middle one; `values` is not empty).
fn middle(values: &[f64]) -> usize {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    order[(order.len() - 1) / 2]
}

/// Attacks tried in `place` (not n/a).
fn tried(cells: &[CellResult], place: Place) -> usize {
    cells
        .iter()
        .filter(|c| c.place == place && c.outcome.tried())
        .count()
}

/// The cells of `place` where the attack worked (see [`CellResult::worked`]).
fn worked(cells: &[CellResult], place: Place) -> Vec<&CellResult> {
    cells
        .iter()
        .filter(|c| c.place == place && c.worked())
        .collect()
}

/// The layers that were asked for and are not in force.
fn unavailable(report: &SandboxReport) -> Vec<String> {
    report
        .layers
        .iter()
        .filter_map(|l| match &l.status {
            LayerStatus::Unavailable(why) => Some(format!("{} ({why})", l.name)),
            _ => None,
        })
        .collect()
}

/// The classes of [`Attack::ALL`], counted.
fn classes() -> usize {
    let mut seen: Vec<Class> = Attack::ALL.iter().map(|a| a.class()).collect();
    seen.dedup();
    seen.len()
}

/// The section of a sandbox run: the attack matrix's figures, the cost, the tables, the
/// chart and the notes, in the order the report shows them.
fn section_from(r: &SandboxResult) -> Section {
    let mut section = Section::new("sandbox", "Process mode as a security boundary", &method(r));
    matrix_figures(&mut section, r);
    let mut cost_rows = start_figures(&mut section, r);
    fresh_task_figures(&mut section, r);
    rtt_figures(&mut section, r, &mut cost_rows);
    section.tables.push(matrix_table(r));
    section.tables.push(layers_table(r));
    section.tables.push(cost_table(cost_rows));
    section.charts.push(worked_chart(r));
    closing_notes(&mut section, r);
    section.set_data(&r);
    section
}

/// What the section measured and how, with the run's settings.
fn method(r: &SandboxResult) -> String {
    format!(
        "A compromised task (a plain fn, as a task that gained code execution from hostile \
             input) tries {} attacks in {} classes (each class but the network and processes \
             by more than one route), each attack on a fresh one-worker pool: on a worker thread (Pool::threads(1), the lab's \
             own rights), in a plain worker process (Pool::processes(1)) and in a sandboxed one \
             (Sandbox::compute(), with network_namespace(true) for the capability attacks, \
             built with allow_unavailable so that a missing layer shows instead of stopping the \
             experiment). Files: read /etc/passwd (worked = the same bytes the lab reads), list \
             $HOME, write a file in the temporary directory (removed again). Network: connect \
             to a loopback port the lab listens on (worked = the lab accepted it). Processes: \
             fork {} processes one after another ({} on a thread; each _exits at once and is \
             reaped). The parent: kill(parent, 0), PTRACE_SEIZE the parent (then interrupt, \
             wait, detach). Signals, to a `sleep` the lab starts for each attack (worked = it \
             died of a signal): kill, tgkill, pidfd_send_signal, rt_sigqueueinfo with SIGUSR1, \
             and, on the worker's request pipe, F_SETOWN + F_SETSIG(SIGUSR1) + O_ASYNC, or \
             FIOSETOWN (F_SETOWN where, as on a pipe, there is none) + ioctl(FIOASYNC) \
             (SIGIO), so that the pool's next request signals the victim. The terminal: TIOCSTI \
             on an inherited stdio descriptor that is a terminal with a null byte pointer \
             (EFAULT = every permission check passed; nothing is typed; n/a when the lab has \
             no terminal), and TIOCSTI into a pty the lab opened, reached through \
             /proc/<lab>/fd (worked = the lab reads the typed line). The parent's stdio: \
             zero-length read(0), write(1) and pwrite(1) (worked = allowed, and /proc shows \
             the worker's descriptor is the lab's own), and write(2) of an escape sequence and \
             a line, with the pool's stderr forwarding on and the lab's stderr briefly \
             redirected into a pipe (worked = the line arrives verbatim, or fd 2 is the lab's \
             own). Inherited descriptors: read, or dup and write, every descriptor beyond \
             stdio that is not a memfd (worked = one of them is neither a memfd nor a file the \
             lab holds, by /proc). An initializer's thread (init_worker starts a thread that \
             serves the task over a static channel): it reads /etc/passwd (the same bytes) \
             and connects to the lab's port (accepted). The task timeout ({} ms): the task \
             writes u64::MAX into the arena's STARTED_AT word, or 0 into STARTED, then sleeps \
             {} ms (worked = its own Ok came after that sleep). The memory limit ({} MiB): \
             {} MiB through MAP_SHARED|MAP_ANONYMOUS, an ftruncate-grown arena, or mremap, \
             touched and held 150 ms (worked = the lab saw the worker's VmRSS above the \
             limit). A later task: mprotect(RWX) and patch an innocent task's code, or set a \
             static it returns (worked = the next, innocent task on the same pool returned \
             something else; on a thread the lab undoes both). Shared memory: overwrite every memfd, hold the doorbell's sleeper count at zero \
             (worked = the pool's next map wrong or over a second, \
             or the task's outcome a second late). Capabilities: the worker's CapEff, read by \
             the lab from /proc (worked = not zero), and a raw ICMP socket. Metadata oracles \
             on {}: statx and newfstatat with AT_EMPTY_PATH and a path, faccessat (worked = \
             the lab's own answer), readlink(/proc/<lab>/cwd) (the lab's directory). The \
             filter itself: its own SIGSYS handler around a forbidden getuid (worked = the \
             same worker lives on with the task's Ok) and a faked violation line and exit code \
             (worked = the pool reports a violation), both where a filter is (n/a elsewhere); \
             prctl(PR_SET_NAME, sshd) \
             (worked = the lab sees the name in /proc), FUTEX_CMP_REQUEUE of the doorbell's \
             waiters and FUTEX_TRYLOCK_PI on the arena's header words (judged as the shared \
             memory attacks). Where the lab has no view from \
             outside (home, write, fork, the parent, the raw socket, the inherited terminal) \
             the task's own Ok decides. Every attack is judged with the pool's next map too: \
             64 squares, every value right, within a second; a cell whose map was not counts \
             as worked. Outcome words: WORKED, no effect (the task did its part, the lab saw \
             nothing), refused (a call failed, or the pool would not build), stopped (the \
             sandbox's TaskError::SandboxViolation), task failed (another TaskError), n/a \
             (cannot be set up there, with the reason). Cost: worker start = \
             Pool::processes(1) build + the first task's result (the pool is dropped outside \
             the interval; a sandboxed build includes the round trip that fetches the sandbox \
             report), {} repetitions each after one warm-up, plain, sandboxed, and sandboxed \
             with a fresh network namespace too (Sandbox::network_namespace, a layer asked for \
             apart) interleaved, medians; a task under the preset = submit(trivial \
             fn).join() on a Sandbox::compute() pool, which starts a fresh worker for every \
             task, as many times, median; round trip = submit(trivial fn).join() on a warm \
             one-worker pool (sandboxed: Sandbox::compute().reuse_workers(true), the filters' \
             own cost), calibrated batches (median of the batch means), {} independent \
             round(s) per side with a fresh pool each, the sides alternating which goes \
             first; pinned = the lab and the worker both on one CPU (the worker pins itself in \
             init_worker, before the sandbox, and the lab checks its affinity), unpinned = the \
             scheduler's choice. Targets: start ≤ {START_TARGET}×, round trip ≤ \
             {RTT_TARGET}× (one run, not a verdict; a round-trip ratio over its target whose \
             two sides' rounds overlap (min–max; p1–p99 with one round) is marked within the \
             noise).",
        Attack::ALL.len(),
        classes(),
        r.forks_process,
        r.forks_thread,
        cell::TIMEOUT.as_millis(),
        attack::TIMEOUT_SLEEP.as_millis(),
        cell::MEMORY_LIMIT >> 20,
        attack::LIMIT_BYTES >> 20,
        r.oracle_path,
        r.cost.start_plain_ns.len(),
        r.cost.rtt.first().map_or(0, |x| x.plain_rounds.len()),
    )
}

/// The attack matrix in figures: what was tried and what worked, by where the task ran.
fn matrix_figures(section: &mut Section, r: &SandboxResult) {
    let n = |key: &str, label: &str, v: f64| Figure::new(key, label, v, Unit::Count);
    section.figures.push(n(
        "sandbox.attacks",
        "attacks in the matrix",
        Attack::ALL.len() as f64,
    ));
    for place in Place::ALL {
        section.figures.push(n(
            &format!("sandbox.tried.{}", place.key()),
            &format!("attacks tried (not n/a), {}", place.label()),
            tried(&r.cells, place) as f64,
        ));
        section.figures.push(n(
            &format!("sandbox.worked.{}", place.key()),
            &format!("attacks that worked, {}", place.label()),
            worked(&r.cells, place).len() as f64,
        ));
    }
    let sandboxed_tried = tried(&r.cells, Place::Sandboxed);
    let sandboxed_worked = worked(&r.cells, Place::Sandboxed);
    section.figures.push(n(
        keys::SANDBOX_STOPPED_SANDBOXED,
        "attacks tried in a sandboxed worker that did not work",
        (sandboxed_tried - sandboxed_worked.len()) as f64,
    ));
    let broken = r
        .cells
        .iter()
        .filter(|c| c.pool_intact == Some(false))
        .count();
    section.figures.push(n(
        keys::SANDBOX_POOL_BROKEN,
        "attacks after which the pool's next map was not all right",
        broken as f64,
    ));
    section.notes.push(format!(
        "Sandboxed worker: {} of {} stopped.{}",
        sandboxed_tried - sandboxed_worked.len(),
        sandboxed_tried,
        if sandboxed_worked.is_empty() {
            String::new()
        } else {
            format!(
                " Worked: {}.",
                sandboxed_worked
                    .iter()
                    .map(|c| c.attack.key())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
    ));
    let missing = unavailable(&r.report);
    section.figures.push(n(
        "sandbox.layers_unavailable",
        "sandbox layers asked for but unavailable on this kernel",
        missing.len() as f64,
    ));
}

/// What a worker start costs, plain, sandboxed and with a network namespace; the first row
/// of the cost table.
fn start_figures(section: &mut Section, r: &SandboxResult) -> Vec<Vec<String>> {
    let start = |key: &str, label: &str, v: &[f64]| {
        let (median, spread) = crate::stats::median_and_spread(v);
        let mut f = Figure::new(key, label, median, Unit::Ns).placed("unpinned");
        if let Some(s) = spread {
            f = f.with_spread(s);
        }
        f
    };
    let plain_start = crate::stats::median(&r.cost.start_plain_ns);
    let sandboxed_start = crate::stats::median(&r.cost.start_sandboxed_ns);
    section.figures.push(start(
        "sandbox.start.plain",
        "worker start (build + first result), no sandbox",
        &r.cost.start_plain_ns,
    ));
    section.figures.push(start(
        "sandbox.start.sandboxed",
        "worker start (build + first result), Sandbox::compute()",
        &r.cost.start_sandboxed_ns,
    ));
    section.figures.push(start(
        "sandbox.start.netns",
        "worker start (build + first result), Sandbox::compute().network_namespace(true)",
        &r.cost.start_netns_ns,
    ));
    section.figures.push(
        Figure::new(
            "sandbox.start.ratio",
            "worker start, sandboxed / plain",
            sandboxed_start / plain_start,
            Unit::Ratio,
        )
        .placed("unpinned"),
    );
    let cost_rows = vec![cost_row(
        "worker start",
        "unpinned",
        (plain_start, sandboxed_start),
        // Single starts' p1–p99 measure the machine's tail (one preempted fork), not the
        // uncertainty of their median: no noise range, a plain yes or no.
        (None, None),
        START_TARGET,
    )];
    let netns_start = crate::stats::median(&r.cost.start_netns_ns);
    if netns_start.is_finite() {
        section.notes.push(format!(
            "Worker start: {} plain, {} sandboxed, {} with a fresh network namespace too \
             (Sandbox::compute().network_namespace(true), a layer asked for apart): the \
             namespace alone adds {}.",
            crate::units::format_value(plain_start, Unit::Ns),
            crate::units::format_value(sandboxed_start, Unit::Ns),
            crate::units::format_value(netns_start, Unit::Ns),
            crate::units::format_value(netns_start - sandboxed_start, Unit::Ns),
        ));
    }
    cost_rows
}

/// What a task costs under the preset, which starts a fresh worker for each.
fn fresh_task_figures(section: &mut Section, r: &SandboxResult) {
    let fresh = crate::stats::median(&r.cost.fresh_task_ns);
    if fresh.is_finite() {
        section.figures.push(
            Figure::new(
                "sandbox.task.fresh",
                "a task under Sandbox::compute() (a fresh worker each: its start included)",
                fresh,
                Unit::Ns,
            )
            .placed("unpinned"),
        );
        if let Some(x) = r
            .cost
            .rtt
            .iter()
            .find(|x| x.placement == Placement::Unpinned)
        {
            section.notes.push(format!(
                "Under the preset every task gets a fresh worker, so that no task can decide \
                 what a later one returns: a task costs {} there (median of {}), against {} \
                 for a round trip on a reused plain worker ({:.0}×). A sandbox with \
                 reuse_workers(true) keeps the round trip's cost (the rows above) and gives \
                 that guarantee up.",
                crate::units::format_value(fresh, Unit::Ns),
                r.cost.fresh_task_ns.len(),
                crate::units::format_value(x.plain.value(), Unit::Ns),
                fresh / x.plain.value(),
            ));
        }
    }
}

/// A task's round trip on a reused worker, plain and sandboxed, per placement; a row each.
fn rtt_figures(section: &mut Section, r: &SandboxResult, cost_rows: &mut Vec<Vec<String>>) {
    for x in &r.cost.rtt {
        let p = x.placement.key();
        let placed = x.placement.describe();
        section.figures.push(
            x.plain
                .figure(
                    &format!("sandbox.rtt.plain.{p}"),
                    "task round trip, no sandbox",
                )
                .placed(&placed)
                .with_rounds(&x.plain_rounds),
        );
        section.figures.push(
            x.sandboxed
                .figure(
                    &format!("sandbox.rtt.sandboxed.{p}"),
                    "task round trip, Sandbox::compute().reuse_workers(true)",
                )
                .placed(&placed)
                .with_rounds(&x.sandboxed_rounds),
        );
        section.figures.push(
            Figure::new(
                &format!("sandbox.rtt.ratio.{p}"),
                "task round trip, sandboxed / plain",
                x.sandboxed.value() / x.plain.value(),
                Unit::Ratio,
            )
            .placed(&placed),
        );
        cost_rows.push(cost_row(
            "task round trip",
            &placed,
            (x.plain.value(), x.sandboxed.value()),
            (
                noise(&x.plain_rounds, Some(x.plain.summary())),
                noise(&x.sandboxed_rounds, Some(x.sandboxed.summary())),
            ),
            RTT_TARGET,
        ));
    }
}

/// What a compromised task got, attack by attack and place by place.
fn matrix_table(r: &SandboxResult) -> Table {
    Table {
        title: "What a compromised task got, by where it ran".to_string(),
        columns: [
            "class",
            "attack",
            "thread",
            "plain process",
            "sandboxed process",
        ]
        .map(String::from)
        .to_vec(),
        rows: Attack::ALL
            .iter()
            .map(|&a| {
                let mut row = vec![a.class().label().to_string(), a.label().to_string()];
                for place in Place::ALL {
                    let cell = r.cells.iter().find(|c| c.attack == a && c.place == place);
                    row.push(match cell {
                        Some(c) => {
                            let after = match c.pool_intact {
                                Some(false) => " [POOL BROKEN AFTER]",
                                _ => "",
                            };
                            format!("{}{after}", c.outcome.cell())
                        }
                        None => "not run".to_string(),
                    });
                }
                row
            })
            .collect(),
    }
}

/// Each sandbox layer and whether this kernel applied it.
fn layers_table(r: &SandboxResult) -> Table {
    Table {
        title: "The compute sandbox's layers on this kernel".to_string(),
        columns: ["layer", "status"].map(String::from).to_vec(),
        rows: r
            .report
            .layers
            .iter()
            .map(|l| {
                vec![
                    l.name.clone(),
                    match &l.status {
                        LayerStatus::Applied => "applied".to_string(),
                        LayerStatus::NotAsked => "not asked for".to_string(),
                        LayerStatus::Unavailable(why) => format!("UNAVAILABLE: {why}"),
                    },
                ]
            })
            .collect(),
    }
}

/// What the sandbox costs, one row per figure.
fn cost_table(cost_rows: Vec<Vec<String>>) -> Table {
    Table {
        title: "What the sandbox costs".to_string(),
        columns: [
            "figure",
            "placement",
            "plain",
            "sandboxed",
            "ratio",
            "target",
            "met",
        ]
        .map(String::from)
        .to_vec(),
        rows: cost_rows,
    }
}

/// Attacks tried and attacks that worked, by where the task ran.
fn worked_chart(r: &SandboxResult) -> Chart {
    Chart {
        id: "worked".to_string(),
        title: "Attacks that worked, by where the task ran".to_string(),
        kind: ChartKind::Bar,
        x_label: "where the task ran".to_string(),
        y_label: "attacks that worked".to_string(),
        x_log: false,
        y_log: false,
        categories: Place::ALL.iter().map(|p| p.label().to_string()).collect(),
        series: vec![
            Series {
                name: "tried".to_string(),
                points: Place::ALL
                    .iter()
                    .enumerate()
                    .map(|(i, &p)| (i as f64, tried(&r.cells, p) as f64))
                    .collect(),
            },
            Series {
                name: "worked".to_string(),
                points: Place::ALL
                    .iter()
                    .enumerate()
                    .map(|(i, &p)| (i as f64, worked(&r.cells, p).len() as f64))
                    .collect(),
            },
        ],
    }
}

/// Layers that were missing, what a thread is, and a listener that disagrees with the attacks.
fn closing_notes(section: &mut Section, r: &SandboxResult) {
    let missing = unavailable(&r.report);
    if !missing.is_empty() {
        section.notes.push(format!(
            "WARNING: the compute sandbox ran WITHOUT these layers, which this kernel or this \
             process's privileges do not give: {}. The sandboxed column shows what a task \
             can do with the rest.",
            missing.join("; ")
        ));
    }
    section.notes.push(
        "A thread is not a boundary: it has every right of its process, so what the OS lets \
         the lab do, a task on a thread does (the thread column); its n/a cells are attacks a \
         thread needs no trick for. A plain worker process has the lab's user, files and stdio \
         too: it is a boundary against crashes, not against a hostile task."
            .to_string(),
    );
    let connects = r
        .cells
        .iter()
        .filter(|c| {
            matches!(c.attack, Attack::Connect | Attack::InitThreadConnect) && c.outcome.worked()
        })
        .count() as u64;
    if connects != r.connections_seen {
        section.notes.push(format!(
            "The lab's listener saw {} connection(s) where {connects} connect attack(s) \
             reported success.",
            r.connections_seen
        ));
    }
}

/// A (low, high) range of values.
type Range = (f64, f64);

/// The range a cost cannot be told apart within: the min–max of its independent rounds where
/// there are several, else the p1–p99 of its samples (as the verdicts judge).
fn noise(rounds: &[f64], samples: Option<crate::stats::Summary>) -> Option<Range> {
    if rounds.len() >= 2 {
        let min = rounds.iter().copied().fold(f64::INFINITY, f64::min);
        let max = rounds.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        return Some((min, max));
    }
    samples.map(|s| {
        let s = s.spread();
        (s.p1, s.p99)
    })
}

/// A row of the cost table. A ratio over the target whose two sides' noise ranges overlap is
/// "no (within the noise)": this run cannot tell it from one that meets the target.
fn cost_row(
    what: &str,
    placed: &str,
    (plain, sandboxed): (f64, f64),
    ranges: (Option<Range>, Option<Range>),
    target: f64,
) -> Vec<String> {
    let ratio = sandboxed / plain;
    let overlap = match ranges {
        (Some(a), Some(b)) => a.0 <= b.1 && b.0 <= a.1,
        _ => false,
    };
    let met = if ratio <= target {
        "yes"
    } else if overlap {
        "no (within the noise)"
    } else {
        "NO"
    };
    vec![
        what.to_string(),
        placed.to_string(),
        crate::units::format_value(plain, Unit::Ns),
        crate::units::format_value(sandboxed, Unit::Ns),
        format!("{ratio:.2}×"),
        format!("≤ {target}×"),
        met.to_string(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_errors_map_to_outcomes() {
        assert_eq!(
            Outcome::failed(Ok("Permission denied".into())),
            Outcome::Refused {
                error: "Permission denied".into()
            }
        );
        let stopped = Outcome::failed(Err(TaskError::SandboxViolation {
            syscall: "socket".into(),
            worker: 1,
            task: 2,
        }));
        assert_eq!(
            stopped,
            Outcome::Stopped {
                syscall: "socket".into()
            }
        );
        assert!(stopped.cell().contains("at socket") && stopped.tried() && !stopped.worked());
        let broke = Outcome::failed(Err(TaskError::Codec {
            message: "bad record".into(),
            task: 3,
        }));
        assert!(matches!(broke, Outcome::Broke { .. }) && !broke.worked());
        assert!(!Outcome::NotApplicable { why: "x".into() }.tried());
    }

    /// Every attack worked on a thread and in a plain process (but the scribble, n/a on a
    /// thread), and came to `sandboxed` in the sandboxed worker.
    fn result(sandboxed: Outcome, landlock: LayerStatus) -> SandboxResult {
        let mut cells = Vec::new();
        for attack in Attack::ALL {
            for place in Place::ALL {
                let outcome = match place {
                    Place::Sandboxed => sandboxed.clone(),
                    Place::Thread if attack == Attack::Scribble => Outcome::NotApplicable {
                        why: "shares the address space".into(),
                    },
                    _ => Outcome::Worked {
                        detail: "got it".into(),
                    },
                };
                let pool_intact = outcome.tried().then_some(true);
                cells.push(CellResult {
                    attack,
                    place,
                    outcome,
                    pool_intact,
                });
            }
        }
        let rtt = |placement| RttResult {
            placement,
            plain: crate::fixture::measurement(5_000.0),
            sandboxed: crate::fixture::measurement(5_100.0),
            plain_rounds: vec![5_000.0],
            sandboxed_rounds: vec![5_100.0],
        };
        SandboxResult {
            report: SandboxReport {
                layers: vec![
                    proctor::Layer {
                        name: "landlock".into(),
                        status: landlock,
                    },
                    proctor::Layer {
                        name: "seccomp".into(),
                        status: LayerStatus::Applied,
                    },
                ],
            },
            forks_process: 1000,
            forks_thread: 100,
            port: 4242,
            connections_seen: 4,
            oracle_path: "/etc/shadow".into(),
            cells,
            cost: Cost {
                start_plain_ns: vec![400e3, 420e3, 380e3],
                start_sandboxed_ns: vec![1.0e6, 1.1e6, 0.9e6],
                start_netns_ns: vec![600e3, 610e3, 590e3],
                fresh_task_ns: vec![700e3, 720e3, 690e3],
                rtt: vec![rtt(Placement::Pinned(0)), rtt(Placement::Unpinned)],
            },
        }
    }

    fn value(s: &Section, key: &str) -> f64 {
        s.figure(key)
            .unwrap_or_else(|| panic!("figure {key}"))
            .value
    }

    #[test]
    fn the_section_counts_what_worked_per_place_and_the_broken_pools() {
        let stopped = Outcome::Stopped {
            syscall: "openat".into(),
        };
        let mut r = result(stopped, LayerStatus::Applied);
        // The scribble in the plain process left the pool broken in this made-up run.
        let all = Attack::ALL.len() as f64;
        let c = r
            .cells
            .iter_mut()
            .find(|c| c.attack == Attack::Scribble && c.place == Place::Process)
            .unwrap();
        c.outcome = Outcome::NoEffect {
            detail: "overwrote 3".into(),
        };
        c.pool_intact = Some(false);
        let s = section_from(&r);
        assert_eq!(value(&s, "sandbox.attacks"), all);
        assert_eq!(value(&s, "sandbox.tried.thread"), all - 1.0);
        assert_eq!(value(&s, "sandbox.worked.thread"), all - 1.0);
        // A broken pool counts as worked, whatever the task's own account.
        assert_eq!(value(&s, "sandbox.worked.process"), all);
        assert_eq!(value(&s, "sandbox.tried.sandboxed"), all);
        assert_eq!(value(&s, "sandbox.worked.sandboxed"), 0.0);
        assert_eq!(value(&s, "sandbox.stopped.sandboxed"), all);
        assert_eq!(value(&s, "sandbox.pool_broken"), 1.0);
        assert_eq!(value(&s, "sandbox.layers_unavailable"), 0.0);
        assert!((value(&s, "sandbox.start.ratio") - 2.5).abs() < 1e-9);
        assert!((value(&s, "sandbox.rtt.ratio.pinned") - 1.02).abs() < 1e-9);
        assert_eq!(
            s.notes[0],
            format!("Sandboxed worker: {all} of {all} stopped.")
        );
        let attacks = &s.tables[0];
        assert_eq!(attacks.rows.len(), Attack::ALL.len());
        assert_eq!(attacks.rows[0][0], "files");
        assert!(attacks.rows[0][4].contains("stopped by the sandbox at openat"));
        let scribble = Attack::ALL
            .iter()
            .position(|&a| a == Attack::Scribble)
            .unwrap();
        assert!(
            attacks.rows[scribble][3].contains("POOL BROKEN"),
            "{:?}",
            attacks.rows[scribble]
        );
        assert!(attacks.rows[scribble][2].starts_with("n/a"));
        let cost = &s.tables[2];
        assert_eq!(cost.rows[0][6], "NO", "2.5× misses the 1.5× target");
        assert_eq!(cost.rows[1][6], "yes", "1.02× meets the 1.05× target");
        // 1.08× over rounds that overlap: this run cannot tell it from a met target.
        let near = cost_row(
            "task round trip",
            "unpinned",
            (5_000.0, 5_400.0),
            (
                noise(&[4_900.0, 5_000.0, 5_600.0], None),
                noise(&[5_300.0, 5_400.0, 5_500.0], None),
            ),
            RTT_TARGET,
        );
        assert_eq!(near[6], "no (within the noise)");
        let far = cost_row(
            "task round trip",
            "unpinned",
            (5_000.0, 5_400.0),
            (
                noise(&[4_900.0, 5_000.0, 5_100.0], None),
                noise(&[5_300.0, 5_400.0, 5_500.0], None),
            ),
            RTT_TARGET,
        );
        assert_eq!(far[6], "NO");
        // Four connects worked (two routes, thread and plain process), the listener saw four.
        assert!(!s.notes.iter().any(|n| n.contains("WARNING")));
        assert!(!s.notes.iter().any(|n| n.contains("listener saw")));
    }

    #[test]
    fn the_headline_names_what_got_through_the_sandbox() {
        let refused = Outcome::Refused {
            error: "Permission denied".into(),
        };
        let mut r = result(refused, LayerStatus::Applied);
        for c in r.cells.iter_mut().filter(|c| c.place == Place::Sandboxed) {
            if matches!(c.attack, Attack::TamperCode | Attack::SignalSetown) {
                c.outcome = Outcome::Worked {
                    detail: "did it".into(),
                };
            }
            if c.attack == Attack::DoorbellSleepers {
                c.pool_intact = Some(false);
            }
        }
        let s = section_from(&r);
        let all = Attack::ALL.len();
        assert_eq!(value(&s, "sandbox.worked.sandboxed"), 3.0);
        assert_eq!(value(&s, "sandbox.stopped.sandboxed"), (all - 3) as f64);
        assert_eq!(
            s.notes[0],
            format!(
                "Sandboxed worker: {} of {all} stopped. Worked: signal_setown, tamper_code, \
                 doorbell_sleepers.",
                all - 3
            )
        );
    }

    #[test]
    fn a_missing_layer_is_said_loudly() {
        let refused = Outcome::Refused {
            error: "Permission denied".into(),
        };
        let mut r = result(refused, LayerStatus::Unavailable("old kernel".into()));
        r.connections_seen = 5;
        let s = section_from(&r);
        assert_eq!(value(&s, "sandbox.layers_unavailable"), 1.0);
        assert_eq!(value(&s, "sandbox.worked.sandboxed"), 0.0);
        assert!(
            s.notes
                .iter()
                .any(|n| n.starts_with("WARNING") && n.contains("landlock (old kernel)")),
            "{:?}",
            s.notes
        );
        assert!(s.tables[1].rows[0][1].contains("UNAVAILABLE: old kernel"));
        // Four connects reported success, the listener saw five: said.
        assert!(s.notes.iter().any(|n| n.contains("listener saw 5")));
    }

    #[test]
    fn the_median_round_is_the_middle_value() {
        assert_eq!(middle(&[30.0, 10.0, 20.0]), 2);
        assert_eq!(middle(&[7.0]), 0);
    }

    #[test]
    fn every_class_has_more_than_one_route() {
        let mut seen: Vec<Class> = Attack::ALL.iter().map(|a| a.class()).collect();
        seen.dedup();
        let distinct: std::collections::HashSet<Class> = seen.iter().copied().collect();
        assert_eq!(
            seen.len(),
            distinct.len(),
            "each class's routes are adjacent"
        );
        assert_eq!(seen.len(), classes());
        for class in seen {
            let routes = Attack::ALL.iter().filter(|a| a.class() == class).count();
            let single = matches!(class, Class::Network | Class::Processes);
            assert!(routes > 1 || single, "{class:?} has {routes} route(s)");
        }
        let keys: std::collections::HashSet<&str> = Attack::ALL.iter().map(|a| a.key()).collect();
        assert_eq!(keys.len(), Attack::ALL.len());
    }
}

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

mod section;
use section::section_from;

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

#[cfg(test)]
mod tests;

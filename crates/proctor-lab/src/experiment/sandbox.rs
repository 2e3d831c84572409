//! `sandbox`: process mode as a security boundary.
//!
//! A "compromised task" (a task that gained code execution from hostile input) tries a fixed
//! list of attacks, each a plain `fn`:
//!
//! * read `/etc/passwd`, and list the user's home directory;
//! * write a file (in the temporary directory, removed again);
//! * connect to a loopback TCP port the lab listens on for the experiment's duration;
//! * fork 1 000 processes (each `_exit`s at once and is reaped before the next: at most one
//!   child is ever alive, so nothing is left running, whatever happens);
//! * signal its parent (signal 0: the right to signal, nothing sent) and `PTRACE_SEIZE` it
//!   (then interrupt, wait, detach: nothing is left traced);
//! * scribble on the shared memory it holds (every memfd-backed descriptor, found with
//!   `fstat`, mapped and overwritten).
//!
//! Each runs (a) on a worker thread (`Pool::threads(1)`: with the lab's own rights), (b) in a
//! plain worker process (`Pool::processes(1)`) and (c) in a sandboxed one
//! (`Sandbox::compute()`). After every attack the same pool maps 64 squares and the lab checks
//! every value: the pool must go on, whatever the attack did to its worker.
//!
//! Then what the sandbox costs: worker start (build + first result) and a task's round trip
//! (`submit(..).join()` of a trivial task), with and without the sandbox.

use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use proctor::{LayerStatus, Pool, Sandbox, SandboxReport, TaskError};
use serde::{Deserialize, Serialize};

use super::{Experiment, Placement};
use crate::measure::{Measurement, Plan, allowed_cpus, measure, pin_current_thread, time_ops};
use crate::report::{Chart, ChartKind, Figure, Profile, Section, Series, Table, Unit};
use crate::{LabConfig, Progress};

/// The sandbox experiment.
#[derive(Debug, Clone, Copy, Default)]
pub struct SandboxLab;

/// Worker start with the sandbox at most this many times the start without it (the target).
pub const START_TARGET: f64 = 1.5;

/// A task's round trip with the sandbox at most this many times the one without (the target).
pub const RTT_TARGET: f64 = 1.05;

/// What a compromised task tries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Attack {
    /// Read `/etc/passwd`.
    ReadPasswd,
    /// List the user's home directory.
    ReadHome,
    /// Write a file in the temporary directory.
    WriteFile,
    /// Connect to the lab's loopback port.
    Connect,
    /// Fork 1 000 processes, one after another.
    Fork,
    /// Signal the parent (signal 0).
    SignalParent,
    /// `PTRACE_SEIZE` the parent.
    TraceParent,
    /// Overwrite the shared memory the worker holds.
    Scribble,
}

impl Attack {
    /// Every attack, in report order.
    pub const ALL: [Attack; 8] = [
        Attack::ReadPasswd,
        Attack::ReadHome,
        Attack::WriteFile,
        Attack::Connect,
        Attack::Fork,
        Attack::SignalParent,
        Attack::TraceParent,
        Attack::Scribble,
    ];

    /// The word the data uses.
    pub fn key(self) -> &'static str {
        match self {
            Attack::ReadPasswd => "read_passwd",
            Attack::ReadHome => "read_home",
            Attack::WriteFile => "write_file",
            Attack::Connect => "connect",
            Attack::Fork => "fork",
            Attack::SignalParent => "signal_parent",
            Attack::TraceParent => "trace_parent",
            Attack::Scribble => "scribble",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Attack::ReadPasswd => "read /etc/passwd",
            Attack::ReadHome => "list the user's home",
            Attack::WriteFile => "write a file",
            Attack::Connect => "connect to the lab's loopback port",
            Attack::Fork => "fork processes",
            Attack::SignalParent => "signal the parent (signal 0)",
            Attack::TraceParent => "ptrace the parent",
            Attack::Scribble => "scribble on shared memory",
        }
    }

    /// True for an attack on something outside the worker (files, network, processes): what
    /// a sandbox is for. The scribble attacks the memory the worker shares with the pool,
    /// which it needs to work at all; there the pool's own checks are the boundary.
    pub fn is_escape(self) -> bool {
        self != Attack::Scribble
    }
}

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
    /// The task got what it wanted.
    Succeeded {
        /// What it got.
        detail: String,
    },
    /// The system call failed (e.g. EACCES) and the task went on.
    Refused {
        /// The error the task saw.
        error: String,
    },
    /// The sandbox stopped the worker at a forbidden system call.
    Stopped {
        /// The call, by name where known.
        syscall: String,
    },
    /// The task did not end with its own result: its worker crashed, or it broke the pool's
    /// protocol (a codec error), or it timed out.
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
    pub fn succeeded(&self) -> bool {
        matches!(self, Outcome::Succeeded { .. })
    }

    fn of(r: Result<Result<String, String>, TaskError>) -> Outcome {
        match r {
            Ok(Ok(detail)) => Outcome::Succeeded { detail },
            Ok(Err(error)) => Outcome::Refused { error },
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
            Outcome::Succeeded { detail } => format!("SUCCEEDED: {detail}"),
            Outcome::Refused { error } => format!("refused by the OS: {error}"),
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
    /// Whether the same pool then mapped 64 squares with every value right (`None`: not
    /// checked, the attack was not run).
    pub pool_intact: Option<bool>,
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
    /// Connections the lab's listener saw.
    pub connections_seen: u64,
    /// Every attack in every place.
    pub cells: Vec<CellResult>,
    /// What the sandbox costs.
    pub cost: Cost,
}

/// What the attack task gets: which attack, and what it needs to know.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Try {
    attack: Attack,
    port: u16,
    home: String,
    scratch: String,
    forks: u32,
}

fn os_error() -> String {
    std::io::Error::last_os_error().to_string()
}

/// The compromised task: tries `t.attack`; `Ok` with what it got, `Err` with the error the
/// system gave (the sandbox may instead stop the worker at the call, which ends the task).
fn compromised(t: Try) -> Result<String, String> {
    let ppid = std::os::unix::process::parent_id() as i32;
    match t.attack {
        Attack::ReadPasswd => std::fs::read_to_string("/etc/passwd")
            .map(|s| format!("{} accounts", s.lines().count()))
            .map_err(|e| e.to_string()),
        Attack::ReadHome => std::fs::read_dir(&t.home)
            .map(|d| format!("{} entries in {}", d.count(), t.home))
            .map_err(|e| e.to_string()),
        Attack::WriteFile => {
            let path = std::path::Path::new(&t.scratch)
                .join(format!("proctor-sandbox-attack-{}", std::process::id()));
            let wrote = std::fs::write(&path, b"owned").map_err(|e| e.to_string());
            let _ = std::fs::remove_file(&path);
            wrote.map(|()| format!("wrote {}", path.display()))
        }
        Attack::Connect => {
            let to = std::net::SocketAddr::from(([127, 0, 0, 1], t.port));
            let mut s = std::net::TcpStream::connect_timeout(&to, Duration::from_secs(2))
                .map_err(|e| e.to_string())?;
            s.write_all(b"attack").map_err(|e| e.to_string())?;
            Ok(format!("connected to 127.0.0.1:{}", t.port))
        }
        Attack::Fork => fork_many(t.forks),
        Attack::SignalParent => {
            // SAFETY: kill(2) with signal 0 takes no pointers and sends nothing.
            match unsafe { libc::kill(ppid, 0) } {
                0 => Ok(format!("may signal pid {ppid}")),
                _ => Err(os_error()),
            }
        }
        Attack::TraceParent => trace(ppid),
        Attack::Scribble => scribble(),
    }
}

/// Forks up to `n` children one after another, each `_exit`ing at once and reaped before the
/// next: never more than one alive.
fn fork_many(n: u32) -> Result<String, String> {
    let mut made = 0u32;
    for _ in 0..n {
        // SAFETY: the child calls only _exit, which is async-signal-safe, so forking from a
        // multi-threaded process is sound; the parent reaps it below.
        let pid = unsafe { libc::fork() };
        match pid {
            -1 if made == 0 => return Err(os_error()),
            -1 => return Ok(format!("forked {made} of {n}, then: {}", os_error())),
            // SAFETY: _exit ends the child without running the parent's atexit handlers.
            0 => unsafe { libc::_exit(0) },
            child => {
                let mut status = 0;
                // SAFETY: waitpid on our own child, with a status int we own.
                unsafe { libc::waitpid(child, &mut status, 0) };
                made += 1;
            }
        }
    }
    Ok(format!("forked and reaped {made} processes"))
}

/// Attaches to `pid` with `PTRACE_SEIZE`; if that works, stops it, waits for the stop and
/// detaches at once, so the target runs on untouched.
fn trace(pid: i32) -> Result<String, String> {
    let null = std::ptr::null_mut::<libc::c_void>();
    // SAFETY: ptrace with integer arguments and null pointers, which these requests allow.
    if unsafe { libc::ptrace(libc::PTRACE_SEIZE, pid, null, null) } != 0 {
        return Err(os_error());
    }
    // SAFETY: as above; the tracee is ours now. waitpid with __WALL waits for its stop.
    unsafe {
        libc::ptrace(libc::PTRACE_INTERRUPT, pid, null, null);
        let mut status = 0;
        libc::waitpid(pid, &mut status, libc::__WALL);
        libc::ptrace(libc::PTRACE_DETACH, pid, null, null);
    }
    Ok(format!("attached to pid {pid}, stopped it, detached"))
}

/// Overwrites every memfd (a regular file with no name: `st_nlink == 0`) among this
/// process's descriptors, through a shared mapping of its own.
fn scribble() -> Result<String, String> {
    let (mut maps, mut bytes) = (0u64, 0u64);
    for fd in 0..256 {
        // SAFETY: fstat into a zeroed stat we own; a closed descriptor fails with EBADF.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        if unsafe { libc::fstat(fd, &mut st) } != 0 {
            continue;
        }
        if st.st_mode & libc::S_IFMT != libc::S_IFREG || st.st_nlink != 0 || st.st_size <= 0 {
            continue;
        }
        let len = (st.st_size as usize).min(1 << 20);
        // SAFETY: a fresh shared mapping of a descriptor this process holds, written within
        // its length and unmapped; it aliases no Rust object of this process.
        unsafe {
            let p = libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd,
                0,
            );
            if p == libc::MAP_FAILED {
                continue;
            }
            std::ptr::write_bytes(p.cast::<u8>(), 0xA5, len);
            libc::munmap(p, len);
        }
        maps += 1;
        bytes += len as u64;
    }
    if maps == 0 {
        return Err("found no shared memory to write".into());
    }
    Ok(format!("overwrote {maps} shared mappings ({bytes} bytes)"))
}

fn square(n: u64) -> u64 {
    n * n
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

/// The pool has gone on: 64 squares, every value right.
fn intact<S: 'static>(pool: &Pool<S>) -> bool {
    let out = pool.map(square, (0..64).collect::<Vec<u64>>());
    out.len() == 64
        && out
            .iter()
            .enumerate()
            .all(|(i, o)| *o == Ok((i * i) as u64))
}

fn compute_sandbox() -> Sandbox {
    Sandbox::compute().allow_unavailable(true)
}

fn build(place: Place) -> Result<Pool> {
    let b = match place {
        Place::Thread => Pool::threads(1),
        Place::Process => Pool::processes(1),
        Place::Sandboxed => Pool::processes(1).sandbox(compute_sandbox()),
    };
    b.forward_stderr(false)
        .task_timeout(Duration::from_secs(20))
        .build()
        .with_context(|| format!("build a one-worker pool ({})", place.label()))
}

/// Runs every attack in `place` on one pool, checking the pool after each.
fn attacks_in(place: Place, base: &Try, forks: u32) -> Result<(Vec<CellResult>, Option<Pool>)> {
    let pool = build(place)?;
    let mut cells = Vec::new();
    for attack in Attack::ALL {
        if place == Place::Thread && matches!(attack, Attack::TraceParent | Attack::Scribble) {
            let why = match attack {
                Attack::TraceParent => {
                    "a thread is the lab process: it has every right the lab has, and would \
                     trace the lab's own parent (the shell)"
                }
                _ => {
                    "a thread shares the lab's whole address space: it can write over any of \
                     the lab's memory, the pool's included, with no descriptor to find"
                }
            };
            cells.push(CellResult {
                attack,
                place,
                outcome: Outcome::NotApplicable { why: why.into() },
                pool_intact: None,
            });
            continue;
        }
        let t = Try {
            attack,
            forks,
            ..base.clone()
        };
        let outcome = Outcome::of(pool.submit(compromised, t).join());
        cells.push(CellResult {
            attack,
            place,
            outcome,
            pool_intact: Some(intact(&pool)),
        });
    }
    Ok((cells, Some(pool)))
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
        b = b.sandbox(compute_sandbox());
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

        let listener = std::net::TcpListener::bind(("127.0.0.1", 0))
            .context("listen on a loopback port for the connect attack")?;
        listener
            .set_nonblocking(true)
            .context("make the listener non-blocking")?;
        let port = listener.local_addr().context("the listener's port")?.port();
        let base = Try {
            attack: Attack::ReadPasswd,
            port,
            home: std::env::var("HOME").unwrap_or_else(|_| "/root".into()),
            scratch: std::env::temp_dir().display().to_string(),
            forks: 0,
        };

        let mut cells = Vec::new();
        let mut report = None;
        for place in Place::ALL {
            let forks = if place == Place::Thread {
                forks_thread
            } else {
                forks_process
            };
            let (c, pool) = attacks_in(place, &base, forks)?;
            if place == Place::Sandboxed {
                report = pool.as_ref().and_then(|p| p.sandbox_report().cloned());
            }
            cells.extend(c);
            if let Some(p) = pool {
                p.shutdown();
            }
            progress.advance(1, &format!("attacks in a {}", place.label()));
        }
        let report = report.context("a sandboxed pool reports its layers")?;
        let mut connections_seen = 0u64;
        while listener.accept().is_ok() {
            connections_seen += 1;
        }
        drop(listener);

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
            cells,
            cost: Cost {
                start_plain_ns,
                start_sandboxed_ns,
                start_netns_ns,
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

/// Escape attacks (see [`Attack::is_escape`]) that succeeded in `place`.
fn escaped(cells: &[CellResult], place: Place) -> usize {
    cells
        .iter()
        .filter(|c| c.place == place && c.attack.is_escape() && c.outcome.succeeded())
        .count()
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

fn section_from(r: &SandboxResult) -> Section {
    let escapes = Attack::ALL.iter().filter(|a| a.is_escape()).count();
    let mut section = Section::new(
        "sandbox",
        "Process mode as a security boundary",
        &format!(
            "A compromised task (a plain fn, as a task that gained code execution from hostile \
             input) tries each attack once: read /etc/passwd; list $HOME; write a file in the \
             temporary directory (removed again); connect to 127.0.0.1:<port>, a port the lab \
             listens on for the experiment's duration; fork {} processes one after another \
             (each _exits at once and is reaped before the next, so at most one child is ever \
             alive; {} on a thread, which forks the lab itself); kill(parent, 0) (the right to \
             signal, nothing sent); PTRACE_SEIZE the parent (then interrupt, wait, detach); \
             overwrite every memfd among its descriptors (found with fstat: a regular file with \
             no link) through a shared mapping of its own. Each runs on a worker thread \
             (Pool::threads(1), the lab's own rights), in a plain worker process \
             (Pool::processes(1)) and in a sandboxed one (Sandbox::compute(), built with \
             allow_unavailable so that a missing layer shows in the table instead of stopping \
             the experiment). Outcome = the task's own Ok (succeeded), its own Err (refused by \
             the OS), TaskError::SandboxViolation (stopped by the sandbox, at the call named), \
             or another TaskError. After each attack the same pool maps 64 squares and every \
             value is checked. Cost: worker start = Pool::processes(1) build + the first task's \
             result (the pool is dropped outside the interval; a sandboxed build includes the \
             round trip that fetches the sandbox report), {} repetitions each after one \
             warm-up, plain, sandboxed, and sandboxed with a fresh network namespace too \
             (Sandbox::network_namespace, a layer asked for apart) interleaved, medians; round trip = submit(trivial \
             fn).join() on a warm one-worker pool, calibrated batches (median of the batch \
             means), {} independent round(s) per side with a fresh pool each, the sides \
             alternating which goes first; pinned = the lab and the worker both on one CPU \
             (the worker pins itself in init_worker, before the sandbox, and the lab checks its \
             affinity), unpinned = the scheduler's choice. Targets: start ≤ {START_TARGET}×, \
             round trip ≤ {RTT_TARGET}× (one run, not a verdict; a round-trip ratio \
             over its target whose two sides' rounds overlap (min–max; p1–p99 with one round) \
             is marked within the noise).",
            r.forks_process,
            r.forks_thread,
            r.cost.start_plain_ns.len(),
            r.cost.rtt.first().map_or(0, |x| x.plain_rounds.len()),
        ),
    );
    let n = |key: &str, label: &str, v: f64| Figure::new(key, label, v, Unit::Count);
    section.figures.push(n(
        "sandbox.attacks",
        "attacks tried",
        Attack::ALL.len() as f64,
    ));
    section.figures.push(n(
        "sandbox.escapes",
        "attacks on something outside the worker (all but the scribble)",
        escapes as f64,
    ));
    for place in Place::ALL {
        section.figures.push(n(
            &format!("sandbox.escaped.{}", place.key()),
            &format!("escape attacks that succeeded, {}", place.label()),
            escaped(&r.cells, place) as f64,
        ));
    }
    let broken = r
        .cells
        .iter()
        .filter(|c| c.pool_intact == Some(false))
        .count();
    section.figures.push(n(
        "sandbox.pool_broken",
        "attacks after which the pool's next map was not all right",
        broken as f64,
    ));
    let missing = unavailable(&r.report);
    section.figures.push(n(
        "sandbox.layers_unavailable",
        "sandbox layers asked for but unavailable on this kernel",
        missing.len() as f64,
    ));

    // The cost.
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
    let mut cost_rows = vec![cost_row(
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
            crate::render::format_value(plain_start, Unit::Ns),
            crate::render::format_value(sandboxed_start, Unit::Ns),
            crate::render::format_value(netns_start, Unit::Ns),
            crate::render::format_value(netns_start - sandboxed_start, Unit::Ns),
        ));
    }
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
                    "task round trip, Sandbox::compute()",
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

    section.tables.push(Table {
        title: "What a compromised task got, by where it ran".to_string(),
        columns: ["attack", "thread", "plain process", "sandboxed process"]
            .map(String::from)
            .to_vec(),
        rows: Attack::ALL
            .iter()
            .map(|&a| {
                let mut row = vec![a.label().to_string()];
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
    });
    section.tables.push(Table {
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
    });
    section.tables.push(Table {
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
    });
    section.charts.push(Chart {
        id: "escapes".to_string(),
        title: "Escape attacks that succeeded, by where the task ran".to_string(),
        kind: ChartKind::Bar,
        x_label: "where the task ran".to_string(),
        y_label: format!("attacks that succeeded (of {escapes})"),
        x_log: false,
        y_log: false,
        categories: Place::ALL.iter().map(|p| p.label().to_string()).collect(),
        series: vec![Series {
            name: "succeeded".to_string(),
            points: Place::ALL
                .iter()
                .enumerate()
                .map(|(i, &p)| (i as f64, escaped(&r.cells, p) as f64))
                .collect(),
        }],
    });

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
         the lab do, a task on a thread does (the thread column); the two n/a cells are attacks \
         a thread needs no trick for. A plain worker process has the lab's user and files too: \
         it is a boundary against crashes, not against a hostile task."
            .to_string(),
    );
    if let Some(c) = r
        .cells
        .iter()
        .find(|c| c.place == Place::Sandboxed && c.attack == Attack::Scribble)
    {
        section.notes.push(format!(
            "The scribble attacks memory the worker shares with the pool, which it needs to \
             work at all, so no sandbox layer forbids it (sandboxed: {}); the boundary there is \
             the pool's own validation of what it reads. The pool {} its next map after it.",
            c.outcome.cell(),
            match c.pool_intact {
                Some(true) => "went on and got every value right in",
                Some(false) => "did NOT get every value right in",
                None => "was not checked in",
            }
        ));
    }
    let connects = r
        .cells
        .iter()
        .filter(|c| c.attack == Attack::Connect && c.outcome.succeeded())
        .count() as u64;
    if connects != r.connections_seen {
        section.notes.push(format!(
            "The lab's listener saw {} connection(s) where {connects} connect attack(s) \
             reported success.",
            r.connections_seen
        ));
    }
    section.data = serde_json::to_value(r).unwrap_or(serde_json::Value::Null);
    section
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
        crate::render::format_value(plain, Unit::Ns),
        crate::render::format_value(sandboxed, Unit::Ns),
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
        assert!(Outcome::of(Ok(Ok("x".into()))).succeeded());
        assert_eq!(
            Outcome::of(Ok(Err("Permission denied".into()))),
            Outcome::Refused {
                error: "Permission denied".into()
            }
        );
        let stopped = Outcome::of(Err(TaskError::SandboxViolation {
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
        assert!(stopped.cell().contains("at socket"));
        let broke = Outcome::of(Err(TaskError::Codec {
            message: "bad record".into(),
            task: 3,
        }));
        assert!(matches!(broke, Outcome::Broke { .. }) && !broke.succeeded());
    }

    fn result(sandboxed: Outcome, landlock: LayerStatus) -> SandboxResult {
        let mut cells = Vec::new();
        for attack in Attack::ALL {
            for place in Place::ALL {
                let outcome = match place {
                    Place::Sandboxed if attack.is_escape() => sandboxed.clone(),
                    _ => Outcome::Succeeded {
                        detail: "got it".into(),
                    },
                };
                cells.push(CellResult {
                    attack,
                    place,
                    outcome,
                    pool_intact: Some(attack != Attack::Scribble || place != Place::Process),
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
            connections_seen: 2,
            cells,
            cost: Cost {
                start_plain_ns: vec![400e3, 420e3, 380e3],
                start_sandboxed_ns: vec![1.0e6, 1.1e6, 0.9e6],
                start_netns_ns: vec![600e3, 610e3, 590e3],
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
    fn the_section_counts_escapes_per_place_and_the_broken_pools() {
        let stopped = Outcome::Stopped {
            syscall: "openat".into(),
        };
        let s = section_from(&result(stopped, LayerStatus::Applied));
        assert_eq!(value(&s, "sandbox.escapes"), 7.0);
        assert_eq!(value(&s, "sandbox.escaped.thread"), 7.0);
        assert_eq!(value(&s, "sandbox.escaped.process"), 7.0);
        assert_eq!(value(&s, "sandbox.escaped.sandboxed"), 0.0);
        // The scribble in the plain process left the pool broken in this made-up run.
        assert_eq!(value(&s, "sandbox.pool_broken"), 1.0);
        assert_eq!(value(&s, "sandbox.layers_unavailable"), 0.0);
        assert!((value(&s, "sandbox.start.ratio") - 2.5).abs() < 1e-9);
        assert!((value(&s, "sandbox.rtt.ratio.pinned") - 1.02).abs() < 1e-9);
        let attacks = &s.tables[0];
        assert_eq!(attacks.rows.len(), Attack::ALL.len());
        assert!(attacks.rows[0][3].contains("stopped by the sandbox at openat"));
        assert!(
            attacks.rows[7][2].contains("POOL BROKEN"),
            "{:?}",
            attacks.rows[7]
        );
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
        // Two connects succeeded (thread and plain process), and the listener saw two.
        assert!(!s.notes.iter().any(|n| n.contains("WARNING")));
        assert!(!s.notes.iter().any(|n| n.contains("listener saw")));
    }

    #[test]
    fn a_missing_layer_is_said_loudly() {
        let refused = Outcome::Refused {
            error: "Permission denied".into(),
        };
        let mut r = result(refused, LayerStatus::Unavailable("old kernel".into()));
        r.connections_seen = 3;
        let s = section_from(&r);
        assert_eq!(value(&s, "sandbox.layers_unavailable"), 1.0);
        assert_eq!(value(&s, "sandbox.escaped.sandboxed"), 0.0);
        assert!(
            s.notes
                .iter()
                .any(|n| n.starts_with("WARNING") && n.contains("landlock (old kernel)")),
            "{:?}",
            s.notes
        );
        assert!(s.tables[1].rows[0][1].contains("UNAVAILABLE: old kernel"));
        // Two connects reported success, the listener saw three: said.
        assert!(s.notes.iter().any(|n| n.contains("listener saw 3")));
    }

    #[test]
    fn the_median_round_is_the_middle_value() {
        assert_eq!(middle(&[30.0, 10.0, 20.0]), 2);
        assert_eq!(middle(&[7.0]), 0);
    }

    #[test]
    fn only_the_scribble_is_not_an_escape() {
        let inside: Vec<Attack> = Attack::ALL.into_iter().filter(|a| !a.is_escape()).collect();
        assert_eq!(inside, vec![Attack::Scribble]);
    }
}

//! `scaling`: how processes, threads and async tasks use the machine.
//!
//! CPU-bound: a fixed total amount of hashing (xorshift feeding FNV-1a) is split evenly over W
//! workers, W = 1…2×CPUs. All workers are created first and report ready over a pipe; the timed
//! window runs from writing the release bytes to reading the last result, so creation stays out
//! of it. Threads and processes use the very same pipes and the same worker body; only the
//! address space differs (LAB-METHODS rule 4). The checksums of both models must match.
//!
//! I/O-bound: N units that each sleep 10 ms three times, as threads, forked processes and tokio
//! tasks on one thread, for N = 10…10 000, in two phases timed apart. Creation: every unit is
//! created and blocks at a gate (a futex word in shared memory for threads and processes, a
//! `watch` channel for tasks), until all N are alive; memory is sampled then. Waiting: the gate
//! opens for all at once (one `FUTEX_WAKE` of every waiter, one `watch` send), and the phase
//! ends when the last unit finishes its sleeps (each unit stamps `CLOCK_MONOTONIC` at its end);
//! the exit and reap that follow are timed apart. So the concurrent waits are N waits in flight
//! together, and the cost of creating N units does not hide in them (before, creating the
//! processes took longer than one lived, and a run never had N in flight). Before creating N
//! units the run checks `RLIMIT_NPROC`, `kernel.threads-max`, `kernel.pid_max` and the memory
//! available, and lowers N with a note where they would not fit.

use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use nix::sys::resource::{Resource, getrlimit};
use nix::unistd::{pipe, read, write};
use serde::{Deserialize, Serialize};

use super::Experiment;
use crate::measure::allowed_cpus;
use crate::report::{Chart, ChartKind, Figure, Profile, Section, Series, Table, Unit};
use crate::shared_mem::{
    Children, SharedMem, fork_child, futex_wait, futex_wake, mono_ns, sleep_ns,
};
use crate::stats::median_and_spread;
use crate::verdict::keys;
use crate::{LabConfig, Progress};

mod section;
use section::section_from;

/// The CPU- and I/O-bound scaling experiment.
#[derive(Debug, Clone, Copy, Default)]
pub struct Scaling;

/// What runs a worker or unit: the thread/process pair of [`Worker`](super::Worker), plus
/// a tokio task for the I/O-bound sweep. (Not `servers`' `Model`, which is a server design.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Runner {
    /// An OS thread.
    Thread,
    /// A forked process.
    Process,
    /// A tokio task.
    Async,
}

impl Runner {
    fn name(self) -> &'static str {
        match self {
            Runner::Thread => "thread",
            Runner::Process => "process",
            Runner::Async => "async",
        }
    }
}

/// Everything measured, for `Section::data`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScalingResult {
    /// Number of CPUs this process may run on.
    pub cpus: usize,
    /// Number of physical cores among those CPUs, where it could be read.
    pub physical_cores: Option<usize>,
    /// Kernel iterations in total, the same for every W.
    pub total_iterations: u64,
    /// The CPU-bound points, one per model and worker count.
    pub cpu: Vec<CpuPoint>,
    /// The I/O-bound points, one per model and unit count.
    pub io: Vec<IoPoint>,
    /// Points that were not measured, and why.
    pub skipped: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
/// One CPU-bound measurement: a model at a worker count W.
pub struct CpuPoint {
    /// How the workers run.
    pub model: Runner,
    /// The worker count W.
    pub workers: usize,
    /// Release to last result, per repetition.
    pub elapsed_ns: Vec<f64>,
    /// Median of `elapsed_ns`, in nanoseconds.
    pub median_ns: f64,
    /// Kernel iterations per second at the median time.
    pub throughput_per_sec: f64,
    /// T(1) / T(W) for the same model.
    pub speedup: f64,
    /// Speed-up / W.
    pub efficiency: f64,
    /// The combined checksum of the workers' results (of the last repetition).
    pub checksum: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
/// One I/O-bound measurement: a model at a unit count N.
pub struct IoPoint {
    /// How the units run.
    pub model: Runner,
    /// The unit count N.
    pub units: usize,
    /// The wait phase, per repetition: the gate opening to the last unit's finish, all N
    /// created and blocked at the gate first.
    pub completion_ns: Vec<f64>,
    /// Median of `completion_ns`, in nanoseconds.
    pub median_ns: f64,
    /// The creation phase, per repetition: the first create to all N alive at the gate.
    #[serde(default)]
    pub creation_ns: Vec<f64>,
    /// The gate opening to every unit joined, reaped or awaited (the wait phase plus the exit
    /// and reap), per repetition.
    #[serde(default)]
    pub reaped_ns: Vec<f64>,
    /// Added USS with all N units alive at the gate (processes: estimated, see the notes).
    pub memory_bytes: Option<f64>,
    /// Most units alive at once: N, since the gate holds them all before any wait begins.
    pub max_alive: i64,
}

/// The CPU-bound kernel: `iters` rounds of xorshift64 feeding FNV-1a. No memory traffic, no
/// closed form, so the optimizer must run every round.
pub fn kernel(seed: u64, iters: u64) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ seed;
    let mut x = seed | 1;
    for _ in 0..std::hint::black_box(iters) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        h = (h ^ x).wrapping_mul(0x0100_0000_01b3);
    }
    h
}

fn read_exact(fd: &OwnedFd, buf: &mut [u8]) -> Result<()> {
    let mut done = 0;
    while done < buf.len() {
        match read(fd, &mut buf[done..]) {
            Ok(0) => bail!("pipe closed after {done} of {} bytes", buf.len()),
            Ok(k) => done += k,
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e).context("read pipe"),
        }
    }
    Ok(())
}

fn write_all(fd: &OwnedFd, buf: &[u8]) -> Result<()> {
    let mut done = 0;
    while done < buf.len() {
        match write(fd, &buf[done..]) {
            Ok(k) => done += k,
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e).context("write pipe"),
        }
    }
    Ok(())
}

/// The pipes of one CPU-bound run: ready (worker → lab), go (lab → worker), result.
struct Pipes {
    ready: (OwnedFd, OwnedFd),
    go: (OwnedFd, OwnedFd),
    result: (OwnedFd, OwnedFd),
}

impl Pipes {
    fn new() -> Result<Pipes> {
        Ok(Pipes {
            ready: pipe().context("pipe")?,
            go: pipe().context("pipe")?,
            result: pipe().context("pipe")?,
        })
    }

    /// The worker body, the same for threads and processes: only read, write and arithmetic,
    /// so it is async-signal-safe in a forked child. Returns false if a pipe failed.
    fn work(&self, seed: u64, iters: u64) -> bool {
        if write(&self.ready.1, b"r") != Ok(1) {
            return false;
        }
        let mut b = [0u8; 1];
        if read(&self.go.0, &mut b) != Ok(1) {
            return false;
        }
        let h = kernel(seed, iters);
        // 8 bytes < PIPE_BUF: one write, never interleaved with another worker's.
        write(&self.result.1, &h.to_le_bytes()) == Ok(8)
    }

    /// Waits for `w` ready workers, releases them, and collects `w` results: returns the
    /// release-to-last-result time and the xor of the results.
    fn release_and_collect(&self, w: usize) -> Result<(Duration, u64)> {
        read_exact(&self.ready.0, &mut vec![0u8; w])?;
        let t0 = Instant::now();
        write_all(&self.go.1, &vec![b'g'; w])?;
        let mut results = vec![0u8; 8 * w];
        read_exact(&self.result.0, &mut results)?;
        let elapsed = t0.elapsed();
        let checksum = results
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().expect("chunks of 8")))
            .fold(0, |a, b| a ^ b);
        Ok((elapsed, checksum))
    }
}

/// Iterations of each of `w` workers: `total` split evenly, the remainder to the first ones.
fn shares(total: u64, w: usize) -> Vec<u64> {
    let w64 = w as u64;
    (0..w64)
        .map(|i| total / w64 + u64::from(i < total % w64))
        .collect()
}

/// One CPU-bound run with `w` workers of `model`.
fn cpu_run(model: Runner, w: usize, total: u64) -> Result<(Duration, u64)> {
    let pipes = Pipes::new()?;
    let shares = shares(total, w);
    match model {
        Runner::Thread => std::thread::scope(|s| {
            for (i, &iters) in shares.iter().enumerate() {
                let pipes = &pipes;
                s.spawn(move || pipes.work(i as u64, iters));
            }
            pipes.release_and_collect(w)
        }),
        Runner::Process => {
            let mut children = Children::new();
            for (i, &iters) in shares.iter().enumerate() {
                let pipes = &pipes;
                let child = || if pipes.work(i as u64, iters) { 0 } else { 1 };
                // SAFETY: `work` reads and writes pipes made before the fork, and computes:
                // no allocation, no lock.
                let pid = unsafe { fork_child(child) }.context("fork a CPU-bound worker")?;
                children.push(pid);
            }
            let r = pipes.release_and_collect(w)?;
            if children.wait_all() != w {
                bail!("a CPU-bound worker process failed");
            }
            Ok(r)
        }
        Runner::Async => bail!("the CPU-bound sweep runs threads and processes only"),
    }
}

/// Added USS of this process, in bytes, from `/proc/self/smaps_rollup`.
fn uss(pid: &str) -> Option<f64> {
    Some(crate::procfs::smaps_rollup(pid).ok()?.uss_or_zero())
}

/// What the units of one I/O-bound run share with the lab (in shared memory for processes):
/// how many are alive, the most at once, the gate they wait at and when the last one finished.
#[derive(Debug, Default)]
struct Gate {
    now: AtomicI64,
    max: AtomicI64,
    /// 0 while the units must wait; 1 once the lab opened the gate.
    open: AtomicU32,
    /// `CLOCK_MONOTONIC` when the last unit finished its waits.
    last_finish_ns: AtomicU64,
}

impl Gate {
    fn enter(&self) {
        let n = self.now.fetch_add(1, Ordering::AcqRel) + 1;
        self.max.fetch_max(n, Ordering::AcqRel);
    }

    fn finish(&self) {
        self.last_finish_ns.fetch_max(mono_ns(), Ordering::AcqRel);
        self.now.fetch_sub(1, Ordering::AcqRel);
    }

    /// Blocks until the gate opens: a futex wait on `open`, async-signal-safe.
    fn wait_open(&self) {
        while self.open.load(Ordering::Acquire) == 0 {
            futex_wait(&self.open, 0);
        }
    }

    /// Opens the gate for every waiter at once; returns when it opened (`CLOCK_MONOTONIC`).
    fn open(&self) -> u64 {
        let at = mono_ns();
        self.open.store(1, Ordering::Release);
        futex_wake(&self.open, i32::MAX as u32);
        at
    }

    /// Waits until `n` units are alive at the gate; returns when they were seen
    /// (`CLOCK_MONOTONIC`).
    fn await_alive(&self, n: usize) -> Result<u64> {
        let deadline = Instant::now() + ALIVE_TIMEOUT;
        while self.now.load(Ordering::Acquire) < n as i64 {
            if Instant::now() > deadline {
                bail!(
                    "only {} of {n} units were alive after {ALIVE_TIMEOUT:?}",
                    self.now.load(Ordering::Acquire)
                );
            }
            sleep_ns(20_000);
        }
        Ok(mono_ns())
    }
}

/// How long the lab waits for N created units to reach the gate.
const ALIVE_TIMEOUT: Duration = Duration::from_secs(60);

/// The stack of an I/O-bound thread. A unit only sleeps; and 10 000 default 2 MiB stacks
/// alive at once map 20 GiB and leave page tables and cached stacks behind that make every
/// later `fork` of the lab process slower (measured: 0.25 ms to 5.7 ms), in this section and
/// the ones after it.
const IO_STACK: usize = 128 << 10;

const IO_WAIT_NS: u64 = 10_000_000;
const IO_WAITS: usize = 3;

/// A unit that mostly waits: at the gate, then three 10 ms sleeps. Atomics, futex and
/// nanosleep only: async-signal-safe in a forked child.
fn io_unit(gate: &Gate) {
    gate.enter();
    gate.wait_open();
    for _ in 0..IO_WAITS {
        sleep_ns(IO_WAIT_NS);
    }
    gate.finish();
}

/// One I/O-bound run, its phases in nanoseconds.
#[derive(Debug, Clone, Copy)]
struct IoRun {
    /// First create to all alive at the gate.
    creation: f64,
    /// Gate opened to the last unit's finish.
    wait: f64,
    /// Gate opened to every unit joined, reaped or awaited.
    reaped: f64,
    /// Added USS with all alive.
    memory: Option<f64>,
    /// Most alive at once.
    max_alive: i64,
}

impl IoRun {
    fn from(
        gate: &Gate,
        t0: u64,
        alive: u64,
        opened: u64,
        done: u64,
        memory: Option<f64>,
    ) -> IoRun {
        let last = gate.last_finish_ns.load(Ordering::Acquire);
        IoRun {
            creation: alive.saturating_sub(t0) as f64,
            wait: last.saturating_sub(opened) as f64,
            reaped: done.saturating_sub(opened) as f64,
            memory,
            max_alive: gate.max.load(Ordering::Acquire),
        }
    }
}

/// One I/O-bound run: all `n` units created and alive at the gate, then the gate opened.
fn io_run(model: Runner, n: usize, runtime: &tokio::runtime::Runtime) -> Result<IoRun> {
    match model {
        Runner::Thread => {
            let gate = Gate::default();
            let before = uss("self");
            let t0 = mono_ns();
            std::thread::scope(|s| {
                for i in 0..n {
                    let gate = &gate;
                    if let Err(e) = std::thread::Builder::new()
                        .stack_size(IO_STACK)
                        .spawn_scoped(s, move || io_unit(gate))
                    {
                        // Let the ones already started go, so the scope can join them.
                        gate.open();
                        bail!("thread {} of {n} could not start: {e}", i + 1);
                    }
                }
                let alive = match gate.await_alive(n) {
                    Ok(at) => at,
                    Err(e) => {
                        gate.open();
                        return Err(e);
                    }
                };
                let memory = uss("self").zip(before).map(|(a, b)| a - b);
                let opened = gate.open();
                Ok((alive, opened, memory))
            })
            .map(|(alive, opened, memory)| IoRun::from(&gate, t0, alive, opened, mono_ns(), memory))
        }
        Runner::Process => {
            let gate = SharedMem::new(Gate::default()).context("map shared memory")?;
            let mut children = Children::new();
            let t0 = mono_ns();
            for i in 0..n {
                let gate = &*gate;
                // Atomics, futex and nanosleep only: async-signal-safe after fork.
                let child = || {
                    io_unit(gate);
                    0
                };
                // SAFETY: atomics, futex and nanosleep only (see above).
                match unsafe { fork_child(child) } {
                    Ok(pid) => children.push(pid),
                    // Dropping `children` kills and reaps the ones already started.
                    Err(e) => bail!("process {} of {n} could not start: {e}", i + 1),
                }
            }
            let alive = gate.await_alive(n)?;
            // Every child is alive and blocked: the mean USS of the newest ones times N
            // estimates the memory in use (reading every child would take longer than a wait).
            let sampled: Vec<f64> = children
                .pids()
                .iter()
                .rev()
                .take(16)
                .filter_map(|p| uss(&p.to_string()))
                .filter(|&u| u > 0.0)
                .collect();
            let memory = (!sampled.is_empty())
                .then(|| sampled.iter().sum::<f64>() / sampled.len() as f64 * n as f64);
            let opened = gate.open();
            let ok = children.wait_all();
            let done = mono_ns();
            if ok != n {
                bail!("{} of {n} I/O-bound processes failed", n - ok);
            }
            Ok(IoRun::from(&gate, t0, alive, opened, done, memory))
        }
        Runner::Async => runtime.block_on(async {
            let gate = Arc::new(Gate::default());
            let (open_tx, open_rx) = tokio::sync::watch::channel(false);
            let before = uss("self");
            let t0 = mono_ns();
            let handles: Vec<_> = (0..n)
                .map(|_| {
                    let gate = gate.clone();
                    let mut open = open_rx.clone();
                    tokio::spawn(async move {
                        gate.enter();
                        // The sender outlives every task: an error cannot happen.
                        let _ = open.wait_for(|&o| o).await;
                        for _ in 0..IO_WAITS {
                            tokio::time::sleep(Duration::from_nanos(IO_WAIT_NS)).await;
                        }
                        gate.finish();
                    })
                })
                .collect();
            // On one thread the tasks reach the gate only while this one yields.
            let deadline = Instant::now() + ALIVE_TIMEOUT;
            while gate.now.load(Ordering::Acquire) < n as i64 {
                if Instant::now() > deadline {
                    bail!("only some of {n} tasks started within {ALIVE_TIMEOUT:?}");
                }
                tokio::task::yield_now().await;
            }
            let alive = mono_ns();
            let memory = uss("self").zip(before).map(|(a, b)| a - b);
            let opened = mono_ns();
            open_tx.send_replace(true);
            for h in handles {
                h.await.context("join an I/O-bound task")?;
            }
            Ok(IoRun::from(&gate, t0, alive, opened, mono_ns(), memory))
        }),
    }
}

/// Distinct physical cores among `cpus`, where sysfs shows the topology.
fn physical_cores(cpus: &[usize]) -> Option<usize> {
    let mut cores = std::collections::BTreeSet::new();
    for c in cpus {
        let base = format!("/sys/devices/system/cpu/cpu{c}/topology");
        let package = std::fs::read_to_string(format!("{base}/physical_package_id")).ok()?;
        let core = std::fs::read_to_string(format!("{base}/core_id")).ok()?;
        cores.insert((package.trim().to_string(), core.trim().to_string()));
    }
    Some(cores.len())
}

/// 1…8 one by one, then a few points up to 2×CPUs; always 1, the CPU count and 2×CPUs.
fn worker_counts(cpus: usize) -> Vec<usize> {
    let top = 2 * cpus;
    let mut w: Vec<usize> = (1..=top.min(8)).collect();
    let mut n = 12;
    while n <= top {
        w.push(n);
        n = if n < 16 { 16 } else { n + n / 2 };
    }
    w.extend([cpus, top]);
    w.sort_unstable();
    w.dedup();
    w
}

/// The most units of `model` the I/O sweep may keep alive at once here, and why not more.
///
/// Processes are capped at 1 000 outside the full profile (creating 10 000 takes long). Both
/// threads and processes count against `RLIMIT_NPROC` (tasks per user; others of this user
/// too, so a margin is kept), `kernel.threads-max` and `kernel.pid_max`; and all of them are
/// alive at once, so each must fit half the memory available: a process copies the page
/// tables of this one's resident pages and has a kernel stack and a few pages of its own; a
/// thread has a kernel stack and the pages of its stack it touched.
fn unit_cap(profile: Profile, model: Runner) -> (usize, String) {
    let mut cap = usize::MAX;
    let mut why = String::new();
    let mut lower = |limit: usize, reason: String| {
        if limit < cap {
            cap = limit;
            why = reason;
        }
    };
    if model == Runner::Async {
        return (cap, why);
    }
    if model == Runner::Process && profile != Profile::Full {
        lower(
            1_000,
            "processes are capped at 1 000 outside the full profile, to keep the run short"
                .to_string(),
        );
    }
    if let Ok((soft, _)) = getrlimit(Resource::RLIMIT_NPROC) {
        lower(
            soft.saturating_sub(512) as usize,
            format!("RLIMIT_NPROC (ulimit -u) is {soft}"),
        );
    }
    for (file, name) in [
        ("/proc/sys/kernel/threads-max", "kernel.threads-max"),
        ("/proc/sys/kernel/pid_max", "kernel.pid_max"),
    ] {
        if let Some(max) = std::fs::read_to_string(file)
            .ok()
            .and_then(|s| s.trim().parse::<usize>().ok())
        {
            lower(max / 2, format!("{name} is {max}"));
        }
    }
    // A process: the page tables fork copies for this one's resident pages (8 bytes per 4 KiB
    // page, doubled for the upper levels and margin), a kernel stack and its own few pages.
    let per_unit = match model {
        Runner::Process => crate::measure::process_rss_bytes().unwrap_or(0) / 256 + (256 << 10),
        _ => 64 << 10,
    };
    if let Some(available) = crate::procfs::read_kib_field("/proc/meminfo", "MemAvailable") {
        lower(
            (available / 2 / per_unit.max(1)) as usize,
            format!(
                "half the available memory ({} MiB) fits that many at about {} KiB each",
                available >> 20,
                per_unit >> 10
            ),
        );
    }
    (cap, why)
}

impl Experiment for Scaling {
    fn knobs(&self) -> &'static [super::Knob] {
        use super::Knob;
        &[Knob::Iterations, Knob::Workers]
    }

    fn id(&self) -> &'static str {
        "scaling"
    }

    fn title(&self) -> &'static str {
        "Multi-core and I/O-bound scaling"
    }

    fn run(&self, config: &LabConfig, progress: &mut dyn Progress) -> Result<Section> {
        let started = Instant::now();
        let allowed = allowed_cpus();
        let cpus = allowed.len().max(1);
        let (target, reps, io_sizes): (Duration, usize, Vec<usize>) = match config.profile {
            // 1 000 waits even here: the many-waits claim reads that count.
            Profile::Tiny => (Duration::from_millis(10), 1, vec![10, 100, 1_000]),
            Profile::Quick => (Duration::from_millis(120), 3, vec![10, 100, 1_000, 10_000]),
            Profile::Full => (Duration::from_secs(1), 5, vec![10, 100, 1_000, 10_000]),
        };
        let mut counts = match &config.workers {
            Some(w) => w.iter().copied().filter(|&n| n > 0).collect(),
            None => worker_counts(cpus),
        };
        // Speed-up needs W = 1, and the at-the-CPU-count figure needs W = cpus.
        counts.extend([1, cpus]);
        counts.sort_unstable();
        counts.dedup();

        // Calibrate the fixed total: `target` of work for one worker on this machine.
        let calib_iters = 1_000_000;
        kernel(0, calib_iters);
        let t = Instant::now();
        std::hint::black_box(kernel(1, calib_iters));
        let ns_per_iter = t.elapsed().as_nanos().max(1) as f64 / calib_iters as f64;
        let total = config
            .iterations
            .unwrap_or((target.as_nanos() as f64 / ns_per_iter) as u64)
            .max(counts.iter().copied().max().unwrap_or(1) as u64);

        progress.begin("scaling", (2 * counts.len() + 3 * io_sizes.len()) as u64);
        let mut result = ScalingResult {
            cpus,
            physical_cores: physical_cores(&allowed),
            total_iterations: total,
            cpu: Vec::new(),
            io: Vec::new(),
            skipped: Vec::new(),
        };
        for model in [Runner::Thread, Runner::Process] {
            cpu_run(model, 1, total / 20)?; // warm-up
            let mut baseline = None;
            for &w in &counts {
                let mut elapsed = Vec::with_capacity(reps);
                let mut checksum = 0;
                for _ in 0..reps {
                    let (d, c) = cpu_run(model, w, total)?;
                    elapsed.push(d.as_nanos() as f64);
                    checksum = c;
                }
                let median_ns = median_and_spread(&elapsed).0;
                let base = *baseline.get_or_insert(median_ns);
                let speedup = base / median_ns;
                result.cpu.push(CpuPoint {
                    model,
                    workers: w,
                    elapsed_ns: elapsed,
                    median_ns,
                    throughput_per_sec: total as f64 / (median_ns / 1e9),
                    speedup,
                    efficiency: speedup / w as f64,
                    checksum,
                });
                progress.advance(1, &format!("{w} {} workers, CPU-bound", model.name()));
            }
        }
        for t in result.cpu.iter().filter(|p| p.model == Runner::Thread) {
            let p = result
                .cpu
                .iter()
                .find(|p| p.model == Runner::Process && p.workers == t.workers);
            if p.is_some_and(|p| p.checksum != t.checksum) {
                bail!(
                    "threads and processes computed different checksums at W = {}",
                    t.workers
                );
            }
        }

        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .context("start a tokio runtime")?;
        for &asked in &io_sizes {
            // Processes first: fork copies the lab's page tables, which the threads' stacks
            // would have grown.
            for model in [Runner::Process, Runner::Thread, Runner::Async] {
                let (cap, why) = unit_cap(config.profile, model);
                let n = asked.min(cap);
                if n < asked {
                    // Lowered onto a size the sweep measures anyway (or to none): not again.
                    if n == 0 || io_sizes.contains(&n) {
                        result.skipped.push(format!(
                            "{asked} {} units not measured: {why}",
                            model.name()
                        ));
                        progress.advance(1, &format!("{asked} {} units skipped", model.name()));
                        continue;
                    }
                    result.skipped.push(format!(
                        "{asked} {} units lowered to {n}: {why}",
                        model.name()
                    ));
                }
                // 10 000 units take most of a second to create: once is enough outside full.
                let reps = if n >= 10_000 && config.profile != Profile::Full {
                    1
                } else {
                    reps
                };
                let mut runs = Vec::with_capacity(reps);
                let mut failed = None;
                for _ in 0..reps {
                    match io_run(model, n, &runtime) {
                        Ok(run) => runs.push(run),
                        Err(e) => {
                            failed = Some(e);
                            break;
                        }
                    }
                }
                if let Some(e) = failed {
                    result
                        .skipped
                        .push(format!("{n} {} units not measured: {e:#}", model.name()));
                } else {
                    let completion: Vec<f64> = runs.iter().map(|r| r.wait).collect();
                    let memory: Vec<f64> = runs.iter().filter_map(|r| r.memory).collect();
                    result.io.push(IoPoint {
                        model,
                        units: n,
                        median_ns: median_and_spread(&completion).0,
                        completion_ns: completion,
                        creation_ns: runs.iter().map(|r| r.creation).collect(),
                        reaped_ns: runs.iter().map(|r| r.reaped).collect(),
                        memory_bytes: (!memory.is_empty()).then(|| median_and_spread(&memory).0),
                        max_alive: runs.iter().map(|r| r.max_alive).max().unwrap_or(0),
                    });
                }
                progress.advance(1, &format!("{n} {} units, I/O-bound", model.name()));
            }
        }
        progress.end();

        let mut section = section_from(&result);
        section.elapsed_ms = started.elapsed().as_secs_f64() * 1e3;
        Ok(section)
    }
}

#[cfg(test)]
mod tests;

//! `leaks`: threads that never end, measured; and what a process pool's timeout does instead.
//!
//! Part 1, leaked threads: N threads (10, 100, 1 000) are started and block on a condition
//! variable that nothing signals until the end of the experiment, which is what a leaked thread
//! does (it waits for a message that never comes). With them blocked, the lab reads what they
//! pin, from `/proc`: this process's thread count, RSS, USS and PSS (`smaps_rollup`), virtual
//! size and page tables (`status`) and the system-wide `KernelStack` (`meminfo`); and what they
//! cost the scheduler: the CPU time the whole process uses while its main thread sleeps, and a
//! fixed two-thread ping-pong on one CPU beside them. At the end the condition variable is
//! signalled and every thread is joined, and the thread count must be back where it was.
//!
//! Part 2, a task that hangs holding memory: the same task (touch a ballast, then wait on a
//! gate nobody opens) runs on a one-worker pool with a `task_timeout`, in both modes. A process
//! pool kills the worker at the timeout, and its memory goes with it; a thread pool reports
//! `TimedOut` and starts a replacement, but the stuck thread and its ballast stay until the task
//! returns (here: until the lab opens the gate).
//!
//! This file is long because it measures two things with their own machinery: threads that
//! block forever (the gate, the /proc sampling, the ping-pong beside them, the limits on how
//! many may be started) and a hanging task under each pool's timeout.

use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use super::{Experiment, Placement};
use crate::measure::{Measurement, Plan, allowed_cpus, measure, pin_current_thread, time_ops};
use crate::procfs;
use crate::report::{Chart, ChartKind, Figure, Profile, Section, Series, Table, Unit};
use crate::stats::median_and_spread;
use crate::verdict::keys;
use crate::{LabConfig, Progress};

mod section;
use section::section_from;

/// The thread-leak experiment.
#[derive(Debug, Clone, Copy, Default)]
pub struct Leaks;

/// Every sample behind the section, for `Section::data`.
#[derive(Debug, Clone, Serialize)]
pub struct LeaksResult {
    /// This process's threads before the experiment.
    pub threads_before: u64,
    /// This process's threads after the experiment (must equal `threads_before`).
    pub threads_after: u64,
    /// How many more threads the system's limits allowed when the experiment started.
    pub thread_headroom: u64,
    /// The thread counts asked for that the limits did not allow.
    pub skipped: Vec<usize>,
    /// One point per leaked-thread count, 0 first.
    pub points: Vec<LeakPoint>,
    /// The hanging task under a process pool's timeout, one per repetition.
    pub process_timeouts: Vec<TimeoutRun>,
    /// The hanging task under a thread pool's timeout, one per repetition.
    pub thread_timeouts: Vec<TimeoutRun>,
    /// The ballast the hanging task touches, in bytes.
    pub ballast_bytes: u64,
    /// The pools' task timeout, in nanoseconds.
    pub timeout_ns: u64,
    /// The CPU both ping-pong threads were pinned to.
    pub pingpong_cpu: usize,
}

/// N blocked threads: what they pin and what they cost.
#[derive(Debug, Clone, Serialize)]
pub struct LeakPoint {
    /// N, the blocked threads.
    pub threads: usize,
    /// Their kernel thread ids (each gone from /proc/self/task once joined).
    pub tids: Vec<i32>,
    /// Growth of the process's thread count (`Threads` in /proc/self/status).
    pub threads_added: f64,
    /// Growth of RSS, in bytes.
    pub rss_bytes: f64,
    /// Growth of USS (`Private_Clean + Private_Dirty`), in bytes.
    pub uss_bytes: f64,
    /// Growth of PSS, in bytes.
    pub pss_bytes: f64,
    /// Growth of the virtual size (`VmSize`: reserved stacks), in bytes.
    pub virtual_bytes: f64,
    /// Growth of the page tables (`VmPTE`), in bytes.
    pub page_table_bytes: f64,
    /// Growth of the system-wide `KernelStack`, in bytes (other processes count too).
    pub kernel_stack_bytes: f64,
    /// From the first spawn until every thread was blocked, in ns.
    pub spawn_ns: f64,
    /// From opening the gate until every thread was joined, in ns.
    pub release_ns: f64,
    /// CPU time the N blocked threads used, all together, while the main thread slept
    /// (`/proc/self/task/<tid>/schedstat`, first field), in ns; `None` where it is not readable.
    pub blocked_cpu_ns: Option<f64>,
    /// Times the N blocked threads were scheduled onto a CPU in that window (third field).
    pub blocked_runs: Option<f64>,
    /// How long the main thread slept, in ns.
    pub idle_window_ns: f64,
    /// Ping-pong round trip beside the blocked threads.
    pub pingpong: Measurement,
}

/// One hanging task under a pool's timeout.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TimeoutRun {
    /// The error the task ended with.
    pub outcome: String,
    /// Memory the hanging task held, measured while it hung (process: the worker's USS growth;
    /// thread: this process's RSS growth after the pool served again), in bytes.
    pub held_bytes: f64,
    /// Memory still held once the pool served its next task (process: the new worker's USS
    /// against the old one's before the hang; thread: this process's RSS growth), in bytes.
    pub after_bytes: f64,
    /// Threads still in this process beyond those before the hang, once the pool served again.
    pub threads_leaked: f64,
    /// From the timeout's error being returned until the next task's result was, in ns.
    pub recovery_ns: f64,
    /// Thread mode: memory still held after the gate opened and the stuck thread ended.
    pub after_release_bytes: Option<f64>,
    /// Process mode: the worker that hung no longer exists.
    pub old_worker_gone: Option<bool>,
    /// Thread mode: the stuck thread still existed once the pool served again.
    pub stuck_alive_after_recovery: Option<bool>,
    /// Thread mode: the stuck thread had ended once the gate opened.
    pub stuck_gone_after_release: Option<bool>,
}

/// The gate the hanging task waits on; only this process's thread-mode runs ever open it (a
/// worker process has its own copy, which stays shut).
static GATE: Mutex<bool> = Mutex::new(false);
static GATE_OPENED: Condvar = Condvar::new();
/// The kernel thread id of the last thread that ran [`hang_holding`] in this process.
static STUCK_TID: AtomicI32 = AtomicI32::new(0);

/// The longest a hanging task waits, so that nothing can hang forever even if the lab fails.
const HANG_CAP: Duration = Duration::from_secs(60);

/// Touches `bytes` of fresh memory, then waits on [`GATE`]. Returns the sum of the ballast
/// (keeping it alive until then).
fn hang_holding(bytes: u64) -> u64 {
    STUCK_TID.store(nix::unistd::gettid().as_raw(), Ordering::Release);
    let mut ballast = vec![0u8; bytes as usize];
    for page in ballast.chunks_mut(4096) {
        page[0] = 1;
    }
    std::hint::black_box(&mut ballast);
    let deadline = Instant::now() + HANG_CAP;
    let mut open = GATE.lock().unwrap_or_else(|e| e.into_inner());
    while !*open && Instant::now() < deadline {
        open = GATE_OPENED
            .wait_timeout(open, Duration::from_millis(500))
            .unwrap_or_else(|e| e.into_inner())
            .0;
    }
    drop(open);
    ballast.iter().step_by(4096).map(|&b| u64::from(b)).sum()
}

fn set_gate(open: bool) {
    *GATE.lock().unwrap_or_else(|e| e.into_inner()) = open;
    GATE_OPENED.notify_all();
}

/// A trivial task: the pool serves again when this returns.
fn probe(x: u64) -> u64 {
    x + 1
}

/// Whether thread `tid` of this process still exists.
fn thread_alive(tid: i32) -> bool {
    std::path::Path::new(&format!("/proc/self/task/{tid}")).exists()
}

/// Waits until thread `tid` of this process has ended; whether it did within `limit`.
fn wait_for_thread_end(tid: i32, limit: Duration) -> bool {
    let start = Instant::now();
    while thread_alive(tid) {
        if start.elapsed() > limit {
            return false;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    true
}

/// This process's thread count.
fn thread_count() -> Option<u64> {
    procfs::thread_count("self")
}

fn kernel_stack() -> f64 {
    procfs::or_zero(procfs::kernel_stack_bytes())
}

/// Waits until this process has `want` threads (a joined thread may linger in /proc for a
/// moment); whether it got there within `limit`.
fn wait_for_threads(want: u64, limit: Duration) -> bool {
    let start = Instant::now();
    loop {
        if thread_count() == Some(want) {
            return true;
        }
        if start.elapsed() > limit {
            return false;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn read_number(path: &str) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// How many more threads this process may start: the least headroom under
/// `/proc/sys/kernel/threads-max`, `/proc/sys/kernel/pid_max` (both against every task on the
/// system, from /proc/loadavg), `RLIMIT_NPROC` (against the same count, an overestimate of this
/// user's) and the cgroup's `pids.max`.
pub fn thread_headroom() -> u64 {
    let total = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| {
            let field = l.split_whitespace().nth(3)?.to_string();
            field.split_once('/')?.1.parse::<u64>().ok()
        })
        .unwrap_or(0);
    let mut headroom = u64::MAX;
    for limit in [
        read_number("/proc/sys/kernel/threads-max"),
        read_number("/proc/sys/kernel/pid_max"),
    ]
    .into_iter()
    .flatten()
    {
        headroom = headroom.min(limit.saturating_sub(total));
    }
    if let Ok((soft, _)) = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NPROC)
        && soft != nix::sys::resource::RLIM_INFINITY
    {
        headroom = headroom.min(soft.saturating_sub(total));
    }
    // cgroup v2: "0::/path" in /proc/self/cgroup.
    if let Some(dir) = std::fs::read_to_string("/proc/self/cgroup")
        .ok()
        .and_then(|c| {
            c.lines()
                .find_map(|l| l.strip_prefix("0::").map(|p| p.trim().to_string()))
        })
    {
        let base = format!("/sys/fs/cgroup{dir}");
        if let (Some(max), Some(current)) = (
            read_number(&format!("{base}/pids.max")),
            read_number(&format!("{base}/pids.current")),
        ) {
            headroom = headroom.min(max.saturating_sub(current));
        }
    }
    headroom
}

/// What the blocked threads share: the gate they wait on, and their ids.
#[derive(Debug, Default)]
struct BlockGate {
    released: Mutex<bool>,
    opened: Condvar,
    arrived: AtomicUsize,
    tids: Mutex<Vec<i32>>,
}

/// N threads blocked on one condition variable until [`Blocked::release`].
struct Blocked {
    gate: Arc<BlockGate>,
    handles: Vec<std::thread::JoinHandle<()>>,
}

impl Blocked {
    /// Starts `n` threads and waits until every one is blocked. A failed spawn releases and
    /// joins those already started before returning the error.
    fn start(n: usize) -> Result<Blocked> {
        // Room for every id up front: a thread that pushed into a full Vec would allocate, and
        // its first allocation gives it a malloc arena (tens of MiB of address space) that a
        // thread that only waits does not need.
        let gate = Arc::new(BlockGate {
            tids: Mutex::new(Vec::with_capacity(n)),
            ..BlockGate::default()
        });
        let mut blocked = Blocked {
            gate,
            handles: Vec::with_capacity(n),
        };
        for i in 0..n {
            let gate = Arc::clone(&blocked.gate);
            let spawned = std::thread::Builder::new()
                .name("leaked".to_string())
                .spawn(move || {
                    let tid = nix::unistd::gettid().as_raw();
                    gate.tids
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(tid);
                    let mut released = gate.released.lock().unwrap_or_else(|e| e.into_inner());
                    gate.arrived.fetch_add(1, Ordering::AcqRel);
                    while !*released {
                        released = gate
                            .opened
                            .wait(released)
                            .unwrap_or_else(|e| e.into_inner());
                    }
                });
            match spawned {
                Ok(h) => blocked.handles.push(h),
                Err(e) => {
                    blocked.release();
                    return Err(e).with_context(|| format!("spawn blocked thread {i} of {n}"));
                }
            }
        }
        // Every thread counts itself in while holding the lock, just before it waits; taking
        // the lock after the count is complete means the last one is inside `wait`.
        let start = Instant::now();
        while blocked.gate.arrived.load(Ordering::Acquire) < n {
            if start.elapsed() > Duration::from_secs(30) {
                blocked.release();
                bail!("{n} threads did not all block within 30 s");
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        drop(
            blocked
                .gate
                .released
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
        );
        Ok(blocked)
    }

    /// Opens the gate and joins every thread.
    fn release(&mut self) {
        *self.gate.released.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.gate.opened.notify_all();
        for h in self.handles.drain(..) {
            // The body cannot panic: it only waits.
            let _ = h.join();
        }
    }
}

impl Drop for Blocked {
    fn drop(&mut self) {
        self.release();
    }
}

/// Round trip of one value between this thread and a partner, both pinned to `cpu`, over two
/// rendezvous-free `sync_channel(1)`s: on one CPU each round trip is two context switches, the
/// scheduler picking the next task to run each time.
fn pingpong(plan: &Plan, cpu: usize) -> Result<Measurement> {
    let _pin = pin_current_thread(cpu)?;
    let (to_partner, partner_rx) = std::sync::mpsc::sync_channel::<u64>(1);
    let (partner_tx, from_partner) = std::sync::mpsc::sync_channel::<u64>(1);
    std::thread::scope(|s| {
        s.spawn(move || {
            crate::measure::pin_to_raw(cpu);
            for v in partner_rx {
                if partner_tx.send(v).is_err() {
                    break;
                }
            }
        });
        let m = measure(plan, |n, sampler| {
            time_ops(n, sampler, || {
                to_partner.send(1).context("the ping-pong partner left")?;
                from_partner.recv().context("the ping-pong partner left")?;
                Ok(())
            })
        });
        drop(to_partner); // ends the partner's loop
        m
    })
}

/// The time on CPU (ns) and the number of times scheduled of this process's threads `tids`,
/// summed, from `/proc/self/task/<tid>/schedstat` (nanosecond resolution, unlike the clock
/// ticks of `stat`; and unlike `getrusage(RUSAGE_SELF)`, reading it is not charged to the
/// threads measured). The kernel brings the run time up to date when a thread leaves the CPU,
/// so it is exact for blocked threads. `None` if a file is missing or malformed.
fn on_cpu(tids: &[i32]) -> Option<(f64, f64)> {
    let mut sum = (0.0, 0.0);
    for tid in tids {
        let text = std::fs::read_to_string(format!("/proc/self/task/{tid}/schedstat")).ok()?;
        let fields: Vec<f64> = text
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        let [ns, _, runs] = fields[..] else {
            return None;
        };
        sum.0 += ns;
        sum.1 += runs;
    }
    Some(sum)
}

fn leak_point(n: usize, plan: &Plan, cpu: usize, idle: Duration) -> Result<LeakPoint> {
    let before = procfs::usage("self")?;
    let ks_before = kernel_stack();
    let t = Instant::now();
    let mut blocked = Blocked::start(n)?;
    let spawn_ns = t.elapsed().as_nanos() as f64;
    let during = procfs::usage("self")? - before;
    let ks = kernel_stack() - ks_before;
    let ids = blocked
        .gate
        .tids
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let cpu0 = on_cpu(&ids);
    let t = Instant::now();
    std::thread::sleep(idle);
    let idle_window_ns = t.elapsed().as_nanos() as f64;
    let window = cpu0.zip(on_cpu(&ids)).map(|(a, b)| (b.0 - a.0, b.1 - a.1));
    let pp = pingpong(plan, cpu);
    let t = Instant::now();
    blocked.release();
    let release_ns = t.elapsed().as_nanos() as f64;
    let pingpong = pp?;
    let tids = std::mem::take(&mut *blocked.gate.tids.lock().unwrap_or_else(|e| e.into_inner()));
    if let Some(tid) = tids
        .iter()
        .find(|&&t| !wait_for_thread_end(t, Duration::from_secs(2)))
    {
        bail!("blocked thread {tid} is still there after being joined");
    }
    let per = |v: f64| if n == 0 { v } else { v / n as f64 };
    Ok(LeakPoint {
        threads: n,
        tids,
        threads_added: during.threads,
        rss_bytes: per(during.rss),
        uss_bytes: per(during.uss),
        pss_bytes: per(during.pss),
        virtual_bytes: per(during.vsize),
        page_table_bytes: per(during.pte),
        kernel_stack_bytes: per(ks),
        spawn_ns: per(spawn_ns),
        release_ns: per(release_ns),
        blocked_cpu_ns: window.map(|w| w.0),
        blocked_runs: window.map(|w| w.1),
        idle_window_ns,
        pingpong,
    })
}

/// The hanging task on a one-worker process pool with `timeout`.
fn process_timeout(ballast: u64, timeout: Duration) -> Result<TimeoutRun> {
    let pool = proctor::Pool::processes(1)
        .task_timeout(timeout)
        .forward_stderr(false)
        .build()
        .context("build a one-worker process pool")?;
    pool.submit(probe, 0).join().context("warm up the worker")?;
    let pid = *pool
        .worker_pids()
        .first()
        .context("a process pool has a worker")?;
    let base = procfs::usage(pid)?;
    let task = pool.submit(hang_holding, ballast);
    // Sample the worker while it hangs: its growth once the ballast is touched.
    let mut held = 0.0f64;
    let start = Instant::now();
    while !task.is_finished() && start.elapsed() < timeout.mul_f64(0.8) {
        if let Ok(u) = procfs::usage(pid) {
            held = held.max(u.uss - base.uss);
            if held >= ballast as f64 {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let outcome = match task.join() {
        Ok(_) => bail!("the hanging task returned instead of timing out"),
        Err(e) => e,
    };
    let failed_at = Instant::now();
    pool.submit(probe, 1)
        .join()
        .context("the pool serves again after the timeout")?;
    let recovery_ns = failed_at.elapsed().as_nanos() as f64;
    let new_pid = *pool
        .worker_pids()
        .first()
        .context("the pool replaced its worker")?;
    let after = procfs::usage(new_pid)?;
    let old_worker_gone = new_pid != pid && !std::path::Path::new(&format!("/proc/{pid}")).exists();
    pool.shutdown();
    Ok(TimeoutRun {
        outcome: outcome.to_string(),
        held_bytes: held,
        after_bytes: after.uss - base.uss,
        threads_leaked: 0.0,
        recovery_ns,
        after_release_bytes: None,
        old_worker_gone: Some(old_worker_gone),
        stuck_alive_after_recovery: None,
        stuck_gone_after_release: None,
    })
}

/// The hanging task on a one-worker thread pool with `timeout`; opens the gate at the end and
/// waits for the stuck thread to end.
fn thread_timeout(ballast: u64, timeout: Duration) -> Result<TimeoutRun> {
    set_gate(false);
    STUCK_TID.store(0, Ordering::Release);
    let pool = proctor::Pool::threads(1)
        .task_timeout(timeout)
        .build()
        .context("build a one-worker thread pool")?;
    pool.submit(probe, 0).join().context("warm up the worker")?;
    let base = procfs::usage("self")?;
    let outcome = match pool.submit(hang_holding, ballast).join() {
        Ok(_) => bail!("the hanging task returned instead of timing out"),
        Err(e) => e,
    };
    let failed_at = Instant::now();
    let served = pool.submit(probe, 1).join();
    let recovery_ns = failed_at.elapsed().as_nanos() as f64;
    let held = procfs::usage("self")? - base;
    let stuck = STUCK_TID.load(Ordering::Acquire);
    let alive = stuck != 0 && thread_alive(stuck);
    // Let the stuck thread go, then wait until it has ended.
    set_gate(true);
    let ended = stuck == 0 || wait_for_thread_end(stuck, Duration::from_secs(5));
    let released = procfs::usage("self")? - base;
    pool.shutdown();
    served.context("the pool serves again after the timeout")?;
    if !ended {
        bail!("the stuck thread did not end after its gate opened");
    }
    Ok(TimeoutRun {
        outcome: outcome.to_string(),
        held_bytes: held.rss,
        after_bytes: held.rss,
        threads_leaked: held.threads,
        recovery_ns,
        after_release_bytes: Some(released.rss),
        old_worker_gone: None,
        stuck_alive_after_recovery: Some(alive),
        stuck_gone_after_release: Some(ended),
    })
}

impl Experiment for Leaks {
    fn id(&self) -> &'static str {
        "leaks"
    }

    fn title(&self) -> &'static str {
        "Thread leaks"
    }

    fn run(&self, config: &LabConfig, progress: &mut dyn Progress) -> Result<Section> {
        let started = Instant::now();
        let (counts, idle, reps, ballast_mib, timeout_ms) = match config.profile {
            Profile::Tiny => (vec![10, 100], Duration::from_millis(10), 1, 16, 150),
            Profile::Quick => (vec![10, 100, 1_000], Duration::from_millis(100), 3, 64, 250),
            Profile::Full => (
                vec![10, 100, 1_000, 5_000],
                Duration::from_millis(300),
                5,
                64,
                250,
            ),
        };
        let ballast = ballast_mib << 20;
        let timeout = Duration::from_millis(timeout_ms);
        let plan = Plan::for_profile(config.profile);
        let cpu = allowed_cpus().first().copied().unwrap_or(0);
        // The library starts one thread for the program's lifetime with its first process pool
        // (the fork server's reader): start it before the baseline, so it is not counted as
        // left behind.
        proctor::Pool::processes(1)
            .build()
            .context("build a one-worker process pool")?
            .shutdown();
        let threads_before = thread_count().context("read Threads in /proc/self/status")?;
        let headroom = thread_headroom();
        // Leave half the headroom to everything else on the machine.
        let (counts, skipped): (Vec<usize>, Vec<usize>) = counts
            .into_iter()
            .partition(|&n| (n as u64) <= headroom / 2);

        progress.begin("leaks", (counts.len() + 1 + 2 * reps) as u64);
        let mut points = Vec::new();
        for n in std::iter::once(0).chain(counts.iter().copied()) {
            points.push(leak_point(n, &plan, cpu, idle)?);
            progress.advance(1, &format!("{n} blocked threads"));
        }
        let mut process_timeouts = Vec::new();
        let mut thread_timeouts = Vec::new();
        for _ in 0..reps {
            process_timeouts.push(process_timeout(ballast, timeout)?);
            progress.advance(1, "hanging task, process pool");
            thread_timeouts.push(thread_timeout(ballast, timeout)?);
            progress.advance(1, "hanging task, thread pool");
        }
        progress.end();
        let threads_after = if wait_for_threads(threads_before, Duration::from_secs(2)) {
            threads_before
        } else {
            thread_count().unwrap_or(0)
        };

        let result = LeaksResult {
            threads_before,
            threads_after,
            thread_headroom: headroom,
            skipped,
            points,
            process_timeouts,
            thread_timeouts,
            ballast_bytes: ballast,
            timeout_ns: timeout.as_nanos() as u64,
            pingpong_cpu: cpu,
        };
        let mut section = section_from(&result);
        section.elapsed_ms = started.elapsed().as_secs_f64() * 1e3;
        Ok(section)
    }
}

fn median(xs: impl IntoIterator<Item = f64>) -> f64 {
    median_and_spread(&xs.into_iter().collect::<Vec<_>>()).0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thread_counts_are_read_from_status() {
        // The parsing itself is tested in procfs.
        assert!(thread_count().is_some_and(|n| n >= 1));
        assert!(thread_headroom() > 0);
    }

    #[test]
    fn schedstat_sums_this_threads_time_on_cpu() {
        let me = nix::unistd::gettid().as_raw();
        // The kernel brings a thread's run time up to date when it leaves the CPU (as a
        // blocked thread did): work a little, then sleep once.
        std::hint::black_box((0..1_000_000u64).sum::<u64>());
        std::thread::sleep(Duration::from_millis(1));
        let (ns, runs) = on_cpu(&[me, me]).expect("this thread's schedstat is readable");
        assert!(ns > 0.0 && runs >= 2.0, "{ns} ns, {runs} runs");
        assert_eq!(on_cpu(&[]), Some((0.0, 0.0)));
        assert_eq!(on_cpu(&[i32::MAX]), None, "no such thread");
    }
}

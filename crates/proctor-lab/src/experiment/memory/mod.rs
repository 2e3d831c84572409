//! `memory`: what an idle worker costs, as a process, a thread and an async task.
//!
//! N workers each touch the same small working set, say they are ready over a pipe, and block
//! reading another pipe. Then the lab reads `/proc`: for processes `smaps_rollup` of every child
//! (summed, then divided by N), for threads and tasks the growth of this process. The headline
//! is USS (`Private_Clean + Private_Dirty`, what the worker alone holds) and PSS (its fair share
//! of pages it shares); RSS is shown but never summed as a headline, since it counts every
//! shared page once per process (LAB-METHODS rule 8). Kernel-side costs are reported apart:
//! page tables (`VmPTE`) and kernel stacks (`KernelStack` in /proc/meminfo), and for threads the
//! reserved (virtual) stack against what is resident.
//!
//! The claim is about what a worker *costs*, so its figure is the **overhead**: USS per worker
//! less the working set the lab itself gave it, plus the page tables and the kernel stack the
//! worker brought (both are kernel memory, outside USS), at [`HEADLINE_WORKERS`] workers in
//! independent rounds. A thread's stack comes from glibc's cache of exited threads' stacks when
//! one is there (pages already resident, so invisible in a growth); the lab first parks
//! [`STACK_CACHE_DRAIN`] threads that take every cached stack, so the measured threads get
//! fresh ones.

use std::collections::BTreeSet;
use std::os::fd::OwnedFd;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use nix::unistd::{gettid, pipe, read, write};
use serde::{Deserialize, Serialize};

use super::{Experiment, ROUNDS, Worker, median_round};
use crate::procfs;
use crate::report::{Chart, ChartKind, Figure, Profile, Section, Series, Table, Unit};
use crate::shared_mem::{Children, fork_child};
use crate::{LabConfig, Progress};

mod section;
use section::section_from;

/// The idle-worker memory experiment.
#[derive(Debug, Clone, Copy, Default)]
pub struct Memory;

/// Bytes each worker writes before it parks: a small, representative working set.
const WORKING_SET: usize = 64 * 1024;

/// The worker count of the headline's figures (the overhead at N >= 100: one worker's pages
/// are not lost among page-granular counters).
const HEADLINE_WORKERS: usize = 100;

/// Threads parked before a thread measurement, so that the measured threads' stacks are fresh
/// mappings, not stacks from glibc's cache (40 MiB by default: 19 stacks of Rust's 2 MiB).
const STACK_CACHE_DRAIN: usize = 32;

/// The kernel stack of one thread where `/proc/meminfo` has no `KernelStack` line: x86-64 and
/// arm64 use 16 KiB (`THREAD_SIZE`, without KASAN).
const KERNEL_STACK_ESTIMATE: f64 = 16.0 * 1024.0;

/// The task count every run includes for async tasks, whatever the worker counts.
const MANY_TASKS: usize = 10_000;

/// Everything measured, for `Section::data`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MemoryResult {
    /// Bytes each worker writes before it parks.
    pub working_set_bytes: u64,
    /// Rust's default thread stack (2 MiB unless `RUST_MIN_STACK` says otherwise): reserved
    /// address space, mostly not resident.
    pub thread_stack_reserved_bytes: u64,
    /// One point per model and worker count.
    pub workers: Vec<WorkerPoint>,
    /// One point per async task count.
    pub tasks: Vec<TaskPoint>,
    /// Pids of every child this run forked (all killed and reaped before returning).
    pub child_pids: Vec<i32>,
    /// Thread ids of every worker thread (all joined before returning).
    pub thread_ids: Vec<i32>,
}

/// N idle processes or threads, per worker.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorkerPoint {
    /// Whether the workers are processes or threads.
    pub model: Worker,
    /// N, the number of idle workers.
    pub workers: usize,
    /// Resident set size per worker, in bytes (counts every shared page once per process).
    pub rss_bytes: f64,
    /// Proportional set size per worker, in bytes (shared pages split among their users).
    pub pss_bytes: f64,
    /// Unique set size per worker, in bytes (`Private_Clean + Private_Dirty`).
    pub uss_bytes: f64,
    /// Page tables (`VmPTE`).
    pub page_table_bytes: f64,
    /// Growth of the system-wide `KernelStack` (noisy: other processes count too), or
    /// [`KERNEL_STACK_ESTIMATE`] per thread where it cannot be read (see `kernel_stack_measured`).
    pub kernel_stack_bytes: f64,
    /// Whether `kernel_stack_bytes` was measured (a growth of `KernelStack`) rather than
    /// assumed (16 KiB per thread).
    #[serde(default = "yes")]
    pub kernel_stack_measured: bool,
    /// Growth of this process's virtual size (threads only: stacks are reserved, not resident).
    pub virtual_bytes: Option<f64>,
    /// USS per worker of each independent round (the point is the median round's); one
    /// unless the headline shows it.
    #[serde(default)]
    pub rounds_uss_bytes: Vec<f64>,
    /// The overhead per worker ([`WorkerPoint::overhead`]) of each independent round.
    #[serde(default)]
    pub rounds_overhead_bytes: Vec<f64>,
}

fn yes() -> bool {
    true
}

impl WorkerPoint {
    /// What one worker costs beyond the `working_set` the lab gave it: USS less the working
    /// set, plus page tables and kernel stack (kernel memory, which USS does not count).
    pub fn overhead(&self, working_set: f64) -> f64 {
        self.uss_bytes - working_set + self.page_table_bytes + self.kernel_stack_bytes
    }

    /// The same with PSS in place of USS: the worker's fair share of pages it shares.
    pub fn overhead_pss(&self, working_set: f64) -> f64 {
        self.pss_bytes - working_set + self.page_table_bytes + self.kernel_stack_bytes
    }
}

/// N tokio tasks parked on a oneshot channel, per task.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaskPoint {
    /// N, the number of parked tasks.
    pub tasks: usize,
    /// Growth of this process's resident set size per task, in bytes.
    pub rss_bytes: f64,
    /// Growth of this process's proportional set size per task, in bytes.
    pub pss_bytes: f64,
    /// Growth of this process's unique set size per task, in bytes.
    pub uss_bytes: f64,
}

/// The kernel stack per worker from two readings of `KernelStack` around `n` workers (one
/// thread each): the growth when both readings exist and it is positive, otherwise
/// [`KERNEL_STACK_ESTIMATE`]; and whether it was measured.
fn kernel_stack_per_worker(before: Option<u64>, after: Option<u64>, n: usize) -> (f64, bool) {
    match (before, after) {
        (Some(b), Some(a)) if a > b => ((a - b) as f64 / n.max(1) as f64, true),
        _ => (KERNEL_STACK_ESTIMATE, false),
    }
}

/// Reads exactly `n` bytes from `fd` (ready signals), looping over partial reads.
fn read_n(fd: &OwnedFd, mut n: usize) -> Result<()> {
    let mut buf = [0u8; 512];
    while n > 0 {
        let want = n.min(buf.len());
        match read(fd, &mut buf[..want]) {
            Ok(0) => bail!("ready pipe closed with {n} workers missing"),
            Ok(k) => n -= k,
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e).context("read ready pipe"),
        }
    }
    Ok(())
}

/// Writes `n` bytes to `fd` (release signals).
fn write_n(fd: &OwnedFd, mut n: usize) -> Result<()> {
    let buf = [b'g'; 512];
    while n > 0 {
        match write(fd, &buf[..n.min(buf.len())]) {
            Ok(k) => n -= k,
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e).context("write release pipe"),
        }
    }
    Ok(())
}

/// Writes every word of a working set, so each of its pages is resident and private.
fn touch(ws: &[AtomicU64]) {
    for (i, w) in ws.iter().enumerate() {
        w.store(i as u64, Ordering::Relaxed);
    }
}

fn new_working_set() -> Box<[AtomicU64]> {
    (0..WORKING_SET / 8).map(|_| AtomicU64::new(0)).collect()
}

/// A thread's working set in a mapping of its own (`mmap`, private and anonymous), unmapped on
/// drop. A heap buffer would not do: malloc hands a new thread the arena and the cached stack of
/// a thread that has ended, pages still resident, so its 64 KiB can land on memory the process
/// already holds and its growth reads 0 B. A fresh mapping's pages are new to the process.
/// Main maps it and the thread writes it (mapping alone makes nothing resident).
#[derive(Debug)]
struct FreshMapping {
    ptr: std::ptr::NonNull<AtomicU64>,
    len: usize,
}

impl FreshMapping {
    fn new(len: usize) -> Result<FreshMapping> {
        use nix::sys::mman::{MapFlags, ProtFlags, mmap_anonymous};
        let size = std::num::NonZeroUsize::new(len).context("an empty working set")?;
        // SAFETY: a fresh anonymous mapping at an address of the kernel's choosing aliases
        // nothing; it is zero-filled, a valid array of AtomicU64 (page-aligned).
        let ptr = unsafe {
            mmap_anonymous(
                None,
                size,
                ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                MapFlags::MAP_PRIVATE,
            )
        }
        .context("mmap a thread's working set")?;
        Ok(FreshMapping {
            ptr: ptr.cast(),
            len,
        })
    }

    fn words(&self) -> &[AtomicU64] {
        // SAFETY: the mapping lives as long as `self`, is aligned and `len` bytes long, and is
        // only accessed through atomics.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len / 8) }
    }
}

// SAFETY: the mapping is owned by one FreshMapping and only read or written through atomics.
unsafe impl Send for FreshMapping {}

impl Drop for FreshMapping {
    fn drop(&mut self) {
        // SAFETY: the mapping was made by `new` with this length; no borrow of it outlives self.
        let _ = unsafe { nix::sys::mman::munmap(self.ptr.cast(), self.len) };
    }
}

/// N forked children, each writing its copy of the working set; returns per-worker figures.
fn idle_processes(n: usize, pids: &mut Vec<i32>) -> Result<WorkerPoint> {
    // Allocated and written by the parent: each child's writes copy these pages (copy-on-write).
    let ws = new_working_set();
    touch(&ws);
    let (ready_r, ready_w) = pipe().context("pipe")?;
    let (go_r, go_w) = pipe().context("pipe")?;
    let kstack_before = procfs::kernel_stack_bytes();
    let mut children = Children::new();
    for _ in 0..n {
        let (ws, ready_w, go_r) = (&*ws, &ready_w, &go_r);
        // Atomics, write and read only: async-signal-safe after fork.
        let child = || {
            touch(ws);
            std::hint::black_box(ws);
            let _ = write(ready_w, b"r");
            let mut b = [0u8; 1];
            let _ = read(go_r, &mut b);
            0
        };
        // SAFETY: atomics, write and read only (see above).
        let pid = unsafe { fork_child(child) }.context("fork an idle worker")?;
        children.push(pid);
        pids.push(pid.as_raw());
    }
    read_n(&ready_r, n)?;
    let kstack_after = procfs::kernel_stack_bytes();
    let mut sum = procfs::Usage::default();
    for pid in children.pids() {
        let u = procfs::usage(pid)?;
        sum.rss += u.rss;
        sum.pss += u.pss;
        sum.uss += u.uss;
        sum.pte += u.pte;
    }
    // The children block until killed (each also holds the release pipe's write end, so closing
    // ours would not wake them). On an early return above, dropping `children` does the same.
    drop(go_w);
    children.kill_all();
    let per = |x: f64| x / n as f64;
    let (kernel_stack_bytes, kernel_stack_measured) =
        kernel_stack_per_worker(kstack_before, kstack_after, n);
    Ok(WorkerPoint {
        model: Worker::Process,
        workers: n,
        rss_bytes: per(sum.rss),
        pss_bytes: per(sum.pss),
        uss_bytes: per(sum.uss),
        page_table_bytes: per(sum.pte),
        kernel_stack_bytes,
        kernel_stack_measured,
        virtual_bytes: None,
        rounds_uss_bytes: vec![per(sum.uss)],
        rounds_overhead_bytes: Vec::new(),
    })
}

/// N threads, each writing its own working set; returns the process's growth per worker.
///
/// [`STACK_CACHE_DRAIN`] threads are parked first, before the first sample: they take the
/// stacks glibc cached from threads that ended (resident already, so a growth would not see
/// them), and the N measured threads get fresh stacks, as the first threads of a new worker
/// pool would.
fn idle_threads(n: usize, tids: &mut Vec<i32>) -> Result<WorkerPoint> {
    let (ready_r, ready_w) = pipe().context("pipe")?;
    let (go_r, go_w) = pipe().context("pipe")?;
    let ids = Mutex::new(Vec::with_capacity(n));
    let measured = std::thread::scope(|s| -> Result<_> {
        let mut parked = 0;
        let mut failure = None;
        for _ in 0..STACK_CACHE_DRAIN {
            let (ready_w, go_r) = (&ready_w, &go_r);
            let spawn = std::thread::Builder::new().spawn_scoped(s, move || {
                let _ = write(ready_w, b"r");
                let mut b = [0u8; 1];
                let _ = read(go_r, &mut b);
            });
            match spawn {
                Ok(_) => parked += 1,
                Err(e) => {
                    failure = Some(anyhow::Error::from(e).context("spawn a stack-cache drain"));
                    break;
                }
            }
        }
        let drained = read_n(&ready_r, parked);
        let before = drained.and_then(|()| procfs::usage("self"));
        let kstack_before = procfs::kernel_stack_bytes();
        let mut spawned = 0;
        for _ in 0..n {
            if failure.is_some() || before.is_err() {
                break;
            }
            let (ready_w, go_r, ids) = (&ready_w, &go_r, &ids);
            let ws = match FreshMapping::new(WORKING_SET) {
                Ok(ws) => ws,
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            };
            let spawn = std::thread::Builder::new().spawn_scoped(s, move || {
                touch(ws.words());
                // Without this the optimizer may drop the unread stores, and the thread looks
                // 64 KiB cheaper than it is.
                std::hint::black_box(ws.words());
                ids.lock().expect("never poisoned").push(gettid().as_raw());
                let _ = write(ready_w, b"r");
                let mut b = [0u8; 1];
                let _ = read(go_r, &mut b);
                drop(ws);
            });
            match spawn {
                Ok(_) => spawned += 1,
                Err(e) => {
                    failure = Some(anyhow::Error::from(e).context("spawn"));
                    break;
                }
            }
        }
        let sample = before.and_then(|before| {
            read_n(&ready_r, spawned)?;
            let after = procfs::usage("self")?;
            Ok((before, after, kstack_before, procfs::kernel_stack_bytes()))
        });
        // Release every thread that started, whatever happened, so the scope can join them.
        write_n(&go_w, parked + spawned)?;
        if let Some(e) = failure {
            return Err(e).context(format!("start thread {} of {n}", spawned + 1));
        }
        sample
    })?;
    tids.extend(ids.into_inner().expect("never poisoned"));
    let (before, after, kstack_before, kstack_after) = measured;
    let per = |a: f64, b: f64| (a - b) / n as f64;
    let (kernel_stack_bytes, kernel_stack_measured) =
        kernel_stack_per_worker(kstack_before, kstack_after, n);
    Ok(WorkerPoint {
        model: Worker::Thread,
        workers: n,
        rss_bytes: per(after.rss, before.rss),
        pss_bytes: per(after.pss, before.pss),
        uss_bytes: per(after.uss, before.uss),
        page_table_bytes: per(after.pte, before.pte),
        kernel_stack_bytes,
        kernel_stack_measured,
        virtual_bytes: Some(per(after.vsize, before.vsize)),
        rounds_uss_bytes: vec![per(after.uss, before.uss)],
        rounds_overhead_bytes: Vec::new(),
    })
}

/// N tokio tasks, each parked on a oneshot receiver; returns the process's growth per task.
fn idle_tasks(runtime: &tokio::runtime::Runtime, n: usize) -> Result<TaskPoint> {
    runtime.block_on(async {
        let started = std::sync::Arc::new(AtomicUsize::new(0));
        let before = procfs::usage("self")?;
        let mut senders = Vec::with_capacity(n);
        let mut handles = Vec::with_capacity(n);
        for _ in 0..n {
            let (tx, rx) = tokio::sync::oneshot::channel::<()>();
            let started = started.clone();
            handles.push(tokio::spawn(async move {
                started.fetch_add(1, Ordering::Relaxed);
                let _ = rx.await;
            }));
            senders.push(tx);
        }
        // Let every task run up to its await, so each holds its parked state.
        while started.load(Ordering::Relaxed) < n {
            tokio::task::yield_now().await;
        }
        let after = procfs::usage("self")?;
        for tx in senders {
            let _ = tx.send(());
        }
        for h in handles {
            h.await.context("join an idle task")?;
        }
        let per = |a: f64, b: f64| (a - b) / n as f64;
        Ok(TaskPoint {
            tasks: n,
            rss_bytes: per(after.rss, before.rss),
            pss_bytes: per(after.pss, before.pss),
            uss_bytes: per(after.uss, before.uss),
        })
    })
}

fn thread_stack_reserved() -> u64 {
    std::env::var("RUST_MIN_STACK")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2 * 1024 * 1024)
}

impl Experiment for Memory {
    fn knobs(&self) -> &'static [super::Knob] {
        use super::Knob;
        &[Knob::Workers]
    }

    fn id(&self) -> &'static str {
        "memory"
    }

    fn title(&self) -> &'static str {
        "Memory per worker"
    }

    fn run(&self, config: &LabConfig, progress: &mut dyn Progress) -> Result<Section> {
        let started = Instant::now();
        let counts: Vec<usize> = match (&config.workers, config.profile) {
            (Some(w), _) => w.iter().copied().filter(|&n| n > 0).collect(),
            (None, Profile::Tiny) => vec![10, 100],
            (None, Profile::Quick) => vec![1, 10, 100],
            (None, Profile::Full) => vec![1, 10, 100, 1000],
        };
        let task_counts: Vec<usize> = counts
            .iter()
            .copied()
            .chain([MANY_TASKS])
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();

        progress.begin("memory", (2 * counts.len() + task_counts.len()) as u64);
        let mut result = MemoryResult {
            working_set_bytes: WORKING_SET as u64,
            thread_stack_reserved_bytes: thread_stack_reserved(),
            workers: Vec::new(),
            tasks: Vec::new(),
            child_pids: Vec::new(),
            thread_ids: Vec::new(),
        };
        for &n in &counts {
            // The headline's figures (100 workers) come from independent rounds, each with
            // fresh workers; the round kept is the one with the median overhead.
            let rounds = if n == HEADLINE_WORKERS { ROUNDS } else { 1 };
            let overhead = |p: &WorkerPoint| p.overhead(WORKING_SET as f64);
            let pids = &mut result.child_pids;
            let (mut p, all) = median_round(rounds, || idle_processes(n, pids), overhead)?;
            p.rounds_overhead_bytes = all;
            result.workers.push(p);
            progress.advance(1, &format!("{n} idle processes"));
            let tids = &mut result.thread_ids;
            let (mut p, all) = median_round(rounds, || idle_threads(n, tids), overhead)?;
            p.rounds_overhead_bytes = all;
            result.workers.push(p);
            progress.advance(1, &format!("{n} idle threads"));
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .context("start a tokio runtime")?;
        // One throw-away round, so the runtime's own first allocations are not billed to tasks.
        idle_tasks(&runtime, 16)?;
        // One round per count: a growth of this process cannot be measured in independent
        // rounds, since a second round of tasks reuses the memory the first one freed (the
        // threads' working sets are fresh mappings, and children are counted on their own).
        for &n in &task_counts {
            result.tasks.push(idle_tasks(&runtime, n)?);
            progress.advance(1, &format!("{n} idle tasks"));
        }
        progress.end();

        let mut section = section_from(&result);
        section.elapsed_ms = started.elapsed().as_secs_f64() * 1e3;
        Ok(section)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WS: f64 = WORKING_SET as f64;

    fn point(model: Worker, workers: usize, uss_bytes: f64, pte: f64) -> WorkerPoint {
        WorkerPoint {
            model,
            workers,
            rss_bytes: 2.0 * uss_bytes,
            pss_bytes: uss_bytes + 4096.0,
            uss_bytes,
            page_table_bytes: pte,
            kernel_stack_bytes: 16384.0,
            kernel_stack_measured: true,
            virtual_bytes: (model == Worker::Thread).then_some(2.0 * 1024.0 * 1024.0),
            rounds_uss_bytes: vec![uss_bytes],
            rounds_overhead_bytes: Vec::new(),
        }
    }

    fn result(workers: Vec<WorkerPoint>) -> MemoryResult {
        MemoryResult {
            working_set_bytes: WORKING_SET as u64,
            thread_stack_reserved_bytes: 2 << 20,
            workers,
            tasks: vec![TaskPoint {
                tasks: 10_000,
                rss_bytes: 400.0,
                pss_bytes: 400.0,
                uss_bytes: 400.0,
            }],
            child_pids: vec![],
            thread_ids: vec![],
        }
    }

    #[test]
    fn section_from_hand_made_points() {
        let result = result(vec![
            WorkerPoint {
                rounds_overhead_bytes: vec![300_000.0, 320_000.0, 400_000.0],
                ..point(Worker::Process, 100, WS + 100_000.0, 200_000.0)
            },
            point(Worker::Thread, 100, WS + 8192.0, 4096.0),
            // A growth of 100 B over 10 workers is below a page / 10.
            point(Worker::Thread, 10, 100.0, 0.0),
        ]);
        let s = section_from(&result);
        let f = |k: &str| s.figure(k).unwrap_or_else(|| panic!("{k}"));
        // USS less the working set, plus page tables and kernel stack.
        let process = f("memory.overhead_per_worker.process.100");
        assert_eq!(process.value, 100_000.0 + 200_000.0 + 16384.0);
        let rounds = process
            .rounds
            .as_ref()
            .expect("the headline figure has its rounds");
        assert_eq!(rounds.values, vec![300_000.0, 320_000.0, 400_000.0]);
        assert_eq!(
            f("memory.overhead_per_worker.thread.100").value,
            8192.0 + 4096.0 + 16384.0
        );
        assert_eq!(
            f("memory.overhead_pss_per_worker.thread.100").value,
            8192.0 + 4096.0 + 4096.0 + 16384.0
        );
        assert_eq!(f("memory.uss_per_worker.process.100").value, WS + 100_000.0);
        assert!(f("memory.uss_per_worker.thread.10").below_resolution());
        assert!(!f("memory.uss_per_worker.process.100").below_resolution());
        assert_eq!(f("memory.per_task.async.10000").value, 400.0);
        assert!(f("memory.per_task.async.10000").rounds.is_none());
        assert_eq!(f("memory.working_set").value, WS);
        // The overhead table first, one row per point; then every point and task count.
        assert!(s.tables[0].title.starts_with("Overhead"));
        assert_eq!(s.tables[0].rows.len(), 3);
        assert_eq!(s.tables[1].rows.len(), 4);
        assert_eq!(s.data["workers"].as_array().map(Vec::len), Some(3));
        assert!(s.notes.iter().all(|n| !n.contains("assumed, 16 KiB")));
    }

    #[test]
    fn an_unreadable_kernel_stack_is_assumed_and_said_so() {
        assert_eq!(
            kernel_stack_per_worker(Some(1 << 20), Some((1 << 20) + 100 * 16384), 100),
            (16384.0, true)
        );
        assert_eq!(
            kernel_stack_per_worker(None, Some(1 << 20), 100),
            (KERNEL_STACK_ESTIMATE, false)
        );
        // A reading that shrank (other processes ended meanwhile) is no measurement.
        assert_eq!(
            kernel_stack_per_worker(Some(1 << 20), Some(1 << 19), 100),
            (KERNEL_STACK_ESTIMATE, false)
        );
        let mut p = point(Worker::Process, 100, WS, 8192.0);
        p.kernel_stack_measured = false;
        let s = section_from(&result(vec![p]));
        let ks = s
            .figure("memory.kernel_stack_per_worker.process.100")
            .expect("kernel stack figure");
        assert!(
            ks.placement
                .as_deref()
                .is_some_and(|w| w.contains("assumed"))
        );
        assert!(s.tables[0].rows[0][5].contains("assumed"));
        assert!(s.notes.iter().any(|n| n.contains("assumed, 16 KiB")));
    }
}

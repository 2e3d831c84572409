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

/// The worker count of the headline's figures.
const HEADLINE_WORKERS: usize = 10;

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
    /// Growth of the system-wide `KernelStack` (noisy: other processes count too).
    pub kernel_stack_bytes: f64,
    /// Growth of this process's virtual size (threads only: stacks are reserved, not resident).
    pub virtual_bytes: Option<f64>,
    /// USS per worker of each independent round (the point is the median round's); one
    /// unless the headline shows it.
    #[serde(default)]
    pub rounds_uss_bytes: Vec<f64>,
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

fn kernel_stack() -> f64 {
    procfs::or_zero(procfs::kernel_stack_bytes())
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
    let kstack_before = kernel_stack();
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
    let kstack_after = kernel_stack();
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
    Ok(WorkerPoint {
        model: Worker::Process,
        workers: n,
        rss_bytes: per(sum.rss),
        pss_bytes: per(sum.pss),
        uss_bytes: per(sum.uss),
        page_table_bytes: per(sum.pte),
        kernel_stack_bytes: per(kstack_after - kstack_before),
        virtual_bytes: None,
        rounds_uss_bytes: vec![per(sum.uss)],
    })
}

/// N threads, each writing its own working set; returns the process's growth per worker.
fn idle_threads(n: usize, tids: &mut Vec<i32>) -> Result<WorkerPoint> {
    let (ready_r, ready_w) = pipe().context("pipe")?;
    let (go_r, go_w) = pipe().context("pipe")?;
    let ids = Mutex::new(Vec::with_capacity(n));
    let before = procfs::usage("self")?;
    let kstack_before = kernel_stack();
    let measured = std::thread::scope(|s| -> Result<(procfs::Usage, f64)> {
        let mut spawned = 0;
        let mut failure = None;
        for _ in 0..n {
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
        let sample = read_n(&ready_r, spawned).and_then(|()| {
            let after = procfs::usage("self")?;
            Ok((after, kernel_stack()))
        });
        // Release every thread that started, whatever happened, so the scope can join them.
        write_n(&go_w, spawned)?;
        if let Some(e) = failure {
            return Err(e).context(format!("start thread {} of {n}", spawned + 1));
        }
        sample
    })?;
    tids.extend(ids.into_inner().expect("never poisoned"));
    let (after, kstack_after) = measured;
    let per = |a: f64, b: f64| (a - b) / n as f64;
    Ok(WorkerPoint {
        model: Worker::Thread,
        workers: n,
        rss_bytes: per(after.rss, before.rss),
        pss_bytes: per(after.pss, before.pss),
        uss_bytes: per(after.uss, before.uss),
        page_table_bytes: per(after.pte, before.pte),
        kernel_stack_bytes: per(kstack_after, kstack_before),
        virtual_bytes: Some(per(after.vsize, before.vsize)),
        rounds_uss_bytes: vec![per(after.uss, before.uss)],
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
            (None, Profile::Tiny) => vec![1, 10],
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
            // The headline's figures (10 workers) come from independent rounds, each with
            // fresh workers.
            let rounds = if n == HEADLINE_WORKERS { ROUNDS } else { 1 };
            let uss = |p: &WorkerPoint| p.uss_bytes;
            let pids = &mut result.child_pids;
            let (mut p, all) = median_round(rounds, || idle_processes(n, pids), uss)?;
            p.rounds_uss_bytes = all;
            result.workers.push(p);
            progress.advance(1, &format!("{n} idle processes"));
            let tids = &mut result.thread_ids;
            let (mut p, all) = median_round(rounds, || idle_threads(n, tids), uss)?;
            p.rounds_uss_bytes = all;
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

    #[test]
    fn section_from_hand_made_points() {
        let point = |model: Worker, workers, uss_bytes| WorkerPoint {
            model,
            workers,
            rss_bytes: 2.0 * uss_bytes,
            pss_bytes: 1.5 * uss_bytes,
            uss_bytes,
            page_table_bytes: 8192.0,
            kernel_stack_bytes: 16384.0,
            virtual_bytes: (model == Worker::Thread).then_some(2.0 * 1024.0 * 1024.0),
            rounds_uss_bytes: vec![uss_bytes],
        };
        let result = MemoryResult {
            working_set_bytes: WORKING_SET as u64,
            thread_stack_reserved_bytes: 2 << 20,
            workers: vec![
                WorkerPoint {
                    rounds_uss_bytes: vec![150_000.0, 160_000.0, 200_000.0],
                    ..point(Worker::Process, 10, 160_000.0)
                },
                point(Worker::Thread, 10, 70_000.0),
                // A growth of 100 B over 10 workers is below a page / 10.
                point(Worker::Thread, 1, 100.0),
            ],
            tasks: vec![TaskPoint {
                tasks: 10_000,
                rss_bytes: 400.0,
                pss_bytes: 400.0,
                uss_bytes: 400.0,
            }],
            child_pids: vec![],
            thread_ids: vec![],
        };
        let s = section_from(&result);
        let f = |k: &str| s.figure(k).unwrap_or_else(|| panic!("{k}"));
        assert_eq!(f("memory.uss_per_worker.process.10").value, 160_000.0);
        let rounds = f("memory.uss_per_worker.process.10").rounds.clone();
        assert_eq!(rounds.map(|r| r.spread_pct), Some(25.0));
        assert_eq!(f("memory.uss_per_worker.thread.10").value, 70_000.0);
        assert!(f("memory.uss_per_worker.thread.1").below_resolution());
        assert!(!f("memory.uss_per_worker.process.10").below_resolution());
        assert_eq!(f("memory.per_task.async.10000").value, 400.0);
        assert!(f("memory.per_task.async.10000").rounds.is_none());
        assert_eq!(s.tables[0].rows.len(), 4);
        assert_eq!(s.data["workers"].as_array().map(Vec::len), Some(3));
    }
}

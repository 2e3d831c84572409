//! `race`: threads share memory, so an unsynchronized counter loses updates; processes share
//! nothing unless given shared memory.
//!
//! The classic experiment: 2 threads × 100 000 increments of one counter. The unsynchronized
//! read-modify-write is an atomic load followed by an atomic store (both `Relaxed`): it loses
//! updates exactly like `counter += 1` on a plain integer would, without the undefined behaviour
//! of a data race in Rust. The fixes: a `Mutex`, `fetch_add`, and per-thread sums added up at the
//! end. Then the same with two forked processes: a counter in ordinary (copy-on-write) memory
//! stays 0 in the parent; an `AtomicU64` in a `MAP_SHARED` mapping counts exactly.
//!
//! Non-determinism, shown: the unsynchronized counter runs many times (200 in the quick
//! profile) with 1, 2 and 2 × CPUs threads and with 2 threads pinned to one CPU, and the lost
//! updates of every run go into a histogram; the `Mutex` and `fetch_add` variants run as often
//! and must be exact in every run.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Barrier, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use super::Experiment;
use crate::measure::{allowed_cpus, pin_to_raw};
use crate::report::{Chart, ChartKind, Figure, Profile, Section, Series, Table, Unit};
use crate::shared_mem::{Children, SharedMem, fork_child};
use crate::stats::median_and_spread;
use crate::verdict::keys;
use crate::{LabConfig, Progress};

mod section;
use section::section_from;

/// The race-condition experiment.
#[derive(Debug, Clone, Copy, Default)]
pub struct Race;

/// How the threads add to the shared counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Variant {
    /// Atomic load then atomic store: a lost-update race without undefined behaviour.
    Unsync,
    /// Each increment under a `std::sync::Mutex`.
    Mutex,
    /// `fetch_add`.
    Atomic,
    /// Each thread counts in a local, the sums are added once at the end.
    PerThread,
}

impl Variant {
    const ALL: [Variant; 4] = [
        Variant::Unsync,
        Variant::Mutex,
        Variant::Atomic,
        Variant::PerThread,
    ];

    fn name(self) -> &'static str {
        match self {
            Variant::Unsync => "unsync",
            Variant::Mutex => "mutex",
            Variant::Atomic => "atomic",
            Variant::PerThread => "per_thread",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Variant::Unsync => "unsynchronized load+store",
            Variant::Mutex => "Mutex",
            Variant::Atomic => "fetch_add",
            Variant::PerThread => "per-thread sums",
        }
    }
}

/// Every repetition, for `Section::data`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RaceResult {
    /// Increments each worker (thread or process) makes.
    pub increments_per_worker: u64,
    /// Repetitions of every run.
    pub repetitions: usize,
    /// The thread runs, one per variant and thread count.
    pub runs: Vec<ThreadRuns>,
    /// The two-process runs.
    pub processes: ProcessRuns,
    /// The unsynchronized counter over many runs, at several thread counts and placements.
    #[serde(default)]
    pub distributions: Vec<LossDistribution>,
    /// The fixes over as many runs: how many came out exact.
    #[serde(default)]
    pub exact: Vec<ExactRuns>,
}

/// Lost updates of the unsynchronized counter, run after run, in one setting.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LossDistribution {
    /// The setting's key: `threads_1`, `threads_2`, `threads_2x_cores` or `one_cpu`.
    pub setting: String,
    /// Threads incrementing the counter.
    pub threads: usize,
    /// The CPUs the threads are pinned to, thread i to the (i mod len)-th.
    pub cpus: Vec<usize>,
    /// threads × increments per worker.
    pub expected: u64,
    /// Lost updates (expected − final), per run.
    pub lost: Vec<u64>,
}

impl LossDistribution {
    fn label(&self) -> String {
        match self.setting.as_str() {
            "one_cpu" => format!("{} threads on one CPU", self.threads),
            "threads_2x_cores" => format!("{} threads (2 × CPUs)", self.threads),
            _ if self.threads == 1 => "1 thread".to_string(),
            _ => format!("{} threads", self.threads),
        }
    }

    /// Runs that lost at least one update.
    pub fn lossy_runs(&self) -> usize {
        self.lost.iter().filter(|&&l| l > 0).count()
    }
}

/// A fix over many runs, 2 threads.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExactRuns {
    /// The fix.
    pub variant: Variant,
    /// Threads incrementing the counter.
    pub threads: usize,
    /// Runs made.
    pub runs: usize,
    /// Runs whose final count was exactly the expected one.
    pub exact: usize,
    /// The final counts of the runs that were not exact (none, if the fix works).
    pub inexact_finals: Vec<u64>,
}

/// A histogram of lost updates shared by several distributions: the first bin holds the runs
/// that lost nothing, the others split (0, max] into `bins` equal parts (max = the largest loss
/// of any distribution). Returns the bin labels and, per distribution, a count per bin.
pub fn loss_histogram(lost: &[&[u64]], bins: usize) -> (Vec<String>, Vec<Vec<u64>>) {
    let max = lost
        .iter()
        .flat_map(|l| l.iter())
        .copied()
        .max()
        .unwrap_or(0);
    let bins = if max == 0 { 0 } else { bins.max(1) };
    let width = if bins == 0 {
        1
    } else {
        max.div_ceil(bins as u64).max(1)
    };
    let mut labels = vec!["0".to_string()];
    for b in 0..bins as u64 {
        labels.push(format!("{}–{}", b * width + 1, (b + 1) * width));
    }
    let counts = lost
        .iter()
        .map(|l| {
            let mut c = vec![0u64; labels.len()];
            for &x in l.iter() {
                let i = if x == 0 {
                    0
                } else {
                    1 + ((x - 1) / width) as usize
                };
                c[i.min(labels.len() - 1)] += 1;
            }
            c
        })
        .collect();
    (labels, counts)
}

/// One variant at one thread count, over all repetitions.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ThreadRuns {
    /// How the threads add to the counter.
    pub variant: Variant,
    /// Number of threads incrementing the counter.
    pub threads: usize,
    /// The final count if no update is lost: threads × increments per worker.
    pub expected: u64,
    /// The counter's final value, per repetition.
    pub finals: Vec<u64>,
    /// Wall time from the first thread leaving the barrier to the last finish / all increments.
    pub ns_per_increment: Vec<f64>,
}

/// Two forked processes, over all repetitions.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProcessRuns {
    /// Number of forked processes (2).
    pub workers: usize,
    /// The final count if no update is lost: workers × increments per worker.
    pub expected: u64,
    /// What the parent read from the counter in ordinary memory after both children finished.
    pub parent_after_copy: Vec<u64>,
    /// What each child read from its own copy of that counter before exiting.
    pub child_saw_copy: Vec<u64>,
    /// The `AtomicU64` in a `MAP_SHARED` page, `fetch_add` by both children.
    pub shared_atomic_final: Vec<u64>,
    /// The same page, unsynchronized load+store by both children: processes race too once
    /// they share memory.
    pub shared_unsync_final: Vec<u64>,
}

fn median_u64(xs: &[u64]) -> f64 {
    median_and_spread(&xs.iter().map(|&x| x as f64).collect::<Vec<_>>()).0
}

/// Runs `variant` on `threads` threads, each adding `increments`; returns the final count and
/// the time from the common start to the last finish.
fn run_threads(
    variant: Variant,
    threads: usize,
    increments: u64,
    cpus: &[usize],
) -> (u64, Duration) {
    let counter = AtomicU64::new(0);
    let mutex = Mutex::new(0u64);
    let barrier = Barrier::new(threads);
    let arrived = AtomicUsize::new(0);
    let spans: Vec<(Instant, Instant)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|i| {
                let (counter, mutex, barrier, arrived) = (&counter, &mutex, &barrier, &arrived);
                s.spawn(move || {
                    // Unpinned, the scheduler often parks a fresh thread on the CPU of the one
                    // already running, and the two barely overlap; pinned, they run together.
                    if let Some(&cpu) = cpus.get(i % cpus.len().max(1)) {
                        pin_to_raw(cpu);
                    }
                    barrier.wait();
                    // The barrier wakes its sleepers one by one, tens of µs apart: longer than
                    // 100 000 increments take. A spinning rendezvous after it makes the threads
                    // really overlap, so the race has a chance to strike.
                    rendezvous(arrived, threads);
                    let start = Instant::now();
                    match variant {
                        Variant::Unsync => {
                            for _ in 0..increments {
                                let v = counter.load(Ordering::Relaxed);
                                counter.store(v + 1, Ordering::Relaxed);
                            }
                        }
                        Variant::Mutex => {
                            for _ in 0..increments {
                                *mutex.lock().expect("never poisoned") += 1;
                            }
                        }
                        Variant::Atomic => {
                            for _ in 0..increments {
                                counter.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        Variant::PerThread => {
                            let mut local = 0u64;
                            for _ in 0..increments {
                                // black_box keeps the loop a loop instead of `local += n`.
                                local = std::hint::black_box(local + 1);
                            }
                            counter.fetch_add(local, Ordering::Relaxed);
                        }
                    }
                    (start, Instant::now())
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("race worker does not panic"))
            .collect()
    });
    // From the first thread leaving the barrier to the last one finishing.
    let first = spans
        .iter()
        .map(|s| s.0)
        .min()
        .expect("at least one thread");
    let last = spans
        .iter()
        .map(|s| s.1)
        .max()
        .expect("at least one thread");
    let total = match variant {
        Variant::Mutex => mutex.into_inner().expect("never poisoned"),
        _ => counter.load(Ordering::Relaxed),
    };
    (total, last.saturating_duration_since(first))
}

/// Counts in and spins until `n` parties are in; yields now and then so that oversubscribed
/// parties still get to arrive. Only atomics and sched_yield: usable after fork.
fn rendezvous(arrived: &AtomicUsize, n: usize) {
    arrived.fetch_add(1, Ordering::AcqRel);
    let mut spins = 0u32;
    while arrived.load(Ordering::Acquire) < n {
        spins = spins.wrapping_add(1);
        if spins % 1024 == 0 {
            std::thread::yield_now();
        } else {
            std::hint::spin_loop();
        }
    }
}

/// The page both children see in the shared-memory runs.
#[derive(Debug, Default)]
struct SharedCounters {
    arrived: AtomicUsize,
    counter: AtomicU64,
    seen: [AtomicU64; 2],
}

#[derive(Debug, Clone, Copy)]
enum ProcessVariant {
    /// A counter in ordinary memory: each child increments its own copy.
    Copy,
    SharedAtomic,
    SharedUnsync,
}

/// Two children add `increments` each; returns (what the parent reads, what each child read).
fn run_processes(
    variant: ProcessVariant,
    increments: u64,
    cpus: &[usize],
) -> Result<(u64, [u64; 2])> {
    let shared = SharedMem::new(SharedCounters::default()).context("map shared memory")?;
    // Ordinary heap memory: after fork each child writes to its own copy of this page.
    let private = Box::new(AtomicU64::new(0));
    let mut children = Children::new();
    for side in 0..2 {
        let (shared, private) = (&*shared, &*private);
        // Only an affinity syscall, atomics and sched_yield in the child: async-signal-safe
        // after fork.
        let child = || {
            if let Some(&cpu) = cpus.get(side % cpus.len().max(1)) {
                pin_to_raw(cpu);
            }
            rendezvous(&shared.arrived, 2);
            match variant {
                ProcessVariant::Copy => {
                    for _ in 0..increments {
                        private.fetch_add(1, Ordering::Relaxed);
                    }
                    shared.seen[side].store(private.load(Ordering::Relaxed), Ordering::Relaxed);
                }
                ProcessVariant::SharedAtomic => {
                    for _ in 0..increments {
                        shared.counter.fetch_add(1, Ordering::Relaxed);
                    }
                }
                ProcessVariant::SharedUnsync => {
                    for _ in 0..increments {
                        let v = shared.counter.load(Ordering::Relaxed);
                        shared.counter.store(v + 1, Ordering::Relaxed);
                    }
                }
            }
            0
        };
        // SAFETY: an affinity syscall, atomics and sched_yield only (see above).
        let pid = unsafe { fork_child(child) }.context("fork a race worker")?;
        children.push(pid);
    }
    if children.wait_all() != 2 {
        bail!("a race worker process did not exit cleanly");
    }
    let parent = match variant {
        ProcessVariant::Copy => private.load(Ordering::Relaxed),
        _ => shared.counter.load(Ordering::Relaxed),
    };
    let seen = [0, 1].map(|i| shared.seen[i].load(Ordering::Relaxed));
    Ok((parent, seen))
}

/// 2 threads, then every power of two up to the CPU count, the CPU count, and twice it
/// (oversubscribed).
fn thread_counts(cpus: usize) -> Vec<usize> {
    let mut counts = vec![2];
    let mut n = 4;
    while n <= cpus {
        counts.push(n);
        n *= 2;
    }
    counts.extend([cpus, 2 * cpus]);
    counts.retain(|&n| n >= 2);
    counts.sort_unstable();
    counts.dedup();
    counts
}

impl Experiment for Race {
    fn knobs(&self) -> &'static [super::Knob] {
        use super::Knob;
        &[Knob::Iterations]
    }

    fn id(&self) -> &'static str {
        "race"
    }

    fn title(&self) -> &'static str {
        "Shared data and race conditions"
    }

    fn run(&self, config: &LabConfig, progress: &mut dyn Progress) -> Result<Section> {
        let started = Instant::now();
        let (default_increments, repetitions) = match config.profile {
            Profile::Tiny => (20_000, 3),
            Profile::Quick => (100_000, 11),
            Profile::Full => (100_000, 31),
        };
        let increments = config.iterations.unwrap_or(default_increments).max(1);
        let allowed = allowed_cpus();
        let cpus = allowed.len().max(1);
        let counts = thread_counts(cpus);

        let dist_runs = match config.profile {
            Profile::Tiny => 20,
            Profile::Quick => 200,
            Profile::Full => 500,
        };
        progress.begin("race", (counts.len() * Variant::ALL.len() + 3 + 6) as u64);
        let mut runs = Vec::new();
        for &threads in &counts {
            for variant in Variant::ALL {
                let mut r = ThreadRuns {
                    variant,
                    threads,
                    expected: threads as u64 * increments,
                    finals: Vec::new(),
                    ns_per_increment: Vec::new(),
                };
                run_threads(variant, threads, increments.min(1_000), &allowed); // warm-up
                for _ in 0..repetitions {
                    let (total, elapsed) = run_threads(variant, threads, increments, &allowed);
                    r.finals.push(total);
                    r.ns_per_increment
                        .push(elapsed.as_nanos() as f64 / r.expected as f64);
                }
                runs.push(r);
                progress.advance(1, &format!("{} × {threads} threads", variant.label()));
            }
        }

        let mut processes = ProcessRuns {
            workers: 2,
            expected: 2 * increments,
            parent_after_copy: Vec::new(),
            child_saw_copy: Vec::new(),
            shared_atomic_final: Vec::new(),
            shared_unsync_final: Vec::new(),
        };
        // Fork costs more than a thread run: fewer repetitions are enough for exact values.
        let process_reps = repetitions.min(5);
        for _ in 0..process_reps {
            let (parent, seen) = run_processes(ProcessVariant::Copy, increments, &allowed)?;
            processes.parent_after_copy.push(parent);
            processes.child_saw_copy.extend(seen);
        }
        progress.advance(1, "2 processes, ordinary memory");
        for _ in 0..process_reps {
            let (v, _) = run_processes(ProcessVariant::SharedAtomic, increments, &allowed)?;
            processes.shared_atomic_final.push(v);
        }
        progress.advance(1, "2 processes, shared atomic");
        for _ in 0..process_reps {
            let (v, _) = run_processes(ProcessVariant::SharedUnsync, increments, &allowed)?;
            processes.shared_unsync_final.push(v);
        }
        progress.advance(1, "2 processes, shared unsynchronized");

        // The distributions: many runs of the unsynchronized counter per setting, after one
        // warm-up run each.
        let one_cpu = vec![allowed.first().copied().unwrap_or(0)];
        let settings = [
            ("threads_1", 1, allowed.clone()),
            ("threads_2", 2, allowed.clone()),
            ("threads_2x_cores", 2 * cpus, allowed.clone()),
            ("one_cpu", 2, one_cpu),
        ];
        let mut distributions = Vec::new();
        for (setting, threads, pinned) in settings {
            let expected = threads as u64 * increments;
            run_threads(Variant::Unsync, threads, increments, &pinned); // warm-up
            let lost = (0..dist_runs)
                .map(|_| expected - run_threads(Variant::Unsync, threads, increments, &pinned).0)
                .collect();
            distributions.push(LossDistribution {
                setting: setting.to_string(),
                threads,
                cpus: pinned,
                expected,
                lost,
            });
            progress.advance(1, &format!("{dist_runs} runs, unsynchronized, {setting}"));
        }
        let mut exact = Vec::new();
        for variant in [Variant::Mutex, Variant::Atomic] {
            let expected = 2 * increments;
            let finals: Vec<u64> = (0..dist_runs)
                .map(|_| run_threads(variant, 2, increments, &allowed).0)
                .collect();
            exact.push(ExactRuns {
                variant,
                threads: 2,
                runs: dist_runs,
                exact: finals.iter().filter(|&&f| f == expected).count(),
                inexact_finals: finals.into_iter().filter(|&f| f != expected).collect(),
            });
            progress.advance(1, &format!("{dist_runs} runs, {}", variant.label()));
        }
        progress.end();

        let result = RaceResult {
            increments_per_worker: increments,
            repetitions,
            runs,
            processes,
            distributions,
            exact,
        };
        let mut section = section_from(&result, cpus);
        section.elapsed_ms = started.elapsed().as_secs_f64() * 1e3;
        Ok(section)
    }
}

#[cfg(test)]
mod tests;

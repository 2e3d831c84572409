//! `sync`: what synchronization costs, between threads and between processes.
//!
//! Uncontended: one thread pinned to the first allowed CPU locks and unlocks (or adds) in a
//! loop. Contended: two threads, or two forked processes, each pinned to its own CPU, hammer the
//! same lock or atomic; one op is one lock+unlock pair (or one `fetch_add`) and the figure is
//! wall time / all ops of both sides, i.e. the inverse of the aggregate throughput. Between
//! processes the lock is Drepper's three-state futex mutex in a `MAP_SHARED` page
//! ([`crate::shared_mem::FutexMutex`]); between threads it is `std::sync::Mutex` (itself a futex
//! mutex of the same design), and, for the verdict, the processes' very `FutexMutex`: the same
//! lock code on both sides, so what differs is only the process boundary. Both sides start from the same spin gate, so thread or process
//! creation is outside the timed window. Each figure is the median of per-batch means; batches
//! are calibrated to last at least 10 ms (quick) and the calibration runs count as warm-up.
//!
//! This file is long because every synchronization primitive needs its own contended setup,
//! between threads and between processes (a futex mutex in shared memory, a semaphore, a
//! Condvar hand-off), each timed the same way.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, RwLock};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use crate::report::{Chart, ChartKind, Figure, Profile, Section, Series, Table, Unit};
use crate::shared_mem::{Children, FutexMutex, SharedMem, fork_child, mono_ns};
use crate::{LabConfig, Progress};

use crate::measure::pin_to_raw;
use crate::stats::median_and_spread;
use crate::topology::Topology;

use super::{Experiment, ROUNDS, median_round, median_round_pair};
use crate::verdict::keys;

mod section;
use section::section_from;

/// The synchronization experiment.
#[derive(Debug, Clone, Copy, Default)]
pub struct SyncCost;

/// Every sample behind the section, for `Section::data`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SyncResult {
    /// One result per scenario measured.
    pub scenarios: Vec<ScenarioResult>,
    /// `FUTEX_WAIT` / `FUTEX_WAKE` calls made by the process-shared mutex over all contended
    /// process batches (warm-up included): how often contention actually reached the kernel.
    pub process_mutex_futex_waits: u64,
    /// `FUTEX_WAKE` calls made by the process-shared mutex, counted the same way.
    pub process_mutex_futex_wakes: u64,
    /// Total lock+unlock pairs behind those counts.
    pub process_mutex_ops: u64,
    /// The verdict's pair (the futex mutex, 2 threads against 2 processes) on each placement
    /// farther than the one its figures were taken on, one round each.
    #[serde(default)]
    pub placements: Vec<PlacementRow>,
}

/// The contended futex mutex on one placement, threads against processes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlacementRow {
    /// e.g. "other LLC (cpu 0 → cpu 8)".
    pub placement: String,
    /// Median ns per lock+unlock, two threads.
    pub thread_ns: f64,
    /// The same, two processes.
    pub process_ns: f64,
}

/// A `FUTEX_WAIT` that returns at once, private futex.
pub const FUTEX_WAIT_PRIVATE: &str = "sync.futex_wait.private";
/// The same, shared futex in a `MAP_SHARED` page.
pub const FUTEX_WAIT_SHARED: &str = "sync.futex_wait.shared";

/// `perf bench futex hash` beside our futex key-lookup figures, on the same CPU.
fn futex_cross_checks(s: &Section, cpu: usize) -> Vec<crate::report::CrossCheck> {
    [(false, FUTEX_WAIT_PRIVATE), (true, FUTEX_WAIT_SHARED)]
        .into_iter()
        .map(|(shared, key)| {
            let mut c = crate::crosscheck::compare(
                "perf bench futex hash",
                key,
                s.figure(key).map(|f| f.value),
                crate::crosscheck::perf_futex_hash(cpu, shared, 1),
                Unit::Ns,
            );
            if shared {
                let why = "perf's shared futex lives in private memory, ours in a MAP_SHARED page \
                           (what two processes need), so the kernel keys them differently";
                c.note = Some(match c.note.take() {
                    Some(n) => format!("{n}; {why}"),
                    None => why.to_string(),
                });
            }
            c
        })
        .collect()
}

#[derive(Debug, Clone, Serialize, Deserialize)]
/// One scenario's samples: a lock or atomic, its contention and its placement.
pub struct ScenarioResult {
    /// The scenario's figure key.
    pub key: String,
    /// The scenario's figure label.
    pub label: String,
    /// Where it ran, e.g. "two CPUs (cpu 0 and cpu 1)".
    pub placement: String,
    /// Ops per side per batch, after calibration.
    pub iterations_per_batch: u64,
    /// Mean ns per op of each batch (warm-up batches excluded).
    pub samples_ns: Vec<f64>,
    /// Median of `samples_ns`, in nanoseconds per op.
    pub median_ns: f64,
    /// The median of each independent round (`samples_ns` are the median round's); empty
    /// unless the headline shows it.
    #[serde(default)]
    pub round_medians_ns: Vec<f64>,
}

/// How many samples and how long a batch.
#[derive(Debug, Clone, Copy)]
struct Plan {
    samples: usize,
    /// `None`: no calibration, a fixed batch (tiny profile).
    target: Option<Duration>,
    start_iters: u64,
}

impl Plan {
    fn for_profile(config: &LabConfig) -> Plan {
        let start_iters = config.iterations.unwrap_or(1_000).max(1);
        match config.profile {
            Profile::Tiny => Plan {
                samples: 3,
                target: None,
                start_iters: config.iterations.unwrap_or(500).max(1),
            },
            Profile::Quick => Plan {
                samples: 11,
                target: Some(Duration::from_millis(10)),
                start_iters,
            },
            Profile::Full => Plan {
                samples: 31,
                target: Some(Duration::from_millis(20)),
                start_iters,
            },
        }
    }

    /// Calibrates a batch size (the calibration batches are the warm-up), then takes the
    /// samples. `batch(iters)` runs `iters` ops per side and returns the elapsed time and the
    /// number of ops in total.
    fn run(
        &self,
        mut batch: impl FnMut(u64) -> Result<(Duration, u64)>,
    ) -> Result<(u64, Vec<f64>)> {
        let mut iters = self.start_iters;
        if let Some(target) = self.target {
            batch(iters)?; // first touch: page faults, lazy binding, cold caches
            loop {
                let (elapsed, _) = batch(iters)?;
                if elapsed >= target || iters >= 1 << 32 {
                    break;
                }
                // Grow towards the target in one step where the estimate allows, at most ×16.
                let factor =
                    (target.as_secs_f64() / elapsed.as_secs_f64().max(1e-9)).clamp(1.2, 16.0);
                iters = (iters as f64 * factor).ceil() as u64;
            }
        } else {
            batch(iters)?;
        }
        let mut samples = Vec::with_capacity(self.samples);
        for _ in 0..self.samples {
            let (elapsed, ops) = batch(iters)?;
            samples.push(elapsed.as_nanos() as f64 / ops.max(1) as f64);
        }
        Ok((iters, samples))
    }
}

/// A start line both threads and processes wait at: each side bumps `ready` and spins until the
/// coordinator sets `go`, so the timed window starts with both sides running.
#[derive(Debug, Default)]
struct Gate {
    ready: AtomicU32,
    go: AtomicU32,
    end_ns: [AtomicU64; 2],
}

impl Gate {
    fn arrive_and_wait(&self) {
        self.ready.fetch_add(1, Ordering::AcqRel);
        while self.go.load(Ordering::Acquire) == 0 {
            // Yield rather than pure spinning: on a small machine the coordinator needs a CPU to
            // open the gate. sched_yield is a plain syscall, safe after fork.
            std::thread::yield_now();
        }
    }

    /// Waits for `n` sides, opens the gate, returns the opening time (`mono_ns`).
    fn open_when_ready(&self, n: u32) -> u64 {
        while self.ready.load(Ordering::Acquire) < n {
            std::thread::yield_now();
        }
        let t0 = mono_ns();
        self.go.store(1, Ordering::Release);
        t0
    }

    fn finished(&self, side: usize) {
        self.end_ns[side].store(mono_ns(), Ordering::Release);
    }

    fn elapsed_since(&self, t0: u64) -> Duration {
        let end = self
            .end_ns
            .iter()
            .map(|e| e.load(Ordering::Acquire))
            .max()
            .unwrap_or(t0);
        Duration::from_nanos(end.saturating_sub(t0))
    }
}

/// Process-shared state for the contended process scenarios.
#[derive(Debug, Default)]
struct ProcShared {
    gate: Gate,
    mutex: FutexMutex<u64>,
    counter: AtomicU64,
}

/// Runs `op(side, i)` `iters` times on two threads pinned to `cpus` (when given).
fn contended_threads(
    iters: u64,
    cpus: Option<(usize, usize)>,
    op: &(dyn Fn(usize, u64) + Sync),
) -> Duration {
    let gate = Gate::default();
    let t0 = std::thread::scope(|s| {
        for side in 0..2 {
            let gate = &gate;
            s.spawn(move || {
                if let Some((a, b)) = cpus {
                    pin_to_raw(if side == 0 { a } else { b });
                }
                gate.arrive_and_wait();
                for i in 0..iters {
                    op(side, i);
                }
                gate.finished(side);
            });
        }
        gate.open_when_ready(2)
    });
    // The scope joined both threads, so both end times are in.
    gate.elapsed_since(t0)
}

/// Runs `op(shared, i)` `iters` times in two forked children pinned to `cpus` (when given).
fn contended_processes(
    shared: &ProcShared,
    iters: u64,
    cpus: Option<(usize, usize)>,
    op: fn(&ProcShared, u64),
) -> Result<Duration> {
    shared.gate.ready.store(0, Ordering::Release);
    shared.gate.go.store(0, Ordering::Release);
    let mut children = Children::new();
    for side in 0..2 {
        let child = || {
            // Async-signal-safe only: affinity syscall, atomics, futex calls, clock_gettime.
            if let Some((a, b)) = cpus {
                pin_to_raw(if side == 0 { a } else { b });
            }
            shared.gate.arrive_and_wait();
            for i in 0..iters {
                op(shared, i);
            }
            shared.gate.finished(side);
            0
        };
        // SAFETY: an affinity syscall, atomics, futex calls and clock_gettime only (see above).
        let pid = unsafe { fork_child(child) }.context("fork a sync worker")?;
        children.push(pid);
    }
    let t0 = shared.gate.open_when_ready(2);
    if children.wait_all() != 2 {
        bail!("a sync worker process did not exit cleanly");
    }
    Ok(shared.gate.elapsed_since(t0))
}

/// A counting semaphore from a mutex and a condition variable (the monitor pattern).
#[derive(Debug)]
struct Semaphore {
    permits: Mutex<u64>,
    available: Condvar,
}

impl Semaphore {
    fn new(permits: u64) -> Semaphore {
        Semaphore {
            permits: Mutex::new(permits),
            available: Condvar::new(),
        }
    }

    fn acquire(&self) {
        let mut p = self
            .permits
            .lock()
            .expect("semaphore mutex is never poisoned");
        while *p == 0 {
            p = self
                .available
                .wait(p)
                .expect("semaphore mutex is never poisoned");
        }
        *p -= 1;
    }

    fn release(&self) {
        *self
            .permits
            .lock()
            .expect("semaphore mutex is never poisoned") += 1;
        self.available.notify_one();
    }
}

/// One producer hands `iters` values to one consumer through a one-slot monitor.
fn condvar_handoff(iters: u64, cpus: Option<(usize, usize)>) -> Result<Duration> {
    let slot: Mutex<Option<u64>> = Mutex::new(None);
    let not_empty = Condvar::new();
    let not_full = Condvar::new();
    let gate = Gate::default();
    let received = AtomicU64::new(0);
    let t0 = std::thread::scope(|s| {
        s.spawn(|| {
            if let Some((a, _)) = cpus {
                pin_to_raw(a);
            }
            gate.arrive_and_wait();
            for i in 0..iters {
                let mut g = slot.lock().expect("slot mutex is never poisoned");
                while g.is_some() {
                    g = not_full.wait(g).expect("slot mutex is never poisoned");
                }
                *g = Some(i);
                drop(g);
                not_empty.notify_one();
            }
            gate.finished(0);
        });
        s.spawn(|| {
            if let Some((_, b)) = cpus {
                pin_to_raw(b);
            }
            gate.arrive_and_wait();
            let mut n = 0;
            for _ in 0..iters {
                let mut g = slot.lock().expect("slot mutex is never poisoned");
                let v = loop {
                    match g.take() {
                        Some(v) => break v,
                        None => g = not_empty.wait(g).expect("slot mutex is never poisoned"),
                    }
                };
                drop(g);
                not_full.notify_one();
                std::hint::black_box(v);
                n += 1;
            }
            received.store(n, Ordering::Relaxed);
            gate.finished(1);
        });
        gate.open_when_ready(2)
    });
    let n = received.load(Ordering::Relaxed);
    if n != iters {
        bail!("condvar hand-off delivered {n} of {iters} values");
    }
    Ok(gate.elapsed_since(t0))
}

/// Runs `f` on a fresh thread pinned to `cpu`, so the caller's affinity is left alone.
fn on_pinned_thread<R: Send>(cpu: usize, f: impl FnOnce() -> R + Send) -> R {
    std::thread::scope(|s| {
        s.spawn(|| {
            pin_to_raw(cpu);
            f()
        })
        .join()
        .expect("measurement thread does not panic")
    })
}

fn time_loop(iters: u64, mut op: impl FnMut(u64)) -> (Duration, u64) {
    let t = Instant::now();
    for i in 0..iters {
        op(i);
    }
    (t.elapsed(), iters)
}

impl Experiment for SyncCost {
    fn knobs(&self) -> &'static [super::Knob] {
        use super::Knob;
        &[Knob::Iterations]
    }

    fn id(&self) -> &'static str {
        "sync"
    }

    fn title(&self) -> &'static str {
        "Synchronization cost"
    }

    fn run(&self, config: &LabConfig, progress: &mut dyn Progress) -> Result<Section> {
        let started = Instant::now();
        let plan = Plan::for_profile(config);
        // Placements from the topology: the uncontended ops on one CPU, the contended ones on
        // the nearest pair of two CPUs (SMT siblings where the machine has them, else two
        // cores sharing the last-level cache), the verdict's pair also on every other pair.
        let topology = Topology::detect();
        let first = topology.cpus.first().map_or(0, |c| c.id);
        let cross = topology.nearest_cross();
        let pair = cross.map(|p| (p.a, p.b));
        let pinned = format!("pinned to cpu {first}");
        let two = match cross {
            Some(p) => p.describe(),
            None => "unpinned (only one CPU allowed)".to_string(),
        };

        progress.begin("sync", 13);
        let mut scenarios = Vec::new();
        let mut push =
            |key: &str, label: &str, placement: &str, (iters, samples): (u64, Vec<f64>)| {
                let median_ns = median_and_spread(&samples).0;
                scenarios.push(ScenarioResult {
                    key: key.to_string(),
                    label: label.to_string(),
                    placement: placement.to_string(),
                    iterations_per_batch: iters,
                    samples_ns: samples,
                    median_ns,
                    round_medians_ns: Vec::new(),
                });
            };
        // The rounds of the scenarios measured in several, by key.
        let mut rounds_of: Vec<(&str, Vec<f64>)> = Vec::new();
        // A round's figure: the median of its batches.
        let round_median = |r: &(u64, Vec<f64>)| median_and_spread(&r.1).0;

        // Uncontended: one pinned thread, no other side.
        // The headline's figures (the uncontended mutexes) come from independent rounds, each
        // with a fresh lock.
        let (m, fm, at) = on_pinned_thread(first, || -> Result<_> {
            let m = median_round(
                ROUNDS,
                || {
                    let mutex = Mutex::new(0u64);
                    plan.run(|n| {
                        Ok(time_loop(n, |_| {
                            *mutex.lock().expect("never poisoned") += 1;
                        }))
                    })
                },
                round_median,
            )?;
            let fm = median_round(
                ROUNDS,
                || {
                    let shared =
                        SharedMem::new(FutexMutex::new(0u64)).context("map shared memory")?;
                    plan.run(|n| {
                        Ok(time_loop(n, |_| {
                            let mut g = shared.lock();
                            *g = std::hint::black_box(*g + 1);
                        }))
                    })
                },
                round_median,
            )?;
            let atomic = AtomicU64::new(0);
            let at = plan.run(|n| {
                Ok(time_loop(n, |_| {
                    std::hint::black_box(atomic.fetch_add(1, Ordering::Relaxed));
                }))
            })?;
            Ok((m, fm, at))
        })?;
        rounds_of.push((keys::SYNC_MUTEX_UNCONTENDED_THREAD, m.1));
        push(
            keys::SYNC_MUTEX_UNCONTENDED_THREAD,
            "Mutex lock+unlock, uncontended",
            &pinned,
            m.0,
        );
        progress.advance(1, "mutex, uncontended");
        rounds_of.push((keys::SYNC_MUTEX_UNCONTENDED_PROCESS, fm.1));
        push(
            keys::SYNC_MUTEX_UNCONTENDED_PROCESS,
            "futex mutex in shared memory, lock+unlock, uncontended",
            &pinned,
            fm.0,
        );
        progress.advance(1, "futex mutex, uncontended");
        push(
            "sync.atomic.uncontended",
            "fetch_add, uncontended",
            &pinned,
            at,
        );
        progress.advance(1, "atomic, uncontended");

        // Contended between two threads.
        let mutex = Mutex::new(0u64);
        let r = plan.run(|n| {
            let d = contended_threads(n, pair, &|_, _| {
                *mutex.lock().expect("never poisoned") += 1;
            });
            Ok((d, 2 * n))
        })?;
        push(
            "sync.mutex.contended.thread",
            "Mutex lock+unlock, 2 threads",
            &two,
            r,
        );
        progress.advance(1, "mutex, 2 threads");

        let rw = &RwLock::new(0u64);
        let rwop = |write_every: u64, writes_are_rare: bool| {
            move |_: usize, i: u64| {
                let write = if writes_are_rare {
                    i % write_every == 0
                } else {
                    i % write_every != 0
                };
                if write {
                    *rw.write().expect("never poisoned") += 1;
                } else {
                    std::hint::black_box(*rw.read().expect("never poisoned"));
                }
            }
        };
        let read_heavy = rwop(10, true);
        let r = plan.run(|n| Ok((contended_threads(n, pair, &read_heavy), 2 * n)))?;
        push(
            "sync.rwlock.read_heavy.thread",
            "RwLock, 9 reads : 1 write, 2 threads",
            &two,
            r,
        );
        progress.advance(1, "rwlock, read-heavy");
        let write_heavy = rwop(10, false);
        let r = plan.run(|n| Ok((contended_threads(n, pair, &write_heavy), 2 * n)))?;
        push(
            "sync.rwlock.write_heavy.thread",
            "RwLock, 1 read : 9 writes, 2 threads",
            &two,
            r,
        );
        progress.advance(1, "rwlock, write-heavy");

        let r = plan.run(|n| Ok((condvar_handoff(n, pair)?, n)))?;
        push(
            "sync.condvar.handoff.thread",
            "Condvar hand-off through a one-slot monitor, 1 producer + 1 consumer (per hand-off)",
            &two,
            r,
        );
        progress.advance(1, "condvar hand-off");

        let sem = Semaphore::new(1);
        let r = plan.run(|n| {
            let d = contended_threads(n, pair, &|_, _| {
                sem.acquire();
                sem.release();
            });
            Ok((d, 2 * n))
        })?;
        push(
            "sync.semaphore.thread",
            "counting semaphore (Mutex+Condvar, 1 permit) acquire+release, 2 threads",
            &two,
            r,
        );
        progress.advance(1, "semaphore");

        let atomic = AtomicU64::new(0);
        let r = plan.run(|n| {
            let d = contended_threads(n, pair, &|_, _| {
                std::hint::black_box(atomic.fetch_add(1, Ordering::Relaxed));
            });
            Ok((d, 2 * n))
        })?;
        push(
            "sync.atomic.contended.thread",
            "fetch_add, 2 threads",
            &two,
            r,
        );
        progress.advance(1, "atomic, 2 threads");

        // Contended between two processes, through a MAP_SHARED page.
        let shared = SharedMem::new(ProcShared::default()).context("map shared memory")?;
        // The verdict's pair: the processes' lock, the very same code, between two threads and
        // between two processes, only the boundary differs. Their rounds alternate, so both
        // see the same machine (a guest's vCPUs move between host cores over minutes).
        let mut mutex_ops = 0;
        let futex = FutexMutex::new(0u64);
        let (thread_pair, process_pair) = median_round_pair(
            ROUNDS,
            || {
                plan.run(|n| {
                    let before = *futex.lock();
                    let d = contended_threads(n, pair, &|_, _| {
                        let mut g = futex.lock();
                        *g = std::hint::black_box(*g + 1);
                    });
                    let after = *futex.lock();
                    if after - before != 2 * n {
                        bail!(
                            "futex mutex lost updates between threads: {} of {}",
                            after - before,
                            2 * n
                        );
                    }
                    Ok((d, 2 * n))
                })
            },
            || {
                plan.run(|n| {
                    let before = *shared.mutex.lock();
                    let d = contended_processes(&shared, n, pair, |s, _| {
                        let mut g = s.mutex.lock();
                        *g = std::hint::black_box(*g + 1);
                    })?;
                    // The mutex is only worth timing if it excluded: every increment must be
                    // there.
                    let after = *shared.mutex.lock();
                    if after - before != 2 * n {
                        bail!("futex mutex lost updates: {} of {}", after - before, 2 * n);
                    }
                    mutex_ops += 2 * n;
                    Ok((d, 2 * n))
                })
            },
            round_median,
            round_median,
        )?;
        let (waits, wakes) = shared.mutex.futex_calls();
        rounds_of.push((keys::SYNC_FUTEX_MUTEX_CONTENDED_THREAD, thread_pair.1));
        push(
            keys::SYNC_FUTEX_MUTEX_CONTENDED_THREAD,
            "futex mutex (the processes' lock), lock+unlock, 2 threads",
            &two,
            thread_pair.0,
        );
        rounds_of.push((keys::SYNC_MUTEX_CONTENDED_PROCESS, process_pair.1));
        push(
            keys::SYNC_MUTEX_CONTENDED_PROCESS,
            "futex mutex in shared memory, lock+unlock, 2 processes",
            &two,
            process_pair.0,
        );
        progress.advance(2, "futex mutex, 2 threads and 2 processes");
        let r = plan.run(|n| {
            let d = contended_processes(&shared, n, pair, |s, _| {
                std::hint::black_box(s.counter.fetch_add(1, Ordering::Relaxed));
            })?;
            Ok((d, 2 * n))
        })?;
        push(
            "sync.atomic.contended.process",
            "fetch_add in shared memory, 2 processes",
            &two,
            r,
        );
        progress.advance(1, "atomic, 2 processes");

        // The verdict's pair on every farther placement, one round each.
        let mut placements = Vec::new();
        for far in topology
            .pairs()
            .into_iter()
            .filter(|p| p.a != p.b && Some(*p) != cross)
        {
            let cpus = Some((far.a, far.b));
            let futex = FutexMutex::new(0u64);
            let thread = plan.run(|n| {
                let d = contended_threads(n, cpus, &|_, _| {
                    let mut g = futex.lock();
                    *g = std::hint::black_box(*g + 1);
                });
                Ok((d, 2 * n))
            })?;
            let process = plan.run(|n| {
                let d = contended_processes(&shared, n, cpus, |s, _| {
                    let mut g = s.mutex.lock();
                    *g = std::hint::black_box(*g + 1);
                })?;
                Ok((d, 2 * n))
            })?;
            placements.push(PlacementRow {
                placement: far.describe(),
                thread_ns: median_and_spread(&thread.1).0,
                process_ns: median_and_spread(&process.1).0,
            });
            progress.advance(0, "futex mutex, farther placements");
        }

        // The futex key lookup itself: a FUTEX_WAIT that returns at once, private (keyed by
        // address, threads only) against shared (keyed by the backing page, what processes
        // must use), on one CPU.
        let (private, shared_wait) = on_pinned_thread(first, || -> Result<_> {
            let word = AtomicU32::new(0);
            let private = plan.run(|n| {
                Ok(time_loop(n, |_| {
                    crate::shared_mem::futex_wait_mismatch(&word, true)
                }))
            })?;
            let page = SharedMem::new(AtomicU32::new(0)).context("map shared memory")?;
            let shared_wait = plan.run(|n| {
                Ok(time_loop(n, |_| {
                    crate::shared_mem::futex_wait_mismatch(&page, false)
                }))
            })?;
            Ok((private, shared_wait))
        })?;
        push(
            FUTEX_WAIT_PRIVATE,
            "FUTEX_WAIT returning at once, private futex (threads)",
            &pinned,
            private,
        );
        push(
            FUTEX_WAIT_SHARED,
            "FUTEX_WAIT returning at once, shared futex in a MAP_SHARED page (processes)",
            &pinned,
            shared_wait,
        );
        progress.advance(1, "futex key lookup");
        progress.end();
        for (key, rounds) in rounds_of {
            if let Some(s) = scenarios.iter_mut().find(|s| s.key == key) {
                s.round_medians_ns = rounds;
            }
        }

        let result = SyncResult {
            scenarios,
            process_mutex_futex_waits: waits,
            process_mutex_futex_wakes: wakes,
            process_mutex_ops: mutex_ops,
            placements,
        };
        let mut section = section_from(&result, pair.is_some());
        if config.profile != Profile::Tiny {
            section.cross_checks = futex_cross_checks(&section, first);
        }
        section.elapsed_ms = started.elapsed().as_secs_f64() * 1e3;
        Ok(section)
    }
}

/// How the section measured, in a few sentences.
const METHOD: &str = "Uncontended: one thread pinned to one CPU runs lock+unlock (or fetch_add) in a loop. \
         Contended: two threads, or two forked processes, each pinned to its own CPU, run the \
         same op on one shared lock or atomic; one op is one lock+unlock pair (one fetch_add, \
         one acquire+release, one read or write lock+unlock), and the figure is wall time from \
         the common start to the last finish divided by the ops of both sides. The Condvar \
         figure is per hand-off from a producer to a consumer through a one-slot monitor. \
         Between processes the lock is Drepper's three-state futex mutex in a MAP_SHARED page \
         (shared, not private, futex operations); std's Mutex is the same design between \
         threads, and the very same futex mutex also runs between two threads: the claim is \
         judged on that pair, contended on the nearest pair of two CPUs the topology offers (SMT \
         siblings, else two cores sharing the last-level cache), where only the process boundary \
         differs; every farther pair (another cache, another NUMA node) gets one round of the \
         same pair in its own table. The futex key lookup is timed on its own: a FUTEX_WAIT \
         whose value does not match returns at once, private (keyed by address, what threads \
         can use) against shared in a MAP_SHARED page (keyed by the page, what processes must \
         use), beside `perf bench futex hash`. Batches are calibrated to at least 10 ms (the \
         calibration runs are the warm-up); figures are medians of the batch means with min/p1/p99/max over the batches. \
         The uncontended mutexes and the contended futex mutex between two threads and between \
         two processes: the median of 3 independent rounds, with the rounds' run-to-run spread; the threads' and the processes' rounds of that pair alternate, so both see the same machine.";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn section_from_hand_made_scenarios() {
        let scenario = |key: &str, ns: f64| ScenarioResult {
            key: key.to_string(),
            label: key.to_string(),
            placement: "pinned to cpu 0".to_string(),
            iterations_per_batch: 1_000,
            samples_ns: (0..11).map(|i| ns * (0.95 + 0.01 * i as f64)).collect(),
            median_ns: ns,
            round_medians_ns: vec![ns, 0.5 * ns, 2.0 * ns],
        };
        let result = SyncResult {
            scenarios: vec![
                scenario("sync.mutex.uncontended.thread", 15.0),
                scenario("sync.mutex.uncontended.process", 16.0),
            ],
            process_mutex_futex_waits: 10,
            process_mutex_futex_wakes: 10,
            process_mutex_ops: 1_000,
            placements: vec![PlacementRow {
                placement: "other LLC (cpu 0 → cpu 8)".to_string(),
                thread_ns: 40.0,
                process_ns: 60.0,
            }],
        };
        let s = section_from(&result, true);
        let f = s
            .figure("sync.mutex.uncontended.process")
            .expect("the figure");
        assert_eq!(f.value, 16.0);
        assert_eq!(f.spread.as_ref().map(|s| s.samples), Some(11));
        assert_eq!(f.placement.as_deref(), Some("pinned to cpu 0"));
        assert_eq!(f.rounds.as_ref().map(|r| r.spread_pct), Some(100.0));
        assert!(s.figure("sync.mutex.uncontended.thread").is_some());
        let far = s
            .tables
            .iter()
            .find(|t| t.title.contains("every placement"))
            .expect("a table of the farther placements");
        assert_eq!(
            far.rows[0],
            ["other LLC (cpu 0 → cpu 8)", "40.0", "60.0", "1.50×"]
        );
    }
}

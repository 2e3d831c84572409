//! The measurement loop every experiment uses: warm-up, calibration, repeated batches.
//!
//! A measurement follows LAB-METHODS rule 13:
//!
//! 1. **Cold start**: the very first op runs alone and is kept apart (rule 7).
//! 2. **Calibration**: a batch of `n` ops grows (doubling, or jumping towards the target) until
//!    one batch lasts at least [`Plan::min_batch`] (10 ms in `quick`/`full`).
//! 3. **Warm-up**: [`Plan::warmup_batches`] batches are run and discarded.
//! 4. **Batches**: [`Plan::batches`] independent batches of `n` ops (at least 10 outside `tiny`).
//!    The figure is the median over batches of each batch's mean time per op.
//!    These batches are timed as a whole: no per-op timestamp is in the figure.
//! 5. **Per-op spread**: where the timer costs less than 5% of one op, a third as many batches
//!    again (at least 2), each after a measured one, timestamp every op (`Instant`,
//!    `CLOCK_MONOTONIC` through the vDSO) into an HDR histogram, which gives the min, p1, p99
//!    and max per op. Otherwise the spread is over batch means. (A timestamp per op costs a
//!    clock read each: on this project's KVM guests about 4 % of a 4.7 µs pipe round trip,
//!    which the figure once included.)
//!
//! Outliers are flagged by the modified Z-score rule of [`crate::stats`] and kept.
//!
//! Also here: the timer's own cost, CPU pinning and `getrusage` switch counters, which
//! several experiments need.

use std::hint::black_box;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use hdrhistogram::Histogram;
use nix::sched::{CpuSet, sched_getaffinity, sched_setaffinity};
use nix::sys::resource::{UsageWho, getrusage};
use nix::unistd::Pid;
use serde::Serialize;

use crate::report::{Figure, Profile, Unit};
use crate::stats::{self, Summary};

/// How much to measure.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Plan {
    /// Discarded batches after calibration.
    pub warmup_batches: u32,
    /// Measured batches.
    pub batches: u32,
    /// Calibration grows a batch until it lasts at least this long.
    #[serde(serialize_with = "serialize_duration_ns")]
    pub min_batch: Duration,
    /// Calibration never grows a batch beyond this many ops.
    pub max_ops: u64,
    /// A fixed batch size (`--iterations`), skipping calibration.
    pub fixed_ops: Option<u64>,
}

fn serialize_duration_ns<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u128(d.as_nanos())
}

impl Plan {
    /// The plan for a profile: `tiny` checks shapes in milliseconds, `quick` follows rule 13
    /// at its minimum (10 batches of ≥10 ms), `full` takes 30 batches of ≥20 ms.
    pub fn for_profile(profile: Profile) -> Plan {
        match profile {
            Profile::Tiny => Plan {
                warmup_batches: 1,
                batches: 3,
                min_batch: Duration::from_micros(300),
                max_ops: 200,
                fixed_ops: None,
            },
            Profile::Quick => Plan {
                warmup_batches: 2,
                batches: 10,
                min_batch: Duration::from_millis(10),
                max_ops: 1 << 22,
                fixed_ops: None,
            },
            Profile::Full => Plan {
                warmup_batches: 3,
                batches: 30,
                min_batch: Duration::from_millis(20),
                max_ops: 1 << 24,
                fixed_ops: None,
            },
        }
    }

    /// The same plan with a fixed number of ops per batch, when one is given.
    pub fn with_iterations(mut self, iterations: Option<u64>) -> Plan {
        self.fixed_ops = iterations.map(|n| n.max(1));
        self
    }
}

/// Collects per-op times during a measured batch; inactive during calibration and warm-up,
/// or when the timer is too slow for the op.
#[derive(Debug)]
pub struct Sampler {
    active: bool,
    histogram: Histogram<u64>,
}

impl Sampler {
    fn new(active: bool) -> Sampler {
        Sampler {
            active,
            // Fixed bounds (1 ns to 1 h): `saturating_record` clamps to the upper bound rather
            // than growing an auto-resizing histogram.
            histogram: Histogram::new_with_bounds(1, 3_600_000_000_000, 3)
                .expect("bounds 1 ns..=1 h with 3 significant digits are valid"),
        }
    }

    /// Whether ops should be timestamped one by one.
    pub fn is_active(&self) -> bool {
        self.active
    }

    /// Records one op's duration (ignored when inactive).
    pub fn record(&mut self, d: Duration) {
        if self.active {
            self.histogram
                .saturating_record(d.as_nanos().min(u64::MAX as u128) as u64);
        }
    }
}

/// Runs `op` `ops` times, timestamping each op into `sampler` when it is active, and
/// returns the wall time of the whole batch. Use it inside a batch closure when nothing
/// needs to happen between ops.
pub fn time_ops(
    ops: u64,
    sampler: &mut Sampler,
    mut op: impl FnMut() -> Result<()>,
) -> Result<Duration> {
    let start = Instant::now();
    if sampler.is_active() {
        let mut last = start;
        for _ in 0..ops {
            op()?;
            let now = Instant::now();
            sampler.record(now - last);
            last = now;
        }
    } else {
        for _ in 0..ops {
            op()?;
        }
    }
    Ok(start.elapsed())
}

/// The result of [`measure`]: times per op, in nanoseconds.
#[derive(Debug, Clone, Serialize)]
pub struct Measurement {
    /// Ops per measured batch.
    pub ops_per_batch: u64,
    /// The first op, alone, before calibration (cold start).
    pub cold_ns: f64,
    /// Mean time per op of each measured batch.
    pub batch_ns: Vec<f64>,
    /// Summary over `batch_ns`.
    pub batches: Summary,
    /// Summary over per-op timestamps, when they were taken.
    pub per_op: Option<Summary>,
    /// The timer's cost when this was measured.
    pub timer_ns: f64,
}

impl Measurement {
    /// The central value: median over batches of the batch mean per op.
    pub fn value(&self) -> f64 {
        self.batches.median
    }

    /// The spread to report: per op where timestamps were taken, else over batches.
    pub fn summary(&self) -> Summary {
        self.per_op.unwrap_or(self.batches)
    }

    /// The same measurement scaled (a round trip halved into one switch, say).
    pub fn scaled(&self, factor: f64) -> Measurement {
        Measurement {
            ops_per_batch: self.ops_per_batch,
            cold_ns: self.cold_ns * factor,
            batch_ns: self.batch_ns.iter().map(|x| x * factor).collect(),
            batches: self.batches.scaled(factor),
            per_op: self.per_op.map(|s| s.scaled(factor)),
            timer_ns: self.timer_ns,
        }
    }

    /// A figure in nanoseconds with this measurement's value and spread.
    pub fn figure(&self, key: &str, label: &str) -> Figure {
        Figure::new(key, label, self.value(), Unit::Ns)
            .with_spread(self.summary().spread())
            .with_batches(&self.batch_ns)
    }
}

/// Measures `batch`, a closure that runs `n` ops and returns their wall time, following the
/// [`Plan`] (see the module docs for the steps).
///
/// # Errors
/// Whatever `batch` returns, with the batch size as context.
pub fn measure(
    plan: &Plan,
    mut batch: impl FnMut(u64, &mut Sampler) -> Result<Duration>,
) -> Result<Measurement> {
    let timer = timer_cost();
    let mut idle = Sampler::new(false);
    let cold = batch(1, &mut idle).context("cold-start op")?;

    let mut n = 1u64;
    let mut last = cold;
    if let Some(fixed) = plan.fixed_ops {
        n = fixed;
    } else {
        // Grow until one batch lasts min_batch. Jump by the ratio still missing (at most ×10)
        // so that slow ops calibrate in few steps, and double at least.
        loop {
            last = batch(n, &mut idle).with_context(|| format!("calibration batch of {n} ops"))?;
            if last >= plan.min_batch || n >= plan.max_ops {
                break;
            }
            let ratio = plan.min_batch.as_secs_f64() / last.as_secs_f64().max(1e-9);
            let factor = (ratio * 1.2).clamp(2.0, 10.0);
            n = ((n as f64 * factor).ceil() as u64).min(plan.max_ops);
        }
    }
    for _ in 0..plan.warmup_batches {
        last = batch(n, &mut idle).with_context(|| format!("warm-up batch of {n} ops"))?;
    }
    // Timestamp each op only when the timer is cheap next to the op (under 5%), and then in
    // batches of their own: the figure's batches are timed whole.
    let per_op_estimate = last.as_nanos() as f64 / n as f64;
    let mut sampler = Sampler::new(timer.as_nanos() as f64 * 20.0 <= per_op_estimate);
    let batches = plan.batches.max(1);
    let sampled = if sampler.is_active() {
        batches.div_ceil(3).max(2)
    } else {
        0
    };
    let mut batch_ns = Vec::with_capacity(batches as usize);
    for k in 0..batches.max(sampled) {
        if k < batches {
            let d = batch(n, &mut idle).with_context(|| format!("measured batch of {n} ops"))?;
            batch_ns.push(d.as_nanos() as f64 / n as f64);
        }
        if k < sampled {
            batch(n, &mut sampler).with_context(|| format!("timestamped batch of {n} ops"))?;
        }
    }
    Ok(Measurement {
        ops_per_batch: n,
        cold_ns: cold.as_nanos() as f64,
        batches: stats::summarize(&batch_ns).expect("at least one batch was measured"),
        batch_ns,
        per_op: if sampler.is_active() {
            stats::summarize_histogram(&sampler.histogram)
        } else {
            None
        },
        timer_ns: timer.as_nanos() as f64,
    })
}

/// The cost of one `Instant::now()`, the median over 21 runs of 2 000 calls each.
pub fn timer_cost() -> Duration {
    const CALLS: u32 = 2_000;
    let mut runs: Vec<f64> = (0..21)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..CALLS {
                black_box(Instant::now());
            }
            start.elapsed().as_nanos() as f64 / f64::from(CALLS)
        })
        .collect();
    runs.sort_by(|a, b| a.total_cmp(b));
    Duration::from_nanos(runs[runs.len() / 2].round() as u64)
}

/// The CPUs this thread may run on, in order; every CPU std reports when the affinity mask
/// cannot be read.
pub fn allowed_cpus() -> Vec<usize> {
    match sched_getaffinity(Pid::from_raw(0)) {
        Ok(set) => (0..CpuSet::count())
            .filter(|&c| set.is_set(c).unwrap_or(false))
            .collect(),
        Err(_) => (0..std::thread::available_parallelism().map_or(1, |n| n.get())).collect(),
    }
}

/// Restores the thread's previous CPU affinity when dropped.
#[derive(Debug)]
pub struct PinGuard {
    previous: Option<CpuSet>,
}

impl Drop for PinGuard {
    fn drop(&mut self) {
        if let Some(set) = self.previous.take() {
            // Best effort: failing to widen the mask again only narrows later placement.
            let _ = sched_setaffinity(Pid::from_raw(0), &set);
        }
    }
}

/// Pins the calling thread to `cpu` (threads it creates and processes it forks inherit the
/// pin) until the guard drops.
///
/// # Errors
/// When the CPU does not exist or is not allowed (`sched_setaffinity` fails).
pub fn pin_current_thread(cpu: usize) -> Result<PinGuard> {
    let previous = sched_getaffinity(Pid::from_raw(0)).ok();
    pin_to(cpu)?;
    Ok(PinGuard { previous })
}

/// Pins the calling thread to `cpu` for good (e.g. in a partner thread that ends anyway).
///
/// # Errors
/// When `sched_setaffinity` fails.
pub fn pin_to(cpu: usize) -> Result<()> {
    let mut set = CpuSet::new();
    set.set(cpu)
        .with_context(|| format!("cpu {cpu} is out of range"))?;
    sched_setaffinity(Pid::from_raw(0), &set).with_context(|| format!("pinning to cpu {cpu}"))
}

/// Pins the calling thread to `cpu` for good; whether that worked. Only `sched_setaffinity` on
/// a stack value, with no error to build, so it is safe in a forked child of a multi-threaded
/// process, where [`pin_to`]'s error path would allocate.
pub fn pin_to_raw(cpu: usize) -> bool {
    let mut set = CpuSet::new();
    set.set(cpu).is_ok() && sched_setaffinity(Pid::from_raw(0), &set).is_ok()
}

/// Context switches (voluntary + involuntary) so far, of the calling thread or the whole
/// process (`ru_nvcsw + ru_nivcsw`).
pub fn context_switches(whole_process: bool) -> u64 {
    let who = if whole_process {
        UsageWho::RUSAGE_SELF
    } else {
        UsageWho::RUSAGE_THREAD
    };
    getrusage(who)
        .map(|u| (u.voluntary_context_switches() + u.involuntary_context_switches()) as u64)
        .unwrap_or(0)
}

/// [`context_switches`] of the calling thread through the raw system call, for a forked
/// child of a multi-threaded process: `getrusage` takes no lock and allocates nothing.
pub fn thread_context_switches_raw() -> u64 {
    // SAFETY: an all-zero `rusage` is a valid value, and getrusage only writes into it.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `ru` is a valid, writable rusage for the duration of the call.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut ru) };
    if rc == 0 {
        (ru.ru_nvcsw + ru.ru_nivcsw) as u64
    } else {
        0
    }
}

/// The resident set size of this process (`VmRSS` in /proc/self/status).
pub fn process_rss_bytes() -> Option<u64> {
    crate::procfs::read_kib_field("/proc/self/status", "VmRSS")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measure_calibrates_and_takes_the_planned_batches() {
        let plan = Plan::for_profile(Profile::Tiny);
        let m = measure(&plan, |n, s| {
            time_ops(n, s, || {
                black_box((0..100u64).map(black_box).sum::<u64>());
                Ok(())
            })
        })
        .expect("a pure computation cannot fail");
        assert_eq!(m.batch_ns.len(), plan.batches as usize);
        assert!(m.value() > 0.0 && m.value().is_finite());
        assert!(m.ops_per_batch >= 1 && m.ops_per_batch <= plan.max_ops);
    }

    #[test]
    fn the_figures_batches_carry_no_per_op_timestamps() {
        let plan = Plan::for_profile(Profile::Quick);
        let (mut whole, mut stamped) = (0u32, 0u32);
        let m = measure(&plan, |n, s| {
            // After calibration: count which batches are timestamped op by op.
            if n > 1 {
                if s.is_active() {
                    stamped += 1;
                } else {
                    whole += 1;
                }
            }
            time_ops(n, s, || {
                std::thread::sleep(Duration::from_micros(200));
                Ok(())
            })
        })
        .expect("sleeping cannot fail");
        assert_eq!(m.batch_ns.len(), plan.batches as usize);
        assert!(
            m.per_op.is_some(),
            "a 200 µs op is long enough to timestamp"
        );
        // The calibration and warm-up batches are whole too.
        assert!(whole >= plan.batches, "{whole} whole batches");
        assert_eq!(stamped, plan.batches.div_ceil(3).max(2));
    }

    #[test]
    fn per_op_percentiles_bracket_the_batch_median() {
        let plan = Plan::for_profile(Profile::Tiny);
        let m = measure(&plan, |n, s| {
            time_ops(n, s, || {
                std::thread::sleep(Duration::from_micros(50));
                Ok(())
            })
        })
        .expect("sleeping cannot fail");
        let per_op = m.per_op.expect("a 50 µs op is long enough to timestamp");
        assert!(per_op.min >= 50_000.0, "{per_op:?}");
        assert!(
            per_op.p1 <= per_op.median && per_op.median <= per_op.p99 && per_op.p99 <= per_op.max
        );
        assert!(
            per_op.median > 0.5 * m.value() && per_op.median < 2.0 * m.value(),
            "{per_op:?} vs {}",
            m.value()
        );
        // Timestamped in batches of their own, a third as many as the figure's (at least 2).
        let sampled = plan.batches.div_ceil(3).max(2);
        assert_eq!(per_op.samples, m.ops_per_batch * u64::from(sampled));
    }

    #[test]
    fn fixed_iterations_skip_calibration() {
        let plan = Plan::for_profile(Profile::Tiny).with_iterations(Some(7));
        let mut sizes = Vec::new();
        measure(&plan, |n, _| {
            sizes.push(n);
            Ok(Duration::from_micros(n))
        })
        .expect("the closure cannot fail");
        assert_eq!(sizes[0], 1, "cold start is one op");
        assert!(sizes[1..].iter().all(|&n| n == 7));
    }

    #[test]
    fn timer_cost_is_small_and_positive() {
        let t = timer_cost();
        assert!(t < Duration::from_micros(10), "{t:?}");
    }

    #[test]
    fn pinning_is_undone_by_the_guard() {
        let before = allowed_cpus();
        let first = *before.first().expect("some CPU is allowed");
        {
            let _g = pin_current_thread(first).expect("an allowed CPU can be pinned");
            assert_eq!(allowed_cpus(), vec![first]);
        }
        assert_eq!(allowed_cpus(), before);
    }

    #[test]
    fn switch_counters_increase_when_sleeping() {
        let before = context_switches(false);
        std::thread::sleep(Duration::from_millis(1));
        assert!(context_switches(false) > before);
        assert!(thread_context_switches_raw() > 0);
    }
}

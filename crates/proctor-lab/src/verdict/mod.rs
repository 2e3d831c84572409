//! Verdicts: the classic claims about processes and threads, judged against the figures.
//!
//! [`judge`] is a pure function of the sections: it looks figures up by key, applies one declared
//! rule per claim and returns the headline table and the claims. It never measures and never
//! prints, so a test can perturb the figures and watch each verdict flip or hold.
//!
//! Here live the judging (`claims.rs`, one rule per claim), the headline table (`headline.rs`)
//! and [`keys`], the one place each figure key is spelled. Others import [`judge`], [`KEYS`]
//! and [`keys`]; the verdicts import only the report model, [`crate::units`] and
//! [`crate::stats`], never an experiment or a renderer.
//!
//! # Figure keys
//!
//! The experiments produce exactly these keys ([`KEYS`] holds the same list, with units, for
//! tests and tools). Only figures of sections whose status is `Ok` count; a key that is missing,
//! not finite, or in a failed or skipped section makes its claims [`Verdict::NotMeasured`].
//!
//! | key | unit | meaning |
//! |---|---|---|
//! | `spawn.thread` | ns | create a thread, run its first instruction, exit and join, parent and child pinned to one CPU (median of 3 rounds' per-op medians) |
//! | `spawn.fork` | ns | fork, the child's first instruction, `_exit`, `waitpid`, pinned to one CPU as `spawn.thread` |
//! | `spawn.pool_worker` | ns | a proctor process worker forked from the fork server, ready for work |
//! | `spawn.async` | ns | spawn an empty async task and await its completion |
//! | `switch.futex.thread.pinned` | ns | one switch between two threads ping-ponging on a futex, same CPU: half a round trip, its syscalls included (`….net` is the figure with them subtracted) |
//! | `switch.futex.process.pinned` | ns | the same between two processes (futex in shared memory) |
//! | `ipc.handoff.thread.box.4194304.cross_cpu` | ns | one hand-off of 4 MiB between two threads on the nearest pair of two CPUs: a `Box<[u8]>` through a channel, the consumer reading every cache line and answering |
//! | `ipc.handoff.process.shm.4194304.cross_cpu` | ns | the same between two processes: the producer copies the bytes into shared memory made beforehand, the consumer reads them there |
//! | `ipc.handoff.thread.box.4194304.pinned` | ns | the threads' 4 MiB hand-off with both on one CPU (read where the machine has a single CPU) |
//! | `ipc.handoff.process.shm.4194304.pinned` | ns | the processes' 4 MiB hand-off with both on one CPU |
//! | `ipc.rtt.shm.process.64` | ns | p50 round trip of 64 B between two processes over the shared-memory ring (futex wait) |
//! | `memory.overhead_per_worker.thread.100` | bytes | what one idle thread adds beyond the 64 KiB working set it wrote: this process's USS growth per thread − the working set + its page-table growth (`VmPTE`) + its kernel stack (`KernelStack` growth, or 16 KiB where unreadable); 100 threads, fresh stacks (median of 3 rounds) |
//! | `memory.overhead_per_worker.process.100` | bytes | the same for a forked idle worker process: its own USS − the working set + its page tables + its kernel stack; 100 children (median of 3 rounds) |
//! | `memory.per_task.async.10000` | bytes | memory growth per pending async task, 10 000 tasks |
//! | `isolation.faults` | count | fault kinds tried (panic, abort, segfault, stack overflow, ...) |
//! | `isolation.survived.process` | count | fault kinds after which every other task completed, process mode |
//! | `isolation.survived.thread` | count | the same in thread mode |
//! | `isolation.whole_program_died.thread` | count | fault kinds that killed the whole program in thread mode |
//! | `race.expected` | count | increments attempted in total (2 threads × 100 000) |
//! | `race.final.unsync` | count | final counter with unsynchronized read-modify-write |
//! | `race.final.mutex` | count | final counter with a `Mutex` |
//! | `race.final.atomic` | count | final counter with `fetch_add` |
//! | `race.ns_per_inc.unsync` | ns | time per increment, unsynchronized |
//! | `race.ns_per_inc.mutex` | ns | time per increment under the `Mutex`, 2 threads |
//! | `race.ns_per_inc.atomic` | ns | time per `fetch_add`, 2 threads |
//! | `race.parent_after.process_copy` | count | the parent's counter (started at 0) after a forked child incremented its copy |
//! | `scaling.cores` | count | logical CPUs, the worker count of the `.cores` speed-ups |
//! | `scaling.speedup.thread.cores` | ratio | CPU-bound speed-up over one worker, threads, workers = cores |
//! | `scaling.speedup.process.cores` | ratio | the same with processes |
//! | `scaling.oversubscription.thread` | ratio | throughput with 2 × cores threads / throughput with one thread per CPU |
//! | `scaling.io.completion.thread.1000` | ns | 1 000 concurrent waits (3 × 10 ms sleeps each), one thread per wait, all created and blocked at a gate first: from the gate's opening to the last wait's end |
//! | `scaling.io.completion.process.1000` | ns | the same, one process per wait |
//! | `scaling.io.completion.async.1000` | ns | the same, one async task per wait |
//! | `scaling.io.create.thread.1000` | ns | creating those 1 000 threads, from the first create until all are alive at the gate |
//! | `scaling.io.create.process.1000` | ns | the same for 1 000 processes |
//! | `scaling.io.create.async.1000` | ns | the same for 1 000 async tasks |
//! | `sync.mutex.uncontended.thread` | ns | lock + unlock of an uncontended thread-local `Mutex` |
//! | `sync.mutex.uncontended.process` | ns | lock + unlock of an uncontended process-shared futex mutex |
//! | `sync.futex_mutex.contended.thread` | ns | one lock + unlock of the processes' futex mutex, two threads on two CPUs hammering it (median of 3 rounds) |
//! | `sync.mutex.contended.process` | ns | the same futex mutex in shared memory, two processes on the same two CPUs (median of 3 rounds) |
//! | `ui.period` | ns | the UI loop's frame period (60 Hz) |
//! | `ui.job.ui_thread` | ns | the CPU-heavy job's own time when it runs on the UI thread |
//! | `ui.missed.ui_thread` | count | missed frames per run, the job on the UI thread (a frame time F above 1.5 periods misses round(F / period) − 1) |
//! | `ui.missed.worker_thread` | count | the same, the job on one worker thread |
//! | `ui.missed.worker_process` | count | the same, the job in one worker process |
//! | `leaks.ballast` | bytes | memory the hanging task touches before it hangs |
//! | `leaks.timeout.process.held` | bytes | the worker process's USS growth while the task hung |
//! | `leaks.timeout.process.after` | bytes | the replacement worker's USS against the hung one's before the hang |
//! | `leaks.timeout.thread.after` | bytes | this process's RSS growth once the thread pool served again after the timeout |
//! | `sandbox.tried.thread` | count | attacks of the matrix (files, network, processes, the parent, signals, the terminal, stdio, descriptors, initializer threads, timeouts, limits, a later task, shared memory, capabilities, oracles, the filter) tried on a worker thread, n/a cells left out |
//! | `sandbox.tried.process` | count | the same in a plain worker process |
//! | `sandbox.tried.sandboxed` | count | the same in a `Sandbox::compute()` worker process |
//! | `sandbox.worked.thread` | count | of those tried on a thread, the ones that worked (an effect the lab saw, or the pool's next map broken) |
//! | `sandbox.worked.process` | count | the ones that worked in a plain worker process |
//! | `sandbox.stopped.sandboxed` | count | the ones tried in a sandboxed worker that did not work there |
//! | `sandbox.pool_broken` | count | attacks after which the pool's next map was not all right within a second (each counts as worked where it ran) |
//! | `servers.rps.prefork.cpu.16` | per s | requests/s of the prefork server, /cpu handler (~50 µs of hashing), 16 keep-alive connections |
//! | `servers.rps.threaded.cpu.16` | per s | the same, threaded server |
//! | `servers.rps.async.cpu.16` | per s | the same, async server |
//! | `servers.crash.kept_serving.prefork` | count | 1 when the prefork server served a new connection after a handler segfaulted, else 0 |
//! | `servers.crash.kept_serving.threaded` | count | the same, threaded server |
//! | `servers.crash.kept_serving.async` | count | the same, async server |
//! | `servers.crash.lost.prefork` | count | requests the other 16 clients lost to the crash, prefork |
//! | `servers.crash.lost.threaded` | count | the same, threaded |
//! | `servers.crash.lost.async` | count | the same, async |
//! | `servers.leak.leaked` | bytes | memory the `/leak` requests leaked in all |
//! | `servers.leak.held.prefork` | bytes | growth of the prefork server's summed USS over the leak (workers recycled) |
//! | `servers.leak.held.threaded` | bytes | the same, threaded server |
//! | `servers.leak.held.async` | bytes | the same, async server |
//! | `containers.start.thread` | ns | start to first result: a thread spawned, its result received (median of rounds), pinned with its worker to one CPU |
//! | `containers.start.fork` | ns | the same for a forked process |
//! | `containers.start.namespaces` | ns | the same for a process that unshares every permitted namespace and forks the worker |
//! | `containers.control.fork_exit` | ns | fork + `_exit` + `waitpid` (the op of `spawn.fork`) in the ladder's parent, interleaved with the rungs, same CPU |
//! | `race.cpus` | count | CPUs the race's threads were allowed (pinned thread i to CPU i mod this) |
//! | `race.dist.runs` | count | runs per setting of the lost-update distribution (200 in the quick profile) |
//! | `race.dist.threads_2.lossy_runs` | count | runs of 2 unsynchronized threads that lost at least one update |
//! | `race.dist.threads_2.lost_min` | count | the fewest updates one of those runs lost |
//! | `race.dist.threads_2.lost_max` | count | the most updates one of those runs lost |
//! | `race.dist.one_cpu.lossy_runs` | count | the same as `threads_2.lossy_runs`, both threads pinned to one CPU |
//! | `race.runs_exact.mutex` | count | runs (of `race.dist.runs`) whose `Mutex` count was exact |
//! | `race.runs_exact.atomic` | count | runs whose `fetch_add` count was exact |
//! | `spawn.pool_remote` | ns | a one-worker remote pool (an agent on this host, loopback TCP) built, one task run, dropped |
//! | `ipc.pool_rtt.remote` | ns | median `submit().join()` round trip of a trivial task to a remote worker, unpinned |
//! | `ipc.pool_rtt.remote.pinned` | ns | the same, pinned to one CPU |
//! | `ipc.pool_rtt.remote_over_tcp` | ratio | `ipc.pool_rtt.remote` / a raw TCP 64 B round trip between two processes, unpinned |
//! | `ipc.pool_rtt.remote_over_tcp.pinned` | ratio | the same, pinned |
//! | `ipc.pool_rtt.remote_over_process` | ratio | the remote worker's pool round trip / a local worker process's, unpinned |
//! | `ipc.pool_rtt.remote_over_process.pinned` | ratio | the same, pinned |
//! | `ipc.pool_rtt.remote_over_thread` | ratio | the remote worker's pool round trip / a thread-pool worker's, unpinned |
//! | `ipc.pool_rtt.remote_over_thread.pinned` | ratio | the same, pinned |
//!
//! The creation claim also shows, without deciding on them, `spawn.thread.cross_cpu` and
//! `spawn.fork.cross_cpu` (the same ops with the child on the nearest other CPU), which a
//! machine with one CPU does not have. A claim's `figure_keys` are the keys that decide it;
//! figures its evidence shows for scale are not among them.
//!
//! # Rules
//!
//! Cost comparisons use one declared tolerance, [`TOLERANCE`]: with `ratio = costly / cheap`,
//! a ratio above `1 + TOLERANCE` confirms "costly costs more", a ratio below `1 / (1 + TOLERANCE)`
//! refutes it, and anything in between is [`Verdict::NoClearDifference`]. A median ratio is
//! not enough on a noisy machine: when both figures carry a spread and their p1–p99 ranges
//! overlap, the verdict is [`Verdict::NoClearDifference`] too, whatever the medians say. A
//! figure measured in independent rounds (each set up afresh) carries their min–max, and that
//! is its range instead: rounds whose medians overlap make no clear difference either.
//! [`Verdict::Depends`] is kept for a claim that holds in one placement or size and not in
//! another. Each claim's evidence names the figures and the ratio that decided it.

use std::collections::HashMap;

use crate::report::{Claim, Figure, HeadlineRow, Section, Status, Unit, Verdict};
use crate::units::format_value;

/// Relative difference below which two costs count as the same (10 %).
pub const TOLERANCE: f64 = 0.10;

/// A single round slower than its figure's median by more than this factor, while the other
/// rounds agree, is set aside as a stall (see `kept_rounds`).
pub const STALL: f64 = 1.5;

/// Parallel efficiency (speed-up / cores) at or above which a mode "uses many cores".
pub const GOOD_EFFICIENCY: f64 = 0.75;

/// Parallel efficiency below which a mode does not use many cores.
pub const POOR_EFFICIENCY: f64 = 0.5;

/// Share of the deadlines a job lasts that the UI thread must miss to "drop frames" (50 %).
pub const UI_DROPS: f64 = 0.5;

/// Share of those deadlines a worker may miss and still "keep the frames" (5 %).
pub const UI_KEEPS: f64 = 0.05;

/// How far apart two server models' requests/s may lie and still count as the same rate (20 %).
pub const SERVER_PARITY: f64 = 0.20;

/// The most a remote worker's pool round trip may cost, as a multiple of a raw TCP round trip
/// between two processes, for the pool to add "little" to the network (1.5 ×).
pub const REMOTE_OVER_NETWORK: f64 = 1.5;

mod claims;
mod headline;
pub mod keys;
#[cfg(test)]
mod tests;

pub use keys::{KEYS, Key};

use claims::*;
use headline::headline;

/// Computes the headline table and the claims from the sections' figures.
///
/// Pure: the same sections always give the same verdicts. Figures of failed or skipped sections
/// are ignored, so their claims come out [`Verdict::NotMeasured`].
pub fn judge(sections: &[Section]) -> (Vec<HeadlineRow>, Vec<Claim>) {
    let f = Figures::new(sections);
    let claims = vec![
        creation(&f),
        switch(&f),
        communication(&f),
        isolation(&f),
        memory(&f),
        race(&f),
        no_shared_memory(&f),
        multi_core(&f),
        over_threading(&f),
        many_waits(&f),
        synchronization(&f),
        ui(&f),
        leaks(&f),
        security(&f),
        server_crash(&f),
        server_leak(&f),
        server_throughput(&f),
        containers(&f),
        race_every_run(&f),
        race_one_cpu(&f),
        distributed(&f),
    ];
    let claims = claims.into_iter().map(|c| gate(&f, c)).collect::<Vec<_>>();
    let headline = headline(&f, &claims);
    (headline, claims)
}

/// A decided claim whose figures cannot decide it on this run (interference, a level shift)
/// becomes [`Verdict::NotDecided`], its evidence saying why and what the figures said.
fn gate(f: &Figures, mut c: Claim) -> Claim {
    if c.verdict == Verdict::NotMeasured {
        return c;
    }
    let mut reasons: Vec<String> = c
        .figure_keys
        .iter()
        .filter_map(|k| f.undecided(k))
        .collect();
    reasons.dedup();
    if !reasons.is_empty() {
        c.evidence = format!(
            "not decided here: {}. The figures alone said {} ({})",
            reasons.join("; "),
            crate::render::verdict_label(c.verdict),
            c.evidence
        );
        c.verdict = Verdict::NotDecided;
    }
    c
}

/// The usable figures of the sections that ran, by key, and every section's status by id.
struct Figures<'a> {
    by_key: HashMap<&'a str, &'a Figure>,
    status: HashMap<&'a str, &'a Status>,
    /// Why a section's figures cannot decide a claim, by section id: interference.
    interference: HashMap<&'a str, &'a str>,
}

impl<'a> Figures<'a> {
    fn new(sections: &'a [Section]) -> Figures<'a> {
        let status = sections
            .iter()
            .map(|s| (s.id.as_str(), &s.status))
            .collect();
        let by_key = sections
            .iter()
            .filter(|s| s.status == Status::Ok)
            .flat_map(|s| s.figures.iter())
            .filter(|f| f.value.is_finite())
            .map(|f| (f.key.as_str(), f))
            .collect();
        let interference = sections
            .iter()
            .filter_map(|s| {
                let why = s.conditions.as_ref()?.interference.as_deref()?;
                Some((s.id.as_str(), why))
            })
            .collect();
        Figures {
            by_key,
            status,
            interference,
        }
    }

    /// Why `key`'s figure cannot decide a claim on this run, if it cannot: it is a time, a
    /// rate or a ratio of them and its section ran under interference, or its batches shifted
    /// level half-way. Counts, shares and sizes (updates lost, tasks contained, attacks
    /// stopped, bytes per worker) do not depend on how busy the machine was.
    fn undecided(&self, key: &str) -> Option<String> {
        let f = self.by_key.get(key)?;
        let experiment = key.split('.').next().unwrap_or(key);
        let timed = matches!(
            f.unit,
            Unit::Ns | Unit::PerSec | Unit::BytesPerSec | Unit::Ratio
        );
        if let Some(why) = self.interference.get(experiment).filter(|_| timed) {
            return Some(format!(
                "{experiment} was measured under interference ({why})"
            ));
        }
        let shift = crate::stats::level_shift(&f.batches)?;
        Some(format!(
            "{key} shifted level between its batches (first half {}, second half {}, \
             Mann–Whitney z = {:.1})",
            format_value(shift.first, f.unit),
            format_value(shift.second, f.unit),
            shift.z
        ))
    }

    /// The 95 % bootstrap interval of `costly / cheap` from their independent rounds where
    /// they have at least three (how far a median moves from run to run), else from their
    /// batches.
    fn ratio_ci(&self, costly: &str, cheap: &str) -> Option<(f64, f64)> {
        let samples = |key: &str| -> Option<Vec<f64>> {
            let f = self.by_key.get(key)?;
            match self.kept_rounds(key) {
                Some((kept, _)) if kept.len() >= 3 => Some(kept),
                _ if f.batches.len() >= 3 => Some(f.batches.clone()),
                _ => None,
            }
        };
        crate::stats::ratio_ci(&samples(costly)?, &samples(cheap)?)
    }

    /// Why `key` has no usable figure, in words: "memory failed: <error>", "race did not run".
    fn why_missing(&self, key: &str) -> String {
        let experiment = key.split('.').next().unwrap_or(key);
        match self.status.get(experiment) {
            None => format!("{experiment} did not run"),
            Some(Status::Failed { error }) => format!("{experiment} failed: {error}"),
            Some(Status::Skipped { reason }) => format!("{experiment} was skipped: {reason}"),
            Some(Status::Ok) => format!("{experiment} produced no usable {key}"),
        }
    }

    fn value(&self, key: &str) -> Option<f64> {
        self.by_key.get(key).map(|f| f.value)
    }

    /// The figure's value formatted with its unit, for the table cells.
    fn shown(&self, key: &str) -> Option<String> {
        self.by_key.get(key).map(|f| f.shown())
    }

    /// The independent rounds behind the figure, where it has several.
    fn rounds(&self, key: &str) -> Option<&crate::report::Rounds> {
        self.by_key.get(key).and_then(|f| f.rounds.as_ref())
    }

    /// [`Figures::shown`] with the run-to-run spread after it ("2.07 µs ±4.1%"), for the
    /// headline's cells.
    fn shown_with_rounds(&self, key: &str) -> Option<String> {
        let shown = self.shown(key)?;
        Some(match self.rounds(key) {
            Some(r) => format!("{shown} {}", r.shown_pct()),
            None => shown,
        })
    }

    /// The range the figure cannot be told apart within: the min–max of its independent
    /// rounds where it has them (how far its median moves from run to run, which is what a
    /// verdict on medians must clear), else its p1–p99. `None` when it has neither.
    ///
    /// Not the wider of the two: a single operation's p99 measures the machine's tail (one
    /// preempted thread spawn on a shared VM), not the uncertainty of a median of thousands.
    fn noise_range(&self, key: &str) -> Option<(f64, f64)> {
        let f = self.by_key.get(key)?;
        let samples = f.spread.as_ref().map(|s| (s.p1, s.p99));
        let rounds = self.kept_rounds(key).map(|(kept, _)| {
            let min = kept.iter().copied().fold(f64::INFINITY, f64::min);
            let max = kept.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            (min, max)
        });
        rounds.or(samples)
    }

    /// The figure's independent rounds, less one that stalled. Interference only ever slows
    /// a measurement down, so with three rounds or more, a single round slower than the
    /// figure's median by more than [`STALL`] times (a longer time, a lower rate) while the
    /// others agree within [`TOLERANCE`] measured something else (a stall, a compaction, a
    /// neighbour's burst): it is set aside and named in the evidence. A fast outlier, two
    /// slow ones, or rounds that disagree among themselves are the figure's real spread, kept.
    /// Returns (kept, set aside).
    fn kept_rounds(&self, key: &str) -> Option<(Vec<f64>, Vec<f64>)> {
        let f = self.by_key.get(key)?;
        let values = &f.rounds.as_ref()?.values;
        let center = f.value;
        let stalled = |v: f64| match f.unit {
            Unit::Ns => v > center * STALL,
            Unit::PerSec | Unit::BytesPerSec => v < center / STALL,
            _ => false,
        };
        let (aside, kept): (Vec<f64>, Vec<f64>) = values.iter().partition(|v| stalled(**v));
        let lo = kept.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = kept.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let others_agree = hi <= lo * (1.0 + TOLERANCE);
        if values.len() >= 3 && aside.len() == 1 && others_agree {
            Some((kept, aside))
        } else {
            Some((values.clone(), Vec::new()))
        }
    }

    /// "; a round of KEY (1.20 ms) set aside as a stall: ..." for each figure of `keys` that
    /// had one.
    fn set_aside_words(&self, keys: &[&str]) -> String {
        keys.iter()
            .filter_map(|k| {
                let f = self.by_key.get(k)?;
                let (_, aside) = self.kept_rounds(k)?;
                let v = aside.first()?;
                Some(format!(
                    "; a round of {k} ({}) set aside as a stall: over {STALL}× slower than \
                     its median while the other rounds agree",
                    format_value(*v, f.unit)
                ))
            })
            .collect()
    }
}

/// Compares `costly / cheap` against [`TOLERANCE`]: `Confirmed` when `costly` is clearly more.
fn costs_more(costly: f64, cheap: f64) -> (Verdict, Option<f64>) {
    let ratio = costly / cheap;
    if !(ratio.is_finite() && ratio > 0.0) {
        return (Verdict::NotMeasured, None);
    }
    let verdict = if ratio > 1.0 + TOLERANCE {
        Verdict::Confirmed
    } else if ratio < 1.0 / (1.0 + TOLERANCE) {
        Verdict::Refuted
    } else {
        Verdict::NoClearDifference
    };
    (verdict, Some(ratio))
}

/// [`costs_more`] for two figures, and no clear difference when their noise ranges overlap
/// (the min–max of their independent rounds, or p1–p99 without rounds): the medians' ratio
/// alone does not clear the noise.
fn costs_more_clearly(f: &Figures, costly_key: &str, cheap_key: &str) -> (Verdict, Option<f64>) {
    let (Some(costly), Some(cheap)) = (f.value(costly_key), f.value(cheap_key)) else {
        return (Verdict::NotMeasured, None);
    };
    let (verdict, ratio) = costs_more(costly, cheap);
    let ranges_overlap = match (f.noise_range(costly_key), f.noise_range(cheap_key)) {
        (Some(a), Some(b)) => a.0 <= b.1 && b.0 <= a.1,
        _ => false,
    };
    let ci_spans_one = f
        .ratio_ci(costly_key, cheap_key)
        .is_some_and(|(lo, hi)| lo <= 1.0 && 1.0 <= hi);
    let overlap = ranges_overlap || ci_spans_one;
    match verdict {
        Verdict::Confirmed | Verdict::Refuted if overlap => (Verdict::NoClearDifference, ratio),
        v => (v, ratio),
    }
}

fn claim(id: &str, statement: &str, keys: &[&str], verdict: Verdict, evidence: String) -> Claim {
    Claim {
        id: id.to_string(),
        statement: statement.to_string(),
        verdict,
        evidence,
        figure_keys: keys.iter().map(|k| k.to_string()).collect(),
    }
}

/// The claim as NotMeasured, saying why its figures are missing.
fn not_measured(id: &str, statement: &str, keys: &[&str], f: &Figures) -> Claim {
    let mut reasons: Vec<String> = Vec::new();
    for key in keys.iter().filter(|k| f.value(k).is_none()) {
        let why = f.why_missing(key);
        if !reasons.contains(&why) {
            reasons.push(why);
        }
    }
    let evidence = format!("not measured: {}", reasons.join("; "));
    claim(id, statement, keys, Verdict::NotMeasured, evidence)
}

/// A count, grouped for reading ("200,000").
fn count(v: f64) -> String {
    format_value(v, Unit::Count)
}

/// " (95 % CI 1.21–1.45×)", or nothing without an interval.
fn ci_words(ci: Option<(f64, f64)>) -> String {
    ci.map_or_else(String::new, |(lo, hi)| {
        format!(" (95 % CI {lo:.2}–{hi:.2}×)")
    })
}

fn ratio_words(verdict: Verdict) -> &'static str {
    match verdict {
        Verdict::Confirmed => "clearly more",
        Verdict::Refuted => "clearly less",
        Verdict::Depends => "it depends on the placement or size",
        Verdict::NoClearDifference => {
            "no clear difference: within ±10 %, inside each other's p1–p99 or run-to-run range, \
             or a ratio interval that holds 1"
        }
        Verdict::NotMeasured | Verdict::NotDecided => "not comparable",
    }
}

/// A claim that `costly_key` costs more than `cheap_key`, decided by their ratio.
fn cost_claim(
    f: &Figures,
    id: &str,
    statement: &str,
    costly_key: &str,
    cheap_key: &str,
    what: (&str, &str),
) -> Claim {
    let keys = [costly_key, cheap_key];
    if f.value(costly_key).is_none() || f.value(cheap_key).is_none() {
        return not_measured(id, statement, &keys, f);
    }
    let (verdict, ratio) = costs_more_clearly(f, costly_key, cheap_key);
    let evidence = match ratio {
        Some(r) => {
            format!(
                "{} {} vs {} {}: {:.2}×{} ({}); decided by {costly_key} / {cheap_key}",
                what.0,
                f.shown(costly_key).unwrap_or_default(),
                what.1,
                f.shown(cheap_key).unwrap_or_default(),
                r,
                ci_words(f.ratio_ci(costly_key, cheap_key)),
                ratio_words(verdict),
            ) + &f.set_aside_words(&[costly_key, cheap_key])
        }
        None => format!("{costly_key} / {cheap_key} is not a usable ratio"),
    };
    claim(id, statement, &keys, verdict, evidence)
}

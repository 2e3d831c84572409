//! Verdicts: the classic claims about processes and threads, judged against the figures.
//!
//! [`judge`] is a pure function of the sections: it looks figures up by key, applies one declared
//! rule per claim and returns the headline table and the claims. It never measures and never
//! prints, so a test can perturb the figures and watch each verdict flip or hold.
//!
//! # Figure keys
//!
//! The experiments produce exactly these keys ([`KEYS`] holds the same list, with units, for
//! tests and tools). Only figures of sections whose status is `Ok` count; a key that is missing,
//! not finite, or in a failed or skipped section makes its claims [`Verdict::NotMeasured`].
//!
//! | key | unit | meaning |
//! |---|---|---|
//! | `spawn.thread` | ns | create a thread, run its first instruction, exit and join (warm median) |
//! | `spawn.fork` | ns | fork, the child's first instruction, `_exit`, `waitpid` (warm median) |
//! | `spawn.pool_worker` | ns | a proctor process worker forked from the fork server, ready for work |
//! | `spawn.async` | ns | spawn an empty async task and await its completion |
//! | `switch.futex.thread.pinned` | ns | one switch between two threads ping-ponging on a futex, same CPU, syscall cost subtracted |
//! | `switch.futex.process.pinned` | ns | the same between two processes (futex in shared memory) |
//! | `ipc.rtt.channel.thread.64` | ns | p50 round trip of 64 B between two threads over an in-process channel |
//! | `ipc.rtt.pipe.process.64` | ns | p50 round trip of 64 B between two processes over a pair of pipes |
//! | `ipc.rtt.shm.process.64` | ns | p50 round trip of 64 B between two processes over the shared-memory ring (futex wait) |
//! | `memory.uss_per_worker.thread.10` | bytes | process USS growth per idle thread worker, 10 workers |
//! | `memory.uss_per_worker.process.10` | bytes | USS per idle worker process, 10 workers |
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
//! | `scaling.io.completion.thread.1000` | ns | wall time until 1 000 concurrent waits (10 ms each) complete, one thread per wait |
//! | `scaling.io.completion.process.1000` | ns | the same, one process per wait |
//! | `scaling.io.completion.async.1000` | ns | the same, one async task per wait |
//! | `sync.mutex.uncontended.thread` | ns | lock + unlock of an uncontended thread-local `Mutex` |
//! | `sync.mutex.uncontended.process` | ns | lock + unlock of an uncontended process-shared futex mutex |
//!
//! # Rules
//!
//! Cost comparisons use one declared tolerance, [`TOLERANCE`]: with `ratio = costly / cheap`,
//! a ratio above `1 + TOLERANCE` confirms "costly costs more", a ratio below `1 / (1 + TOLERANCE)`
//! refutes it, and anything in between is [`Verdict::Depends`] (the two are within ±10 % here).
//! Each claim's evidence names the figures and the ratio that decided it.

use std::collections::HashMap;

use crate::render::format_value;
use crate::report::{Claim, Figure, HeadlineRow, Section, Status, Unit, Verdict};

/// Relative difference below which two costs count as the same (10 %).
pub const TOLERANCE: f64 = 0.10;

/// Parallel efficiency (speed-up / cores) at or above which a mode "uses many cores".
pub const GOOD_EFFICIENCY: f64 = 0.75;

/// Parallel efficiency below which a mode does not use many cores.
pub const POOR_EFFICIENCY: f64 = 0.5;

/// A figure key the verdicts read, with its unit and meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key {
    pub key: &'static str,
    pub unit: Unit,
    pub meaning: &'static str,
}

const fn key(key: &'static str, unit: Unit, meaning: &'static str) -> Key {
    Key { key, unit, meaning }
}

/// Every figure key [`judge`] reads; the module documentation shows the same table.
pub const KEYS: &[Key] = &[
    key(
        "spawn.thread",
        Unit::Ns,
        "thread create + first instruction + exit + join",
    ),
    key(
        "spawn.fork",
        Unit::Ns,
        "fork + first instruction + _exit + waitpid",
    ),
    key(
        "spawn.pool_worker",
        Unit::Ns,
        "proctor worker forked from the fork server, ready",
    ),
    key("spawn.async", Unit::Ns, "async task spawn + completion"),
    key(
        "switch.futex.thread.pinned",
        Unit::Ns,
        "thread switch, futex, same CPU",
    ),
    key(
        "switch.futex.process.pinned",
        Unit::Ns,
        "process switch, futex, same CPU",
    ),
    key(
        "ipc.rtt.channel.thread.64",
        Unit::Ns,
        "64 B round trip, channel, threads",
    ),
    key(
        "ipc.rtt.pipe.process.64",
        Unit::Ns,
        "64 B round trip, pipes, processes",
    ),
    key(
        "ipc.rtt.shm.process.64",
        Unit::Ns,
        "64 B round trip, shm ring, processes",
    ),
    key(
        "memory.uss_per_worker.thread.10",
        Unit::Bytes,
        "USS growth per thread worker (10)",
    ),
    key(
        "memory.uss_per_worker.process.10",
        Unit::Bytes,
        "USS per process worker (10)",
    ),
    key(
        "memory.per_task.async.10000",
        Unit::Bytes,
        "memory per async task (10 000)",
    ),
    key("isolation.faults", Unit::Count, "fault kinds tried"),
    key(
        "isolation.survived.process",
        Unit::Count,
        "fault kinds survived, process mode",
    ),
    key(
        "isolation.survived.thread",
        Unit::Count,
        "fault kinds survived, thread mode",
    ),
    key(
        "isolation.whole_program_died.thread",
        Unit::Count,
        "fault kinds fatal to the program, thread mode",
    ),
    key("race.expected", Unit::Count, "increments attempted"),
    key(
        "race.final.unsync",
        Unit::Count,
        "final counter, unsynchronized",
    ),
    key("race.final.mutex", Unit::Count, "final counter, Mutex"),
    key("race.final.atomic", Unit::Count, "final counter, fetch_add"),
    key(
        "race.ns_per_inc.unsync",
        Unit::Ns,
        "time per increment, unsynchronized",
    ),
    key(
        "race.ns_per_inc.mutex",
        Unit::Ns,
        "time per increment, Mutex",
    ),
    key(
        "race.ns_per_inc.atomic",
        Unit::Ns,
        "time per increment, fetch_add",
    ),
    key(
        "race.parent_after.process_copy",
        Unit::Count,
        "parent counter after a child incremented its copy",
    ),
    key(
        "scaling.cores",
        Unit::Count,
        "logical CPUs = workers for the .cores speed-ups",
    ),
    key(
        "scaling.speedup.thread.cores",
        Unit::Ratio,
        "CPU-bound speed-up, threads = cores",
    ),
    key(
        "scaling.speedup.process.cores",
        Unit::Ratio,
        "CPU-bound speed-up, processes = cores",
    ),
    key(
        "scaling.oversubscription.thread",
        Unit::Ratio,
        "throughput at 2x cores / at cores, threads",
    ),
    key(
        "scaling.io.completion.thread.1000",
        Unit::Ns,
        "1 000 concurrent waits, threads",
    ),
    key(
        "scaling.io.completion.process.1000",
        Unit::Ns,
        "1 000 concurrent waits, processes",
    ),
    key(
        "scaling.io.completion.async.1000",
        Unit::Ns,
        "1 000 concurrent waits, async tasks",
    ),
    key(
        "sync.mutex.uncontended.thread",
        Unit::Ns,
        "uncontended Mutex lock + unlock",
    ),
    key(
        "sync.mutex.uncontended.process",
        Unit::Ns,
        "uncontended process-shared mutex lock + unlock",
    ),
];

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
    ];
    let headline = headline(&f, &claims);
    (headline, claims)
}

/// The usable figures of the sections that ran, by key, and every section's status by id.
struct Figures<'a> {
    by_key: HashMap<&'a str, &'a Figure>,
    status: HashMap<&'a str, &'a Status>,
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
        Figures { by_key, status }
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
        self.by_key.get(key).map(|f| crate::render::figure_value(f))
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
        Verdict::Depends
    };
    (verdict, Some(ratio))
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

fn ratio_words(verdict: Verdict) -> &'static str {
    match verdict {
        Verdict::Confirmed => "clearly more",
        Verdict::Refuted => "clearly less",
        Verdict::Depends => "within ±10 %, the same here",
        Verdict::NotMeasured => "not comparable",
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
    let (Some(costly), Some(cheap)) = (f.value(costly_key), f.value(cheap_key)) else {
        return not_measured(id, statement, &keys, f);
    };
    let (verdict, ratio) = costs_more(costly, cheap);
    let evidence = match ratio {
        Some(r) => format!(
            "{} {} vs {} {}: {:.2}× ({}); decided by {costly_key} / {cheap_key}",
            what.0,
            f.shown(costly_key).unwrap_or_default(),
            what.1,
            f.shown(cheap_key).unwrap_or_default(),
            r,
            ratio_words(verdict),
        ),
        None => format!("{costly_key} / {cheap_key} is not a usable ratio"),
    };
    claim(id, statement, &keys, verdict, evidence)
}

fn creation(f: &Figures) -> Claim {
    cost_claim(
        f,
        "creation",
        "process creation costs more than thread creation",
        "spawn.fork",
        "spawn.thread",
        ("fork", "thread spawn"),
    )
}

fn switch(f: &Figures) -> Claim {
    cost_claim(
        f,
        "switch",
        "a switch between threads is cheaper than a switch between processes",
        "switch.futex.process.pinned",
        "switch.futex.thread.pinned",
        ("process switch", "thread switch"),
    )
}

fn memory(f: &Figures) -> Claim {
    cost_claim(
        f,
        "memory",
        "processes use more memory per worker than threads",
        "memory.uss_per_worker.process.10",
        "memory.uss_per_worker.thread.10",
        ("per process", "per thread"),
    )
}

fn synchronization(f: &Figures) -> Claim {
    cost_claim(
        f,
        "synchronization",
        "synchronizing processes costs more than synchronizing threads",
        "sync.mutex.uncontended.process",
        "sync.mutex.uncontended.thread",
        ("process-shared mutex", "thread mutex"),
    )
}

/// The IPC experiment's transports, with the names the evidence uses.
const TRANSPORTS: [(&str, &str); 6] = [
    ("channel", "channel"),
    ("shm", "shm ring"),
    ("pipe", "pipe"),
    ("unix", "unix socket"),
    ("mq", "message queue"),
    ("tcp", "TCP"),
];

/// The fastest 64 B round trip between two `partner`s (threads or processes) over any
/// transport measured: its key, the transport's name and the value.
fn fastest(f: &Figures, partner: &str) -> Option<(String, &'static str, f64)> {
    TRANSPORTS
        .iter()
        .filter_map(|(t, name)| {
            let key = format!("ipc.rtt.{t}.{partner}.64");
            f.value(&key).map(|v| (key, *name, v))
        })
        .min_by(|a, b| a.2.total_cmp(&b.2))
}

/// The fastest way threads talk against the fastest way processes do (like with like: each
/// side's best), with every same-transport pair beside it in the evidence. Processes' best
/// costs more: confirmed; less: refuted; within the tolerance: depends.
fn communication(f: &Figures) -> Claim {
    let (id, statement) = ("communication", "threads communicate faster than processes");
    let keys = [
        "ipc.rtt.pipe.process.64",
        "ipc.rtt.shm.process.64",
        "ipc.rtt.channel.thread.64",
    ];
    let (Some((thread_key, thread_via, thread)), Some((process_key, process_via, process))) =
        (fastest(f, "thread"), fastest(f, "process"))
    else {
        return not_measured(id, statement, &keys, f);
    };
    if keys.iter().any(|k| f.value(k).is_none()) {
        return not_measured(id, statement, &keys, f);
    }
    let (verdict, ratio) = costs_more(process, thread);
    let same: Vec<String> = TRANSPORTS
        .iter()
        .filter_map(|(t, name)| {
            let threads = format!("ipc.rtt.{t}.thread.64");
            let processes = format!("ipc.rtt.{t}.process.64");
            let r = f.value(&processes)? / f.value(&threads)?;
            Some(format!(
                "{name} {} vs {} ({r:.2}×)",
                f.shown(&threads)?,
                f.shown(&processes)?
            ))
        })
        .collect();
    let evidence = format!(
        "64 B round trip, the fastest of each kind: threads {} ({thread_via}) vs processes {} \
         ({process_via}), {:.2}×; over the same transport, threads vs processes: {}",
        f.shown(&thread_key).unwrap_or_default(),
        f.shown(&process_key).unwrap_or_default(),
        ratio.unwrap_or(f64::NAN),
        if same.is_empty() {
            "none measured".to_string()
        } else {
            same.join(", ")
        },
    );
    let mut used: Vec<&str> = keys.to_vec();
    for k in [thread_key.as_str(), process_key.as_str()] {
        if !used.contains(&k) {
            used.push(k);
        }
    }
    claim(id, statement, &used, verdict, evidence)
}

/// Both halves (process crash contained, thread crash fatal) hold: confirmed; neither: refuted.
fn isolation(f: &Figures) -> Claim {
    let (id, statement) = (
        "isolation",
        "a crash in a process leaves the others running, while a crash in a thread takes the whole program down",
    );
    let keys = [
        "isolation.faults",
        "isolation.survived.process",
        "isolation.whole_program_died.thread",
    ];
    let (Some(faults), Some(survived), Some(died)) =
        (f.value(keys[0]), f.value(keys[1]), f.value(keys[2]))
    else {
        return not_measured(id, statement, &keys, f);
    };
    if faults < 1.0 {
        return claim(
            id,
            statement,
            &keys,
            Verdict::NotMeasured,
            "no fault kinds were tried".to_string(),
        );
    }
    let process_contained = survived >= faults;
    let thread_fatal = died > 0.0;
    let verdict = match (process_contained, thread_fatal) {
        (true, true) => Verdict::Confirmed,
        (false, false) => Verdict::Refuted,
        _ => Verdict::Depends,
    };
    let (survived, faults, died) = (count(survived), count(faults), count(died));
    let evidence = format!(
        "process mode survived {survived} of {faults} fault kinds; in thread mode {died} of them \
         killed the whole program; decided by isolation.survived.process = isolation.faults \
         and isolation.whole_program_died.thread > 0"
    );
    claim(id, statement, &keys, verdict, evidence)
}

/// Unsynchronized loses updates and both fixes are exact: confirmed. A fix that loses updates
/// refutes it; no lost update in this run (a race is not guaranteed to show) is Depends.
fn race(f: &Figures) -> Claim {
    let (id, statement) = (
        "race",
        "an unsynchronized shared counter loses updates, and locks or atomics fix it",
    );
    let keys = [
        "race.expected",
        "race.final.unsync",
        "race.final.mutex",
        "race.final.atomic",
        "race.ns_per_inc.unsync",
        "race.ns_per_inc.mutex",
        "race.ns_per_inc.atomic",
    ];
    let [Some(expected), Some(unsync), Some(mutex), Some(atomic)] =
        [keys[0], keys[1], keys[2], keys[3]].map(|k| f.value(k))
    else {
        return not_measured(id, statement, &keys, f);
    };
    let verdict = if mutex != expected || atomic != expected {
        Verdict::Refuted
    } else if unsync < expected {
        Verdict::Confirmed
    } else {
        Verdict::Depends
    };
    let mut evidence = format!(
        "unsynchronized: {} of {} ({} lost); Mutex: {}; fetch_add: {}",
        count(unsync),
        count(expected),
        count(expected - unsync),
        count(mutex),
        count(atomic),
    );
    if let (Some(u), Some(m), Some(a)) = (f.value(keys[4]), f.value(keys[5]), f.value(keys[6])) {
        evidence.push_str(&format!(
            "; cost per increment: unsynchronized {}, Mutex {} ({:.1}×), fetch_add {} ({:.1}×)",
            format_value(u, Unit::Ns),
            format_value(m, Unit::Ns),
            m / u,
            format_value(a, Unit::Ns),
            a / u,
        ));
    }
    claim(id, statement, &keys, verdict, evidence)
}

fn no_shared_memory(f: &Figures) -> Claim {
    let (id, statement) = ("no-shared-memory", "processes do not share ordinary memory");
    let keys = ["race.parent_after.process_copy"];
    let Some(after) = f.value(keys[0]) else {
        return not_measured(id, statement, &keys, f);
    };
    let verdict = if after == 0.0 {
        Verdict::Confirmed
    } else {
        Verdict::Refuted
    };
    let evidence = format!(
        "a forked child incremented its copy of the counter; the parent's counter read {} \
         afterwards (0 means not shared); decided by race.parent_after.process_copy = 0",
        count(after)
    );
    claim(id, statement, &keys, verdict, evidence)
}

/// Both modes reach [`GOOD_EFFICIENCY`]: confirmed; neither reaches [`POOR_EFFICIENCY`]: refuted.
fn multi_core(f: &Figures) -> Claim {
    let (id, statement) = (
        "multi-core",
        "both processes and threads use many cores for CPU-bound work (no GIL in Rust)",
    );
    let keys = [
        "scaling.cores",
        "scaling.speedup.thread.cores",
        "scaling.speedup.process.cores",
    ];
    let (Some(cores), Some(thread), Some(process)) =
        (f.value(keys[0]), f.value(keys[1]), f.value(keys[2]))
    else {
        return not_measured(id, statement, &keys, f);
    };
    if cores < 2.0 {
        return claim(
            id,
            statement,
            &keys,
            Verdict::Depends,
            format!("only {cores} core here: nothing to scale to"),
        );
    }
    let (te, pe) = (thread / cores, process / cores);
    let verdict = if te >= GOOD_EFFICIENCY && pe >= GOOD_EFFICIENCY {
        Verdict::Confirmed
    } else if te < POOR_EFFICIENCY && pe < POOR_EFFICIENCY {
        Verdict::Refuted
    } else {
        Verdict::Depends
    };
    let evidence = format!(
        "speed-up with {cores} workers on {cores} cores: threads {thread:.2}× ({:.0} % efficient), \
         processes {process:.2}× ({:.0} %); confirmed when both reach {:.0} %, refuted when \
         neither reaches {:.0} %",
        te * 100.0,
        pe * 100.0,
        GOOD_EFFICIENCY * 100.0,
        POOR_EFFICIENCY * 100.0,
    );
    claim(id, statement, &keys, verdict, evidence)
}

fn over_threading(f: &Figures) -> Claim {
    let (id, statement) = (
        "over-threading",
        "more CPU-bound threads than cores costs throughput (over-threading)",
    );
    let keys = ["scaling.oversubscription.thread"];
    let Some(ratio) = f.value(keys[0]) else {
        return not_measured(id, statement, &keys, f);
    };
    // The cost is what is lost: throughput at cores / throughput at 2 × cores.
    let (verdict, _) = costs_more(1.0, ratio);
    let evidence = format!(
        "2 × cores threads reach {:.0} % of the throughput of cores threads; \
         a loss beyond ±10 % decides; decided by scaling.oversubscription.thread",
        ratio * 100.0
    );
    claim(id, statement, &keys, verdict, evidence)
}

/// The better of threads and async against processes, for 1 000 concurrent waits.
fn many_waits(f: &Figures) -> Claim {
    let (id, statement) = (
        "many-waits",
        "threads or async tasks suit many concurrent waits better than processes",
    );
    let keys = [
        "scaling.io.completion.process.1000",
        "scaling.io.completion.thread.1000",
        "scaling.io.completion.async.1000",
    ];
    let (Some(process), Some(thread), Some(async_task)) =
        (f.value(keys[0]), f.value(keys[1]), f.value(keys[2]))
    else {
        return not_measured(id, statement, &keys, f);
    };
    let best = thread.min(async_task);
    let (verdict, ratio) = costs_more(process, best);
    let evidence = format!(
        "1 000 concurrent waits done in: processes {}, threads {}, async {}; processes / best \
         = {:.2}× ({})",
        format_value(process, Unit::Ns),
        format_value(thread, Unit::Ns),
        format_value(async_task, Unit::Ns),
        ratio.unwrap_or(f64::NAN),
        ratio_words(verdict),
    );
    claim(id, statement, &keys, verdict, evidence)
}

fn find<'c>(claims: &'c [Claim], id: &str) -> &'c Claim {
    claims
        .iter()
        .find(|c| c.id == id)
        .expect("judge builds every claim the headline refers to")
}

/// One headline row: the cells come from figures, the verdict from the claim `claim_id`.
struct Row<'a> {
    aspect: &'a str,
    claim: &'a str,
    claim_id: &'a str,
    thread: Option<String>,
    process: Option<String>,
    async_task: Option<String>,
    /// (numerator, denominator) keys of the ratio column: process / thread.
    ratio: Option<(&'a str, &'a str)>,
}

fn headline(f: &Figures, claims: &[Claim]) -> Vec<HeadlineRow> {
    let count_of = |key: &str| f.value(key).map(count);
    let memory_space = {
        let thread = match (f.value("race.expected"), f.value("race.final.unsync")) {
            (Some(e), Some(u)) => Some(format!(
                "shared: {} of {} updates lost",
                count(e - u),
                count(e)
            )),
            _ => None,
        };
        let process = f
            .value("race.parent_after.process_copy")
            .map(|v| format!("separate: parent saw {} child updates", count(v)));
        (thread, process)
    };
    let survived = |mode: &str| match (
        f.value(&format!("isolation.survived.{mode}")),
        f.value("isolation.faults"),
    ) {
        (Some(s), Some(n)) => Some(format!("{} of {} faults contained", count(s), count(n))),
        _ => None,
    };
    let io = |mode: &str| f.shown(&format!("scaling.io.completion.{mode}.1000"));
    // Like with like: each kind's fastest transport (the evidence pairs same transports).
    let fastest_thread = fastest(f, "thread");
    let fastest_process = fastest(f, "process");
    let rows = [
        Row {
            aspect: "memory space",
            claim: "processes do not share ordinary memory",
            claim_id: "no-shared-memory",
            thread: memory_space.0,
            process: memory_space.1,
            async_task: None,
            ratio: None,
        },
        Row {
            aspect: "communication",
            claim: "threads communicate faster",
            claim_id: "communication",
            thread: fastest_thread
                .as_ref()
                .and_then(|(k, via, _)| Some(format!("{} ({via})", f.shown(k)?))),
            process: fastest_process
                .as_ref()
                .and_then(|(k, via, _)| Some(format!("{} ({via})", f.shown(k)?))),
            async_task: None,
            ratio: fastest_process
                .as_ref()
                .zip(fastest_thread.as_ref())
                .map(|(p, t)| (p.0.as_str(), t.0.as_str())),
        },
        Row {
            aspect: "creation overhead",
            claim: "creating a process costs more",
            claim_id: "creation",
            thread: f.shown("spawn.thread"),
            process: f.shown("spawn.fork"),
            async_task: f.shown("spawn.async"),
            ratio: Some(("spawn.fork", "spawn.thread")),
        },
        Row {
            aspect: "context switching",
            claim: "switching between threads is faster",
            claim_id: "switch",
            thread: f.shown("switch.futex.thread.pinned"),
            process: f.shown("switch.futex.process.pinned"),
            async_task: None,
            ratio: Some(("switch.futex.process.pinned", "switch.futex.thread.pinned")),
        },
        Row {
            aspect: "fault isolation",
            claim: "a crashing process does not take the others down",
            claim_id: "isolation",
            thread: survived("thread"),
            process: survived("process"),
            async_task: None,
            ratio: None,
        },
        Row {
            aspect: "resource usage",
            claim: "a process uses more memory per worker",
            claim_id: "memory",
            thread: f.shown("memory.uss_per_worker.thread.10"),
            process: f.shown("memory.uss_per_worker.process.10"),
            async_task: f.shown("memory.per_task.async.10000"),
            ratio: Some((
                "memory.uss_per_worker.process.10",
                "memory.uss_per_worker.thread.10",
            )),
        },
        Row {
            aspect: "multi-core use",
            claim: "both use many cores (no GIL)",
            claim_id: "multi-core",
            thread: f
                .shown("scaling.speedup.thread.cores")
                .zip(count_of("scaling.cores"))
                .map(|(s, c)| format!("{s} on {c} cores")),
            process: f
                .shown("scaling.speedup.process.cores")
                .zip(count_of("scaling.cores"))
                .map(|(s, c)| format!("{s} on {c} cores")),
            async_task: None,
            ratio: Some((
                "scaling.speedup.process.cores",
                "scaling.speedup.thread.cores",
            )),
        },
        Row {
            aspect: "many concurrent waits",
            claim: "threads or async suit many waits better",
            claim_id: "many-waits",
            thread: io("thread"),
            process: io("process"),
            async_task: io("async"),
            ratio: Some((
                "scaling.io.completion.process.1000",
                "scaling.io.completion.thread.1000",
            )),
        },
        Row {
            aspect: "synchronization",
            claim: "synchronizing processes costs more",
            claim_id: "synchronization",
            thread: f.shown("sync.mutex.uncontended.thread"),
            process: f.shown("sync.mutex.uncontended.process"),
            async_task: None,
            ratio: Some((
                "sync.mutex.uncontended.process",
                "sync.mutex.uncontended.thread",
            )),
        },
    ];
    rows.into_iter()
        .map(|row| {
            let claim = find(claims, row.claim_id);
            let ratio = row
                .ratio
                .and_then(|(p, t)| Some(f.value(p)? / f.value(t)?))
                .filter(|r| r.is_finite());
            HeadlineRow {
                aspect: row.aspect.to_string(),
                thread: row.thread,
                process: row.process,
                async_task: row.async_task,
                ratio,
                claim: row.claim.to_string(),
                verdict: claim.verdict,
                deciding: claim.figure_keys.join(", "),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture;

    fn verdicts(sections: &[Section]) -> HashMap<String, Verdict> {
        let (_, claims) = judge(sections);
        claims.into_iter().map(|c| (c.id, c.verdict)).collect()
    }

    fn figure_mut<'s>(sections: &'s mut [Section], key: &str) -> &'s mut Figure {
        sections
            .iter_mut()
            .flat_map(|s| s.figures.iter_mut())
            .find(|f| f.key == key)
            .unwrap_or_else(|| panic!("the full fixture has {key}"))
    }

    fn value(sections: &[Section], key: &str) -> f64 {
        sections
            .iter()
            .find_map(|s| s.figure(key))
            .map(|f| f.value)
            .unwrap_or_else(|| panic!("the full fixture has {key}"))
    }

    /// The full fixture with `changes` applied: each sets a key to a value.
    fn perturbed(changes: &[(&str, f64)]) -> Vec<Section> {
        let mut sections = fixture::all_sections();
        for &(key, v) in changes {
            figure_mut(&mut sections, key).value = v;
        }
        sections
    }

    /// The full fixture with the values of `a` and `b` exchanged.
    fn swapped(a: &str, b: &str) -> Vec<Section> {
        let base = fixture::all_sections();
        perturbed(&[(a, value(&base, b)), (b, value(&base, a))])
    }

    #[test]
    fn communication_compares_each_kinds_fastest_and_pairs_same_transports() {
        let mut sections = fixture::all_sections();
        // Threads over the same pipe and shm ring as the processes (the real lab measures
        // both): the fastest thread transport is then the shm ring, not the channel.
        figure_mut(&mut sections, "ipc.rtt.channel.thread.64").value = 4_000.0;
        let ipc = sections.iter_mut().find(|s| s.id == "ipc").expect("ipc");
        for (key, ns) in [
            ("ipc.rtt.pipe.thread.64", 9_900.0),
            ("ipc.rtt.shm.thread.64", 3_050.0),
        ] {
            ipc.figures.push(Figure::new(key, key, ns, Unit::Ns));
        }
        let (rows, claims) = judge(&sections);
        let claim = claims
            .iter()
            .find(|c| c.id == "communication")
            .expect("claim");
        // 3.10 µs (shm, processes) against 3.05 µs (shm, threads): no clear difference.
        assert_eq!(claim.verdict, Verdict::Depends, "{}", claim.evidence);
        assert!(
            claim
                .evidence
                .contains("threads 3.05 µs (shm ring) vs processes 3.10 µs (shm ring)"),
            "{}",
            claim.evidence
        );
        assert!(
            claim.evidence.contains("pipe 9.90 µs vs 9.80 µs"),
            "{}",
            claim.evidence
        );
        let row = rows
            .iter()
            .find(|r| r.aspect == "communication")
            .expect("row");
        assert_eq!(row.thread.as_deref(), Some("3.05 µs (shm ring)"));
        assert_eq!(row.process.as_deref(), Some("3.10 µs (shm ring)"));
        let ratio = row.ratio.expect("a ratio");
        assert!(
            (ratio - 3_100.0 / 3_050.0).abs() < 1e-9,
            "the row's ratio is its own cells': {ratio}"
        );
        assert_eq!(
            row.verdict, claim.verdict,
            "the row says what its claim says"
        );
    }

    #[test]
    fn every_key_is_produced_by_the_full_fixture_with_its_unit() {
        let sections = fixture::all_sections();
        for k in KEYS {
            let f = sections
                .iter()
                .find_map(|s| s.figure(k.key))
                .unwrap_or_else(|| panic!("no figure {}", k.key));
            assert_eq!(f.unit, k.unit, "{}", k.key);
        }
    }

    #[test]
    fn claims_read_only_declared_keys() {
        let declared: Vec<&str> = KEYS.iter().map(|k| k.key).collect();
        let (_, claims) = judge(&fixture::all_sections());
        for c in &claims {
            assert!(!c.figure_keys.is_empty(), "{} names its figures", c.id);
            for k in &c.figure_keys {
                assert!(
                    declared.contains(&k.as_str()),
                    "{} reads undeclared {k}",
                    c.id
                );
            }
        }
    }

    #[test]
    fn full_fixture_verdicts() {
        use Verdict::*;
        let want = [
            ("creation", Confirmed),
            ("switch", Confirmed),
            ("communication", Confirmed),
            ("isolation", Confirmed),
            ("memory", Confirmed),
            ("race", Confirmed),
            ("no-shared-memory", Confirmed),
            ("multi-core", Confirmed),
            // 2 × cores keeps 97 % of the throughput: within the tolerance.
            ("over-threading", Depends),
            ("many-waits", Confirmed),
            // 18.6 ns vs 17.9 ns: 1.04×, within the tolerance.
            ("synchronization", Depends),
        ];
        let got = verdicts(&fixture::all_sections());
        assert_eq!(got.len(), want.len());
        for (id, v) in want {
            assert_eq!(got[id], v, "{id}");
        }
    }

    #[test]
    fn headline_has_every_aspect_with_its_claims_verdict() {
        let (rows, claims) = judge(&fixture::all_sections());
        let aspects: Vec<&str> = rows.iter().map(|r| r.aspect.as_str()).collect();
        for aspect in [
            "memory space",
            "communication",
            "creation overhead",
            "context switching",
            "fault isolation",
            "resource usage",
            "multi-core use",
            "synchronization",
        ] {
            assert!(aspects.contains(&aspect), "{aspect}");
        }
        let creation = rows
            .iter()
            .find(|r| r.aspect == "creation overhead")
            .unwrap();
        assert_eq!(creation.thread.as_deref(), Some("18.4 µs"));
        assert_eq!(creation.process.as_deref(), Some("112 µs"));
        assert_eq!(creation.async_task.as_deref(), Some("1.15 µs"));
        assert!((creation.ratio.unwrap() - 112.0 / 18.4).abs() < 1e-9);
        let by_id = |id: &str| claims.iter().find(|c| c.id == id).unwrap().verdict;
        assert_eq!(creation.verdict, by_id("creation"));
        assert!(creation.deciding.contains("spawn.fork"));
        let fault = rows.iter().find(|r| r.aspect == "fault isolation").unwrap();
        assert_eq!(fault.process.as_deref(), Some("7 of 7 faults contained"));
    }

    #[test]
    fn swapping_thread_and_process_flips_cost_claims() {
        use Verdict::*;
        let cases = [
            ("creation", "spawn.fork", "spawn.thread", Refuted),
            (
                "switch",
                "switch.futex.process.pinned",
                "switch.futex.thread.pinned",
                Refuted,
            ),
            (
                "memory",
                "memory.uss_per_worker.process.10",
                "memory.uss_per_worker.thread.10",
                Refuted,
            ),
            // Within the tolerance either way round: still depends.
            (
                "synchronization",
                "sync.mutex.uncontended.process",
                "sync.mutex.uncontended.thread",
                Depends,
            ),
            // The channel now slower than the pipe and the shm ring: threads lose to both.
            (
                "communication",
                "ipc.rtt.pipe.process.64",
                "ipc.rtt.channel.thread.64",
                Refuted,
            ),
            // Async is still the best at many waits, so swapping threads and processes holds.
            (
                "many-waits",
                "scaling.io.completion.process.1000",
                "scaling.io.completion.thread.1000",
                Confirmed,
            ),
        ];
        for (id, a, b, want) in cases {
            assert_eq!(verdicts(&swapped(a, b))[id], want, "{id} with {a} <-> {b}");
        }
    }

    #[test]
    fn tolerance_decides_depends() {
        use Verdict::*;
        let thread = 18_400.0;
        for (fork, want) in [
            (thread * 1.05, Depends),
            (thread * 0.95, Depends),
            (thread * 1.11, Confirmed),
            (thread / 1.11, Refuted),
        ] {
            let got = verdicts(&perturbed(&[("spawn.fork", fork)]))["creation"];
            assert_eq!(got, want, "fork {fork}");
        }
    }

    #[test]
    fn each_rule_flips_or_holds_as_declared() {
        use Verdict::*;
        // (claim id, figures to change, the verdict after the change)
        type Case<'a> = (&'a str, &'a [(&'a str, f64)], Verdict);
        let cases: &[Case] = &[
            // Shared memory between processes as fast as the channel: it depends on transport.
            (
                "communication",
                &[("ipc.rtt.shm.process.64", 2_400.0)],
                Depends,
            ),
            (
                "communication",
                &[("ipc.rtt.channel.thread.64", 20_000.0)],
                Refuted,
            ),
            ("isolation", &[("isolation.survived.process", 6.0)], Depends),
            (
                "isolation",
                &[("isolation.whole_program_died.thread", 0.0)],
                Depends,
            ),
            (
                "isolation",
                &[
                    ("isolation.survived.process", 2.0),
                    ("isolation.whole_program_died.thread", 0.0),
                ],
                Refuted,
            ),
            ("race", &[("race.final.unsync", 200_000.0)], Depends),
            ("race", &[("race.final.mutex", 199_999.0)], Refuted),
            ("race", &[("race.final.atomic", 150_000.0)], Refuted),
            (
                "no-shared-memory",
                &[("race.parent_after.process_copy", 100_000.0)],
                Refuted,
            ),
            (
                "multi-core",
                &[("scaling.speedup.process.cores", 1.2)],
                Depends,
            ),
            (
                "multi-core",
                &[
                    ("scaling.speedup.thread.cores", 0.98),
                    ("scaling.speedup.process.cores", 0.9),
                ],
                Refuted,
            ),
            ("multi-core", &[("scaling.cores", 1.0)], Depends),
            (
                "over-threading",
                &[("scaling.oversubscription.thread", 0.8)],
                Confirmed,
            ),
            (
                "over-threading",
                &[("scaling.oversubscription.thread", 1.2)],
                Refuted,
            ),
            (
                "many-waits",
                &[("scaling.io.completion.process.1000", 10e6)],
                Refuted,
            ),
            (
                "many-waits",
                &[("scaling.io.completion.process.1000", 13e6)],
                Depends,
            ),
            (
                "synchronization",
                &[("sync.mutex.uncontended.process", 30.0)],
                Confirmed,
            ),
            (
                "synchronization",
                &[("sync.mutex.uncontended.process", 10.0)],
                Refuted,
            ),
        ];
        for (id, changes, want) in cases {
            assert_eq!(
                verdicts(&perturbed(changes))[*id],
                *want,
                "{id} after {changes:?}"
            );
        }
    }

    #[test]
    fn missing_failed_or_unusable_figures_are_not_measured() {
        // A missing key.
        let mut sections = fixture::all_sections();
        for s in &mut sections {
            s.figures.retain(|f| f.key != "spawn.thread");
        }
        let got = verdicts(&sections);
        assert_eq!(got["creation"], Verdict::NotMeasured);
        assert_eq!(got["switch"], Verdict::Confirmed, "other claims hold");

        // A failed section: its figures do not count, and the evidence says why.
        let mut sections = fixture::all_sections();
        let race = sections.iter_mut().find(|s| s.id == "race").unwrap();
        race.status = Status::Failed {
            error: "fork failed".to_string(),
        };
        let (rows, claims) = judge(&sections);
        for c in claims
            .iter()
            .filter(|c| c.id == "race" || c.id == "no-shared-memory")
        {
            assert_eq!(c.verdict, Verdict::NotMeasured, "{}", c.id);
            assert!(
                c.evidence.contains("race failed: fork failed"),
                "{}",
                c.evidence
            );
        }
        let space = rows.iter().find(|r| r.aspect == "memory space").unwrap();
        assert_eq!(space.verdict, Verdict::NotMeasured);
        assert_eq!(space.thread, None);

        // Not a number, or a zero denominator.
        let got = verdicts(&perturbed(&[("switch.futex.thread.pinned", f64::NAN)]));
        assert_eq!(got["switch"], Verdict::NotMeasured);
        let got = verdicts(&perturbed(&[("spawn.thread", 0.0)]));
        assert_eq!(got["creation"], Verdict::NotMeasured);

        // Nothing ran at all.
        let (rows, claims) = judge(&[]);
        assert!(claims.iter().all(|c| c.verdict == Verdict::NotMeasured));
        assert!(
            rows.iter()
                .all(|r| r.verdict == Verdict::NotMeasured && r.ratio.is_none())
        );
    }

    #[test]
    fn judge_is_pure() {
        let sections = fixture::all_sections();
        assert_eq!(judge(&sections), judge(&sections));
    }
}

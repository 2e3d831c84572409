//! One function per classic claim: its rule, its verdict and the evidence.
//!
//! This file is long because there are many claims: each function is short, one rule each.

use super::keys;
use super::*;

/// Fork against a thread spawn, decided on one matched placement: both figures pinned with
/// their child to the same CPU (their `placement` equal), by [`costs_more_clearly`]. Figures
/// measured elsewhere, or on two different placements, decide nothing. The across-CPU pair,
/// where measured, is shown beside it and does not decide: there two cross-CPU wake-ups per
/// op add to both sides alike.
pub(super) fn creation(f: &Figures) -> Claim {
    let (id, statement) = (
        "creation",
        "process creation costs more than thread creation",
    );
    let keys = [keys::SPAWN_FORK, keys::SPAWN_THREAD];
    let mut c = cost_claim(f, id, statement, keys[0], keys[1], ("fork", "thread spawn"));
    if c.verdict == Verdict::NotMeasured {
        return c;
    }
    let place = |k: &str| f.by_key.get(k).and_then(|fig| fig.placement.clone());
    let matched = match matched_placement(f, keys[0], keys[1]) {
        Ok(p) => p,
        Err(why) => return claim(id, statement, &keys, Verdict::NotMeasured, why),
    };
    c.evidence
        .push_str(&format!(" on one matched placement: {matched}"));
    let cross = [keys::SPAWN_FORK_CROSS_CPU, keys::SPAWN_THREAD_CROSS_CPU];
    if let (Some(fork), Some(thread)) = (f.value(cross[0]), f.value(cross[1])) {
        c.evidence.push_str(&format!(
            "; across CPUs ({}): fork {} vs thread spawn {} ({:.2}×), shown, not deciding",
            place(cross[0]).unwrap_or_else(|| "placement not recorded".to_string()),
            f.shown(cross[0]).unwrap_or_default(),
            f.shown(cross[1]).unwrap_or_default(),
            fork / thread,
        ));
    }
    c
}

/// Decided on the same-CPU pair only: there every hand-off is a context switch. Pairs on two
/// CPUs measure a wake-up (an IPI, an idle exit), which is not what the claim is about.
pub(super) fn switch(f: &Figures) -> Claim {
    let mut c = cost_claim(
        f,
        "switch",
        "a switch between threads is cheaper than a switch between processes",
        keys::SWITCH_FUTEX_PROCESS_PINNED,
        keys::SWITCH_FUTEX_THREAD_PINNED,
        ("process switch", "thread switch"),
    );
    if c.verdict != Verdict::NotMeasured {
        let place = f
            .by_key
            .get(keys::SWITCH_FUTEX_PROCESS_PINNED)
            .and_then(|fig| fig.placement.as_deref())
            .unwrap_or("one CPU");
        c.evidence.push_str(&format!(
            "; matched placement: both partners on {place}, a switch per hand-off (pairs on two \
             CPUs are wake-ups and do not decide it)"
        ));
    }
    c
}

pub(super) fn memory(f: &Figures) -> Claim {
    cost_claim(
        f,
        "memory",
        "processes use more memory per worker than threads",
        keys::MEMORY_OVERHEAD_PER_WORKER_PROCESS_100,
        keys::MEMORY_OVERHEAD_PER_WORKER_THREAD_100,
        (
            "overhead per process (USS - working set + page tables + kernel stack, 100 workers)",
            "per thread",
        ),
    )
}

pub(super) fn synchronization(f: &Figures) -> Claim {
    cost_claim(
        f,
        "synchronization",
        "synchronizing processes costs more than synchronizing threads",
        keys::SYNC_MUTEX_CONTENDED_PROCESS,
        keys::SYNC_FUTEX_MUTEX_CONTENDED_THREAD,
        ("2 processes", "2 threads, the same contended futex mutex"),
    )
}

/// The payload size the communication claim is decided at: far above a cache line and a
/// page, where what a process must do to hand data over (copy it) shows if it costs anything.
const HANDOFF_SIZE: usize = 4 * 1024 * 1024;

/// The placement the communication claim is decided at, as (key suffix, its own two keys):
/// the nearest pair of two CPUs (two workers that talk run side by side) where measured, else
/// the same CPU. Both keys of a placement must be there.
pub(super) fn handoff_pair(f: &Figures) -> Option<(&'static str, &'static str, &'static str)> {
    [
        (
            ".cross_cpu",
            keys::IPC_HANDOFF_PROCESS_SHM_4M_CROSS_CPU,
            keys::IPC_HANDOFF_THREAD_BOX_4M_CROSS_CPU,
        ),
        (
            ".pinned",
            keys::IPC_HANDOFF_PROCESS_SHM_4M_PINNED,
            keys::IPC_HANDOFF_THREAD_BOX_4M_PINNED,
        ),
    ]
    .into_iter()
    .find(|(_, p, t)| f.value(p).is_some() && f.value(t).is_some())
}

/// The ratio figures `ipc.handoff.<name>.<size><suffix>` present, by size: "64 B 1.02×, 4 MiB
/// 2.31×".
fn ratios_by_size(f: &Figures, name: &str, suffix: &str) -> Option<String> {
    let prefix = format!("ipc.handoff.{name}.");
    let mut found: Vec<(usize, f64)> = f
        .by_key
        .iter()
        .filter_map(|(k, fig)| {
            let size = k.strip_prefix(&prefix)?.strip_suffix(suffix)?;
            Some((size.parse().ok()?, fig.value))
        })
        .collect();
    if found.is_empty() {
        return None;
    }
    found.sort_by_key(|(size, _)| *size);
    let parts: Vec<String> = found
        .iter()
        .map(|(size, r)| format!("{} {r:.2}×", crate::units::exact_size(*size)))
        .collect();
    Some(parts.join(", "))
}

/// Handing data over, the claim in its own terms: a thread passes a pointer, a process copies.
/// Decided at 4 MiB on matched placements (the nearest pair of two CPUs, else the same CPU):
/// processes copying into shared memory made beforehand (their cheapest way: one copy, no
/// system call for the data) against threads passing a `Box` through a channel, the consumer
/// reading every cache line on both sides. The copy clearly costs more: confirmed; clearly
/// less: refuted; within the tolerance or the noise: no clear difference. The evidence gives the
/// other sizes (at 64 B the copy is lost in the wake-up), the pipe and serde_json ways, the
/// shared-memory setup counted apart, and the control (one transport, either partner kind).
pub(super) fn communication(f: &Figures) -> Claim {
    let (id, statement) = ("communication", "threads communicate faster than processes");
    let Some((suffix, process_key, thread_key)) = handoff_pair(f) else {
        return not_measured(
            id,
            statement,
            &[
                keys::IPC_HANDOFF_PROCESS_SHM_4M_CROSS_CPU,
                keys::IPC_HANDOFF_THREAD_BOX_4M_CROSS_CPU,
            ],
            f,
        );
    };
    let (verdict, ratio) = costs_more_clearly(f, process_key, thread_key);
    let placed = f
        .by_key
        .get(process_key)
        .and_then(|fig| fig.placement.clone())
        .unwrap_or_else(|| suffix.trim_start_matches('.').replace('_', " "));
    let mut evidence = format!(
        "{} hand-off, {placed}: processes copying into shared memory {} vs threads passing a Box \
         {}: {:.2}×{} ({}); decided by {process_key} / {thread_key}{}",
        crate::units::exact_size(HANDOFF_SIZE),
        f.shown(process_key).unwrap_or_default(),
        f.shown(thread_key).unwrap_or_default(),
        ratio.unwrap_or(f64::NAN),
        ci_words(f.ratio_ci(process_key, thread_key)),
        ratio_words(verdict),
        f.set_aside_words(&[process_key, thread_key]),
    );
    for (name, words) in [
        ("copy_over_pointer", "shm copy / Box by size"),
        ("pipe_over_pointer", "pipe / Box"),
        ("json_over_vec", "serde_json / Vec passed"),
    ] {
        if let Some(by_size) = ratios_by_size(f, name, suffix) {
            evidence.push_str(&format!("; {words}: {by_size}"));
        }
    }
    let setup = format!("ipc.shm_setup.{HANDOFF_SIZE}");
    if let Some(shown) = f.shown(&setup) {
        evidence.push_str(&format!(
            "; shared-memory setup of a {} region, counted apart: {shown}",
            crate::units::exact_size(HANDOFF_SIZE)
        ));
    }
    if let (Some(t), Some(p)) = (
        f.shown("ipc.rtt.shm.thread.64.pinned"),
        f.shown("ipc.rtt.shm.process.64.pinned"),
    ) {
        evidence.push_str(&format!(
            "; control, one transport (64 B shm ring round trip, same CPU): threads {t} vs \
             processes {p}"
        ));
    }
    claim(id, statement, &[process_key, thread_key], verdict, evidence)
}

/// Both halves (process crash contained, thread crash fatal) hold: confirmed; neither: refuted.
pub(super) fn isolation(f: &Figures) -> Claim {
    let (id, statement) = (
        "isolation",
        "a crash in a process leaves the others running, while a crash in a thread takes the whole program down",
    );
    let keys = [
        keys::ISOLATION_FAULTS,
        keys::ISOLATION_SURVIVED_PROCESS,
        keys::ISOLATION_WHOLE_PROGRAM_DIED_THREAD,
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
pub(super) fn race(f: &Figures) -> Claim {
    let (id, statement) = (
        "race",
        "an unsynchronized shared counter loses updates, and locks or atomics fix it",
    );
    let keys = [
        keys::RACE_EXPECTED,
        keys::RACE_FINAL_UNSYNC,
        keys::RACE_FINAL_MUTEX,
        keys::RACE_FINAL_ATOMIC,
        keys::RACE_NS_PER_INC_UNSYNC,
        keys::RACE_NS_PER_INC_MUTEX,
        keys::RACE_NS_PER_INC_ATOMIC,
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

pub(super) fn no_shared_memory(f: &Figures) -> Claim {
    let (id, statement) = ("no-shared-memory", "processes do not share ordinary memory");
    let keys = [keys::RACE_PARENT_AFTER_PROCESS_COPY];
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
pub(super) fn multi_core(f: &Figures) -> Claim {
    let (id, statement) = (
        "multi-core",
        "both processes and threads use many cores for CPU-bound work (no GIL in Rust)",
    );
    let keys = [
        keys::SCALING_CORES,
        keys::SCALING_SPEEDUP_THREAD_CORES,
        keys::SCALING_SPEEDUP_PROCESS_CORES,
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

pub(super) fn over_threading(f: &Figures) -> Claim {
    let (id, statement) = (
        "over-threading",
        "more CPU-bound threads than cores costs throughput (over-threading)",
    );
    let keys = [keys::SCALING_OVERSUBSCRIPTION_THREAD];
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

/// The better of threads and async against processes, for 1 000 concurrent waits: the wait
/// phase alone (all units created and blocked at a gate before it starts), so that the cost of
/// creating them, which the creation claim judges, does not decide this one. The creation phase
/// is shown beside it.
pub(super) fn many_waits(f: &Figures) -> Claim {
    let (id, statement) = (
        "many-waits",
        "threads or async tasks suit many concurrent waits better than processes",
    );
    let keys = [
        keys::SCALING_IO_COMPLETION_PROCESS_1000,
        keys::SCALING_IO_COMPLETION_THREAD_1000,
        keys::SCALING_IO_COMPLETION_ASYNC_1000,
    ];
    let (Some(process), Some(thread), Some(async_task)) =
        (f.value(keys[0]), f.value(keys[1]), f.value(keys[2]))
    else {
        return not_measured(id, statement, &keys, f);
    };
    let placement = match (
        matched_placement(f, keys[0], keys[1]),
        matched_placement(f, keys[0], keys[2]),
    ) {
        (Ok(p), Ok(_)) => p,
        (Err(why), _) | (_, Err(why)) => {
            return claim(id, statement, &keys, Verdict::NotMeasured, why);
        }
    };
    let best = thread.min(async_task);
    let (verdict, ratio) = costs_more(process, best);
    let mut evidence = format!(
        "1 000 concurrent waits (3 × 10 ms each), all units alive at a gate first, from its \
         opening to the last wait's end: processes {}, threads {}, async {}; processes / best \
         = {:.2}× ({}); decided by the wait phase alone, on one matched placement: {placement}",
        format_value(process, Unit::Ns),
        format_value(thread, Unit::Ns),
        format_value(async_task, Unit::Ns),
        ratio.unwrap_or(f64::NAN),
        ratio_words(verdict),
    );
    let create = [
        keys::SCALING_IO_CREATE_PROCESS_1000,
        keys::SCALING_IO_CREATE_THREAD_1000,
        keys::SCALING_IO_CREATE_ASYNC_1000,
    ];
    if let [Some(p), Some(t), Some(a)] = create.map(|k| f.value(k)) {
        evidence.push_str(&format!(
            "; creating them first took processes {}, threads {}, async {} (not deciding)",
            format_value(p, Unit::Ns),
            format_value(t, Unit::Ns),
            format_value(a, Unit::Ns),
        ));
    }
    claim(id, statement, &keys, verdict, evidence)
}

/// The job on the UI thread misses at least [`UI_DROPS`] of the deadlines it lasts, and on a
/// worker thread and in a worker process at most [`UI_KEEPS`] of them (one frame at least is
/// forgiven): confirmed. No freeze on the UI thread, or neither worker keeping the frames:
/// refuted. One worker keeping them and not the other: depends.
pub(super) fn ui(f: &Figures) -> Claim {
    let (id, statement) = (
        "ui",
        "a CPU-heavy job on the UI thread drops frames; moved to a worker thread or process it does not",
    );
    let keys = [
        keys::UI_PERIOD,
        keys::UI_JOB_UI_THREAD,
        keys::UI_MISSED_UI_THREAD,
        keys::UI_MISSED_WORKER_THREAD,
        keys::UI_MISSED_WORKER_PROCESS,
    ];
    let [
        Some(period),
        Some(job),
        Some(inline),
        Some(thread),
        Some(process),
    ] = keys.map(|k| f.value(k))
    else {
        return not_measured(id, statement, &keys, f);
    };
    if period <= 0.0 {
        return not_measured(id, statement, &keys, f);
    }
    // The deadlines the job lasts when it runs on the UI thread.
    let deadlines = job / period;
    let drops = inline >= 1.0 && inline >= UI_DROPS * deadlines;
    let keeps = |missed: f64| missed <= (UI_KEEPS * deadlines).max(1.0);
    let verdict = match (drops, keeps(thread), keeps(process)) {
        (true, true, true) => Verdict::Confirmed,
        (false, _, _) | (true, false, false) => Verdict::Refuted,
        _ => Verdict::Depends,
    };
    let evidence = format!(
        "a job of {} ({:.0} frames' worth) missed {} frames per run on the UI thread, {} on a \
         worker thread, {} in a worker process; the UI thread drops frames when it misses at \
         least {:.0} % of them, a worker keeps them when it misses at most {:.0} % (at least 1 \
         forgiven)",
        format_value(job, Unit::Ns),
        deadlines,
        count(inline),
        count(thread),
        count(process),
        UI_DROPS * 100.0,
        UI_KEEPS * 100.0,
    );
    claim(id, statement, &keys, verdict, evidence)
}

/// The hanging task held at least half its ballast; a thread pool still holds half of it once
/// it served again, and a process pool's replacement worker holds less than half: confirmed;
/// neither: refuted; one of the two: depends.
pub(super) fn leaks(f: &Figures) -> Claim {
    let (id, statement) = (
        "leaks",
        "a timed-out thread keeps its memory until its task returns; a killed worker process gives it back",
    );
    let keys = [
        keys::LEAKS_BALLAST,
        keys::LEAKS_TIMEOUT_PROCESS_HELD,
        keys::LEAKS_TIMEOUT_PROCESS_AFTER,
        keys::LEAKS_TIMEOUT_THREAD_AFTER,
    ];
    let [
        Some(ballast),
        Some(held),
        Some(process_after),
        Some(thread_after),
    ] = keys.map(|k| f.value(k))
    else {
        return not_measured(id, statement, &keys, f);
    };
    if ballast <= 0.0 {
        return not_measured(id, statement, &keys, f);
    }
    let half = ballast / 2.0;
    let thread_keeps = thread_after >= half;
    let process_reclaims = held >= half && process_after < half;
    let verdict = match (thread_keeps, process_reclaims) {
        (true, true) => Verdict::Confirmed,
        (false, false) => Verdict::Refuted,
        _ => Verdict::Depends,
    };
    let evidence = format!(
        "a task hanging with a {} ballast: the thread pool still held {} once it served again; \
         the process worker held {} while it hung and its replacement {}; decided against half \
         the ballast",
        format_value(ballast, Unit::Bytes),
        format_value(thread_after, Unit::Bytes),
        format_value(held, Unit::Bytes),
        format_value(process_after, Unit::Bytes),
    );
    claim(id, statement, &keys, verdict, evidence)
}

/// Every attack tried in the sandboxed worker was stopped there (`sandbox.stopped.sandboxed`
/// = `sandbox.tried.sandboxed`, the section's "N of N stopped"), and the plain worker showed
/// attacks working (the comparison is the point): confirmed. The sandbox let through as many
/// as a plain worker: refuted. Some got through, fewer than in a plain worker, or nothing
/// worked even in a plain worker (nothing shown to stop): depends. No attack tried in a
/// sandboxed worker: not measured.
pub(super) fn security(f: &Figures) -> Claim {
    let (id, statement) = (
        "security",
        "a sandboxed worker process stops what a compromised task can do on a thread or in a plain process",
    );
    let keys = [
        keys::SANDBOX_TRIED_SANDBOXED,
        keys::SANDBOX_STOPPED_SANDBOXED,
        keys::SANDBOX_WORKED_PROCESS,
        keys::SANDBOX_WORKED_THREAD,
    ];
    let [Some(tried), Some(stopped), Some(process), Some(thread)] = keys.map(|k| f.value(k)) else {
        return not_measured(id, statement, &keys, f);
    };
    if tried < 1.0 {
        return claim(
            id,
            statement,
            &keys,
            Verdict::NotMeasured,
            "no attack was tried in a sandboxed worker".to_string(),
        );
    }
    let through = tried - stopped;
    let verdict = if through > 0.0 && through >= process {
        Verdict::Refuted
    } else if through == 0.0 && process >= 1.0 {
        Verdict::Confirmed
    } else {
        Verdict::Depends
    };
    let evidence = format!(
        "{} of {} attacks tried in a Sandbox::compute() worker stopped ({} got through); {} \
         worked in a plain worker process and {} on a thread; decided by \
         sandbox.stopped.sandboxed = sandbox.tried.sandboxed and sandbox.worked.process > 0",
        count(stopped),
        count(tried),
        count(through),
        count(process),
        count(thread),
    );
    claim(id, statement, &keys, verdict, evidence)
}

/// The prefork server served a new connection after a handler crash, and the threaded and
/// async servers did not: confirmed. The prefork server stopped serving: refuted. Prefork
/// kept serving and a threaded or async server did too: depends.
pub(super) fn server_crash(f: &Figures) -> Claim {
    let (id, statement) = (
        "server-crash",
        "prefork servers survive a handler crash; threaded die",
    );
    let keys = [
        keys::SERVERS_CRASH_KEPT_SERVING_PREFORK,
        keys::SERVERS_CRASH_KEPT_SERVING_THREADED,
        keys::SERVERS_CRASH_KEPT_SERVING_ASYNC,
    ];
    let [Some(prefork), Some(threaded), Some(async_task)] = keys.map(|k| f.value(k)) else {
        return not_measured(id, statement, &keys, f);
    };
    let kept = |v: f64| v >= 1.0;
    let verdict = match (kept(prefork), kept(threaded), kept(async_task)) {
        (false, _, _) => Verdict::Refuted,
        (true, false, false) => Verdict::Confirmed,
        _ => Verdict::Depends,
    };
    let words = |v: f64| {
        if kept(v) {
            "kept serving"
        } else {
            "stopped serving"
        }
    };
    let lost = |m: &str| {
        f.value(&format!("servers.crash.lost.{m}"))
            .map_or(String::new(), |v| {
                format!(", {} requests of the others lost", count(v))
            })
    };
    let evidence = format!(
        "after one request segfaulted its handler under 16 connections: prefork {}{}, threaded \
         {}{}, async {}{} (the threaded and async servers die whole: one process); decided by servers.crash.kept_serving.* (a new connection served \
         after the crash)",
        words(prefork),
        lost("prefork"),
        words(threaded),
        lost("threaded"),
        words(async_task),
        lost("async"),
    );
    claim(id, statement, &keys, verdict, evidence)
}

/// The threaded server still holds at least half of what the handler leaked, and the prefork
/// server, whose workers are recycled, less than half: confirmed; neither: refuted; one of the
/// two: depends.
pub(super) fn server_leak(f: &Figures) -> Claim {
    let (id, statement) = (
        "server-leak",
        "recycled prefork workers give leaked memory back",
    );
    let keys = [
        keys::SERVERS_LEAK_LEAKED,
        keys::SERVERS_LEAK_HELD_PREFORK,
        keys::SERVERS_LEAK_HELD_THREADED,
    ];
    let [Some(leaked), Some(prefork), Some(threaded)] = keys.map(|k| f.value(k)) else {
        return not_measured(id, statement, &keys, f);
    };
    if leaked <= 0.0 {
        return not_measured(id, statement, &keys, f);
    }
    let half = leaked / 2.0;
    let verdict = match (prefork < half, threaded >= half) {
        (true, true) => Verdict::Confirmed,
        (false, false) => Verdict::Refuted,
        _ => Verdict::Depends,
    };
    let evidence = format!(
        "the handler leaked {} in all; the prefork server (workers recycled) still held {}, the \
         threaded one {}; decided against half the leak",
        format_value(leaked, Unit::Bytes),
        format_value(prefork, Unit::Bytes),
        format_value(threaded, Unit::Bytes),
    );
    claim(id, statement, &keys, verdict, evidence)
}

/// Prefork and threaded requests/s for the CPU-bound handler within [`SERVER_PARITY`] of each
/// other: confirmed. Further apart with their run-to-run ranges apart: refuted; further apart
/// but the ranges overlap: no clear difference.
pub(super) fn server_throughput(f: &Figures) -> Claim {
    let (id, statement) = (
        "server-throughput",
        "prefork and threaded servers serve at the same rate",
    );
    let keys = [
        keys::SERVERS_RPS_PREFORK_CPU_16,
        keys::SERVERS_RPS_THREADED_CPU_16,
    ];
    let (Some(prefork), Some(threaded)) = (f.value(keys[0]), f.value(keys[1])) else {
        return not_measured(id, statement, &keys, f);
    };
    let ratio = prefork / threaded;
    if !(ratio.is_finite() && ratio > 0.0) {
        return not_measured(id, statement, &keys, f);
    }
    let overlap = match (f.noise_range(keys[0]), f.noise_range(keys[1])) {
        (Some(a), Some(b)) => a.0 <= b.1 && b.0 <= a.1,
        _ => false,
    };
    let verdict = if ratio.max(1.0 / ratio) <= 1.0 + SERVER_PARITY {
        Verdict::Confirmed
    } else if overlap {
        Verdict::NoClearDifference
    } else {
        Verdict::Refuted
    };
    let evidence = format!(
        "CPU-bound /cpu handler (~50 µs), 16 keep-alive connections: prefork {} vs threaded {} ({ratio:.2}×); the \
         same rate within ±{:.0} %; decided by servers.rps.prefork.cpu.16 / \
         servers.rps.threaded.cpu.16",
        f.shown(keys[0]).unwrap_or_default(),
        f.shown(keys[1]).unwrap_or_default(),
        SERVER_PARITY * 100.0,
    );
    claim(id, statement, &keys, verdict, evidence)
}

/// A process in fresh namespaces against a plain forked one, both start to first result on
/// one matched placement (their `placement` equal), by [`costs_more_clearly`]: the ratio the
/// headline prints. The thread rung and the control (fork + `_exit` + `waitpid` in the same
/// parent, the op of `spawn.fork`) are shown for scale and do not decide.
pub(super) fn containers(f: &Figures) -> Claim {
    let (id, statement) = (
        "containers",
        "fresh namespaces cost more to start than a plain fork",
    );
    let keys = [
        keys::CONTAINERS_START_NAMESPACES,
        keys::CONTAINERS_START_FORK,
    ];
    if keys.iter().any(|k| f.value(k).is_none()) {
        return not_measured(id, statement, &keys, f);
    }
    let placement = match matched_placement(f, keys[0], keys[1]) {
        Ok(p) => p,
        Err(why) => return claim(id, statement, &keys, Verdict::NotMeasured, why),
    };
    let (verdict, ratio) = costs_more_clearly(f, keys[0], keys[1]);
    let mut evidence = format!(
        "start to first result: in fresh namespaces {} vs a plain fork {}: {:.2}× ({}); decided \
         by {} / {} on one matched placement: {placement}",
        f.shown(keys[0]).unwrap_or_default(),
        f.shown(keys[1]).unwrap_or_default(),
        ratio.unwrap_or(f64::NAN),
        ratio_words(verdict),
        keys[0],
        keys[1],
    );
    for (key, what) in [
        (keys::CONTAINERS_START_THREAD, "a thread"),
        (
            keys::CONTAINERS_CONTROL_FORK_EXIT,
            "fork + _exit + waitpid in the same parent (the op of spawn.fork)",
        ),
    ] {
        if let Some(shown) = f.shown(key) {
            evidence.push_str(&format!("; {what} {shown}"));
        }
    }
    // The same op measured by spawn, earlier in the run: a gap to the control is the moment's
    // (the parent, the load), not the ladder's method.
    if let (Some(control), Some(spawn)) = (
        f.value(keys::CONTAINERS_CONTROL_FORK_EXIT),
        f.value(keys::SPAWN_FORK),
    ) {
        evidence.push_str(&format!(
            ", against spawn.fork {} for the same op earlier in the run ({:.2}×)",
            f.shown(keys::SPAWN_FORK).unwrap_or_default(),
            control / spawn,
        ));
    }
    claim(id, statement, &keys, verdict, evidence)
}

/// The placement both figures were measured on, when it is one and recorded; else why the
/// pair cannot decide a verdict.
fn matched_placement(f: &Figures, a: &str, b: &str) -> Result<String, String> {
    let place = |k: &str| f.by_key.get(k).and_then(|fig| fig.placement.clone());
    match (place(a), place(b)) {
        (Some(x), Some(y)) if x == y => Ok(x),
        (x, y) => Err(format!(
            "not on one matched placement: {a} {}, {b} {}; a verdict needs both measured on \
             the same placement",
            x.as_deref().unwrap_or("placement not recorded"),
            y.as_deref().unwrap_or("placement not recorded"),
        )),
    }
}

/// The many-run race: the fixes exact in every run and the unsynchronized counter losing a
/// different number of updates from run to run (2 threads): confirmed. A fix inexact in any
/// run, or every lossy run losing the same number: refuted. No run lost anything: depends.
pub(super) fn race_every_run(f: &Figures) -> Claim {
    let (id, statement) = (
        "race-every-run",
        "lost updates vary by run; the fixes never lose one",
    );
    let keys = [
        keys::RACE_DIST_RUNS,
        keys::RACE_DIST_THREADS_2_LOSSY_RUNS,
        keys::RACE_DIST_THREADS_2_LOST_MIN,
        keys::RACE_DIST_THREADS_2_LOST_MAX,
        keys::RACE_RUNS_EXACT_MUTEX,
        keys::RACE_RUNS_EXACT_ATOMIC,
    ];
    let [
        Some(runs),
        Some(lossy),
        Some(min),
        Some(max),
        Some(mutex),
        Some(atomic),
    ] = keys.map(|k| f.value(k))
    else {
        return not_measured(id, statement, &keys, f);
    };
    if runs < 1.0 {
        return not_measured(id, statement, &keys, f);
    }
    let verdict = if mutex < runs || atomic < runs {
        Verdict::Refuted
    } else if lossy < 1.0 {
        Verdict::Depends
    } else if max > min {
        Verdict::Confirmed
    } else {
        Verdict::Refuted
    };
    let evidence = format!(
        "2 threads, {} runs: {} of them lost updates, from {} to {} per run; Mutex exact in {}, \
         fetch_add in {}; decided by race.runs_exact.* = race.dist.runs and \
         race.dist.threads_2.lost_max > lost_min",
        count(runs),
        count(lossy),
        count(min),
        count(max),
        count(mutex),
        count(atomic),
    );
    claim(id, statement, &keys, verdict, evidence)
}

/// With both threads on one CPU, a run loses updates only when a preemption falls between a
/// load and its store: at most half as many runs lose as with the threads on two CPUs (which
/// must lose in some run): confirmed; as many or more: refuted; one CPU only, or no lossy run
/// on two CPUs: depends.
pub(super) fn race_one_cpu(f: &Figures) -> Claim {
    let (id, statement) = (
        "race-one-cpu",
        "pinned to one CPU, far fewer runs lose updates",
    );
    let keys = [
        keys::RACE_CPUS,
        keys::RACE_DIST_THREADS_2_LOSSY_RUNS,
        keys::RACE_DIST_ONE_CPU_LOSSY_RUNS,
    ];
    let [Some(cores), Some(two), Some(one)] = keys.map(|k| f.value(k)) else {
        return not_measured(id, statement, &keys, f);
    };
    let verdict = if cores < 2.0 || two < 1.0 {
        Verdict::Depends
    } else if one <= two / 2.0 {
        Verdict::Confirmed
    } else if one >= two {
        Verdict::Refuted
    } else {
        Verdict::NoClearDifference
    };
    let evidence = format!(
        "runs that lost updates: {} with the 2 threads on 2 CPUs, {} with both pinned to one \
         CPU ({} CPUs allowed here); confirmed when one CPU loses in at most half as many runs",
        count(two),
        count(one),
        count(cores),
    );
    claim(id, statement, &keys, verdict, evidence)
}

/// The placements the IPC experiment measures the pool round trips at: key suffix and words.
const POOL_PLACEMENTS: [(&str, &str); 2] = [(".pinned", "pinned"), ("", "unpinned")];

/// A remote worker's pool round trip at most [`REMOTE_OVER_NETWORK`] × a raw TCP round trip
/// between two processes, in every placement measured: confirmed (the pool adds little to the
/// network). Above it in every placement: refuted; in one and not the other: depends. The
/// evidence sets the remote worker beside a local worker process and a thread, so that the
/// cost is seen to be the network's, not the pool's.
///
/// No headline row: a row takes three lines of the terminal's short form at 80 columns, and
/// that form must stay on one screen.
pub(super) fn distributed(f: &Figures) -> Claim {
    let (id, statement) = (
        "distributed",
        "a worker process runs on another host for one round trip",
    );
    let deciding = |suffix: &str| format!("ipc.pool_rtt.remote_over_tcp{suffix}");
    let measured: Vec<(&str, &str, f64)> = POOL_PLACEMENTS
        .iter()
        .filter_map(|&(suffix, words)| Some((suffix, words, f.value(&deciding(suffix))?)))
        .collect();
    if measured.is_empty() || measured.iter().any(|m| m.2 <= 0.0) {
        let keys = POOL_PLACEMENTS.map(|(suffix, _)| deciding(suffix));
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        return not_measured(id, statement, &keys, f);
    }
    let within = |r: f64| r <= REMOTE_OVER_NETWORK;
    let verdict = if measured.iter().all(|m| within(m.2)) {
        Verdict::Confirmed
    } else if measured.iter().any(|m| within(m.2)) {
        Verdict::Depends
    } else {
        Verdict::Refuted
    };
    let mut keys: Vec<String> = Vec::new();
    let mut parts: Vec<String> = Vec::new();
    for &(suffix, words, over_tcp) in &measured {
        let remote = format!("ipc.pool_rtt.remote{suffix}");
        keys.push(deciding(suffix));
        let mut part = format!(
            "{words}: {} a task, {over_tcp:.2}× a raw TCP 64 B round trip between processes",
            f.shown(&remote).unwrap_or_else(|| "-".to_string()),
        );
        if f.value(&remote).is_some() {
            keys.push(remote);
        }
        // The same run and placement: the lab's own ratios, remote / the local worker.
        for (other, what) in [
            ("process", "a local worker process"),
            ("thread", "a thread"),
        ] {
            let key = format!("ipc.pool_rtt.remote_over_{other}{suffix}");
            if let Some(r) = f.value(&key) {
                part.push_str(&format!(", {r:.1}× {what}"));
                keys.push(key);
            }
        }
        parts.push(part);
    }
    let mut evidence = format!(
        "pool submit().join() round trip to a remote worker (an agent on this host over \
         loopback TCP): {}; the pool adds little to the network when it is at most {:.1}× the \
         raw round trip in every placement measured; a real network adds its own round-trip \
         time to each task, which loopback does not measure",
        parts.join("; "),
        REMOTE_OVER_NETWORK,
    );
    if let (Some(remote), Some(local)) = (
        f.value(keys::SPAWN_POOL_REMOTE),
        f.value(keys::SPAWN_POOL_WORKER),
    ) {
        evidence.push_str(&format!(
            "; a one-worker pool built, run once and dropped: remote {}, local forked {} ({:.1}×)",
            format_value(remote, Unit::Ns),
            format_value(local, Unit::Ns),
            remote / local,
        ));
        keys.extend([keys::SPAWN_POOL_REMOTE, keys::SPAWN_POOL_WORKER].map(String::from));
    }
    let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
    claim(id, statement, &keys, verdict, evidence)
}

pub(super) fn find<'c>(claims: &'c [Claim], id: &str) -> &'c Claim {
    claims
        .iter()
        .find(|c| c.id == id)
        .expect("judge builds every claim the headline refers to")
}

//! The headline table: one row per aspect, with the verdict of the claim it stands for.

use super::keys;
use super::*;

/// One headline row: the cells come from figures, the verdict from the claim `claim_id`.
struct Row<'a> {
    aspect: &'a str,
    claim: &'a str,
    claim_id: &'a str,
    thread: Option<String>,
    process: Option<String>,
    async_task: Option<String>,
    /// (numerator, denominator) keys of the ratio column: process / thread.
    ratio: Option<(String, String)>,
    /// The figures behind the thread, process and async cells, for their run-to-run spread.
    keys: [Option<String>; 3],
}

/// The keys of a row's thread, process and async cells.
fn keys(thread: &str, process: &str, async_task: Option<&str>) -> [Option<String>; 3] {
    [
        Some(thread.to_string()),
        Some(process.to_string()),
        async_task.map(str::to_string),
    ]
}

/// The headline table, one row per aspect in report order, each with its claim's verdict.
pub(super) fn headline(f: &Figures, claims: &[Claim]) -> Vec<HeadlineRow> {
    let rows = [
        memory_space_row(f),
        communication_row(f),
        figure_row(
            f,
            (
                "creation overhead",
                "creating a process costs more",
                "creation",
            ),
            keys::SPAWN_THREAD,
            keys::SPAWN_FORK,
            Some(keys::SPAWN_ASYNC),
        ),
        figure_row(
            f,
            (
                "context switching",
                "switching between threads is faster",
                "switch",
            ),
            keys::SWITCH_FUTEX_THREAD_PINNED,
            keys::SWITCH_FUTEX_PROCESS_PINNED,
            None,
        ),
        isolation_row(f),
        security_row(f),
        figure_row(
            f,
            (
                "resource usage",
                "a process uses more memory per worker",
                "memory",
            ),
            keys::MEMORY_OVERHEAD_PER_WORKER_THREAD_100,
            keys::MEMORY_OVERHEAD_PER_WORKER_PROCESS_100,
            Some(keys::MEMORY_PER_TASK_ASYNC_10000),
        ),
        multi_core_row(f),
        figure_row(
            f,
            (
                "many concurrent waits",
                "threads or async suit many waits better",
                "many-waits",
            ),
            keys::SCALING_IO_COMPLETION_THREAD_1000,
            keys::SCALING_IO_COMPLETION_PROCESS_1000,
            Some(keys::SCALING_IO_COMPLETION_ASYNC_1000),
        ),
        figure_row(
            f,
            (
                "synchronization",
                "synchronizing processes costs more",
                "synchronization",
            ),
            keys::SYNC_FUTEX_MUTEX_CONTENDED_THREAD,
            keys::SYNC_MUTEX_CONTENDED_PROCESS,
            None,
        ),
        server_crash_row(f),
        ladder_row(f),
    ];
    rows.into_iter().map(|row| row.judged(f, claims)).collect()
}

/// An aspect's words: what the row is about, the claim it stands for, and that claim's id.
type Aspect<'a> = (&'a str, &'a str, &'a str);

/// A row whose cells are figures: the thread, process and (where measured) async figure, and
/// the process / thread ratio of the first two.
fn figure_row<'a>(
    f: &Figures,
    (aspect, claim, claim_id): Aspect<'a>,
    thread: &'a str,
    process: &'a str,
    async_task: Option<&'a str>,
) -> Row<'a> {
    Row {
        aspect,
        claim,
        claim_id,
        thread: f.shown_with_rounds(thread),
        process: f.shown_with_rounds(process),
        async_task: async_task.and_then(|k| f.shown_with_rounds(k)),
        ratio: Some((process.to_string(), thread.to_string())),
        keys: keys(thread, process, async_task),
    }
}

/// A row whose cells are words, with no ratio.
fn text_row<'a>(
    (aspect, claim, claim_id): Aspect<'a>,
    thread: Option<String>,
    process: Option<String>,
    async_task: Option<String>,
) -> Row<'a> {
    Row {
        aspect,
        claim,
        claim_id,
        thread,
        process,
        async_task,
        ratio: None,
        keys: [None, None, None],
    }
}

/// Memory space: the updates an unsynchronized shared counter lost, against a process's
/// separate copy.
fn memory_space_row(f: &Figures) -> Row<'static> {
    let thread = match (
        f.value(keys::RACE_EXPECTED),
        f.value(keys::RACE_FINAL_UNSYNC),
    ) {
        (Some(e), Some(u)) => Some(format!("shared: {} of {} lost", count(e - u), count(e))),
        _ => None,
    };
    let process = f
        .value(keys::RACE_PARENT_AFTER_PROCESS_COPY)
        .map(|v| format!("separate: parent saw {}", count(v)));
    text_row(
        (
            "memory space",
            "processes do not share ordinary memory",
            "no-shared-memory",
        ),
        thread,
        process,
        None,
    )
}

/// Communication: the pair the claim is decided on, a 4 MiB hand-off at matched placement:
/// threads passing a `Box`, processes copying into shared memory.
fn communication_row(f: &Figures) -> Row<'static> {
    let pair = handoff_pair(f);
    let shown = |key: Option<&str>, via: &str| {
        key.and_then(|k| Some(format!("{} ({via})", f.shown_with_rounds(k)?)))
    };
    let process = pair.map(|(_, p, _)| p);
    let thread = pair.map(|(_, _, t)| t);
    Row {
        aspect: "communication",
        claim: "threads communicate faster",
        claim_id: "communication",
        thread: shown(thread, "Box"),
        process: shown(process, "shm copy"),
        async_task: None,
        ratio: pair.map(|(_, p, t)| (p.to_string(), t.to_string())),
        keys: [
            thread.map(str::to_string),
            process.map(str::to_string),
            None,
        ],
    }
}

/// Fault isolation: the fault kinds contained, per mode.
fn isolation_row(f: &Figures) -> Row<'static> {
    let survived = |key: &str| match (f.value(key), f.value(keys::ISOLATION_FAULTS)) {
        (Some(s), Some(n)) => Some(format!("{}/{} contained", count(s), count(n))),
        _ => None,
    };
    text_row(
        (
            "fault isolation",
            "a crashing process does not take the others down",
            "isolation",
        ),
        survived(keys::ISOLATION_SURVIVED_THREAD),
        survived(keys::ISOLATION_SURVIVED_PROCESS),
        None,
    )
}

/// Security boundary: the attacks that worked on a thread, against those a sandboxed worker
/// stopped (what worked in a plain one is in the claim's evidence). Terse: the answer stays
/// on one screen at 80 columns.
fn security_row(f: &Figures) -> Row<'static> {
    let thread = match (
        f.value(keys::SANDBOX_WORKED_THREAD),
        f.value(keys::SANDBOX_TRIED_THREAD),
    ) {
        (Some(w), Some(n)) => Some(format!("{}/{} worked", count(w), count(n))),
        _ => None,
    };
    let process = match (
        f.value(keys::SANDBOX_STOPPED_SANDBOXED),
        f.value(keys::SANDBOX_TRIED_SANDBOXED),
    ) {
        (Some(s), Some(n)) => Some(format!("{} of {} stopped", count(s), count(n))),
        _ => None,
    };
    text_row(
        (
            "security boundary",
            "a sandboxed process stops a compromised task",
            "security",
        ),
        thread,
        process,
        None,
    )
}

/// Multi-core use: each kind's speed-up at the CPU count, with that count.
fn multi_core_row(f: &Figures) -> Row<'static> {
    let on_cores = |key: &str| {
        f.shown_with_rounds(key)
            .zip(f.value(keys::SCALING_CORES).map(count))
            .map(|(s, c)| format!("{s} on {c} cores"))
    };
    Row {
        thread: on_cores(keys::SCALING_SPEEDUP_THREAD_CORES),
        process: on_cores(keys::SCALING_SPEEDUP_PROCESS_CORES),
        ..figure_row(
            f,
            (
                "multi-core use",
                "both use many cores (no GIL)",
                "multi-core",
            ),
            keys::SCALING_SPEEDUP_THREAD_CORES,
            keys::SCALING_SPEEDUP_PROCESS_CORES,
            None,
        )
    }
}

/// The isolation ladder: the pair its claim is about, a plain fork (in the thread column, the
/// cheaper side, named so) against a process in fresh namespaces (the claim's words name it),
/// and their ratio: namespaces / fork, not process / thread. Terse: the answer stays on one
/// screen at 80 columns.
fn ladder_row(f: &Figures) -> Row<'static> {
    Row {
        thread: f
            .shown_with_rounds(keys::CONTAINERS_START_FORK)
            .map(|s| format!("fork {s}")),
        ..figure_row(
            f,
            (
                "isolation ladder",
                "fresh namespaces cost more to start",
                "containers",
            ),
            keys::CONTAINERS_START_FORK,
            keys::CONTAINERS_START_NAMESPACES,
            None,
        )
    }
}

/// Server crash: whether each server model kept serving after a handler crashed.
fn server_crash_row(f: &Figures) -> Row<'static> {
    let crash = |m: &str| {
        let kept = f.value(&format!("servers.crash.kept_serving.{m}"))?;
        Some(
            if kept >= 1.0 {
                "kept serving"
            } else {
                "went down"
            }
            .to_string(),
        )
    };
    text_row(
        (
            "server crash",
            "a prefork server keeps serving; a threaded one dies",
            "server-crash",
        ),
        crash("threaded"),
        crash("prefork"),
        crash("async"),
    )
}

impl Row<'_> {
    /// The row as the report shows it: the ratio computed, the claim's verdict and deciding
    /// figures, and the run-to-run spread of each cell's figure.
    fn judged(self, f: &Figures, claims: &[Claim]) -> HeadlineRow {
        let claim = find(claims, self.claim_id);
        let ratio = self
            .ratio
            .as_ref()
            .and_then(|(p, t)| Some(f.value(p)? / f.value(t)?))
            .filter(|r| r.is_finite());
        let ratio_ci = self
            .ratio
            .as_ref()
            .filter(|_| ratio.is_some())
            .and_then(|(p, t)| f.ratio_ci(p, t));
        let rounds = |i: usize| self.keys[i].as_deref().and_then(|k| f.rounds(k)).cloned();
        HeadlineRow {
            aspect: self.aspect.to_string(),
            thread: self.thread,
            process: self.process,
            async_task: self.async_task,
            ratio,
            ratio_ci,
            claim: self.claim.to_string(),
            verdict: claim.verdict,
            deciding: claim.figure_keys.join(", "),
            thread_rounds: rounds(0),
            process_rounds: rounds(1),
            async_rounds: rounds(2),
        }
    }
}

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
    ratio: Option<(&'a str, &'a str)>,
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

pub(super) fn headline(f: &Figures, claims: &[Claim]) -> Vec<HeadlineRow> {
    let count_of = |key: &str| f.value(key).map(count);
    let memory_space = {
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
        (thread, process)
    };
    let survived = |mode: &str| match (
        f.value(&format!("isolation.survived.{mode}")),
        f.value(keys::ISOLATION_FAULTS),
    ) {
        (Some(s), Some(n)) => Some(format!("{}/{} contained", count(s), count(n))),
        _ => None,
    };
    let worked = |place: &str| match (
        f.value(&format!("sandbox.worked.{place}")),
        f.value(&format!("sandbox.tried.{place}")),
    ) {
        (Some(w), Some(n)) => Some(format!("{}/{}", count(w), count(n))),
        _ => None,
    };
    // Terse: the answer stays on one screen at 80 columns.
    let security_thread = worked("thread").map(|t| format!("{t} worked"));
    // The sandboxed worker's count (what worked in a plain one is in the claim's evidence).
    let security_process = match (
        f.value(keys::SANDBOX_STOPPED_SANDBOXED),
        f.value(keys::SANDBOX_TRIED_SANDBOXED),
    ) {
        (Some(s), Some(n)) => Some(format!("{} of {} stopped", count(s), count(n))),
        _ => None,
    };
    let io = |mode: &str| f.shown_with_rounds(&format!("scaling.io.completion.{mode}.1000"));
    // Like with like: each kind's fastest transport (the evidence pairs same transports).
    let fastest_thread = fastest(f, "thread");
    let fastest_process = fastest(f, "process");
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
    let rows = [
        Row {
            aspect: "memory space",
            claim: "processes do not share ordinary memory",
            claim_id: "no-shared-memory",
            thread: memory_space.0,
            process: memory_space.1,
            async_task: None,
            ratio: None,
            keys: [None, None, None],
        },
        Row {
            aspect: "communication",
            claim: "threads communicate faster",
            claim_id: "communication",
            thread: fastest_thread
                .as_ref()
                .and_then(|(k, via, _)| Some(format!("{} ({via})", f.shown_with_rounds(k)?))),
            process: fastest_process
                .as_ref()
                .and_then(|(k, via, _)| Some(format!("{} ({via})", f.shown_with_rounds(k)?))),
            async_task: None,
            ratio: fastest_process
                .as_ref()
                .zip(fastest_thread.as_ref())
                .map(|(p, t)| (p.0.as_str(), t.0.as_str())),
            keys: [
                fastest_thread.as_ref().map(|t| t.0.clone()),
                fastest_process.as_ref().map(|p| p.0.clone()),
                None,
            ],
        },
        Row {
            aspect: "creation overhead",
            claim: "creating a process costs more",
            claim_id: "creation",
            thread: f.shown_with_rounds(keys::SPAWN_THREAD),
            process: f.shown_with_rounds(keys::SPAWN_FORK),
            async_task: f.shown_with_rounds(keys::SPAWN_ASYNC),
            ratio: Some((keys::SPAWN_FORK, keys::SPAWN_THREAD)),
            keys: keys(
                keys::SPAWN_THREAD,
                keys::SPAWN_FORK,
                Some(keys::SPAWN_ASYNC),
            ),
        },
        Row {
            aspect: "context switching",
            claim: "switching between threads is faster",
            claim_id: "switch",
            thread: f.shown_with_rounds(keys::SWITCH_FUTEX_THREAD_PINNED),
            process: f.shown_with_rounds(keys::SWITCH_FUTEX_PROCESS_PINNED),
            async_task: None,
            ratio: Some((
                keys::SWITCH_FUTEX_PROCESS_PINNED,
                keys::SWITCH_FUTEX_THREAD_PINNED,
            )),
            keys: keys(
                keys::SWITCH_FUTEX_THREAD_PINNED,
                keys::SWITCH_FUTEX_PROCESS_PINNED,
                None,
            ),
        },
        Row {
            aspect: "fault isolation",
            claim: "a crashing process does not take the others down",
            claim_id: "isolation",
            thread: survived("thread"),
            process: survived("process"),
            async_task: None,
            ratio: None,
            keys: [None, None, None],
        },
        Row {
            aspect: "security boundary",
            claim: "a sandboxed process stops a compromised task",
            claim_id: "security",
            thread: security_thread,
            process: security_process,
            async_task: None,
            ratio: None,
            keys: [None, None, None],
        },
        Row {
            aspect: "resource usage",
            claim: "a process uses more memory per worker",
            claim_id: "memory",
            thread: f.shown_with_rounds(keys::MEMORY_USS_PER_WORKER_THREAD_10),
            process: f.shown_with_rounds(keys::MEMORY_USS_PER_WORKER_PROCESS_10),
            async_task: f.shown_with_rounds(keys::MEMORY_PER_TASK_ASYNC_10000),
            ratio: Some((
                keys::MEMORY_USS_PER_WORKER_PROCESS_10,
                keys::MEMORY_USS_PER_WORKER_THREAD_10,
            )),
            keys: keys(
                keys::MEMORY_USS_PER_WORKER_THREAD_10,
                keys::MEMORY_USS_PER_WORKER_PROCESS_10,
                Some(keys::MEMORY_PER_TASK_ASYNC_10000),
            ),
        },
        Row {
            aspect: "multi-core use",
            claim: "both use many cores (no GIL)",
            claim_id: "multi-core",
            thread: f
                .shown_with_rounds(keys::SCALING_SPEEDUP_THREAD_CORES)
                .zip(count_of(keys::SCALING_CORES))
                .map(|(s, c)| format!("{s} on {c} cores")),
            process: f
                .shown_with_rounds(keys::SCALING_SPEEDUP_PROCESS_CORES)
                .zip(count_of(keys::SCALING_CORES))
                .map(|(s, c)| format!("{s} on {c} cores")),
            async_task: None,
            ratio: Some((
                keys::SCALING_SPEEDUP_PROCESS_CORES,
                keys::SCALING_SPEEDUP_THREAD_CORES,
            )),
            keys: keys(
                keys::SCALING_SPEEDUP_THREAD_CORES,
                keys::SCALING_SPEEDUP_PROCESS_CORES,
                None,
            ),
        },
        Row {
            aspect: "many concurrent waits",
            claim: "threads or async suit many waits better",
            claim_id: "many-waits",
            thread: io("thread"),
            process: io("process"),
            async_task: io("async"),
            ratio: Some((
                keys::SCALING_IO_COMPLETION_PROCESS_1000,
                keys::SCALING_IO_COMPLETION_THREAD_1000,
            )),
            keys: keys(
                keys::SCALING_IO_COMPLETION_THREAD_1000,
                keys::SCALING_IO_COMPLETION_PROCESS_1000,
                Some(keys::SCALING_IO_COMPLETION_ASYNC_1000),
            ),
        },
        Row {
            aspect: "synchronization",
            claim: "synchronizing processes costs more",
            claim_id: "synchronization",
            thread: f.shown_with_rounds(keys::SYNC_MUTEX_UNCONTENDED_THREAD),
            process: f.shown_with_rounds(keys::SYNC_MUTEX_UNCONTENDED_PROCESS),
            async_task: None,
            ratio: Some((
                keys::SYNC_MUTEX_UNCONTENDED_PROCESS,
                keys::SYNC_MUTEX_UNCONTENDED_THREAD,
            )),
            keys: keys(
                keys::SYNC_MUTEX_UNCONTENDED_THREAD,
                keys::SYNC_MUTEX_UNCONTENDED_PROCESS,
                None,
            ),
        },
        Row {
            aspect: "server crash",
            claim: "a prefork server keeps serving; a threaded one dies",
            claim_id: "server-crash",
            thread: crash("threaded"),
            process: crash("prefork"),
            async_task: crash("async"),
            ratio: None,
            keys: [None, None, None],
        },
        Row {
            aspect: "isolation ladder",
            claim: "fresh namespaces cost more to start",
            claim_id: "containers",
            thread: f.shown_with_rounds(keys::CONTAINERS_START_THREAD),
            // The top rung a process reaches without a runtime; the fork rung is in the claim.
            process: f.shown_with_rounds(keys::CONTAINERS_START_NAMESPACES),
            async_task: None,
            ratio: Some((
                keys::CONTAINERS_START_NAMESPACES,
                keys::CONTAINERS_START_THREAD,
            )),
            keys: keys(
                keys::CONTAINERS_START_THREAD,
                keys::CONTAINERS_START_NAMESPACES,
                None,
            ),
        },
    ];
    rows.into_iter()
        .map(|row| {
            let claim = find(claims, row.claim_id);
            let ratio = row
                .ratio
                .and_then(|(p, t)| Some(f.value(p)? / f.value(t)?))
                .filter(|r| r.is_finite());
            let rounds = |i: usize| row.keys[i].as_deref().and_then(|k| f.rounds(k)).cloned();
            HeadlineRow {
                aspect: row.aspect.to_string(),
                thread: row.thread,
                process: row.process,
                async_task: row.async_task,
                ratio,
                claim: row.claim.to_string(),
                verdict: claim.verdict,
                deciding: claim.figure_keys.join(", "),
                thread_rounds: rounds(0),
                process_rounds: rounds(1),
                async_rounds: rounds(2),
            }
        })
        .collect()
}

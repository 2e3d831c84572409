//! The headline table: one row per aspect, with the verdict of the claim it stands for.

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
        let thread = match (f.value("race.expected"), f.value("race.final.unsync")) {
            (Some(e), Some(u)) => Some(format!("shared: {} of {} lost", count(e - u), count(e))),
            _ => None,
        };
        let process = f
            .value("race.parent_after.process_copy")
            .map(|v| format!("separate: parent saw {}", count(v)));
        (thread, process)
    };
    let survived = |mode: &str| match (
        f.value(&format!("isolation.survived.{mode}")),
        f.value("isolation.faults"),
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
        f.value("sandbox.stopped.sandboxed"),
        f.value("sandbox.tried.sandboxed"),
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
            thread: f.shown_with_rounds("spawn.thread"),
            process: f.shown_with_rounds("spawn.fork"),
            async_task: f.shown_with_rounds("spawn.async"),
            ratio: Some(("spawn.fork", "spawn.thread")),
            keys: keys("spawn.thread", "spawn.fork", Some("spawn.async")),
        },
        Row {
            aspect: "context switching",
            claim: "switching between threads is faster",
            claim_id: "switch",
            thread: f.shown_with_rounds("switch.futex.thread.pinned"),
            process: f.shown_with_rounds("switch.futex.process.pinned"),
            async_task: None,
            ratio: Some(("switch.futex.process.pinned", "switch.futex.thread.pinned")),
            keys: keys(
                "switch.futex.thread.pinned",
                "switch.futex.process.pinned",
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
            thread: f.shown_with_rounds("memory.uss_per_worker.thread.10"),
            process: f.shown_with_rounds("memory.uss_per_worker.process.10"),
            async_task: f.shown_with_rounds("memory.per_task.async.10000"),
            ratio: Some((
                "memory.uss_per_worker.process.10",
                "memory.uss_per_worker.thread.10",
            )),
            keys: keys(
                "memory.uss_per_worker.thread.10",
                "memory.uss_per_worker.process.10",
                Some("memory.per_task.async.10000"),
            ),
        },
        Row {
            aspect: "multi-core use",
            claim: "both use many cores (no GIL)",
            claim_id: "multi-core",
            thread: f
                .shown_with_rounds("scaling.speedup.thread.cores")
                .zip(count_of("scaling.cores"))
                .map(|(s, c)| format!("{s} on {c} cores")),
            process: f
                .shown_with_rounds("scaling.speedup.process.cores")
                .zip(count_of("scaling.cores"))
                .map(|(s, c)| format!("{s} on {c} cores")),
            async_task: None,
            ratio: Some((
                "scaling.speedup.process.cores",
                "scaling.speedup.thread.cores",
            )),
            keys: keys(
                "scaling.speedup.thread.cores",
                "scaling.speedup.process.cores",
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
                "scaling.io.completion.process.1000",
                "scaling.io.completion.thread.1000",
            )),
            keys: keys(
                "scaling.io.completion.thread.1000",
                "scaling.io.completion.process.1000",
                Some("scaling.io.completion.async.1000"),
            ),
        },
        Row {
            aspect: "synchronization",
            claim: "synchronizing processes costs more",
            claim_id: "synchronization",
            thread: f.shown_with_rounds("sync.mutex.uncontended.thread"),
            process: f.shown_with_rounds("sync.mutex.uncontended.process"),
            async_task: None,
            ratio: Some((
                "sync.mutex.uncontended.process",
                "sync.mutex.uncontended.thread",
            )),
            keys: keys(
                "sync.mutex.uncontended.thread",
                "sync.mutex.uncontended.process",
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
            thread: f.shown_with_rounds("containers.start.thread"),
            // The top rung a process reaches without a runtime; the fork rung is in the claim.
            process: f.shown_with_rounds("containers.start.namespaces"),
            async_task: None,
            ratio: Some(("containers.start.namespaces", "containers.start.thread")),
            keys: keys(
                "containers.start.thread",
                "containers.start.namespaces",
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

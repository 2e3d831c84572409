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
}

pub(super) fn headline(f: &Figures, claims: &[Claim]) -> Vec<HeadlineRow> {
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

//! The figure keys the verdicts read (the table in the module documentation).

use crate::report::Unit;

/// A figure key the verdicts read, with its unit and meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key {
    /// The figure key, e.g. `spawn.thread`.
    pub key: &'static str,
    /// The figure's unit.
    pub unit: Unit,
    /// What the figure measures, in words.
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
    key("ui.period", Unit::Ns, "the UI loop's frame period"),
    key(
        "ui.job.ui_thread",
        Unit::Ns,
        "the job's own time on the UI thread",
    ),
    key(
        "ui.missed.ui_thread",
        Unit::Count,
        "missed frames per run, job on the UI thread",
    ),
    key(
        "ui.missed.worker_thread",
        Unit::Count,
        "missed frames per run, job on a worker thread",
    ),
    key(
        "ui.missed.worker_process",
        Unit::Count,
        "missed frames per run, job in a worker process",
    ),
    key(
        "leaks.ballast",
        Unit::Bytes,
        "memory the hanging task touches",
    ),
    key(
        "leaks.timeout.process.held",
        Unit::Bytes,
        "worker USS growth while the task hung",
    ),
    key(
        "leaks.timeout.process.after",
        Unit::Bytes,
        "replacement worker USS against the hung one's before",
    ),
    key(
        "leaks.timeout.thread.after",
        Unit::Bytes,
        "process RSS growth once the thread pool served again",
    ),
    key(
        "sandbox.tried.thread",
        Unit::Count,
        "attacks tried on a thread (not n/a)",
    ),
    key(
        "sandbox.tried.process",
        Unit::Count,
        "attacks tried in a plain worker process",
    ),
    key(
        "sandbox.tried.sandboxed",
        Unit::Count,
        "attacks tried in a sandboxed worker process",
    ),
    key(
        "sandbox.worked.thread",
        Unit::Count,
        "attacks that worked on a thread",
    ),
    key(
        "sandbox.worked.process",
        Unit::Count,
        "attacks that worked in a plain worker process",
    ),
    key(
        "sandbox.stopped.sandboxed",
        Unit::Count,
        "attacks tried in a sandboxed worker process that did not work",
    ),
    key(
        "sandbox.pool_broken",
        Unit::Count,
        "attacks after which the pool's next map was wrong",
    ),
    key(
        "servers.rps.prefork.cpu.16",
        Unit::PerSec,
        "requests/s, prefork, /cpu, 16 connections",
    ),
    key(
        "servers.rps.threaded.cpu.16",
        Unit::PerSec,
        "requests/s, threaded, /cpu, 16 connections",
    ),
    key(
        "servers.rps.async.cpu.16",
        Unit::PerSec,
        "requests/s, async, /cpu, 16 connections",
    ),
    key(
        "servers.crash.kept_serving.prefork",
        Unit::Count,
        "prefork served again after a handler crash (1/0)",
    ),
    key(
        "servers.crash.kept_serving.threaded",
        Unit::Count,
        "threaded served again after a handler crash (1/0)",
    ),
    key(
        "servers.crash.kept_serving.async",
        Unit::Count,
        "async served again after a handler crash (1/0)",
    ),
    key(
        "servers.crash.lost.prefork",
        Unit::Count,
        "requests the other clients lost to the crash, prefork",
    ),
    key(
        "servers.crash.lost.threaded",
        Unit::Count,
        "requests the other clients lost to the crash, threaded",
    ),
    key(
        "servers.crash.lost.async",
        Unit::Count,
        "requests the other clients lost to the crash, async",
    ),
    key(
        "servers.leak.leaked",
        Unit::Bytes,
        "memory /leak leaked in all",
    ),
    key(
        "servers.leak.held.prefork",
        Unit::Bytes,
        "prefork server USS growth over the leak",
    ),
    key(
        "servers.leak.held.threaded",
        Unit::Bytes,
        "threaded server USS growth over the leak",
    ),
    key(
        "servers.leak.held.async",
        Unit::Bytes,
        "async server USS growth over the leak",
    ),
    key(
        "containers.start.thread",
        Unit::Ns,
        "thread spawn to its first result",
    ),
    key(
        "containers.start.fork",
        Unit::Ns,
        "fork to the child's first result",
    ),
    key(
        "containers.start.namespaces",
        Unit::Ns,
        "fork + unshare + fork to the worker's first result",
    ),
    key("race.cpus", Unit::Count, "CPUs the race threads may use"),
    key(
        "race.dist.runs",
        Unit::Count,
        "runs per distribution setting",
    ),
    key(
        "race.dist.threads_2.lossy_runs",
        Unit::Count,
        "runs that lost updates, 2 threads",
    ),
    key(
        "race.dist.threads_2.lost_min",
        Unit::Count,
        "fewest lost updates in a run, 2 threads",
    ),
    key(
        "race.dist.threads_2.lost_max",
        Unit::Count,
        "most lost updates in a run, 2 threads",
    ),
    key(
        "race.dist.one_cpu.lossy_runs",
        Unit::Count,
        "runs that lost updates, 2 threads on one CPU",
    ),
    key(
        "race.runs_exact.mutex",
        Unit::Count,
        "runs with the exact count, Mutex",
    ),
    key(
        "race.runs_exact.atomic",
        Unit::Count,
        "runs with the exact count, fetch_add",
    ),
    key(
        "spawn.pool_remote",
        Unit::Ns,
        "one-worker remote pool built, run once, dropped",
    ),
    key(
        "ipc.pool_rtt.remote",
        Unit::Ns,
        "pool round trip to a remote worker, unpinned",
    ),
    key(
        "ipc.pool_rtt.remote.pinned",
        Unit::Ns,
        "pool round trip to a remote worker, pinned",
    ),
    key(
        "ipc.pool_rtt.remote_over_tcp",
        Unit::Ratio,
        "remote pool round trip / raw TCP round trip, unpinned",
    ),
    key(
        "ipc.pool_rtt.remote_over_tcp.pinned",
        Unit::Ratio,
        "remote pool round trip / raw TCP round trip, pinned",
    ),
    key(
        "ipc.pool_rtt.remote_over_process",
        Unit::Ratio,
        "remote / local process pool round trip, unpinned",
    ),
    key(
        "ipc.pool_rtt.remote_over_process.pinned",
        Unit::Ratio,
        "remote / local process pool round trip, pinned",
    ),
    key(
        "ipc.pool_rtt.remote_over_thread",
        Unit::Ratio,
        "remote / thread pool round trip, unpinned",
    ),
    key(
        "ipc.pool_rtt.remote_over_thread.pinned",
        Unit::Ratio,
        "remote / thread pool round trip, pinned",
    ),
];

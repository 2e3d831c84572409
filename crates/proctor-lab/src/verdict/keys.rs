//! The figure keys the verdicts read (the table in the module documentation), one constant
//! each: the single place a key is spelled.
//!
//! The experiments that produce a figure under one of these keys, the verdicts and headline
//! that read it, and the fixture all name it through its constant here. This module is a leaf
//! (it imports only [`crate::units`]), so producers may import it without reaching into the
//! verdict logic. Tests spell keys out on purpose: they check the stable JSON names.

use crate::units::Unit;

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

/// Declares each key as a constant named after it, and [`KEYS`] listing them all with unit
/// and meaning, from one table, so that a constant and its row cannot drift apart.
macro_rules! keys {
    ($($name:ident = $key:literal, $unit:ident, $meaning:literal;)*) => {
        $(
            #[doc = concat!("`", $key, "`: ", $meaning, ".")]
            pub const $name: &str = $key;
        )*

        /// Every figure key [`judge`](super::judge) reads; the module documentation shows the
        /// same table.
        pub const KEYS: &[Key] = &[$(key($name, Unit::$unit, $meaning)),*];
    };
}

keys! {
    SPAWN_THREAD = "spawn.thread", Ns, "thread create + first instruction + exit + join, same CPU";
    SPAWN_FORK = "spawn.fork", Ns, "fork + first instruction + _exit + waitpid, same CPU";
    SPAWN_POOL_WORKER = "spawn.pool_worker", Ns, "proctor worker forked from the fork server, ready";
    SPAWN_ASYNC = "spawn.async", Ns, "async task spawn + completion";
    SWITCH_FUTEX_THREAD_PINNED = "switch.futex.thread.pinned", Ns, "thread switch, futex, same CPU";
    SWITCH_FUTEX_PROCESS_PINNED = "switch.futex.process.pinned", Ns, "process switch, futex, same CPU";
    IPC_HANDOFF_THREAD_BOX_4M_CROSS_CPU = "ipc.handoff.thread.box.4194304.cross_cpu", Ns, "4 MiB hand-off, threads pass a Box through a channel, nearest pair of two CPUs";
    IPC_HANDOFF_PROCESS_SHM_4M_CROSS_CPU = "ipc.handoff.process.shm.4194304.cross_cpu", Ns, "4 MiB hand-off, processes copy into shared memory, nearest pair of two CPUs";
    IPC_HANDOFF_THREAD_BOX_4M_PINNED = "ipc.handoff.thread.box.4194304.pinned", Ns, "4 MiB hand-off, threads pass a Box through a channel, same CPU";
    IPC_HANDOFF_PROCESS_SHM_4M_PINNED = "ipc.handoff.process.shm.4194304.pinned", Ns, "4 MiB hand-off, processes copy into shared memory, same CPU";
    MEMORY_OVERHEAD_PER_WORKER_THREAD_100 = "memory.overhead_per_worker.thread.100", Bytes, "overhead per thread worker (100): USS growth - working set + page tables + kernel stack";
    MEMORY_OVERHEAD_PER_WORKER_PROCESS_100 = "memory.overhead_per_worker.process.100", Bytes, "overhead per process worker (100): USS - working set + page tables + kernel stack";
    MEMORY_PER_TASK_ASYNC_10000 = "memory.per_task.async.10000", Bytes, "memory per async task (10 000)";
    ISOLATION_FAULTS = "isolation.faults", Count, "fault kinds tried";
    ISOLATION_SURVIVED_PROCESS = "isolation.survived.process", Count, "fault kinds survived, process mode";
    ISOLATION_SURVIVED_THREAD = "isolation.survived.thread", Count, "fault kinds survived, thread mode";
    ISOLATION_WHOLE_PROGRAM_DIED_THREAD = "isolation.whole_program_died.thread", Count, "fault kinds fatal to the program, thread mode";
    RACE_EXPECTED = "race.expected", Count, "increments attempted";
    RACE_FINAL_UNSYNC = "race.final.unsync", Count, "final counter, unsynchronized";
    RACE_FINAL_MUTEX = "race.final.mutex", Count, "final counter, Mutex";
    RACE_FINAL_ATOMIC = "race.final.atomic", Count, "final counter, fetch_add";
    RACE_NS_PER_INC_UNSYNC = "race.ns_per_inc.unsync", Ns, "time per increment, unsynchronized";
    RACE_NS_PER_INC_MUTEX = "race.ns_per_inc.mutex", Ns, "time per increment, Mutex";
    RACE_NS_PER_INC_ATOMIC = "race.ns_per_inc.atomic", Ns, "time per increment, fetch_add";
    RACE_PARENT_AFTER_PROCESS_COPY = "race.parent_after.process_copy", Count, "parent counter after a child incremented its copy";
    SCALING_CORES = "scaling.cores", Count, "logical CPUs = workers for the .cores speed-ups";
    SCALING_SPEEDUP_THREAD_CORES = "scaling.speedup.thread.cores", Ratio, "CPU-bound speed-up, threads = cores";
    SCALING_SPEEDUP_PROCESS_CORES = "scaling.speedup.process.cores", Ratio, "CPU-bound speed-up, processes = cores";
    SCALING_OVERSUBSCRIPTION_THREAD = "scaling.oversubscription.thread", Ratio, "throughput at 2x cores / at cores, threads";
    SCALING_IO_COMPLETION_THREAD_1000 = "scaling.io.completion.thread.1000", Ns, "1 000 concurrent waits, threads, all alive first: the wait phase";
    SCALING_IO_COMPLETION_PROCESS_1000 = "scaling.io.completion.process.1000", Ns, "1 000 concurrent waits, processes: the wait phase";
    SCALING_IO_COMPLETION_ASYNC_1000 = "scaling.io.completion.async.1000", Ns, "1 000 concurrent waits, async tasks: the wait phase";
    SCALING_IO_CREATE_THREAD_1000 = "scaling.io.create.thread.1000", Ns, "creating 1 000 waiting threads until all are alive";
    SCALING_IO_CREATE_PROCESS_1000 = "scaling.io.create.process.1000", Ns, "creating 1 000 waiting processes until all are alive";
    SCALING_IO_CREATE_ASYNC_1000 = "scaling.io.create.async.1000", Ns, "creating 1 000 waiting async tasks until all are alive";
    SYNC_MUTEX_UNCONTENDED_THREAD = "sync.mutex.uncontended.thread", Ns, "uncontended Mutex lock + unlock";
    SYNC_MUTEX_UNCONTENDED_PROCESS = "sync.mutex.uncontended.process", Ns, "uncontended process-shared mutex lock + unlock";
    SYNC_FUTEX_MUTEX_CONTENDED_THREAD = "sync.futex_mutex.contended.thread", Ns, "contended futex mutex lock + unlock, 2 threads on two CPUs";
    SYNC_MUTEX_CONTENDED_PROCESS = "sync.mutex.contended.process", Ns, "contended futex mutex lock + unlock in shared memory, 2 processes on two CPUs";
    UI_PERIOD = "ui.period", Ns, "the UI loop's frame period";
    UI_JOB_UI_THREAD = "ui.job.ui_thread", Ns, "the job's own time on the UI thread";
    UI_MISSED_UI_THREAD = "ui.missed.ui_thread", Count, "missed frames per run, job on the UI thread";
    UI_MISSED_WORKER_THREAD = "ui.missed.worker_thread", Count, "missed frames per run, job on a worker thread";
    UI_MISSED_WORKER_PROCESS = "ui.missed.worker_process", Count, "missed frames per run, job in a worker process";
    LEAKS_BALLAST = "leaks.ballast", Bytes, "memory the hanging task touches";
    LEAKS_TIMEOUT_PROCESS_HELD = "leaks.timeout.process.held", Bytes, "worker USS growth while the task hung";
    LEAKS_TIMEOUT_PROCESS_AFTER = "leaks.timeout.process.after", Bytes, "replacement worker USS against the hung one's before";
    LEAKS_TIMEOUT_THREAD_AFTER = "leaks.timeout.thread.after", Bytes, "process RSS growth once the thread pool served again";
    SANDBOX_TRIED_THREAD = "sandbox.tried.thread", Count, "attacks tried on a thread (not n/a)";
    SANDBOX_TRIED_PROCESS = "sandbox.tried.process", Count, "attacks tried in a plain worker process";
    SANDBOX_TRIED_SANDBOXED = "sandbox.tried.sandboxed", Count, "attacks tried in a sandboxed worker process";
    SANDBOX_WORKED_THREAD = "sandbox.worked.thread", Count, "attacks that worked on a thread";
    SANDBOX_WORKED_PROCESS = "sandbox.worked.process", Count, "attacks that worked in a plain worker process";
    SANDBOX_STOPPED_SANDBOXED = "sandbox.stopped.sandboxed", Count, "attacks tried in a sandboxed worker process that did not work";
    SANDBOX_POOL_BROKEN = "sandbox.pool_broken", Count, "attacks after which the pool's next map was wrong";
    SERVERS_RPS_PREFORK_CPU_16 = "servers.rps.prefork.cpu.16", PerSec, "requests/s, prefork, /cpu, 16 connections";
    SERVERS_RPS_THREADED_CPU_16 = "servers.rps.threaded.cpu.16", PerSec, "requests/s, threaded, /cpu, 16 connections";
    SERVERS_RPS_ASYNC_CPU_16 = "servers.rps.async.cpu.16", PerSec, "requests/s, async, /cpu, 16 connections";
    SERVERS_CRASH_KEPT_SERVING_PREFORK = "servers.crash.kept_serving.prefork", Count, "prefork served again after a handler crash (1/0)";
    SERVERS_CRASH_KEPT_SERVING_THREADED = "servers.crash.kept_serving.threaded", Count, "threaded served again after a handler crash (1/0)";
    SERVERS_CRASH_KEPT_SERVING_ASYNC = "servers.crash.kept_serving.async", Count, "async served again after a handler crash (1/0)";
    SERVERS_CRASH_LOST_PREFORK = "servers.crash.lost.prefork", Count, "requests the other clients lost to the crash, prefork";
    SERVERS_CRASH_LOST_THREADED = "servers.crash.lost.threaded", Count, "requests the other clients lost to the crash, threaded";
    SERVERS_CRASH_LOST_ASYNC = "servers.crash.lost.async", Count, "requests the other clients lost to the crash, async";
    SERVERS_LEAK_LEAKED = "servers.leak.leaked", Bytes, "memory /leak leaked in all";
    SERVERS_LEAK_HELD_PREFORK = "servers.leak.held.prefork", Bytes, "prefork server USS growth over the leak";
    SERVERS_LEAK_HELD_THREADED = "servers.leak.held.threaded", Bytes, "threaded server USS growth over the leak";
    SERVERS_LEAK_HELD_ASYNC = "servers.leak.held.async", Bytes, "async server USS growth over the leak";
    CONTAINERS_START_THREAD = "containers.start.thread", Ns, "thread spawn to its first result";
    CONTAINERS_START_FORK = "containers.start.fork", Ns, "fork to the child's first result";
    CONTAINERS_START_NAMESPACES = "containers.start.namespaces", Ns, "fork + unshare + fork to the worker's first result";
    CONTAINERS_CONTROL_FORK_EXIT = "containers.control.fork_exit", Ns, "fork + _exit + waitpid in the ladder's parent, same CPU";
    RACE_CPUS = "race.cpus", Count, "CPUs the race threads may use";
    RACE_DIST_RUNS = "race.dist.runs", Count, "runs per distribution setting";
    RACE_DIST_THREADS_2_LOSSY_RUNS = "race.dist.threads_2.lossy_runs", Count, "runs that lost updates, 2 threads";
    RACE_DIST_THREADS_2_LOST_MIN = "race.dist.threads_2.lost_min", Count, "fewest lost updates in a run, 2 threads";
    RACE_DIST_THREADS_2_LOST_MAX = "race.dist.threads_2.lost_max", Count, "most lost updates in a run, 2 threads";
    RACE_DIST_ONE_CPU_LOSSY_RUNS = "race.dist.one_cpu.lossy_runs", Count, "runs that lost updates, 2 threads on one CPU";
    RACE_RUNS_EXACT_MUTEX = "race.runs_exact.mutex", Count, "runs with the exact count, Mutex";
    RACE_RUNS_EXACT_ATOMIC = "race.runs_exact.atomic", Count, "runs with the exact count, fetch_add";
    SPAWN_POOL_REMOTE = "spawn.pool_remote", Ns, "one-worker remote pool built, run once, dropped";
    IPC_POOL_RTT_REMOTE = "ipc.pool_rtt.remote", Ns, "pool round trip to a remote worker, unpinned";
    IPC_POOL_RTT_REMOTE_PINNED = "ipc.pool_rtt.remote.pinned", Ns, "pool round trip to a remote worker, pinned";
    IPC_POOL_RTT_REMOTE_OVER_TCP = "ipc.pool_rtt.remote_over_tcp", Ratio, "remote pool round trip / raw TCP round trip, unpinned";
    IPC_POOL_RTT_REMOTE_OVER_TCP_PINNED = "ipc.pool_rtt.remote_over_tcp.pinned", Ratio, "remote pool round trip / raw TCP round trip, pinned";
    IPC_POOL_RTT_REMOTE_OVER_PROCESS = "ipc.pool_rtt.remote_over_process", Ratio, "remote / local process pool round trip, unpinned";
    IPC_POOL_RTT_REMOTE_OVER_PROCESS_PINNED = "ipc.pool_rtt.remote_over_process.pinned", Ratio, "remote / local process pool round trip, pinned";
    IPC_POOL_RTT_REMOTE_OVER_THREAD = "ipc.pool_rtt.remote_over_thread", Ratio, "remote / thread pool round trip, unpinned";
    IPC_POOL_RTT_REMOTE_OVER_THREAD_PINNED = "ipc.pool_rtt.remote_over_thread.pinned", Ratio, "remote / thread pool round trip, pinned";
}

/// `spawn.thread.cross_cpu`: `spawn.thread` with the child on the nearest other CPU. Shown in
/// the creation claim's evidence, never deciding, and not in [`KEYS`]: a machine with one CPU,
/// or one where too few children ran across, has no such figure.
pub const SPAWN_THREAD_CROSS_CPU: &str = "spawn.thread.cross_cpu";

/// `spawn.fork.cross_cpu`: `spawn.fork` with the child on the nearest other CPU; as
/// [`SPAWN_THREAD_CROSS_CPU`].
pub const SPAWN_FORK_CROSS_CPU: &str = "spawn.fork.cross_cpu";

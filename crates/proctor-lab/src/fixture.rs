//! A fixed, realistic [`Report`] for renderer, verdict and CLI tests.
//!
//! The figures are plausible for a small virtual machine, but they were typed in, not measured:
//! nothing here runs an experiment. The report has four sections (spawn, switch, ipc, and a
//! failed memory section), charts of both kinds and cross-checks. [`all_sections`] adds figure-only
//! sections so that every key in [`crate::verdict::KEYS`] is present.
//!
//! This file is long because it gives every experiment a realistic section, so that every key
//! the verdicts read and every renderer's branch is exercised.

use crate::machine::Machine;
use crate::report::{
    Chart, ChartKind, CrossCheck, Figure, Profile, Report, SCHEMA_VERSION, Section, Series, Spread,
    Status, Table, Unit,
};
use crate::topology::{Cpu, Topology};
use crate::verdict;
use crate::verdict::keys;

/// A figure with a spread of ±`spread_pct` % around its value from 30 samples.
fn fig(key: &str, label: &str, value: f64, unit: Unit, spread_pct: f64) -> Figure {
    let d = value * spread_pct / 100.0;
    Figure::new(key, label, value, unit).with_spread(Spread {
        min: value - 1.2 * d,
        p1: value - d,
        p99: value + 2.0 * d,
        max: value + 3.0 * d,
        samples: 30,
        outliers: if spread_pct > 10.0 { 2 } else { 0 },
    })
}

fn series(name: &str, points: &[(f64, f64)]) -> Series {
    Series {
        name: name.to_string(),
        points: points.to_vec(),
    }
}

/// The machine the fixture pretends to have run on.
pub(crate) fn machine() -> Machine {
    Machine {
        cpu_model: "AMD EPYC 7B13".to_string(),
        logical_cpus: 2,
        physical_cores: Some(1),
        kernel: "6.8.0-1015-gcp".to_string(),
        governor: None,
        frequency_mhz: Some(2450.0),
        virtualization: Some("kvm".to_string()),
        mitigations: vec![
            "spectre_v2: Mitigation: Retpolines; IBPB: conditional".to_string(),
            "retbleed: Mitigation: untrained return thunk".to_string(),
        ],
        memory_bytes: 8 * 1024 * 1024 * 1024,
        warnings: vec![
            "virtualized (kvm): switch and wake-up latencies include hypervisor exits".to_string(),
            "cpufreq governor not readable: frequency scaling unknown".to_string(),
        ],
        topology: Topology::from_cpus(
            (0..2)
                .map(|id| Cpu {
                    id,
                    core: 0,
                    llc: 0,
                    node: 0,
                })
                .collect(),
        ),
    }
}

fn spawn() -> Section {
    let mut s = Section::new(
        "spawn",
        "Creation overhead",
        "One op is create + first instruction + exit + reap, timed by a handshake over a pipe. \
         Warm median of 30 batches; the first (cold) creation is reported apart.",
    );
    s.elapsed_ms = 4_310.0;
    s.figures = vec![
        fig(
            keys::SPAWN_THREAD,
            "thread spawn + join",
            18_400.0,
            Unit::Ns,
            6.0,
        )
        .placed("same CPU (cpu 0)"),
        fig(
            keys::SPAWN_FORK,
            "fork + _exit + waitpid",
            112_000.0,
            Unit::Ns,
            9.0,
        )
        .placed("same CPU (cpu 0)"),
        fig(
            "spawn.posix_spawn",
            "posix_spawn + exec + wait",
            486_000.0,
            Unit::Ns,
            12.0,
        ),
        fig(
            keys::SPAWN_POOL_WORKER,
            "pool worker from the fork server",
            74_000.0,
            Unit::Ns,
            8.0,
        ),
        fig(
            keys::SPAWN_POOL_REMOTE,
            "one-worker remote pool (loopback TCP) built, run once, dropped",
            4_200_000.0,
            Unit::Ns,
            10.0,
        ),
        fig(
            keys::SPAWN_ASYNC,
            "async task spawn + await",
            1_150.0,
            Unit::Ns,
            4.0,
        ),
    ];
    s.tables = vec![Table {
        title: "Creation cost against the parent's resident memory".to_string(),
        columns: ["parent RSS", "fork", "posix_spawn", "thread"]
            .map(String::from)
            .to_vec(),
        rows: vec![
            ["4 MiB", "112 µs", "486 µs", "18.4 µs"]
                .map(String::from)
                .to_vec(),
            ["64 MiB", "431 µs", "490 µs", "18.6 µs"]
                .map(String::from)
                .to_vec(),
            ["1 GiB", "5.82 ms", "494 µs", "18.5 µs"]
                .map(String::from)
                .to_vec(),
        ],
    }];
    s.charts = vec![
        Chart {
            id: "by-method".to_string(),
            title: "Creation cost by method".to_string(),
            kind: ChartKind::Bar,
            x_label: "method".to_string(),
            y_label: "time per creation".to_string(),
            x_unit: crate::units::AxisUnit::Plain,
            y_unit: crate::units::AxisUnit::Us,
            x_log: false,
            y_log: false,
            categories: ["thread", "async task", "fork", "posix_spawn", "pool worker"]
                .map(String::from)
                .to_vec(),
            series: vec![series(
                "median",
                &[
                    (0.0, 18.4),
                    (1.0, 1.15),
                    (2.0, 112.0),
                    (3.0, 486.0),
                    (4.0, 74.0),
                ],
            )],
        },
        Chart {
            id: "fork-vs-rss".to_string(),
            title: "Creation cost against parent RSS".to_string(),
            kind: ChartKind::Line,
            x_label: "parent RSS".to_string(),
            y_label: "time per creation".to_string(),
            x_unit: crate::units::AxisUnit::Mib,
            y_unit: crate::units::AxisUnit::Us,
            x_log: true,
            y_log: true,
            categories: Vec::new(),
            series: vec![
                series("fork", &[(4.0, 112.0), (64.0, 431.0), (1024.0, 5820.0)]),
                series(
                    "posix_spawn",
                    &[(4.0, 486.0), (64.0, 490.0), (1024.0, 494.0)],
                ),
                series("thread", &[(4.0, 18.4), (64.0, 18.6), (1024.0, 18.5)]),
            ],
        },
    ];
    s.notes = vec![
        "The cold first fork took 412 µs and is excluded from the median.".to_string(),
        "fork grows with the parent's page tables; posix_spawn (vfork) does not.".to_string(),
    ];
    s
}

fn switch() -> Section {
    let mut s = Section::new(
        "switch",
        "Context switching",
        "Two threads, then two processes, ping-pong on one pinned CPU through a futex and \
         through pipes. One switch is half a round trip, with the same syscalls timed in one \
         task subtracted. Switch counts verified with getrusage.",
    );
    s.elapsed_ms = 6_020.0;
    s.figures = vec![
        fig(
            keys::SWITCH_FUTEX_THREAD_PINNED,
            "thread switch (futex)",
            1_180.0,
            Unit::Ns,
            5.0,
        )
        .placed("same CPU (cpu 0)"),
        fig(
            keys::SWITCH_FUTEX_PROCESS_PINNED,
            "process switch (futex)",
            1_420.0,
            Unit::Ns,
            5.0,
        )
        .placed("same CPU (cpu 0)"),
        fig(
            "switch.pipe.thread.pinned",
            "thread switch (pipe)",
            2_700.0,
            Unit::Ns,
            7.0,
        )
        .placed("same CPU (cpu 0)"),
        fig(
            "switch.pipe.process.pinned",
            "process switch (pipe)",
            2_900.0,
            Unit::Ns,
            7.0,
        )
        .placed("same CPU (cpu 0)"),
        fig(
            "switch.futex.thread.cross",
            "thread wake-up (futex)",
            4_900.0,
            Unit::Ns,
            15.0,
        )
        .placed("across CPUs (cpu 0 → cpu 1)"),
        fig(
            "switch.counted",
            "switches counted / expected",
            99.6,
            Unit::Percent,
            0.0,
        ),
    ];
    s.charts = vec![Chart {
        id: "placements".to_string(),
        title: "Switch cost: threads vs processes".to_string(),
        kind: ChartKind::Bar,
        x_label: "mechanism and placement".to_string(),
        y_label: "time per switch".to_string(),
        x_unit: crate::units::AxisUnit::Plain,
        y_unit: crate::units::AxisUnit::Ns,
        x_log: false,
        y_log: false,
        categories: ["futex, same CPU", "pipe, same CPU", "futex, across CPUs"]
            .map(String::from)
            .to_vec(),
        series: vec![
            series("thread", &[(0.0, 1180.0), (1.0, 2700.0), (2.0, 4900.0)]),
            series("process", &[(0.0, 1420.0), (1.0, 2900.0), (2.0, 5150.0)]),
        ],
    }];
    s.cross_checks = vec![
        CrossCheck {
            tool: "perf bench sched pipe".to_string(),
            command: "taskset -c 0 perf bench sched pipe -l 100000".to_string(),
            ours_key: "switch.pipe.process.pinned".to_string(),
            ours: Some(2_900.0),
            theirs: Some(3_050.0),
            unit: Unit::Ns,
            note: Some("perf's usecs/op is a round trip; halved here".to_string()),
        },
        CrossCheck {
            tool: "perf bench sched pipe -T".to_string(),
            command: "taskset -c 0 perf bench sched pipe -T -l 100000".to_string(),
            ours_key: "switch.pipe.thread.pinned".to_string(),
            ours: Some(2_700.0),
            theirs: Some(2_840.0),
            unit: Unit::Ns,
            note: None,
        },
        CrossCheck {
            tool: "lmbench lat_ctx".to_string(),
            command: "lat_ctx -s 0 2".to_string(),
            ours_key: "switch.pipe.process.pinned".to_string(),
            ours: Some(2_900.0),
            theirs: None,
            unit: Unit::Ns,
            note: Some("lat_ctx not installed: apt install lmbench".to_string()),
        },
    ];
    s.notes = vec![
        "Virtualized: a switch may include a VM exit; compare the ratio, not the absolute figure."
            .to_string(),
    ];
    s
}

fn ipc() -> Section {
    let mut s = Section::new(
        "ipc",
        "Communication",
        "Round trip of one message and its reply between two threads (channel) or two \
         processes (pipe, unix socket, shared-memory ring with futex wait). p50 of per-op \
         timestamps; unpinned.",
    );
    s.elapsed_ms = 9_870.0;
    s.figures = vec![
        fig(
            "ipc.rtt.channel.thread.64",
            "channel, 64 B",
            2_350.0,
            Unit::Ns,
            8.0,
        )
        .placed("unpinned"),
        fig(
            "ipc.rtt.pipe.process.64",
            "pipe, 64 B",
            9_800.0,
            Unit::Ns,
            11.0,
        )
        .placed("unpinned"),
        fig(
            "ipc.rtt.unix.process.64",
            "unix socket, 64 B",
            11_200.0,
            Unit::Ns,
            12.0,
        )
        .placed("unpinned"),
        fig(
            "ipc.rtt.shm.process.64",
            "shm ring (futex), 64 B",
            3_100.0,
            Unit::Ns,
            9.0,
        )
        .placed("unpinned"),
        fig(
            "ipc.throughput.pipe.process.1m",
            "pipe throughput, 1 MiB messages",
            2.9e9,
            Unit::BytesPerSec,
            5.0,
        ),
    ];
    s.figures.extend(handoffs());
    s.figures.extend(pool_round_trips());
    s.tables = vec![Table {
        title: "Round trip, p50 / p99".to_string(),
        columns: ["transport", "64 B", "4 KiB", "64 KiB", "1 MiB"]
            .map(String::from)
            .to_vec(),
        rows: vec![
            [
                "channel (threads)",
                "2.35 / 4.10 µs",
                "2.61 / 4.52 µs",
                "9.80 / 14.1 µs",
                "210 / 260 µs",
            ]
            .map(String::from)
            .to_vec(),
            [
                "pipe",
                "9.80 / 21.3 µs",
                "11.2 / 24.0 µs",
                "48.0 / 71.5 µs",
                "720 / 910 µs",
            ]
            .map(String::from)
            .to_vec(),
            [
                "unix socket",
                "11.2 / 23.9 µs",
                "12.0 / 25.1 µs",
                "41.3 / 60.2 µs",
                "650 / 820 µs",
            ]
            .map(String::from)
            .to_vec(),
            [
                "shm ring (futex)",
                "3.10 / 6.20 µs",
                "3.40 / 6.60 µs",
                "12.9 / 19.0 µs",
                "240 / 300 µs",
            ]
            .map(String::from)
            .to_vec(),
        ],
    }];
    let sizes = [64.0, 4096.0, 65536.0, 1048576.0];
    let line =
        |name: &str, us: [f64; 4]| series(name, &sizes.iter().copied().zip(us).collect::<Vec<_>>());
    s.charts = vec![Chart {
        id: "rtt-by-size".to_string(),
        title: "Round trip against message size".to_string(),
        kind: ChartKind::Line,
        x_label: "message size".to_string(),
        y_label: "round trip p50".to_string(),
        x_unit: crate::units::AxisUnit::Bytes,
        y_unit: crate::units::AxisUnit::Us,
        x_log: true,
        y_log: true,
        categories: Vec::new(),
        series: vec![
            line("channel (threads)", [2.35, 2.61, 9.8, 210.0]),
            line("pipe", [9.8, 11.2, 48.0, 720.0]),
            line("unix socket", [11.2, 12.0, 41.3, 650.0]),
            line("shm ring", [3.1, 3.4, 12.9, 240.0]),
        ],
    }];
    s.notes = vec![
        "TCP loopback and POSIX mq were not selected in this run.".to_string(),
        "Message sizes straddle 4 KiB (page), 64 KiB (pipe capacity) and the socket buffer."
            .to_string(),
    ];
    s
}

/// The memory section as it came out of a failed run: status and error, no figures.
fn memory_failed() -> Section {
    let mut s = Section::new(
        "memory",
        "Resource usage",
        "N idle workers (1, 10, 100) as processes and as threads; USS, PSS and RSS per worker \
         from /proc/PID/smaps_rollup.",
    );
    s.status = Status::Failed {
        error: "reading /proc/4242/smaps_rollup: Permission denied (os error 13)".to_string(),
    };
    s.elapsed_ms = 380.0;
    s
}

/// The fixed report: machine, four sections (memory failed), headline and claims from
/// [`verdict::judge`].
pub(crate) fn report() -> Report {
    let sections = vec![spawn(), switch(), ipc(), memory_failed()];
    let (headline, claims) = verdict::judge(&sections);
    Report {
        schema_version: SCHEMA_VERSION,
        proctor_version: "0.1.0".to_string(),
        command_line: "proctor report --profile quick".to_string(),
        profile: Profile::Quick,
        machine: machine(),
        headline,
        claims,
        sections,
    }
}

/// The 4 MiB hand-off the communication claim reads, at the nearest pair of two CPUs and on
/// one CPU.
fn handoffs() -> Vec<Figure> {
    let placed = "shared LLC (cpu 0 → cpu 1)";
    let same = "same CPU (cpu 0)";
    vec![
        fig(
            keys::IPC_HANDOFF_THREAD_BOX_4M_PINNED,
            "hand-off of 4 MiB, threads: Box<[u8]> through a channel",
            290_000.0,
            Unit::Ns,
            8.0,
        )
        .placed(same),
        fig(
            keys::IPC_HANDOFF_PROCESS_SHM_4M_PINNED,
            "hand-off of 4 MiB, processes: copy into shared memory",
            650_000.0,
            Unit::Ns,
            8.0,
        )
        .placed(same),
        fig(
            keys::IPC_HANDOFF_THREAD_BOX_4M_CROSS_CPU,
            "hand-off of 4 MiB, threads: Box<[u8]> through a channel",
            310_000.0,
            Unit::Ns,
            8.0,
        )
        .placed(placed),
        fig(
            keys::IPC_HANDOFF_PROCESS_SHM_4M_CROSS_CPU,
            "hand-off of 4 MiB, processes: copy into shared memory",
            720_000.0,
            Unit::Ns,
            8.0,
        )
        .placed(placed),
    ]
}

/// The raw tcp round trips and the pool round trips of the ipc section at both placements,
/// with the remote worker's ratios computed from them as the experiment computes them.
fn pool_round_trips() -> Vec<Figure> {
    // (placement suffix, placement, tcp, thread, process, remote), ns
    let placements = [
        (
            ".pinned",
            "same CPU (cpu 0)",
            10_600.0,
            2_340.0,
            4_130.0,
            12_400.0,
        ),
        ("", "unpinned", 11_650.0, 2_480.0, 4_450.0, 12_200.0),
    ];
    let mut figures = Vec::new();
    for (suffix, placed, tcp, thread, process, remote) in placements {
        let rtt =
            |key: String, label: &str, ns: f64| fig(&key, label, ns, Unit::Ns, 8.0).placed(placed);
        figures.extend([
            rtt(format!("ipc.rtt.tcp.process.64{suffix}"), "tcp, 64 B", tcp),
            rtt(
                format!("ipc.pool_rtt.thread{suffix}"),
                "pool round trip to a thread-pool worker",
                thread,
            ),
            rtt(
                format!("ipc.pool_rtt.process{suffix}"),
                "pool round trip to a local process-pool worker",
                process,
            ),
            rtt(
                format!("ipc.pool_rtt.remote{suffix}"),
                "pool round trip to a remote worker (loopback TCP)",
                remote,
            ),
        ]);
        for (name, label, other) in [
            ("tcp", "remote worker / raw tcp 64 B round trip", tcp),
            (
                "process",
                "remote worker / local process-pool worker",
                process,
            ),
            ("thread", "remote worker / thread-pool worker", thread),
        ] {
            let key = format!("ipc.pool_rtt.remote_over_{name}{suffix}");
            figures.push(Figure::new(&key, label, remote / other, Unit::Ratio).placed(placed));
        }
    }
    figures
}

fn figures_only(id: &str, title: &str, figures: Vec<Figure>) -> Section {
    let mut s = Section::new(id, title, "figures only, for verdict tests");
    s.figures = figures;
    s
}

/// Every experiment as an `Ok` section, with every key [`verdict::judge`] reads.
///
/// With these figures every claim has a definite verdict: most are confirmed, over-threading and
/// synchronization are within the tolerance (depends).
pub(crate) fn all_sections() -> Vec<Section> {
    const LADDER_CPU: &str = "same CPU (cpu 0)";
    const IO_CPUS: &str = "unpinned over the 2 allowed CPUs, alike for every model";
    let n = |key: &str, value: f64, unit: Unit| Figure::new(key, key, value, unit);
    let across = |key: &str, value: f64| {
        fig(key, key, value, Unit::Ns, 8.0).placed("shared LLC (cpu 0 → cpu 1)")
    };
    let mut spawn = spawn();
    spawn.figures.extend([
        across(keys::SPAWN_THREAD_CROSS_CPU, 61_200.0),
        across(keys::SPAWN_FORK_CROSS_CPU, 273_000.0),
    ]);
    vec![
        spawn,
        switch(),
        ipc(),
        figures_only(
            "memory",
            "Resource usage",
            vec![
                n(
                    keys::MEMORY_OVERHEAD_PER_WORKER_THREAD_100,
                    32_768.0,
                    Unit::Bytes,
                ),
                n(
                    keys::MEMORY_OVERHEAD_PER_WORKER_PROCESS_100,
                    286_720.0,
                    Unit::Bytes,
                ),
                n(keys::MEMORY_PER_TASK_ASYNC_10000, 412.0, Unit::Bytes),
            ],
        ),
        figures_only(
            "isolation",
            "Fault isolation",
            vec![
                n(keys::ISOLATION_FAULTS, 7.0, Unit::Count),
                n(keys::ISOLATION_SURVIVED_PROCESS, 7.0, Unit::Count),
                n(keys::ISOLATION_SURVIVED_THREAD, 3.0, Unit::Count),
                n(keys::ISOLATION_WHOLE_PROGRAM_DIED_THREAD, 4.0, Unit::Count),
            ],
        ),
        figures_only(
            "race",
            "Memory space and shared data",
            vec![
                n(keys::RACE_EXPECTED, 200_000.0, Unit::Count),
                n(keys::RACE_FINAL_UNSYNC, 113_482.0, Unit::Count),
                n(keys::RACE_FINAL_MUTEX, 200_000.0, Unit::Count),
                n(keys::RACE_FINAL_ATOMIC, 200_000.0, Unit::Count),
                n(keys::RACE_NS_PER_INC_UNSYNC, 1.9, Unit::Ns),
                n(keys::RACE_NS_PER_INC_MUTEX, 41.0, Unit::Ns),
                n(keys::RACE_NS_PER_INC_ATOMIC, 12.3, Unit::Ns),
                n(keys::RACE_PARENT_AFTER_PROCESS_COPY, 0.0, Unit::Count),
                n(keys::RACE_CPUS, 2.0, Unit::Count),
                n(keys::RACE_DIST_RUNS, 200.0, Unit::Count),
                n(keys::RACE_DIST_THREADS_2_LOSSY_RUNS, 200.0, Unit::Count),
                n(keys::RACE_DIST_THREADS_2_LOST_MIN, 5_791.0, Unit::Count),
                n(keys::RACE_DIST_THREADS_2_LOST_MAX, 100_000.0, Unit::Count),
                n(keys::RACE_DIST_ONE_CPU_LOSSY_RUNS, 0.0, Unit::Count),
                n(keys::RACE_RUNS_EXACT_MUTEX, 200.0, Unit::Count),
                n(keys::RACE_RUNS_EXACT_ATOMIC, 200.0, Unit::Count),
            ],
        ),
        figures_only(
            "containers",
            "The isolation ladder",
            vec![
                n(keys::CONTAINERS_START_THREAD, 49_800.0, Unit::Ns).placed(LADDER_CPU),
                n(keys::CONTAINERS_START_FORK, 167_000.0, Unit::Ns).placed(LADDER_CPU),
                n(keys::CONTAINERS_START_NAMESPACES, 972_000.0, Unit::Ns).placed(LADDER_CPU),
                n(keys::CONTAINERS_CONTROL_FORK_EXIT, 160_000.0, Unit::Ns).placed(LADDER_CPU),
            ],
        ),
        figures_only(
            "scaling",
            "Multi-core use",
            vec![
                n(keys::SCALING_CORES, 2.0, Unit::Count),
                n(keys::SCALING_SPEEDUP_THREAD_CORES, 1.96, Unit::Ratio),
                n(keys::SCALING_SPEEDUP_PROCESS_CORES, 1.93, Unit::Ratio),
                n(keys::SCALING_OVERSUBSCRIPTION_THREAD, 0.97, Unit::Ratio),
                n(keys::SCALING_IO_COMPLETION_THREAD_1000, 48e6, Unit::Ns).placed(IO_CPUS),
                n(keys::SCALING_IO_COMPLETION_PROCESS_1000, 610e6, Unit::Ns).placed(IO_CPUS),
                n(keys::SCALING_IO_COMPLETION_ASYNC_1000, 12.6e6, Unit::Ns).placed(IO_CPUS),
                n(keys::SCALING_IO_CREATE_THREAD_1000, 48e6, Unit::Ns),
                n(keys::SCALING_IO_CREATE_PROCESS_1000, 610e6, Unit::Ns),
                n(keys::SCALING_IO_CREATE_ASYNC_1000, 1.2e6, Unit::Ns),
            ],
        ),
        figures_only(
            "sync",
            "Synchronization",
            vec![
                n(keys::SYNC_MUTEX_UNCONTENDED_THREAD, 17.9, Unit::Ns),
                n(keys::SYNC_MUTEX_UNCONTENDED_PROCESS, 18.6, Unit::Ns),
                n(keys::SYNC_FUTEX_MUTEX_CONTENDED_THREAD, 96.0, Unit::Ns),
                n(keys::SYNC_MUTEX_CONTENDED_PROCESS, 99.8, Unit::Ns),
            ],
        ),
        figures_only(
            "ui",
            "Keeping the UI thread responsive",
            vec![
                n(keys::UI_PERIOD, 16_666_667.0, Unit::Ns),
                n(keys::UI_JOB_UI_THREAD, 300e6, Unit::Ns),
                n(keys::UI_MISSED_UI_THREAD, 17.0, Unit::Count),
                n(keys::UI_MISSED_WORKER_THREAD, 0.0, Unit::Count),
                n(keys::UI_MISSED_WORKER_PROCESS, 0.5, Unit::Count),
            ],
        ),
        figures_only(
            "leaks",
            "Thread leaks",
            vec![
                n(keys::LEAKS_BALLAST, 67_108_864.0, Unit::Bytes),
                n(keys::LEAKS_TIMEOUT_PROCESS_HELD, 67_110_912.0, Unit::Bytes),
                n(keys::LEAKS_TIMEOUT_PROCESS_AFTER, 4_096.0, Unit::Bytes),
                n(keys::LEAKS_TIMEOUT_THREAD_AFTER, 67_112_960.0, Unit::Bytes),
            ],
        ),
        figures_only(
            "sandbox",
            "Process mode as a security boundary",
            vec![
                n(keys::SANDBOX_TRIED_THREAD, 30.0, Unit::Count),
                n(keys::SANDBOX_TRIED_PROCESS, 40.0, Unit::Count),
                n(keys::SANDBOX_TRIED_SANDBOXED, 42.0, Unit::Count),
                n(keys::SANDBOX_WORKED_THREAD, 28.0, Unit::Count),
                n(keys::SANDBOX_WORKED_PROCESS, 33.0, Unit::Count),
                n("sandbox.worked.sandboxed", 0.0, Unit::Count),
                n(keys::SANDBOX_STOPPED_SANDBOXED, 42.0, Unit::Count),
                n(keys::SANDBOX_POOL_BROKEN, 0.0, Unit::Count),
            ],
        ),
        figures_only(
            "servers",
            "Servers: prefork vs threaded vs async",
            vec![
                n(keys::SERVERS_RPS_PREFORK_CPU_16, 23_176.0, Unit::PerSec),
                n(keys::SERVERS_RPS_THREADED_CPU_16, 23_236.0, Unit::PerSec),
                n(keys::SERVERS_RPS_ASYNC_CPU_16, 9_016.0, Unit::PerSec),
                n(keys::SERVERS_CRASH_KEPT_SERVING_PREFORK, 1.0, Unit::Count),
                n(keys::SERVERS_CRASH_KEPT_SERVING_THREADED, 0.0, Unit::Count),
                n(keys::SERVERS_CRASH_KEPT_SERVING_ASYNC, 0.0, Unit::Count),
                n(keys::SERVERS_CRASH_LOST_PREFORK, 0.0, Unit::Count),
                n(keys::SERVERS_CRASH_LOST_THREADED, 17.0, Unit::Count),
                n(keys::SERVERS_CRASH_LOST_ASYNC, 31.0, Unit::Count),
                n(keys::SERVERS_LEAK_LEAKED, 33_554_432.0, Unit::Bytes),
                n(keys::SERVERS_LEAK_HELD_PREFORK, 5_421_000.0, Unit::Bytes),
                n(keys::SERVERS_LEAK_HELD_THREADED, 31_562_000.0, Unit::Bytes),
                n(keys::SERVERS_LEAK_HELD_ASYNC, 31_560_000.0, Unit::Bytes),
            ],
        ),
    ]
}

/// A measurement typed in, not measured: 10 batches around `ns` per op (±5 %), no per-op
/// timestamps, for the experiments' section tests.
pub(crate) fn measurement(ns: f64) -> crate::measure::Measurement {
    let batch_ns: Vec<f64> = (0..10).map(|i| ns * (0.95 + 0.01 * i as f64)).collect();
    let mut batches = crate::stats::summarize(&batch_ns).expect("ten batches");
    batches.median = ns;
    crate::measure::Measurement {
        ops_per_batch: 1000,
        cold_ns: 2.0 * ns,
        batch_ns,
        batches,
        per_op: None,
        timer_ns: 20.0,
    }
}

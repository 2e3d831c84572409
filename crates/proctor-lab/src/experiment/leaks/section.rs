//! The leaks section, from a [`LeaksResult`]: the method, the figures per blocked-thread count
//! and per hanging task, the tables, the charts and the notes.

use super::*;
use crate::units::AxisUnit;

/// The section of a leaks run: figures per blocked-thread count and per hanging task, the
/// tables, the charts and the notes, in the order the report shows them.
pub(super) fn section_from(r: &LeaksResult) -> Section {
    let mut section = Section::new("leaks", "Thread leaks", &method(r));
    point_figures(&mut section, r);
    section.figures.push(Figure::new(
        "leaks.threads_left",
        "threads left behind by the experiment",
        r.threads_after as f64 - r.threads_before as f64,
        Unit::Count,
    ));
    section.figures.push(Figure::new(
        keys::LEAKS_BALLAST,
        "ballast the hanging task touches",
        r.ballast_bytes as f64,
        Unit::Bytes,
    ));
    timeout_figures(&mut section, r);
    section.tables.push(points_table(r));
    section.tables.push(timeout_table(r));
    section.charts.push(per_thread_chart(r));
    section.charts.push(scheduler_chart(r));
    notes(&mut section, r);
    section.set_data(r);
    section
}

/// A memory cell in MiB with two decimals.
fn mib(b: f64) -> String {
    format!("{:.2}", b / 1048576.0)
}

/// A memory cell in KiB with one decimal.
fn kib(b: f64) -> String {
    format!("{:.1}", b / 1024.0)
}

/// The pools' task timeout, in ms, and the hanging task's ballast, in MiB.
fn timeout_ms_and_ballast_mib(r: &LeaksResult) -> (f64, u64) {
    (r.timeout_ns as f64 / 1e6, r.ballast_bytes >> 20)
}

/// What the section measured and how, with the run's settings.
fn method(r: &LeaksResult) -> String {
    let (timeout_ms, ballast_mib) = timeout_ms_and_ballast_mib(r);
    let placement = Placement::Pinned(r.pingpong_cpu).describe();
    format!(
        "Leaked threads: N threads (std::thread, default stack) block on one Condvar that \
             nothing signals until the end of the experiment. With all N blocked: the growth of \
             this process's Threads, RSS, USS (Private_Clean + Private_Dirty) and PSS \
             (/proc/self/smaps_rollup), VmSize and VmPTE (/proc/self/status) and the system-wide \
             KernelStack (/proc/meminfo), per thread; the CPU time the blocked threads used, and \
             how often they ran, while the main thread slept for a fixed window \
             (/proc/self/task/TID/schedstat, summed over the N); and a \
             ping-pong round trip over two sync_channel(1)s between two threads pinned to one \
             CPU ({placement}; each round trip is two context switches), measured as every \
             experiment is (calibrated batches, warm-up, median of the batch means). Then the \
             Condvar is signalled, every thread joined, and the thread count must be back. \
             The baseline is taken after the library's one lifelong thread (the fork server's reader, \
             started with the first process pool) exists. Counts above half the headroom under threads-max, pid_max, RLIMIT_NPROC and the \
             cgroup's pids.max are skipped. A hanging task: one task touches a {ballast_mib} MiB \
             ballast and waits on a gate nobody opens, on a one-worker pool with a {timeout_ms:.0} \
             ms task_timeout. Process pool: the worker's USS growth is sampled while it hangs; \
             after the timeout, the replacement worker's USS against the old worker's before the \
             hang. Thread pool: this process's RSS and thread growth after the pool served its \
             next task, then the gate is opened and the stuck thread ends. Recovery = from the \
             TimedOut error being returned to the next task's result. Medians over {} \
             repetitions.",
        r.process_timeouts.len()
    )
}

/// Per blocked-thread count: the ping-pong beside them, their CPU time, and what each pins.
fn point_figures(section: &mut Section, r: &LeaksResult) {
    let placement = Placement::Pinned(r.pingpong_cpu).describe();
    for p in &r.points {
        let n = p.threads;
        let m = p.pingpong.figure(
            &format!("leaks.pingpong.{n}"),
            &format!("ping-pong round trip beside {n} blocked threads"),
        );
        section.figures.push(m.placed(&placement));
        if n == 0 {
            continue;
        }
        if let (Some(ns), Some(runs)) = (p.blocked_cpu_ns, p.blocked_runs) {
            let window = p.idle_window_ns / 1e6;
            section.figures.push(Figure::new(
                &format!("leaks.blocked_cpu.{n}"),
                &format!("CPU time of all {n} blocked threads over {window:.0} ms"),
                ns,
                Unit::Ns,
            ));
            section.figures.push(Figure::new(
                &format!("leaks.blocked_runs.{n}"),
                &format!("times the {n} blocked threads ran over {window:.0} ms"),
                runs,
                Unit::Count,
            ));
        }
        section.figures.push(Figure::new(
            &format!("leaks.threads_added.{n}"),
            &format!("threads added by {n} leaked threads"),
            p.threads_added,
            Unit::Count,
        ));
        for (name, what, v) in [
            ("rss", "RSS", p.rss_bytes),
            ("uss", "USS", p.uss_bytes),
            ("pss", "PSS", p.pss_bytes),
            ("virtual", "virtual size", p.virtual_bytes),
            ("page_tables", "page tables", p.page_table_bytes),
            (
                "kernel_stack",
                "kernel stack (system-wide)",
                p.kernel_stack_bytes,
            ),
        ] {
            // /proc counts in 4 KiB pages (KiB for VmPTE): a growth below one page shared
            // among N threads cannot be resolved.
            section.figures.push(
                Figure::new(
                    &format!("leaks.{name}_per_thread.{n}"),
                    &format!("{what} per leaked thread ({n})"),
                    v,
                    Unit::Bytes,
                )
                .with_resolution(4096.0 / n as f64),
            );
        }
        section.figures.push(Figure::new(
            &format!("leaks.spawn_per_thread.{n}"),
            &format!("spawn until blocked, per thread ({n})"),
            p.spawn_ns,
            Unit::Ns,
        ));
    }
}

/// The hanging task under each pool: memory held and kept, threads leaked, recovery.
fn timeout_figures(section: &mut Section, r: &LeaksResult) {
    for (mode, runs) in [
        ("process", &r.process_timeouts),
        ("thread", &r.thread_timeouts),
    ] {
        let med = |f: fn(&TimeoutRun) -> f64| median(runs.iter().map(f));
        section.figures.push(Figure::new(
            &format!("leaks.timeout.{mode}.held"),
            &format!("memory the hanging task held, {mode} pool"),
            med(|t| t.held_bytes),
            Unit::Bytes,
        ));
        section.figures.push(Figure::new(
            &format!("leaks.timeout.{mode}.after"),
            &format!("memory still held once the {mode} pool served again"),
            med(|t| t.after_bytes),
            Unit::Bytes,
        ));
        section.figures.push(Figure::new(
            &format!("leaks.timeout.{mode}.threads_leaked"),
            &format!("threads still in this process once the {mode} pool served again"),
            med(|t| t.threads_leaked),
            Unit::Count,
        ));
        let (rec, spread) =
            median_and_spread(&runs.iter().map(|t| t.recovery_ns).collect::<Vec<_>>());
        let mut f = Figure::new(
            &format!("leaks.timeout.{mode}.recovery"),
            &format!("TimedOut returned until the {mode} pool served again"),
            rec,
            Unit::Ns,
        );
        if let Some(s) = spread {
            f = f.with_spread(s);
        }
        section.figures.push(f);
    }
}

/// Blocked threads: what each pins and what they cost, per count.
fn points_table(r: &LeaksResult) -> Table {
    Table {
        title: "Blocked threads: what each pins, what they cost".to_string(),
        columns: [
            "threads",
            "added",
            "RSS/thread KiB",
            "USS/thread KiB",
            "virtual/thread MiB",
            "their CPU µs",
            "ping-pong µs",
            "spawn µs/thread",
        ]
        .map(String::from)
        .to_vec(),
        rows: r
            .points
            .iter()
            .map(|p| {
                let per = |cell: String| {
                    if p.threads == 0 {
                        "-".to_string()
                    } else {
                        cell
                    }
                };
                vec![
                    p.threads.to_string(),
                    format!("{:.0}", p.threads_added),
                    per(kib(p.rss_bytes)),
                    per(kib(p.uss_bytes)),
                    per(mib(p.virtual_bytes)),
                    per(p
                        .blocked_cpu_ns
                        .map_or("n/a".to_string(), |ns| format!("{:.1}", ns / 1e3))),
                    format!("{:.2}", p.pingpong.value() / 1e3),
                    per(format!("{:.1}", p.spawn_ns / 1e3)),
                ]
            })
            .collect(),
    }
}

/// The hanging task under each pool, medians.
fn timeout_table(r: &LeaksResult) -> Table {
    let (timeout_ms, ballast_mib) = timeout_ms_and_ballast_mib(r);
    Table {
        title: format!(
            "A task that hangs holding {ballast_mib} MiB, {timeout_ms:.0} ms task_timeout (medians)"
        ),
        columns: [
            "pool",
            "outcome",
            "held MiB",
            "after MiB",
            "threads leaked",
            "recovery ms",
        ]
        .map(String::from)
        .to_vec(),
        rows: [
            ("process", &r.process_timeouts),
            ("thread", &r.thread_timeouts),
        ]
        .into_iter()
        .map(|(mode, runs)| {
            vec![
                mode.to_string(),
                runs.first().map(|t| t.outcome.clone()).unwrap_or_default(),
                mib(median(runs.iter().map(|t| t.held_bytes))),
                mib(median(runs.iter().map(|t| t.after_bytes))),
                format!("{:.0}", median(runs.iter().map(|t| t.threads_leaked))),
                format!("{:.1}", median(runs.iter().map(|t| t.recovery_ns)) / 1e6),
            ]
        })
        .collect(),
    }
}

/// Resident and reserved memory per blocked thread, against their count.
fn per_thread_chart(r: &LeaksResult) -> Chart {
    let leaked: Vec<&LeakPoint> = r.points.iter().filter(|p| p.threads > 0).collect();
    Chart {
        id: "per-thread".to_string(),
        title: "What a blocked thread pins: resident and reserved memory".to_string(),
        kind: ChartKind::Line,
        x_label: "blocked threads".to_string(),
        y_label: "KiB per thread".to_string(),
        x_unit: AxisUnit::Plain,
        y_unit: AxisUnit::Kib,
        x_log: true,
        y_log: true,
        categories: Vec::new(),
        series: [
            (
                "RSS",
                (|p: &LeakPoint| p.rss_bytes) as fn(&LeakPoint) -> f64,
            ),
            ("USS", |p| p.uss_bytes),
            ("virtual", |p| p.virtual_bytes),
        ]
        .into_iter()
        .map(|(name, f)| Series {
            name: name.to_string(),
            points: leaked
                .iter()
                .filter(|p| f(p) > 0.0)
                .map(|p| (p.threads as f64, f(p) / 1024.0))
                .collect(),
        })
        .collect(),
    }
}

/// The ping-pong round trip beside each count of blocked threads.
fn scheduler_chart(r: &LeaksResult) -> Chart {
    Chart {
        id: "scheduler".to_string(),
        title: "Ping-pong round trip beside N blocked threads".to_string(),
        kind: ChartKind::Bar,
        x_label: "blocked threads".to_string(),
        y_label: "round trip".to_string(),
        x_unit: AxisUnit::Plain,
        y_unit: AxisUnit::Us,
        x_log: false,
        y_log: false,
        categories: r.points.iter().map(|p| p.threads.to_string()).collect(),
        series: vec![Series {
            name: "median".to_string(),
            points: r
                .points
                .iter()
                .enumerate()
                .map(|(i, p)| (i as f64, p.pingpong.value() / 1e3))
                .collect(),
        }],
    }
}

/// Threads that changed meanwhile, skipped counts, the stuck thread's memory, and how to
/// read virtual size and KernelStack.
fn notes(section: &mut Section, r: &LeaksResult) {
    if r.threads_after != r.threads_before {
        section.notes.push(format!(
            "This process had {} threads after the experiment and {} before: every thread the \
             experiment started is gone (checked by id), so the difference is another part of \
             the program starting or ending threads meanwhile.",
            r.threads_after, r.threads_before
        ));
    }
    if !r.skipped.is_empty() {
        section.notes.push(format!(
            "Skipped {:?} threads: the limits leave room for {} more here, and the lab takes at \
             most half of it.",
            r.skipped, r.thread_headroom
        ));
    }
    if let Some(t) = r.thread_timeouts.first()
        && let Some(released) = t.after_release_bytes
    {
        section.notes.push(format!(
            "Once the gate opened, the stuck thread returned and ended, and this process's RSS \
             was {} MiB above its level before the hang: the memory came back only when the \
             task itself gave up.",
            mib(released)
        ));
    }
    section.notes.push(
        "Virtual size per thread is its reserved stack (2 MiB by default, plus a guard page) \
         and, for the first threads to allocate, a glibc malloc arena each (64 MiB of address \
         space, up to 8 per CPU): reserved, not resident, which is why it falls per thread as N \
         grows while RSS stays a few pages."
            .to_string(),
    );
    section.notes.push(
        "KernelStack is system-wide: other processes starting or ending during the sample move \
         it."
        .to_string(),
    );
}

//! The spawn section, from the measured rows: the method, every method's figures, the ratios,
//! the table, the chart, the published figures beside ours and the notes.

use super::*;
use crate::units::AxisUnit;

/// The section of a spawn run: every method's figures, the ratios, the table, the chart, the
/// published anchors and the notes, in the order the report shows them.
pub(super) fn section(plan: &Plan, sizing: &Sizing, result: &SpawnResult) -> Section {
    let rows = &result.rows;
    let mut s = Section::new("spawn", "Creation overhead", &method(plan, sizing));
    row_figures(&mut s, rows);
    ratio_figures(&mut s);
    s.tables.push(rss_table(rows));
    s.charts.push(rss_chart(rows));
    s.published = published(&s);
    notes(&mut s, result);
    s.set_data(result);
    s
}

/// What the section measured and how, with the run's settings.
fn method(plan: &Plan, sizing: &Sizing) -> String {
    format!(
        "One op = create + first instruction + exit + reap: the interval starts before the create \
         call and ends when join/waitpid/.await returns, and the reap checks the child ran (its \
         join value or exit code, which carries the CPU its first instruction ran on). Thread: \
         std::thread::spawn + join. Fork: fork, the child calls getcpu and _exit, the parent \
         waitpid()s. vfork: clone(CLONE_VM | CLONE_VFORK), the child (on a stack of its own, \
         in the parent's memory) returns at once into the raw exit system call, the parent \
         suspended until then, then waitpid. clone(CLONE_VM): the same without CLONE_VFORK. \
         posix_spawn: {TRUE_PATH} with an empty environment, then waitpid. Placement: these are \
         timed op by op (Instant around each op) with parent and child pinned to one CPU (two \
         context switches per op, no wake-up across CPUs), and thread and fork at the smallest \
         parent also across the nearest pair of CPUs, the parent pinned to the first (two \
         cross-CPU wake-ups per op: the child's start and the parent's after the exit): the \
         thread is made there with pthread_create and glibc's affinity attribute (it waits \
         until its CPU is set; std's spawn has no such attribute, so this op is pthread_create \
         + pthread_join, with std's 2 MiB stack), the forked child is moved there by one \
         sched_setaffinity right after fork returns, inside the interval. The child reports \
         the CPU it ran on, and only ops that ran on the placement make its figure (none \
         without a quarter of them); the rest are listed as a mixture. Per placement {rounds} rounds (thread and fork at the smallest \
         parent; one round otherwise) of ops sized to about {target} ms (at least {min} ops) after \
         {warmup} warm-up ops; figure = median of the rounds' per-op medians, with p1–p99 over \
         every op and the rounds' run-to-run spread. Launch (thread, fork) = the create call's \
         own return in the parent, without the child's run and the reap. Parent size: the parent \
         maps and touches a ballast of the given size (rule 6), with MADV_NOHUGEPAGE on it (4 KiB \
         pages) and, where the system THP mode allows, again with MADV_HUGEPAGE for fork (THP \
         on); the huge pages the process really had are read from AnonHugePages. Tokio: \
         tokio::spawn + .await on a current-thread runtime. Pool worker: \
         proctor::Pool::processes(1).build(), submit(trivial fn).join(), drop (kills and reaps the \
         worker); the worker is forked by the pool's fork server, not by this parent; with \
         StartMethod::Exec it then re-executes this binary (a fresh address space). Remote worker: \
         the same with .remote(Remote::command(\"exec {{exe}}\", [\"localhost\"])) listening on \
         127.0.0.1: /bin/sh -c execs this binary, which becomes an agent in proctor::init(), \
         connects back over loopback TCP with an HMAC challenge-response and forks the worker, \
         which connects and authenticates on its own; the drop closes the connections and waits \
         for the launched process to exit. Its time from the start of build() to the first result \
         (no drop) is reported apart. The pool rows are unpinned (the fork server is a process of \
         its own, which pinning this thread does not place); tokio runs on this thread, pinned \
         like the thread and fork rows. Both are timed by the batch loop: figure = median over \
         {} batches of the batch mean (batches calibrated to >= {} ms after {} warm-up batches), \
         spread per op where the timer is cheap enough; tokio in 3 independent rounds. Outliers by modified Z-score > 3.5, kept. The first op of each kind \
         is reported apart as the cold start.",
        plan.batches,
        plan.min_batch.as_secs_f64() * 1e3,
        plan.warmup_batches,
        rounds = ROUNDS,
        target = sizing.target.as_millis(),
        min = sizing.min_ops,
        warmup = sizing.warmup,
    )
}

/// Where a row ran, for its figure: the pair, with the share of ops that ran there when some
/// did not; "unpinned" for the rest.
fn placement(r: &Row) -> String {
    match (r.pair, r.matched) {
        (Some(p), Some((m, n))) if m < n => format!("{} ({m} of {n} ops)", p.describe()),
        (Some(p), _) => p.describe(),
        (None, _) => "unpinned".to_string(),
    }
}

/// What a row created: its method's label, except the across-CPU thread, which std cannot
/// place before it runs (see `create::thread_on`).
fn what(r: &Row) -> &'static str {
    if r.method == Method::Thread && r.is_cross() && cfg!(target_env = "gnu") {
        "pthread_create with an affinity attribute + pthread_join"
    } else {
        r.method.label()
    }
}

/// The label of a row: what it created, its placement and its parent.
fn label(r: &Row) -> String {
    let mut label = what(r).to_string();
    if r.is_cross() {
        label.push_str(", across CPUs");
    } else if r.pair.is_some() {
        label.push_str(", same CPU");
    }
    if r.ballast_bytes > 0 {
        label.push_str(&format!(
            " with a {} MiB parent, THP {}",
            r.ballast_bytes / MIB,
            r.thp.words()
        ));
    }
    label
}

/// Every method, placement and parent size: the creation cost, its cold start, the launch
/// part and, for the remote worker, the first result.
fn row_figures(s: &mut Section, rows: &[Row]) {
    for r in rows {
        let key = r.key();
        let small = r.ballast_bytes == 0;
        if let (true, Some(first)) = (small, r.first_result_ns) {
            s.figures.push(
                Figure::new(
                    &format!("{key}.first_result"),
                    &format!(
                        "{} (build to first result, drop not timed)",
                        r.method.label()
                    ),
                    first.median,
                    Unit::Ns,
                )
                .with_spread(first.spread())
                .placed("unpinned"),
            );
        }
        s.figures.push(
            r.timing
                .figure(&key, &label(r))
                .with_rounds(&r.rounds_ns)
                .placed(&placement(r)),
        );
        if small && !r.is_cross() {
            s.figures.push(
                Figure::new(
                    &format!("{key}.cold"),
                    &format!("{} (cold start, first op)", label(r)),
                    r.timing.cold_ns,
                    Unit::Ns,
                )
                .placed(&placement(r)),
            );
        }
        if let (true, Some(launch)) = (small && r.method.is_headline(), r.launch_ns) {
            let launch_key = if r.is_cross() {
                format!("spawn.{}.launch.cross_cpu", r.method.key())
            } else {
                format!("spawn.{}.launch", r.method.key())
            };
            s.figures.push(
                Figure::new(
                    &launch_key,
                    &format!(
                        "{}: the create call's return in the parent (no join or wait)",
                        label(r)
                    ),
                    launch.median,
                    Unit::Ns,
                )
                .with_spread(launch.spread())
                .placed(&placement(r)),
            );
        }
    }
}

/// The classic ratios between methods, where both figures were measured.
fn ratio_figures(s: &mut Section) {
    let ratio = |a: &str, b: &str| -> Option<f64> { Some(s.figure(a)?.value / s.figure(b)?.value) };
    let ratios: Vec<Figure> = [
        (
            "spawn.fork_over_thread",
            "fork / thread spawn (small parent, same CPU)",
            keys::SPAWN_FORK,
            keys::SPAWN_THREAD,
        ),
        (
            "spawn.fork_over_thread.cross_cpu",
            "fork / thread spawn (small parent, across CPUs)",
            keys::SPAWN_FORK_CROSS_CPU,
            keys::SPAWN_THREAD_CROSS_CPU,
        ),
        (
            "spawn.thread.cross_over_same",
            "thread spawn across CPUs / on one CPU",
            keys::SPAWN_THREAD_CROSS_CPU,
            keys::SPAWN_THREAD,
        ),
        (
            "spawn.fork_over_vfork",
            "fork / vfork (small parent, same CPU)",
            keys::SPAWN_FORK,
            "spawn.vfork",
        ),
        (
            "spawn.posix_spawn_over_thread",
            "posix_spawn / thread spawn",
            "spawn.posix_spawn",
            keys::SPAWN_THREAD,
        ),
        (
            "spawn.thread_over_async",
            "thread spawn / tokio task",
            keys::SPAWN_THREAD,
            keys::SPAWN_ASYNC,
        ),
        (
            "spawn.pool_worker_over_fork",
            "pool worker (fork server, unpinned) / fork (small parent, same CPU)",
            keys::SPAWN_POOL_WORKER,
            keys::SPAWN_FORK,
        ),
        (
            "spawn.pool_exec_over_pool_worker",
            "pool worker re-executing the binary / forked pool worker",
            "spawn.pool_exec",
            keys::SPAWN_POOL_WORKER,
        ),
        (
            "spawn.pool_remote_over_pool_worker",
            "remote worker (command launcher, loopback) / forked pool worker",
            keys::SPAWN_POOL_REMOTE,
            keys::SPAWN_POOL_WORKER,
        ),
        (
            "spawn.pool_remote_over_pool_exec",
            "remote worker (command launcher, loopback) / pool worker re-executing the binary",
            keys::SPAWN_POOL_REMOTE,
            "spawn.pool_exec",
        ),
    ]
    .into_iter()
    .filter_map(|(k, l, a, b)| Some(Figure::new(k, l, ratio(a, b)?, Unit::Ratio)))
    .collect();
    s.figures.extend(ratios);
}

/// The creation cost against the parent's resident memory, every row.
fn rss_table(rows: &[Row]) -> Table {
    let mib = |b: f64| format!("{:.0} MiB", b / MIB as f64);
    Table {
        title: "Creation cost against the parent's resident memory".into(),
        columns: [
            "method",
            "placement",
            "ballast",
            "THP",
            "parent RSS",
            "in huge pages",
            "median",
            "p1",
            "p99",
            "cold start",
            "ops",
        ]
        .map(String::from)
        .to_vec(),
        rows: rows
            .iter()
            .map(|r| {
                let sum = &r.timing.spread;
                vec![
                    what(r).to_string(),
                    placement(r),
                    format!("{} MiB", r.ballast_bytes / MIB),
                    r.thp.words().to_string(),
                    mib(r.parent_rss_bytes as f64),
                    r.anon_huge_bytes
                        .map_or("-".to_string(), |b| mib((b as f64).max(0.0))),
                    micros(r.timing.value_ns, 1),
                    micros(sum.p1, 1),
                    micros(sum.p99, 1),
                    micros(r.timing.cold_ns, 1),
                    format!("{} ({} outliers)", sum.samples, sum.outliers),
                ]
            })
            .collect(),
    }
}

/// The creation cost against the parent's RSS, per method and huge-page advice, on the same
/// CPU (the pool rows unpinned): the shape of Baumann et al. 2019, Figure 1.
fn rss_chart(rows: &[Row]) -> Chart {
    let mut names: Vec<(Method, bool)> = Vec::new();
    for r in rows.iter().filter(|r| !r.is_cross()) {
        let id = (r.method, r.thp == Thp::On);
        if RSS_METHODS.contains(&r.method) && !names.contains(&id) {
            names.push(id);
        }
    }
    let series = names
        .into_iter()
        .map(|(m, thp)| Series {
            name: if thp {
                format!("{} (THP on)", m.label())
            } else {
                m.label().to_string()
            },
            points: rows
                .iter()
                // The smallest parent has no ballast to advise: both fork lines start there.
                .filter(|r| {
                    r.method == m
                        && !r.is_cross()
                        && ((r.thp == Thp::On) == thp || (thp && r.thp == Thp::None))
                })
                .map(|r| (r.parent_rss_bytes as f64 / MIB as f64, r.timing.value_ns))
                .collect(),
        })
        .collect();
    Chart {
        id: "cost-vs-rss".into(),
        title: "Creation cost against parent RSS (same CPU, the pool rows unpinned; after Baumann \
                et al. 2019, Figure 1)"
            .into(),
        kind: ChartKind::Line,
        x_label: "parent RSS".into(),
        y_label: "time per create + exit + reap".into(),
        x_unit: AxisUnit::Mib,
        y_unit: AxisUnit::Ns,
        x_log: false,
        y_log: true,
        categories: Vec::new(),
        series,
    }
}

/// The published figures for the same quantities, where we measured them: only numbers
/// stated in their source, with its machine.
fn published(s: &Section) -> Vec<Published> {
    const TLPI: &str = "Kerrisk 2010, The Linux Programming Interface, table 28-3 (100 000 \
                        creations, each waited for; 1.70 MB parent VSZ)";
    const TLPI_HW: &str = "x86-32, Linux 2.6.27";
    const BENDERSKY: &str = "Bendersky 2018, \"Launching Linux threads and processes with \
                             clone\" (launch-benchmark.c; plotted data, 0 MB extra)";
    const BENDERSKY_HW: &str = "the author's Linux machine, 2018 (model not given with the data)";
    let anchors = [
        (
            keys::SPAWN_FORK,
            "fork() + child exit + wait",
            222.7e3,
            TLPI,
            TLPI_HW,
        ),
        (
            "spawn.vfork",
            "vfork() + child exit + wait",
            35.2e3,
            TLPI,
            TLPI_HW,
        ),
        (
            "spawn.clone_vm",
            "clone() sharing memory + child exit + wait",
            29.7e3,
            TLPI,
            TLPI_HW,
        ),
        (
            "spawn.thread.launch",
            "pthread_create's return (launch only, no join)",
            5.5e3,
            BENDERSKY,
            BENDERSKY_HW,
        ),
        (
            "spawn.fork.launch",
            "fork()'s return in the parent (launch only, no wait)",
            22.3e3,
            BENDERSKY,
            BENDERSKY_HW,
        ),
    ];
    anchors
        .into_iter()
        .filter(|(key, ..)| s.figure(key).is_some())
        .map(|(key, what, ns, source, hw)| Published::new(key, what, ns, Unit::Ns, source, hw))
        .collect()
}

/// The system THP mode, how fork grows with the parent with and without huge pages, what the
/// placement does, the remote start, and what was skipped.
fn notes(s: &mut Section, result: &SpawnResult) {
    let rows = &result.rows;
    s.notes.push(match &result.thp_mode {
        Some(mode) => format!(
            "System THP mode: {mode} (/sys/kernel/mm/transparent_hugepage/enabled). Each ballast \
             is advised on its own (MADV_NOHUGEPAGE for the THP-off rows, MADV_HUGEPAGE for the \
             THP-on rows), without privileges; the \"in huge pages\" column is what the process \
             really had (AnonHugePages).{}",
            if mode == "never" {
                " THP is off system-wide, so no THP-on rows were measured."
            } else {
                ""
            }
        ),
        None => "No transparent huge pages on this kernel: THP-off rows only.".to_string(),
    });
    let same = |m: Method, thp: Thp| {
        rows.iter()
            .filter(move |r| r.method == m && r.thp == thp && r.pair.is_some() && !r.is_cross())
    };
    let fork_small = same(Method::Fork, Thp::None).next();
    let largest = |thp| same(Method::Fork, thp).max_by_key(|r| r.ballast_bytes);
    if let (Some(small), Some(big)) = (fork_small, largest(Thp::Off)) {
        let mut text = format!(
            "fork grows with the parent (same CPU): {} at {:.0} MiB RSS (4 KiB pages) vs {} at \
             {:.0} MiB ({:.1}x)",
            micros(big.timing.value_ns, 1),
            big.parent_rss_bytes as f64 / MIB as f64,
            micros(small.timing.value_ns, 1),
            small.parent_rss_bytes as f64 / MIB as f64,
            big.timing.value_ns / small.timing.value_ns,
        );
        if let Some(huge) = largest(Thp::On).filter(|h| h.ballast_bytes == big.ballast_bytes) {
            text.push_str(&format!(
                "; with huge pages asked for on the same {} MiB ballast, {} ({:.1}x less; {} in \
                 huge pages): a 2 MiB huge page is one page-table entry to copy instead of 512",
                big.ballast_bytes / MIB,
                micros(huge.timing.value_ns, 1),
                big.timing.value_ns / huge.timing.value_ns,
                huge.anon_huge_bytes
                    .map_or("-".to_string(), |b| format!("{} MiB", b / MIB as u64)),
            ));
        }
        let flat: Vec<String> = [Method::Vfork, Method::CloneVm, Method::Thread]
            .into_iter()
            .filter_map(|m| {
                let small = same(m, Thp::None).next()?;
                let big = same(m, Thp::Off).max_by_key(|r| r.ballast_bytes)?;
                Some(format!(
                    "{} {} -> {}",
                    m.key(),
                    micros(small.timing.value_ns, 1),
                    micros(big.timing.value_ns, 1)
                ))
            })
            .collect();
        if !flat.is_empty() {
            text.push_str(&format!(
                "; sharing the address space copies none: {}",
                flat.join(", ")
            ));
        }
        s.notes.push(text);
    }
    if let (Some(same), Some(cross)) = (
        s.figure(keys::SPAWN_THREAD).map(|f| f.value),
        s.figure(keys::SPAWN_THREAD_CROSS_CPU).map(|f| f.value),
    ) {
        s.notes.push(format!(
            "Placement: a thread spawn + join costs {} with parent and child on one CPU and {} \
             with the child on another ({:.1}x): across CPUs the child's start and the parent's \
             wake-up after its exit are each a cross-CPU wake-up (an IPI and, on a VM, an idle \
             exit), which an unpinned figure mixes in at whatever share the scheduler chose. The \
             across-CPU thread is made by pthread_create with an affinity attribute; the forked \
             child is moved there after fork (create to moved: {}). The creation verdict reads \
             the same-CPU figures.",
            micros(same, 1),
            micros(cross, 1),
            cross / same,
            rows.iter()
                .filter_map(|r| Some(format!(
                    "{} {}",
                    r.method.key(),
                    micros(r.moved_ns?.median, 1)
                )))
                .collect::<Vec<_>>()
                .join(", "),
        ));
    }
    for r in rows.iter().filter(|r| r.mixture.is_some()) {
        if let Some(m) = &r.mixture {
            s.notes.push(format!(
                "{}, {}: {}; the figure keeps the ops that ran on the placement.",
                r.method.label(),
                placement(r),
                m.describe(|v| micros(v, 1))
            ));
        }
    }
    if let Some(note) = remote_note(s) {
        s.notes.push(note);
    }
    s.notes.extend(result.skipped.iter().cloned());
}

/// What the remote-worker row says beside the local pool rows, when it was measured.
fn remote_note(s: &Section) -> Option<String> {
    let value = |k: &str| s.figure(k).map(|f| f.value);
    let whole = value(keys::SPAWN_POOL_REMOTE)?;
    let mut text = format!(
        "remote worker through the command launcher (/bin/sh -c exec, loopback TCP, small \
         parent): {} with the drop",
        micros(whole, 1)
    );
    if let Some(first) = value("spawn.pool_remote.first_result") {
        text.push_str(&format!(", {} to the first result", micros(first, 1)));
    }
    for (key, what) in [
        (keys::SPAWN_POOL_WORKER, "the forked pool worker"),
        ("spawn.pool_exec", "the exec'd pool worker"),
    ] {
        if let Some(v) = value(key) {
            text.push_str(&format!("; {what} {} ({:.1}x)", micros(v, 1), whole / v));
        }
    }
    text.push_str(
        ". The remote start adds to an exec'd worker a shell, the agent's and the worker's TCP \
         connections and handshakes, and the drop waits for the launched process to exit. All of it is on this host, so it is a \
         lower bound: ssh \
         (a connection, key exchange and a remote shell) and srun (a job step) add their own \
         start cost before the agent runs, and a real network adds its round trips to each \
         handshake, none of which is measured here",
    );
    Some(text)
}

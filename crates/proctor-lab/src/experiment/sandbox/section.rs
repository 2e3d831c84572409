//! The sandbox section, from a [`SandboxResult`]: the method, the attack matrix in figures,
//! the cost, the tables, the chart and the notes.

use super::*;
use crate::units::AxisUnit;

/// The section of a sandbox run: the attack matrix's figures, the cost, the tables, the
/// chart and the notes, in the order the report shows them.
pub(super) fn section_from(r: &SandboxResult) -> Section {
    let mut section = Section::new("sandbox", "Process mode as a security boundary", &method(r));
    matrix_figures(&mut section, r);
    let mut cost_rows = start_figures(&mut section, r);
    fresh_task_figures(&mut section, r);
    rtt_figures(&mut section, r, &mut cost_rows);
    section.tables.push(matrix_table(r));
    section.tables.push(layers_table(r));
    section.tables.push(cost_table(cost_rows));
    section.charts.push(worked_chart(r));
    closing_notes(&mut section, r);
    section.set_data(r);
    section
}

/// What the section measured and how, with the run's settings.
fn method(r: &SandboxResult) -> String {
    format!(
        "A compromised task (a plain fn, as a task that gained code execution from hostile \
             input) tries {} attacks in {} classes (each class but the network and processes \
             by more than one route), each attack on a fresh one-worker pool: on a worker thread (Pool::threads(1), the lab's \
             own rights), in a plain worker process (Pool::processes(1)) and in a sandboxed one \
             (Sandbox::compute(), with network_namespace(true) for the capability attacks, \
             built with allow_unavailable so that a missing layer shows instead of stopping the \
             experiment). Files: read /etc/passwd (worked = the same bytes the lab reads), list \
             $HOME, write a file in the temporary directory (removed again). Network: connect \
             to a loopback port the lab listens on (worked = the lab accepted it). Processes: \
             fork {} processes one after another ({} on a thread; each _exits at once and is \
             reaped). The parent: kill(parent, 0), PTRACE_SEIZE the parent (then interrupt, \
             wait, detach). Signals, to a `sleep` the lab starts for each attack (worked = it \
             died of a signal): kill, tgkill, pidfd_send_signal, rt_sigqueueinfo with SIGUSR1, \
             and, on the worker's request pipe, F_SETOWN + F_SETSIG(SIGUSR1) + O_ASYNC, or \
             FIOSETOWN (F_SETOWN where, as on a pipe, there is none) + ioctl(FIOASYNC) \
             (SIGIO), so that the pool's next request signals the victim. The terminal: TIOCSTI \
             on an inherited stdio descriptor that is a terminal with a null byte pointer \
             (EFAULT = every permission check passed; nothing is typed; n/a when the lab has \
             no terminal), and TIOCSTI into a pty the lab opened, reached through \
             /proc/<lab>/fd (worked = the lab reads the typed line). The parent's stdio: \
             zero-length read(0), write(1) and pwrite(1) (worked = allowed, and /proc shows \
             the worker's descriptor is the lab's own), and write(2) of an escape sequence and \
             a line, with the pool's stderr forwarding on and the lab's stderr briefly \
             redirected into a pipe (worked = the line arrives verbatim, or fd 2 is the lab's \
             own). Inherited descriptors: read, or dup and write, every descriptor beyond \
             stdio that is not a memfd (worked = one of them is neither a memfd nor a file the \
             lab holds, by /proc). An initializer's thread (init_worker starts a thread that \
             serves the task over a static channel): it reads /etc/passwd (the same bytes) \
             and connects to the lab's port (accepted). The task timeout ({} ms): the task \
             writes u64::MAX into the arena's STARTED_AT word, or 0 into STARTED, then sleeps \
             {} ms (worked = its own Ok came after that sleep). The memory limit ({} MiB): \
             {} MiB through MAP_SHARED|MAP_ANONYMOUS, an ftruncate-grown arena, or mremap, \
             touched and held 150 ms (worked = the lab saw the worker's VmRSS above the \
             limit). A later task: mprotect(RWX) and patch an innocent task's code, or set a \
             static it returns (worked = the next, innocent task on the same pool returned \
             something else; on a thread the lab undoes both). Shared memory: overwrite every memfd, hold the doorbell's sleeper count at zero \
             (worked = the pool's next map wrong or over a second, \
             or the task's outcome a second late). Capabilities: the worker's CapEff, read by \
             the lab from /proc (worked = not zero), and a raw ICMP socket. Metadata oracles \
             on {}: statx and newfstatat with AT_EMPTY_PATH and a path, faccessat (worked = \
             the lab's own answer), readlink(/proc/<lab>/cwd) (the lab's directory). The \
             filter itself: its own SIGSYS handler around a forbidden getuid (worked = the \
             same worker lives on with the task's Ok) and a faked violation line and exit code \
             (worked = the pool reports a violation), both where a filter is (n/a elsewhere); \
             prctl(PR_SET_NAME, sshd) \
             (worked = the lab sees the name in /proc), FUTEX_CMP_REQUEUE of the doorbell's \
             waiters and FUTEX_TRYLOCK_PI on the arena's header words (judged as the shared \
             memory attacks). Where the lab has no view from \
             outside (home, write, fork, the parent, the raw socket, the inherited terminal) \
             the task's own Ok decides. Every attack is judged with the pool's next map too: \
             64 squares, every value right, within a second; a cell whose map was not counts \
             as worked. Outcome words: WORKED, no effect (the task did its part, the lab saw \
             nothing), refused (a call failed, or the pool would not build), stopped (the \
             sandbox's TaskError::SandboxViolation), task failed (another TaskError), n/a \
             (cannot be set up there, with the reason). Cost: worker start = \
             Pool::processes(1) build + the first task's result (the pool is dropped outside \
             the interval; a sandboxed build includes the round trip that fetches the sandbox \
             report), {} repetitions each after one warm-up, plain, sandboxed, and sandboxed \
             with a fresh network namespace too (Sandbox::network_namespace, a layer asked for \
             apart) interleaved, medians; a task under the preset = submit(trivial \
             fn).join() on a Sandbox::compute() pool, which starts a fresh worker for every \
             task, as many times, median; round trip = submit(trivial fn).join() on a warm \
             one-worker pool (sandboxed: Sandbox::compute().reuse_workers(true), the filters' \
             own cost), calibrated batches (median of the batch means), {} independent \
             round(s) per side with a fresh pool each, the sides alternating which goes \
             first; pinned = the lab and the worker both on one CPU (the worker pins itself in \
             init_worker, before the sandbox, and the lab checks its affinity), unpinned = the \
             scheduler's choice. Targets: start ≤ {START_TARGET}×, round trip ≤ \
             {RTT_TARGET}× (one run, not a verdict; a round-trip ratio over its target whose \
             two sides' rounds overlap (min–max; p1–p99 with one round) is marked within the \
             noise).",
        Attack::ALL.len(),
        classes(),
        r.forks_process,
        r.forks_thread,
        cell::TIMEOUT.as_millis(),
        attack::TIMEOUT_SLEEP.as_millis(),
        cell::MEMORY_LIMIT >> 20,
        attack::LIMIT_BYTES >> 20,
        r.oracle_path,
        r.cost.start_plain_ns.len(),
        r.cost.rtt.first().map_or(0, |x| x.plain_rounds.len()),
    )
}

/// The attack matrix in figures: what was tried and what worked, by where the task ran.
fn matrix_figures(section: &mut Section, r: &SandboxResult) {
    let n = |key: &str, label: &str, v: f64| Figure::new(key, label, v, Unit::Count);
    section.figures.push(n(
        "sandbox.attacks",
        "attacks in the matrix",
        Attack::ALL.len() as f64,
    ));
    for place in Place::ALL {
        section.figures.push(n(
            &format!("sandbox.tried.{}", place.key()),
            &format!("attacks tried (not n/a), {}", place.label()),
            tried(&r.cells, place) as f64,
        ));
        section.figures.push(n(
            &format!("sandbox.worked.{}", place.key()),
            &format!("attacks that worked, {}", place.label()),
            worked(&r.cells, place).len() as f64,
        ));
    }
    let sandboxed_tried = tried(&r.cells, Place::Sandboxed);
    let sandboxed_worked = worked(&r.cells, Place::Sandboxed);
    section.figures.push(n(
        keys::SANDBOX_STOPPED_SANDBOXED,
        "attacks tried in a sandboxed worker that did not work",
        (sandboxed_tried - sandboxed_worked.len()) as f64,
    ));
    let broken = r
        .cells
        .iter()
        .filter(|c| c.pool_intact == Some(false))
        .count();
    section.figures.push(n(
        keys::SANDBOX_POOL_BROKEN,
        "attacks after which the pool's next map was not all right",
        broken as f64,
    ));
    section.notes.push(format!(
        "Sandboxed worker: {} of {} stopped.{}",
        sandboxed_tried - sandboxed_worked.len(),
        sandboxed_tried,
        if sandboxed_worked.is_empty() {
            String::new()
        } else {
            format!(
                " Worked: {}.",
                sandboxed_worked
                    .iter()
                    .map(|c| c.attack.key())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
    ));
    let missing = unavailable(&r.report);
    section.figures.push(n(
        "sandbox.layers_unavailable",
        "sandbox layers asked for but unavailable on this kernel",
        missing.len() as f64,
    ));
}

/// What a worker start costs, plain, sandboxed and with a network namespace; the first row
/// of the cost table.
fn start_figures(section: &mut Section, r: &SandboxResult) -> Vec<Vec<String>> {
    let start = |key: &str, label: &str, v: &[f64]| {
        let (median, spread) = crate::stats::median_and_spread(v);
        let mut f = Figure::new(key, label, median, Unit::Ns).placed("unpinned");
        if let Some(s) = spread {
            f = f.with_spread(s);
        }
        f
    };
    let plain_start = crate::stats::median(&r.cost.start_plain_ns);
    let sandboxed_start = crate::stats::median(&r.cost.start_sandboxed_ns);
    section.figures.push(start(
        "sandbox.start.plain",
        "worker start (build + first result), no sandbox",
        &r.cost.start_plain_ns,
    ));
    section.figures.push(start(
        "sandbox.start.sandboxed",
        "worker start (build + first result), Sandbox::compute()",
        &r.cost.start_sandboxed_ns,
    ));
    section.figures.push(start(
        "sandbox.start.netns",
        "worker start (build + first result), Sandbox::compute().network_namespace(true)",
        &r.cost.start_netns_ns,
    ));
    section.figures.push(
        Figure::new(
            "sandbox.start.ratio",
            "worker start, sandboxed / plain",
            sandboxed_start / plain_start,
            Unit::Ratio,
        )
        .placed("unpinned"),
    );
    let cost_rows = vec![cost_row(
        "worker start",
        "unpinned",
        (plain_start, sandboxed_start),
        // Single starts' p1–p99 measure the machine's tail (one preempted fork), not the
        // uncertainty of their median: no noise range, a plain yes or no.
        (None, None),
        START_TARGET,
    )];
    let netns_start = crate::stats::median(&r.cost.start_netns_ns);
    if netns_start.is_finite() {
        section.notes.push(format!(
            "Worker start: {} plain, {} sandboxed, {} with a fresh network namespace too \
             (Sandbox::compute().network_namespace(true), a layer asked for apart): the \
             namespace alone adds {}.",
            crate::units::format_value(plain_start, Unit::Ns),
            crate::units::format_value(sandboxed_start, Unit::Ns),
            crate::units::format_value(netns_start, Unit::Ns),
            crate::units::format_value(netns_start - sandboxed_start, Unit::Ns),
        ));
    }
    cost_rows
}

/// What a task costs under the preset, which starts a fresh worker for each.
fn fresh_task_figures(section: &mut Section, r: &SandboxResult) {
    let fresh = crate::stats::median(&r.cost.fresh_task_ns);
    if fresh.is_finite() {
        section.figures.push(
            Figure::new(
                "sandbox.task.fresh",
                "a task under Sandbox::compute() (a fresh worker each: its start included)",
                fresh,
                Unit::Ns,
            )
            .placed("unpinned"),
        );
        if let Some(x) = r
            .cost
            .rtt
            .iter()
            .find(|x| x.placement == Placement::Unpinned)
        {
            section.notes.push(format!(
                "Under the preset every task gets a fresh worker, so that no task can decide \
                 what a later one returns: a task costs {} there (median of {}), against {} \
                 for a round trip on a reused plain worker ({:.0}×). A sandbox with \
                 reuse_workers(true) keeps the round trip's cost (the rows above) and gives \
                 that guarantee up.",
                crate::units::format_value(fresh, Unit::Ns),
                r.cost.fresh_task_ns.len(),
                crate::units::format_value(x.plain.value(), Unit::Ns),
                fresh / x.plain.value(),
            ));
        }
    }
}

/// A task's round trip on a reused worker, plain and sandboxed, per placement; a row each.
fn rtt_figures(section: &mut Section, r: &SandboxResult, cost_rows: &mut Vec<Vec<String>>) {
    for x in &r.cost.rtt {
        let p = x.placement.key();
        let placed = x.placement.describe();
        section.figures.push(
            x.plain
                .figure(
                    &format!("sandbox.rtt.plain.{p}"),
                    "task round trip, no sandbox",
                )
                .placed(&placed)
                .with_rounds(&x.plain_rounds),
        );
        section.figures.push(
            x.sandboxed
                .figure(
                    &format!("sandbox.rtt.sandboxed.{p}"),
                    "task round trip, Sandbox::compute().reuse_workers(true)",
                )
                .placed(&placed)
                .with_rounds(&x.sandboxed_rounds),
        );
        section.figures.push(
            Figure::new(
                &format!("sandbox.rtt.ratio.{p}"),
                "task round trip, sandboxed / plain",
                x.sandboxed.value() / x.plain.value(),
                Unit::Ratio,
            )
            .placed(&placed),
        );
        cost_rows.push(cost_row(
            "task round trip",
            &placed,
            (x.plain.value(), x.sandboxed.value()),
            (
                noise(&x.plain_rounds, Some(x.plain.summary())),
                noise(&x.sandboxed_rounds, Some(x.sandboxed.summary())),
            ),
            RTT_TARGET,
        ));
    }
}

/// What a compromised task got, attack by attack and place by place.
fn matrix_table(r: &SandboxResult) -> Table {
    Table {
        title: "What a compromised task got, by where it ran".to_string(),
        columns: [
            "class",
            "attack",
            "thread",
            "plain process",
            "sandboxed process",
        ]
        .map(String::from)
        .to_vec(),
        rows: Attack::ALL
            .iter()
            .map(|&a| {
                let mut row = vec![a.class().label().to_string(), a.label().to_string()];
                for place in Place::ALL {
                    let cell = r.cells.iter().find(|c| c.attack == a && c.place == place);
                    row.push(match cell {
                        Some(c) => {
                            let after = match c.pool_intact {
                                Some(false) => " [POOL BROKEN AFTER]",
                                _ => "",
                            };
                            format!("{}{after}", c.outcome.cell())
                        }
                        None => "not run".to_string(),
                    });
                }
                row
            })
            .collect(),
    }
}

/// Each sandbox layer and whether this kernel applied it.
fn layers_table(r: &SandboxResult) -> Table {
    Table {
        title: "The compute sandbox's layers on this kernel".to_string(),
        columns: ["layer", "status"].map(String::from).to_vec(),
        rows: r
            .report
            .layers
            .iter()
            .map(|l| {
                vec![
                    l.name.clone(),
                    match &l.status {
                        LayerStatus::Applied => "applied".to_string(),
                        LayerStatus::NotAsked => "not asked for".to_string(),
                        LayerStatus::Unavailable(why) => format!("UNAVAILABLE: {why}"),
                    },
                ]
            })
            .collect(),
    }
}

/// What the sandbox costs, one row per figure.
fn cost_table(cost_rows: Vec<Vec<String>>) -> Table {
    Table {
        title: "What the sandbox costs".to_string(),
        columns: [
            "figure",
            "placement",
            "plain",
            "sandboxed",
            "ratio",
            "target",
            "met",
        ]
        .map(String::from)
        .to_vec(),
        rows: cost_rows,
    }
}

/// Attacks tried and attacks that worked, by where the task ran.
fn worked_chart(r: &SandboxResult) -> Chart {
    Chart {
        id: "worked".to_string(),
        title: "Attacks that worked, by where the task ran".to_string(),
        kind: ChartKind::Bar,
        x_label: "where the task ran".to_string(),
        y_label: "attacks that worked".to_string(),
        x_unit: AxisUnit::Plain,
        y_unit: AxisUnit::Plain,
        x_log: false,
        y_log: false,
        categories: Place::ALL.iter().map(|p| p.label().to_string()).collect(),
        series: vec![
            Series {
                name: "tried".to_string(),
                points: Place::ALL
                    .iter()
                    .enumerate()
                    .map(|(i, &p)| (i as f64, tried(&r.cells, p) as f64))
                    .collect(),
            },
            Series {
                name: "worked".to_string(),
                points: Place::ALL
                    .iter()
                    .enumerate()
                    .map(|(i, &p)| (i as f64, worked(&r.cells, p).len() as f64))
                    .collect(),
            },
        ],
    }
}

/// Layers that were missing, what a thread is, and a listener that disagrees with the attacks.
fn closing_notes(section: &mut Section, r: &SandboxResult) {
    let missing = unavailable(&r.report);
    if !missing.is_empty() {
        section.notes.push(format!(
            "WARNING: the compute sandbox ran WITHOUT these layers, which this kernel or this \
             process's privileges do not give: {}. The sandboxed column shows what a task \
             can do with the rest.",
            missing.join("; ")
        ));
    }
    section.notes.push(
        "A thread is not a boundary: it has every right of its process, so what the OS lets \
         the lab do, a task on a thread does (the thread column); its n/a cells are attacks a \
         thread needs no trick for. A plain worker process has the lab's user, files and stdio \
         too: it is a boundary against crashes, not against a hostile task."
            .to_string(),
    );
    let connects = r
        .cells
        .iter()
        .filter(|c| {
            matches!(c.attack, Attack::Connect | Attack::InitThreadConnect) && c.outcome.worked()
        })
        .count() as u64;
    if connects != r.connections_seen {
        section.notes.push(format!(
            "The lab's listener saw {} connection(s) where {connects} connect attack(s) \
             reported success.",
            r.connections_seen
        ));
    }
}

/// A (low, high) range of values.
type Range = (f64, f64);

/// The range a cost cannot be told apart within: the min–max of its independent rounds where
/// there are several, else the p1–p99 of its samples (as the verdicts judge).
pub(super) fn noise(rounds: &[f64], samples: Option<crate::stats::Summary>) -> Option<Range> {
    if rounds.len() >= 2 {
        let min = rounds.iter().copied().fold(f64::INFINITY, f64::min);
        let max = rounds.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        return Some((min, max));
    }
    samples.map(|s| {
        let s = s.spread();
        (s.p1, s.p99)
    })
}

/// A row of the cost table. A ratio over the target whose two sides' noise ranges overlap is
/// "no (within the noise)": this run cannot tell it from one that meets the target.
pub(super) fn cost_row(
    what: &str,
    placed: &str,
    (plain, sandboxed): (f64, f64),
    ranges: (Option<Range>, Option<Range>),
    target: f64,
) -> Vec<String> {
    let ratio = sandboxed / plain;
    let overlap = match ranges {
        (Some(a), Some(b)) => a.0 <= b.1 && b.0 <= a.1,
        _ => false,
    };
    let met = if ratio <= target {
        "yes"
    } else if overlap {
        "no (within the noise)"
    } else {
        "NO"
    };
    vec![
        what.to_string(),
        placed.to_string(),
        crate::units::format_value(plain, Unit::Ns),
        crate::units::format_value(sandboxed, Unit::Ns),
        format!("{ratio:.2}×"),
        format!("≤ {target}×"),
        met.to_string(),
    ]
}

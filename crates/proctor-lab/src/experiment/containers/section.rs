//! The containers section, from a [`ContainersResult`]: the method, a figure per measured
//! rung, the ladder and probe tables, the chart and the notes.

use super::*;
use crate::units::AxisUnit;
use crate::verdict::keys;

/// The section for `result`: a figure per measured rung, a row per rung (refused ones with
/// their reason), the probes and a chart.
pub(super) fn section_from(result: &ContainersResult) -> Section {
    let mut section = Section::new("containers", "The isolation ladder", &method(result));
    rung_figures(&mut section, result);
    section.tables.push(ladder_table(result));
    section.tables.push(probe_table(result));
    section.charts.push(start_chart(result));
    notes(&mut section, result);
    section.set_data(result);
    section
}

/// Where the rungs ran: the pinned CPU, or unpinned when pinning failed.
fn placement(result: &ContainersResult) -> String {
    match result.placement {
        Some(p) => p.describe(),
        None => "unpinned (the scheduler's choice)".to_string(),
    }
}

/// What the section measured and how, with the run's settings.
fn method(result: &ContainersResult) -> String {
    format!(
        "Start-to-first-result: from just before the create call to the parent reading the \
             worker's 8-byte result from a pipe. Thread: std::thread::spawn, the result over a \
             channel. Fork: the child is the worker. Namespaces: the child unshare()s every \
             namespace kind the kernel permits here (user, PID, mount, network, each probed \
             alone first) and forks the worker, which is pid 1 of the new PID namespace. \
             Cgroup: the same, the child first moved into a fresh cgroup v2 with memory.max = \
             {} MiB by the parent (the move is inside the interval; the cgroup is made once \
             and removed afterwards). Container: docker/podman run --rm --network none --pull \
             never of a local busybox/alpine image, until its first line of output. Memory: the \
             worker's RSS and USS (Private_Clean + Private_Dirty, /proc/PID/smaps_rollup) while \
             it waits, after its result, to be released; for the thread, this process's USS \
             growth while the thread lived. The rungs interleave run by run after one warm-up \
             run each; {} runs ({} at most for the container) in {} consecutive rounds: the \
             figure is the median of the rounds' medians, with p1–p99 over every run and the \
             rounds' run-to-run spread. Placement: {placement}: the lab's thread is pinned there \
             and every worker inherits the pin, so each start is two hand-offs on one CPU, as \
             spawn's same-CPU figures. A rung the machine refuses carries its reason and no \
             figure. Control: in every repetition, after the rungs, fork + _exit + waitpid in \
             this parent (the op spawn.fork times, on the same CPU), to tell the fork rung's \
             method (start to the first result over a pipe, no exit or reap, a shared page and \
             three pipes made before each run, one run between other rungs) apart from the \
             parent's size, which fork's cost follows: the parent's RSS and page tables (VmPTE) \
             are recorded when the measured runs begin.",
        CGROUP_MEMORY_MAX >> 20,
        result.repetitions,
        result.repetitions.min(5),
        result.rounds,
        placement = placement(result),
    )
}

/// Per measured rung: start-to-first-result and memory; and the namespaces this process may
/// create.
fn rung_figures(section: &mut Section, result: &ContainersResult) {
    for r in result.rungs.iter().filter(|r| !r.start_ns.is_empty()) {
        let (all, spread) = median_and_spread(&r.start_ns);
        let rounds = round_medians(r, result.rounds);
        let value = if rounds.len() > 1 {
            crate::stats::median(&rounds)
        } else {
            all
        };
        let mut f = Figure::new(
            &format!("containers.start.{}", r.rung.key()),
            &format!("start to first result, {}", r.rung.label()),
            value,
            Unit::Ns,
        )
        .placed(&placement(result));
        if let Some(s) = spread {
            f = f.with_spread(s);
        }
        section.figures.push(f.with_rounds(&rounds));
        if let Some(uss) = median(&r.uss_bytes) {
            section.figures.push(Figure::new(
                &format!("containers.uss.{}", r.rung.key()),
                &format!("worker USS, {}", r.rung.label()),
                uss,
                Unit::Bytes,
            ));
        }
        if let Some(rss) = median(&r.rss_bytes) {
            section.figures.push(Figure::new(
                &format!("containers.rss.{}", r.rung.key()),
                &format!("worker RSS, {}", r.rung.label()),
                rss,
                Unit::Bytes,
            ));
        }
        if let Some(m) = median(&r.cgroup_memory_bytes) {
            section.figures.push(Figure::new(
                "containers.cgroup.memory_current",
                "memory.current of the cgroup while its worker waited",
                m,
                Unit::Bytes,
            ));
        }
    }
    control_figures(section, result);
    let permitted = result.namespaces.iter().filter(|p| p.permitted).count();
    section.figures.push(Figure::new(
        "containers.namespaces.permitted",
        &format!("namespace kinds permitted, of {}", result.namespaces.len()),
        permitted as f64,
        Unit::Count,
    ));
}

/// The ratio the verdict reads (namespaces against a plain fork, one placement), the control
/// and the parent it ran in.
fn control_figures(section: &mut Section, result: &ContainersResult) {
    let value = |k: &str| section.figure(k).map(|f| f.value);
    if let (Some(ns), Some(fork)) = (
        value(keys::CONTAINERS_START_NAMESPACES),
        value(keys::CONTAINERS_START_FORK),
    ) {
        section.figures.push(Figure::new(
            "containers.namespaces_over_fork",
            "start to first result: fresh namespaces / a plain fork (one placement)",
            ns / fork,
            Unit::Ratio,
        ));
    }
    let (control, spread) = median_and_spread(&result.control_ns);
    if control.is_finite() {
        let mut f = Figure::new(
            keys::CONTAINERS_CONTROL_FORK_EXIT,
            "control: fork + _exit + waitpid in this parent (the op of spawn.fork)",
            control,
            Unit::Ns,
        )
        .placed(&placement(result));
        if let Some(s) = spread {
            f = f.with_spread(s);
        }
        section.figures.push(f);
    }
    for (key, label, bytes) in [
        (
            "containers.parent.rss",
            "this process's RSS when the measured runs began",
            result.parent_rss_bytes,
        ),
        (
            "containers.parent.page_tables",
            "its page tables then (VmPTE): what fork copies",
            result.parent_page_tables_bytes,
        ),
    ] {
        if let Some(b) = bytes {
            section
                .figures
                .push(Figure::new(key, label, b as f64, Unit::Bytes));
        }
    }
}

/// The ladder: one row per rung, refused ones with their reason.
fn ladder_table(result: &ContainersResult) -> Table {
    let shown = |xs: &[f64], unit: Unit| {
        median(xs).map_or("-".to_string(), |v| crate::units::format_value(v, unit))
    };
    Table {
        title: "The ladder: start-to-first-result and memory (medians)".to_string(),
        columns: [
            "rung",
            "what ran",
            "runs",
            "start to result",
            "p99",
            "worker RSS",
            "worker USS",
        ]
        .map(String::from)
        .to_vec(),
        rows: result
            .rungs
            .iter()
            .map(|r| match &r.refused {
                Some(why) => vec![
                    r.rung.label().to_string(),
                    format!("refused: {why}"),
                    "0".to_string(),
                    "-".to_string(),
                    "-".to_string(),
                    "-".to_string(),
                    "-".to_string(),
                ],
                None => vec![
                    r.rung.label().to_string(),
                    r.what.clone(),
                    r.start_ns.len().to_string(),
                    shown(&r.start_ns, Unit::Ns),
                    median_and_spread(&r.start_ns)
                        .1
                        .map_or("-".to_string(), |s| {
                            crate::units::format_value(s.p99, Unit::Ns)
                        }),
                    shown(&r.rss_bytes, Unit::Bytes),
                    shown(&r.uss_bytes, Unit::Bytes),
                ],
            })
            .collect(),
    }
}

/// The namespace probes.
fn probe_table(result: &ContainersResult) -> Table {
    Table {
        title: "Namespace kinds, each tried alone in a child".to_string(),
        columns: ["namespace", "permitted", "reason"]
            .map(String::from)
            .to_vec(),
        rows: result
            .namespaces
            .iter()
            .map(|p| {
                vec![
                    p.kind.clone(),
                    if p.permitted { "yes" } else { "no" }.to_string(),
                    p.reason.clone().unwrap_or_else(|| "-".to_string()),
                ]
            })
            .collect(),
    }
}

/// Start-to-first-result per measured rung.
fn start_chart(result: &ContainersResult) -> Chart {
    let measured: Vec<&RungRuns> = result
        .rungs
        .iter()
        .filter(|r| !r.start_ns.is_empty())
        .collect();
    Chart {
        id: "start-to-result".to_string(),
        title: "Start to first result, by isolation".to_string(),
        kind: ChartKind::Bar,
        x_label: "rung".to_string(),
        y_label: "time".to_string(),
        x_unit: AxisUnit::Plain,
        y_unit: AxisUnit::Ns,
        x_log: false,
        y_log: true,
        categories: measured
            .iter()
            .map(|r| r.rung.label().to_string())
            .collect(),
        series: vec![Series {
            name: "median".to_string(),
            points: measured
                .iter()
                .enumerate()
                .map(|(i, r)| (i as f64, median_and_spread(&r.start_ns).0))
                .collect(),
        }],
    }
}

/// Why a rung did not run, namespaces refused here, and what the namespace rungs leave out.
fn notes(section: &mut Section, result: &ContainersResult) {
    for r in result.rungs.iter() {
        if let Some(why) = &r.refused {
            section
                .notes
                .push(format!("{} rung not run: {why}", r.rung.label()));
        }
    }
    for p in result.namespaces.iter().filter(|p| !p.permitted) {
        section.notes.push(format!(
            "The {} namespace is refused here ({}), so the namespace rungs run without it.",
            p.kind,
            p.reason.as_deref().unwrap_or("no reason")
        ));
    }
    if let (Some(rung), Some(control)) = (
        section.figure(keys::CONTAINERS_START_FORK).map(|f| f.value),
        section
            .figure(keys::CONTAINERS_CONTROL_FORK_EXIT)
            .map(|f| f.value),
    ) {
        let mib = |b: Option<u64>| {
            b.map_or("-".to_string(), |b| {
                format!("{:.0} MiB", b as f64 / (1 << 20) as f64)
            })
        };
        let kib = |b: Option<u64>| b.map_or("-".to_string(), |b| format!("{} KiB", b >> 10));
        section.notes.push(format!(
            "The fork rung ({}, start to first result) against the control ({}, fork + _exit + \
             waitpid, spawn.fork's op) in this parent, {} RSS with {} of page tables, on the \
             same CPU: {:.2}x. The control is the op spawn.fork measures, on the same \
             placement: where the control differs from spawn.fork, the moment does (the parent, \
             whose page tables fork copies and which grows as a report runs, or the machine's \
             load then: spawn runs first); where the rung differs from the control, the method \
             does (start to the first result over a pipe here, no exit or reap).",
            crate::units::micros(rung, 1),
            crate::units::micros(control, 1),
            mib(result.parent_rss_bytes),
            kib(result.parent_page_tables_bytes),
            rung / control,
        ));
    }
    section.notes.push(
        "The mount namespace is a copy of this one (no pivot_root, no private mounts), the \
         network namespace has only a down loopback, and the user namespace has no uid map: \
         the kernel objects a container runtime starts from, without its image, overlay \
         filesystem or veth setup."
            .to_string(),
    );
}

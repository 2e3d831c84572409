//! The race section, from a [`RaceResult`]: the method, the thread, distribution and process
//! figures, the tables, the charts and the notes.

use super::*;
use crate::units::AxisUnit;

/// The section of a race run: thread and process figures, the tables, the charts and the
/// notes, in the order the report shows them.
pub(super) fn section_from(result: &RaceResult, cpus: usize) -> Section {
    let mut section = Section::new("race", "Shared data and race conditions", &method(result));
    let placement = format!("thread (or process) i pinned to allowed CPU i mod {cpus}");
    thread_figures(&mut section, result, cpus);
    distribution_figures(&mut section, result, &placement);
    process_figures(&mut section, result, cpus);
    section.tables.push(thread_table(result));
    section.tables.push(process_table(result));
    section.charts.push(cost_chart(result));
    section.charts.push(final_chart(result));
    notes(&mut section, result, cpus);
    section.set_data(result);
    section
}

/// The runs of variant `v` with 2 threads, which every run measures.
fn two_threads(result: &RaceResult, v: Variant) -> &ThreadRuns {
    result
        .runs
        .iter()
        .find(|r| r.variant == v && r.threads == 2)
        .expect("2 threads are always measured")
}

/// The thread counts measured, in order.
fn counts_measured(result: &RaceResult) -> Vec<usize> {
    let mut counts: Vec<usize> = result.runs.iter().map(|r| r.threads).collect();
    counts.dedup();
    counts
}

/// What the section measured and how, with the run's settings.
fn method(result: &RaceResult) -> String {
    let n = result.increments_per_worker;
    format!(
        "Threads, thread i pinned to allowed CPU i mod the CPU count, start together (a Barrier, then a spinning rendezvous) and each add {n} to one counter. \
             Unsynchronized = an atomic load then an atomic store (Relaxed): the lost-update race \
             of `counter += 1` without undefined behaviour. Fixes: Mutex, fetch_add, and per-thread \
             sums added once at the end. ns per increment = wall time from the first thread leaving the \
             barrier to the last thread's finish / all increments (so it is the inverse of the aggregate \
             throughput). Figures are medians over {} repetitions after one warm-up run. Then two \
             forked processes add {n} each: to a counter in ordinary memory (copied on write, so \
             the parent still reads 0), and to an AtomicU64 in a MAP_SHARED page. The \
             distribution: {} runs per setting of the unsynchronized counter, each after one \
             warm-up run: 1 thread, 2 threads and 2 × CPUs threads (thread i pinned to CPU i \
             mod the CPU count), and 2 threads both pinned to the first allowed CPU (there a \
             run loses an update only if the scheduler preempts a thread between its load and \
             its store). Lost updates = expected − final, per run, shown as a histogram: one \
             bin for runs that lost nothing, ten equal bins up to the largest loss. The Mutex \
             and fetch_add variants run as often with 2 threads, and every run must be exact \
             (runs_exact).",
        result.repetitions,
        result.distributions.first().map_or(0, |d| d.lost.len()),
    )
}

/// The 2-thread figures: final counts, lost updates and the cost per increment, per variant.
fn thread_figures(section: &mut Section, result: &RaceResult, cpus: usize) {
    let n = result.increments_per_worker;
    let placement = format!("thread (or process) i pinned to allowed CPU i mod {cpus}");
    let two = |v: Variant| two_threads(result, v);
    section.figures.push(Figure::new(
        keys::RACE_CPUS,
        "CPUs the threads may use",
        cpus as f64,
        Unit::Count,
    ));
    section.figures.push(Figure::new(
        keys::RACE_EXPECTED,
        "expected final count (2 threads)",
        (2 * n) as f64,
        Unit::Count,
    ));
    for v in Variant::ALL {
        let r = two(v);
        section.figures.push(
            Figure::new(
                &format!("race.final.{}", v.name()),
                &format!("final count, {} (2 threads, median)", v.label()),
                median_u64(&r.finals),
                Unit::Count,
            )
            .placed(&placement),
        );
    }
    let unsync = two(Variant::Unsync);
    let lost: Vec<u64> = unsync.finals.iter().map(|f| unsync.expected - f).collect();
    section.figures.push(
        Figure::new(
            "race.lost.unsync",
            "lost updates, unsynchronized (2 threads, median)",
            median_u64(&lost),
            Unit::Count,
        )
        .placed(&placement),
    );
    for v in Variant::ALL {
        let r = two(v);
        let (median, spread) = median_and_spread(&r.ns_per_increment);
        let mut f = Figure::new(
            &format!("race.ns_per_inc.{}", v.name()),
            &format!("ns per increment, {} (2 threads)", v.label()),
            median,
            Unit::Ns,
        )
        .placed(&placement);
        if let Some(s) = spread {
            f = f.with_spread(s);
        }
        section.figures.push(f);
    }
}

/// The two-process figures: a copied counter and counters in shared memory.
fn process_figures(section: &mut Section, result: &RaceResult, cpus: usize) {
    let placement = format!("thread (or process) i pinned to allowed CPU i mod {cpus}");
    let p = &result.processes;
    section.figures.push(Figure::new(
        keys::RACE_PARENT_AFTER_PROCESS_COPY,
        "parent's counter after 2 forked processes incremented their copies",
        median_u64(&p.parent_after_copy),
        Unit::Count,
    ));
    section.figures.push(Figure::new(
        "race.final.process_shared_atomic",
        "AtomicU64 in MAP_SHARED memory after 2 processes (fetch_add)",
        median_u64(&p.shared_atomic_final),
        Unit::Count,
    ));
    section.figures.push(
        Figure::new(
            "race.final.process_shared_unsync",
            "MAP_SHARED counter after 2 processes, unsynchronized load+store",
            median_u64(&p.shared_unsync_final),
            Unit::Count,
        )
        .placed(&placement),
    );
}

/// Final count and cost per variant and thread count.
fn thread_table(result: &RaceResult) -> Table {
    Table {
        title: "Threads: final count and cost (medians)".to_string(),
        columns: [
            "variant",
            "threads",
            "expected",
            "final",
            "lost",
            "ns/increment",
        ]
        .map(String::from)
        .to_vec(),
        rows: result
            .runs
            .iter()
            .map(|r| {
                let fin = median_u64(&r.finals);
                vec![
                    r.variant.label().to_string(),
                    r.threads.to_string(),
                    r.expected.to_string(),
                    format!("{fin:.0}"),
                    format!("{:.0}", r.expected as f64 - fin),
                    format!("{:.2}", median_and_spread(&r.ns_per_increment).0),
                ]
            })
            .collect(),
    }
}

/// What two processes did to a copied and a shared counter.
fn process_table(result: &RaceResult) -> Table {
    let p = &result.processes;
    Table {
        title: "Two processes".to_string(),
        columns: ["counter", "expected", "parent reads", "each child saw"]
            .map(String::from)
            .to_vec(),
        rows: vec![
            vec![
                "ordinary memory (copy-on-write)".to_string(),
                p.expected.to_string(),
                format!("{:.0}", median_u64(&p.parent_after_copy)),
                format!("{:.0}", median_u64(&p.child_saw_copy)),
            ],
            vec![
                "AtomicU64 in MAP_SHARED, fetch_add".to_string(),
                p.expected.to_string(),
                format!("{:.0}", median_u64(&p.shared_atomic_final)),
                "-".to_string(),
            ],
            vec![
                "MAP_SHARED, unsynchronized".to_string(),
                p.expected.to_string(),
                format!("{:.0}", median_u64(&p.shared_unsync_final)),
                "-".to_string(),
            ],
        ],
    }
}

/// The cost per increment by variant and thread count.
fn cost_chart(result: &RaceResult) -> Chart {
    let mut counts: Vec<usize> = result.runs.iter().map(|r| r.threads).collect();
    counts.dedup();
    Chart {
        id: "ns-per-increment".to_string(),
        title: "Cost per increment by fix and thread count".to_string(),
        kind: ChartKind::Bar,
        x_label: "variant".to_string(),
        y_label: "time per increment".to_string(),
        x_unit: AxisUnit::Plain,
        y_unit: AxisUnit::Ns,
        x_log: false,
        y_log: true,
        categories: Variant::ALL.iter().map(|v| v.label().to_string()).collect(),
        series: variant_series(result, &counts, |r| {
            median_and_spread(&r.ns_per_increment).0
        }),
    }
}

/// The final count as a share of the expected one, by variant and thread count.
fn final_chart(result: &RaceResult) -> Chart {
    let counts = counts_measured(result);
    Chart {
        id: "lost-updates".to_string(),
        title: "Final count as a share of the expected count".to_string(),
        kind: ChartKind::Bar,
        x_label: "variant".to_string(),
        y_label: "final / expected".to_string(),
        x_unit: AxisUnit::Plain,
        y_unit: AxisUnit::Plain,
        x_log: false,
        y_log: false,
        categories: Variant::ALL.iter().map(|v| v.label().to_string()).collect(),
        series: variant_series(result, &counts, |r| {
            median_u64(&r.finals) / r.expected as f64
        }),
    }
}

/// One CPU, a race that did not strike, oversubscription, broken fixes, and why Python's GIL
/// often hides the race.
fn notes(section: &mut Section, result: &RaceResult, cpus: usize) {
    let unsync = two_threads(result, Variant::Unsync);
    if cpus < 2 {
        section.notes.push(
            "Only one CPU is allowed: threads never run at the same time, so the unsynchronized \
             counter loses updates only when a thread is preempted between load and store."
                .to_string(),
        );
    }
    if unsync.finals.iter().all(|&f| f == unsync.expected) {
        section.notes.push(
            "The unsynchronized counter lost no update in this run: the race is real but did not \
             strike (more increments or more CPUs make it likelier)."
                .to_string(),
        );
    }
    section.notes.push(format!(
        "Thread counts above {cpus} (the CPUs allowed here) are oversubscribed."
    ));
    for e in result.exact.iter().filter(|e| e.exact < e.runs) {
        section.notes.push(format!(
            "{} was not exact in {} of {} runs: the fix is broken here.",
            e.variant.label(),
            e.runs - e.exact,
            e.runs
        ));
    }
    section.notes.push(
        "Why CPython's GIL often hides this race: only the thread holding the GIL runs \
         bytecode, and it is asked to give the GIL up only every switch interval (5 ms, \
         sys.getswitchinterval()); since CPython 3.10 it honours the request only at a loop's \
         backward jump or a call, so in a plain `for` loop the switch falls between whole \
         `counter += 1` statements, never between their load and store. 100 000 increments \
         take a few ms, and a run can lose an update only when a switch splits a statement, \
         which a plain loop no longer allows (the seed's Python program lost nothing in 30 of \
         30 runs). Rust threads run truly in parallel on separate CPUs, so nothing serializes \
         the load and the store; on one CPU they race only when the scheduler preempts a \
         thread between them, as the one-CPU row shows. A free-threaded (no-GIL) CPython, or \
         a loop body with a call in it, loses updates too."
            .to_string(),
    );
}

/// The distribution figures, the histogram chart and the table of the many-run settings.
fn distribution_figures(section: &mut Section, result: &RaceResult, placement: &str) {
    if result.distributions.is_empty() {
        return;
    }
    let runs = result.distributions[0].lost.len();
    section.figures.push(Figure::new(
        keys::RACE_DIST_RUNS,
        "runs per setting of the lost-update distribution",
        runs as f64,
        Unit::Count,
    ));
    let mut rows = Vec::new();
    for d in &result.distributions {
        rows.push(distribution_entry(section, d, placement));
    }
    for e in &result.exact {
        rows.push(exact_entry(section, result, e, placement));
    }
    section.tables.push(distribution_table(runs, rows));
    section.charts.push(histogram_chart(result, runs));
}

/// One many-run setting of the unsynchronized counter: its figures, and its table row.
fn distribution_entry(section: &mut Section, d: &LossDistribution, placement: &str) -> Vec<String> {
    let sorted = {
        let mut l = d.lost.clone();
        l.sort_unstable();
        l
    };
    let (min, max) = (
        sorted.first().copied().unwrap_or(0),
        sorted.last().copied().unwrap_or(0),
    );
    let med = median_u64(&d.lost);
    let where_ = if d.cpus.len() == 1 {
        let who = match d.threads {
            1 => "the thread",
            2 => "both threads",
            _ => "every thread",
        };
        format!("{who} pinned to cpu {}", d.cpus[0])
    } else {
        placement.to_string()
    };
    for (what, label, v) in [
        (
            "lossy_runs",
            "runs that lost updates",
            d.lossy_runs() as f64,
        ),
        ("lost_min", "fewest lost updates in a run", min as f64),
        ("lost_median", "median lost updates per run", med),
        ("lost_max", "most lost updates in a run", max as f64),
    ] {
        section.figures.push(
            Figure::new(
                &format!("race.dist.{}.{what}", d.setting),
                &format!("{label}, unsynchronized, {}", d.label()),
                v,
                Unit::Count,
            )
            .placed(&where_),
        );
    }
    vec![
        d.label(),
        where_,
        d.lost.len().to_string(),
        d.expected.to_string(),
        d.lossy_runs().to_string(),
        min.to_string(),
        format!("{med:.0}"),
        max.to_string(),
    ]
}

/// One fixed variant's many runs: how many were exact, and its table row.
fn exact_entry(
    section: &mut Section,
    result: &RaceResult,
    e: &ExactRuns,
    placement: &str,
) -> Vec<String> {
    section.figures.push(Figure::new(
        &format!("race.runs_exact.{}", e.variant.name()),
        &format!(
            "runs with the exact count, {} (2 threads)",
            e.variant.label()
        ),
        e.exact as f64,
        Unit::Count,
    ));
    vec![
        format!("{}, {} threads", e.variant.label(), e.threads),
        placement.to_string(),
        e.runs.to_string(),
        (e.threads as u64 * result.increments_per_worker).to_string(),
        (e.runs - e.exact).to_string(),
        "-".to_string(),
        "-".to_string(),
        "-".to_string(),
    ]
}

/// Lost updates over the runs of every setting.
fn distribution_table(runs: usize, rows: Vec<Vec<String>>) -> Table {
    Table {
        title: format!("Lost updates over {runs} runs per setting"),
        columns: [
            "setting",
            "placement",
            "runs",
            "expected",
            "runs that lost",
            "min lost",
            "median lost",
            "max lost",
        ]
        .map(String::from)
        .to_vec(),
        rows,
    }
}

/// The histogram of lost updates per run, one series per setting.
fn histogram_chart(result: &RaceResult, runs: usize) -> Chart {
    let lost: Vec<&[u64]> = result
        .distributions
        .iter()
        .map(|d| d.lost.as_slice())
        .collect();
    let (labels, counts) = loss_histogram(&lost, 10);
    Chart {
        id: "lost-histogram".to_string(),
        title: format!("Lost updates per run, unsynchronized ({runs} runs per setting)"),
        kind: ChartKind::Bar,
        x_label: "lost updates in a run".to_string(),
        y_label: "runs".to_string(),
        x_unit: AxisUnit::Plain,
        y_unit: AxisUnit::Plain,
        x_log: false,
        y_log: false,
        categories: labels,
        series: result
            .distributions
            .iter()
            .zip(counts)
            .map(|(d, c)| Series {
                name: d.label(),
                points: c
                    .into_iter()
                    .enumerate()
                    .map(|(i, n)| (i as f64, n as f64))
                    .collect(),
            })
            .collect(),
    }
}

/// One bar series per thread count, one bar per variant, valued by `value`.
fn variant_series(
    result: &RaceResult,
    counts: &[usize],
    value: impl Fn(&ThreadRuns) -> f64,
) -> Vec<Series> {
    counts
        .iter()
        .map(|&t| Series {
            name: format!("{t} threads"),
            points: Variant::ALL
                .iter()
                .enumerate()
                .filter_map(|(i, &v)| {
                    let r = result
                        .runs
                        .iter()
                        .find(|r| r.variant == v && r.threads == t)?;
                    Some((i as f64, value(r)))
                })
                .collect(),
        })
        .collect()
}

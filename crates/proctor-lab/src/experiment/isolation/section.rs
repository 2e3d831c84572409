//! The isolation section, from an [`IsolationResult`]: the method, the fault matrix in
//! figures, its table, the charts and the notes.

use super::*;
use crate::units::AxisUnit;

/// The section of an isolation run: the fault matrix in figures, its table, the charts and
/// the notes, in the order the report shows them.
pub(super) fn section_from(result: &IsolationResult) -> Section {
    let mut section = Section::new("isolation", "Fault isolation", &method(result));
    survival_figures(&mut section, result);
    recovery_figures(&mut section, result);
    section.tables.push(matrix_table(result));
    section.charts.push(completed_chart(result));
    section.charts.push(recovery_chart(result));
    notes(&mut section, result);
    section.set_data(result);
    section
}

/// The cell of the matrix for `side` and `fault`.
fn cell_of(result: &IsolationResult, side: Worker, fault: Fault) -> &Cell {
    result
        .cells
        .iter()
        .find(|c| c.side == side && c.fault == fault)
        .expect("every cell of the matrix is run")
}

/// What the section measured and how, with the run's settings.
fn method(result: &IsolationResult) -> String {
    let p = &result.plan;
    format!(
        "Each fault (panic, abort(), a read through a dangling pointer into the unmapped first \
             page, unbounded recursion, an allocation of {alloc} MiB under a {limit} MiB \
             RLIMIT_DATA, a {hang} s sleep past a {timeout} ms task_timeout, exit(3)) is task {idx} \
             of a batch of {batch} on a pool of {workers} workers; the other tasks compute a small \
             sum and count as completed when their result is correct. The same task function runs \
             on Pool::processes and Pool::threads. Process pools run in the lab process, with a \
             {limit} MiB memory_limit per worker. Every thread-mode cell runs inside a sacrificial \
             child process (a one-worker process pool with the same {limit} MiB limit, whose task \
             builds the thread pool and runs the cell), so a fault that kills the whole program \
             kills only that child and is reported as \"whole program died\" with its signal; \
             the batch's results die with it and count as 0 completed. The pool survived when a \
             further fault-free map of {probe} tasks all completed. Recovery time: on a warm \
             one-worker pool of the same mode, from the faulty task's error being returned by \
             join to the next task's result being returned, so that task ran on the replacement \
             worker (a fresh process, or a fresh thread after a timeout); median of {reps}. It \
             includes one task round trip, shown apart as the healthy round trip. Batch times \
             with the fault are shown beside the same batch without it.",
        alloc = p.oom_alloc_bytes >> 20,
        limit = p.memory_limit_bytes >> 20,
        hang = Duration::from_nanos(p.hang_ns).as_secs_f64(),
        timeout = Duration::from_nanos(p.timeout_ns).as_millis(),
        idx = p.fault_index,
        batch = p.batch,
        workers = p.workers,
        probe = p.workers * 2,
        reps = p.recovery_reps,
    )
}

/// Per mode: tasks completed and pool survival for every fault, and the faults that took
/// the whole program down.
fn survival_figures(section: &mut Section, result: &IsolationResult) {
    let p = &result.plan;
    let cell = |side: Worker, fault: Fault| cell_of(result, side, fault);
    section.figures.push(Figure::new(
        keys::ISOLATION_FAULTS,
        "fault kinds tried",
        Fault::ALL.len() as f64,
        Unit::Count,
    ));
    section.figures.push(Figure::new(
        "isolation.batch",
        "tasks per batch (one of them faulty)",
        p.batch as f64,
        Unit::Count,
    ));
    for side in SIDES {
        let survived = Fault::ALL
            .iter()
            .filter(|&&f| cell(side, f).survived)
            .count();
        section.figures.push(Figure::new(
            &format!("isolation.survived.{}", side.key()),
            &format!(
                "fault kinds the {} pool survived, the rest of its batch completed",
                side.key()
            ),
            survived as f64,
            Unit::Count,
        ));
    }
    let died = Fault::ALL
        .iter()
        .filter(|&&f| cell(Worker::Thread, f).program_death.is_some())
        .count();
    section.figures.push(Figure::new(
        keys::ISOLATION_WHOLE_PROGRAM_DIED_THREAD,
        "fault kinds that killed the whole program in thread mode",
        died as f64,
        Unit::Count,
    ));
    for side in SIDES {
        for fault in Fault::ALL {
            section.figures.push(Figure::new(
                &format!("isolation.completed.{}.{}", side.key(), fault.name()),
                &format!(
                    "tasks completed of {} with one {} ({} pool)",
                    p.batch,
                    fault.label(),
                    side.key()
                ),
                cell(side, fault).completed as f64,
                Unit::Count,
            ));
        }
    }
}

/// Recovery time after each fault in process mode, and processes left behind.
fn recovery_figures(section: &mut Section, result: &IsolationResult) {
    let cell = |side: Worker, fault: Fault| cell_of(result, side, fault);
    for fault in Fault::ALL {
        let c = cell(Worker::Process, fault);
        let Some(o) = &c.outcome else { continue };
        if o.recovery_ns.is_empty() {
            continue;
        }
        let xs: Vec<f64> = o.recovery_ns.iter().map(|&x| x as f64).collect();
        let (median, spread) = summarize(&xs);
        let mut f = Figure::new(
            &format!("isolation.recovery.process.{}", fault.name()),
            &format!(
                "process pool: from the {} error to the replacement's first result",
                fault.label()
            ),
            median,
            Unit::Ns,
        )
        .placed("unpinned");
        if let Some(s) = spread {
            f = f.with_spread(s);
        }
        section.figures.push(f);
    }
    section.figures.push(Figure::new(
        "isolation.leftover_processes",
        "processes left behind by the experiment",
        result.leftover_processes.len() as f64,
        Unit::Count,
    ));
}

/// The fault matrix: every fault in both modes.
fn matrix_table(result: &IsolationResult) -> Table {
    let p = &result.plan;
    let cell = |side: Worker, fault: Fault| cell_of(result, side, fault);
    Table {
        title: "Fault matrix".to_string(),
        columns: [
            "fault",
            "pool",
            "completed",
            "pool survived",
            "what the faulty task got",
            "recovery (median)",
            "healthy round trip",
            "batch: fault / no fault",
        ]
        .map(String::from)
        .to_vec(),
        rows: Fault::ALL
            .iter()
            .flat_map(|&f| SIDES.map(|s| cell(s, f)))
            .map(|c| {
                let o = c.outcome.as_ref();
                vec![
                    c.fault.label().to_string(),
                    c.side.key().to_string(),
                    format!("{} of {}", c.completed, p.batch),
                    match (&c.program_death, o) {
                        (Some(_), _) => "no (program died)".to_string(),
                        (None, Some(o)) if o.pool_alive => "yes".to_string(),
                        _ => "no".to_string(),
                    },
                    c.verdict(),
                    c.recovery_median_ns()
                        .map_or("-".to_string(), micros_or_millis),
                    o.map_or("-".to_string(), |o| {
                        micros_or_millis(o.healthy_round_trip_ns as f64)
                    }),
                    o.map_or("-".to_string(), |o| {
                        format!(
                            "{} / {}",
                            micros_or_millis(o.batch_ns as f64),
                            micros_or_millis(o.baseline_ns as f64)
                        )
                    }),
                ]
            })
            .collect(),
    }
}

/// Tasks completed out of a batch with one fault, per mode.
fn completed_chart(result: &IsolationResult) -> Chart {
    let p = &result.plan;
    let cell = |side: Worker, fault: Fault| cell_of(result, side, fault);
    let categories: Vec<String> = Fault::ALL.iter().map(|f| f.label().to_string()).collect();
    Chart {
        id: "completed".to_string(),
        title: format!(
            "Tasks completed out of a batch of {} with one fault",
            p.batch
        ),
        kind: ChartKind::Bar,
        x_label: "fault".to_string(),
        y_label: "tasks completed".to_string(),
        x_unit: AxisUnit::Plain,
        y_unit: AxisUnit::Plain,
        x_log: false,
        y_log: false,
        categories: categories.clone(),
        series: SIDES
            .iter()
            .map(|&s| Series {
                name: format!("{} pool", s.key()),
                points: Fault::ALL
                    .iter()
                    .enumerate()
                    .map(|(i, &f)| (i as f64, cell(s, f).completed as f64))
                    .collect(),
            })
            .collect(),
    }
}

/// Recovery time per fault, per mode.
fn recovery_chart(result: &IsolationResult) -> Chart {
    let categories: Vec<String> = Fault::ALL.iter().map(|f| f.label().to_string()).collect();
    let cell = |side: Worker, fault: Fault| cell_of(result, side, fault);
    Chart {
        id: "recovery".to_string(),
        title: "Recovery: from the fault's error to the next task's result".to_string(),
        kind: ChartKind::Bar,
        x_label: "fault".to_string(),
        y_label: "recovery".to_string(),
        x_unit: AxisUnit::Plain,
        y_unit: AxisUnit::Us,
        x_log: false,
        y_log: true,
        categories,
        series: SIDES
            .iter()
            .map(|&s| Series {
                name: format!("{} pool", s.key()),
                points: Fault::ALL
                    .iter()
                    .enumerate()
                    .filter_map(|(i, &f)| Some((i as f64, cell(s, f).recovery_median_ns()? / 1e3)))
                    .collect(),
            })
            .collect(),
    }
}

/// Leaked threads, cells that did not run as planned, leftover processes, and how to read
/// the crashes.
fn notes(section: &mut Section, result: &IsolationResult) {
    let cell = |side: Worker, fault: Fault| cell_of(result, side, fault);
    let leaked: Vec<String> = Fault::ALL
        .iter()
        .filter_map(|&f| {
            let n = cell(Worker::Thread, f).outcome.as_ref()?.leaked_threads?;
            (n > 0).then(|| format!("{} thread(s) after the {}", n, f.label()))
        })
        .collect();
    if !leaked.is_empty() {
        section.notes.push(format!(
            "Thread mode cannot kill a stuck thread: it reports TimedOut, starts a replacement and \
             abandons the old thread, which runs on until its task returns. Still running after \
             both pools were shut down: {}. In process mode the stuck worker is killed.",
            leaked.join(", ")
        ));
    }
    let failed: Vec<String> = result
        .cells
        .iter()
        .filter_map(|c| {
            let e = c
                .error
                .as_ref()
                .or(c.outcome.as_ref().and_then(|o| o.recovery_error.as_ref()))?;
            Some(format!("{} pool, {}: {e}", c.side.key(), c.fault.label()))
        })
        .collect();
    if !failed.is_empty() {
        section.notes.push(format!(
            "Cells that did not run as planned: {}.",
            failed.join("; ")
        ));
    }
    if !result.leftover_check {
        section.notes.push(
            "/proc/<pid>/task/<tid>/children is not readable here, so leftover processes could \
             not be looked for."
                .to_string(),
        );
    }
    if !result.leftover_processes.is_empty() {
        section.notes.push(format!(
            "Processes left behind by the experiment: {:?}.",
            result.leftover_processes
        ));
    }
    section.notes.push(
        "A stack overflow ends with SIGABRT after Rust's overflow handler prints its note, or with \
         a plain SIGSEGV where that handler is not installed (a fork server started before main). \
         Crashing workers' stderr (the overflow note, \"memory allocation of N bytes failed\", a \
         thread-mode panic message) is kept off the lab's terminal (pools built with \
         forward_stderr(false)); its last lines are in each crash's error. The recovery \
         repetitions fault with their stderr silenced. A caught panic is printed by the default \
         panic hook in thread mode (with a backtrace when RUST_BACKTRACE is set, which can \
         dominate that batch's time) and kept quiet in worker processes."
            .to_string(),
    );
}

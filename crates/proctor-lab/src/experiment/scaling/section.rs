//! The scaling section, from a [`ScalingResult`]: the method, the CPU-bound and I/O-bound
//! figures, their tables and charts, and the notes.

use super::*;
use crate::units::AxisUnit;

/// The smallest memory growth the I/O-bound sweep can tell from none: one page.
const PAGE: f64 = 4096.0;

/// The section of a scaling run: CPU-bound and I/O-bound figures, tables, charts and notes,
/// in the order the report shows them.
pub(super) fn section_from(r: &ScalingResult) -> Section {
    let mut section = Section::new("scaling", "Multi-core and I/O-bound scaling", &method(r));
    cpu_point_figures(&mut section, r);
    speedup_figures(&mut section, r);
    io_figures(&mut section, r);
    section.tables.push(cpu_table(r));
    section.tables.push(io_table(r));
    section.charts.push(speedup_chart(r));
    section.charts.push(io_chart(r));
    notes(&mut section, r);
    section.set_data(r);
    section
}

/// What the section measured and how, with the run's settings.
fn method(r: &ScalingResult) -> String {
    format!(
        "CPU-bound: {} rounds of xorshift64 into FNV-1a in total, split evenly over W workers \
             (threads or forked processes, unpinned). Every worker is created and reports ready \
             over a pipe first; the timed window runs from writing the release bytes to reading \
             the last 8-byte result, so creation is outside it. Threads and processes run the \
             same body over the same pipes, and their checksums must agree. Throughput = rounds \
             per second; speed-up = T(1)/T(W) for the same model; efficiency = speed-up / W. \
             Medians over the repetitions. I/O-bound: N units each sleep 10 ms three times, as \
             threads (128 KiB stacks: 10 000 default stacks alive at once would leave the lab \
             process mapped and paged for every later fork), forked processes (measured first at \
             each N, before the threads grow the lab) and tokio tasks on one current-thread \
             runtime, in two phases timed apart. Creation: from the first create until all N are \
             alive and blocked at a gate (a futex word in shared memory for threads and \
             processes, a watch channel for tasks). Waiting (the completion figures, which the \
             verdict reads): from opening the gate for all at once (one FUTEX_WAKE of every \
             waiter, one watch send) to the last unit's finish, stamped by the unit itself \
             (CLOCK_MONOTONIC); the exit and reap after it are shown apart (wait + reap). Memory \
             is the added USS with all N alive at the gate (for processes: the mean USS of up to \
             16 of the newest children × N). Before creating N units the run checks \
             RLIMIT_NPROC, kernel.threads-max, kernel.pid_max and the memory available, and \
             lowers N with a note where they would not fit. Unpinned. Each repetition is an independent round (fresh workers): speed-ups at the \
             CPU count and completion times show the rounds' run-to-run spread.",
        r.total_iterations
    )
}

/// Throughput and speed-up per model and worker count, and the CPUs this process may use.
fn cpu_point_figures(section: &mut Section, r: &ScalingResult) {
    let cpus = r.cpus;
    for p in &r.cpu {
        let (m, w) = (p.model.name(), p.workers);
        let spread = median_and_spread(&p.elapsed_ns).1;
        let mut t = Figure::new(
            &format!("scaling.throughput.{m}.{w}"),
            &format!("CPU-bound throughput, {w} {m}s"),
            p.throughput_per_sec,
            Unit::PerSec,
        )
        .placed("unpinned");
        if let Some(s) = spread {
            // In elapsed ns, converted to throughput (the order flips).
            let conv = |ns: f64| r.total_iterations as f64 / (ns / 1e9);
            t = t.with_spread(crate::report::Spread {
                min: conv(s.max),
                p1: conv(s.p99),
                p99: conv(s.p1),
                max: conv(s.min),
                ..s
            });
        }
        section.figures.push(t);
        section.figures.push(
            Figure::new(
                &format!("scaling.speedup.{m}.{w}"),
                &format!("speed-up over 1 {m}, {w} {m}s"),
                p.speedup,
                Unit::Ratio,
            )
            .placed("unpinned"),
        );
    }
    section.figures.push(Figure::new(
        keys::SCALING_CORES,
        "CPUs this process may use (the worker count of the `.cores` figures)",
        cpus as f64,
        Unit::Count,
    ));
}

/// Per model: the speed-up at the CPU count (with its rounds), what oversubscription costs,
/// and the best efficiency.
fn speedup_figures(section: &mut Section, r: &ScalingResult) {
    let cpus = r.cpus;
    for model in [Runner::Thread, Runner::Process] {
        let m = model.name();
        let points: Vec<&CpuPoint> = r.cpu.iter().filter(|p| p.model == model).collect();
        if let Some(p) = points.iter().find(|p| p.workers == cpus) {
            // Each repetition is an independent round (fresh workers): its own T(1) / T(W).
            let rounds: Vec<f64> = points
                .iter()
                .find(|b| b.workers == 1)
                .map(|b| {
                    b.elapsed_ns
                        .iter()
                        .zip(&p.elapsed_ns)
                        .map(|(one, w)| one / w)
                        .collect()
                })
                .unwrap_or_default();
            section.figures.push(
                Figure::new(
                    &format!("scaling.speedup.{m}.cores"),
                    &format!("speed-up with one {m} per CPU ({cpus})"),
                    p.speedup,
                    Unit::Ratio,
                )
                .with_rounds(&rounds)
                .placed("unpinned"),
            );
        }
        let at_cores = points.iter().find(|p| p.workers == cpus);
        let most = points.iter().max_by_key(|p| p.workers);
        if let (Some(c), Some(o)) = (at_cores, most) {
            if o.workers >= 2 * cpus && c.throughput_per_sec > 0.0 {
                section.figures.push(
                    Figure::new(
                        &format!("scaling.oversubscription.{m}"),
                        &format!(
                            "throughput with {} {m}s / with {} (one per CPU)",
                            o.workers, c.workers
                        ),
                        o.throughput_per_sec / c.throughput_per_sec,
                        Unit::Ratio,
                    )
                    .placed("unpinned"),
                );
            }
        }
        if let Some(p) = points.iter().max_by_key(|p| p.workers) {
            section.figures.push(
                Figure::new(
                    &format!("scaling.efficiency.{m}.max"),
                    &format!("efficiency at {} {m}s (largest W)", p.workers),
                    p.efficiency,
                    Unit::Ratio,
                )
                .placed("unpinned"),
            );
        }
    }
}

/// Where the I/O-bound units ran: every allowed CPU, the scheduler's choice, the same for every
/// model (N units are no pair to pin).
fn io_placement(r: &ScalingResult) -> String {
    format!(
        "unpinned over the {} allowed CPUs, alike for every model",
        r.cpus
    )
}

/// The wait phase, the creation phase and memory of every I/O-bound point.
fn io_figures(section: &mut Section, r: &ScalingResult) {
    let placement = io_placement(r);
    for p in &r.io {
        let (m, n) = (p.model.name(), p.units);
        let spread = median_and_spread(&p.completion_ns).1;
        let mut f = Figure::new(
            &format!("scaling.io.completion.{m}.{n}"),
            &format!(
                "{n} concurrent waits (3 × 10 ms sleeps) as {m} units, all alive first: the \
                 gate's opening to the last finish"
            ),
            p.median_ns,
            Unit::Ns,
        )
        .with_rounds(&p.completion_ns)
        .placed(&placement);
        if let Some(s) = spread {
            f = f.with_spread(s);
        }
        section.figures.push(f);
        if !p.creation_ns.is_empty() {
            let creation = median_and_spread(&p.creation_ns).0;
            section.figures.push(
                Figure::new(
                    &format!("scaling.io.create.{m}.{n}"),
                    &format!("creating {n} {m} units until all are alive at the gate"),
                    creation,
                    Unit::Ns,
                )
                .with_rounds(&p.creation_ns)
                .placed(&placement),
            );
        }
        if let Some(bytes) = p.memory_bytes {
            // USS moves by whole pages, and memory freed meanwhile can make the growth
            // negative: below a page it is not a figure.
            section.figures.push(
                Figure::new(
                    &format!("scaling.io.memory.{m}.{n}"),
                    &format!("added USS with {n} I/O-bound {m} units, all alive at the gate"),
                    bytes,
                    Unit::Bytes,
                )
                .with_resolution(PAGE),
            );
        }
    }
}

/// Every CPU-bound point.
fn cpu_table(r: &ScalingResult) -> Table {
    let cpus = r.cpus;
    Table {
        title: "CPU-bound: fixed total work".to_string(),
        columns: [
            "model",
            "W",
            "median ms",
            "Mrounds/s",
            "speed-up",
            "efficiency",
            "oversubscribed",
        ]
        .map(String::from)
        .to_vec(),
        rows: r
            .cpu
            .iter()
            .map(|p| {
                vec![
                    p.model.name().to_string(),
                    p.workers.to_string(),
                    format!("{:.1}", p.median_ns / 1e6),
                    format!("{:.1}", p.throughput_per_sec / 1e6),
                    format!("{:.2}", p.speedup),
                    format!("{:.2}", p.efficiency),
                    if p.workers > cpus { "yes" } else { "" }.to_string(),
                ]
            })
            .collect(),
    }
}

/// Every I/O-bound point.
fn io_table(r: &ScalingResult) -> Table {
    Table {
        title: "I/O-bound: 3 × 10 ms waits per unit, creation and waiting apart".to_string(),
        columns: [
            "model",
            "N",
            "create ms",
            "wait ms",
            "wait + reap ms",
            "added USS KiB",
            "most alive at once",
        ]
        .map(String::from)
        .to_vec(),
        rows: r
            .io
            .iter()
            .map(|p| {
                let ms = |xs: &[f64]| {
                    let (m, _) = median_and_spread(xs);
                    if m.is_finite() {
                        format!("{:.1}", m / 1e6)
                    } else {
                        "-".to_string()
                    }
                };
                vec![
                    p.model.name().to_string(),
                    p.units.to_string(),
                    ms(&p.creation_ns),
                    format!("{:.1}", p.median_ns / 1e6),
                    ms(&p.reaped_ns),
                    p.memory_bytes.map_or("-".to_string(), |b| {
                        if b < PAGE {
                            format!("< {:.0}", PAGE / 1024.0)
                        } else {
                            format!("{:.0}", b / 1024.0)
                        }
                    }),
                    p.max_alive.to_string(),
                ]
            })
            .collect(),
    }
}

/// Speed-up per worker count, per model, beside the ideal.
fn speedup_chart(r: &ScalingResult) -> Chart {
    let cpus = r.cpus;
    let speedup_series = |model: Runner| Series {
        name: model.name().to_string(),
        points: r
            .cpu
            .iter()
            .filter(|p| p.model == model)
            .map(|p| (p.workers as f64, p.speedup))
            .collect(),
    };
    let mut ideal: Vec<(f64, f64)> = r
        .cpu
        .iter()
        .filter(|p| p.model == Runner::Thread)
        .map(|p| (p.workers as f64, p.workers.min(cpus) as f64))
        .collect();
    ideal.dedup();
    Chart {
        id: "speedup".to_string(),
        title: format!("CPU-bound speed-up ({cpus} CPUs; beyond that, oversubscribed)"),
        kind: ChartKind::Line,
        x_label: "workers".to_string(),
        y_label: "speed-up over one worker".to_string(),
        x_unit: AxisUnit::Plain,
        y_unit: AxisUnit::Plain,
        x_log: false,
        y_log: false,
        categories: Vec::new(),
        series: vec![
            speedup_series(Runner::Thread),
            speedup_series(Runner::Process),
            Series {
                name: "ideal (min(W, CPUs))".to_string(),
                points: ideal,
            },
        ],
    }
}

/// I/O-bound completion time per unit count, per model.
fn io_chart(r: &ScalingResult) -> Chart {
    let io_series = |model: Runner| Series {
        name: model.name().to_string(),
        points: r
            .io
            .iter()
            .filter(|p| p.model == model)
            .map(|p| (p.units as f64, p.median_ns / 1e6))
            .collect(),
    };
    Chart {
        id: "io-completion".to_string(),
        title: "I/O-bound: N concurrent waits, all alive first (ideal: 30 ms)".to_string(),
        kind: ChartKind::Line,
        x_label: "concurrent units".to_string(),
        y_label: "time, gate opened to last finish".to_string(),
        x_unit: AxisUnit::Plain,
        y_unit: AxisUnit::Ms,
        x_log: true,
        y_log: true,
        categories: Vec::new(),
        series: vec![
            io_series(Runner::Thread),
            io_series(Runner::Process),
            io_series(Runner::Async),
        ],
    }
}

/// Where oversubscription and SMT start, skipped points, and how to read the memory figures.
fn notes(section: &mut Section, r: &ScalingResult) {
    let cpus = r.cpus;
    section.notes.push(format!(
        "Oversubscription starts above W = {cpus} (the CPUs this process may use){}.",
        match r.physical_cores {
            Some(p) if p < cpus => format!("; SMT starts above W = {p} physical cores"),
            Some(_) => "; no SMT siblings among them".to_string(),
            None => String::new(),
        }
    ));
    section.notes.extend(r.skipped.iter().cloned());
    section.notes.push(
        "glibc keeps the stacks and malloc arenas of exited threads for reuse, with their pages \
         still resident: after earlier rounds, thread memory figures are a lower bound."
            .to_string(),
    );
    if let Some(p) = r.io.iter().find(|p| p.max_alive < p.units as i64) {
        section.notes.push(format!(
            "{} {} units: only {} were alive at once, though the gate holds every unit until \
             all are alive: a unit died early.",
            p.units,
            p.model.name(),
            p.max_alive
        ));
    }
    if let Some(note) = phases_note(r) {
        section.notes.push(note);
    }
}

/// Creation against waiting at the largest N every model reached: where the time goes.
fn phases_note(r: &ScalingResult) -> Option<String> {
    let n = [Runner::Thread, Runner::Process, Runner::Async]
        .iter()
        .filter_map(|&m| r.io.iter().filter(|p| p.model == m).map(|p| p.units).max())
        .min()?;
    let parts: Vec<String> =
        r.io.iter()
            .filter(|p| p.units == n && !p.creation_ns.is_empty())
            .map(|p| {
                format!(
                    "{} {:.1} ms to create, {:.1} ms to wait",
                    p.model.name(),
                    median_and_spread(&p.creation_ns).0 / 1e6,
                    p.median_ns / 1e6
                )
            })
            .collect();
    (!parts.is_empty()).then(|| {
        format!(
            "{n} concurrent waits, the phases apart: {}. The wait phase is what the many-waits \
             verdict reads; creating the units is the spawn section's subject, at N times.",
            parts.join("; ")
        )
    })
}

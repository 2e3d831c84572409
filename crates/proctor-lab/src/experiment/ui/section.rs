//! The ui section, from a [`UiResult`]: the method, the frame figures per case, the table,
//! the chart and the notes.

use super::*;
use crate::units::AxisUnit;

/// The section of a ui run: the frame figures per case, the table, the chart and the notes,
/// in the order the report shows them.
pub(super) fn section_from(result: &UiResult) -> Section {
    let mut section = Section::new("ui", "Keeping the UI thread responsive", &method(result));
    case_figures(&mut section, result);
    section.tables.push(case_table(result));
    section.charts.push(frame_chart(result));
    notes(&mut section, result);
    section.set_data(result);
    section
}

/// Where the cases ran.
const PLACEMENT: &str = "unpinned (the scheduler's choice)";

/// What the section measured and how, with the run's settings.
fn method(result: &UiResult) -> String {
    let cpus = result.cpus;
    format!(
        "A UI loop on the lab's thread ticks at 60 Hz: it sleeps to each frame's absolute \
             deadline (t0 + k × 16.7 ms), does a little frame work and records the frame's start. \
             A CPU-heavy job ({} rounds of xorshift64 into FNV-1a, about {:.0} ms here, the same \
             in every case, its checksum checked) starts {} frames in (the earlier frames are \
             warm-up) and runs (a) on the UI thread, whole, inside one frame, as a click handler \
             would; (b) on a worker thread; (c) in a warm worker process of \
             proctor::Pool::processes(1), polled with Task::is_finished each frame; (d) on {cpus} \
             and {} worker threads (the CPU count and twice it), each running the whole job. \
             Frame time = the interval between two frame starts, from the frame that starts the \
             job until {} frames after one saw it done; a frame time F above 1.5 × 16.7 ms = \
             25 ms counts round(F / 16.7 ms) − 1 missed frames, and a late loop skips to the next \
             deadline, as vsync would. Job time = the job's own start-to-end time inside the \
             thread or process that ran it. {} repetitions, the cases interleaved; frame \
             percentiles over every frame of every repetition, missed frames per run. \
             Everything unpinned.",
        result.job_rounds,
        result
            .cases
            .first()
            .map_or(f64::NAN, |c| crate::stats::median(&c.job_ns) / 1e6),
        result.warmup_frames,
        2 * cpus,
        result.tail_frames,
        result.repetitions,
    )
}

/// The frame period, and per case: frame times, missed frames, frames drawn and the job's time.
fn case_figures(section: &mut Section, result: &UiResult) {
    let cpus = result.cpus;
    section.figures.push(Figure::new(
        keys::UI_PERIOD,
        "frame period (60 Hz)",
        result.period_ns,
        Unit::Ns,
    ));
    for c in &result.cases {
        let key = c.case.key();
        let label = c.case.label(cpus);
        let Some(frames) = summarize(&c.frame_ns) else {
            continue;
        };
        section.figures.push(
            Figure::new(
                &format!("ui.frame_p50.{key}"),
                &format!("frame time p50, job on {label}"),
                frames.median,
                Unit::Ns,
            )
            .with_spread(frames.spread())
            .placed(PLACEMENT),
        );
        for (name, what, v) in [("p99", "p99", frames.p99), ("max", "max", frames.max)] {
            section.figures.push(
                Figure::new(
                    &format!("ui.frame_{name}.{key}"),
                    &format!("frame time {what}, job on {label}"),
                    v,
                    Unit::Ns,
                )
                .placed(PLACEMENT),
            );
        }
        section.figures.push(
            Figure::new(
                &format!("ui.missed.{key}"),
                &format!("missed frames per run, job on {label}"),
                c.missed_per_run(),
                Unit::Count,
            )
            .placed(PLACEMENT),
        );
        section.figures.push(Figure::new(
            &format!("ui.frames.{key}"),
            &format!("frames recorded, job on {label}"),
            c.frame_ns.len() as f64,
            Unit::Count,
        ));
        let (job, spread) = crate::stats::median_and_spread(&c.job_ns);
        let mut f = Figure::new(
            &format!("ui.job.{key}"),
            &format!("the job's own time, on {label}"),
            job,
            Unit::Ns,
        )
        .placed(PLACEMENT);
        if let Some(s) = spread {
            f = f.with_spread(s);
        }
        section.figures.push(f);
    }
}

/// Every case: frames missed, frame times and the job's time.
fn case_table(result: &UiResult) -> Table {
    let cpus = result.cpus;
    let ms = |ns: f64| format!("{:.1}", ns / 1e6);
    Table {
        title: "Frame times while the job runs (ms) and missed frames".to_string(),
        columns: [
            "job runs",
            "p50",
            "p99",
            "max",
            "missed/run",
            "frames",
            "job (ms)",
            "until done (ms)",
        ]
        .map(String::from)
        .to_vec(),
        rows: result
            .cases
            .iter()
            .filter_map(|c| {
                let s = summarize(&c.frame_ns)?;
                Some(vec![
                    c.case.label(cpus),
                    ms(s.median),
                    ms(s.p99),
                    ms(s.max),
                    format!("{:.1}", c.missed_per_run()),
                    c.frame_ns.len().to_string(),
                    ms(crate::stats::median(&c.job_ns)),
                    ms(crate::stats::median(&c.wall_ns)),
                ])
            })
            .collect(),
    }
}

/// The p99 frame time per case.
fn frame_chart(result: &UiResult) -> Chart {
    let cpus = result.cpus;
    Chart {
        id: "frame-p99".to_string(),
        title: "Frame time p99 by where the job runs".to_string(),
        kind: ChartKind::Bar,
        x_label: "where the job runs".to_string(),
        y_label: "frame time p99".to_string(),
        x_unit: AxisUnit::Plain,
        y_unit: AxisUnit::Ms,
        x_log: false,
        y_log: true,
        categories: result.cases.iter().map(|c| c.case.label(cpus)).collect(),
        series: vec![Series {
            name: "p99".to_string(),
            points: result
                .cases
                .iter()
                .enumerate()
                .filter_map(|(i, c)| Some((i as f64, summarize(&c.frame_ns)?.p99 / 1e6)))
                .collect(),
        }],
    }
}

/// What a missed frame is, and what oversubscribing the CPUs did to the frames and the job.
fn notes(section: &mut Section, result: &UiResult) {
    let cpus = result.cpus;
    section.notes.push(format!(
        "A frame budget is 16.7 ms; a frame time over 25 ms (1.5 × the period) is a missed frame. \
         {cpus} CPU(s) are allowed here: the (d) cases with {} threads oversubscribe them, and \
         the UI thread then competes with the job for a CPU.",
        2 * cpus
    ));
    let case = |c: Case| result.cases.iter().find(|r| r.case == c);
    if let (Some(over), Some(one)) = (case(Case::Threads2xCores), case(Case::WorkerThread)) {
        let slower = crate::stats::median(&over.job_ns) / crate::stats::median(&one.job_ns);
        section.notes.push(if over.missed_per_run() <= 1.0 {
            format!(
                "With {} busy threads on {cpus} CPU(s) the UI missed {:.1} frames per run while \
                 each job took {slower:.1}× as long as alone: Linux's scheduler lets a thread \
                 that wakes from sleep, as the UI loop does every frame, run ahead of threads \
                 that used up their share, so oversubscription slowed the job, not the frames.",
                2 * cpus,
                over.missed_per_run()
            )
        } else {
            format!(
                "With {} busy threads on {cpus} CPU(s) the UI thread waited for a CPU: {:.1} \
                 missed frames per run, each job {slower:.1}× as long as alone.",
                2 * cpus,
                over.missed_per_run()
            )
        });
    }
}

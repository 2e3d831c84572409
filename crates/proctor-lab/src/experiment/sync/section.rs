//! The sync section, from a [`SyncResult`]: a figure per scenario, the table, the chart and
//! the notes.

use super::*;
use crate::units::AxisUnit;

/// The section of a sync run: a figure per scenario, the table, the chart and the notes.
pub(super) fn section_from(result: &SyncResult, two_cpus: bool) -> Section {
    let mut section = Section::new("sync", "Synchronization cost", METHOD);
    for s in &result.scenarios {
        let (median, spread) = median_and_spread(&s.samples_ns);
        let mut f = Figure::new(&s.key, &s.label, median, Unit::Ns)
            .with_rounds(&s.round_medians_ns)
            .placed(&s.placement);
        if let Some(spread) = spread {
            f = f.with_spread(spread);
        }
        section.figures.push(f);
    }
    section.tables.push(scenario_table(result));
    if !result.placements.is_empty() {
        section.tables.push(placement_table(result));
    }
    let ns = |key: &str| {
        result
            .scenarios
            .iter()
            .find(|s| s.key == key)
            .map(|s| s.median_ns)
    };
    if let (Some(p), Some(s)) = (ns(FUTEX_WAIT_PRIVATE), ns(FUTEX_WAIT_SHARED)) {
        section.notes.push(format!(
            "The futex key lookup: a shared futex costs {:.0} ns per FUTEX_WAIT against {:.0} ns \
             private ({:.2}×). A process-shared lock pays this only when contention reaches the \
             kernel; the contended figures above include it as often as that happens.",
            s,
            p,
            s / p
        ));
    }
    section.charts.push(cost_chart(result));
    if result.process_mutex_ops > 0 {
        section.notes.push(format!(
            "The process-shared futex mutex made {} FUTEX_WAIT and {} FUTEX_WAKE calls over {} \
             contended lock+unlock pairs ({:.2}% of ops slept in the kernel).",
            result.process_mutex_futex_waits,
            result.process_mutex_futex_wakes,
            result.process_mutex_ops,
            100.0 * result.process_mutex_futex_waits as f64 / result.process_mutex_ops as f64
        ));
    }
    if !two_cpus {
        section.notes.push("Only one CPU is allowed here: the contended figures ran unpinned on one CPU, so they measure time slicing, not cross-CPU contention.".to_string());
    }
    section.set_data(result);
    section
}

/// The verdict's pair on every farther placement: threads against processes.
fn placement_table(result: &SyncResult) -> Table {
    Table {
        title: "The futex mutex contended on every placement (ns per lock+unlock, one round)"
            .to_string(),
        columns: [
            "placement",
            "2 threads",
            "2 processes",
            "processes / threads",
        ]
        .map(String::from)
        .to_vec(),
        rows: result
            .placements
            .iter()
            .map(|r| {
                vec![
                    r.placement.clone(),
                    format!("{:.1}", r.thread_ns),
                    format!("{:.1}", r.process_ns),
                    format!("{:.2}×", r.process_ns / r.thread_ns),
                ]
            })
            .collect(),
    }
}

/// Every scenario: its cost and spread.
fn scenario_table(result: &SyncResult) -> Table {
    Table {
        title: "Cost per op (ns)".to_string(),
        columns: [
            "op",
            "placement",
            "median ns",
            "min",
            "max",
            "batches",
            "ops/side/batch",
        ]
        .map(String::from)
        .to_vec(),
        rows: result
            .scenarios
            .iter()
            .map(|s| {
                let min = s.samples_ns.iter().copied().fold(f64::INFINITY, f64::min);
                let max = s.samples_ns.iter().copied().fold(0.0, f64::max);
                vec![
                    s.label.clone(),
                    s.placement.clone(),
                    format!("{:.1}", s.median_ns),
                    format!("{min:.1}"),
                    format!("{max:.1}"),
                    s.samples_ns.len().to_string(),
                    s.iterations_per_batch.to_string(),
                ]
            })
            .collect(),
    }
}

/// The cost per op of every scenario.
fn cost_chart(result: &SyncResult) -> Chart {
    Chart {
        id: "cost".to_string(),
        title: "Cost per synchronization op".to_string(),
        kind: ChartKind::Bar,
        x_label: "op".to_string(),
        y_label: "time per op".to_string(),
        x_unit: AxisUnit::Plain,
        y_unit: AxisUnit::Ns,
        x_log: false,
        y_log: true,
        categories: result
            .scenarios
            .iter()
            .map(|s| s.key.trim_start_matches("sync.").to_string())
            .collect(),
        series: vec![Series {
            name: "median".to_string(),
            points: result
                .scenarios
                .iter()
                .enumerate()
                .map(|(i, s)| (i as f64, s.median_ns))
                .collect(),
        }],
    }
}

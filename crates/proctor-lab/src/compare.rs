//! `proctor compare`: reports from several machines (or several runs) side by side.
//!
//! Each input is a `report.json` that `proctor report` wrote. The comparison lines up the
//! machines, the headline rows, the claims' verdicts and the figures the reports share (same
//! key, same unit), each with its ratio to the first report's, and charts the process/thread
//! ratio of every headline row per machine. Nothing is measured here.

use crate::units::AxisUnit;
use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result, bail};
use serde::Serialize;

use crate::render::{self, format_ratio, verdict_label};
use crate::report::{Chart, ChartKind, Report, SCHEMA_VERSION, Series, Table, Verdict};

/// One report to compare, under the label its column carries.
#[derive(Debug, Clone)]
pub struct Compared {
    /// The column heading: the file's stem, or its parent folder when the stem is `report`.
    pub label: String,
    /// The report.
    pub report: Report,
}

/// Reads the report at `path`, with a clear error for a file that is not one.
pub fn load(path: &Path) -> Result<Compared> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let value: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
    match value
        .get("schema_version")
        .and_then(serde_json::Value::as_u64)
    {
        Some(v) if v == u64::from(SCHEMA_VERSION) => {}
        Some(v) => bail!(
            "{} has report schema {v}; this proctor reads schema {SCHEMA_VERSION}",
            path.display()
        ),
        None => bail!(
            "{} is not a proctor report (no schema_version; write one with `proctor report`)",
            path.display()
        ),
    }
    let report: Report = serde_json::from_value(value)
        .with_context(|| format!("{} is not a proctor report", path.display()))?;
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("report");
    let label = match (stem, path.parent().and_then(|p| p.file_name())) {
        ("report", Some(dir)) => dir.to_string_lossy().into_owned(),
        _ => stem.to_string(),
    };
    Ok(Compared { label, report })
}

/// The reports side by side.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    /// One column label per report, in the order given.
    pub labels: Vec<String>,
    /// One row per report: where its figures were taken.
    pub machines: Table,
    /// One row per headline aspect, one cell per report.
    pub headline: Table,
    /// One row per claim, one verdict per report, and whether they agree.
    pub claims: Table,
    /// The figures every report has, each report's value and its ratio to the first's.
    pub figures: Table,
    /// The keys of the figures that decide a claim (the short form shows only these).
    pub deciding: Vec<String>,
    /// The process/thread ratio of each headline row, one series per report.
    pub ratios: Chart,
}

/// Lines the reports up. Labels that repeat get a number, so every column can be told apart.
pub fn compare(reports: &[Compared]) -> Comparison {
    let labels = unique_labels(reports);
    let aspects = ordered_union(reports.iter().map(|c| {
        c.report
            .headline
            .iter()
            .map(|r| r.aspect.clone())
            .collect::<Vec<_>>()
    }));
    Comparison {
        machines: machines_table(reports, &labels),
        headline: headline_table(reports, &labels, &aspects),
        claims: claims_table(reports, &labels),
        figures: figures_table(reports, &labels),
        deciding: deciding_keys(reports),
        ratios: ratios_chart(reports, &labels, &aspects),
        labels,
    }
}

/// One row per report: where its figures were taken.
fn machines_table(reports: &[Compared], labels: &[String]) -> Table {
    Table {
        title: "Machines".into(),
        columns: [
            "report",
            "CPU",
            "logical CPUs",
            "kernel",
            "virtualization",
            "profile",
            "proctor",
        ]
        .map(String::from)
        .to_vec(),
        rows: reports
            .iter()
            .zip(labels)
            .map(|(c, label)| {
                let m = &c.report.machine;
                vec![
                    label.clone(),
                    m.cpu_model.clone(),
                    m.logical_cpus.to_string(),
                    m.kernel.clone(),
                    m.virtualization.clone().unwrap_or_else(|| "—".into()),
                    format!("{:?}", c.report.profile).to_lowercase(),
                    c.report.proctor_version.clone(),
                ]
            })
            .collect(),
    }
}

/// One row per headline aspect, one cell per report: thread · process (ratio) verdict.
fn headline_table(reports: &[Compared], labels: &[String], aspects: &[String]) -> Table {
    let mut headline_columns = vec!["aspect".to_string()];
    headline_columns.extend(labels.iter().cloned());
    Table {
        title: "Comparison (thread · process, ratio = process / thread, verdict)".into(),
        columns: headline_columns,
        rows: aspects
            .iter()
            .map(|aspect| {
                let mut row = vec![aspect.clone()];
                for c in reports {
                    row.push(
                        match c.report.headline.iter().find(|r| &r.aspect == aspect) {
                            Some(r) if r.thread.is_none() && r.process.is_none() => {
                                verdict_label(r.verdict).to_string()
                            }
                            Some(r) => {
                                let ratio = match r.ratio {
                                    Some(_) => format!(" ({})", format_ratio(r.ratio)),
                                    None => String::new(),
                                };
                                format!(
                                    "{} · {}{ratio} {}",
                                    r.thread.as_deref().unwrap_or("—"),
                                    r.process.as_deref().unwrap_or("—"),
                                    verdict_label(r.verdict)
                                )
                            }
                            None => "—".into(),
                        },
                    );
                }
                row
            })
            .collect(),
    }
}

/// One row per claim, one verdict per report, and whether the measured ones agree.
fn claims_table(reports: &[Compared], labels: &[String]) -> Table {
    let claim_ids = ordered_union(reports.iter().map(|c| {
        c.report
            .claims
            .iter()
            .map(|k| k.id.clone())
            .collect::<Vec<_>>()
    }));
    let mut claim_columns = vec!["claim".to_string()];
    claim_columns.extend(labels.iter().cloned());
    claim_columns.push("agree".into());
    Table {
        title: "Claims".into(),
        columns: claim_columns,
        rows: claim_ids
            .iter()
            .map(|id| {
                let found: Vec<_> = reports
                    .iter()
                    .map(|c| c.report.claims.iter().find(|k| &k.id == id))
                    .collect();
                let statement = found
                    .iter()
                    .flatten()
                    .next()
                    .map_or_else(|| id.clone(), |k| k.statement.clone());
                let verdicts: Vec<Option<Verdict>> =
                    found.iter().map(|k| k.map(|k| k.verdict)).collect();
                let mut row = vec![statement];
                row.extend(verdicts.iter().map(|v| match v {
                    Some(v) => verdict_label(*v).to_string(),
                    None => "—".into(),
                }));
                let measured: BTreeSet<_> = verdicts
                    .iter()
                    .flatten()
                    .filter(|v| **v != Verdict::NotMeasured)
                    .map(|v| verdict_label(*v))
                    .collect();
                row.push(match measured.len() {
                    0 => "—".into(),
                    1 => "yes".into(),
                    _ => "differs".into(),
                });
                row
            })
            .collect(),
    }
}

/// The keys of the figures that decide a claim in any report.
fn deciding_keys(reports: &[Compared]) -> Vec<String> {
    ordered_union(reports.iter().map(|c| {
        c.report
            .claims
            .iter()
            .flat_map(|k| k.figure_keys.iter().cloned())
            .collect::<Vec<_>>()
    }))
}

/// The figures every report has (same key, same unit): each report's value and its ratio to
/// the first report's.
fn figures_table(reports: &[Compared], labels: &[String]) -> Table {
    let mut figure_columns = vec!["figure".to_string()];
    figure_columns.extend(labels.iter().cloned());
    figure_columns.extend(
        labels
            .iter()
            .skip(1)
            .map(|l| format!("{l} / {}", labels[0])),
    );
    let first = &reports[0].report;
    Table {
        title: "Figures in every report".into(),
        columns: figure_columns,
        rows: first
            .sections
            .iter()
            .flat_map(|s| &s.figures)
            .filter_map(|f0| {
                let all: Option<Vec<_>> = reports
                    .iter()
                    .map(|c| {
                        c.report
                            .sections
                            .iter()
                            .flat_map(|s| &s.figures)
                            .find(|f| f.key == f0.key && f.unit == f0.unit)
                    })
                    .collect();
                let all = all?;
                let mut row = vec![f0.key.clone()];
                row.extend(all.iter().map(|f| f.shown()));
                row.extend(all.iter().skip(1).map(|f| {
                    let ratio = (f0.value > 0.0 && f.value.is_finite())
                        .then(|| f.value / f0.value)
                        .filter(|r| r.is_finite());
                    format_ratio(ratio)
                }));
                Some(row)
            })
            .collect(),
    }
}

/// The process / thread ratio of each headline row that has one, one series per report.
fn ratios_chart(reports: &[Compared], labels: &[String], aspects: &[String]) -> Chart {
    let with_ratio: Vec<&String> = aspects
        .iter()
        .filter(|a| {
            reports.iter().any(|c| {
                c.report
                    .headline
                    .iter()
                    .any(|r| &r.aspect == *a && r.ratio.is_some_and(|x| x > 0.0))
            })
        })
        .collect();
    Chart {
        id: "ratios".into(),
        title: "process / thread, per headline row and machine".into(),
        kind: ChartKind::Bar,
        x_label: "aspect".into(),
        y_label: "process / thread (×)".into(),
        x_unit: AxisUnit::Plain,
        y_unit: AxisUnit::Plain,
        x_log: false,
        y_log: true,
        categories: with_ratio.iter().map(|a| (*a).clone()).collect(),
        series: reports
            .iter()
            .zip(labels)
            .map(|(c, label)| Series {
                name: label.clone(),
                points: with_ratio
                    .iter()
                    .enumerate()
                    .filter_map(|(x, a)| {
                        let r = c.report.headline.iter().find(|r| &r.aspect == *a)?;
                        r.ratio.filter(|v| *v > 0.0).map(|v| (x as f64, v))
                    })
                    .collect(),
            })
            .collect(),
    }
}

/// The reports' labels, numbered where two would read the same.
fn unique_labels(reports: &[Compared]) -> Vec<String> {
    let mut seen = std::collections::HashMap::<&str, usize>::new();
    for c in reports {
        *seen.entry(c.label.as_str()).or_default() += 1;
    }
    let mut used = std::collections::HashMap::<&str, usize>::new();
    reports
        .iter()
        .map(|c| {
            if seen[c.label.as_str()] > 1 {
                let n = used.entry(c.label.as_str()).or_default();
                *n += 1;
                format!("{} #{n}", c.label)
            } else {
                c.label.clone()
            }
        })
        .collect()
}

/// Every item of every list once, in the order first met.
fn ordered_union(lists: impl Iterator<Item = Vec<String>>) -> Vec<String> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for list in lists {
        for item in list {
            if seen.insert(item.clone()) {
                out.push(item);
            }
        }
    }
    out
}

/// The terminal form, `width` columns wide: machines, comparison, claims, and the figures
/// that decide a claim (every shared figure with `all_figures`).
pub fn render_text(c: &Comparison, width: u16, all_figures: bool) -> String {
    let mut out = String::new();
    let figures = if all_figures {
        c.figures.clone()
    } else {
        Table {
            title: "Figures that decide a claim".into(),
            rows: c
                .figures
                .rows
                .iter()
                .filter(|r| c.deciding.contains(&r[0]))
                .cloned()
                .collect(),
            ..c.figures.clone()
        }
    };
    for table in [&c.machines, &c.headline, &c.claims, &figures] {
        out.push_str(&render::table::titled_table(table, width));
    }
    if !all_figures {
        let _ = writeln!(
            out,
            "{} figures are in every report; --all shows them, --html writes them with a chart.",
            c.figures.rows.len()
        );
    }
    out
}

/// The HTML form: one self-contained page, in the report's style.
pub fn render_html(c: &Comparison) -> String {
    use render::html::esc;
    let mut out = String::new();
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>proctor: {} compared</title><style>{}</style></head><body>\
         <h1>Processes vs threads, {} reports side by side</h1>",
        esc(&c.labels.join(", ")),
        render::html::STYLE,
        c.labels.len()
    );
    for table in [&c.machines, &c.headline, &c.claims] {
        render::html::titled_table(&mut out, table);
    }
    let _ = write!(
        out,
        "<figure class=\"chart\" id=\"chart-compare-ratios\">{}</figure>",
        render::svg::render(&c.ratios)
    );
    render::html::titled_table(&mut out, &c.figures);
    out.push_str("<footer>Written by <code>proctor compare</code>.</footer></body></html>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{Claim, Figure, HeadlineRow, Section, Unit};

    fn report(cpu: &str, switch_ns: f64, verdict: Verdict) -> Report {
        let mut r = crate::fixture::report();
        r.machine.cpu_model = cpu.into();
        r.headline = vec![HeadlineRow {
            aspect: "context switching".into(),
            thread: Some("1.00 µs".into()),
            process: Some("2.00 µs".into()),
            async_task: None,
            ratio: Some(switch_ns / 1000.0),
            ratio_ci: None,
            claim: "threads switch faster".into(),
            verdict,
            deciding: String::new(),
            thread_rounds: None,
            process_rounds: None,
            async_rounds: None,
        }];
        r.claims = vec![Claim {
            id: "switch".into(),
            statement: "threads switch faster".into(),
            verdict,
            evidence: String::new(),
            figure_keys: vec!["switch.process".into()],
        }];
        let mut s = Section::new("switch", "Switch", "");
        s.figures = vec![
            Figure::new("switch.process", "p", switch_ns, Unit::Ns),
            Figure::new(&format!("only.{cpu}"), "x", 1.0, Unit::Ns),
        ];
        r.sections = vec![s];
        r
    }

    #[test]
    fn reports_line_up_with_ratios_to_the_first_and_disagreements_marked() {
        let reports = [
            Compared {
                label: "intel".into(),
                report: report("Intel", 2000.0, Verdict::Confirmed),
            },
            Compared {
                label: "amd".into(),
                report: report("AMD", 5000.0, Verdict::NoClearDifference),
            },
        ];
        let c = compare(&reports);
        assert_eq!(c.labels, ["intel", "amd"]);
        assert_eq!(c.machines.rows[1][1], "AMD");
        // Only the figure both have, with amd / intel = 2.5.
        assert_eq!(c.figures.rows.len(), 1);
        assert_eq!(c.figures.rows[0][0], "switch.process");
        assert_eq!(c.figures.rows[0][3], format_ratio(Some(2.5)));
        assert_eq!(c.claims.rows[0].last().unwrap(), "differs");
        assert_eq!(c.ratios.series.len(), 2);
        assert_eq!(c.ratios.series[1].points, [(0.0, 5.0)]);
        let text = render_text(&c, 100, false);
        assert!(text.contains("Figures that decide a claim") && text.contains("differs"));
        let html = render_html(&c);
        assert!(html.contains("<svg") && html.contains("switch.process"));
    }

    #[test]
    fn the_same_label_twice_is_numbered() {
        let r = report("X", 1.0, Verdict::Confirmed);
        let same = |_| Compared {
            label: "report".into(),
            report: r.clone(),
        };
        let c = compare(&[same(0), same(1)]);
        assert_eq!(c.labels, ["report #1", "report #2"]);
        assert_eq!(c.claims.rows[0].last().unwrap(), "yes");
    }

    #[test]
    fn a_file_that_is_not_a_report_says_so() {
        let dir = std::env::temp_dir().join(format!("proctor-compare-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let bad = dir.join("bad.json");
        std::fs::write(&bad, r#"{"hello": 1}"#).unwrap();
        let e = load(&bad).unwrap_err().to_string();
        assert!(e.contains("not a proctor report"), "{e}");
        let future = dir.join("future.json");
        std::fs::write(&future, r#"{"schema_version": 99}"#).unwrap();
        let e = load(&future).unwrap_err().to_string();
        assert!(e.contains("schema 99"), "{e}");
        let good = dir.join("report.json");
        let json = serde_json::to_string(&report("Y", 1.0, Verdict::Confirmed)).unwrap();
        std::fs::write(&good, json).unwrap();
        let loaded = load(&good).unwrap();
        assert_eq!(loaded.label, dir.file_name().unwrap().to_string_lossy());
        let _ = std::fs::remove_dir_all(&dir);
    }
}

//! Renderers: turn a [`Report`] into text. One file per format, one dispatch point ([`render`]).
//!
//! Every renderer is a pure function of the report that returns a `String`: none prints, none
//! measures, none touches the file system. The shared formatting (unit scaling, verdict words)
//! lives here so that all formats show a figure the same way.

pub mod html;
pub mod json;
pub mod markdown;
pub mod svg;
pub mod table;

#[cfg(test)]
mod tests;

use crate::report::{Figure, Report, Spread, Unit, Verdict};

/// An output format of the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// The terminal table; `color` adds ANSI colors (off for pipes and tests).
    Table {
        /// Whether to add ANSI colors.
        color: bool,
    },
    /// Pretty JSON with `schema_version`.
    Json,
    /// GitHub-flavoured Markdown.
    Markdown,
    /// One self-contained HTML page with inline CSS and SVG charts.
    Html,
}

impl Format {
    /// The usual file name extension for this format (`txt` for the table).
    pub fn extension(self) -> &'static str {
        match self {
            Format::Table { .. } => "txt",
            Format::Json => "json",
            Format::Markdown => "md",
            Format::Html => "html",
        }
    }
}

/// Renders `report` in `format`: the single dispatch point over the renderers.
///
/// # Errors
///
/// Only the JSON renderer can fail (a serializer error); the others always succeed.
pub fn render(report: &Report, format: Format) -> anyhow::Result<String> {
    Ok(match format {
        Format::Table { color } => table::render(report, color),
        Format::Json => json::render(report)?,
        Format::Markdown => markdown::render(report),
        Format::Html => html::render(report),
    })
}

/// Three significant digits, without a trailing exponent: 1.23, 12.3, 123, 1234.
fn significant(v: f64) -> String {
    let a = v.abs();
    if a == 0.0 {
        "0".to_string()
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// Scales `v` down by `step` through `units` until it is below `step`.
fn scaled(v: f64, step: f64, units: &[&str]) -> String {
    let mut v = v;
    let mut i = 0;
    while v.abs() >= step && i + 1 < units.len() {
        v /= step;
        i += 1;
    }
    format!("{} {}", significant(v), units[i])
}

/// Groups the digits of an integer count by thousands: `200,000`.
fn grouped(v: f64) -> String {
    let digits = format!("{:.0}", v.abs());
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if v < 0.0 {
        out.insert(0, '-');
    }
    out
}

/// A value with its unit, scaled for reading: ns → µs → ms → s, B → KiB → MiB → GiB, and
/// rates in decimal multiples, B/s → kB/s → MB/s → GB/s, as the lab's tables and notes state
/// throughput (MB/s = 10^6 bytes per second).
pub fn format_value(v: f64, unit: Unit) -> String {
    if !v.is_finite() {
        return "n/a".to_string();
    }
    match unit {
        Unit::Ns => {
            if v.abs() >= 1e9 {
                format!("{} s", significant(v / 1e9))
            } else {
                scaled(v, 1000.0, &["ns", "µs", "ms", "s"])
            }
        }
        Unit::Bytes => scaled(v, 1024.0, &["B", "KiB", "MiB", "GiB", "TiB"]),
        Unit::BytesPerSec => scaled(v, 1000.0, &["B/s", "kB/s", "MB/s", "GB/s", "TB/s"]),
        Unit::PerSec => scaled(v, 1000.0, &["/s", "k/s", "M/s", "G/s"]),
        Unit::Count if v.fract() == 0.0 => grouped(v),
        Unit::Count => significant(v),
        Unit::Ratio => format!("{}×", significant(v)),
        Unit::Percent => format!("{} %", significant(v)),
    }
}

/// A figure's value in its unit, or "< resolution" when the method cannot resolve it.
pub fn figure_value(f: &crate::report::Figure) -> String {
    match f.resolution {
        Some(r) if f.below_resolution() => format!("< {}", format_value(r, f.unit)),
        _ => format_value(f.value, f.unit),
    }
}

/// A ratio column cell: `3.20×`, or empty when there is none.
pub fn format_ratio(ratio: Option<f64>) -> String {
    match ratio {
        Some(r) if r.is_finite() => format!("{r:.2}×"),
        _ => String::new(),
    }
}

/// The p1–p99 spread of a figure in its unit, with the sample count: `1.10 µs – 1.52 µs (n=30)`.
pub fn format_spread(spread: &Spread, unit: Unit) -> String {
    let mut s = format!(
        "{} – {} (n={}",
        format_value(spread.p1, unit),
        format_value(spread.p99, unit),
        spread.samples
    );
    if spread.outliers > 0 {
        s.push_str(&format!(", {} outliers", spread.outliers));
    }
    s.push(')');
    s
}

/// A figure's spread cell, empty when it has none; with the run-to-run spread of its
/// independent rounds after it, where it has several.
pub fn figure_spread(figure: &Figure) -> String {
    let samples = figure
        .spread
        .as_ref()
        .map(|s| format_spread(s, figure.unit));
    let rounds = figure.rounds.as_ref().map(|r| {
        format!(
            "{} rounds {} ({} – {})",
            r.values.len(),
            format_rounds_pct(r),
            format_value(r.min, figure.unit),
            format_value(r.max, figure.unit)
        )
    });
    match (samples, rounds) {
        (Some(s), Some(r)) => format!("{s}; {r}"),
        (s, r) => s.or(r).unwrap_or_default(),
    }
}

/// What the headline's `±` means, when some cell has one: the most rounds behind a cell.
pub fn rounds_note(report: &crate::report::Report) -> Option<String> {
    let most = report
        .headline
        .iter()
        .flat_map(|r| [&r.thread_rounds, &r.process_rounds, &r.async_rounds])
        .filter_map(|r| r.as_ref().map(|r| r.values.len()))
        .max()?;
    Some(format!(
        "± = run-to-run spread: each of {most} independent runs is within it of the median"
    ))
}

/// The run-to-run spread of independent rounds: `±4.1%` (every round within it of the
/// figure), in one word so that a narrow table never wraps it apart.
pub fn format_rounds_pct(rounds: &crate::report::Rounds) -> String {
    if rounds.spread_pct < 10.0 {
        format!("±{:.1}%", rounds.spread_pct)
    } else {
        format!("±{:.0}%", rounds.spread_pct)
    }
}

/// How a verdict reads in every format.
pub fn verdict_label(verdict: Verdict) -> &'static str {
    match verdict {
        Verdict::Confirmed => "confirmed",
        Verdict::Refuted => "refuted",
        Verdict::Depends => "depends",
        Verdict::NoClearDifference => "no clear difference",
        Verdict::NotMeasured => "not measured",
    }
}

/// The ratio of our figure to an established tool's, where both exist.
pub fn cross_check_ratio(ours: Option<f64>, theirs: Option<f64>) -> Option<f64> {
    let r = ours? / theirs?;
    r.is_finite().then_some(r)
}

/// An optional cell: the value, or an en dash when it was not measured.
fn cell(value: &Option<String>) -> &str {
    value.as_deref().unwrap_or("–")
}

//! Renderers: turn a [`Report`] into text. One file per format, one dispatch point ([`render`]).
//!
//! Every renderer is a pure function of the report that returns a `String`: none prints, none
//! measures, none touches the file system. The shared cells (figure, spread, ratio, verdict words)
//! live here so that all formats show a figure the same way; the numbers themselves are
//! formatted by [`crate::units`], which the experiments and verdicts use too.
//!
//! Renderers import only the report model ([`crate::report`]) and [`crate::units`]. Others
//! import [`render`] and [`Format`] (the CLI); `compare` draws its tables with
//! [`table::titled_table`] and [`html::titled_table`] and its chart with [`svg::render`], inside
//! its own page (`html::STYLE`, [`html::esc`]); nothing here imports an experiment or the
//! verdicts.

pub mod html;
pub mod json;
pub mod markdown;
pub mod svg;
pub mod table;

#[cfg(test)]
mod tests;

use crate::report::{Figure, Report, Spread, Verdict};
use crate::units::{Unit, format_value};

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

/// A ratio column cell: `3.20×`, or empty when there is none.
pub fn format_ratio(ratio: Option<f64>) -> String {
    match ratio {
        Some(r) if r.is_finite() => format!("{r:.2}×"),
        _ => String::new(),
    }
}

/// A ratio with its 95 % interval where it has one: `3.20× (2.90–3.55)`; for the HTML and
/// Markdown headline (the terminal keeps the bare ratio, for width).
pub fn format_ratio_ci(ratio: Option<f64>, ci: Option<(f64, f64)>) -> String {
    match (format_ratio(ratio), ci) {
        (r, Some((lo, hi))) if !r.is_empty() => format!("{r} ({lo:.2}–{hi:.2})"),
        (r, _) => r,
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
            r.shown_pct(),
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
    let most = rounds_count(report)?;
    Some(format!(
        "± = run-to-run spread: each of {most} independent runs is within it of the median"
    ))
}

/// The most independent rounds behind any headline figure, if any has several.
pub fn rounds_count(report: &crate::report::Report) -> Option<usize> {
    report
        .headline
        .iter()
        .flat_map(|r| [&r.thread_rounds, &r.process_rounds, &r.async_rounds])
        .filter_map(|r| r.as_ref().map(|r| r.values.len()))
        .max()
}

/// How a verdict reads in every format.
pub fn verdict_label(verdict: Verdict) -> &'static str {
    match verdict {
        Verdict::Confirmed => "confirmed",
        Verdict::Refuted => "refuted",
        Verdict::Depends => "depends",
        Verdict::NoClearDifference => "no clear difference",
        Verdict::NotMeasured => "not measured",
        Verdict::NotDecided => "not decided here",
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

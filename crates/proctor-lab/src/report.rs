//! The report model: what experiments produce and renderers consume.
//!
//! Experiments return a [`Section`] each; [`crate::run_report`] gathers them, with the
//! [`Machine`] they ran on, into a [`Report`]. Renderers (table, JSON, Markdown,
//! HTML) only read this model, so nothing here measures and nothing here prints.
//!
//! The JSON form is stable: [`SCHEMA_VERSION`] changes whenever a field is removed
//! or changes meaning. Serialized field names carry their unit (`median_ns`) or the
//! value carries a [`Unit`].

use serde::{Deserialize, Serialize};

use crate::conditions::Conditions;
use crate::machine::Machine;
use crate::units::format_value;
pub use crate::units::{AxisUnit, Unit};

/// Version of the JSON schema of [`Report`].
pub const SCHEMA_VERSION: u32 = 1;

/// A whole lab run: the machine, one section per experiment, and the verdicts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// The JSON schema version, [`SCHEMA_VERSION`] when written.
    pub schema_version: u32,
    /// Version of proctor that produced the report.
    pub proctor_version: String,
    /// The exact command line that produced the report.
    pub command_line: String,
    /// How much measuring the run did.
    pub profile: Profile,
    /// The machine the run measured.
    pub machine: Machine,
    /// The classic comparison table, one row per aspect (filled by the verdict step).
    pub headline: Vec<HeadlineRow>,
    /// Classic claims, each with its verdict and the measurement behind it.
    pub claims: Vec<Claim>,
    /// One section per experiment, in the order they ran.
    pub sections: Vec<Section>,
}

/// How much measuring to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    /// A few samples, for tests: checks shapes, not figures.
    Tiny,
    /// The default: every experiment in seconds.
    #[default]
    Quick,
    /// More samples, sizes and footprints.
    Full,
}

/// The result of one experiment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Section {
    /// The experiment id (`spawn`, `switch`, ...): file name, CLI value, JSON key, HTML anchor.
    pub id: String,
    /// Human title of the experiment.
    pub title: String,
    /// How it was measured, in a few sentences: what one op is, placement, what is subtracted.
    pub method: String,
    /// Whether the experiment produced its figures.
    pub status: Status,
    /// Wall time the experiment took.
    pub elapsed_ms: f64,
    /// Named figures the verdicts and the headline look up by key, e.g. `spawn.thread`.
    pub figures: Vec<Figure>,
    /// Tables to show with the section.
    pub tables: Vec<Table>,
    /// Charts to show with the section.
    pub charts: Vec<Chart>,
    /// Figures from established tools next to ours.
    pub cross_checks: Vec<CrossCheck>,
    /// Published figures for the same quantity, with their source and hardware.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub published: Vec<Published>,
    /// Warnings and explanations worth showing with the section.
    pub notes: Vec<String>,
    /// The machine's state before and after the section, and any interference meanwhile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Conditions>,
    /// The experiment's typed result, serialized, for readers who want every sample.
    pub data: serde_json::Value,
}

impl Section {
    /// An empty, successful section for experiment `id`.
    pub fn new(id: &str, title: &str, method: &str) -> Section {
        Section {
            id: id.to_string(),
            title: title.to_string(),
            method: method.to_string(),
            status: Status::Ok,
            elapsed_ms: 0.0,
            figures: Vec::new(),
            tables: Vec::new(),
            charts: Vec::new(),
            cross_checks: Vec::new(),
            published: Vec::new(),
            notes: Vec::new(),
            conditions: None,
            data: serde_json::Value::Null,
        }
    }

    /// Stores `data` as the section's typed result ([`Section::data`]).
    ///
    /// A value that does not serialize (a map with non-string keys, a failing `Serialize`)
    /// is a bug that must not pass for an experiment without data: it marks the section
    /// [`Status::Failed`] with the serializer's error, and keeps the figures already there.
    pub fn set_data<T: Serialize + ?Sized>(&mut self, data: &T) {
        match serde_json::to_value(data) {
            Ok(value) => self.data = value,
            Err(err) => {
                self.data = serde_json::Value::Null;
                self.status = Status::Failed {
                    error: format!("the {} experiment's data did not serialize: {err}", self.id),
                };
            }
        }
    }

    /// The figure with this key, if the experiment produced it.
    pub fn figure(&self, key: &str) -> Option<&Figure> {
        self.figures.iter().find(|f| f.key == key)
    }

    /// The section's notes, then any figure whose batches shifted level, then the machine's
    /// state while it ran (and its interference, if any): what every renderer lists under the
    /// section.
    pub fn all_notes(&self) -> Vec<String> {
        let mut notes = self.notes.clone();
        for f in &self.figures {
            if let Some(shift) = crate::stats::level_shift(&f.batches) {
                notes.push(format!(
                    "{} shifted level between its batches: first half {}, second half {} \
                     (Mann–Whitney z = {:.1}); the machine changed under it",
                    f.key,
                    format_value(shift.first, f.unit),
                    format_value(shift.second, f.unit),
                    shift.z
                ));
            }
        }
        if let Some(c) = &self.conditions {
            notes.push(format!("machine state meanwhile: {}", c.describe()));
            if let Some(why) = &c.interference {
                notes.push(format!(
                    "measured under interference: {why}; claims on these figures are not \
                     decided here"
                ));
            }
        }
        notes
    }

    /// The published figures beside ours, as a table every renderer draws after the
    /// section's own tables; `None` when there are none.
    pub fn published_table(&self) -> Option<Table> {
        if self.published.is_empty() {
            return None;
        }
        let rows = self
            .published
            .iter()
            .map(|p| {
                let ours = self.figure(&p.ours_key).map(|f| f.value);
                vec![
                    p.what.clone(),
                    format_value(p.value, p.unit),
                    ours.map_or_else(|| "–".to_string(), |v| format_value(v, p.unit)),
                    ours.filter(|_| p.value > 0.0)
                        .map_or_else(|| "–".to_string(), |v| format!("{:.2}×", v / p.value)),
                    format!("{}; {}", p.source, p.hardware),
                ]
            })
            .collect();
        Some(Table {
            title:
                "published figures beside ours (other machines and years: an anchor, not a test)"
                    .to_string(),
            columns: [
                "published figure",
                "theirs",
                "ours",
                "ours / theirs",
                "source; hardware",
            ]
            .map(String::from)
            .to_vec(),
            rows,
        })
    }
}

/// A published measurement of the quantity one of our figures measures: the anchor a reader
/// checks ours against (issue 25: "print published figures beside ours where they exist").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Published {
    /// The key of our figure it stands beside (in the same section).
    pub ours_key: String,
    /// What was measured, in the source's terms ("fork() + wait, 1 MiB parent").
    pub what: String,
    /// The published value, in `unit`.
    pub value: f64,
    /// The unit of `value` and of our figure.
    pub unit: Unit,
    /// Author, year, title and table or figure ("Kerrisk 2010, TLPI table 28-3").
    pub source: String,
    /// The machine it was measured on ("Intel x86-32 2.2 GHz, Linux 2.6.27").
    pub hardware: String,
}

impl Published {
    /// A published figure beside our figure `ours_key`.
    pub fn new(
        ours_key: &str,
        what: &str,
        value: f64,
        unit: Unit,
        source: &str,
        hardware: &str,
    ) -> Published {
        Published {
            ours_key: ours_key.to_string(),
            what: what.to_string(),
            value,
            unit,
            source: source.to_string(),
            hardware: hardware.to_string(),
        }
    }
}

/// Whether an experiment produced its figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "lowercase")]
pub enum Status {
    /// The experiment ran and produced its figures.
    Ok,
    /// The experiment failed; the rest of the report still stands.
    Failed {
        /// The error that made it fail.
        error: String,
    },
    /// The experiment did not run (interrupted, unsupported here, not selected).
    Skipped {
        /// Why it did not run.
        reason: String,
    },
}

/// One measured value with its unit and spread.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Figure {
    /// Stable lookup key, `<experiment>.<name>`, e.g. `switch.futex.thread.pinned`.
    pub key: String,
    /// Human label, e.g. "thread switch (futex, same CPU)".
    pub label: String,
    /// The central value (median unless the label says otherwise).
    pub value: f64,
    /// The unit of `value`.
    pub unit: Unit,
    /// Spread of the samples behind `value`, where there are several.
    pub spread: Option<Spread>,
    /// Where it ran, e.g. "same CPU (cpu 0)" or "unpinned": every latency says which.
    pub placement: Option<String>,
    /// The method's resolution, for a value that a smaller one cannot be told from zero by
    /// (a growth counted in whole pages and shared among N workers): a value below it is shown
    /// as "< resolution", never as a number the method cannot resolve, or a negative one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolution: Option<f64>,
    /// The figure of each independent round, where it was measured in several (each set up
    /// afresh: new threads, processes, pairs): its run-to-run spread.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rounds: Option<Rounds>,
    /// The measured batches' values, in order, where the figure is a median of batches: the
    /// verdicts test them for a level shift and bootstrap their ratios' confidence intervals.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub batches: Vec<f64>,
}

impl Figure {
    /// The value in its unit as every format shows it, or "< resolution" when the method
    /// cannot resolve it.
    pub fn shown(&self) -> String {
        match self.resolution {
            Some(r) if self.below_resolution() => format!("< {}", format_value(r, self.unit)),
            _ => format_value(self.value, self.unit),
        }
    }

    /// A figure with no spread, placement or resolution.
    pub fn new(key: &str, label: &str, value: f64, unit: Unit) -> Figure {
        Figure {
            key: key.to_string(),
            label: label.to_string(),
            value,
            unit,
            spread: None,
            placement: None,
            resolution: None,
            rounds: None,
            batches: Vec::new(),
        }
    }

    /// The figure with the values of the independent rounds behind it (`value` should be
    /// their median); fewer than two finite rounds give no run-to-run spread.
    pub fn with_rounds(mut self, values: &[f64]) -> Figure {
        self.rounds = Rounds::around(values, self.value);
        self
    }

    /// A figure whose method cannot resolve less than `resolution`: a value below it (or
    /// below zero) is kept as 0 and shown as "< resolution".
    pub fn with_resolution(mut self, resolution: f64) -> Figure {
        if self.value < resolution {
            self.value = self.value.max(0.0);
        }
        self.resolution = Some(resolution);
        self
    }

    /// True when the value lies below the method's resolution.
    pub fn below_resolution(&self) -> bool {
        self.resolution.is_some_and(|r| self.value < r)
    }

    /// The figure with the batch values its median was taken over, in measured order.
    pub fn with_batches(mut self, batches: &[f64]) -> Figure {
        self.batches = batches.to_vec();
        self
    }

    /// The figure with this spread.
    pub fn with_spread(mut self, spread: Spread) -> Figure {
        self.spread = Some(spread);
        self
    }

    /// The figure with this placement.
    pub fn placed(mut self, placement: &str) -> Figure {
        self.placement = Some(placement.to_string());
        self
    }
}

/// Independent rounds behind a figure, each set up afresh, and how far apart they lie.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rounds {
    /// Each round's figure (a median of its own), in the order the rounds ran.
    pub values: Vec<f64>,
    /// The smallest round figure.
    pub min: f64,
    /// The largest round figure.
    pub max: f64,
    /// The run-to-run spread: every round lies within ± this many percent of the figure.
    pub spread_pct: f64,
}

impl Rounds {
    /// The run-to-run spread: `±4.1%` (every round within it of the figure), in one word so
    /// that a narrow table never wraps it apart.
    pub fn shown_pct(&self) -> String {
        if self.spread_pct < 10.0 {
            format!("±{:.1}%", self.spread_pct)
        } else {
            format!("±{:.0}%", self.spread_pct)
        }
    }

    /// The rounds' spread around `center` (the figure's value), or `None` when fewer than two
    /// rounds are finite or `center` is not a positive number.
    pub fn around(values: &[f64], center: f64) -> Option<Rounds> {
        let finite: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
        if finite.len() < 2 || !(center.is_finite() && center > 0.0) {
            return None;
        }
        let min = finite.iter().copied().fold(f64::INFINITY, f64::min);
        let max = finite.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let farthest = (max - center).max(center - min).max(0.0);
        Some(Rounds {
            values: finite,
            min,
            max,
            spread_pct: 100.0 * farthest / center,
        })
    }
}

/// Spread of the samples behind a figure, in the figure's unit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Spread {
    /// Smallest sample.
    pub min: f64,
    /// 1st percentile.
    pub p1: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest sample.
    pub max: f64,
    /// Number of samples (batches or per-op timestamps) behind the figure.
    pub samples: u64,
    /// Samples flagged as outliers by the declared rule (kept in the data).
    pub outliers: u64,
}

/// A table of preformatted cells.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Table {
    /// Title shown above the table.
    pub title: String,
    /// Column headings.
    pub columns: Vec<String>,
    /// Rows of cells, each as long as `columns`.
    pub rows: Vec<Vec<String>>,
}

/// A chart, described as data; the HTML renderer draws it as inline SVG.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Chart {
    /// Unique within the section; the HTML element id is `<section>-<id>`.
    pub id: String,
    /// Title shown above the chart.
    pub title: String,
    /// Line or bar chart.
    pub kind: ChartKind,
    /// Label of the x axis: what is measured, without the unit.
    pub x_label: String,
    /// Label of the y axis: what is measured, without the unit.
    pub y_label: String,
    /// The unit of the x axis's numbers (absent in JSON when plain).
    #[serde(default, skip_serializing_if = "AxisUnit::is_plain")]
    pub x_unit: AxisUnit,
    /// The unit of the y axis's numbers (absent in JSON when plain).
    #[serde(default, skip_serializing_if = "AxisUnit::is_plain")]
    pub y_unit: AxisUnit,
    /// Whether the x axis is logarithmic.
    pub x_log: bool,
    /// Whether the y axis is logarithmic.
    pub y_log: bool,
    /// For bar charts: the category names, indexed by the points' x (0, 1, 2...).
    pub categories: Vec<String>,
    /// The chart's series, each drawn as one line or set of bars.
    pub series: Vec<Series>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
/// How a chart is drawn.
pub enum ChartKind {
    /// Points joined by lines.
    Line,
    /// Bars, one per category.
    Bar,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
/// One named series of a chart.
pub struct Series {
    /// Name shown in the legend.
    pub name: String,
    /// Points as (x, y), in the axes' units.
    pub points: Vec<(f64, f64)>,
}

/// An established tool's figure beside ours.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CrossCheck {
    /// e.g. "perf bench sched pipe".
    pub tool: String,
    /// The exact command that was run.
    pub command: String,
    /// Our matching figure's key.
    pub ours_key: String,
    /// Our figure, in `unit`, if we have it.
    pub ours: Option<f64>,
    /// The tool's figure, in `unit`, if it produced one.
    pub theirs: Option<f64>,
    /// The unit of both figures.
    pub unit: Unit,
    /// Why there is no figure ("perf not installed: apt install linux-perf"), or an explanation
    /// of a gap over 15 %.
    pub note: Option<String>,
}

/// A verdict on a classic claim, on this machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The figures support the claim on this machine.
    Confirmed,
    /// The figures contradict the claim on this machine.
    Refuted,
    /// Holds in one placement or size and not in another.
    Depends,
    /// The figures do not differ by more than the tolerance, or their spreads overlap: this
    /// machine cannot tell them apart (which is not the same as "depends").
    NoClearDifference,
    /// The experiment behind it did not run or failed.
    NotMeasured,
    /// The figures exist, but were taken under interference (another program busy, time
    /// stolen) or shifted level between batches: this run cannot decide the claim.
    NotDecided,
}

/// One row of the classic comparison table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeadlineRow {
    /// e.g. "context switching".
    pub aspect: String,
    /// The thread side's figure, formatted.
    pub thread: Option<String>,
    /// The process side's figure, formatted.
    pub process: Option<String>,
    /// The async task side's figure, formatted, where there is one.
    pub async_task: Option<String>,
    /// process / thread, where both are numbers.
    pub ratio: Option<f64>,
    /// The ratio's 95 % bootstrap interval, from the figures' rounds or batches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ratio_ci: Option<(f64, f64)>,
    /// The textbook claim, e.g. "switching between threads is faster".
    pub claim: String,
    /// The verdict on the claim.
    pub verdict: Verdict,
    /// The figure that decides the verdict, in words.
    pub deciding: String,
    /// The independent rounds behind the thread side's figure, where it has several.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread_rounds: Option<Rounds>,
    /// The same for the process side.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process_rounds: Option<Rounds>,
    /// The same for the async side.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub async_rounds: Option<Rounds>,
}

/// A classic claim with its verdict and evidence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Claim {
    /// Stable id of the claim, e.g. `communication`.
    pub id: String,
    /// The claim in words, e.g. "threads communicate faster than processes".
    pub statement: String,
    /// The verdict on this machine.
    pub verdict: Verdict,
    /// The figures behind the verdict, in words.
    pub evidence: String,
    /// Keys of the figures the verdict was computed from.
    pub figure_keys: Vec<String>,
}

#[cfg(test)]
mod resolution_tests {
    use super::*;

    #[test]
    fn a_value_below_the_resolution_is_never_shown_as_a_number() {
        let negative = Figure::new("k", "l", -24.0 * 1024.0, Unit::Bytes).with_resolution(410.0);
        assert_eq!(negative.value, 0.0);
        assert!(negative.below_resolution());
        assert_eq!(negative.shown(), "< 410 B");
        let fine = Figure::new("k", "l", 70_000.0, Unit::Bytes).with_resolution(410.0);
        assert!(!fine.below_resolution());
        assert_eq!(fine.shown(), "68.4 KiB");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_that_does_not_serialize_fails_the_section_visibly() {
        let mut s = Section::new("spawn", "Spawn", "");
        s.set_data(&vec![1, 2]);
        assert_eq!(s.data, serde_json::json!([1, 2]));
        assert_eq!(s.status, Status::Ok);
        // JSON object keys must be strings: a map keyed by pairs cannot serialize.
        let by_pair: std::collections::BTreeMap<(u8, u8), u8> = [((1, 2), 3)].into();
        s.set_data(&by_pair);
        assert_eq!(s.data, serde_json::Value::Null);
        assert!(
            matches!(&s.status, Status::Failed { error } if error.contains("spawn experiment's data")),
            "{:?}",
            s.status
        );
    }
}

//! The terminal form: the headline table, the claims, then one block per section.
//!
//! Built with comfy-table. `color` switches ANSI styling on (verdicts green, red, yellow); off,
//! the output is plain text for pipes and snapshot tests.

use comfy_table::presets::{UTF8_FULL, UTF8_FULL_CONDENSED};
use comfy_table::{Cell, CellAlignment, Color, ContentArrangement, Table};

use super::{cell, cross_check_ratio, figure_spread, format_ratio, verdict_label};
use crate::report::{Report, Section, Status, Verdict};
use crate::units::format_value;

/// Width the tables wrap to unless told otherwise.
pub const DEFAULT_WIDTH: u16 = 120;

/// How to draw the terminal form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableOptions {
    /// ANSI colors and bold headings.
    pub color: bool,
    /// Width the tables wrap to, in columns (the terminal's width, for example).
    pub width: u16,
    /// Everything: the claims' evidence and every section. Off, the answer alone (the
    /// machine, the comparison, the claims with their verdicts), about a screen.
    pub verbose: bool,
}

/// The terminal form at [`DEFAULT_WIDTH`] columns, with or without color.
pub fn render(report: &Report, color: bool) -> String {
    render_with(
        report,
        TableOptions {
            color,
            width: DEFAULT_WIDTH,
            verbose: true,
        },
    )
}

/// The report's sections alone, under the machine line (`proctor bench`).
pub fn render_sections(report: &Report, options: TableOptions) -> String {
    let mut out = machine_lines(report, options);
    for section in &report.sections {
        out.push('\n');
        out.push_str(&render_section(section, options));
    }
    out
}

/// The heading: where the figures were taken, with which profile and command.
fn machine_lines(report: &Report, options: TableOptions) -> String {
    let mut out = String::new();
    let m = &report.machine;
    out.push_str(&heading(
        &format!(
            "Processes vs threads on {}, {} logical CPUs, {}",
            m.cpu_model, m.logical_cpus, m.kernel
        ),
        options.color,
        options.width,
    ));
    let run = format!(
        "proctor {} · profile {} · {}",
        report.proctor_version,
        profile_name(report),
        report.command_line
    );
    out.push_str(&wrap(&run, options.width, 2));
    out.push('\n');
    if !m.topology.cpus.is_empty() {
        out.push_str(&wrap(
            &format!("topology: {}", m.topology.describe()),
            options.width,
            2,
        ));
        out.push('\n');
    }
    for warning in &m.warnings {
        out.push_str(&wrap(&format!("warning: {warning}"), options.width, 9));
        out.push('\n');
    }
    out
}

/// The terminal form with explicit options.
pub fn render_with(report: &Report, options: TableOptions) -> String {
    let mut out = machine_lines(report, options);
    let heading = |text: &str| heading(text, options.color, options.width);

    out.push('\n');
    out.push_str(&heading("Comparison"));
    // The claim of each row is spelled out under "Claims"; the short form leaves it there.
    let header: &[&str] = if options.verbose {
        &[
            "aspect", "thread", "process", "async", "ratio", "claim", "verdict",
        ]
    } else {
        &["aspect", "thread", "process", "async", "ratio", "verdict"]
    };
    let mut t = new_table(options, header);
    right_align(&mut t, &[1, 2, 3, 4]);
    for row in &report.headline {
        let mut cells = vec![
            Cell::new(&row.aspect),
            Cell::new(cell(&row.thread)),
            Cell::new(cell(&row.process)),
            Cell::new(cell(&row.async_task)),
            Cell::new(format_ratio(row.ratio)),
        ];
        if options.verbose {
            cells.push(Cell::new(&row.claim));
        }
        cells.push(verdict_cell(row.verdict, options.color));
        t.add_row(cells);
    }
    out.push_str(&format!("{t}\n"));
    // One legend line (the answer must fit a screen): the rounds' count as the long note in
    // the HTML and Markdown says it.
    let legend = match super::rounds_count(report) {
        Some(n) => format!(
            "ratio = process / thread · ± = spread of {n} independent runs around the median"
        ),
        None => "ratio = process / thread".to_string(),
    };
    out.push_str(&wrap(&legend, options.width, 0));
    out.push('\n');

    if !report.claims.is_empty() {
        out.push('\n');
        out.push_str(&heading("Claims"));
        if options.verbose {
            let mut t = wrapping_table(options, &["verdict", "claim", "evidence"]);
            for claim in &report.claims {
                t.add_row(vec![
                    verdict_cell(claim.verdict, options.color),
                    Cell::new(&claim.statement),
                    Cell::new(&claim.evidence),
                ]);
            }
            out.push_str(&format!("{t}\n"));
        } else {
            // A list, not a boxed table: a claim a line where it fits, so the answer stays
            // on one screen.
            let mut t = Table::new();
            t.load_style(comfy_table::presets::NOTHING)
                .set_content_arrangement(ContentArrangement::Dynamic)
                .set_width(options.width);
            if options.color {
                t.enforce_styling();
            } else {
                t.force_no_tty();
            }
            for claim in &report.claims {
                t.add_row(vec![
                    verdict_cell(claim.verdict, options.color),
                    Cell::new(&claim.statement),
                ]);
            }
            for line in t.to_string().lines() {
                out.push_str(line.trim_end());
                out.push('\n');
            }
            out.push_str(&wrap(
                "the evidence for each verdict, and every section: --verbose, or the report files",
                options.width,
                0,
            ));
            out.push('\n');
        }
    }

    if options.verbose {
        for section in &report.sections {
            out.push('\n');
            out.push_str(&render_section(section, options));
        }
    }
    out
}

fn render_section(section: &Section, options: TableOptions) -> String {
    let mut out = heading(
        &format!(
            "{} [{}] ({})",
            section.title,
            section.id,
            format_value(section.elapsed_ms * 1e6, crate::report::Unit::Ns)
        ),
        options.color,
        options.width,
    );
    match &section.status {
        Status::Ok => {}
        Status::Failed { error } => {
            let text = wrap(&format!("FAILED: {error}"), options.width, 2);
            let rest = text.strip_prefix("FAILED").unwrap_or(&text);
            out.push_str(&format!(
                "{}{rest}\n",
                paint("FAILED", Color::Red, options.color)
            ));
        }
        Status::Skipped { reason } => {
            let text = wrap(&format!("skipped: {reason}"), options.width, 2);
            let rest = text.strip_prefix("skipped").unwrap_or(&text);
            out.push_str(&format!(
                "{}{rest}\n",
                paint("skipped", Color::Yellow, options.color)
            ));
        }
    }
    let line = |out: &mut String, text: String| {
        out.push_str(&wrap(&text, options.width, 2));
        out.push('\n');
    };
    line(&mut out, format!("method: {}", section.method));

    figures(&mut out, section, options);
    tables(&mut out, section, options);
    for chart in &section.charts {
        line(
            &mut out,
            format!("chart: {} (in the HTML report)", chart.title),
        );
    }

    cross_checks(&mut out, section, options);

    for note in &section.all_notes() {
        line(&mut out, format!("note: {note}"));
    }
    out
}

/// The section's figures: value, spread, placement and key.
fn figures(out: &mut String, section: &Section, options: TableOptions) {
    if !section.figures.is_empty() {
        let mut t = new_table(
            options,
            &["figure", "value", "p1 – p99", "placement", "key"],
        );
        right_align(&mut t, &[1, 2]);
        for f in &section.figures {
            t.add_row(vec![
                f.label.clone(),
                f.shown(),
                figure_spread(f),
                f.placement.clone().unwrap_or_default(),
                f.key.clone(),
            ]);
        }
        out.push_str(&format!("{t}\n"));
    }
}

/// The section's tables, every column but the first right-aligned.
fn tables(out: &mut String, section: &Section, options: TableOptions) {
    let published = section.published_table();
    for table in section.tables.iter().chain(published.as_ref()) {
        out.push_str(&wrap(&table.title, options.width, 0));
        out.push('\n');
        let columns: Vec<&str> = table.columns.iter().map(String::as_str).collect();
        let mut t = new_table(options, &columns);
        right_align(&mut t, &(1..columns.len()).collect::<Vec<_>>());
        for row in &table.rows {
            t.add_row(row);
        }
        out.push_str(&format!("{t}\n"));
    }
}

/// Our figures beside the established tools'.
fn cross_checks(out: &mut String, section: &Section, options: TableOptions) {
    if !section.cross_checks.is_empty() {
        out.push_str("cross-checks\n");
        let mut t = new_table(
            options,
            &["tool", "command", "ours", "theirs", "ours / theirs", "note"],
        );
        right_align(&mut t, &[2, 3, 4]);
        for c in &section.cross_checks {
            let value = |v: Option<f64>| {
                v.map(|v| format_value(v, c.unit))
                    .unwrap_or_else(|| "–".to_string())
            };
            t.add_row(vec![
                c.tool.clone(),
                c.command.clone(),
                value(c.ours),
                value(c.theirs),
                format_ratio(cross_check_ratio(c.ours, c.theirs)),
                c.note.clone().unwrap_or_default(),
            ]);
        }
        out.push_str(&format!("{t}\n"));
    }
}

fn profile_name(report: &Report) -> &'static str {
    match report.profile {
        crate::report::Profile::Tiny => "tiny",
        crate::report::Profile::Quick => "quick",
        crate::report::Profile::Full => "full",
    }
}

/// A [`crate::report::Table`] drawn plain (no color) `width` columns wide, its cells as they
/// are, under its title and followed by a blank line: the form `proctor compare` prints.
pub fn titled_table(table: &crate::report::Table, width: u16) -> String {
    let options = TableOptions {
        color: false,
        width,
        verbose: false,
    };
    let columns: Vec<&str> = table.columns.iter().map(String::as_str).collect();
    let mut t = new_table(options, &columns);
    for row in &table.rows {
        t.add_row(row);
    }
    format!("{}\n{t}\n\n", table.title)
}

/// A table whose rows may wrap over several lines: separators between rows keep them apart.
fn wrapping_table(options: TableOptions, header: &[&str]) -> Table {
    let mut t = new_table(options, header);
    t.load_style(UTF8_FULL);
    t
}

fn new_table(options: TableOptions, header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_style(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_width(options.width)
        .set_header(header.to_vec());
    if options.color {
        t.enforce_styling();
    } else {
        t.force_no_tty();
    }
    t
}

fn right_align(t: &mut Table, columns: &[usize]) {
    for &i in columns {
        if let Some(c) = t.column_mut(i) {
            c.set_cell_alignment(CellAlignment::Right);
        }
    }
}

fn verdict_color(verdict: Verdict) -> Color {
    match verdict {
        Verdict::Confirmed => Color::Green,
        Verdict::Refuted => Color::Red,
        Verdict::Depends => Color::Yellow,
        Verdict::NoClearDifference => Color::Blue,
        Verdict::NotMeasured | Verdict::NotDecided => Color::DarkGrey,
    }
}

fn verdict_cell(verdict: Verdict, color: bool) -> Cell {
    let c = Cell::new(verdict_label(verdict));
    if color {
        c.fg(verdict_color(verdict))
    } else {
        c
    }
}

/// `text` in an ANSI color when `color` is on.
fn paint(text: &str, color: Color, on: bool) -> String {
    if !on {
        return text.to_string();
    }
    let code = match color {
        Color::Green => 32,
        Color::Red => 31,
        Color::Yellow => 33,
        _ => 90,
    };
    format!("\x1b[1;{code}m{text}\x1b[0m")
}

/// A heading line, underlined; bold when `color` is on.
/// A heading: `text` wrapped to `width` columns, bold when colored, over a rule as long as
/// its longest line.
fn heading(text: &str, color: bool, width: u16) -> String {
    let text = wrap(text, width, 0);
    let longest = text
        .lines()
        .map(textwrap::core::display_width)
        .max()
        .unwrap_or(0);
    let line = "─".repeat(longest);
    if color {
        format!("\x1b[1m{text}\x1b[0m\n{line}\n")
    } else {
        format!("{text}\n{line}\n")
    }
}

/// `text` wrapped to `width` columns (at least 20) at spaces, and within a word only where a
/// word alone is wider than a line (a long path); lines after the first indented by `indent`
/// spaces. No trailing newline.
pub fn wrap(text: &str, width: u16, indent: usize) -> String {
    let pad = " ".repeat(indent);
    let options = textwrap::Options::new(usize::from(width.max(20))).subsequent_indent(&pad);
    textwrap::wrap(text, options).join("\n")
}

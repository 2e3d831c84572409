//! The Markdown form (GitHub-flavoured): headline table first, then the claims, then one
//! section per experiment with its figures, tables and cross-checks. Charts are only named;
//! the HTML form draws them.

use super::{cell, cross_check_ratio, figure_spread, format_ratio, format_ratio_ci, verdict_label};
use crate::report::{Report, Section, Status, Unit};
use crate::units::format_value;

/// The report as Markdown.
pub fn render(report: &Report) -> String {
    let mut out = String::new();
    let m = &report.machine;
    out.push_str("# Processes vs threads, measured\n\n");
    out.push_str(&format!(
        "{} · {} logical CPUs · kernel {} · proctor {} · `{}`\n\nEach section states its \
         method; `METHODS.md` in the proctor repository gathers them.\n\n",
        text(&m.cpu_model),
        m.logical_cpus,
        text(&m.kernel),
        text(&report.proctor_version),
        report.command_line.replace('`', "'"),
    ));
    if !m.topology.cpus.is_empty() {
        out.push_str(&format!("Topology: {}.\n\n", text(&m.topology.describe())));
    }
    for warning in &m.warnings {
        out.push_str(&format!("> **Warning:** {}\n", text(warning)));
    }
    if !m.warnings.is_empty() {
        out.push('\n');
    }

    out.push_str("## Comparison\n\n");
    table(
        &mut out,
        &[
            "aspect", "thread", "process", "async", "ratio", "claim", "verdict",
        ],
        &[false, true, true, true, true, false, false],
        report.headline.iter().map(|r| {
            vec![
                r.aspect.clone(),
                cell(&r.thread).to_string(),
                cell(&r.process).to_string(),
                cell(&r.async_task).to_string(),
                format_ratio_ci(r.ratio, r.ratio_ci),
                r.claim.clone(),
                format!("**{}**", verdict_label(r.verdict)),
            ]
        }),
    );
    out.push_str("Ratio = process / thread.\n\n");
    if let Some(note) = super::rounds_note(report) {
        out.push_str(&format!("{note}.\n\n"));
    }

    if !report.claims.is_empty() {
        out.push_str("## Claims\n\n");
        for c in &report.claims {
            let keys: Vec<String> = c.figure_keys.iter().map(|k| format!("`{k}`")).collect();
            out.push_str(&format!(
                "- **{}**: {}. {} (figures: {})\n",
                verdict_label(c.verdict),
                text(&c.statement),
                text(&c.evidence),
                keys.join(", ")
            ));
        }
        out.push('\n');
    }

    for section in &report.sections {
        render_section(&mut out, section);
    }
    out
}

fn render_section(out: &mut String, s: &Section) {
    out.push_str(&format!("## {} (`{}`)\n\n", text(&s.title), s.id));
    match &s.status {
        Status::Ok => {}
        Status::Failed { error } => out.push_str(&format!("**Failed:** {}\n\n", text(error))),
        Status::Skipped { reason } => out.push_str(&format!("**Skipped:** {}\n\n", text(reason))),
    }
    out.push_str(&format!(
        "{} Took {}.\n\n",
        text(&s.method),
        format_value(s.elapsed_ms * 1e6, Unit::Ns)
    ));

    if !s.figures.is_empty() {
        table(
            out,
            &["figure", "value", "p1 – p99", "placement", "key"],
            &[false, true, true, false, false],
            s.figures.iter().map(|f| {
                vec![
                    f.label.clone(),
                    f.shown(),
                    figure_spread(f),
                    f.placement.clone().unwrap_or_default(),
                    format!("`{}`", f.key),
                ]
            }),
        );
    }

    for t in s.tables.iter().chain(s.published_table().as_ref()) {
        out.push_str(&format!("**{}**\n\n", text(&t.title)));
        let columns: Vec<&str> = t.columns.iter().map(String::as_str).collect();
        let right: Vec<bool> = (0..columns.len()).map(|i| i > 0).collect();
        table(out, &columns, &right, t.rows.iter().cloned());
    }

    for chart in &s.charts {
        out.push_str(&format!(
            "*Chart: {} (drawn in the HTML report).*\n\n",
            text(&chart.title)
        ));
    }

    if !s.cross_checks.is_empty() {
        out.push_str("**Cross-checks**\n\n");
        table(
            out,
            &["tool", "command", "ours", "theirs", "ours / theirs", "note"],
            &[false, false, true, true, true, false],
            s.cross_checks.iter().map(|c| {
                let value =
                    |v: Option<f64>| v.map_or_else(|| "–".to_string(), |v| format_value(v, c.unit));
                vec![
                    c.tool.clone(),
                    format!("`{}`", c.command.replace('`', "'")),
                    value(c.ours),
                    value(c.theirs),
                    format_ratio(cross_check_ratio(c.ours, c.theirs)),
                    c.note.clone().unwrap_or_default(),
                ]
            }),
        );
    }

    for note in &s.all_notes() {
        out.push_str(&format!("- {}\n", text(note)));
    }
    if !s.notes.is_empty() {
        out.push('\n');
    }
}

/// Escapes what Markdown would read as markup in running text.
fn text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' | '*' | '_' | '`' | '<' | '>' | '[' | ']' | '|' => {
                out.push('\\');
                out.push(c);
            }
            '\n' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// Escapes a table cell: pipes and newlines would break the row.
fn table_cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// A GitHub table; `right[i]` right-aligns column `i`.
fn table(
    out: &mut String,
    columns: &[&str],
    right: &[bool],
    rows: impl Iterator<Item = Vec<String>>,
) {
    out.push_str(&format!("| {} |\n", columns.join(" | ")));
    let rule: Vec<&str> = (0..columns.len())
        .map(|i| {
            if right.get(i) == Some(&true) {
                "---:"
            } else {
                "---"
            }
        })
        .collect();
    out.push_str(&format!("|{}|\n", rule.join("|")));
    for row in rows {
        let cells: Vec<String> = row.iter().map(|c| table_cell(c)).collect();
        out.push_str(&format!("| {} |\n", cells.join(" | ")));
    }
    out.push('\n');
}

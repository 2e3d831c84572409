//! The HTML form: one self-contained page.
//!
//! Inline CSS, inline SVG charts (drawn by [`super::svg`]), no scripts, no fonts, images or
//! links to other hosts: the page renders the same offline. All text from the report is escaped.
//! Each experiment is a `<section id="<experiment id>">`; each chart is wrapped in a
//! `<figure class="chart" id="chart-<experiment id>-<chart id>">`.

use std::fmt::Write as _;

use super::{cross_check_ratio, figure_spread, format_ratio, format_ratio_ci, svg, verdict_label};
use crate::report::{Chart, Report, Section, Status, Table, Unit, Verdict};
use crate::units::format_value;

pub(crate) const STYLE: &str = r#"
:root { --fg: #1d2430; --muted: #5b6576; --line: #dde2ea; --alt: #f5f7fa;
  --ok: #1a7f37; --bad: #c62828; --mid: #9a6700; --na: #6e7781; }
* { box-sizing: border-box; }
body { margin: 0 auto; max-width: 1120px; padding: 24px 28px 48px; color: var(--fg);
  background: #fff; font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
h1 { font-size: 1.75em; margin: 0.2em 0 0.1em; }
h2 { font-size: 1.3em; margin: 1.8em 0 0.5em; padding-bottom: 0.25em; border-bottom: 1px solid var(--line); }
h3 { font-size: 1.02em; margin: 1.3em 0 0.4em; }
p { margin: 0.4em 0; }
.muted, .method { color: var(--muted); }
code { font: 0.88em ui-monospace, SFMono-Regular, Menlo, Consolas, monospace;
  background: var(--alt); padding: 1px 4px; border-radius: 3px; }
nav { margin: 12px 0 4px; font-size: 0.92em; display: flex; flex-wrap: wrap; gap: 4px 16px; }
nav a { color: #0b5cad; text-decoration: none; white-space: nowrap; }
nav a:hover { text-decoration: underline; }
table { border-collapse: collapse; width: 100%; margin: 0.4em 0 1.1em; font-size: 0.92em; }
th, td { padding: 6px 10px; border-bottom: 1px solid var(--line); text-align: left; vertical-align: top; }
th { background: var(--alt); font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
th.num { white-space: normal; }
td code { overflow-wrap: anywhere; }
td.wrap { white-space: normal; }
td.ratio { white-space: nowrap; font-weight: 600; }
tbody tr:hover { background: #fafbfd; }
caption { text-align: left; font-weight: 600; padding: 4px 0; }
.badge { display: inline-block; padding: 1px 9px; border-radius: 10px; font-size: 0.8em;
  font-weight: 600; white-space: nowrap; color: #fff; }
.badge.confirmed { background: var(--ok); } .badge.refuted, .badge.failed { background: var(--bad); }
.badge.depends { background: var(--mid); } .badge.no-clear-difference { background: #5b6b86; } .badge.not-measured, .badge.not-decided-here, .badge.skipped { background: var(--na); }
dl.machine { display: grid; grid-template-columns: max-content 1fr; gap: 3px 18px; margin: 0.5em 0; }
dl.machine dt { color: var(--muted); } dl.machine dd { margin: 0; }
.warnings { background: #fff8e5; border: 1px solid #f0d48a; border-radius: 6px; padding: 8px 14px 8px 30px; }
ul.claims { list-style: none; padding: 0; }
ul.claims li { padding: 8px 0; border-bottom: 1px solid var(--line); }
ul.claims .evidence { color: var(--muted); font-size: 0.92em; margin-left: 0.2em; }
section.failed, section.skipped { border-left: 4px solid var(--bad); padding-left: 16px; }
section.skipped { border-left-color: var(--na); }
.error { color: var(--bad); font-weight: 600; }
figure.chart { max-width: 760px; margin: 0.8em 0; padding: 10px; border: 1px solid var(--line); border-radius: 6px; }
figure.chart svg { display: block; width: 100%; max-width: 720px; height: auto; margin: 0 auto; }
footer { margin-top: 3em; color: var(--muted); font-size: 0.85em; }
"#;

/// The report as one self-contained HTML page.
pub fn render(report: &Report) -> String {
    let m = &report.machine;
    let mut out = String::new();
    out.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    out.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    let _ = writeln!(
        out,
        "<title>proctor: processes vs threads on {}</title>",
        esc(&m.cpu_model)
    );
    let _ = writeln!(out, "<style>{STYLE}</style>\n</head>\n<body>");

    let _ = writeln!(
        out,
        "<header>\n<h1>Processes vs threads, measured</h1>\n<p class=\"muted\">{} · {} logical CPUs · \
         kernel {} · proctor {} · profile {}</p>\n<p><code>{}</code></p>\n<p class=\"muted\">Each \
         section states its method; <code>METHODS.md</code> in the proctor repository gathers \
         them.</p>\n</header>",
        esc(&m.cpu_model),
        m.logical_cpus,
        esc(&m.kernel),
        esc(&report.proctor_version),
        esc(&format!("{:?}", report.profile).to_lowercase()),
        esc(&report.command_line),
    );

    out.push_str("<nav><a href=\"#comparison\">Comparison</a><a href=\"#machine\">Machine</a>");
    out.push_str("<a href=\"#claims\">Claims</a>");
    for s in &report.sections {
        let _ = write!(out, "<a href=\"#{}\">{}</a>", esc(&s.id), esc(&s.title));
    }
    out.push_str("</nav>\n");

    headline(&mut out, report);
    machine(&mut out, report);
    claims(&mut out, report);
    for s in &report.sections {
        section(&mut out, s);
    }

    let _ = writeln!(
        out,
        "<footer>Written by proctor {}. Schema version {}. This page loads nothing from the network.</footer>\n</body>\n</html>",
        esc(&report.proctor_version),
        report.schema_version
    );
    out
}

fn headline(out: &mut String, report: &Report) {
    out.push_str(
        "<div id=\"comparison\">\n<h2>The comparison table</h2>\n<table class=\"headline\">\n",
    );
    out.push_str(
        "<thead><tr><th>aspect</th><th class=\"num\">thread</th><th class=\"num\">process</th>\
         <th class=\"num\">async</th><th class=\"num\">process / thread</th><th>classic claim</th>\
         <th>verdict</th></tr></thead>\n<tbody>\n",
    );
    for r in &report.headline {
        let _ = writeln!(
            out,
            "<tr><td>{}</td>{}{}{}<td class=\"num ratio\">{}</td><td>{}</td><td>{}</td></tr>",
            esc(&r.aspect),
            value_cell(&r.thread),
            value_cell(&r.process),
            value_cell(&r.async_task),
            esc(&format_ratio_ci(r.ratio, r.ratio_ci)),
            esc(&r.claim),
            badge(r.verdict, &format!("decided by {}", r.deciding)),
        );
    }
    out.push_str("</tbody>\n</table>\n");
    if let Some(note) = super::rounds_note(report) {
        let _ = writeln!(out, "<p class=\"note\">{}.</p>", esc(&note));
    }
    out.push_str("</div>\n");
}

fn machine(out: &mut String, report: &Report) {
    let m = &report.machine;
    let none = || "unknown".to_string();
    let rows = [
        ("CPU", esc(&m.cpu_model)),
        (
            "cores",
            format!(
                "{} logical{}",
                m.logical_cpus,
                m.physical_cores
                    .map(|p| format!(", {p} physical"))
                    .unwrap_or_default()
            ),
        ),
        (
            "memory",
            esc(&format_value(m.memory_bytes as f64, Unit::Bytes)),
        ),
        ("kernel", esc(&m.kernel)),
        ("topology", esc(&m.topology.describe())),
        ("governor", m.governor.as_deref().map_or_else(none, esc)),
        (
            "frequency",
            m.frequency_mhz.map_or_else(none, |f| format!("{f:.0} MHz")),
        ),
        (
            "virtualization",
            m.virtualization.as_deref().map_or_else(none, esc),
        ),
        (
            "mitigations",
            if m.mitigations.is_empty() {
                "none reported".to_string()
            } else {
                m.mitigations
                    .iter()
                    .map(|x| esc(x))
                    .collect::<Vec<_>>()
                    .join("<br>")
            },
        ),
    ];
    out.push_str("<div id=\"machine\">\n<h2>Machine</h2>\n<dl class=\"machine\">\n");
    for (k, v) in rows {
        let _ = writeln!(out, "<dt>{k}</dt><dd>{v}</dd>");
    }
    out.push_str("</dl>\n");
    if !m.warnings.is_empty() {
        out.push_str("<ul class=\"warnings\">\n");
        for w in &m.warnings {
            let _ = writeln!(out, "<li>{}</li>", esc(w));
        }
        out.push_str("</ul>\n");
    }
    out.push_str("</div>\n");
}

fn claims(out: &mut String, report: &Report) {
    out.push_str("<div id=\"claims\">\n<h2>Claims</h2>\n<ul class=\"claims\">\n");
    for c in &report.claims {
        let keys: Vec<String> = c
            .figure_keys
            .iter()
            .map(|k| format!("<code>{}</code>", esc(k)))
            .collect();
        let _ = writeln!(
            out,
            "<li id=\"claim-{}\">{} <strong>{}</strong><div class=\"evidence\">{}<br>figures: {}</div></li>",
            esc(&c.id),
            badge(c.verdict, ""),
            esc(&c.statement),
            esc(&c.evidence),
            keys.join(", "),
        );
    }
    out.push_str("</ul>\n</div>\n");
}

fn section(out: &mut String, s: &Section) {
    let (class, status) = match &s.status {
        Status::Ok => ("ok", String::new()),
        Status::Failed { error } => (
            "failed",
            format!(
                "<p class=\"error\"><span class=\"badge failed\">failed</span> {}</p>\n",
                esc(error)
            ),
        ),
        Status::Skipped { reason } => (
            "skipped",
            format!(
                "<p><span class=\"badge skipped\">skipped</span> {}</p>\n",
                esc(reason)
            ),
        ),
    };
    let _ = writeln!(
        out,
        "<section id=\"{}\" class=\"experiment {class}\">\n<h2>{} <code>{}</code></h2>\n{status}\
         <p class=\"method\">{} Took {}.</p>",
        esc(&s.id),
        esc(&s.title),
        esc(&s.id),
        esc(&s.method),
        esc(&format_value(s.elapsed_ms * 1e6, Unit::Ns)),
    );

    figures_table(out, s);
    if !s.charts.is_empty() {
        for c in &s.charts {
            chart(out, s, c);
        }
    }
    for t in s.tables.iter().chain(s.published_table().as_ref()) {
        data_table(out, t);
    }
    cross_checks(out, s);
    notes(out, s);
    out.push_str("</section>\n");
}

/// The section's figures: value, spread, placement and key.
fn figures_table(out: &mut String, s: &Section) {
    if !s.figures.is_empty() {
        out.push_str(
            "<table class=\"figures\">\n<thead><tr><th>figure</th><th class=\"num\">value</th>\
             <th class=\"num\">p1 – p99</th><th>placement</th><th>key</th></tr></thead>\n<tbody>\n",
        );
        for f in &s.figures {
            let _ = writeln!(
                out,
                "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td><td><code>{}</code></td></tr>",
                esc(&f.label),
                esc(&f.shown()),
                esc(&figure_spread(f)),
                esc(f.placement.as_deref().unwrap_or("")),
                esc(&f.key),
            );
        }
        out.push_str("</tbody>\n</table>\n");
    }
}

/// One of the section's tables, its columns of figures right-aligned.
fn data_table(out: &mut String, t: &Table) {
    let _ = writeln!(
        out,
        "<table class=\"data\">\n<caption>{}</caption>\n<thead><tr>",
        esc(&t.title)
    );
    // A column of figures is right-aligned and stays on one line; a column of words (the
    // fault matrix's "what happened") wraps, so that the table fits the page.
    let numeric: Vec<bool> = (0..t.columns.len())
        .map(|i| i > 0 && t.rows.iter().filter_map(|r| r.get(i)).all(|c| is_figure(c)))
        .collect();
    let class = |i: usize| {
        if numeric.get(i).copied().unwrap_or(false) {
            " class=\"num\""
        } else {
            ""
        }
    };
    for (i, c) in t.columns.iter().enumerate() {
        let _ = write!(out, "<th{}>{}</th>", class(i), esc(c));
    }
    out.push_str("</tr></thead>\n<tbody>\n");
    for row in &t.rows {
        out.push_str("<tr>");
        for (i, c) in row.iter().enumerate() {
            let _ = write!(out, "<td{}>{}</td>", class(i), esc(c));
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody>\n</table>\n");
}

/// Our figures beside the established tools'.
fn cross_checks(out: &mut String, s: &Section) {
    if !s.cross_checks.is_empty() {
        out.push_str(
            "<h3>Cross-checks</h3>\n<table class=\"cross-checks\">\n<thead><tr><th>tool</th><th>command</th>\
             <th class=\"num\">ours</th><th class=\"num\">theirs</th><th class=\"num\">ours / theirs</th>\
             <th>note</th></tr></thead>\n<tbody>\n",
        );
        for c in &s.cross_checks {
            let value =
                |v: Option<f64>| v.map_or_else(|| "–".to_string(), |v| format_value(v, c.unit));
            let _ = writeln!(
                out,
                "<tr><td>{}</td><td><code>{}</code></td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
                 <td class=\"num ratio\">{}</td><td>{}</td></tr>",
                esc(&c.tool),
                esc(&c.command),
                esc(&value(c.ours)),
                esc(&value(c.theirs)),
                esc(&format_ratio(cross_check_ratio(c.ours, c.theirs))),
                esc(c.note.as_deref().unwrap_or("")),
            );
        }
        out.push_str("</tbody>\n</table>\n");
    }
}

/// The section's notes, as a list.
fn notes(out: &mut String, s: &Section) {
    let all = s.all_notes();
    if !all.is_empty() {
        out.push_str("<ul class=\"notes\">\n");
        for n in &all {
            let _ = writeln!(out, "<li>{}</li>", esc(n));
        }
        out.push_str("</ul>\n");
    }
}

/// A [`crate::report::Table`] under an `<h2>` of its title, every cell allowed to wrap: the
/// form `proctor compare` writes (a section's tables are captioned instead).
pub fn titled_table(out: &mut String, table: &Table) {
    let _ = write!(out, "<h2>{}</h2><table><thead><tr>", esc(&table.title));
    for c in &table.columns {
        let _ = write!(out, "<th>{}</th>", esc(c));
    }
    out.push_str("</tr></thead><tbody>");
    for row in &table.rows {
        out.push_str("<tr>");
        for cell in row {
            let _ = write!(out, "<td class=\"wrap\">{}</td>", esc(cell));
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table>");
}

/// One chart as inline SVG inside `<figure class="chart" id="chart-<section>-<chart>">`.
fn chart(out: &mut String, s: &Section, c: &Chart) {
    // Inline SVG in HTML needs no namespace declaration; dropping it keeps the page free of
    // any address, as promised above.
    let drawn = svg::render(c).replace(" xmlns=\"http://www.w3.org/2000/svg\"", "");
    let _ = writeln!(
        out,
        "<figure class=\"chart\" id=\"chart-{}-{}\" aria-label=\"{}\">\n{}</figure>",
        esc(&s.id),
        esc(&c.id),
        esc(&c.title),
        drawn.trim_start_matches("<?xml version=\"1.0\" encoding=\"UTF-8\"?>"),
    );
}

/// A headline value cell: a figure stays on one line, a sentence ("7 of 7 faults contained")
/// may wrap.
fn value_cell(value: &Option<String>) -> String {
    let text = value.as_deref().unwrap_or("–");
    let class = if text.chars().count() > 12 {
        "num wrap"
    } else {
        "num"
    };
    format!("<td class=\"{class}\">{}</td>", esc(text))
}

/// Whether a table cell holds a figure (`4.07 µs`, `860/28750`, `2.00×`, `–`) rather than words.
fn is_figure(cell: &str) -> bool {
    let cell = cell.trim();
    let starts = cell
        .chars()
        .next()
        .is_none_or(|c| c.is_ascii_digit() || matches!(c, '-' | '+' | '–' | '.' | '<' | '>' | '~'));
    starts && cell.split_whitespace().count() <= 3
}

fn badge(verdict: Verdict, title: &str) -> String {
    let label = verdict_label(verdict);
    let class = label.replace(' ', "-");
    if title.is_empty() {
        format!("<span class=\"badge {class}\">{label}</span>")
    } else {
        format!(
            "<span class=\"badge {class}\" title=\"{}\">{label}</span>",
            esc(title)
        )
    }
}

/// Escapes text for HTML element content and double- or single-quoted attributes.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

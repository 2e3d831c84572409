//! `proctor`: the lab's command line. `main` maps errors to exit codes; `run` lists the stages.

mod cli;
mod report;

use std::io::{self, IsTerminal, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use comfy_table::{Cell, Color, ContentArrangement, Table, presets::UTF8_FULL_CONDENSED};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use proctor_lab::machine::{self, Machine};
use proctor_lab::report::{Section, Status};
use proctor_lab::{Progress, experiment};

use crate::cli::{Cli, Command};

fn main() -> ExitCode {
    // Before any thread exists: the fork server that process-mode pools fork workers from.
    proctor::init();
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        // A closed pipe (`proctor bench spawn | head`) means the reader has all it wants.
        Err(err) if is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(1)
        }
    }
}

/// parse → config → lab → render → print.
fn run() -> Result<()> {
    let cli = Cli::parse();
    let args = match cli.command {
        Command::List => return print(&list()),
        Command::Report(args) => return report::run(&args),
        Command::Bench(args) => args,
    };
    let json = args.json;
    let experiment =
        experiment::find(&args.experiment).context("the experiment id was validated by clap")?;
    reject_knobs_it_ignores(experiment, &args);
    let config = args.into_config();
    let machine = machine::detect();
    let mut progress = BarProgress::new();
    let section = proctor_lab::run_experiment(experiment, &config, &mut progress);
    drop(progress);
    let text = if json {
        serde_json::to_string_pretty(&section).context("serializing the section")? + "\n"
    } else {
        render_section(&machine, &section)
    };
    print(&text)?;
    if let Status::Failed { error } = &section.status {
        bail!("experiment `{}` failed: {error}", section.id);
    }
    Ok(())
}

/// A flag the chosen experiment does not honour is a usage error (exit 2) that says which
/// experiments take it, never silently ignored.
fn reject_knobs_it_ignores(experiment: &dyn experiment::Experiment, args: &cli::BenchArgs) {
    use experiment::Knob;
    let given = [
        (Knob::Iterations, args.iterations.is_some()),
        (Knob::Sizes, args.sizes.is_some()),
        (Knob::Transports, args.transports.is_some()),
        (Knob::Workers, args.workers.is_some()),
    ];
    let ignored = given
        .iter()
        .find(|(k, given)| *given && !experiment.knobs().contains(k));
    if let Some((knob, _)) = ignored {
        let message = format!(
            "{} does not apply to the `{}` experiment (it applies to: {})",
            knob.flag(),
            experiment.id(),
            knob.experiments().join(", ")
        );
        <Cli as clap::CommandFactory>::command()
            .error(clap::error::ErrorKind::ArgumentConflict, message)
            .exit();
    }
}

pub(crate) fn print(text: &str) -> Result<()> {
    let mut out = io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .context("writing to stdout")
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        e.downcast_ref::<io::Error>()
            .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
    })
}

fn list() -> String {
    experiment::ALL
        .iter()
        .map(|e| format!("{:<10} {}\n", e.id(), e.title()))
        .collect()
}

/// A plain terminal rendering of one section; the full renderers live in the lab.
fn render_section(m: &Machine, s: &Section) -> String {
    let mut out = String::new();
    let mut line = |l: String| {
        out.push_str(&l);
        out.push('\n');
    };
    line(format!(
        "{} ({}), {:.1} s",
        s.title,
        s.id,
        s.elapsed_ms / 1e3
    ));
    line(format!(
        "machine: {}, {} logical CPUs{}, {}, {:.0} MHz, virtualization: {}",
        m.cpu_model,
        m.logical_cpus,
        m.physical_cores
            .map_or(String::new(), |c| format!(" ({c} physical cores)")),
        m.kernel,
        m.frequency_mhz.unwrap_or(0.0),
        m.virtualization.as_deref().unwrap_or("unknown"),
    ));
    for w in &m.warnings {
        line(format!("warning: {w}"));
    }
    if let Status::Failed { error } = &s.status {
        line(format!("FAILED: {error}"));
    }
    if let Status::Skipped { reason } = &s.status {
        line(format!("skipped: {reason}"));
    }
    if !s.method.is_empty() {
        line(format!("method: {}", s.method));
    }

    if !s.figures.is_empty() {
        let mut t = table(&[
            "figure",
            "value",
            "p1",
            "p99",
            "min",
            "max",
            "outliers/samples",
            "placement",
        ]);
        for f in &s.figures {
            let spread = f.spread.as_ref();
            let v = |x: Option<f64>| {
                x.map_or_else(String::new, |x| {
                    proctor_lab::render::format_value(x, f.unit)
                })
            };
            t.add_row(vec![
                Cell::new(&f.label),
                Cell::new(proctor_lab::render::format_value(f.value, f.unit)).fg(Color::Green),
                Cell::new(v(spread.map(|s| s.p1))),
                Cell::new(v(spread.map(|s| s.p99))),
                Cell::new(v(spread.map(|s| s.min))),
                Cell::new(v(spread.map(|s| s.max))),
                Cell::new(
                    spread.map_or_else(String::new, |s| format!("{}/{}", s.outliers, s.samples)),
                ),
                Cell::new(f.placement.as_deref().unwrap_or("")),
            ]);
        }
        line(t.to_string());
    }
    for tab in &s.tables {
        line(tab.title.clone());
        let cols: Vec<&str> = tab.columns.iter().map(String::as_str).collect();
        let mut t = table(&cols);
        for r in &tab.rows {
            t.add_row(r);
        }
        line(t.to_string());
    }
    for c in &s.charts {
        line(format!("{} ({} against {})", c.title, c.y_label, c.x_label));
        let mut t = table(&["series", "points"]);
        for series in &c.series {
            let pts: Vec<String> = series
                .points
                .iter()
                .map(|(x, y)| format!("{x:.0}: {y:.0}"))
                .collect();
            t.add_row(vec![series.name.clone(), pts.join(", ")]);
        }
        line(t.to_string());
    }
    if !s.cross_checks.is_empty() {
        line("Cross-checks (same run)".to_string());
        let mut t = table(&["tool", "command", "ours", "theirs", "ours/theirs", "note"]);
        for c in &s.cross_checks {
            let v = |x: Option<f64>| {
                x.map_or_else(
                    || "-".to_string(),
                    |x| proctor_lab::render::format_value(x, c.unit),
                )
            };
            let ratio = match (c.ours, c.theirs) {
                (Some(o), Some(t)) => format!("{:.2}", o / t),
                _ => "-".to_string(),
            };
            t.add_row(vec![
                Cell::new(&c.tool),
                Cell::new(&c.command),
                Cell::new(v(c.ours)),
                Cell::new(v(c.theirs)),
                Cell::new(ratio),
                Cell::new(c.note.as_deref().unwrap_or("")).fg(Color::Yellow),
            ]);
        }
        line(t.to_string());
    }
    for n in &s.notes {
        line(format!("note: {n}"));
    }
    out
}

fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_style(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(header.iter().map(|h| Cell::new(h).fg(Color::Cyan)));
    t
}

/// A progress bar on stderr, shown only when stderr is a terminal and a phase has run for
/// more than a second, so quick runs and pipes stay clean.
struct BarProgress {
    bar: Option<ProgressBar>,
    started: Instant,
    shown: bool,
    tty: bool,
}

impl BarProgress {
    fn new() -> BarProgress {
        BarProgress {
            bar: None,
            started: Instant::now(),
            shown: false,
            tty: io::stderr().is_terminal(),
        }
    }
}

impl Progress for BarProgress {
    fn begin(&mut self, label: &str, total: u64) {
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::hidden());
        bar.set_style(
            ProgressStyle::with_template("{prefix:>8} [{bar:30}] {pos}/{len} {elapsed} {wide_msg}")
                .expect("the template is valid")
                .progress_chars("=> "),
        );
        bar.set_prefix(label.to_string());
        self.bar = Some(bar);
        self.started = Instant::now();
        self.shown = false;
    }

    fn advance(&mut self, n: u64, message: &str) {
        let Some(bar) = &self.bar else { return };
        bar.inc(n);
        if !message.is_empty() {
            bar.set_message(message.to_string());
        }
        if self.tty && !self.shown && self.started.elapsed() > Duration::from_secs(1) {
            bar.set_draw_target(ProgressDrawTarget::stderr());
            bar.enable_steady_tick(Duration::from_millis(200));
            self.shown = true;
        }
        if !self.tty && n > 0 && self.started.elapsed() > Duration::from_secs(2) {
            // No terminal for a bar (a log, CI): a line per finished step of a long run, so
            // it never sits silent for minutes.
            let _ = writeln!(
                io::stderr(),
                "{} {}/{} done, {:.0} s: {}",
                bar.prefix(),
                bar.position(),
                bar.length().unwrap_or(0),
                self.started.elapsed().as_secs_f64(),
                bar.message()
            );
        }
    }

    fn end(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

impl Drop for BarProgress {
    fn drop(&mut self) {
        self.end();
    }
}

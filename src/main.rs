//! `proctor`: the lab's command line. `main` maps errors to exit codes; `run` lists the stages.

mod cli;
mod report;

use std::io::{self, IsTerminal, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use proctor_lab::render::{self, table::TableOptions};
use proctor_lab::report::Status;
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
        Command::Compare(args) => return compare(&args),
        Command::Bench(args) => args,
    };
    let json = args.json;
    let experiment =
        experiment::find(&args.experiment).context("the experiment id was validated by clap")?;
    reject_knobs_it_ignores(experiment, &args);
    let color = std::env::var_os("NO_COLOR").is_none() && io::stdout().is_terminal();
    let config = args.into_config();
    let mut progress = BarProgress::new();
    let section = proctor_lab::run_experiment(experiment, &config, &mut progress);
    drop(progress);
    // One section as a report: the same renderer, schema and machine as `proctor report`.
    let command_line = std::env::args().collect::<Vec<_>>().join(" ");
    let report = proctor_lab::report_of(&config, &command_line, vec![section]);
    let text = if json {
        render::render(&report, render::Format::Json).context("serializing the report")?
    } else {
        let options = TableOptions {
            color,
            width: report::terminal_width(),
            verbose: true,
        };
        render::table::render_sections(&report, options)
    };
    print(&text)?;
    if let Status::Failed { error } = &report.sections[0].status {
        bail!("experiment `{}` failed: {error}", report.sections[0].id);
    }
    Ok(())
}

/// `proctor compare`: the reports side by side, on stdout and optionally as HTML.
fn compare(args: &cli::CompareArgs) -> Result<()> {
    use proctor_lab::compare;
    let reports = args
        .reports
        .iter()
        .map(|p| compare::load(p))
        .collect::<Result<Vec<_>>>()?;
    let comparison = compare::compare(&reports);
    if let Some(path) = &args.html {
        std::fs::write(path, compare::render_html(&comparison))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    let text = if args.json {
        serde_json::to_string_pretty(&comparison).context("serializing the comparison")? + "\n"
    } else {
        compare::render_text(&comparison, report::terminal_width(), args.all)
    };
    print(&text)?;
    if let Some(path) = &args.html {
        eprintln!("wrote {}", path.display());
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

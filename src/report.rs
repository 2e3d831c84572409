//! `proctor report`: run the experiments, print the comparison table, write the report files.

use std::io::{self, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use proctor_lab::Progress;
use proctor_lab::render::{self, Format, table::TableOptions};
use proctor_lab::report::{Report, Section, Status};

use crate::cli::ReportArgs;

/// The files written, in the order they are listed to the user.
const FILES: [(&str, Format); 3] = [
    ("report.html", Format::Html),
    ("report.json", Format::Json),
    ("report.md", Format::Markdown),
];

pub(crate) fn run(args: &ReportArgs) -> Result<()> {
    let config = args.config();
    let ids = args.ids();
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating the report folder {}", args.out.display()))?;
    let command_line = std::env::args().collect::<Vec<_>>().join(" ");
    let mut progress = OverallProgress::new(ids.len() as u64);
    let bar = progress.bar.clone();
    let kept = on_interrupt(&args.out, bar.clone(), ids.first().copied());
    let report = proctor_lab::run_report(
        &config,
        &ids,
        &command_line,
        &mut progress,
        &mut |partial, section| {
            write_files(partial, &args.out)?;
            finished(&bar, section);
            let mut kept = kept
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let next = ids
                .iter()
                .position(|id| *id == section.id)
                .and_then(|i| ids.get(i + 1).copied());
            *kept = Kept {
                report: Some(partial.clone()),
                running: next,
            };
            Ok(())
        },
    )?;
    drop(progress);

    let color =
        !args.no_color && std::env::var_os("NO_COLOR").is_none() && io::stdout().is_terminal();
    let options = TableOptions {
        color,
        width: terminal_width(),
        verbose: args.verbose,
    };
    let table = render::table::render_with(&report, options);
    crate::print(&table)?;
    // The folder once, then the files' names: the paths stay whole and the line short.
    let names: Vec<&str> = FILES.iter().map(|(name, _)| *name).collect();
    let written = format!(
        "report written to {}: {}",
        args.out.join("").display(),
        names.join(", ")
    );
    crate::print(&format!(
        "\n{}\n",
        render::table::wrap(&written, options.width, 2)
    ))?;

    let failed: Vec<&Section> = report
        .sections
        .iter()
        .filter(|s| matches!(s.status, Status::Failed { .. }))
        .collect();
    if !failed.is_empty() {
        let ids: Vec<&str> = failed.iter().map(|s| s.id.as_str()).collect();
        bail!(
            "{} experiment(s) failed: {} (their errors are in the report)",
            ids.len(),
            ids.join(", ")
        );
    }
    Ok(())
}

/// The width to lay the tables out in: the terminal's (stdout's, else stderr's), else
/// `COLUMNS`, else 120 columns (a pipe or a file). Never under 60, where no table reads.
pub(crate) fn terminal_width() -> u16 {
    use terminal_size::{Width, terminal_size_of};
    let tty = terminal_size_of(io::stdout()).or_else(|| terminal_size_of(io::stderr()));
    let width = match tty {
        Some((Width(w), _)) => w,
        None => std::env::var("COLUMNS")
            .ok()
            .and_then(|c| c.parse().ok())
            .unwrap_or(render::table::DEFAULT_WIDTH),
    };
    width.max(60)
}

/// What an interruption keeps: the report as of the last finished experiment, and the one
/// that was running.
struct Kept {
    report: Option<Report>,
    running: Option<&'static str>,
}

/// On Ctrl-C: marks the running experiment "interrupted", writes the report files with what
/// finished, says so, and exits with 130 (the shell's code for SIGINT).
fn on_interrupt(
    out: &Path,
    bar: ProgressBar,
    first: Option<&'static str>,
) -> std::sync::Arc<std::sync::Mutex<Kept>> {
    let kept = std::sync::Arc::new(std::sync::Mutex::new(Kept {
        report: None,
        running: first,
    }));
    let state = std::sync::Arc::clone(&kept);
    let out = out.to_path_buf();
    let installed = ctrlc::set_handler(move || {
        bar.finish_and_clear();
        let kept = state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let running = kept.running.unwrap_or("the run");
        let Some(mut report) = kept.report.clone() else {
            eprintln!(
                "interrupted during `{running}`, before any experiment finished: nothing kept"
            );
            std::process::exit(130);
        };
        let mut done = 0;
        for s in &mut report.sections {
            if s.id == running {
                s.status = Status::Skipped {
                    reason: "interrupted (Ctrl-C) while it ran".into(),
                };
            } else if !matches!(s.status, Status::Skipped { .. }) {
                done += 1;
            }
        }
        match write_files(&report, &out) {
            Ok(()) => eprintln!(
                "interrupted during `{running}`: kept the {done} finished experiment(s) in {}",
                out.join("report.html").display()
            ),
            Err(e) => {
                eprintln!("interrupted during `{running}`; the report could not be written: {e:#}")
            }
        }
        std::process::exit(130);
    });
    if let Err(e) = installed {
        log_warning(&format!("Ctrl-C will not save the partial report: {e}"));
    }
    kept
}

fn log_warning(message: &str) {
    let _ = writeln!(io::stderr(), "warning: {message}");
}

/// Writes every format, each through a temporary file and a rename, so a reader (or an
/// interruption) never sees half a file.
fn write_files(report: &Report, dir: &Path) -> Result<()> {
    for (name, format) in FILES {
        let text = render::render(report, format).with_context(|| format!("rendering {name}"))?;
        let path = dir.join(name);
        let tmp: PathBuf = dir.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// One bar over the whole run (one step per experiment) and a line per finished experiment,
/// on stderr. Without a terminal, only the lines.
struct OverallProgress {
    bar: ProgressBar,
    current: String,
}

impl OverallProgress {
    fn new(experiments: u64) -> OverallProgress {
        let target = if io::stderr().is_terminal() {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        let bar = ProgressBar::with_draw_target(Some(experiments), target);
        bar.set_style(
            ProgressStyle::with_template(
                "[{bar:30}] {pos}/{len} experiments, {elapsed} {wide_msg}",
            )
            .expect("the template is valid")
            .progress_chars("=> "),
        );
        bar.enable_steady_tick(Duration::from_millis(200));
        OverallProgress {
            bar,
            current: String::new(),
        }
    }
}

/// Prints a line for a finished experiment above the bar, and advances it.
fn finished(bar: &ProgressBar, s: &Section) {
    let line = match &s.status {
        Status::Ok => format!("  done    {:<10} {:>6.1} s", s.id, s.elapsed_ms / 1e3),
        Status::Failed { error } => format!("  FAILED  {:<10} {error}", s.id),
        Status::Skipped { reason } => format!("  skipped {:<10} {reason}", s.id),
    };
    if bar.is_hidden() {
        let _ = writeln!(io::stderr(), "{line}");
    } else {
        bar.println(line);
    }
    bar.inc(1);
}

impl Progress for OverallProgress {
    fn begin(&mut self, label: &str, _total: u64) {
        self.current = label.to_string();
        self.bar.set_message(label.to_string());
    }

    fn advance(&mut self, _n: u64, message: &str) {
        if !message.is_empty() {
            self.bar.set_message(format!("{}: {message}", self.current));
        }
    }

    fn end(&mut self) {}
}

impl Drop for OverallProgress {
    fn drop(&mut self) {
        self.bar.finish_and_clear();
    }
}

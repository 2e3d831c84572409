//! proctor's lab: measures every row of the processes-vs-threads comparison table on the
//! machine it runs on, and turns the figures into a [`report::Report`].
//!
//! Data flows one way: [`LabConfig`] → experiments (each returns a [`report::Section`]) →
//! renderers. Experiments never print; progress goes through the [`Progress`] trait.
//!
//! # What lives where, and who may import what
//!
//! The modules form layers; a module imports only from its own layer's leaves or from layers
//! below it, never from one above.
//!
//! 1. Leaves, importing nothing from the lab: [`units`] (the units and every number's text),
//!    [`procfs`] (the one reader of `/proc`), [`progress`]; and [`verdict::keys`] (every
//!    figure key the verdicts read, spelled once), which imports only [`units`].
//! 2. The model: [`report`] (what experiments produce and renderers read) and [`machine`];
//!    [`stats`] (pure statistics, returning the model's `Spread`).
//! 3. The instruments: [`measure`] (the warm-up/repeat loop and timers), [`shared_mem`],
//!    [`crosscheck`] (established tools), [`ipc`] (the transports).
//! 4. The producers: [`experiment`], one module per experiment; they may import anything
//!    above, and nothing from the consumers below except [`verdict::keys`].
//! 5. The consumers: [`verdict`] (the claims judged against the figures), [`render`] (a
//!    report as text) and [`compare`] (reports side by side); none measures, none prints.
//!
//! The crate's entry points are [`run_report`], [`run_experiment`] and [`report_of`].
#![warn(missing_debug_implementations)]
#![warn(missing_docs)]

pub mod compare;
pub mod conditions;
pub mod crosscheck;
pub mod experiment;
pub mod ipc;
pub mod machine;
pub mod measure;
pub mod procfs;
pub mod progress;
pub mod render;
pub mod report;
pub mod shared_mem;
pub mod stats;
pub mod topology;
pub mod units;
pub mod verdict;

/// Made-up sections for the renderers' and verdicts' tests (test-only).
#[cfg(test)]
mod fixture;

pub use progress::{NoProgress, Progress};
pub use report::Profile;

/// What to measure and how much. Built by the CLI from its arguments, by tests directly.
#[derive(Debug, Clone, Default)]
pub struct LabConfig {
    /// How much measuring to do.
    pub profile: Profile,
    /// Override the number of iterations (round trips, spawns...) per sample.
    pub iterations: Option<u64>,
    /// Message sizes in bytes for the IPC experiment (its round trips, throughputs and
    /// hand-off payloads).
    pub sizes: Option<Vec<usize>>,
    /// Transport names for the IPC experiment; when given, its hand-off does not run.
    pub transports: Option<Vec<String>>,
    /// Worker counts for memory/scaling experiments.
    pub workers: Option<Vec<usize>>,
}

/// Runs one experiment and returns its section, timed. A failing experiment becomes a section
/// with [`report::Status::Failed`], so a report can keep the other experiments' figures.
pub fn run_experiment(
    experiment: &dyn experiment::Experiment,
    config: &LabConfig,
    progress: &mut dyn Progress,
) -> report::Section {
    let start = std::time::Instant::now();
    let before = conditions::Snapshot::take();
    let mut section = match experiment.run(config, progress) {
        Ok(section) => section,
        Err(err) => {
            let mut s = report::Section::new(experiment.id(), experiment.title(), "");
            s.status = report::Status::Failed {
                error: format!("{err:#}"),
            };
            s
        }
    };
    section.elapsed_ms = start.elapsed().as_secs_f64() * 1e3;
    section.conditions = Some(conditions::Conditions::between(
        before,
        conditions::Snapshot::take(),
    ));
    section
}

/// A report of the sections `sections` (one, for `proctor bench`): this machine, and the
/// verdicts those sections decide.
pub fn report_of(
    config: &LabConfig,
    command_line: &str,
    sections: Vec<report::Section>,
) -> report::Report {
    let mut report = report::Report {
        schema_version: report::SCHEMA_VERSION,
        proctor_version: env!("CARGO_PKG_VERSION").to_string(),
        command_line: command_line.to_string(),
        profile: config.profile,
        machine: machine::detect(),
        headline: Vec::new(),
        claims: Vec::new(),
        sections,
    };
    (report.headline, report.claims) = verdict::judge(&report.sections);
    report
}

/// Runs the experiments `ids` (in [`experiment::ALL`] order) into one [`report::Report`].
///
/// The report starts with every selected section marked "not run yet"; after each
/// experiment, its section replaces that mark, the verdicts are recomputed, and `after_each`
/// sees the partial report (the CLI writes it to disk, so an interruption loses only the
/// experiment that was running). A failed or panicking experiment becomes a failed section;
/// the others still run.
pub fn run_report(
    config: &LabConfig,
    ids: &[&str],
    command_line: &str,
    progress: &mut dyn Progress,
    after_each: &mut dyn FnMut(&report::Report, &report::Section) -> anyhow::Result<()>,
) -> anyhow::Result<report::Report> {
    let selected: Vec<&'static dyn experiment::Experiment> = experiment::ALL
        .iter()
        .copied()
        .filter(|e| ids.contains(&e.id()))
        .collect();
    let not_run = selected
        .iter()
        .map(|e| {
            let mut s = report::Section::new(e.id(), e.title(), "");
            s.status = report::Status::Skipped {
                reason: "not run yet: the run was interrupted before this experiment".into(),
            };
            s
        })
        .collect();
    let mut report = report_of(config, command_line, not_run);
    for (i, e) in selected.iter().enumerate() {
        let section = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            run_experiment(*e, config, progress)
        }))
        .unwrap_or_else(|payload| {
            let why = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic".into());
            let mut s = report::Section::new(e.id(), e.title(), "");
            s.status = report::Status::Failed {
                error: format!("the experiment panicked: {why}"),
            };
            s
        });
        report.sections[i] = section;
        (report.headline, report.claims) = verdict::judge(&report.sections);
        after_each(&report, &report.sections[i])?;
    }
    Ok(report)
}

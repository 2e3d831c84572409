//! proctor's lab: measures every row of the processes-vs-threads comparison table on the
//! machine it runs on, and turns the figures into a [`report::Report`].
//!
//! Data flows one way: [`LabConfig`] → experiments (each returns a [`report::Section`]) →
//! renderers. Experiments never print; progress goes through the [`Progress`] trait.
#![warn(missing_debug_implementations)]

pub mod crosscheck;
pub mod experiment;
pub mod machine;
pub mod measure;
pub mod progress;
pub mod render;
pub mod report;
pub mod shared_mem;
pub mod stats;
pub mod verdict;

#[doc(hidden)]
pub mod fixture;

pub use progress::{NoProgress, Progress};
pub use report::Profile;

/// What to measure and how much. Built by the CLI from its arguments, by tests directly.
#[derive(Debug, Clone, Default)]
pub struct LabConfig {
    pub profile: Profile,
    /// Override the number of iterations (round trips, spawns...) per sample.
    pub iterations: Option<u64>,
    /// Message sizes in bytes for the IPC experiment.
    pub sizes: Option<Vec<usize>>,
    /// Transport names for the IPC experiment.
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
    section
}

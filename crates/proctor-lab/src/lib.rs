//! proctor's lab: measures every row of the processes-vs-threads comparison table on the
//! machine it runs on, and turns the figures into a [`report::Report`].
//!
//! Data flows one way: [`LabConfig`] → experiments (each returns a [`report::Section`]) →
//! renderers. Experiments never print; progress goes through the [`Progress`] trait.
#![warn(missing_debug_implementations)]

pub mod experiment;
pub mod machine;
pub mod progress;
pub mod render;
pub mod report;
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

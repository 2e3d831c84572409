//! One module per experiment; each implements [`Experiment`] and is listed once in [`ALL`].

use crate::{LabConfig, Progress, report::Section};

pub mod ipc;
pub mod isolation;
pub mod memory;
pub mod race;
pub mod scaling;
pub mod spawn;
pub mod switch;
pub mod sync;

/// A lab experiment: measures one row of the comparison table.
pub trait Experiment: Sync {
    /// The id: file name, CLI value, JSON key and HTML anchor (`spawn`, `switch`, ...).
    fn id(&self) -> &'static str;
    /// A short title, e.g. "Creation overhead".
    fn title(&self) -> &'static str;
    /// Runs the experiment. Never prints; reports progress through `progress`.
    fn run(&self, config: &LabConfig, progress: &mut dyn Progress) -> anyhow::Result<Section>;
}

/// Every experiment, in report order.
pub static ALL: &[&dyn Experiment] = &[
    &spawn::Spawn,
    &switch::Switch,
    &ipc::Ipc,
    &memory::Memory,
    &isolation::Isolation,
    &race::Race,
    &scaling::Scaling,
    &sync::SyncCost,
];

/// The experiment with this id.
pub fn find(id: &str) -> Option<&'static dyn Experiment> {
    ALL.iter().copied().find(|e| e.id() == id)
}

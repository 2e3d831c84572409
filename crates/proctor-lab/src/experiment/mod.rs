//! One module per experiment; each implements [`Experiment`] and is listed once in [`ALL`].
//!
//! Every experiment has the same shape: a `run` that measures into a typed result (its
//! `…Result`, serialized whole into [`Section::data`]), and a `section_from` (or `section`)
//! that turns that result into the [`Section`]: the method text, the figures (their keys from
//! [`crate::verdict::keys`] where a verdict reads them), tables, charts and notes, each group
//! built by a small function of its own. A folder (`sandbox/`, `servers/`) is an experiment
//! too big for one file.
//!
//! Besides the experiments, this module holds what several of them share: [`Worker`] (thread
//! or process, the one name for it), `Placement` (where a two-party measurement runs), the
//! partner of a two-party measurement (`partner.rs`), and `median_round` for the figures
//! measured in independent rounds. Other modules import [`ALL`], [`find`], [`Experiment`],
//! [`Knob`], [`Worker`] and the experiments' result types from here; nothing outside imports
//! an experiment's section-building internals.

use serde::{Deserialize, Serialize};

use crate::{LabConfig, Progress, report::Section};

pub mod containers;
pub mod ipc;
pub mod isolation;
pub mod leaks;
pub mod memory;
mod partner;
pub mod race;
pub mod sandbox;
pub mod scaling;
pub mod servers;
pub mod spawn;
pub mod switch;
pub mod sync;
pub mod ui;

/// A lab experiment: measures one row of the comparison table.
pub trait Experiment: Sync {
    /// The id: file name, CLI value, JSON key and HTML anchor (`spawn`, `switch`, ...).
    fn id(&self) -> &'static str;
    /// A short title, e.g. "Creation overhead".
    fn title(&self) -> &'static str;
    /// Runs the experiment. Never prints; reports progress through `progress`.
    fn run(&self, config: &LabConfig, progress: &mut dyn Progress) -> anyhow::Result<Section>;
    /// The [`LabConfig`] settings it honours besides the profile (the CLI rejects the others
    /// rather than ignore them).
    fn knobs(&self) -> &'static [Knob] {
        &[]
    }
}

/// A setting of [`LabConfig`] that some experiments honour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Knob {
    /// `iterations`: ops per batch.
    Iterations,
    /// `sizes`: message sizes.
    Sizes,
    /// `transports`: IPC transports.
    Transports,
    /// `workers`: worker counts.
    Workers,
}

impl Knob {
    /// The setting's command-line flag.
    pub fn flag(self) -> &'static str {
        match self {
            Knob::Iterations => "--iterations",
            Knob::Sizes => "--sizes",
            Knob::Transports => "--transports",
            Knob::Workers => "--workers",
        }
    }

    /// The ids of the experiments that honour it.
    pub fn experiments(self) -> Vec<&'static str> {
        ALL.iter()
            .filter(|e| e.knobs().contains(&self))
            .map(|e| e.id())
            .collect()
    }
}

/// Every experiment, in report order.
pub static ALL: &[&dyn Experiment] = &[
    &spawn::Spawn,
    &switch::Switch,
    &ipc::Ipc,
    &memory::Memory,
    &isolation::Isolation,
    &containers::Containers,
    &race::Race,
    &scaling::Scaling,
    &sync::SyncCost,
    &ui::Ui,
    &leaks::Leaks,
    &sandbox::SandboxLab,
    &servers::Servers,
];

/// Independent rounds of each figure the headline shows (each set up afresh: new threads,
/// processes, pairs), so that the headline can show their run-to-run spread.
pub(crate) const ROUNDS: usize = 3;

/// Runs `round` `n` times (at least once), each independent of the others, and returns the
/// round whose value is the median (the middle one; keep `n` odd) with every round's value, in
/// the order they ran.
pub(crate) fn median_round<T>(
    n: usize,
    mut round: impl FnMut() -> anyhow::Result<T>,
    value: impl Fn(&T) -> f64,
) -> anyhow::Result<(T, Vec<f64>)> {
    let mut all = Vec::with_capacity(n.max(1));
    for _ in 0..n.max(1) {
        all.push(round()?);
    }
    let values: Vec<f64> = all.iter().map(&value).collect();
    let mut order: Vec<usize> = (0..all.len()).collect();
    order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    let middle = order[(order.len() - 1) / 2];
    Ok((all.swap_remove(middle), values))
}

/// What [`median_round`] returns: the median round and every round's value.
pub(crate) type MedianRound<T> = (T, Vec<f64>);

/// [`median_round`] for a pair measured against each other: the rounds alternate (a, b, a,
/// b, ...), so both sides see the same machine, whatever drifts under the run (the host's
/// placement of a guest's vCPUs, a neighbour), and their ratio compares like with like.
pub(crate) fn median_round_pair<A, B>(
    n: usize,
    mut round_a: impl FnMut() -> anyhow::Result<A>,
    mut round_b: impl FnMut() -> anyhow::Result<B>,
    value_a: impl Fn(&A) -> f64,
    value_b: impl Fn(&B) -> f64,
) -> anyhow::Result<(MedianRound<A>, MedianRound<B>)> {
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for _ in 0..n.max(1) {
        a.push(round_a()?);
        b.push(round_b()?);
    }
    let mut a = a.into_iter().map(Ok);
    let mut b = b.into_iter().map(Ok);
    Ok((
        median_round(n, || a.next().expect("one per round"), value_a)?,
        median_round(n, || b.next().expect("one per round"), value_b)?,
    ))
}

/// Remote workers on this host (`spawn`, `ipc`): the command launcher runs
/// `/bin/sh -c 'exec <this binary>'`, which becomes an agent in `proctor::init()` and connects
/// back to a pool listening on 127.0.0.1 only, so nothing leaves the machine.
pub(crate) fn loopback_remote() -> proctor::Remote {
    proctor::Remote::command("exec {exe}", ["localhost"])
        .listen(std::net::SocketAddr::from(([127, 0, 0, 1], 0)))
        // An agent that has not connected by then will not: say so well before the default.
        .connect_timeout(std::time::Duration::from_secs(10))
}

/// Where the two sides of a two-party measurement run. Its `key` is the word figure keys and
/// JSON use, the same in every experiment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Placement {
    /// Both sides pinned to this CPU (a context switch per hand-off).
    Pinned(usize),
    /// Main pinned to the first CPU, the partner to the second (cross-CPU wake-ups).
    CrossCpu(usize, usize),
    /// Neither pinned: the scheduler decides, as `perf bench sched pipe` without `taskset`.
    Unpinned,
}

impl Placement {
    pub(crate) fn key(self) -> &'static str {
        match self {
            Placement::Pinned(_) => "pinned",
            Placement::CrossCpu(..) => "cross_cpu",
            Placement::Unpinned => "unpinned",
        }
    }

    pub(crate) fn describe(self) -> String {
        match self {
            Placement::Pinned(c) => format!("same CPU (cpu {c})"),
            Placement::CrossCpu(a, b) => format!("cpu {a} <-> cpu {b} (cross-CPU wake-up latency)"),
            Placement::Unpinned => "unpinned (the scheduler's choice)".to_string(),
        }
    }

    /// (main's CPU, the partner's CPU), or `None` when unpinned.
    pub(crate) fn cpus(self) -> Option<(usize, usize)> {
        match self {
            Placement::Pinned(c) => Some((c, c)),
            Placement::CrossCpu(a, b) => Some((a, b)),
            Placement::Unpinned => None,
        }
    }
}

/// What runs a piece of work: a thread of this process, or a process of its own.
///
/// The one thread/process vocabulary of the experiments: the partner of a two-party
/// measurement (`switch`, `ipc`), the kind of pool a fault ran on (`isolation`), the workers
/// whose memory is measured (`memory`). It serializes as `thread` or `process`, the word the
/// figure keys use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Worker {
    /// A thread of this process.
    Thread,
    /// A process of its own (forked).
    Process,
}

impl Worker {
    /// The word figure keys and tables use: `thread` or `process`.
    pub fn key(self) -> &'static str {
        match self {
            Worker::Thread => "thread",
            Worker::Process => "process",
        }
    }

    /// The plural, for labels: `threads` or `processes`.
    pub fn plural(self) -> &'static str {
        match self {
            Worker::Thread => "threads",
            Worker::Process => "processes",
        }
    }

    /// The pool mode that runs work on this kind of worker.
    pub fn pool_mode(self) -> proctor::Mode {
        match self {
            Worker::Thread => proctor::Mode::Threads,
            Worker::Process => proctor::Mode::Processes,
        }
    }
}

/// The experiment with this id.
pub fn find(id: &str) -> Option<&'static dyn Experiment> {
    ALL.iter().copied().find(|e| e.id() == id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_round_keeps_the_middle_round_and_every_value_in_order() {
        let mut next = [30.0, 10.0, 20.0].into_iter();
        let (middle, values) =
            median_round(3, || Ok(next.next().expect("three rounds")), |v| *v).expect("runs");
        assert_eq!(middle, 20.0);
        assert_eq!(values, vec![30.0, 10.0, 20.0]);
        let (one, values) = median_round(1, || Ok(7.0), |v| *v).expect("runs");
        assert_eq!((one, values), (7.0, vec![7.0]));
    }
}

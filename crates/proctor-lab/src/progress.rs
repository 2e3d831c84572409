//! Progress reporting from experiments, without printing.
//!
//! The lab calls these hooks; the CLI shows a progress bar, tests pass [`NoProgress`].

/// Receives progress from a running experiment.
pub trait Progress {
    /// An experiment (or a phase of one) starts, with `total` steps to come.
    fn begin(&mut self, label: &str, total: u64);
    /// `n` more steps are done; `message` says what runs now.
    fn advance(&mut self, n: u64, message: &str);
    /// The current experiment or phase ended.
    fn end(&mut self);
}

/// Ignores all progress (tests, `--json` into a pipe).
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn begin(&mut self, _label: &str, _total: u64) {}
    fn advance(&mut self, _n: u64, _message: &str) {}
    fn end(&mut self) {}
}

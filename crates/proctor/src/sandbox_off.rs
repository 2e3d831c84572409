//! The sandbox when the `sandbox` feature is off: what the worker and the process pool
//! name, with no sandbox behind it. Nothing can build a [`Sandbox`] (`PoolBuilder::sandbox`
//! is not compiled), so a pool's sandbox is always `None` and the pool's code is the same in
//! both builds; seccomp's and Landlock's crates stay out of the build.

use serde::{Deserialize, Serialize};

/// No value: what the stand-in below holds.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Never {}

/// Stands for the sandbox settings of the real `Sandbox`; it has no value.
#[derive(Debug, Clone)]
pub(crate) struct Sandbox {
    /// As the real one's: the pool's memory limit, which its rlimits follow.
    pub(crate) memory_limit: Option<u64>,
    never: Never,
}

impl Sandbox {
    /// As the real one's: whether every task gets a fresh worker.
    pub(crate) fn is_fresh_worker_per_task(&self) -> bool {
        match self.never {}
    }
}

/// Stands for the report of a worker's sandbox: no value exists, so a probe's report
/// always decodes as `None`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum SandboxReport {}

/// What a worker's stderr says before it exits with `ExitCode::SandboxFailed` (never,
/// here: no worker applies a sandbox).
pub(crate) const FAILED_LINE: &str = "proctor: the sandbox could not be applied: ";
/// How a pool that starts no more workers after a sandbox failure says why.
pub(crate) const FAILED_REASON: &str = "the worker sandbox could not be applied: ";

/// Nothing to note: no sandbox waits for the initializer.
pub(crate) fn initializer_ran() {}

/// Nothing to note: no filter guards the shared memory.
pub(crate) fn set_shared_fds(_fds: [i32; 3]) {}

/// Nothing to note: no trap handler writes to the worker's diagnostics.
pub(crate) fn set_diag_fd(_fd: i32) {}

/// The task that reports a worker's sandbox (run by `build()`): there is none.
pub(crate) fn report_task(_: ()) -> Option<SandboxReport> {
    None
}

/// The bytes of the frame that carries `sandbox` to a worker.
pub(crate) fn encode(sandbox: &Sandbox) -> Vec<u8> {
    match sandbox.never {}
}

/// In a worker, the sandbox frame's entry: never sent, since no pool has a sandbox.
pub(crate) fn apply_entry(_bytes: &[u8]) {
    unreachable!("a sandbox frame reached a worker built without the sandbox feature")
}

/// The call a sandboxed worker was stopped for: no worker is sandboxed.
pub(crate) fn violation(_stderr: &str) -> Option<String> {
    None
}

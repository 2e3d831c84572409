//! How the pool's own processes end on their own: the exit codes the parent reads, in one
//! place. A worker, the fork server and a remote agent leave through [`ExitCode::leave`];
//! the driver reads a worker's end back with [`ExitCode::of`].

/// An exit code of one of the pool's processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ExitCode {
    /// Its work is over (a worker's request stream ended, an agent was told to stop).
    Clean = 0,
    /// The fork server's loop failed.
    ServerFailed = 1,
    /// A worker's runtime failed (a broken pipe, an invalid frame): its stderr says why.
    WorkerFailed = 70,
    /// A freshly forked worker could not be prepared (its stderr, rlimits, parent-death
    /// signal, or a descriptor), before any of the user's code ran.
    PrepareFailed = 71,
    /// The fork server could not re-execute the program as a worker (the `exec` start
    /// method).
    ExecFailed = 72,
    /// A sandboxed worker's trap handler outlived the call that kills it (never expected:
    /// the kernel kills it with `SIGSYS` first).
    SandboxViolation = 84,
    /// A worker could not apply its sandbox as asked: its stderr says why.
    SandboxFailed = 85,
    /// A re-executed worker, or a remote agent or worker, refused to start: its stderr says
    /// why.
    StartFailed = 86,
    /// The worker initializer panicked: its stderr says with what.
    InitFailed = 87,
}

impl ExitCode {
    /// The code, as `_exit` takes it.
    pub(crate) const fn code(self) -> i32 {
        self as i32
    }

    /// The pool's own meaning of exit code `code`, if it has one.
    pub(crate) fn of(code: u8) -> Option<ExitCode> {
        use ExitCode::*;
        [
            Clean,
            ServerFailed,
            WorkerFailed,
            PrepareFailed,
            ExecFailed,
            SandboxViolation,
            SandboxFailed,
            StartFailed,
            InitFailed,
        ]
        .into_iter()
        .find(|c| c.code() == i32::from(code))
    }

    /// Whether a worker that ends so never became one: its initializer, its sandbox or its
    /// start failed, and a replacement would fail the same way. (Believed only of a worker
    /// that never said it was ready: a task can exit with any code.)
    pub(crate) fn is_start_failure(self) -> bool {
        matches!(
            self,
            ExitCode::InitFailed | ExitCode::SandboxFailed | ExitCode::StartFailed
        )
    }

    /// Ends this process with the code, at once.
    pub(crate) fn leave(self) -> ! {
        // SAFETY: `_exit` ends the process without running atexit handlers or flushing stdio
        // buffers, which in a forked worker, the fork server or an agent are the parent
        // program's (or `main`'s, never run); whoever leaves has flushed what it wrote. It
        // is async-signal-safe, so a forked child of a threaded parent may call it.
        unsafe { libc::_exit(self.code()) }
    }
}

#[cfg(test)]
mod tests {
    use super::ExitCode;

    #[test]
    fn every_code_reads_back_as_itself_and_others_as_none() {
        for code in 0..=255u8 {
            if let Some(e) = ExitCode::of(code) {
                assert_eq!(e.code(), i32::from(code));
            }
        }
        assert_eq!(ExitCode::of(87), Some(ExitCode::InitFailed));
        assert_eq!(ExitCode::of(3), None);
        assert!(ExitCode::of(85).is_some_and(ExitCode::is_start_failure));
        assert!(!ExitCode::WorkerFailed.is_start_failure());
    }
}

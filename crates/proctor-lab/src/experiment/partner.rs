//! The other side of a two-party measurement (`switch`, `ipc`), started one way for both:
//! as a scoped thread or as a forked process, with the same [`Placement`].

use anyhow::{Context, Result, anyhow, bail};
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::Pid;

use super::{Placement, Worker};
use crate::measure;

impl Worker {
    /// Runs `body` as the partner (a scoped thread, or a child forked now) and `main` on the
    /// calling thread, then joins or reaps the partner, which must end with code 0.
    ///
    /// Placement: the partner is started while the calling thread is pinned to the partner's
    /// CPU (it inherits the pin); the calling thread then moves to main's CPU, and its previous
    /// affinity comes back on return. A forked child dies with this process
    /// (`PR_SET_PDEATHSIG`), is killed when `main` fails (it may be blocked on a half-finished
    /// exchange) and is killed and reaped if this returns early or unwinds.
    ///
    /// In the parent, `body` is dropped unrun right after the fork, so what it owns (the
    /// partner's ends of pipes, its endpoint) is closed there and a dead partner shows as end
    /// of file.
    ///
    /// # Safety
    ///
    /// For [`Worker::Process`], `body` runs in a child, a copy of a possibly multi-threaded
    /// process: it must be async-signal-safe (raw system calls, memory allocated beforehand,
    /// no locks another thread could hold, no unwinding); the child leaves with `_exit(code)`.
    pub(crate) unsafe fn run_pair<R>(
        self,
        placement: Placement,
        body: impl FnOnce() -> i32 + Send,
        main: impl FnOnce() -> Result<R>,
    ) -> Result<R> {
        let _restore = match placement.cpus() {
            Some((_, partner_cpu)) => Some(measure::pin_current_thread(partner_cpu)?),
            None => None,
        };
        let main = || -> Result<R> {
            if let Some((main_cpu, _)) = placement.cpus() {
                measure::pin_to(main_cpu)?;
            }
            main()
        };
        match self {
            Worker::Thread => std::thread::scope(|scope| {
                let h = scope.spawn(body);
                let r = main();
                let code = h
                    .join()
                    .map_err(|_| anyhow!("the partner thread panicked"))?;
                let r = r?;
                if code != 0 {
                    bail!("the partner thread failed with code {code}");
                }
                Ok(r)
            }),
            Worker::Process => {
                // SAFETY: `body` is async-signal-safe, as this function's caller promised.
                let pid = unsafe { crate::shared_mem::fork_child(body) }.context("fork")?;
                let mut child = Child(Some(pid));
                let r = main();
                if r.is_err() {
                    child.kill();
                }
                let status = child.wait()?;
                let r = r?;
                match status {
                    WaitStatus::Exited(_, 0) => Ok(r),
                    other => bail!("the partner process ended badly: {other:?}"),
                }
            }
        }
    }
}

/// A forked partner not yet reaped: dropping it kills and reaps it.
#[derive(Debug)]
struct Child(Option<Pid>);

impl Child {
    fn kill(&self) {
        if let Some(pid) = self.0 {
            let _ = kill(pid, Signal::SIGKILL);
        }
    }

    fn wait(&mut self) -> Result<WaitStatus> {
        let pid = self.0.take().expect("a partner is reaped once");
        waitpid(pid, None).context("waitpid for the partner")
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if let Some(pid) = self.0.take() {
            let _ = kill(pid, Signal::SIGKILL);
            let _ = waitpid(pid, None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg_attr(not(target_os = "linux"), ignore)]
    fn both_kinds_run_body_and_main_and_report_a_failing_partner() {
        for kind in [Worker::Thread, Worker::Process] {
            // SAFETY: each body here only returns a constant.
            let r = unsafe { kind.run_pair(Placement::Unpinned, || 0, || Ok(7)) };
            assert_eq!(r.expect("a clean pair"), 7, "{kind:?}");
            // SAFETY: as above.
            let err = unsafe { kind.run_pair(Placement::Unpinned, || 3, || Ok(())) }
                .expect_err("a partner's nonzero code is an error");
            assert!(err.to_string().contains("partner"), "{kind:?}: {err}");
            // SAFETY: as above.
            let err = unsafe {
                kind.run_pair(
                    Placement::Unpinned,
                    || 0,
                    || -> Result<()> { bail!("main broke") },
                )
            }
            .expect_err("main's error wins");
            assert_eq!(err.to_string(), "main broke");
        }
    }

    #[test]
    #[cfg_attr(not(target_os = "linux"), ignore)]
    fn a_pinned_pair_puts_each_side_on_its_cpu_and_restores_main() {
        let cpus = measure::allowed_cpus();
        let (a, b) = (cpus[0], *cpus.last().expect("one CPU at least"));
        let before = measure::allowed_cpus();
        // SAFETY: a thread partner: its body is not forked, so it may allocate.
        let seen = unsafe {
            Worker::Thread.run_pair(
                Placement::CrossCpu(a, b),
                move || {
                    if measure::allowed_cpus() == vec![b] {
                        0
                    } else {
                        1
                    }
                },
                || Ok(measure::allowed_cpus()),
            )
        }
        .expect("the partner ran on its CPU");
        assert_eq!(seen, vec![a]);
        assert_eq!(measure::allowed_cpus(), before);
    }
}

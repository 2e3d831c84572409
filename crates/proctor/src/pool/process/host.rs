//! Where a worker process lives, and the one interface the driver reaches it through: send
//! it job frames, signal it, learn how it ended. Two flavors, as crossbeam-channel's
//! `Sender` hides its `array`/`list`/`zero` flavors behind one type:
//!
//! * [`Local`] — a process the fork server forked on this host: a real pid, signalled and
//!   reaped by the server (see `crate::server`), and a request pipe;
//! * [`Remote`] — a process an agent started on another host: its connection
//!   ([`Gen`]), which carries the jobs, through whose agent it is signalled, and which
//!   keeps the end the agent reports (or the host's loss decides).
//!
//! A remote worker needs no pid on this host: its end reaches the driver through its own
//! flavor, announced on the pool's doorbell as the fork server announces a local one's.
//! What remains remote-only (a lost host, the agent's word on a timeout, jobs sent before
//! a loss) answers "nothing" for a local worker, so the driver asks without caring where.

use std::fs::File;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::Signal;

use crate::remote::hub::Gen;
use crate::server::{Exit, ForkServer};

/// Where a worker process lives.
#[derive(Debug)]
pub(super) enum Host {
    /// Forked by the fork server, on this host.
    Local(Local),
    /// Started by an agent, on another host.
    Remote(Remote),
}

/// A worker process on this host.
#[derive(Debug)]
pub(super) struct Local {
    pid: i32,
    server: &'static ForkServer,
    /// Job frames to the worker; `None` once closed.
    requests: Option<File>,
}

/// A worker process on another host: dropping it closes the worker's connection, so a
/// worker being recycled sees the end of its jobs.
#[derive(Debug)]
pub(super) struct Remote(Arc<Gen>);

impl Drop for Remote {
    fn drop(&mut self) {
        self.0.close();
    }
}

impl Host {
    /// A worker the fork server forked as `pid`, its jobs going down `requests`.
    pub(super) fn local(server: &'static ForkServer, pid: i32, requests: File) -> Host {
        Host::Local(Local {
            pid,
            server,
            requests: Some(requests),
        })
    }

    /// A worker an agent started, reached through `conn`.
    pub(super) fn remote(conn: Arc<Gen>) -> Host {
        Host::Remote(Remote(conn))
    }

    /// Writes all of `bytes` (job frames, calls) to the worker.
    pub(super) fn send(&self, bytes: &[u8]) -> std::io::Result<()> {
        match self {
            Host::Local(l) => match &l.requests {
                Some(f) => (&*f).write_all(bytes),
                None => Err(std::io::ErrorKind::BrokenPipe.into()),
            },
            Host::Remote(r) => r.0.send(bytes),
        }
    }

    /// Says no more jobs will come: the worker sees the end of its requests and exits by
    /// itself once its output is flushed.
    pub(super) fn close(&mut self) {
        match self {
            Host::Local(l) => drop(l.requests.take()),
            Host::Remote(r) => r.0.close(),
        }
    }

    /// Sends `signal` to the worker's process group (the worker and its children).
    pub(super) fn kill(&self, signal: Signal) {
        match self {
            Host::Local(l) => l.server.kill(l.pid, signal),
            Host::Remote(r) => r.0.kill(signal),
        }
    }

    /// How the worker ended, if it did (without waiting). Each end is handed over once.
    pub(super) fn try_exit(&self) -> Option<Exit> {
        match self {
            Host::Local(l) => l.server.try_exit(l.pid),
            Host::Remote(r) => r.0.try_exit(),
        }
    }

    /// Waits up to `timeout` for the worker's end; returns how it ended.
    pub(super) fn wait_exit(&self, timeout: Duration) -> Option<Exit> {
        match self {
            Host::Local(l) => l.server.wait_exit(l.pid, timeout),
            Host::Remote(r) => r.0.wait_exit(timeout),
        }
    }

    /// How the worker ends no longer matters: the fork server drops a local worker's end
    /// when it comes (a remote one's goes with its connection).
    pub(super) fn forget(&self) {
        match self {
            Host::Local(l) => l.server.forget(l.pid),
            Host::Remote(_) => {}
        }
    }

    /// The worker's pid on its own host.
    pub(super) fn pid(&self) -> u32 {
        match self {
            Host::Local(l) => l.pid as u32,
            Host::Remote(r) => r.0.host_pid,
        }
    }

    /// Whether the worker runs on another host: it shares no memory with this process (no
    /// inbox; its arena is a mirror of what its connection carried), its agent keeps its
    /// tasks' timeouts, and its readiness travels in its exit code, not on its stderr.
    pub(super) fn is_remote(&self) -> bool {
        matches!(self, Host::Remote(_))
    }

    /// A remote worker's connection (to wait on while the pool sleeps).
    pub(super) fn conn(&self) -> Option<&Arc<Gen>> {
        match self {
            Host::Local(_) => None,
            Host::Remote(r) => Some(&r.0),
        }
    }

    /// Copies what a remote worker sent so far into its mirror arena, without waiting (a
    /// local worker writes its arena itself).
    pub(super) fn pump(&self) {
        if let Host::Remote(r) = self {
            r.0.pump();
        }
    }

    /// Job `seq` is about to leave for the worker: counted before it leaves, so that a job
    /// that may have reached a host before the host was lost is blamed on the loss, never
    /// silently run twice.
    pub(super) fn sending(&self, seq: u64) {
        if let Host::Remote(r) = self {
            r.0.sending(seq);
        }
    }

    /// Whether job `seq` left before the worker's host was lost (so may have run there).
    pub(super) fn sent_before_loss(&self, seq: u64) -> bool {
        match self {
            Host::Local(_) => false,
            Host::Remote(r) => r.0.sent_before_loss(seq),
        }
    }

    /// How long its task ran, when the worker's agent killed it for overrunning the task
    /// timeout (a local worker's timeouts are the driver's own).
    pub(super) fn timed_out(&self) -> Option<Duration> {
        match self {
            Host::Local(_) => None,
            Host::Remote(r) => r.0.timed_out(),
        }
    }

    /// The host of a remote worker that was lost, and why.
    pub(super) fn lost(&self) -> Option<(String, String)> {
        match self {
            Host::Local(_) => None,
            Host::Remote(r) => r.0.lost(),
        }
    }
}

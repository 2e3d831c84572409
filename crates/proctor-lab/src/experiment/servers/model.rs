//! The three server models, each started as its own child process on a loopback port.
//!
//! The lab binds the listening socket (127.0.0.1, port 0, backlog 4 096) and forks; the child
//! closes every other descriptor it inherited, moves into a process group of its own and dies
//! with the lab (`PR_SET_PDEATHSIG`). Then:
//!
//! - **prefork**: the child is the master. It forks W worker processes that each `accept` on
//!   the shared socket and serve one connection at a time, and `waitpid`s: a worker that died
//!   (a crash) or left (recycled after its request budget, like Apache's
//!   `MaxConnectionsPerChild` or Gunicorn's `max_requests`) is forked again in its slot. On
//!   SIGTERM the master kills and reaps its workers, then exits.
//! - **threaded**: W threads in the child, each `accept`ing on the socket and serving one
//!   connection at a time (Apache's worker MPM, a thread per connection).
//! - **async**: a tokio runtime with N worker threads; one task accepts, one task per
//!   connection.
//!
//! The child is forked from the lab, which has threads. After `fork` only the forking thread
//! exists, and any lock another thread held stays locked forever; the child here allocates and
//! starts threads, so it relies on glibc's `fork` handlers, which take and reset malloc's arena
//! locks around the fork, and touches no other lock the lab's threads could hold (no stdout,
//! no environment, no lab state): it builds its own listener, threads and runtime from
//! nothing. The prefork workers are forked from the single-threaded master.

use std::net::TcpListener;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use nix::sys::resource::{Resource, getrlimit, setrlimit};
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid, fork};
use serde::Serialize;

use super::http::{serve_async, serve_blocking};
use crate::shared_mem::{SharedMem, die_with_parent};

/// How a server dispatches connections to its workers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Model {
    Prefork,
    Threaded,
    Async,
}

impl Model {
    pub(crate) const ALL: [Model; 3] = [Model::Prefork, Model::Threaded, Model::Async];

    pub(crate) fn key(self) -> &'static str {
        match self {
            Model::Prefork => "prefork",
            Model::Threaded => "threaded",
            Model::Async => "async",
        }
    }
}

/// What to start.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Spec {
    pub model: Model,
    /// Worker processes (prefork), threads (threaded) or runtime worker threads (async).
    pub workers: usize,
    /// The calibrated iteration count of the `/cpu` hashing.
    pub cpu_iters: u64,
    /// Prefork only: a worker leaves after this many requests and the master forks a fresh
    /// one (`None`: never).
    pub recycle_after: Option<u64>,
}

/// Counters the server's processes share with the lab (a `MAP_SHARED` page).
#[derive(Debug, Default)]
pub(crate) struct Counters {
    /// Replies written.
    pub served: AtomicU64,
    /// Prefork: workers forked again after one died or left.
    pub restarts: AtomicU64,
    /// Prefork: of those, workers that were killed by a signal.
    pub crashed: AtomicU64,
}

/// A running server: its child process, port and counters. Dropping it stops the server and
/// reaps every process it started (SIGTERM, then SIGKILL to its process group).
#[derive(Debug)]
pub(crate) struct Server {
    pub pid: Pid,
    pub port: u16,
    pub counters: SharedMem<Counters>,
    reaped: bool,
}

/// Set by the prefork master's SIGTERM handler.
static TERMINATE: AtomicBool = AtomicBool::new(false);

extern "C" fn on_terminate(_: libc::c_int) {
    TERMINATE.store(true, Ordering::SeqCst);
}

impl Server {
    pub(crate) fn start(spec: Spec) -> Result<Server> {
        let listener = TcpListener::bind("127.0.0.1:0").context("bind a loopback port")?;
        let port = listener.local_addr().context("local address")?.port();
        // A second listen(2) on a listening socket sets its backlog: room for every client of
        // the largest cell to connect at once.
        let backlog = nix::sys::socket::Backlog::new(4096).context("backlog")?;
        nix::sys::socket::listen(&listener, backlog).context("listen")?;
        let counters = SharedMem::new(Counters::default()).context("map the counters")?;
        let lab = std::process::id() as libc::pid_t;
        // SAFETY: the child only runs `run_child`, which never returns (it `_exit`s); what it
        // may do in a copy of a multi-threaded process is discussed in the module docs: its
        // own fresh objects, and malloc, which glibc's fork handlers keep usable.
        match unsafe { fork() }.context("fork a server")? {
            ForkResult::Child => run_child(spec, listener, &counters, lab),
            ForkResult::Parent { child } => {
                // Both sides set the group, so it is in place whichever runs first.
                let _ = nix::unistd::setpgid(child, child);
                Ok(Server {
                    pid: child,
                    port,
                    counters,
                    reaped: false,
                })
            }
        }
    }

    /// Whether the server's first process is still running (not exited, not a zombie).
    pub(crate) fn is_running(&mut self) -> bool {
        if self.reaped {
            return false;
        }
        match waitpid(self.pid, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) => true,
            _ => {
                self.reaped = true;
                false
            }
        }
    }

    /// Every process of the server: the first one and its children.
    pub(crate) fn pids(&self) -> Vec<i32> {
        let mut pids = vec![self.pid.as_raw()];
        let children = format!("/proc/{0}/task/{0}/children", self.pid.as_raw());
        if let Ok(list) = std::fs::read_to_string(children) {
            pids.extend(
                list.split_whitespace()
                    .filter_map(|p| p.parse::<i32>().ok()),
            );
        }
        pids
    }

    /// Stops the server and reaps it; its workers are reaped by its master first.
    pub(crate) fn stop(&mut self) {
        if self.reaped {
            let _ = kill(Pid::from_raw(-self.pid.as_raw()), Signal::SIGKILL);
            return;
        }
        let _ = kill(self.pid, Signal::SIGTERM);
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(2) {
            if !self.is_running() {
                return;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        let _ = kill(Pid::from_raw(-self.pid.as_raw()), Signal::SIGKILL);
        let _ = waitpid(self.pid, None);
        self.reaped = true;
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Whether any process of process group `pgid` still exists.
pub(crate) fn group_exists(pgid: Pid) -> bool {
    kill(Pid::from_raw(-pgid.as_raw()), None).is_ok()
}

/// The server child: never returns.
fn run_child(spec: Spec, listener: TcpListener, counters: &Counters, lab: libc::pid_t) -> ! {
    die_with_parent(lab);
    // SAFETY: the counters live in a shared mapping that this process never unmaps: it leaves
    // with `_exit`, so the `SharedMem` copied into it is never dropped here.
    let counters: &'static Counters = unsafe { &*(counters as *const Counters) };
    let _ = nix::unistd::setpgid(Pid::from_raw(0), Pid::from_raw(0));
    let fd = listener.as_raw_fd() as libc::c_uint;
    // SAFETY: close_range takes no pointers; it closes every descriptor this copy of the lab
    // inherited except stdin/out/err and the listener, so that no pipe or socket of the lab
    // stays open here while the server runs.
    unsafe {
        libc::close_range(3, fd - 1, 0);
        libc::close_range(fd + 1, libc::c_uint::MAX, 0);
    }
    // A deliberate crash needs no core file: writing one would only slow the recovery down.
    if let Ok((_, hard)) = getrlimit(Resource::RLIMIT_CORE) {
        let _ = setrlimit(Resource::RLIMIT_CORE, 0, hard);
    }
    match spec.model {
        Model::Prefork => prefork_master(spec, listener, counters),
        Model::Threaded => {
            let listener = Arc::new(listener);
            for _ in 0..spec.workers {
                let listener = Arc::clone(&listener);
                let _ = std::thread::Builder::new().spawn(move || {
                    while let Ok((stream, _)) = listener.accept() {
                        serve_blocking(stream, spec.cpu_iters, None, &counters.served);
                    }
                });
            }
            park_forever()
        }
        Model::Async => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(spec.workers.max(1))
                .enable_all()
                .build();
            if let Ok(runtime) = runtime
                && listener.set_nonblocking(true).is_ok()
            {
                runtime.block_on(async move {
                    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                        return;
                    };
                    while let Ok((stream, _)) = listener.accept().await {
                        tokio::spawn(async move {
                            serve_async(stream, spec.cpu_iters, &counters.served).await;
                        });
                    }
                });
            }
            exit(1)
        }
    }
}

fn park_forever() -> ! {
    loop {
        std::thread::park();
    }
}

fn exit(code: i32) -> ! {
    // SAFETY: `_exit` ends the process at once, without running the lab's destructors or
    // atexit handlers in this copy of it.
    unsafe { libc::_exit(code) }
}

/// The prefork master: forks the workers, forks again any that ends, and on SIGTERM kills and
/// reaps them all.
fn prefork_master(spec: Spec, listener: TcpListener, counters: &Counters) -> ! {
    use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, sigaction};
    // No SA_RESTART: the signal interrupts the master's waitpid.
    let action = SigAction::new(
        SigHandler::Handler(on_terminate),
        SaFlags::empty(),
        SigSet::empty(),
    );
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    let _ = unsafe { sigaction(Signal::SIGTERM, &action) };
    let master = std::process::id() as libc::pid_t;
    let mut slots: Vec<Option<Pid>> = vec![None; spec.workers.max(1)];
    for slot in slots.iter_mut() {
        *slot = fork_worker(spec, &listener, counters, master);
    }
    loop {
        if TERMINATE.load(Ordering::SeqCst) {
            for pid in slots.iter().flatten() {
                let _ = kill(*pid, Signal::SIGKILL);
            }
            for pid in slots.iter().flatten() {
                let _ = waitpid(*pid, None);
            }
            exit(0);
        }
        let (pid, crashed) = match waitpid(None, None) {
            Ok(WaitStatus::Exited(pid, _)) => (pid, false),
            Ok(WaitStatus::Signaled(pid, ..)) => (pid, true),
            Ok(_) => continue,
            Err(nix::errno::Errno::ECHILD) => {
                // Every fork failed: try again shortly rather than spin.
                std::thread::sleep(Duration::from_millis(10));
                (Pid::from_raw(0), false)
            }
            Err(_) => continue,
        };
        if TERMINATE.load(Ordering::SeqCst) {
            continue;
        }
        for slot in slots.iter_mut() {
            if slot.is_none() || *slot == Some(pid) {
                if *slot == Some(pid) {
                    counters.restarts.fetch_add(1, Ordering::Relaxed);
                    if crashed {
                        counters.crashed.fetch_add(1, Ordering::Relaxed);
                    }
                }
                *slot = fork_worker(spec, &listener, counters, master);
            }
        }
    }
}

/// Forks one prefork worker: accept, serve the connection, repeat; with a request budget, it
/// leaves once the budget is spent.
fn fork_worker(
    spec: Spec,
    listener: &TcpListener,
    counters: &Counters,
    master: libc::pid_t,
) -> Option<Pid> {
    // SAFETY: the master is single-threaded, so the child is a whole copy of it.
    match unsafe { fork() } {
        Ok(ForkResult::Parent { child }) => Some(child),
        Ok(ForkResult::Child) => {
            die_with_parent(master);
            let default = nix::sys::signal::SigAction::new(
                nix::sys::signal::SigHandler::SigDfl,
                nix::sys::signal::SaFlags::empty(),
                nix::sys::signal::SigSet::empty(),
            );
            // SAFETY: restoring the default action installs no handler.
            let _ = unsafe { nix::sys::signal::sigaction(Signal::SIGTERM, &default) };
            let mut left = spec.recycle_after;
            while let Ok((stream, _)) = listener.accept() {
                let served = serve_blocking(stream, spec.cpu_iters, left, &counters.served);
                if let Some(l) = left.as_mut() {
                    *l = l.saturating_sub(served);
                    if *l == 0 {
                        exit(0);
                    }
                }
            }
            exit(1)
        }
        Err(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    /// One request on a fresh connection: the reply's status line, or `None` if the connection
    /// failed or closed first.
    fn get(port: u16, path: &str) -> Option<String> {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
            .ok()?;
        let mut buf = [0u8; 512];
        let n = s.read(&mut buf).ok()?;
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        (n > 0).then(|| text.lines().next().unwrap_or_default().to_string())
    }

    fn spec(model: Model) -> Spec {
        Spec {
            model,
            workers: 2,
            cpu_iters: 10,
            recycle_after: None,
        }
    }

    /// Waits (bounded) until `f` holds.
    fn eventually(mut f: impl FnMut() -> bool) -> bool {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(5) {
            if f() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        false
    }

    #[test]
    fn a_prefork_master_forks_a_crashed_worker_again_and_reaps_all_when_stopped() {
        let mut server = Server::start(spec(Model::Prefork)).expect("start");
        assert!(eventually(|| get(server.port, "/cpu").is_some()), "serves");
        assert!(
            eventually(|| server.pids().len() == 3),
            "a master and two workers"
        );
        let workers: Vec<i32> = server.pids()[1..].to_vec();
        assert_eq!(
            get(server.port, "/crash"),
            None,
            "the crashing request gets no reply"
        );
        assert!(eventually(|| server
            .counters
            .crashed
            .load(Ordering::Relaxed)
            == 1));
        assert_eq!(
            get(server.port, "/nope").as_deref(),
            Some("HTTP/1.1 404 Not Found")
        );
        assert!(server.is_running(), "the master survived");
        assert!(
            eventually(|| server.pids().len() == 3),
            "the slot was filled again"
        );
        let pgid = server.pid;
        drop(server);
        assert!(!group_exists(pgid), "master and workers are gone");
        for w in workers {
            assert!(
                !std::path::Path::new(&format!("/proc/{w}")).exists(),
                "worker {w}"
            );
        }
    }

    #[test]
    fn a_crash_takes_the_whole_threaded_server_down() {
        let mut server = Server::start(spec(Model::Threaded)).expect("start");
        assert!(eventually(|| get(server.port, "/cpu").is_some()), "serves");
        assert_eq!(get(server.port, "/crash"), None);
        assert!(eventually(|| !server.is_running()), "the process died");
        assert_eq!(get(server.port, "/cpu"), None, "nothing serves any more");
    }
}

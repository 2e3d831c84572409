//! The fork server: a small process forked by [`crate::init`] while the program is still
//! single-threaded, which forks every worker process on request.
//!
//! Why: `fork` in a multi-threaded process copies only the calling thread, so a lock held
//! by another thread at that instant (the allocator's, stdout's) stays locked forever in the
//! child. Forking workers from a process that never has more than one thread avoids that
//! hazard, and is fast (the server's address space is small and stays so).
//!
//! Protocol: a `SOCK_SEQPACKET` socketpair between parent and server carries fixed 25-byte
//! messages `[tag: u8][a: u64][b: u64][c: u64]` (little-endian):
//!
//! | tag | direction | meaning |
//! |---|---|---|
//! | SPAWN | parent → server | fork a worker; `a` = token, `b` = memory limit (0 = none), `c` = 1 to re-execute the binary as the worker (the `exec` start method); the worker's request pipe, the pool's doorbell memfd, stderr pipe, arena and inbox memfds (and, capturing output, its stdout and stderr memfds) travel as `SCM_RIGHTS` |
//! | KILL | parent → server | send signal `b` to the process group of worker `a` |
//! | SPAWNED | server → parent | token `a` became worker pid `b` (or failed with errno `c` when `b` = 0) |
//! | EXITED | server → parent | worker `a` ended: `b` = 0 exit code `c`, `b` = 1 killed by signal `c` |
//!
//! Lifetimes: each worker leads its own process group; when a worker dies the server kills
//! the rest of its group (its own children) before reaping it, so a task's child processes
//! die with it. The server is a child subreaper, so orphaned grandchildren are reaped too and
//! no zombie is left. Workers set `PR_SET_PDEATHSIG(SIGKILL)`; their parent is the server's
//! only thread, so it fires when the server dies. The server in turn sees EOF on its control
//! socket the moment the parent process dies (however it died), kills every worker group and
//! exits.
//!
//! This file is the parent's side (the [`ForkServer`] client and the process-wide cell that
//! holds it); `process.rs` is the server process itself. The pool and the remote hub import
//! [`ForkServer`], [`Exit`] and [`shared`]; nothing here imports the pool.

use std::collections::{HashMap, HashSet};
use std::io::IoSlice;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::Signal;
use nix::sys::socket::{ControlMessage, MsgFlags, sendmsg};
use nix::unistd::{ForkResult, fork};

mod process;
use process::server_main;

const SPAWN: u8 = 1;
const KILL: u8 = 2;
const SPAWNED: u8 = 3;
const EXITED: u8 = 4;
const MSG_LEN: usize = 25;

type Msg = [u8; MSG_LEN];

fn encode(tag: u8, a: u64, b: u64, c: u64) -> Msg {
    let mut m = [0u8; MSG_LEN];
    m[0] = tag;
    m[1..9].copy_from_slice(&a.to_le_bytes());
    m[9..17].copy_from_slice(&b.to_le_bytes());
    m[17..25].copy_from_slice(&c.to_le_bytes());
    m
}

fn decode(m: &Msg) -> (u8, u64, u64, u64) {
    let w = |o: usize| u64::from_le_bytes(m[o..o + 8].try_into().expect("8 bytes"));
    (m[0], w(1), w(9), w(17))
}

/// How a worker process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Exit {
    /// The exit status: the low 8 bits of what the worker passed to `exit`.
    Code(u8),
    Signal(i32),
}

/// The parent's handle on the fork server.
#[derive(Debug)]
pub(crate) struct ForkServer {
    ctrl: OwnedFd,
    /// Mixed into every job frame, so a corrupt frame cannot name a bogus entry point.
    pub(crate) secret: u64,
    state: Mutex<ClientState>,
    cond: Condvar,
    reader: OnceLock<()>,
    /// The pools' doorbells, rung whenever a worker ends (so a pool's driver, asleep on its
    /// doorbell, learns of the death at once).
    bells: Mutex<Vec<std::sync::Weak<crate::doorbell::Doorbell>>>,
    /// Counts worker ends: a driver looks for dead workers only when it moved.
    deaths: std::sync::atomic::AtomicU64,
}

#[derive(Debug, Default)]
struct ClientState {
    next_token: u64,
    spawned: HashMap<u64, Result<i32, Errno>>,
    exited: HashMap<i32, Exit>,
    forgotten: HashSet<i32>,
    dead: bool,
}

impl ForkServer {
    /// Forks the server. Must run while this process has a single thread.
    pub(crate) fn start(secret: u64) -> Result<ForkServer, String> {
        let (parent_end, server_end) = crate::sys::seqpacket_pair("the fork server's socket")?;
        // SAFETY: the caller guarantees this process is single-threaded (init checks
        // /proc/self/task), so the child is a complete copy and may run any code.
        match unsafe { fork() } {
            Ok(ForkResult::Child) => {
                drop(parent_end);
                server_main(server_end, secret)
            }
            Ok(ForkResult::Parent { .. }) => {
                drop(server_end);
                Ok(ForkServer {
                    ctrl: parent_end,
                    secret,
                    state: Mutex::new(ClientState::default()),
                    cond: Condvar::new(),
                    reader: OnceLock::new(),
                    bells: Mutex::new(Vec::new()),
                    deaths: std::sync::atomic::AtomicU64::new(0),
                })
            }
            Err(e) => Err(format!("could not fork the fork server: {e}")),
        }
    }

    /// Starts the thread that reads the server's replies (lazily: `init` may run before
    /// `main`, where starting threads is unwise).
    fn ensure_reader(&'static self) {
        self.reader.get_or_init(|| {
            std::thread::Builder::new()
                .name("proctor-fork-server".into())
                .spawn(move || self.read_loop())
                .expect("spawning the fork server reader thread");
        });
    }

    fn read_loop(&self) {
        let mut m = [0u8; MSG_LEN];
        loop {
            let n = match nix::unistd::read(&self.ctrl, &mut m) {
                Ok(n) => n,
                Err(Errno::EINTR) => continue,
                Err(_) => 0,
            };
            let mut st = self.state.lock().expect("fork server state poisoned");
            if n != MSG_LEN {
                st.dead = true;
                // Every worker died with the server (PR_SET_PDEATHSIG): count that as news,
                // so each pool's driver looks for its dead workers and buries their jobs.
                self.deaths
                    .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                self.cond.notify_all();
                drop(st);
                self.ring_all();
                return;
            }
            match decode(&m) {
                (SPAWNED, token, pid, errno) => {
                    let r = if pid == 0 {
                        Err(Errno::from_raw(errno as i32))
                    } else {
                        Ok(pid as i32)
                    };
                    st.spawned.insert(token, r);
                }
                (EXITED, pid, kind, value) => {
                    let pid = pid as i32;
                    let exit = if kind == 0 {
                        Exit::Code(value as u8)
                    } else {
                        Exit::Signal(value as i32)
                    };
                    if !st.forgotten.remove(&pid) {
                        st.exited.insert(pid, exit);
                        self.deaths
                            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        self.cond.notify_all();
                        drop(st);
                        self.ring_all();
                        continue;
                    }
                }
                _ => {}
            }
            self.cond.notify_all();
        }
    }

    fn ring_all(&self) {
        let mut bells = self.bells.lock().expect("doorbells poisoned");
        bells.retain(|b| match b.upgrade() {
            Some(bell) => {
                bell.ring();
                true
            }
            None => false,
        });
    }

    /// Rings `bell` whenever a worker ends, for as long as it lives.
    pub(crate) fn register(&'static self, bell: &std::sync::Arc<crate::doorbell::Doorbell>) {
        self.ensure_reader();
        self.bells
            .lock()
            .expect("doorbells poisoned")
            .push(std::sync::Arc::downgrade(bell));
    }

    /// How many worker ends were reported so far.
    pub(crate) fn deaths(&self) -> u64 {
        self.deaths.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// How worker `pid` ended, if it did (without waiting).
    pub(crate) fn try_exit(&self, pid: i32) -> Option<Exit> {
        let mut st = self.state.lock().expect("fork server state poisoned");
        let exit = st.exited.remove(&pid);
        if exit.is_none() && st.dead {
            // The server is gone, and its workers with it (PR_SET_PDEATHSIG).
            return Some(Exit::Signal(libc::SIGKILL));
        }
        exit
    }

    /// Asks the server for a worker that will use `fds` (request pipe, doorbell, stderr,
    /// arena, inbox, and with output capture its stdout and stderr memfds).
    pub(crate) fn spawn(
        &'static self,
        memory_limit: Option<u64>,
        exec: bool,
        fds: &[RawFd],
    ) -> std::io::Result<i32> {
        self.ensure_reader();
        let token = {
            let mut st = self.state.lock().expect("fork server state poisoned");
            if st.dead {
                return Err(std::io::Error::other("the fork server is gone"));
            }
            st.next_token += 1;
            st.next_token
        };
        let msg = encode(SPAWN, token, memory_limit.unwrap_or(0), u64::from(exec));
        let cmsg = [ControlMessage::ScmRights(fds)];
        sendmsg::<()>(
            self.ctrl.as_raw_fd(),
            &[IoSlice::new(&msg)],
            &cmsg,
            MsgFlags::empty(),
            None,
        )?;
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut st = self.state.lock().expect("fork server state poisoned");
        loop {
            if let Some(r) = st.spawned.remove(&token) {
                return r.map_err(std::io::Error::from);
            }
            if st.dead {
                return Err(std::io::Error::other("the fork server is gone"));
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(std::io::Error::other(
                    "the fork server did not answer within 10s",
                ));
            }
            st = self
                .cond
                .wait_timeout(st, deadline - now)
                .expect("poisoned")
                .0;
        }
    }

    /// Sends `sig` to worker `pid`'s process group (the worker and its children).
    pub(crate) fn kill(&self, pid: i32, sig: Signal) {
        let msg = encode(KILL, pid as u64, sig as i32 as u64, 0);
        let _ = nix::unistd::write(&self.ctrl, &msg);
    }

    /// Waits up to `timeout` for worker `pid` to be reaped; returns how it ended.
    pub(crate) fn wait_exit(&self, pid: i32, timeout: Duration) -> Option<Exit> {
        let deadline = Instant::now() + timeout;
        let mut st = self.state.lock().expect("fork server state poisoned");
        loop {
            if let Some(e) = st.exited.remove(&pid) {
                return Some(e);
            }
            let now = Instant::now();
            if st.dead || now >= deadline {
                return None;
            }
            st = self
                .cond
                .wait_timeout(st, deadline - now)
                .expect("poisoned")
                .0;
        }
    }

    /// We no longer care how `pid` ends; drop its status when it arrives.
    pub(crate) fn forget(&self, pid: i32) {
        let mut st = self.state.lock().expect("fork server state poisoned");
        if st.exited.remove(&pid).is_none() {
            st.forgotten.insert(pid);
        }
    }
}

/// The fork server of this process, or why there is none: set once, by [`start_once`].
static SHARED: OnceLock<Result<ForkServer, String>> = OnceLock::new();

/// Starts this process's fork server unless one was started (or refused) before. It must run
/// while the process has a single thread; if it has more, the refusal is kept and every
/// process pool built later says why.
pub(crate) fn start_once() {
    SHARED.get_or_init(|| {
        match crate::sys::thread_count() {
            Some(1) => {}
            Some(n) => {
                return Err(format!(
                    "proctor::init() ran after {n} threads had started, when forking is no \
                     longer safe"
                ));
            }
            None => {
                return Err(
                    "/proc/self/task is unreadable, so forking safely cannot be checked".into(),
                );
            }
        }
        ForkServer::start(random_secret())
    });
}

/// This process's fork server, if [`start_once`] started one.
pub(crate) fn shared() -> Result<&'static ForkServer, crate::Error> {
    use crate::{Error, ErrorKind};
    if crate::worker::in_worker() {
        return Err(Error::new(ErrorKind::NotInitialized {
            reason: "this task runs inside a proctor worker process, where process pools \
                     cannot be nested (use Pool::threads inside a task)"
                .into(),
        }));
    }
    match SHARED.get() {
        Some(Ok(s)) => Ok(s),
        Some(Err(reason)) => Err(Error::new(ErrorKind::NotInitialized {
            reason: reason.clone(),
        })),
        None => Err(Error::new(ErrorKind::NotInitialized {
            reason: "proctor::init() was not called".into(),
        })),
    }
}

/// A random 64-bit value from std's randomly seeded hasher (no extra dependency needed).
fn random_secret() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(std::process::id() as u64);
    h.finish() | 1
}

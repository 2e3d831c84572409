//! The agent: what a program started by a launcher on another host becomes in
//! [`crate::init`]. It is that host's supervisor for the pool's workers there: it connects
//! back, proves it holds the pool's secret, checks that it runs the pool's build, then starts
//! a worker whenever the pool asks, watches it (its exit status, its stderr, the task
//! timeout) and reports how it ended, with what its arena held, so that a remote crash is
//! as well described as a local one.
//!
//! The worker itself is forked from the agent (which has one thread: it runs before `main`)
//! and talks to the pool over its own authenticated connection, so a job's round trip is one
//! hop each way; the agent is off that path. The agent leaves — killing its workers' process
//! groups — when the pool closes the control connection or stays silent past the lost-after
//! time: nothing it started outlives the pool.
//!
//! Its files: this one — the agent itself (what turns a program into one, its connection
//! to the pool, its loop over the pool's requests and its children's ends); `secret.rs` —
//! taking the pool's secret from the environment or stdin and scrubbing it from the
//! environment block; `spawner.rs` — the process the workers are forked from, which never
//! holds the secret, and the worker's own start. What the rest of the crate imports is
//! here ([`become_agent_if_asked`] and the environment variables' names).

use std::fs::File;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::fd::{AsFd, AsRawFd};
use std::time::{Duration, Instant};

use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::sys::signal::{Signal, killpg};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{Pid, setpgid};

use super::conn::Conn;
use super::proto::{self, Claim, FromAgent, Hi, KEY_LEN, Report, ToAgent, Token};
use crate::arena;
use crate::exit::ExitCode;
use crate::sys::{Seals, SharedMapping};

mod secret;
mod spawner;

use secret::{Credentials, credentials, take_secret_var};
use spawner::{SpawnRequest, Spawner};

/// The environment variable that makes a started program an agent: the pool's address.
pub(crate) const ADDR_VAR: &str = "PROCTOR_REMOTE_AGENT";

/// The agent's worker slot (else `SLURM_PROCID`, for agents started by `srun`).
pub(crate) const SLOT_VAR: &str = "PROCTOR_REMOTE_SLOT";

/// The pool's secret in hex (else the first line of stdin): never on a command line.
pub(crate) const SECRET_VAR: &str = "PROCTOR_REMOTE_SECRET";

/// How long an agent keeps trying to reach the pool (its launcher may be quicker than the
/// pool's listener is reachable through a cluster's network).
const CONNECT_WAIT: Duration = Duration::from_secs(10);

/// Time between SIGTERM and SIGKILL for a worker that overran the task timeout.
const KILL_GRACE: Duration = Duration::from_millis(100);

/// How often the agent looks at a running worker when nothing else wakes it.
const WATCH: Duration = Duration::from_millis(10);

/// In [`crate::init`]: if a launcher started this process as an agent, becomes it and
/// never returns.
pub(crate) fn become_agent_if_asked() {
    let Some(addr) = std::env::var_os(ADDR_VAR) else {
        return;
    };
    let addr = addr.to_string_lossy().into_owned();
    let code = match run(&addr) {
        Ok(()) => ExitCode::Clean,
        Err(why) => {
            // The agent's stderr is its launcher's (ssh and srun carry it back to the pool,
            // which quotes it if the agent never connected).
            let line = format!("{}{why}\n", crate::exec::START_FAILED_LINE);
            let _ = nix::unistd::write(std::io::stderr(), line.as_bytes());
            ExitCode::StartFailed
        }
    };
    let _ = std::io::stdout().flush();
    // (Not `exit`: the agent never was the user's program, only its binary.)
    code.leave()
}

/// Connects to the pool and proves `claim` with `key` (the pool's secret for the agent, a
/// one-time worker key for a worker); keeps trying until [`CONNECT_WAIT`].
fn dial(
    addr: &str,
    key: &[u8; KEY_LEN],
    pin: Option<[u8; KEY_LEN]>,
    claim: &Claim,
    hi: &Hi,
) -> Result<Conn, String> {
    let deadline = Instant::now() + CONNECT_WAIT;
    let s = loop {
        let tried = addr
            .to_socket_addrs()
            .map_err(|e| e.to_string())
            .and_then(|mut a| a.next().ok_or_else(|| "no address".to_string()))
            .and_then(|a| TcpStream::connect_timeout(&a, CONNECT_WAIT).map_err(|e| e.to_string()));
        match tried {
            Ok(s) => break s,
            Err(e) if Instant::now() >= deadline => {
                return Err(format!("could not reach the pool at {addr}: {e}"));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    };
    let io = |e: std::io::Error| format!("the pool at {addr}: {e}");
    s.set_nodelay(true).map_err(io)?;
    s.set_read_timeout(Some(proto::HANDSHAKE_WAIT))
        .map_err(io)?;
    let mut conn = match pin {
        Some(pin) => Conn::client(s, pin).map_err(io)?,
        None => Conn::plain(s),
    };
    let keys = proto::connect_handshake(&mut conn, key, claim).map_err(io)?;
    conn.seal(&keys, false);
    proto::send(&mut conn, hi).map_err(io)?;
    conn.socket().set_read_timeout(None).map_err(io)?;
    Ok(conn)
}

/// One worker the agent started.
struct Child {
    token: Token,
    pid: Pid,
    stderr: File,
    arena: SharedMapping,
    timed_out_ns: Option<u64>,
    /// The job (by the header's RUN_SEQ) the clock was started for, and the clock: a task
    /// can write the header, so its start time is only believed within what the agent saw
    /// (see [`arena::StartClock`]).
    clock_run: u64,
    clock: arena::StartClock,
}

struct Agent {
    addr: String,
    slot: u32,
    spawner: Spawner,
    creds: Credentials,
    ctrl: Conn,
    hello: proto::Hello,
    children: Vec<Child>,
}

fn run(addr: &str) -> Result<(), String> {
    if crate::sys::thread_count() != Some(1) {
        return Err("proctor::init() must run before any thread starts, also in an agent".into());
    }
    let slot = std::env::var(SLOT_VAR)
        .or_else(|_| std::env::var("SLURM_PROCID"))
        .map_err(|_| format!("{SLOT_VAR} is unset (and this is not a Slurm task)"))?;
    let slot: u32 = slot
        .trim()
        .parse()
        .map_err(|_| format!("{SLOT_VAR} is not a number: {slot:?}"))?;
    let mut from_env = take_secret_var();
    // SAFETY: this process has one thread (checked above), so nothing reads the environment
    // while it changes; what the tasks start needs none of this.
    unsafe {
        std::env::remove_var(ADDR_VAR);
        std::env::remove_var(SLOT_VAR);
    }
    // Orphaned grandchildren of a worker come to us, to be reaped; so do the workers, whose
    // parent (the spawner's helper) leaves at once.
    let _ = nix::sys::prctl::set_child_subreaper(true);
    // Workers are forked from a process that never held the secret: forked now, before it
    // is parsed (or read from stdin), its one copy zeroed there first thing.
    let spawner = Spawner::start(&mut from_env)?;
    let creds = credentials(from_env)?;
    let host = nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_else(|_| "unknown".into());
    let hi = Hi::Agent {
        host,
        pid: std::process::id(),
    };
    let mut ctrl = dial(addr, &creds.secret, creds.pin, &Claim::Agent { slot }, &hi)?;
    let hello = match proto::recv::<ToAgent>(&mut ctrl, proto::MAX_TO_AGENT) {
        Ok(ToAgent::Hello(mut h)) => {
            h.frame_secret ^= ctrl.frame_mask();
            h
        }
        Ok(other) => return Err(format!("the pool began with {other:?}, not its hello")),
        Err(e) => return Err(format!("the pool sent no hello: {e}")),
    };
    if hello.identity != crate::image::identity() {
        let why = format!(
            "this program is another build than the pool's ({}, the pool runs {}), so \
             functions cannot be found by address",
            crate::image::identity(),
            hello.identity
        );
        let _ = proto::send(&mut ctrl, &FromAgent::Refused { why: why.clone() });
        return Err(why);
    }
    crate::image::relocate_from(hello.anchor);
    proto::send(&mut ctrl, &FromAgent::Ready).map_err(|e| e.to_string())?;
    let mut agent = Agent {
        addr: addr.to_string(),
        slot,
        spawner,
        creds,
        ctrl,
        hello,
        children: Vec::new(),
    };
    let r = agent.serve();
    agent.kill_all();
    agent.spawner.stop();
    r
}

impl Agent {
    fn heartbeat(&self) -> Duration {
        Duration::from_millis(self.hello.heartbeat_ms.max(1))
    }

    fn send(&mut self, msg: &FromAgent) -> Result<(), String> {
        proto::send(&mut self.ctrl, msg).map_err(|e| format!("the pool's connection: {e}"))
    }

    /// The agent's loop: until the pool closes the connection (Ok) or goes silent (Err).
    fn serve(&mut self) -> Result<(), String> {
        let lost_after = Duration::from_millis(self.hello.lost_after_ms.max(1));
        let mut heard = Instant::now();
        let mut said = Instant::now();
        loop {
            let wait = if self.children.is_empty() {
                self.heartbeat()
            } else {
                self.heartbeat().min(WATCH)
            };
            // Plaintext TLS already holds is not seen by poll: read it first.
            let (ctrl_ready, ready) = if self.ctrl.has_buffered() {
                (true, Vec::new())
            } else {
                self.poll(wait)
            };
            if ctrl_ready {
                match proto::recv::<ToAgent>(&mut self.ctrl, proto::MAX_TO_AGENT) {
                    Ok(msg) => {
                        heard = Instant::now();
                        self.obey(msg)?;
                    }
                    // The pool closed the connection: its workers go with it.
                    Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
                    Err(e) => return Err(format!("the pool's connection broke: {e}")),
                }
            }
            for k in ready {
                self.forward_stderr(k)?;
            }
            self.reap()?;
            self.enforce_timeout();
            if said.elapsed() >= self.heartbeat() {
                self.send(&FromAgent::Ping)?;
                said = Instant::now();
            }
            if heard.elapsed() >= lost_after {
                return Err(format!(
                    "the pool said nothing for {} ms: taken to be gone",
                    lost_after.as_millis()
                ));
            }
        }
    }

    /// Waits up to `wait` for the control connection or a worker's stderr; says which are
    /// readable.
    fn poll(&self, wait: Duration) -> (bool, Vec<usize>) {
        use nix::poll::{PollFd, PollFlags, PollTimeout};
        let mut fds = vec![PollFd::new(self.ctrl.socket().as_fd(), PollFlags::POLLIN)];
        fds.extend(
            self.children
                .iter()
                .map(|c| PollFd::new(c.stderr.as_fd(), PollFlags::POLLIN)),
        );
        let ms = u16::try_from(wait.as_millis().max(1)).unwrap_or(u16::MAX);
        if nix::poll::poll(&mut fds, PollTimeout::from(ms)).is_err() {
            return (false, Vec::new());
        }
        let hit = |f: &PollFd| f.revents().is_some_and(|r| !r.is_empty());
        let ready = fds[1..]
            .iter()
            .enumerate()
            .filter(|(_, f)| hit(f))
            .map(|(k, _)| k)
            .collect();
        (hit(&fds[0]), ready)
    }

    fn obey(&mut self, msg: ToAgent) -> Result<(), String> {
        match msg {
            ToAgent::Spawn { token } => match self.spawn(token) {
                Ok(pid) => self.send(&FromAgent::Spawned {
                    token,
                    pid: pid.as_raw() as u32,
                }),
                Err(why) => self.send(&FromAgent::SpawnFailed { token, why }),
            },
            ToAgent::Kill { token, signal } => {
                if let (Some(c), Ok(sig)) = (
                    self.children.iter().find(|c| c.token == token),
                    Signal::try_from(signal),
                ) {
                    let _ = killpg(c.pid, sig);
                }
                Ok(())
            }
            ToAgent::Ping => Ok(()),
            ToAgent::Hello(_) => Err("the pool said hello twice".into()),
        }
    }

    /// Starts a worker for spawn request `token`: its arena, its stderr pipe and its
    /// one-time key, handed to the spawner, which forks it; the worker opens its own
    /// connection to the pool.
    fn spawn(&mut self, token: Token) -> Result<Pid, String> {
        let io = |what: &str, e: std::io::Error| format!("could not {what}: {e}");
        let arena = arena::create().map_err(|e| io("create an arena", e))?;
        arena::set_timed(&arena, self.hello.task_timeout_ns.is_some());
        let inbox = SharedMapping::create("proctor-inbox", 4096, Seals::GrowOnly)
            .map_err(|e| io("create an inbox", e))?;
        let bell = crate::doorbell::Doorbell::new().map_err(|e| io("create a doorbell", e))?;
        let (err_r, err_w) =
            nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| io("create a pipe", e.into()))?;
        fcntl(err_r.as_fd(), FcntlArg::F_SETFL(OFlag::O_NONBLOCK))
            .map_err(|e| io("set up a pipe", e.into()))?;
        let request = SpawnRequest {
            addr: self.addr.clone(),
            slot: self.slot,
            token,
            // The worker's connection proves a key good for it alone, once: the worker
            // never needs the pool's secret.
            key: *proto::worker_key(&self.creds.secret, self.slot, &token),
            pin: self.creds.pin,
            anchor: self.hello.anchor,
            frame_secret: self.hello.frame_secret,
            memory_limit: self.hello.memory_limit,
            agent: Pid::this().as_raw(),
        };
        let fds = [bell.fd(), arena.fd(), inbox.fd(), err_w.as_raw_fd()];
        let child = self.spawner.spawn(request, &fds)?;
        drop(err_w);
        // From this side too, so a kill that comes before the worker's own call lands
        // (it fails if the worker is not ours yet; the worker makes the call itself).
        let _ = setpgid(child, child);
        self.children.push(Child {
            token,
            pid: child,
            stderr: File::from(err_r),
            arena,
            timed_out_ns: None,
            clock_run: 0,
            clock: arena::StartClock::new(crate::sys::monotonic_ns(), u64::MAX),
        });
        Ok(child)
    }

    /// Sends on what worker `k` wrote to its stderr.
    fn forward_stderr(&mut self, k: usize) -> Result<(), String> {
        let Some(c) = self.children.get_mut(k) else {
            return Ok(());
        };
        let token = c.token;
        let bytes = read_available(&mut c.stderr);
        if bytes.is_empty() {
            return Ok(());
        }
        self.send(&FromAgent::Stderr { token, bytes })
    }

    /// Reports every worker that ended.
    fn reap(&mut self) -> Result<(), String> {
        loop {
            let status = match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(_) => return Ok(()),
                Ok(s) => s,
            };
            let (pid, code, signal) = match status {
                WaitStatus::Exited(pid, code) => (pid, Some(code as u8), None),
                WaitStatus::Signaled(pid, sig, _) => (pid, None, Some(sig as i32)),
                _ => continue,
            };
            let Some(k) = self.children.iter().position(|c| c.pid == pid) else {
                // A grandchild that outlived its worker.
                continue;
            };
            let mut c = self.children.swap_remove(k);
            // What the worker left running goes with it, as with a local worker.
            let _ = killpg(c.pid, Signal::SIGKILL);
            let bytes = read_available(&mut c.stderr);
            if !bytes.is_empty() {
                self.send(&FromAgent::Stderr {
                    token: c.token,
                    bytes,
                })?;
            }
            let mut report = Report {
                token: c.token,
                signal,
                code,
                timed_out_ns: c.timed_out_ns,
                ..Report::default()
            };
            if arena::refresh(&mut c.arena, arena::MAX_LEN).is_ok() {
                let (run, done, p) = arena::remote_view(&c.arena);
                report.run_seq = run;
                report.done_seq = done;
                report.started = p.started;
                report.committed = p.committed;
                if run > 0 {
                    report.records = arena::records(&c.arena, &p).unwrap_or(&[]).to_vec();
                }
            }
            self.send(&FromAgent::Exited(report))?;
        }
    }

    /// Kills a worker whose task overran the pool's timeout, as the local driver does.
    fn enforce_timeout(&mut self) {
        let Some(limit) = self.hello.task_timeout_ns else {
            return;
        };
        let now = crate::sys::monotonic_ns();
        for c in &mut self.children {
            if c.timed_out_ns.is_some() {
                continue;
            }
            let (run, done, p) = arena::remote_view(&c.arena);
            if run != c.clock_run {
                c.clock_run = run;
                c.clock.restart(now);
            }
            if run == done {
                // Between jobs. (A task that writes DONE_SEQ to look finished is stopped by
                // the pool, which bounds each job from its send.)
                continue;
            }
            c.clock.look(&p, now);
            if now < c.clock.deadline_ns(Duration::from_nanos(limit)) {
                continue;
            }
            let ran = now.saturating_sub(c.clock.started_ns());
            c.timed_out_ns = Some(ran);
            let _ = killpg(c.pid, Signal::SIGTERM);
            let deadline = Instant::now() + KILL_GRACE;
            while Instant::now() < deadline {
                if nix::sys::signal::kill(c.pid, None).is_err() {
                    break;
                }
                // A zombie still answers kill(0): look at its state instead.
                if matches!(
                    waitpid(c.pid, Some(WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT)),
                    Ok(WaitStatus::Exited(..) | WaitStatus::Signaled(..))
                ) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            let _ = killpg(c.pid, Signal::SIGKILL);
        }
    }

    fn kill_all(&mut self) {
        for c in &self.children {
            let _ = killpg(c.pid, Signal::SIGKILL);
        }
        for c in self.children.drain(..) {
            let _ = waitpid(c.pid, None);
        }
    }
}

/// What is in a non-blocking pipe now.
fn read_available(pipe: &mut File) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match pipe.read(&mut buf) {
            Ok(0) => return out,
            Ok(n) => {
                out.extend_from_slice(&buf[..n]);
                if out.len() >= 1 << 20 {
                    return out;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return out,
        }
    }
}

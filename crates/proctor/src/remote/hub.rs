//! The pool's side of remote workers: the listener agents call, the launched processes,
//! and one control thread per agent; each remote worker's connection is read by whoever
//! drives the pool.
//!
//! A remote worker looks to the rest of the pool like a local one. Its `Worker` handle has
//! an arena like any — a *mirror*, filled by the thread that reads the worker's connection
//! as each job's records arrive — a stderr pipe fed with what the agent forwards, and a pid
//! that the fork server's exit table knows (a pseudo pid above any real one): killing it
//! asks the agent, and its exit is the agent's report. The recovery machine and the driver
//! so need no remote case beyond who enforces the task timeout (the agent, on its host) and
//! what a lost host is called.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use super::conn::Conn;
use super::proto::{self, Claim, FromAgent, Hi, KEY_LEN, Report, ToAgent, Token};
use super::{Launch, Remote};
use crate::arena;
use crate::server::{Exit, ForkServer};
use crate::sys::SharedMapping;
use zeroize::Zeroizing;

/// How long a worker's start may take: the agent's fork and its connection back.
const SPAWN_WAIT: Duration = Duration::from_secs(10);
/// How long the death report waits for the worker's connection to deliver what it sent.
const DRAIN_WAIT: Duration = Duration::from_secs(2);
/// How long a dropped pool waits for its launched processes to leave before killing them.
const LAUNCH_EXIT_WAIT: Duration = Duration::from_secs(3);
/// Handshakes the listener runs at once (see `accept_loop`).
const MAX_HANDSHAKES: usize = 256;
/// The most of a launched process's stderr kept, to say why it failed.
const LAUNCH_TAIL: usize = 8 << 10;

/// Locks whether or not a holder panicked (the state under these locks stays whole).
fn lock_of<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Connections that passed the handshake, waiting to be claimed, and the claims the pool
/// accepts now.
#[derive(Default)]
struct Arrivals {
    agents: HashMap<u32, (Conn, String, u32)>,
    data: HashMap<Token, Conn>,
    /// The agents the pool waits for, by slot: a caller claiming another slot (or one whose
    /// agent already came) is refused before it is heard.
    awaited: HashSet<u32>,
    /// The spawn requests whose worker may call, each once.
    expected: HashMap<Token, Expected>,
    /// Why connections were refused (a wrong secret, say): quoted if agents never come.
    refused: Vec<String>,
}

/// A spawn request whose worker has not called yet.
struct Expected {
    /// The slot of the agent it was asked of.
    slot: u32,
    /// The address that agent called from: its worker calls from the same host.
    host: IpAddr,
    /// The worker's one-time key (see `proto::worker_key`).
    key: Zeroizing<[u8; KEY_LEN]>,
}

impl Arrivals {
    /// Keeps why a connection was refused (the last few: a flood keeps no more).
    fn refuse(&mut self, why: String) {
        if self.refused.len() >= 16 {
            self.refused.remove(0);
        }
        self.refused.push(why);
    }
}

struct Lobby {
    arrivals: Mutex<Arrivals>,
    cond: Condvar,
}

/// A process a launcher started (ssh, srun, a command), and the end of its stderr.
struct Launched {
    child: std::process::Child,
    shown: String,
    stderr: Arc<Mutex<Vec<u8>>>,
    /// The keys of the agents it starts.
    agents: Vec<u32>,
}

/// The pool's end of the remote workers.
pub(crate) struct Hub {
    /// The agents, by index (see `slot_link`); a relaunched agent takes its predecessor's
    /// place.
    links: Arc<Mutex<Vec<Arc<Link>>>>,
    /// The link that serves each worker slot.
    slot_link: Vec<usize>,
    lobby: Arc<Lobby>,
    launched: Arc<Mutex<Vec<Launched>>>,
    stop: Arc<AtomicBool>,
    /// Lost agents being launched again; `None` with `Remote::relaunch(0)`.
    relaunches: Option<Arc<Relaunches>>,
    acceptor: Mutex<Option<JoinHandle<()>>>,
    /// The pool's secret, to derive each worker's one-time key from.
    secret: Arc<Zeroizing<[u8; KEY_LEN]>>,
    /// The address agents were told to call.
    pub(crate) address: String,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("address", &self.address)
            .field("agents", &lock_of(&self.links).len())
            .finish()
    }
}

/// One agent, as the pool holds it.
pub(crate) struct Link {
    pub(crate) host: String,
    /// The slot its agent claimed (its first).
    key: u32,
    /// Its place in the hub's links, and where to ask for it to be relaunched once lost.
    index: usize,
    relaunch: Option<Arc<Relaunches>>,
    ctrl: Mutex<Conn>,
    /// The control connection's socket, to wait on without the lock, and to shut down.
    sock: TcpStream,
    st: Mutex<LinkState>,
    cond: Condvar,
}

#[derive(Default)]
struct LinkState {
    /// Why the agent is gone, once it is.
    gone: Option<String>,
    spawned: HashMap<Token, Result<u32, String>>,
    workers: HashMap<Token, Arc<Gen>>,
}

/// One remote worker process.
pub(crate) struct Gen {
    token: Token,
    /// Its pid in the fork server's exit table (not a pid on any host).
    pub(crate) pid: i32,
    /// Its pid on its own host.
    pub(crate) host_pid: u32,
    pub(crate) host: String,
    mirror: Mutex<SharedMapping>,
    /// The last job whose records were copied into the mirror.
    applied: AtomicU64,
    /// What the worker sent that is not yet in the mirror. The driver reads it (no thread
    /// of its own: a hand-off between threads was a third of a loopback round trip), and
    /// the agent's thread reads the rest when the worker died.
    reader: Mutex<Reader>,
    /// The connection both ways (one TLS session, when encrypted).
    conn: Mutex<Conn>,
    stderr: Mutex<Option<File>>,
    /// Its socket, to wait on and to shut down without the lock.
    data: TcpStream,
    /// Set when the agent killed it for overrunning the task timeout: how long it ran.
    pub(crate) timed_out: Mutex<Option<Duration>>,
    /// Its agent, to kill it through.
    link: Weak<Link>,
    /// False once its connection ended or broke the protocol.
    open: AtomicBool,
    /// Set when its host was lost: why.
    pub(crate) lost: Mutex<Option<String>>,
    /// The number of the last job the driver sent it, and what that number was when its
    /// host was lost (a job sent later never reached a live worker).
    pub(crate) jobs_sent: AtomicU64,
    pub(crate) sent_at_loss: AtomicU64,
}

impl std::fmt::Debug for Gen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gen")
            .field("token", &self.token)
            .field("host", &self.host)
            .finish()
    }
}

impl Gen {
    /// Closes the worker's connection: a worker being recycled sees the end of its jobs and
    /// exits; a dead one's reader thread stops.
    pub(crate) fn close(&self) {
        let _ = self.data.shutdown(Shutdown::Both);
    }

    fn close_stderr(&self) {
        lock_of(&self.stderr).take();
    }

    /// Whether the worker's connection may still say something (a driver waits on it only
    /// then: a closed socket is always readable).
    pub(crate) fn is_open(&self) -> bool {
        self.open.load(Ordering::Relaxed)
    }

    /// The worker's connection, for a driver to wait on.
    pub(crate) fn data_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        std::os::fd::AsFd::as_fd(&self.data)
    }

    /// Sends a job (or a call) to the worker.
    pub(crate) fn send(&self, bytes: &[u8]) -> std::io::Result<()> {
        lock_of(&self.conn).write_all(bytes)
    }

    /// Copies what the worker sent so far into the mirror, without waiting (driver side).
    /// Skipped while the agent's thread drains the connection after the worker's death.
    pub(crate) fn pump(&self) {
        if let Ok(mut r) = self.reader.try_lock() {
            r.fill(self, true);
            if r.done {
                self.open.store(false, Ordering::Relaxed);
            }
            if let Some(why) = r.broken.take() {
                drop(r);
                self.break_off(&why);
            }
        }
    }

    /// The worker's connection carried bytes that are not the protocol: whatever wrote
    /// them, nothing more it says can be trusted. The worker is killed (its agent reports
    /// its end, as for any death) and its job ends saying why, rather than waiting for
    /// results that cannot come.
    fn break_off(&self, why: &str) {
        {
            let mut lost = lock_of(&self.lost);
            if lost.is_some() {
                return;
            }
            *lost = Some(format!("its connection broke the protocol: {why}"));
        }
        // The job it was sent is blamed, as for a lost host.
        self.sent_at_loss
            .store(self.jobs_sent.load(Ordering::SeqCst), Ordering::SeqCst);
        self.close();
        if let Some(link) = self.link.upgrade() {
            let _ = link.send(&ToAgent::Kill {
                token: self.token,
                signal: libc::SIGKILL,
            });
        }
    }

    /// Reads the connection to its end (the worker is gone), or until `wait` passes.
    fn drain(&self, wait: Duration) {
        let mut r = lock_of(&self.reader);
        let _ = self
            .data
            .set_read_timeout(Some(wait.max(Duration::from_millis(1))));
        let deadline = Instant::now() + wait;
        while !r.done && Instant::now() < deadline {
            r.fill(self, false);
        }
    }
}

/// The reading end of a remote worker's connection: `done` messages, whole or in part.
struct Reader {
    buf: Vec<u8>,
    end: usize,
    /// End of file, a broken connection, or bytes that are not the protocol.
    done: bool,
    /// Why the connection's bytes are not the protocol, once they are not: the worker is
    /// then ended (see [`Gen::pump`]).
    broken: Option<String>,
    /// The number of the last job whose message was read: the next must be one more.
    last_seq: u64,
}

impl Reader {
    fn new(buf: Vec<u8>) -> Reader {
        let end = buf.len();
        Reader {
            buf,
            end,
            done: false,
            broken: None,
            last_seq: 0,
        }
    }

    /// Stops trusting the connection.
    fn break_off(&mut self, why: String) {
        self.done = true;
        self.broken.get_or_insert(why);
    }

    /// Reads once (or, without waiting, until nothing is left), then copies every whole
    /// message into the mirror.
    fn fill(&mut self, g: &Gen, dont_wait: bool) {
        loop {
            if self.done {
                return;
            }
            if self.end >= 4 {
                // A length past the limit ends the connection before anything is allocated.
                let len = u32::from_le_bytes(self.buf[..4].try_into().expect("4")) as usize;
                if let Err(e) = proto::check_len(len, proto::MAX_MESSAGE) {
                    self.break_off(e.to_string());
                    return;
                }
            }
            let whole = if self.end >= 4 {
                4 + u32::from_le_bytes(self.buf[..4].try_into().expect("4")) as usize
            } else {
                4
            };
            if self.buf.len() - self.end < 4096 {
                // The buffer grows with what arrives (it at most doubles per full buffer),
                // never to the length a message claims: a worker that announces a gigabyte
                // and sends four bytes costs nothing.
                let want = whole.max(self.end + 4096);
                let grown = (self.buf.len() * 2).max(64 << 10);
                self.buf.resize(want.min(grown).max(self.buf.len()), 0);
            }
            let got = {
                let mut conn = lock_of(&g.conn);
                let buf = &mut self.buf[self.end..];
                if dont_wait {
                    conn.read_available(buf)
                } else {
                    conn.read(buf)
                }
            };
            match got {
                Ok(0) => self.done = true,
                Ok(n) => self.end += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                // Bytes that fail TLS's (or the sealed records') checks: someone wrote on
                // the connection who should not.
                Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                    self.break_off(e.to_string())
                }
                Err(_) => self.done = true,
            }
            let _ = self.apply(&g.mirror, &g.applied);
            // Without waiting, read on while the socket has more (a full buffer read).
            if !dont_wait || self.end < self.buf.len() {
                return;
            }
        }
    }

    /// Copies the whole messages at the front of the buffer into the mirror.
    /// Returns how many it copied.
    fn apply(&mut self, mirror: &Mutex<SharedMapping>, applied: &AtomicU64) -> usize {
        let mut start = 0;
        let mut copied = 0;
        while self.end - start >= 4 {
            let len =
                u32::from_le_bytes(self.buf[start..start + 4].try_into().expect("4")) as usize;
            if !(proto::DONE_HEADER - 4..=proto::MAX_MESSAGE).contains(&len) {
                // Not the protocol: stop trusting this connection (the agent's report of
                // the worker's end still comes).
                self.break_off(format!(
                    "a {len}-byte message is not a finished job's (at most {} bytes)",
                    proto::MAX_MESSAGE
                ));
                break;
            }
            // Each message is the next job's: checked as soon as its number arrives, so
            // that bytes slipped in before a real message cannot hold the connection
            // waiting for a body that never comes.
            if let Some(seq) = self.buf.get(start + 4..start + 12) {
                let seq = u64::from_le_bytes(seq.try_into().expect("8"));
                if seq != self.last_seq + 1 {
                    self.break_off(format!(
                        "a message for job {seq} came where job {} was due",
                        self.last_seq + 1
                    ));
                    break;
                }
            }
            if self.end - start < 4 + len {
                break;
            }
            let Some((seq, started, committed, records)) =
                proto::parse_done(&self.buf[start + 4..start + 4 + len])
            else {
                self.break_off("a finished job's message that does not parse".into());
                break;
            };
            let mut m = lock_of(mirror);
            if let Err(e) = arena::mirror(&mut m, started, committed, records, Some(seq)) {
                self.break_off(e.to_string());
                break;
            }
            self.last_seq = seq;
            applied.store(seq, Ordering::Release);
            start += 4 + len;
            copied += 1;
        }
        if start > 0 {
            self.buf.copy_within(start..self.end, 0);
            self.end -= start;
        }
        copied
    }
}

impl Link {
    fn send(&self, msg: &ToAgent) -> std::io::Result<()> {
        proto::send(&mut *lock_of(&self.ctrl), msg)
    }

    /// The agent is gone: every worker it ran ends as lost, and no more start there.
    fn lose(&self, why: String, server: &ForkServer) {
        let workers: Vec<Arc<Gen>> = {
            let mut st = lock_of(&self.st);
            if st.gone.is_some() {
                return;
            }
            st.gone = Some(why.clone());
            st.workers.drain().map(|(_, g)| g).collect()
        };
        self.cond.notify_all();
        if let Some(r) = &self.relaunch {
            // Marked before its workers' deaths are reported, so that the driver, seeing
            // them, waits for the new agent instead of calling the slots vacant.
            r.ask(self.index);
        }
        let _ = self.sock.shutdown(Shutdown::Both);
        for g in workers {
            g.sent_at_loss
                .store(g.jobs_sent.load(Ordering::SeqCst), Ordering::SeqCst);
            *lock_of(&g.lost) = Some(why.clone());
            g.close();
            // What it finished before the host went quiet still counts.
            g.drain(DRAIN_WAIT);
            g.close_stderr();
            server.report_exit(g.pid, Exit::Signal(libc::SIGKILL));
        }
    }
}

impl Hub {
    /// Listens, launches the agents for `workers` slots, and waits until each one has
    /// connected, proved it holds the secret and accepted the pool's build.
    pub(crate) fn start(
        remote: &Remote,
        workers: usize,
        server: &'static ForkServer,
        task_timeout: Option<Duration>,
        memory_limit: Option<u64>,
        forward: bool,
        doorbell: Arc<crate::doorbell::Doorbell>,
    ) -> Result<Hub, String> {
        let secret = Arc::new(Zeroizing::new(
            proto::random_key().map_err(|e| format!("no random secret: {e}"))?,
        ));
        let tls = if remote.tls {
            Some(super::conn::identity()?)
        } else {
            None
        };
        let credentials = proto::credentials(&secret, tls.as_ref().map(|t| &t.pin));
        let handshake_timeout = remote.handshake_timeout;
        let tls_config = tls.map(|t| t.config);
        let listener = TcpListener::bind(remote.listen)
            .map_err(|e| format!("could not listen on {}: {e}", remote.listen))?;
        let local = listener
            .local_addr()
            .map_err(|e| format!("the listener has no address: {e}"))?;
        let address = advertised(remote, local);
        let lobby = Arc::new(Lobby {
            arrivals: Mutex::new(Arrivals::default()),
            cond: Condvar::new(),
        });
        let stop = Arc::new(AtomicBool::new(false));
        let acceptor = {
            let (lobby, stop) = (Arc::clone(&lobby), Arc::clone(&stop));
            let secret = Arc::clone(&secret);
            std::thread::Builder::new()
                .name("proctor-remote-accept".into())
                .spawn(move || {
                    accept_loop(listener, secret, tls_config, lobby, stop, handshake_timeout)
                })
                .map_err(|e| format!("could not start the listener thread: {e}"))?
        };
        let mut hub = Hub {
            links: Arc::new(Mutex::new(Vec::new())),
            slot_link: vec![0; workers],
            lobby,
            launched: Arc::new(Mutex::new(Vec::new())),
            stop,
            relaunches: None,
            acceptor: Mutex::new(Some(acceptor)),
            secret,
            address,
        };
        let launches = remote.launches(workers, &hub.address);
        let plan: Vec<(u32, Vec<u32>)> = launches.iter().flat_map(|l| l.agents.clone()).collect();
        lock_of(&hub.lobby.arrivals)
            .awaited
            .extend(plan.iter().map(|(k, _)| *k));
        for launch in &launches {
            let started = launch_one(launch, &credentials, forward)?;
            lock_of(&hub.launched).push(started);
        }
        let keys: Vec<u32> = plan.iter().map(|(k, _)| *k).collect();
        for (link, (_, slots)) in plan.iter().enumerate() {
            for &s in slots {
                hub.slot_link[s as usize] = link;
            }
        }
        let agents = hub.await_agents(&keys, remote.connect_timeout)?;
        let hello = proto::Hello {
            identity: crate::exec::identity().to_string(),
            anchor: crate::exec::anchor_address(),
            frame_secret: server.secret,
            task_timeout_ns: task_timeout.map(|d| d.as_nanos() as u64),
            memory_limit,
            heartbeat_ms: remote.heartbeat.as_millis() as u64,
            lost_after_ms: remote.lost_after.as_millis() as u64,
        };
        let (tx, rx) = crossbeam_channel::unbounded::<usize>();
        let relaunches = (remote.relaunch > 0).then(|| {
            Arc::new(Relaunches {
                tx,
                attempts: remote.relaunch,
                back_at: Mutex::new(vec![None; plan.len()]),
                left: plan
                    .iter()
                    .map(|_| AtomicU32::new(remote.relaunch))
                    .collect(),
                pending: plan.iter().map(|_| AtomicBool::new(false)).collect(),
                news: Mutex::new(Vec::new()),
            })
        });
        hub.relaunches = relaunches.clone();
        let ctx = Arc::new(LinkSetup {
            hello,
            server,
            heartbeat: remote.heartbeat,
            lost_after: remote.lost_after,
            stop: Arc::clone(&hub.stop),
            relaunch: relaunches.clone(),
        });
        for (index, ((key, _), (ctrl, host, _pid))) in plan.iter().zip(agents).enumerate() {
            let link = ctx.connect(index, *key, ctrl, host)?;
            lock_of(&hub.links).push(link);
        }
        if let Some(relaunches) = relaunches {
            let relauncher = Relauncher {
                ctx,
                relaunches,
                spec: plan
                    .iter()
                    .map(|(key, slots)| (remote.relaunch_of(*key, &hub.address), slots.clone()))
                    .collect(),
                credentials,
                forward,
                connect_timeout: remote.connect_timeout,
                lobby: Arc::clone(&hub.lobby),
                links: Arc::clone(&hub.links),
                launched: Arc::clone(&hub.launched),
                doorbell,
            };
            std::thread::Builder::new()
                .name("proctor-remote-relaunch".into())
                .spawn(move || relauncher.run(rx))
                .map_err(|e| format!("could not start the relaunch thread: {e}"))?;
        }
        Ok(hub)
    }

    /// Waits for the agents of `keys`; a launcher that exits before its agents called, or
    /// the timeout, is an error that quotes what the launcher said.
    fn await_agents(
        &self,
        keys: &[u32],
        timeout: Duration,
    ) -> Result<Vec<(Conn, String, u32)>, String> {
        await_agents(&self.lobby, &self.launched, keys, timeout)
    }

    /// The worker slots whose lost agent came back (`true`) or will not (`false`) since
    /// the last call.
    pub(crate) fn take_revived(&self) -> Vec<(usize, bool)> {
        self.relaunches
            .as_ref()
            .map(|r| std::mem::take(&mut *lock_of(&r.news)))
            .unwrap_or_default()
    }

    /// Whether slot `slot`'s agent is lost and being launched again: a worker for it is
    /// waited for (see [`Hub::take_revived`]) rather than asked of the lost agent.
    pub(crate) fn awaiting_relaunch(&self, slot: usize) -> bool {
        let index = self.slot_link[slot];
        self.relaunches
            .as_ref()
            .is_some_and(|r| r.pending[index].load(Ordering::SeqCst))
            && lock_of(&lock_of(&self.links)[index].st).gone.is_some()
    }
}

/// Waits in `lobby` for the agents of `keys` (see `Hub::await_agents`).
fn await_agents(
    lobby: &Lobby,
    launched: &Mutex<Vec<Launched>>,
    keys: &[u32],
    timeout: Duration,
) -> Result<Vec<(Conn, String, u32)>, String> {
    let deadline = Instant::now() + timeout;
    let mut a = lock_of(&lobby.arrivals);
    loop {
        if keys.iter().all(|s| a.agents.contains_key(s)) {
            return Ok(keys
                .iter()
                .map(|s| a.agents.remove(s).expect("checked above"))
                .collect());
        }
        let missing: Vec<u32> = keys
            .iter()
            .copied()
            .filter(|s| !a.agents.contains_key(s))
            .collect();
        for l in lock_of(launched).iter_mut() {
            if !l.agents.iter().any(|s| missing.contains(s)) {
                continue;
            }
            if let Ok(Some(status)) = l.child.try_wait() {
                // Let its stderr reader catch the last words.
                std::thread::sleep(Duration::from_millis(50));
                return Err(format!(
                    "the launcher `{}` exited ({status}) before its worker connected{}",
                    l.shown,
                    tail_said(&l.stderr)
                ));
            }
        }
        let now = Instant::now();
        if now >= deadline {
            let why = match a.refused.last() {
                Some(r) => format!("; a connection was refused: {r}"),
                None => String::new(),
            };
            let said: String = lock_of(launched)
                .iter()
                .map(|l| tail_said(&l.stderr))
                .collect();
            return Err(format!(
                "the agents for worker slots {missing:?} did not connect within {} ms{why}{said}",
                timeout.as_millis()
            ));
        }
        a = lobby
            .cond
            .wait_timeout(a, (deadline - now).min(Duration::from_millis(50)))
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .0;
    }
}

impl Hub {
    /// Asks slot `slot`'s agent for a worker. Returns it, and its connection to write jobs to.
    pub(crate) fn spawn(
        &self,
        slot: usize,
        mirror: SharedMapping,
        stderr: File,
        server: &'static ForkServer,
    ) -> std::io::Result<Arc<Gen>> {
        let link = Arc::clone(&lock_of(&self.links)[self.slot_link[slot]]);
        let link = &link;
        if let Some(why) = &lock_of(&link.st).gone {
            return Err(std::io::Error::other(format!(
                "the agent on {} is gone: {why}",
                link.host
            )));
        }
        // 128 random bits, good for one connection, from the agent's host, proving a key
        // only this request's worker gets.
        let token = proto::random_token()?;
        let host = link.sock.peer_addr()?.ip();
        lock_of(&self.lobby.arrivals).expected.insert(
            token,
            Expected {
                slot: link.key,
                host,
                key: proto::worker_key(&self.secret, link.key, &token),
            },
        );
        let spawned = self.await_worker(link, token);
        if spawned.is_err() {
            // A request that failed must not admit a late caller.
            lock_of(&self.lobby.arrivals).expected.remove(&token);
        }
        let (host_pid, data) = spawned?;
        data.socket().set_nodelay(true)?;
        data.socket().set_read_timeout(None)?;
        let sock = data.socket().try_clone()?;
        let weak: Weak<Link> = Arc::downgrade(link);
        let kill_through = Weak::clone(&weak);
        let pid =
            server.register_remote(crate::server::RemoteKill(Box::new(move |sig: Signal| {
                if let Some(l) = kill_through.upgrade() {
                    let _ = l.send(&ToAgent::Kill {
                        token,
                        signal: sig as i32,
                    });
                }
            })));
        let rw = Arc::new(Gen {
            token,
            pid,
            host_pid,
            host: link.host.clone(),
            mirror: Mutex::new(mirror),
            applied: AtomicU64::new(0),
            reader: Mutex::new(Reader {
                end: 0,
                ..Reader::new(vec![0; 64 << 10])
            }),
            conn: Mutex::new(data),
            stderr: Mutex::new(Some(stderr)),
            data: sock,
            timed_out: Mutex::new(None),
            link: weak,
            open: AtomicBool::new(true),
            lost: Mutex::new(None),
            jobs_sent: AtomicU64::new(0),
            sent_at_loss: AtomicU64::new(0),
        });
        {
            let mut st = lock_of(&link.st);
            if let Some(why) = &st.gone {
                return Err(std::io::Error::other(format!(
                    "the agent on {} is gone: {why}",
                    link.host
                )));
            }
            st.workers.insert(token, Arc::clone(&rw));
        }
        Ok(rw)
    }

    /// Asks `link`'s agent for a worker for `token`, and waits for its pid and its data
    /// connection.
    fn await_worker(&self, link: &Link, token: Token) -> std::io::Result<(u32, Conn)> {
        link.send(&ToAgent::Spawn { token })?;
        let deadline = Instant::now() + SPAWN_WAIT;
        let host_pid = {
            let mut st = lock_of(&link.st);
            loop {
                if let Some(r) = st.spawned.remove(&token) {
                    break r.map_err(|why| {
                        std::io::Error::other(format!(
                            "the agent on {} could not start a worker: {why}",
                            link.host
                        ))
                    })?;
                }
                if let Some(why) = &st.gone {
                    return Err(std::io::Error::other(format!(
                        "the agent on {} is gone: {why}",
                        link.host
                    )));
                }
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(std::io::Error::other(format!(
                        "the agent on {} did not start a worker within {} s",
                        link.host,
                        SPAWN_WAIT.as_secs()
                    )));
                }
                st = link
                    .cond
                    .wait_timeout(st, left)
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .0;
            }
        };
        let data = loop {
            if let Some(s) = lock_of(&self.lobby.arrivals).data.remove(&token) {
                break s;
            }
            // A worker that could not connect (its agent reported its end) is no use
            // waiting for.
            if let Some(Err(why)) = lock_of(&link.st).spawned.remove(&token) {
                return Err(std::io::Error::other(format!(
                    "the worker on {} did not connect: {why}",
                    link.host
                )));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(std::io::Error::other(format!(
                    "the worker on {} did not connect within {} s",
                    link.host,
                    SPAWN_WAIT.as_secs()
                )));
            }
            let a = lock_of(&self.lobby.arrivals);
            if a.data.contains_key(&token) {
                continue;
            }
            drop(
                self.lobby
                    .cond
                    .wait_timeout(a, left.min(Duration::from_millis(50)))
                    .unwrap_or_else(std::sync::PoisonError::into_inner),
            );
        };
        Ok((host_pid, data))
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl Hub {
    /// Ends the agents (closing their connections ends them and their workers) and the
    /// launched processes; what is still running a moment later is killed.
    pub(crate) fn shutdown(&self) {
        self.stop.store(true, Ordering::SeqCst);
        // Closing the control connections ends the agents, and with them their workers.
        for l in lock_of(&self.links).iter() {
            let _ = l.sock.shutdown(Shutdown::Both);
        }
        let deadline = Instant::now() + LAUNCH_EXIT_WAIT;
        for l in lock_of(&self.launched).iter_mut() {
            loop {
                match l.child.try_wait() {
                    Ok(Some(_)) | Err(_) => break,
                    Ok(None) if Instant::now() >= deadline => {
                        let _ = l.child.kill();
                        let _ = l.child.wait();
                        break;
                    }
                    Ok(None) => std::thread::sleep(Duration::from_millis(1)),
                }
            }
        }
        // The listener's thread sees `stop` within its poll's timeout and leaves by itself
        // (joining it would make every pool's drop wait that long).
        drop(lock_of(&self.acceptor).take());
    }
}

/// What it takes to turn an agent's accepted connection into a [`Link`]: the hello, and
/// what its control thread needs.
struct LinkSetup {
    hello: proto::Hello,
    server: &'static ForkServer,
    heartbeat: Duration,
    lost_after: Duration,
    stop: Arc<AtomicBool>,
    relaunch: Option<Arc<Relaunches>>,
}

impl LinkSetup {
    /// Says hello to agent `key` (it checks the build) and starts its control thread.
    fn connect(
        &self,
        index: usize,
        key: u32,
        mut ctrl: Conn,
        host: String,
    ) -> Result<Arc<Link>, String> {
        let _ = ctrl.socket().set_read_timeout(Some(proto::HANDSHAKE_WAIT));
        // The frame secret goes masked with a key of this connection's handshake.
        let mut hello = self.hello.clone();
        hello.frame_secret ^= ctrl.frame_mask();
        let said = proto::send(&mut ctrl, &ToAgent::Hello(hello))
            .and_then(|()| proto::recv::<FromAgent>(&mut ctrl, proto::MAX_ANSWER));
        match said {
            Ok(FromAgent::Ready) => {}
            Ok(FromAgent::Refused { why }) => {
                return Err(format!(
                    "the agent for worker {key} on {host} refused: {why}"
                ));
            }
            Ok(other) => {
                return Err(format!(
                    "the agent for worker {key} on {host} answered {other:?}"
                ));
            }
            Err(e) => {
                return Err(format!(
                    "the agent for worker {key} on {host} did not answer: {e}"
                ));
            }
        }
        let _ = ctrl.socket().set_read_timeout(None);
        let sock = ctrl
            .socket()
            .try_clone()
            .map_err(|e| format!("the agent's connection: {e}"))?;
        let link = Arc::new(Link {
            host,
            key,
            index,
            relaunch: self.relaunch.clone(),
            ctrl: Mutex::new(ctrl),
            sock,
            st: Mutex::new(LinkState::default()),
            cond: Condvar::new(),
        });
        let (l, stop) = (Arc::clone(&link), Arc::clone(&self.stop));
        let (server, beat, lost) = (self.server, self.heartbeat, self.lost_after);
        std::thread::Builder::new()
            .name("proctor-remote-agent".into())
            .spawn(move || control_loop(l, server, beat, lost, stop))
            .map_err(|e| format!("could not start an agent thread: {e}"))?;
        Ok(link)
    }
}

/// The relaunches of lost agents, shared by the links (which ask for them), the
/// relauncher (which tries) and the driver (which waits for their slots).
pub(crate) struct Relaunches {
    tx: crossbeam_channel::Sender<usize>,
    /// Tries per loss (`Remote::relaunch`).
    attempts: u32,
    /// Per link: the tries it has left for its current loss.
    left: Vec<AtomicU32>,
    /// Per link: when its last relaunch brought it back.
    back_at: Mutex<Vec<Option<Instant>>>,
    /// Per link: lost, with a relaunch to come.
    pending: Vec<AtomicBool>,
    /// Worker slots whose agent came back (`true`) or will not (`false`).
    news: Mutex<Vec<(usize, bool)>>,
}

impl Relaunches {
    /// Link `index` was lost: asks for it to be launched again, if it has tries left. A
    /// host that stayed up for [`STABLE_AFTER`] since it came back has its tries renewed;
    /// one lost sooner goes on with what it had left, so one that cannot stay up is given
    /// up on.
    fn ask(&self, index: usize) {
        let stayed = lock_of(&self.back_at)[index].is_none_or(|t| t.elapsed() >= STABLE_AFTER);
        if stayed {
            self.left[index].store(self.attempts, Ordering::SeqCst);
        }
        if self.left[index].load(Ordering::SeqCst) > 0 {
            self.pending[index].store(true, Ordering::SeqCst);
            let _ = self.tx.send(index);
        }
    }
}

/// Starts lost agents again through their launchers, and hands their slots back.
struct Relauncher {
    ctx: Arc<LinkSetup>,
    relaunches: Arc<Relaunches>,
    /// Per link: how to launch its agent alone, and the slots it serves.
    spec: Vec<(Launch, Vec<u32>)>,
    credentials: String,
    forward: bool,
    connect_timeout: Duration,
    lobby: Arc<Lobby>,
    links: Arc<Mutex<Vec<Arc<Link>>>>,
    launched: Arc<Mutex<Vec<Launched>>>,
    doorbell: Arc<crate::doorbell::Doorbell>,
}

/// How long a relaunched host must stay up for its relaunch tries to be renewed.
const STABLE_AFTER: Duration = Duration::from_secs(60);

/// How long the relauncher waits before each attempt: a host that just dropped off is
/// often back in seconds (a reboot, a network blip), and a dead one must not be hammered.
const RELAUNCH_DELAYS: [Duration; 3] = [
    Duration::from_millis(200),
    Duration::from_secs(2),
    Duration::from_secs(10),
];

impl Relauncher {
    /// Takes the lost links' requests; each host is relaunched on a thread of its own, so
    /// that one host's waits hold up no other.
    fn run(self, lost: crossbeam_channel::Receiver<usize>) {
        let me = Arc::new(self);
        loop {
            // The links hold senders as long as the hub's threads live: `stop` ends this.
            let index = match lost.recv_timeout(Duration::from_millis(100)) {
                Ok(index) => index,
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                    if me.ctx.stop.load(Ordering::SeqCst) {
                        return;
                    }
                    continue;
                }
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => return,
            };
            let me = Arc::clone(&me);
            let started = std::thread::Builder::new()
                .name("proctor-remote-relaunch".into())
                .spawn(move || me.bring_back(index));
            if let Err(e) = started {
                log::warn!("proctor: could not start a thread to relaunch a lost agent: {e}");
            }
        }
    }

    /// Tries to launch link `index`'s agent again, then says how that went.
    fn bring_back(&self, index: usize) {
        let r = &self.relaunches;
        let mut back = false;
        let mut tried = 0;
        while !back && r.left[index].load(Ordering::SeqCst) > 0 {
            r.left[index].fetch_sub(1, Ordering::SeqCst);
            if !self.sleep(RELAUNCH_DELAYS[tried.min(RELAUNCH_DELAYS.len() - 1)]) {
                return;
            }
            tried += 1;
            match self.relaunch(index) {
                Ok(()) => {
                    log::info!(
                        "proctor: relaunched the agent of worker slots {:?}",
                        self.spec[index].1
                    );
                    lock_of(&r.back_at)[index] = Some(Instant::now());
                    back = true;
                }
                Err(why) => log::warn!("proctor: could not relaunch a lost agent: {why}"),
            }
        }
        // The news before the flag: a driver that still sees the flag will find them.
        let slots = self.spec[index].1.iter().map(|&s| (s as usize, back));
        lock_of(&r.news).extend(slots);
        r.pending[index].store(false, Ordering::SeqCst);
        self.doorbell.ring();
    }

    /// Sleeps `d` unless the hub stops first; false if it did.
    fn sleep(&self, d: Duration) -> bool {
        let end = Instant::now() + d;
        while Instant::now() < end {
            if self.ctx.stop.load(Ordering::SeqCst) {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20).min(end - Instant::now()));
        }
        !self.ctx.stop.load(Ordering::SeqCst)
    }

    fn relaunch(&self, index: usize) -> Result<(), String> {
        let launch = &self.spec[index].0;
        let key = launch.agents[0].0;
        {
            // An answer of the lost agent that comes late must not pass for the new one's;
            // the new one is awaited until it comes (or the wait ends).
            let mut a = lock_of(&self.lobby.arrivals);
            a.agents.remove(&key);
            a.awaited.insert(key);
        }
        let r = self.launch_and_connect(index, key, launch);
        if r.is_err() {
            lock_of(&self.lobby.arrivals).awaited.remove(&key);
        }
        r
    }

    fn launch_and_connect(&self, index: usize, key: u32, launch: &Launch) -> Result<(), String> {
        let started = launch_one(launch, &self.credentials, self.forward)?;
        {
            // Launchers that ended (of lost agents) are reaped, so that a flapping host
            // leaves no zombies behind.
            let mut launched = lock_of(&self.launched);
            launched.retain_mut(|l| !matches!(l.child.try_wait(), Ok(Some(_))));
            launched.push(started);
        }
        let mut agents = await_agents(&self.lobby, &self.launched, &[key], self.connect_timeout)?;
        let (ctrl, host, _pid) = agents.pop().expect("one agent was awaited");
        let link = self.ctx.connect(index, key, ctrl, host)?;
        lock_of(&self.links)[index] = link;
        Ok(())
    }
}

/// The address agents call: the listening address, with an unspecified IP replaced by what
/// [`Remote::advertise`] names, else this host's name.
fn advertised(remote: &Remote, local: SocketAddr) -> String {
    match &remote.advertise {
        Some(host) => format!("{host}:{}", local.port()),
        None if local.ip().is_unspecified() => {
            let host = nix::unistd::gethostname()
                .map(|h| h.to_string_lossy().into_owned())
                .unwrap_or_else(|_| "localhost".into());
            format!("{host}:{}", local.port())
        }
        None => local.to_string(),
    }
}

/// Starts one launcher process. The secret goes in its environment and on its stdin (ssh
/// carries no environment), never on a command line.
fn launch_one(launch: &Launch, credentials: &str, forward: bool) -> Result<Launched, String> {
    use std::process::{Command, Stdio};
    let hex = credentials;
    let mut cmd = Command::new(&launch.argv[0]);
    cmd.args(&launch.argv[1..])
        .envs(launch.env.iter().map(|(k, v)| (k, v)))
        .env(super::agent::SECRET_VAR, hex)
        .stdin(Stdio::piped())
        .stdout(Stdio::inherit())
        .stderr(Stdio::piped());
    let shown = launch.argv.join(" ");
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("could not run the launcher `{shown}`: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A launcher that never reads its stdin must not block us: the pipe holds a line.
        let _ = writeln!(stdin, "{hex}");
    }
    let tail = Arc::new(Mutex::new(Vec::new()));
    if let Some(mut err) = child.stderr.take() {
        let t = Arc::clone(&tail);
        let _ = std::thread::Builder::new()
            .name("proctor-launcher-stderr".into())
            .spawn(move || {
                // The launcher's and the agent's own words (its workers' stderr comes
                // through the agent): kept for an error, and passed on like a worker's.
                let mut buf = [0u8; 4096];
                while let Ok(n) = err.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    if forward {
                        let _ = std::io::stderr().write_all(&buf[..n]);
                    }
                    let mut t = lock_of(&t);
                    t.extend_from_slice(&buf[..n]);
                    if t.len() > 2 * LAUNCH_TAIL {
                        let cut = t.len() - LAUNCH_TAIL;
                        t.drain(..cut);
                    }
                }
            });
    }
    Ok(Launched {
        child,
        shown,
        stderr: tail,
        agents: launch.agents.iter().map(|(k, _)| *k).collect(),
    })
}

fn tail_said(tail: &Mutex<Vec<u8>>) -> String {
    let t = lock_of(tail);
    let text = String::from_utf8_lossy(&t);
    let text = text.trim();
    if text.is_empty() {
        String::new()
    } else {
        format!("; it said: {text}")
    }
}

/// A handshake under way on the listener.
struct Pending {
    /// When it must be done by: its socket is shut down then, whatever it is waiting for.
    deadline: Instant,
    sock: TcpStream,
    finished: Arc<AtomicBool>,
}

/// Accepts connections until the hub stops; each is authenticated on a thread of its own,
/// so one slow or hostile peer delays nobody. A handshake has `timeout` in all (not per
/// read: a peer that sends a byte now and then is cut off all the same), and at most
/// [`MAX_HANDSHAKES`] run at once: past that, the oldest is cut off to make room, so that
/// callers who say nothing cannot keep an agent or a new worker out (theirs are the oldest
/// handshakes; a real peer's takes milliseconds).
fn accept_loop(
    listener: TcpListener,
    secret: Arc<Zeroizing<[u8; KEY_LEN]>>,
    tls: Option<Arc<rustls::ServerConfig>>,
    lobby: Arc<Lobby>,
    stop: Arc<AtomicBool>,
    timeout: Duration,
) {
    let _ = listener.set_nonblocking(true);
    let mut pending: std::collections::VecDeque<Pending> = std::collections::VecDeque::new();
    while !stop.load(Ordering::SeqCst) {
        let now = Instant::now();
        pending.retain(|p| {
            let over = !p.finished.load(Ordering::SeqCst) && now >= p.deadline;
            if over {
                let _ = p.sock.shutdown(Shutdown::Both);
            }
            !over && !p.finished.load(Ordering::SeqCst)
        });
        match listener.accept() {
            Ok((s, peer)) => {
                if pending.len() >= MAX_HANDSHAKES {
                    if let Some(oldest) = pending.pop_front() {
                        let _ = oldest.sock.shutdown(Shutdown::Both);
                    }
                }
                let Ok(watch) = s.try_clone() else {
                    continue;
                };
                let finished = Arc::new(AtomicBool::new(false));
                pending.push_back(Pending {
                    deadline: Instant::now() + timeout,
                    sock: watch,
                    finished: Arc::clone(&finished),
                });
                let lobby = Arc::clone(&lobby);
                let tls = tls.clone();
                let secret = Arc::clone(&secret);
                let _ = std::thread::Builder::new()
                    .name("proctor-remote-handshake".into())
                    .spawn(move || {
                        let r = admit(s, peer.ip(), &secret, tls.as_ref(), &lobby, timeout);
                        finished.store(true, Ordering::SeqCst);
                        let mut a = lock_of(&lobby.arrivals);
                        match r {
                            Ok((Claim::Agent { slot }, Hi::Agent { host, pid }, c)) => {
                                // Each awaited agent is admitted once.
                                if a.awaited.remove(&slot) {
                                    a.agents.insert(slot, (c, host, pid));
                                } else {
                                    a.refuse(format!(
                                        "{peer}: worker slot {slot}'s agent came twice"
                                    ));
                                }
                            }
                            Ok((Claim::Worker { slot, token }, Hi::Data, c)) => {
                                // Each token is good for one connection.
                                if a.expected.remove(&token).is_some_and(|e| e.slot == slot) {
                                    a.data.insert(token, c);
                                } else {
                                    a.refuse(format!("{peer}: a worker's token came twice"));
                                }
                            }
                            Ok((claim, _, _)) => a.refuse(format!(
                                "{peer}: its first message does not match its claim {claim:?}"
                            )),
                            Err(e) => a.refuse(format!("{peer}: {e}")),
                        }
                        drop(a);
                        lobby.cond.notify_all();
                    });
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                // Until a peer calls, or a moment passes to look at `stop` and the
                // deadlines again.
                use nix::poll::{PollFd, PollFlags, PollTimeout};
                let mut fds = [PollFd::new(
                    std::os::fd::AsFd::as_fd(&listener),
                    PollFlags::POLLIN,
                )];
                let _ = nix::poll::poll(&mut fds, PollTimeout::from(50u16));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
    for p in pending {
        let _ = p.sock.shutdown(Shutdown::Both);
    }
}

/// Runs the pool's side of a handshake with a caller from `peer`: TLS (if on), the
/// challenge–response on the key of what it claims to be, and its first message. A claim
/// the lobby does not await is refused before the caller's proof is even checked.
fn admit(
    s: TcpStream,
    peer: IpAddr,
    secret: &[u8; KEY_LEN],
    tls: Option<&Arc<rustls::ServerConfig>>,
    lobby: &Lobby,
    timeout: Duration,
) -> std::io::Result<(Claim, Hi, Conn)> {
    s.set_nonblocking(false)?;
    s.set_nodelay(true)?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    let mut conn = match tls {
        Some(config) => Conn::server(s, config)?,
        None => Conn::plain(s),
    };
    let key_for = |claim: &Claim| -> Result<Zeroizing<[u8; KEY_LEN]>, String> {
        let a = lock_of(&lobby.arrivals);
        match *claim {
            Claim::Agent { slot } if a.awaited.contains(&slot) => Ok(Zeroizing::new(*secret)),
            Claim::Agent { slot } => Err(format!("no agent for worker slot {slot} is awaited")),
            Claim::Worker { slot, token } => match a.expected.get(&token) {
                Some(e) if e.slot == slot && e.host == peer => Ok(e.key.clone()),
                Some(_) => Err("a worker's token came from another host or agent".into()),
                None => Err("a worker's token that is not (or no longer) valid".into()),
            },
        }
    };
    let (claim, keys) = proto::accept_handshake(&mut conn, key_for)?;
    conn.seal(&keys, true);
    let hi = proto::recv::<Hi>(&mut conn, proto::MAX_HI)?;
    conn.socket().set_write_timeout(None)?;
    Ok((claim, hi, conn))
}

/// The pool's decoders of what comes from the other hosts, over hostile bytes (see
/// `crate::__fuzz::decode_remote`): `buf` as a caller's handshake and first message, as
/// sealed records, as an agent's messages, and as a remote worker's stream of finished
/// jobs copied into a mirror arena. How many messages and jobs decoded.
pub(crate) fn decode_for_fuzz(buf: &[u8]) -> (usize, usize) {
    // The same bytes as a caller's handshake, and as sealed records: no panic, and no
    // handshake passes without the key.
    assert!(
        !proto::handshake_for_fuzz(buf),
        "a handshake passed without the key"
    );
    assert!(super::conn::open_for_fuzz(buf) <= buf.len());
    let mut agent = MessageReader { buf: buf.to_vec() };
    let mut messages = 0;
    while let Ok(Some(_)) = agent.next() {
        messages += 1;
    }
    let Ok(mirror) = arena::create() else {
        return (messages, 0);
    };
    let (mirror, applied) = (Mutex::new(mirror), AtomicU64::new(0));
    let mut r = Reader::new(buf.to_vec());
    let jobs = r.apply(&mirror, &applied);
    // What the driver does next: read the mirror as a local worker's arena.
    let mut m = lock_of(&mirror);
    let _ = arena::refresh(&mut m, arena::MAX_LEN);
    let p = arena::progress(&m);
    let _ = arena::records(&m, &p);
    (messages, jobs)
}

/// What a dead remote worker's report adds to its mirror.
#[derive(Debug, PartialEq, Eq)]
enum OnDeath {
    /// It finished a job whose message never arrived: that job's records, as done.
    Finished,
    /// It died in the job after the last one whose results arrived (which the pool sent
    /// after it had taken in that one's results, so nobody reads the mirror now): that
    /// job's counts and records so far.
    Running,
    /// It died before beginning the job it was sent, or idle: the mirror already says so
    /// (the pool cleared it before sending; or it holds the last finished job, whose
    /// results the driver may be reading this very moment, and which must stay).
    Nothing,
}

/// The decision of [`finish`], given the report and the last job whose results arrived.
fn on_death(r: &Report, applied: u64) -> OnDeath {
    if r.done_seq > applied && r.run_seq == r.done_seq {
        OnDeath::Finished
    } else if r.run_seq == applied + 1 && r.done_seq < r.run_seq {
        OnDeath::Running
    } else {
        OnDeath::Nothing
    }
}

/// Reads one agent's messages, says the pool is alive, and notices the agent going quiet.
fn control_loop(
    link: Arc<Link>,
    server: &'static ForkServer,
    heartbeat: Duration,
    lost_after: Duration,
    stop: Arc<AtomicBool>,
) {
    use nix::poll::{PollFd, PollFlags, PollTimeout};
    let mut inbox = MessageReader::default();
    let mut heard = Instant::now();
    let mut said = Instant::now();
    let beat_ms = u16::try_from(heartbeat.as_millis().max(1)).unwrap_or(u16::MAX);
    loop {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        if said.elapsed() >= heartbeat {
            said = Instant::now();
            if link.send(&ToAgent::Ping).is_err() && !stop.load(Ordering::SeqCst) {
                link.lose("its agent's connection broke".into(), server);
                return;
            }
        }
        let mut fds = [PollFd::new(
            std::os::fd::AsFd::as_fd(&link.sock),
            PollFlags::POLLIN,
        )];
        let _ = nix::poll::poll(&mut fds, PollTimeout::from(beat_ms));
        // One message at a time (the buffer never holds more), until the connection has
        // nothing more for now.
        let got = loop {
            let got = inbox.take_from(&mut lock_of(&link.ctrl));
            loop {
                match inbox.next() {
                    Ok(Some(msg)) => {
                        heard = Instant::now();
                        on_message(&link, msg, server);
                    }
                    Ok(None) => break,
                    Err(e) => {
                        if !stop.load(Ordering::SeqCst) {
                            link.lose(format!("its agent broke the protocol: {e}"), server);
                        }
                        return;
                    }
                }
            }
            if !matches!(got, Ok(true)) {
                break got;
            }
        };
        if let Err(e) = got {
            if e.kind() == std::io::ErrorKind::InvalidData && !stop.load(Ordering::SeqCst) {
                link.lose(format!("its agent broke the protocol: {e}"), server);
                return;
            }
            if !stop.load(Ordering::SeqCst) {
                let why = if e.kind() == std::io::ErrorKind::UnexpectedEof {
                    "its agent closed its connection".to_string()
                } else {
                    format!("its agent's connection broke: {e}")
                };
                link.lose(why, server);
            }
            return;
        }
        if heard.elapsed() >= lost_after {
            link.lose(
                format!(
                    "no word from its agent for {} ms (the host may be down or cut off)",
                    lost_after.as_millis()
                ),
                server,
            );
            return;
        }
    }
}

fn on_message(link: &Link, msg: FromAgent, server: &ForkServer) {
    match msg {
        FromAgent::Spawned { token, pid } => {
            lock_of(&link.st).spawned.insert(token, Ok(pid));
            link.cond.notify_all();
        }
        FromAgent::SpawnFailed { token, why } => {
            lock_of(&link.st).spawned.insert(token, Err(why));
            link.cond.notify_all();
        }
        FromAgent::Stderr { token, bytes } => {
            let rw = lock_of(&link.st).workers.get(&token).cloned();
            if let Some(g) = rw {
                if let Some(pipe) = lock_of(&g.stderr).as_mut() {
                    let _ = pipe.write_all(&bytes);
                }
            }
        }
        FromAgent::Exited(report) => {
            let rw = lock_of(&link.st).workers.remove(&report.token);
            match rw {
                Some(g) => finish(&g, report, server),
                None => {
                    // It ended before its connection came: its spawn is waited for no more.
                    let how = match (report.signal, report.code) {
                        (Some(s), _) => format!("it was killed by signal {s}"),
                        (None, Some(c)) => format!("it exited with code {c}"),
                        (None, None) => "it ended".to_string(),
                    };
                    lock_of(&link.st).spawned.insert(report.token, Err(how));
                    link.cond.notify_all();
                }
            }
        }
        FromAgent::Ping | FromAgent::Ready | FromAgent::Refused { .. } => {}
    }
}

/// A remote worker ended: the mirror takes what its arena held, then the fork server's
/// table takes its exit, which the driver sees as any worker's death.
fn finish(g: &Gen, report: Report, server: &ForkServer) {
    // Its connection closed with it: first take in what it sent before it died.
    g.drain(DRAIN_WAIT);
    let applied = g.applied.load(Ordering::Acquire);
    {
        let mut m = lock_of(&g.mirror);
        let r = &report;
        let _ = match on_death(r, applied) {
            OnDeath::Finished => {
                arena::mirror(&mut m, r.started, r.committed, &r.records, Some(r.done_seq))
            }
            OnDeath::Running => arena::mirror(&mut m, r.started, r.committed, &r.records, None),
            OnDeath::Nothing => Ok(()),
        };
    }
    if let Some(ns) = report.timed_out_ns {
        *lock_of(&g.timed_out) = Some(Duration::from_nanos(ns));
    }
    g.close_stderr();
    let exit = match (report.signal, report.code) {
        (Some(s), _) => Exit::Signal(s),
        (None, Some(c)) => Exit::Code(c),
        (None, None) => Exit::Signal(libc::SIGKILL),
    };
    server.report_exit(g.pid, exit);
}

/// Collects length-prefixed messages as their bytes arrive, in pieces or many at once.
#[derive(Default)]
struct MessageReader {
    buf: Vec<u8>,
}

impl MessageReader {
    /// Takes in what the connection has now, without waiting, up to the end of the next
    /// whole message: the buffer holds at most one message and one read more, and a
    /// message's length is checked against [`proto::MAX_MESSAGE`] as soon as it arrives,
    /// before its bytes are. True if it stopped at a whole message (more may wait), false
    /// if the connection has nothing more now. Err at the connection's end, or on a length
    /// past the limit.
    fn take_from(&mut self, conn: &mut Conn) -> std::io::Result<bool> {
        let mut chunk = [0u8; 64 << 10];
        loop {
            let want = match self.whole()? {
                Some(whole) if self.buf.len() >= whole => return Ok(true),
                Some(whole) => (whole - self.buf.len()).min(chunk.len()),
                None => 4 - self.buf.len(),
            };
            match conn.read_available(&mut chunk[..want]) {
                Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// The size of the next message with its length, once the length has arrived; an
    /// error if it is past the limit.
    fn whole(&self) -> std::io::Result<Option<usize>> {
        let Some(prefix) = self.buf.get(..4) else {
            return Ok(None);
        };
        let len = u32::from_le_bytes(prefix.try_into().expect("4")) as usize;
        proto::check_len(len, proto::MAX_MESSAGE)?;
        Ok(Some(4 + len))
    }

    /// The next whole message, if one has arrived.
    fn next(&mut self) -> std::io::Result<Option<FromAgent>> {
        let Some(whole) = self.whole()? else {
            return Ok(None);
        };
        if self.buf.len() < whole {
            return Ok(None);
        }
        let msg = proto::recv::<FromAgent>(&mut &self.buf[..whole], proto::MAX_MESSAGE);
        self.buf.drain(..whole);
        msg.map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(run_seq: u64, done_seq: u64) -> Report {
        Report {
            run_seq,
            done_seq,
            ..Report::default()
        }
    }

    #[test]
    fn hostile_bytes_from_another_host_decode_to_errors_not_panics() {
        use proptest::prelude::*;
        // Valid streams decode whole: two agent messages, and two finished jobs.
        let mut ok = Vec::new();
        proto::send(&mut ok, &FromAgent::Ping).unwrap();
        proto::send(
            &mut ok,
            &FromAgent::Stderr {
                token: [1; proto::TOKEN_LEN],
                bytes: vec![7; 10],
            },
        )
        .unwrap();
        assert_eq!(decode_for_fuzz(&ok).0, 2);
        let mut jobs = Vec::new();
        for seq in 1..=2 {
            let mut d = Vec::new();
            proto::done(&mut d, seq, 1, 1, &[0, 1, 0, 0, 0, 42]);
            jobs.extend_from_slice(&d);
        }
        assert_eq!(decode_for_fuzz(&jobs).1, 2);
        // Anything else: no panic, and never more than the bytes could hold.
        let cases = if std::env::var_os("CI").is_some() {
            2_000
        } else {
            500
        };
        proptest!(ProptestConfig::with_cases(cases), |(buf in proptest::collection::vec(any::<u8>(), 0..512))| {
            let (messages, jobs) = decode_for_fuzz(&buf);
            prop_assert!(messages * 4 <= buf.len() && jobs * proto::DONE_HEADER <= buf.len());
        });
    }

    #[test]
    fn a_death_report_never_overwrites_results_that_arrived() {
        // Job 3 finished and its results arrived; the worker died idle, or after job 4 was
        // sent but before it began: the mirror keeps job 3's results (a soak once caught
        // them cleared while the driver read them).
        assert_eq!(on_death(&report(3, 3), 3), OnDeath::Nothing);
        // It died in job 4.
        assert_eq!(on_death(&report(4, 3), 3), OnDeath::Running);
        // It finished job 4 and died before its message left.
        assert_eq!(on_death(&report(4, 4), 3), OnDeath::Finished);
        // A fresh worker that died before its first job.
        assert_eq!(on_death(&report(0, 0), 0), OnDeath::Nothing);
        assert_eq!(on_death(&report(1, 0), 0), OnDeath::Running);
        // Every report with a job at or before the last that arrived changes nothing.
        for applied in 0..6 {
            for run in 0..=applied {
                for done in 0..=run {
                    assert_eq!(on_death(&report(run, done), applied), OnDeath::Nothing);
                }
            }
        }
    }
}

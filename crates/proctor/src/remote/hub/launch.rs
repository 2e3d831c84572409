//! The processes the launchers start (ssh, srun, a command) and what they said: launching
//! them, waiting for their agents to call, and launching a lost agent again. The hub
//! imports [`launch_one`], [`await_agents`], [`advertised`], [`Launched`], and the
//! relaunch machinery ([`Relaunches`], [`Relauncher`]), which `control.rs` asks of when an
//! agent is lost.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::accept::Lobby;
use super::control::{Link, LinkSetup};
use super::lock_of;
use crate::remote::conn::Conn;
use crate::remote::{Launch, Remote};

/// The most of a launched process's stderr kept, to say why it failed.
const LAUNCH_TAIL: usize = 8 << 10;

/// A process a launcher started (ssh, srun, a command), and the end of its stderr.
pub(super) struct Launched {
    pub(super) child: std::process::Child,
    shown: String,
    stderr: Arc<Mutex<Vec<u8>>>,
    /// The keys of the agents it starts.
    agents: Vec<u32>,
}

/// Waits in `lobby` for the agents of `keys` (see `Hub::await_agents`).
pub(super) fn await_agents(
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

/// The relaunches of lost agents, shared by the links (which ask for them), the
/// relauncher (which tries) and the driver (which waits for their slots).
pub(crate) struct Relaunches {
    pub(super) tx: crossbeam_channel::Sender<usize>,
    /// Tries per loss (`Remote::relaunch`).
    pub(super) attempts: u32,
    /// Per link: the tries it has left for its current loss.
    pub(super) left: Vec<AtomicU32>,
    /// Per link: when its last relaunch brought it back.
    pub(super) back_at: Mutex<Vec<Option<Instant>>>,
    /// Per link: lost, with a relaunch to come.
    pub(super) pending: Vec<AtomicBool>,
    /// Worker slots whose agent came back (`true`) or will not (`false`).
    pub(super) news: Mutex<Vec<(usize, bool)>>,
}

impl Relaunches {
    /// Link `index` was lost: asks for it to be launched again, if it has tries left. A
    /// host that stayed up for [`STABLE_AFTER`] since it came back has its tries renewed;
    /// one lost sooner goes on with what it had left, so one that cannot stay up is given
    /// up on.
    pub(super) fn ask(&self, index: usize) {
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
pub(super) struct Relauncher {
    pub(super) ctx: Arc<LinkSetup>,
    pub(super) relaunches: Arc<Relaunches>,
    /// Per link: how to launch its agent alone, and the slots it serves.
    pub(super) spec: Vec<(Launch, Vec<u32>)>,
    pub(super) credentials: String,
    pub(super) forward: bool,
    pub(super) connect_timeout: Duration,
    pub(super) lobby: Arc<Lobby>,
    pub(super) links: Arc<Mutex<Vec<Arc<Link>>>>,
    pub(super) launched: Arc<Mutex<Vec<Launched>>>,
    pub(super) doorbell: Arc<crate::doorbell::Doorbell>,
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
    pub(super) fn run(self, lost: crossbeam_channel::Receiver<usize>) {
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
pub(super) fn advertised(remote: &Remote, local: SocketAddr) -> String {
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
pub(super) fn launch_one(
    launch: &Launch,
    credentials: &str,
    forward: bool,
) -> Result<Launched, String> {
    use std::process::{Command, Stdio};
    let hex = credentials;
    let mut cmd = Command::new(&launch.argv[0]);
    cmd.args(&launch.argv[1..])
        .envs(launch.env.iter().map(|(k, v)| (k, v)))
        .env(crate::remote::agent::SECRET_VAR, hex)
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

//! The pool's side of remote workers: the listener agents call, the launched processes,
//! and one control thread per agent; each remote worker's connection is read by whoever
//! drives the pool.
//!
//! A remote worker looks to the rest of the pool like a local one. Its `Worker` handle has
//! an arena like any — a *mirror*, filled by the thread that reads the worker's connection
//! as each job's records arrive — a stderr pipe fed with what the agent forwards, and the
//! remote flavor of its `Host` (`pool::process::host`) where a local worker has its pid:
//! killing it asks the agent, and its exit is the agent's report, kept in its [`Gen`] and
//! announced on the pool's doorbell as the fork server announces a local worker's. The
//! recovery machine and the driver so need no remote case beyond who enforces the task
//! timeout (the agent, on its host) and what a lost host is called.
//!
//! The hub splits along its seams, one file each:
//!
//! * this file — [`Hub`] itself: starting it, asking an agent for a worker, shutting down;
//!   what the pool imports from `remote::hub` is here ([`Hub`], [`Gen`], the fuzz entry);
//! * `accept.rs` — the listener: the handshakes of callers and the lobby where the
//!   connections that passed wait to be claimed;
//! * `launch.rs` — the launched processes (ssh, srun, a command), waiting for their agents,
//!   and launching a lost agent again;
//! * `control.rs` — one agent's control connection: its thread, its messages, a worker's
//!   death report, and a lost agent;
//! * `worker.rs` — one remote worker's connection ([`Gen`]), and the reader that copies
//!   its finished jobs into the mirror.

use std::fs::File;
use std::net::{Shutdown, TcpListener};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

mod accept;
mod control;
mod launch;
mod worker;

use super::Remote;
use super::conn::Conn;
use super::proto::{self, KEY_LEN, ToAgent, Token};
use crate::arena;
use crate::server::ForkServer;
use crate::sys::SharedMapping;
use accept::{Arrivals, Expected, Lobby, accept_loop};
use control::{Link, LinkSetup, MessageReader};
use launch::{Launched, Relauncher, Relaunches, advertised, await_agents, launch_one};
pub(crate) use worker::Gen;
use worker::{End, Ends, Reader};
use zeroize::Zeroizing;

/// How long a worker's start may take: the agent's fork and its connection back.
const SPAWN_WAIT: Duration = Duration::from_secs(10);
/// How long a dropped pool waits for its launched processes to leave before killing them.
const LAUNCH_EXIT_WAIT: Duration = Duration::from_secs(3);

/// Locks whether or not a holder panicked (the state under these locks stays whole).
fn lock_of<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
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
    /// Where its workers' ends are counted and announced.
    ends: Arc<Ends>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("address", &self.address)
            .field("agents", &lock_of(&self.links).len())
            .finish()
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
            ends: Arc::new(Ends::new(Arc::clone(&doorbell))),
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
            identity: crate::image::identity().to_string(),
            anchor: crate::image::anchor_address(),
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

    /// How many of the pool's remote workers ended so far (see [`ForkServer::deaths`]: a
    /// driver looks for dead workers only when one of the two moved).
    pub(crate) fn deaths(&self) -> u64 {
        self.ends.count()
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

impl Hub {
    /// Asks slot `slot`'s agent for a worker. Returns it, and its connection to write jobs to.
    pub(crate) fn spawn(
        &self,
        slot: usize,
        mirror: SharedMapping,
        stderr: File,
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
        let rw = Arc::new(Gen {
            token,
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
            end: End::default(),
            ends: Arc::clone(&self.ends),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::remote::proto::FromAgent;

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
}

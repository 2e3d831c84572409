//! The listener agents and workers call: each caller's handshake on a thread of its own,
//! under one deadline, and the lobby where the connections that passed wait for the hub to
//! claim them. The hub imports [`Lobby`], [`Arrivals`], [`Expected`] and [`accept_loop`];
//! nothing else here is for use outside.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use super::lock_of;
use crate::remote::conn::Conn;
use crate::remote::proto::{self, Claim, Hi, KEY_LEN, Token};
use zeroize::Zeroizing;

/// Handshakes the listener runs at once (see `accept_loop`).
const MAX_HANDSHAKES: usize = 256;

/// Connections that passed the handshake, waiting to be claimed, and the claims the pool
/// accepts now.
#[derive(Default)]
pub(super) struct Arrivals {
    pub(super) agents: HashMap<u32, (Conn, String, u32)>,
    pub(super) data: HashMap<Token, Conn>,
    /// The agents the pool waits for, by slot: a caller claiming another slot (or one whose
    /// agent already came) is refused before it is heard.
    pub(super) awaited: HashSet<u32>,
    /// The spawn requests whose worker may call, each once.
    pub(super) expected: HashMap<Token, Expected>,
    /// Why connections were refused (a wrong secret, say): quoted if agents never come.
    pub(super) refused: Vec<String>,
}

/// A spawn request whose worker has not called yet.
pub(super) struct Expected {
    /// The slot of the agent it was asked of.
    pub(super) slot: u32,
    /// The address that agent called from: its worker calls from the same host.
    pub(super) host: IpAddr,
    /// The worker's one-time key (see `proto::worker_key`).
    pub(super) key: Zeroizing<[u8; KEY_LEN]>,
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

pub(super) struct Lobby {
    pub(super) arrivals: Mutex<Arrivals>,
    pub(super) cond: Condvar,
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
pub(super) fn accept_loop(
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

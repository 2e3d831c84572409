//! What the pool and a remote agent say to each other over TCP, and how each proves to the
//! other that it holds the pool's secret before anything else is read.
//!
//! Every connection — an agent's control connection and each worker's data connection —
//! opens with a mutual challenge–response (HMAC-SHA-256 over both sides' fresh nonces and
//! the caller's [`Claim`]): an agent proves the 32-byte secret the launcher handed it
//! through its environment or stdin, a worker the one-time key of its spawn request
//! ([`worker_key`]). A peer without the key learns nothing and can make no worker run
//! anything: job frames name functions by address, so an unauthenticated pool must never
//! reach a worker, and an unauthenticated worker must never see a job. The handshake also
//! yields the keys of the connection's sealed records when it runs without TLS (see
//! `conn.rs`).
//!
//! After the handshake the control connection carries [`ToAgent`] and [`FromAgent`]
//! messages (postcard, behind a 4-byte length); a data connection carries the local wire's
//! job frames one way and [`done`] messages the other.

use std::io::{Read, Write};
use std::time::Duration;

use hmac::{KeyInit, Mac};
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, Zeroizing};

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// The first bytes of every connection, both ways: the protocol and its version.
const MAGIC: &[u8; 8] = b"PROCTOR2";
/// Bytes of a nonce, of a MAC, and of the secret.
pub(crate) const KEY_LEN: usize = 32;
/// The largest control message from an agent: a death report carries the dead job's
/// committed records, which may be as large as a job's results.
pub(crate) const MAX_MESSAGE: usize = crate::arena::MAX_LEN + (1 << 20);
/// The largest message the pool sends an agent (its hello is the longest).
pub(crate) const MAX_TO_AGENT: usize = 64 << 10;
/// The largest first message of a connection (who is calling).
pub(crate) const MAX_HI: usize = 4 << 10;
/// The largest answer of an agent to the pool's hello (a refusal says why).
pub(crate) const MAX_ANSWER: usize = 64 << 10;
/// How long either side waits for the other's half of the handshake.
pub(crate) const HANDSHAKE_WAIT: Duration = Duration::from_secs(10);

/// A fresh random secret or nonce from the kernel.
pub(crate) fn random_key() -> std::io::Result<[u8; KEY_LEN]> {
    let mut key = [0u8; KEY_LEN];
    getrandom::fill(&mut key).map_err(|e| std::io::Error::other(e.to_string()))?;
    Ok(key)
}

/// The secret as text, for the launcher to hand over.
pub(crate) fn to_hex(key: &[u8]) -> String {
    key.iter().map(|b| format!("{b:02x}")).collect()
}

/// What the launcher hands an agent: the secret, and with TLS the fingerprint of the
/// pool's certificate, as `<secret>` or `<secret>/<fingerprint>` in hex.
pub(crate) fn credentials(secret: &[u8; KEY_LEN], pin: Option<&[u8; KEY_LEN]>) -> String {
    match pin {
        Some(pin) => format!("{}/{}", to_hex(secret), to_hex(pin)),
        None => to_hex(secret),
    }
}

/// The credentials back from their text.
pub(crate) fn parse_credentials(text: &str) -> Option<([u8; KEY_LEN], Option<[u8; KEY_LEN]>)> {
    match text.trim().split_once('/') {
        Some((secret, pin)) => Some((from_hex(secret)?, Some(from_hex(pin)?))),
        None => Some((from_hex(text)?, None)),
    }
}

/// The secret back from its text.
pub(crate) fn from_hex(text: &str) -> Option<[u8; KEY_LEN]> {
    let text = text.trim();
    if text.len() != 2 * KEY_LEN || !text.is_ascii() {
        return None;
    }
    let mut key = [0u8; KEY_LEN];
    for (i, b) in key.iter_mut().enumerate() {
        *b = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(key)
}

fn mac(secret: &[u8; KEY_LEN], label: &[u8], parts: &[&[u8]]) -> HmacSha256 {
    let mut m = <HmacSha256 as KeyInit>::new_from_slice(secret).expect("HMAC takes any key length");
    m.update(MAGIC);
    m.update(label);
    for p in parts {
        m.update(p);
    }
    m
}

fn refused(why: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::PermissionDenied, why.to_string())
}

/// Bytes of a data token: 128 random bits.
pub(crate) const TOKEN_LEN: usize = 16;
/// A data connection's token: names one spawn request, once.
pub(crate) type Token = [u8; TOKEN_LEN];

/// A fresh random token.
pub(crate) fn random_token() -> std::io::Result<Token> {
    let mut t = [0u8; TOKEN_LEN];
    getrandom::fill(&mut t).map_err(|e| std::io::Error::other(e.to_string()))?;
    Ok(t)
}

/// Who a caller says it is, in its answer to the pool's challenge (and so covered by its
/// proof): the pool picks the key to check the proof with from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Claim {
    /// The agent of worker slot `slot` (its first), proving the pool's secret.
    Agent { slot: u32 },
    /// The data connection of the worker started for spawn request `token` of the agent of
    /// slot `slot`, proving that request's one-time worker key (see [`worker_key`]).
    Worker { slot: u32, token: Token },
}

/// Bytes of a claim on the wire: its kind, three zeros, the slot, the token (zeros for an
/// agent).
const CLAIM_LEN: usize = 8 + TOKEN_LEN;

impl Claim {
    fn encode(&self) -> [u8; CLAIM_LEN] {
        let mut out = [0u8; CLAIM_LEN];
        let (kind, slot, token) = match *self {
            Claim::Agent { slot } => (1, slot, [0; TOKEN_LEN]),
            Claim::Worker { slot, token } => (2, slot, token),
        };
        out[0] = kind;
        out[4..8].copy_from_slice(&slot.to_le_bytes());
        out[8..].copy_from_slice(&token);
        out
    }

    fn decode(b: &[u8]) -> Option<Claim> {
        let slot = u32::from_le_bytes(b.get(4..8)?.try_into().ok()?);
        let token: Token = b.get(8..CLAIM_LEN)?.try_into().ok()?;
        match (b.first()?, b.get(1..4)?) {
            (1, [0, 0, 0]) if token == [0; TOKEN_LEN] => Some(Claim::Agent { slot }),
            (2, [0, 0, 0]) => Some(Claim::Worker { slot, token }),
            _ => None,
        }
    }
}

/// The one-time key of the worker started for spawn request `token` of the agent of slot
/// `slot`: what its data connection proves, instead of the pool's secret, so that a worker
/// (and the tasks it runs) never holds the secret. The pool accepts it once.
pub(crate) fn worker_key(
    secret: &[u8; KEY_LEN],
    slot: u32,
    token: &Token,
) -> Zeroizing<[u8; KEY_LEN]> {
    Zeroizing::new(
        mac(secret, b"worker", &[&slot.to_le_bytes(), token])
            .finalize()
            .into_bytes()
            .into(),
    )
}

/// The keys of a connection's sealed records (see `conn.rs`), one per direction, derived
/// from the handshake: both sides' nonces, the claim, and the key it proved. Zeroed when
/// dropped.
pub(crate) struct SessionKeys {
    pub(crate) send: [u8; KEY_LEN],
    pub(crate) recv: [u8; KEY_LEN],
}

impl std::fmt::Debug for SessionKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionKeys(..)")
    }
}

impl Drop for SessionKeys {
    fn drop(&mut self) {
        self.send.zeroize();
        self.recv.zeroize();
    }
}

impl SessionKeys {
    /// What masks the frame secret in the pool's hello on this connection: both sides
    /// derive it from the key of the pool's direction.
    pub(crate) fn frame_mask(&self, pool_side: bool) -> u64 {
        let key = if pool_side { &self.send } else { &self.recv };
        let m = mac(key, b"frame secret mask", &[]).finalize().into_bytes();
        u64::from_le_bytes(m[..8].try_into().expect("8 bytes"))
    }
}

fn session_keys(
    key: &[u8; KEY_LEN],
    pool_nonce: &[u8],
    agent_nonce: &[u8],
    claim: &[u8],
    pool_side: bool,
) -> SessionKeys {
    let dir = |label: &[u8]| -> [u8; KEY_LEN] {
        mac(key, label, &[pool_nonce, agent_nonce, claim])
            .finalize()
            .into_bytes()
            .into()
    };
    let (from_pool, from_agent) = (
        dir(b"records from the pool"),
        dir(b"records from the agent"),
    );
    if pool_side {
        SessionKeys {
            send: from_pool,
            recv: from_agent,
        }
    } else {
        SessionKeys {
            send: from_agent,
            recv: from_pool,
        }
    }
}

/// The pool's side: challenge the peer, hear who it claims to be, check its proof with the
/// key `key_for` gives for that claim (an error refuses the claim: a slot nobody awaits, a
/// token not issued or used already), then answer its challenge. Returns the claim and the
/// connection's record keys.
pub(crate) fn accept_handshake(
    s: &mut (impl Read + Write),
    key_for: impl FnOnce(&Claim) -> Result<Zeroizing<[u8; KEY_LEN]>, String>,
) -> std::io::Result<(Claim, SessionKeys)> {
    let ours = random_key()?;
    let mut hello = [0u8; 8 + KEY_LEN];
    hello[..8].copy_from_slice(MAGIC);
    hello[8..].copy_from_slice(&ours);
    s.write_all(&hello)?;
    s.flush()?;
    let mut answer = [0u8; 8 + CLAIM_LEN + 2 * KEY_LEN];
    s.read_exact(&mut answer)?;
    if &answer[..8] != MAGIC {
        return Err(refused("the peer does not speak proctor's protocol"));
    }
    let claim_bytes = &answer[8..8 + CLAIM_LEN];
    let claim = Claim::decode(claim_bytes)
        .ok_or_else(|| refused("the peer's claim is not the protocol's"))?;
    let theirs = &answer[8 + CLAIM_LEN..8 + CLAIM_LEN + KEY_LEN];
    let key = key_for(&claim).map_err(|why| refused(&why))?;
    mac(&key, b"agent", &[&ours, theirs, claim_bytes])
        .verify_slice(&answer[8 + CLAIM_LEN + KEY_LEN..])
        .map_err(|_| refused("the peer does not know the pool's secret"))?;
    let proof = mac(&key, b"pool", &[theirs, &ours, claim_bytes])
        .finalize()
        .into_bytes();
    s.write_all(&proof)?;
    s.flush()?;
    Ok((claim, session_keys(&key, &ours, theirs, claim_bytes, true)))
}

/// The agent's (or a worker's) side: claim to be `claim`, answer the pool's challenge with
/// `key` (the pool's secret, or a worker key), then check the pool's answer to ours.
pub(crate) fn connect_handshake(
    s: &mut (impl Read + Write),
    key: &[u8; KEY_LEN],
    claim: &Claim,
) -> std::io::Result<SessionKeys> {
    let mut hello = [0u8; 8 + KEY_LEN];
    s.read_exact(&mut hello)?;
    if &hello[..8] != MAGIC {
        return Err(refused("the pool's address answers with another protocol"));
    }
    let theirs = &hello[8..];
    let ours = random_key()?;
    let claim_bytes = claim.encode();
    let proof = mac(key, b"agent", &[theirs, &ours, &claim_bytes])
        .finalize()
        .into_bytes();
    let mut answer = Vec::with_capacity(8 + CLAIM_LEN + 2 * KEY_LEN);
    answer.extend_from_slice(MAGIC);
    answer.extend_from_slice(&claim_bytes);
    answer.extend_from_slice(&ours);
    answer.extend_from_slice(&proof);
    s.write_all(&answer)?;
    s.flush()?;
    let mut back = [0u8; KEY_LEN];
    s.read_exact(&mut back)?;
    mac(key, b"pool", &[&ours, theirs, &claim_bytes])
        .verify_slice(&back)
        .map_err(|_| refused("the pool did not prove it knows the secret"))?;
    Ok(session_keys(key, theirs, &ours, &claim_bytes, false))
}

/// The first message on a connection after the handshake: who is calling.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) enum Hi {
    /// An agent (of the slot it claimed) on `host`, as process `pid` there.
    Agent { host: String, pid: u32 },
    /// A worker's data connection (for the token it claimed).
    Data,
}

/// What the pool tells the agent, once the agent said hello.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct Hello {
    /// The pool's binary (see `image::identity`): functions travel as addresses.
    pub(crate) identity: String,
    /// The pool's anchor address, to relocate those addresses.
    pub(crate) anchor: u64,
    /// Mixed into job frames (see `ForkServer::secret`), masked with the control
    /// connection's [`SessionKeys::frame_mask`]: never on the network as it is.
    pub(crate) frame_secret: u64,
    pub(crate) task_timeout_ns: Option<u64>,
    pub(crate) memory_limit: Option<u64>,
    /// How often each side says it is alive, and how long without a word means the other
    /// is gone.
    pub(crate) heartbeat_ms: u64,
    pub(crate) lost_after_ms: u64,
}

/// Pool to agent.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) enum ToAgent {
    Hello(Hello),
    /// Start a worker; its data connection says `token`.
    Spawn {
        token: Token,
    },
    /// Send `signal` to the process group of worker `token`.
    Kill {
        token: Token,
        signal: i32,
    },
    /// Still here.
    Ping,
}

/// How a remote worker ended, with what its arena held at that moment.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
pub(crate) struct Report {
    pub(crate) token: Token,
    pub(crate) signal: Option<i32>,
    pub(crate) code: Option<u8>,
    /// The number of the job the worker had begun (counted from 1), and of the last one it
    /// finished.
    pub(crate) run_seq: u64,
    pub(crate) done_seq: u64,
    pub(crate) started: u64,
    pub(crate) committed: u64,
    /// The records committed in job `run_seq`.
    pub(crate) records: Vec<u8>,
    /// The agent killed it for overrunning the task timeout, after this long.
    pub(crate) timed_out_ns: Option<u64>,
}

/// Agent to pool.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) enum FromAgent {
    /// The agent checked the pool's binary and settings and is ready.
    Ready,
    /// The agent cannot serve this pool (another build of the program, say).
    Refused {
        why: String,
    },
    Spawned {
        token: Token,
        pid: u32,
    },
    SpawnFailed {
        token: Token,
        why: String,
    },
    /// What worker `token` wrote to its stderr.
    Stderr {
        token: Token,
        bytes: Vec<u8>,
    },
    Exited(Report),
    Ping,
}

/// Writes one message.
pub(crate) fn send<T: Serialize>(w: &mut impl Write, msg: &T) -> std::io::Result<()> {
    let body = postcard::to_allocvec(msg).map_err(std::io::Error::other)?;
    let mut out = Vec::with_capacity(4 + body.len());
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&body);
    w.write_all(&out)
}

/// Reads one message of at most `limit` bytes; a longer length or a body that does not
/// decode is `InvalidData`. The body's buffer grows with the bytes that arrive, not with
/// the length the peer claims, so a peer that announces a large message and sends nothing
/// costs no memory.
pub(crate) fn recv<T: for<'de> Deserialize<'de>>(
    r: &mut impl Read,
    limit: usize,
) -> std::io::Result<T> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len)?;
    let len = u32::from_le_bytes(len) as usize;
    check_len(len, limit)?;
    let mut body = Vec::with_capacity(len.min(READ_CHUNK));
    r.take(len as u64).read_to_end(&mut body)?;
    if body.len() < len {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    postcard::from_bytes(&body).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

/// The first allocation for a message's body: larger ones grow as their bytes arrive.
const READ_CHUNK: usize = 64 << 10;

/// `InvalidData` if a peer's `len` is past `limit`: checked before anything is allocated.
pub(crate) fn check_len(len: usize, limit: usize) -> std::io::Result<()> {
    if len > limit {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("a {len}-byte message is past the {limit}-byte limit"),
        ));
    }
    Ok(())
}

/// Bytes before a `done` message's records: length, job number, started, committed.
pub(crate) const DONE_HEADER: usize = 4 + 3 * 8;

/// The message a remote worker sends when job `seq` is finished: its counts and records.
pub(crate) fn done(out: &mut Vec<u8>, seq: u64, started: u64, committed: u64, records: &[u8]) {
    out.clear();
    out.extend_from_slice(&((DONE_HEADER - 4 + records.len()) as u32).to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&started.to_le_bytes());
    out.extend_from_slice(&committed.to_le_bytes());
    out.extend_from_slice(records);
}

/// A `done` message's fields, from its body (the bytes after the length).
pub(crate) fn parse_done(body: &[u8]) -> Option<(u64, u64, u64, &[u8])> {
    let word = |k: usize| {
        Some(u64::from_le_bytes(
            body.get(8 * k..8 * k + 8)?.try_into().ok()?,
        ))
    };
    Some((word(0)?, word(1)?, word(2)?, body.get(24..)?))
}

/// Runs the pool's side of a handshake and the first messages over `buf` as what the
/// caller sends (see `crate::__fuzz::decode_remote`): the claim and proof, then `Hi`, and
/// the same bytes as an agent's reading of the pool's messages. True if a handshake passed
/// (it cannot, without the key's MAC).
pub(crate) fn handshake_for_fuzz(buf: &[u8]) -> bool {
    /// Reads `buf`, and takes whatever is written.
    struct Peer<'a>(&'a [u8]);
    impl Read for Peer<'_> {
        fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
            self.0.read(out)
        }
    }
    impl Write for Peer<'_> {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut peer = Peer(buf);
    let passed = accept_handshake(&mut peer, |_: &Claim| Ok(Zeroizing::new([3; KEY_LEN]))).is_ok();
    let _ = recv::<Hi>(&mut peer, MAX_HI);
    let mut again = buf;
    while recv::<ToAgent>(&mut again, MAX_TO_AGENT).is_ok() {}
    passed
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixStream;

    fn handshake(
        pool: [u8; KEY_LEN],
        agent: [u8; KEY_LEN],
        claim: Claim,
    ) -> (std::io::Result<Claim>, std::io::Result<()>) {
        let (mut a, mut b) = UnixStream::pair().unwrap();
        let t = std::thread::spawn(move || {
            accept_handshake(&mut a, |c: &Claim| match c {
                Claim::Agent { slot: 0 } => Ok(Zeroizing::new(pool)),
                Claim::Worker { slot: 0, token } => Ok(worker_key(&pool, 0, token)),
                _ => Err("no such slot is awaited".to_string()),
            })
            .map(|(c, _)| c)
        });
        let key = match claim {
            Claim::Agent { .. } => Zeroizing::new(agent),
            Claim::Worker { slot, token } => worker_key(&agent, slot, &token),
        };
        let them = connect_handshake(&mut b, &key, &claim).map(drop);
        drop(b);
        (t.join().unwrap(), them)
    }

    #[test]
    fn both_sides_pass_with_the_same_secret_and_fail_with_another() {
        let key = random_key().unwrap();
        let agent = Claim::Agent { slot: 0 };
        let (p, a) = handshake(key, key, agent);
        assert!(
            p.as_ref().is_ok_and(|c| *c == agent) && a.is_ok(),
            "{p:?} {a:?}"
        );
        let mut other = key;
        other[0] ^= 1;
        let (p, a) = handshake(key, other, agent);
        assert_eq!(p.unwrap_err().kind(), std::io::ErrorKind::PermissionDenied);
        assert!(
            a.is_err(),
            "the agent hears no proof from a pool that refused it"
        );
        // A worker proves its one-time key; a claim the pool does not await is refused.
        let token = random_token().unwrap();
        let worker = Claim::Worker { slot: 0, token };
        let (p, a) = handshake(key, key, worker);
        assert!(
            p.as_ref().is_ok_and(|c| *c == worker) && a.is_ok(),
            "{p:?} {a:?}"
        );
        let (p, _) = handshake(key, key, Claim::Agent { slot: 3 });
        assert!(p.unwrap_err().to_string().contains("awaited"));
        // Another slot's key for the same token is another key.
        assert_ne!(*worker_key(&key, 0, &token), *worker_key(&key, 1, &token));
    }

    #[test]
    fn both_sides_derive_the_same_record_keys_and_frame_mask() {
        let key = random_key().unwrap();
        let (mut a, mut b) = UnixStream::pair().unwrap();
        let t = std::thread::spawn(move || {
            accept_handshake(&mut a, |_: &Claim| Ok(Zeroizing::new(key)))
                .unwrap()
                .1
        });
        let agent = connect_handshake(&mut b, &key, &Claim::Agent { slot: 0 }).unwrap();
        let pool = t.join().unwrap();
        assert_eq!((pool.send, pool.recv), (agent.recv, agent.send));
        assert_ne!(pool.send, pool.recv);
        assert_eq!(pool.frame_mask(true), agent.frame_mask(false));
    }

    #[test]
    fn a_peer_of_another_protocol_is_refused_with_a_reason() {
        let key = random_key().unwrap();
        let (mut a, mut b) = UnixStream::pair().unwrap();
        let t = std::thread::spawn(move || {
            accept_handshake(&mut a, |_: &Claim| Ok(Zeroizing::new(key))).map(|(c, _)| c)
        });
        let mut junk = [0u8; 8 + KEY_LEN];
        b.read_exact(&mut junk).unwrap();
        b.write_all(&[b'G'; 8 + CLAIM_LEN + 2 * KEY_LEN]).unwrap();
        let e = t.join().unwrap().unwrap_err();
        assert!(e.to_string().contains("protocol"), "{e}");
    }

    #[test]
    fn secrets_and_messages_read_back_as_written() {
        let key = random_key().unwrap();
        assert_eq!(from_hex(&to_hex(&key)), Some(key));
        assert_eq!(from_hex("zz"), None);
        let pin = random_key().unwrap();
        assert_eq!(
            parse_credentials(&credentials(&key, None)),
            Some((key, None))
        );
        assert_eq!(
            parse_credentials(&credentials(&key, Some(&pin))),
            Some((key, Some(pin)))
        );
        assert_eq!(parse_credentials(&format!("{}/", to_hex(&key))), None);
        let mut buf = Vec::new();
        let msg = FromAgent::Exited(Report {
            token: [7; TOKEN_LEN],
            signal: Some(11),
            records: vec![1, 2, 3],
            ..Report::default()
        });
        send(&mut buf, &msg).unwrap();
        assert_eq!(recv::<FromAgent>(&mut &buf[..], MAX_MESSAGE).unwrap(), msg);
        let mut huge = (MAX_MESSAGE as u32 + 1).to_le_bytes().to_vec();
        huge.extend_from_slice(&[0; 16]);
        let e = recv::<FromAgent>(&mut &huge[..], MAX_MESSAGE).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidData);
        let mut d = Vec::new();
        done(&mut d, 3, 4, 5, b"xy");
        assert_eq!(
            u32::from_le_bytes(d[..4].try_into().unwrap()) as usize,
            d.len() - 4
        );
        assert_eq!(parse_done(&d[4..]), Some((3, 4, 5, &b"xy"[..])));
        assert_eq!(parse_done(&d[4..20]), None);
    }
}

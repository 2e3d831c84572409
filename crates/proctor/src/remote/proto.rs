//! What the pool and a remote agent say to each other over TCP, and how each proves to the
//! other that it holds the pool's secret before anything else is read.
//!
//! Every connection — an agent's control connection and each worker's data connection —
//! opens with a mutual challenge–response (HMAC-SHA-256 over both sides' fresh nonces, with
//! the 32-byte secret the launcher handed the agent through its environment or stdin). A
//! peer without the secret learns nothing and can make no worker run anything: job frames
//! name functions by address, so an unauthenticated pool must never reach a worker, and an
//! unauthenticated worker must never see a job.
//!
//! After the handshake the control connection carries [`ToAgent`] and [`FromAgent`]
//! messages (postcard, behind a 4-byte length); a data connection carries the local wire's
//! job frames one way and [`done`] messages the other.

use std::io::{Read, Write};
use std::time::Duration;

use hmac::{KeyInit, Mac};
use serde::{Deserialize, Serialize};

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// The first bytes of every connection, both ways: the protocol and its version.
const MAGIC: &[u8; 8] = b"PROCTOR1";
/// Bytes of a nonce, of a MAC, and of the secret.
pub(crate) const KEY_LEN: usize = 32;
/// The largest control message: a death report carries the dead job's committed records.
pub(crate) const MAX_MESSAGE: usize = crate::arena::MAX_LEN + (1 << 20);
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

fn mac(secret: &[u8; KEY_LEN], label: &[u8], a: &[u8], b: &[u8]) -> HmacSha256 {
    let mut m = <HmacSha256 as KeyInit>::new_from_slice(secret).expect("HMAC takes any key length");
    m.update(MAGIC);
    m.update(label);
    m.update(a);
    m.update(b);
    m
}

fn refused(why: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::PermissionDenied, why.to_string())
}

/// The pool's side: challenge the peer, check its answer, then answer its challenge.
pub(crate) fn accept_handshake(
    s: &mut (impl Read + Write),
    secret: &[u8; KEY_LEN],
) -> std::io::Result<()> {
    let ours = random_key()?;
    let mut hello = [0u8; 8 + KEY_LEN];
    hello[..8].copy_from_slice(MAGIC);
    hello[8..].copy_from_slice(&ours);
    s.write_all(&hello)?;
    let mut answer = [0u8; 8 + 2 * KEY_LEN];
    s.read_exact(&mut answer)?;
    if &answer[..8] != MAGIC {
        return Err(refused("the peer does not speak proctor's protocol"));
    }
    let theirs = &answer[8..8 + KEY_LEN];
    mac(secret, b"agent", &ours, theirs)
        .verify_slice(&answer[8 + KEY_LEN..])
        .map_err(|_| refused("the peer does not know the pool's secret"))?;
    let proof = mac(secret, b"pool", theirs, &ours).finalize().into_bytes();
    s.write_all(&proof)?;
    s.flush()
}

/// The agent's side: answer the pool's challenge, then check the pool's answer to ours.
pub(crate) fn connect_handshake(
    s: &mut (impl Read + Write),
    secret: &[u8; KEY_LEN],
) -> std::io::Result<()> {
    let mut hello = [0u8; 8 + KEY_LEN];
    s.read_exact(&mut hello)?;
    if &hello[..8] != MAGIC {
        return Err(refused("the pool's address answers with another protocol"));
    }
    let theirs = &hello[8..];
    let ours = random_key()?;
    let proof = mac(secret, b"agent", theirs, &ours).finalize().into_bytes();
    let mut answer = Vec::with_capacity(8 + 2 * KEY_LEN);
    answer.extend_from_slice(MAGIC);
    answer.extend_from_slice(&ours);
    answer.extend_from_slice(&proof);
    s.write_all(&answer)?;
    let mut back = [0u8; KEY_LEN];
    s.read_exact(&mut back)?;
    mac(secret, b"pool", &ours, theirs)
        .verify_slice(&back)
        .map_err(|_| refused("the pool did not prove it knows the secret"))
}

/// The first message on a connection after the handshake: who is calling.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) enum Hi {
    /// An agent, for worker slot `slot`, on `host`, as process `pid` there.
    Agent { slot: u32, host: String, pid: u32 },
    /// The data connection of the worker the agent starts for spawn request `token`.
    Data { token: u64 },
}

/// What the pool tells the agent, once the agent said hello.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct Hello {
    /// The pool's binary (see `exec::identity`): functions travel as addresses.
    pub(crate) identity: String,
    /// The pool's anchor address, to relocate those addresses.
    pub(crate) anchor: u64,
    /// Mixed into job frames (see `ForkServer::secret`).
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
        token: u64,
    },
    /// Send `signal` to the process group of worker `token`.
    Kill {
        token: u64,
        signal: i32,
    },
    /// Still here.
    Ping,
}

/// How a remote worker ended, with what its arena held at that moment.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
pub(crate) struct Report {
    pub(crate) token: u64,
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
        token: u64,
        pid: u32,
    },
    SpawnFailed {
        token: u64,
        why: String,
    },
    /// What worker `token` wrote to its stderr.
    Stderr {
        token: u64,
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

/// Reads one message; a length past [`MAX_MESSAGE`] or a body that does not decode is
/// `InvalidData`.
pub(crate) fn recv<T: for<'de> Deserialize<'de>>(r: &mut impl Read) -> std::io::Result<T> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len)?;
    let len = u32::from_le_bytes(len) as usize;
    if len > MAX_MESSAGE {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("a {len}-byte message is past the {MAX_MESSAGE}-byte limit"),
        ));
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body)?;
    postcard::from_bytes(&body).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixStream;

    fn handshake(
        pool: [u8; KEY_LEN],
        agent: [u8; KEY_LEN],
    ) -> (std::io::Result<()>, std::io::Result<()>) {
        let (mut a, mut b) = UnixStream::pair().unwrap();
        let t = std::thread::spawn(move || accept_handshake(&mut a, &pool));
        let them = connect_handshake(&mut b, &agent);
        drop(b);
        (t.join().unwrap(), them)
    }

    #[test]
    fn both_sides_pass_with_the_same_secret_and_fail_with_another() {
        let key = random_key().unwrap();
        let (p, a) = handshake(key, key);
        assert!(p.is_ok() && a.is_ok(), "{p:?} {a:?}");
        let mut other = key;
        other[0] ^= 1;
        let (p, a) = handshake(key, other);
        assert_eq!(p.unwrap_err().kind(), std::io::ErrorKind::PermissionDenied);
        assert!(
            a.is_err(),
            "the agent hears no proof from a pool that refused it"
        );
    }

    #[test]
    fn a_peer_of_another_protocol_is_refused_with_a_reason() {
        let key = random_key().unwrap();
        let (mut a, mut b) = UnixStream::pair().unwrap();
        let t = std::thread::spawn(move || accept_handshake(&mut a, &key));
        let mut junk = [0u8; 8 + KEY_LEN];
        b.read_exact(&mut junk).unwrap();
        b.write_all(&[b'G'; 8 + 2 * KEY_LEN]).unwrap();
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
            token: 7,
            signal: Some(11),
            records: vec![1, 2, 3],
            ..Report::default()
        });
        send(&mut buf, &msg).unwrap();
        assert_eq!(recv::<FromAgent>(&mut &buf[..]).unwrap(), msg);
        let mut huge = (MAX_MESSAGE as u32 + 1).to_le_bytes().to_vec();
        huge.extend_from_slice(&[0; 16]);
        let e = recv::<FromAgent>(&mut &huge[..]).unwrap_err();
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

//! Message transports between two endpoints: two threads, or two processes.
//!
//! One trait ([`Transport`]), one file per implementation, one dispatch point ([`pair`]), the
//! layout of crossbeam-channel's `src/channel.rs` + `src/flavors/`:
//!
//! | kind | file | carries messages as | wait strategy |
//! |---|---|---|---|
//! | [`TransportKind::Pipe`] | `pipe.rs` | length-prefixed frames over two pipes | blocking `read`/`write` |
//! | [`TransportKind::Unix`] | `unix.rs` | length-prefixed frames over a unix stream socket pair | blocking `recv`/`sendmsg` |
//! | [`TransportKind::Tcp`] | `tcp.rs` | length-prefixed frames over TCP on 127.0.0.1 | blocking, `TCP_NODELAY` |
//! | [`TransportKind::Mq`] | `mq.rs` | POSIX message queues, split into queue-sized parts | `poll` |
//! | [`TransportKind::Shm`] | `shm.rs` | a shared-memory ring per direction | spin, yield, then futex |
//! | [`TransportKind::Channel`] | `channel.rs` | crossbeam channel (threads only) | crossbeam's own |
//!
//! # Using a pair across `fork`
//!
//! Create the pair with [`pair`] before `fork`; afterwards each process keeps one endpoint and
//! drops the other, exactly as with a pipe: "the peer is gone" is detected when the last copy
//! of the peer's endpoint is closed, so a copy left open in the wrong process delays that
//! detection until that process exits. Every descriptor is created close-on-exec.
//!
//! # Framing and limits
//!
//! Every pair has a `max_message` limit, fixed at creation. Sending a longer message is an
//! [`Error::MessageTooLarge`]; receiving a frame whose header announces a longer one is an
//! [`Error::FrameTooLarge`] (a corrupt or hostile peer), never a panic, a truncation or an
//! allocation of the announced size. Stream transports put a 4-byte little-endian length in
//! front of each message and loop over partial reads and writes.
//!
//! # Signals
//!
//! The pipe transport writes with `write(2)`: a write to a pipe whose reader is gone raises
//! `SIGPIPE`, which Rust programs ignore by default (the runtime sets it to `SIG_IGN` before
//! `main`), so the write fails with `EPIPE` and becomes [`Error::PeerGone`]. Sockets use
//! `MSG_NOSIGNAL` and do not depend on that.

use std::fmt;
use std::io::{self, IoSlice};
use std::str::FromStr;

pub mod channel;
#[cfg(target_os = "linux")]
pub mod mq;
pub mod pipe;
#[cfg(target_os = "linux")]
pub mod shm;
pub mod tcp;
pub mod unix;

/// A bidirectional, message-oriented channel endpoint.
///
/// Messages arrive whole and in order. Both calls block; neither allocates per message once
/// the receive buffer has grown to the largest message seen.
pub trait Transport: fmt::Debug + Send {
    /// Which transport this is.
    fn kind(&self) -> TransportKind;

    /// The largest message, in bytes, this endpoint sends or accepts.
    fn max_message(&self) -> usize;

    /// Whether the two endpoints may live in different processes (created before `fork`).
    fn supports_processes(&self) -> bool {
        self.kind().supports_processes()
    }

    /// Sends one message, blocking while the transport is full.
    ///
    /// # Errors
    ///
    /// [`Error::MessageTooLarge`] if `msg` is longer than [`max_message`](Self::max_message)
    /// (nothing is sent and the endpoint stays usable), [`Error::PeerGone`] if the other
    /// endpoint was dropped or its process died, [`Error::Io`] for other system errors.
    fn send(&mut self, msg: &[u8]) -> Result<(), Error>;

    /// Receives one message into `buf`, replacing its contents and reusing its allocation.
    ///
    /// # Errors
    ///
    /// [`Error::PeerGone`] once the other endpoint is gone and every message it sent has been
    /// received; [`Error::FrameTooLarge`] or [`Error::CorruptFrame`] if the peer sent
    /// something that is not a valid frame (the endpoint should then be dropped);
    /// [`Error::Io`] for other system errors. After an error the contents of `buf` are
    /// unspecified.
    fn recv(&mut self, buf: &mut Vec<u8>) -> Result<(), Error>;

    /// How many `FUTEX_WAKE` system calls the pair has made so far, both endpoints together.
    ///
    /// Only the shm ring uses futexes; every other transport returns 0. Divided by the number
    /// of messages, this says how often the fast path (no system call) was missed.
    fn futex_wakes(&self) -> u64 {
        0
    }
}

/// One end of a pair created by [`pair`].
pub type Endpoint = Box<dyn Transport>;

/// The transports [`pair`] can create.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TransportKind {
    /// Two anonymous pipes, one per direction.
    Pipe,
    /// A unix stream socket pair.
    Unix,
    /// A TCP connection on 127.0.0.1.
    Tcp,
    /// Two POSIX message queues, one per direction (Linux).
    Mq,
    /// A shared-memory ring per direction, futex wake-ups (Linux).
    Shm,
    /// An in-process crossbeam channel: threads only.
    Channel,
}

impl TransportKind {
    /// Every kind, in the order reports list them.
    pub const ALL: [TransportKind; 6] = [
        TransportKind::Pipe,
        TransportKind::Unix,
        TransportKind::Tcp,
        TransportKind::Mq,
        TransportKind::Shm,
        TransportKind::Channel,
    ];

    /// The kind's name: its CLI value, JSON key and file name.
    pub const fn name(self) -> &'static str {
        match self {
            TransportKind::Pipe => "pipe",
            TransportKind::Unix => "unix",
            TransportKind::Tcp => "tcp",
            TransportKind::Mq => "mq",
            TransportKind::Shm => "shm",
            TransportKind::Channel => "channel",
        }
    }

    /// Whether the two endpoints may live in different processes.
    pub const fn supports_processes(self) -> bool {
        !matches!(self, TransportKind::Channel)
    }
}

impl fmt::Display for TransportKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for TransportKind {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        TransportKind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| Error::UnknownKind { name: s.to_owned() })
    }
}

/// The names of all kinds, for error messages: "pipe, unix, tcp, mq, shm, channel".
fn kind_names() -> String {
    TransportKind::ALL.map(TransportKind::name).join(", ")
}

/// Creates a connected pair of endpoints of the given kind.
///
/// This is the one dispatch point from [`TransportKind`] to an implementation. Connection set-up
/// (for TCP: listen, connect, accept) happens here, so it is not part of any later `send`.
///
/// # Errors
///
/// [`Error::InvalidMaxMessage`] if `max_message` is above the 4-byte length prefix's range,
/// [`Error::Unsupported`] for a Linux-only kind on another OS, [`Error::Io`] if the operating
/// system refuses a resource (descriptors, message queues, memory).
pub fn pair(kind: TransportKind, max_message: usize) -> Result<(Endpoint, Endpoint), Error> {
    if u32::try_from(max_message).is_err() {
        return Err(Error::InvalidMaxMessage {
            kind,
            max: max_message,
            limit: u32::MAX as usize,
        });
    }
    fn boxed<T: Transport + 'static>((a, b): (T, T)) -> (Endpoint, Endpoint) {
        (Box::new(a), Box::new(b))
    }
    Ok(match kind {
        TransportKind::Pipe => boxed(pipe::Pipe::pair(max_message)?),
        TransportKind::Unix => boxed(unix::Unix::pair(max_message)?),
        TransportKind::Tcp => boxed(tcp::Tcp::pair(max_message)?),
        #[cfg(target_os = "linux")]
        TransportKind::Mq => boxed(mq::Mq::pair(max_message)?),
        #[cfg(target_os = "linux")]
        TransportKind::Shm => boxed(shm::Shm::pair(max_message)?),
        #[cfg(not(target_os = "linux"))]
        TransportKind::Mq | TransportKind::Shm => return Err(Error::Unsupported { kind }),
        TransportKind::Channel => boxed(channel::Channel::pair(max_message)),
    })
}

/// Everything that can go wrong in this module.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A message handed to `send` is longer than the pair's `max_message`.
    #[error("message of {len} bytes exceeds the {max}-byte limit of the {kind} transport")]
    MessageTooLarge {
        /// The transport.
        kind: TransportKind,
        /// The message's length.
        len: usize,
        /// The pair's limit.
        max: usize,
    },
    /// The peer announced a message longer than the pair's `max_message`.
    #[error(
        "the peer announced a message of {len} bytes, over the {max}-byte limit of the {kind} transport"
    )]
    FrameTooLarge {
        /// The transport.
        kind: TransportKind,
        /// The length in the frame header.
        len: u64,
        /// The pair's limit.
        max: usize,
    },
    /// The peer sent bytes that do not form a valid frame.
    #[error("the peer sent a corrupt frame on the {kind} transport: {reason}")]
    CorruptFrame {
        /// The transport.
        kind: TransportKind,
        /// What was wrong.
        reason: &'static str,
    },
    /// The other endpoint was dropped or its process exited.
    #[error("the peer of the {kind} transport is gone (end of file)")]
    PeerGone {
        /// The transport.
        kind: TransportKind,
    },
    /// `max_message` cannot be represented by the transport's framing.
    #[error(
        "a max_message of {max} bytes exceeds the {limit}-byte ceiling of the {kind} transport"
    )]
    InvalidMaxMessage {
        /// The transport.
        kind: TransportKind,
        /// The requested limit.
        max: usize,
        /// The largest limit the transport supports.
        limit: usize,
    },
    /// The name does not match any [`TransportKind`].
    #[error("unknown transport `{name}` (expected one of: {})", kind_names())]
    UnknownKind {
        /// The name given.
        name: String,
    },
    /// The transport does not exist on this operating system.
    #[error("the {kind} transport is not supported on this operating system")]
    Unsupported {
        /// The transport.
        kind: TransportKind,
    },
    /// A system call failed.
    #[error("{op} failed on the {kind} transport")]
    Io {
        /// The transport.
        kind: TransportKind,
        /// The operation, e.g. "mq_open".
        op: &'static str,
        /// The system error.
        #[source]
        source: io::Error,
    },
}

impl Error {
    /// Whether this error means the other endpoint is gone.
    pub fn is_peer_gone(&self) -> bool {
        matches!(self, Error::PeerGone { .. })
    }

    /// Wraps a system error; broken pipes and resets become [`Error::PeerGone`].
    pub(crate) fn io(kind: TransportKind, op: &'static str, source: impl Into<io::Error>) -> Self {
        let source = source.into();
        match source.kind() {
            io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::UnexpectedEof => Error::PeerGone { kind },
            _ => Error::Io { kind, op, source },
        }
    }
}

/// Length of the frame header on stream transports: a little-endian `u32`.
pub(crate) const HEADER_LEN: usize = 4;

/// Rejects a message longer than `max` before anything is written.
pub(crate) fn check_send(kind: TransportKind, max: usize, len: usize) -> Result<(), Error> {
    if len > max {
        return Err(Error::MessageTooLarge { kind, len, max });
    }
    Ok(())
}

/// Decodes and validates a frame header.
pub(crate) fn decode_header(
    kind: TransportKind,
    max: usize,
    header: [u8; HEADER_LEN],
) -> Result<usize, Error> {
    let len = u32::from_le_bytes(header);
    match usize::try_from(len) {
        Ok(len) if len <= max => Ok(len),
        _ => Err(Error::FrameTooLarge {
            kind,
            len: u64::from(len),
            max,
        }),
    }
}

/// Resizes `buf` to `len` bytes, zero-filling only the part that was never initialized, so a
/// reused buffer costs no memset.
pub(crate) fn set_len(buf: &mut Vec<u8>, len: usize) {
    if buf.len() < len {
        buf.resize(len, 0);
    } else {
        buf.truncate(len);
    }
}

/// Writes one length-prefixed frame through `writev`, looping over partial writes.
///
/// `writev` is one vectored write system call; header and payload usually leave in one call.
pub(crate) fn write_frame(
    kind: TransportKind,
    max: usize,
    msg: &[u8],
    mut writev: impl FnMut(&[IoSlice<'_>]) -> io::Result<usize>,
) -> Result<(), Error> {
    check_send(kind, max, msg.len())?;
    let header = u32::try_from(msg.len())
        .expect("max_message fits in u32, checked by pair()")
        .to_le_bytes();
    let total = HEADER_LEN + msg.len();
    let mut done = 0;
    while done < total {
        let result = if done < HEADER_LEN {
            writev(&[IoSlice::new(&header[done..]), IoSlice::new(msg)])
        } else {
            writev(&[IoSlice::new(&msg[done - HEADER_LEN..])])
        };
        match result {
            Ok(0) => return Err(Error::PeerGone { kind }),
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::io(kind, "write", e)),
        }
    }
    Ok(())
}

/// Bytes a stream endpoint read past the end of the last frame, kept for the next one: a small
/// message then costs one `read` (header and payload together), not two. Its buffer is
/// allocated with the endpoint, so receiving allocates nothing (a forked child may use it).
#[derive(Debug)]
pub(crate) struct ReadAhead {
    buf: Box<[u8]>,
    start: usize,
    end: usize,
}

impl ReadAhead {
    pub(crate) fn new() -> ReadAhead {
        ReadAhead {
            buf: vec![0u8; READ_AHEAD].into_boxed_slice(),
            start: 0,
            end: 0,
        }
    }
}

/// Bytes read at once from a stream: a page of small messages and their headers.
const READ_AHEAD: usize = 4096;

/// Reads one length-prefixed frame into `buf` through `ahead`: as much as the stream has (up
/// to a page), the header and as much payload as came with it, then the rest of a large
/// payload straight into `buf`, looping over partial reads. The header is validated before
/// any memory is reserved for the payload.
pub(crate) fn read_frame_ahead(
    kind: TransportKind,
    max: usize,
    buf: &mut Vec<u8>,
    ahead: &mut ReadAhead,
    mut read: impl FnMut(&mut [u8]) -> io::Result<usize>,
) -> Result<(), Error> {
    while ahead.end - ahead.start < HEADER_LEN {
        if ahead.buf.len() - ahead.start < HEADER_LEN {
            // A header cut at the end of the buffer: move what came to the front.
            ahead.buf.copy_within(ahead.start..ahead.end, 0);
            ahead.end -= ahead.start;
            ahead.start = 0;
        }
        let n = loop {
            match read(&mut ahead.buf[ahead.end..]) {
                Ok(0) => return Err(Error::PeerGone { kind }),
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Error::io(kind, "read", e)),
            }
        };
        ahead.end += n;
    }
    let mut header = [0u8; HEADER_LEN];
    header.copy_from_slice(&ahead.buf[ahead.start..ahead.start + HEADER_LEN]);
    ahead.start += HEADER_LEN;
    let len = decode_header(kind, max, header)?;
    set_len(buf, len);
    let have = len.min(ahead.end - ahead.start);
    buf[..have].copy_from_slice(&ahead.buf[ahead.start..ahead.start + have]);
    ahead.start += have;
    if ahead.start == ahead.end {
        ahead.start = 0;
        ahead.end = 0;
    }
    read_exact(kind, &mut buf[have..], &mut read)
}

fn read_exact(
    kind: TransportKind,
    mut dst: &mut [u8],
    read: &mut impl FnMut(&mut [u8]) -> io::Result<usize>,
) -> Result<(), Error> {
    while !dst.is_empty() {
        match read(dst) {
            Ok(0) => return Err(Error::PeerGone { kind }),
            Ok(n) => dst = &mut dst[n..],
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::io(kind, "read", e)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod read_ahead_tests {
    use super::*;

    /// Frames of `lens`, read back through a stream that hands out `chunk(i)` bytes at the
    /// i-th read: headers cut anywhere, several frames in one read, payloads past the page.
    fn round_trip(lens: &[usize], chunk: impl Fn(usize) -> usize) {
        let mut stream = Vec::new();
        for (k, &len) in lens.iter().enumerate() {
            write_frame(TransportKind::Pipe, 1 << 20, &vec![k as u8; len], |iov| {
                let n: usize = iov.iter().map(|s| s.len()).sum();
                for s in iov {
                    stream.extend_from_slice(s);
                }
                Ok(n)
            })
            .unwrap();
        }
        let mut at = 0;
        let mut reads = 0;
        let mut ahead = ReadAhead::new();
        let mut buf = Vec::new();
        for (k, &len) in lens.iter().enumerate() {
            read_frame_ahead(TransportKind::Pipe, 1 << 20, &mut buf, &mut ahead, |dst| {
                let n = chunk(reads).min(dst.len()).min(stream.len() - at);
                reads += 1;
                dst[..n].copy_from_slice(&stream[at..at + n]);
                at += n;
                Ok(n)
            })
            .unwrap();
            assert_eq!(buf, vec![k as u8; len], "frame {k}");
        }
        assert_eq!(at, stream.len(), "every byte read once");
    }

    #[test]
    fn frames_come_back_whole_however_the_stream_cuts_them() {
        let lens = [0, 1, 64, 4090, 4092, 4096, 5000, 70_000, 3, 0, 64];
        round_trip(&lens, |_| usize::MAX);
        for size in [1, 2, 3, 5, 7, 4093, 4095, 6000] {
            round_trip(&lens, |_| size);
        }
        round_trip(&lens, |i| [1, 4099, 2, 17, 4096, 3][i % 6]);
    }

    #[test]
    fn a_small_message_takes_one_read() {
        let mut stream = Vec::new();
        write_frame(TransportKind::Pipe, 64, &[7u8; 64], |iov| {
            iov.iter().for_each(|s| stream.extend_from_slice(s));
            Ok(68)
        })
        .unwrap();
        let (mut ahead, mut buf, mut reads) = (ReadAhead::new(), Vec::new(), 0);
        read_frame_ahead(TransportKind::Pipe, 64, &mut buf, &mut ahead, |dst| {
            reads += 1;
            dst[..stream.len()].copy_from_slice(&stream);
            Ok(stream.len())
        })
        .unwrap();
        assert_eq!((buf.len(), reads), (64, 1));
    }
}

//! POSIX message queues (mq_overview(7)), one queue per direction.
//!
//! Set-up: each queue is created under a fresh name (`/proctor-ipc-<pid>-<n>`, `O_EXCL`) and
//! **unlinked immediately after opening**: the queue lives on as long as a descriptor refers
//! to it, but no `/dev/mqueue` entry survives past [`Mq::pair`], so a crash or Ctrl-C cannot
//! leak one (the name exists only for the microseconds between `mq_open` and `mq_unlink`).
//!
//! Sizes: an unprivileged queue's message size is capped by `/proc/sys/fs/mqueue/msgsize_max`
//! (8192 by default) and its depth by `msg_max` (10). A message is therefore **split into
//! parts** of at most the queue's message size: the first part carries a 4-byte
//! little-endian total length then the start of the payload, the following parts carry the
//! rest, each as full as possible. The receiver validates the announced length against
//! `max_message` and every part's size against what the length implies; a mismatch is a
//! corrupt frame. Only one thread sends on each queue, so parts never interleave.
//!
//! Wait strategy: the queues are non-blocking and the caller blocks in `poll(2)` on the queue
//! (Linux queue descriptors are pollable) together with a liveness socket. The liveness socket
//! is one end of a unix socket pair per endpoint that never carries data: when the peer
//! endpoint is dropped or its process dies, its end closes and ours polls readable (EOF), so a
//! gone peer is an error, never a hang. Messages already queued are still delivered first.

use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use nix::errno::Errno;
use nix::mqueue::{
    MQ_OFlag, MqAttr, MqdT, mq_attr_member_t, mq_close, mq_open, mq_receive, mq_send, mq_unlink,
};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::stat::Mode;

use super::{Error, HEADER_LEN, Transport, TransportKind, check_send, decode_header, set_len};

const KIND: TransportKind = TransportKind::Mq;

/// One endpoint of a message-queue pair.
#[derive(Debug)]
pub struct Mq {
    tx: Arc<Queue>,
    rx: Arc<Queue>,
    live: UnixStream,
    /// The queues' message size: the largest part.
    part: usize,
    /// Receive buffer of exactly `part` bytes (`mq_receive` demands at least that much).
    scratch: Vec<u8>,
    /// Holds the first part of an outgoing message: header plus the payload's start.
    first: Vec<u8>,
    max: usize,
}

/// An open, already unlinked queue; closed on drop.
#[derive(Debug)]
struct Queue(Option<MqdT>);

impl Queue {
    fn mqd(&self) -> &MqdT {
        self.0.as_ref().expect("a queue is only emptied by drop")
    }
}

impl Drop for Queue {
    fn drop(&mut self) {
        if let Some(mqd) = self.0.take() {
            let _ = mq_close(mqd);
        }
    }
}

/// Reads a limit from `/proc/sys/fs/mqueue/`, falling back to the kernel's default.
fn proc_limit(name: &str, default: usize) -> usize {
    std::fs::read_to_string(format!("/proc/sys/fs/mqueue/{name}"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(default)
}

fn open_unlinked(msgsize: usize, depth: usize) -> Result<Queue, Error> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let attr = MqAttr::new(0, depth as mq_attr_member_t, msgsize as mq_attr_member_t, 0);
    let flags = MQ_OFlag::O_CREAT
        | MQ_OFlag::O_EXCL
        | MQ_OFlag::O_RDWR
        | MQ_OFlag::O_NONBLOCK
        | MQ_OFlag::O_CLOEXEC;
    loop {
        let name = format!(
            "/proctor-ipc-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        match mq_open(
            name.as_str(),
            flags,
            Mode::S_IRUSR | Mode::S_IWUSR,
            Some(&attr),
        ) {
            Ok(mqd) => {
                let queue = Queue(Some(mqd));
                mq_unlink(name.as_str()).map_err(|e| Error::io(KIND, "mq_unlink", e))?;
                return Ok(queue);
            }
            // A stale name from an earlier process with our pid: try the next one.
            Err(Errno::EEXIST) => continue,
            Err(e) => return Err(Error::io(KIND, "mq_open", e)),
        }
    }
}

impl Mq {
    /// Creates two connected endpoints.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if a queue cannot be created, typically because the per-user
    /// `RLIMIT_MSGQUEUE` byte budget or `queues_max` is exhausted.
    pub fn pair(max_message: usize) -> Result<(Mq, Mq), Error> {
        let part = (HEADER_LEN + max_message).min(proc_limit("msgsize_max", 8192));
        let depth = proc_limit("msg_max", 10).min(10);
        let a_to_b = Arc::new(open_unlinked(part, depth)?);
        let b_to_a = Arc::new(open_unlinked(part, depth)?);
        let (live_a, live_b) = UnixStream::pair().map_err(|e| Error::io(KIND, "socketpair", e))?;
        let endpoint = |tx, rx, live| Mq {
            tx,
            rx,
            live,
            part,
            scratch: vec![0; part],
            first: Vec::with_capacity(part),
            max: max_message,
        };
        Ok((
            endpoint(Arc::clone(&a_to_b), Arc::clone(&b_to_a), live_a),
            endpoint(b_to_a, a_to_b, live_b),
        ))
    }

    /// Blocks until `queue` is ready for `events`; `Ok(false)` if the peer is gone.
    fn wait(queue: &Queue, live: &UnixStream, events: PollFlags) -> Result<bool, Error> {
        let mut fds = [
            PollFd::new(queue.mqd().as_fd(), events),
            PollFd::new(live.as_fd(), PollFlags::POLLIN),
        ];
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => return Err(Error::io(KIND, "poll", e)),
        }
        Ok(fds[1].revents().is_none_or(|r| r.is_empty()))
    }

    fn send_part(&self, part: &[u8]) -> Result<(), Error> {
        loop {
            match mq_send(self.tx.mqd(), part, 0) {
                Ok(()) => return Ok(()),
                Err(Errno::EAGAIN) => {
                    if !Mq::wait(&self.tx, &self.live, PollFlags::POLLOUT)? {
                        return Err(Error::PeerGone { kind: KIND });
                    }
                }
                Err(Errno::EINTR) => {}
                Err(e) => return Err(Error::io(KIND, "mq_send", e)),
            }
        }
    }

    /// Receives one part into `scratch`, returning its length.
    fn recv_part(&mut self) -> Result<usize, Error> {
        let mut peer_gone = false;
        loop {
            let mut prio = 0;
            match mq_receive(self.rx.mqd(), &mut self.scratch, &mut prio) {
                Ok(n) => return Ok(n),
                Err(Errno::EAGAIN) if peer_gone => return Err(Error::PeerGone { kind: KIND }),
                // Poll, and once the peer is gone try the queue one last time: parts it
                // sent before leaving are still delivered.
                Err(Errno::EAGAIN) => {
                    peer_gone = !Mq::wait(&self.rx, &self.live, PollFlags::POLLIN)?;
                }
                Err(Errno::EINTR) => {}
                Err(e) => return Err(Error::io(KIND, "mq_receive", e)),
            }
        }
    }
}

impl Transport for Mq {
    fn kind(&self) -> TransportKind {
        KIND
    }

    fn max_message(&self) -> usize {
        self.max
    }

    fn send(&mut self, msg: &[u8]) -> Result<(), Error> {
        check_send(KIND, self.max, msg.len())?;
        let header = u32::try_from(msg.len())
            .expect("max_message fits in u32, checked by pair()")
            .to_le_bytes();
        let head_len = msg.len().min(self.part - HEADER_LEN);
        let mut first = std::mem::take(&mut self.first);
        first.clear();
        first.extend_from_slice(&header);
        first.extend_from_slice(&msg[..head_len]);
        let result = self.send_part(&first);
        self.first = first;
        result?;
        for part in msg[head_len..].chunks(self.part) {
            self.send_part(part)?;
        }
        Ok(())
    }

    fn recv(&mut self, buf: &mut Vec<u8>) -> Result<(), Error> {
        let n = self.recv_part()?;
        let Some((header, head)) = self.scratch[..n].split_first_chunk::<HEADER_LEN>() else {
            return Err(Error::CorruptFrame {
                kind: KIND,
                reason: "the first part is shorter than the length header",
            });
        };
        let len = decode_header(KIND, self.max, *header)?;
        if head.len() != len.min(self.part - HEADER_LEN) {
            return Err(Error::CorruptFrame {
                kind: KIND,
                reason: "the first part's size does not match the announced length",
            });
        }
        set_len(buf, len);
        buf[..head.len()].copy_from_slice(head);
        let mut got = head.len();
        while got < len {
            let n = self.recv_part()?;
            if n != (len - got).min(self.part) {
                return Err(Error::CorruptFrame {
                    kind: KIND,
                    reason: "a continuation part's size does not match the announced length",
                });
            }
            buf[got..got + n].copy_from_slice(&self.scratch[..n]);
            got += n;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corrupt_frames_are_rejected() {
        let (a, mut b) = Mq::pair(1024).expect("pair");
        let mut buf = Vec::new();

        a.send_part(&u32::MAX.to_le_bytes()).expect("send");
        match b.recv(&mut buf) {
            Err(Error::FrameTooLarge { len, max: 1024, .. }) => {
                assert_eq!(len, u64::from(u32::MAX));
            }
            other => panic!("oversized header gave {other:?}"),
        }

        // The header announces 10 bytes but the part carries 3.
        a.send_part(&[10, 0, 0, 0, 1, 2, 3]).expect("send");
        assert!(matches!(b.recv(&mut buf), Err(Error::CorruptFrame { .. })));

        // Shorter than a header.
        a.send_part(&[1, 2]).expect("send");
        assert!(matches!(b.recv(&mut buf), Err(Error::CorruptFrame { .. })));
    }

    #[test]
    fn a_message_larger_than_the_queue_is_split_into_parts() {
        let (mut a, mut b) = Mq::pair(100_000).expect("pair");
        assert!(a.part < 100_000, "the queue's message size is capped");
        let msg: Vec<u8> = (0..100_000).map(|i| i as u8).collect();
        let sender = std::thread::spawn(move || a.send(&msg).map(|()| msg));
        let mut buf = Vec::new();
        b.recv(&mut buf).expect("recv");
        let msg = sender.join().expect("thread").expect("send");
        assert!(buf == msg);
    }
}

//! A unix stream socket pair (`socketpair(AF_UNIX, SOCK_STREAM)`).
//!
//! Protocol: each message is a 4-byte little-endian length followed by the payload, sent with
//! one `sendmsg(2)` (header and payload as two iovecs, `MSG_NOSIGNAL` so a gone peer is an
//! `EPIPE` error rather than a signal), partial sends continued. The reader validates the
//! header against `max_message` before reading the payload. Wait strategy: the kernel's;
//! socket calls block. Peer gone: `recv` returns 0 or `sendmsg` fails with `EPIPE`.

use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;

use super::{Error, ReadAhead, Transport, TransportKind, read_frame_ahead, write_frame};

const KIND: TransportKind = TransportKind::Unix;

/// One endpoint of a unix socket pair.
#[derive(Debug)]
pub struct Unix {
    stream: UnixStream,
    max: usize,
    /// What the last read took past the end of its frame.
    ahead: ReadAhead,
}

impl Unix {
    /// Creates two connected endpoints.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if the process is out of descriptors.
    pub fn pair(max_message: usize) -> Result<(Unix, Unix), Error> {
        let (a, b) = UnixStream::pair().map_err(|e| Error::io(KIND, "socketpair", e))?;
        Ok((
            Unix::from_stream(a, max_message),
            Unix::from_stream(b, max_message),
        ))
    }

    /// Wraps a connected stream, for example one inherited across `exec`.
    pub fn from_stream(stream: UnixStream, max_message: usize) -> Unix {
        Unix {
            stream,
            max: max_message,
            ahead: ReadAhead::new(),
        }
    }
}

/// `sendmsg` with `MSG_NOSIGNAL`: a vectored write that never raises `SIGPIPE`.
pub(crate) fn send_nosignal(
    fd: &impl AsRawFd,
    iov: &[std::io::IoSlice<'_>],
) -> std::io::Result<usize> {
    use nix::sys::socket::{MsgFlags, sendmsg};
    sendmsg::<()>(fd.as_raw_fd(), iov, &[], MsgFlags::MSG_NOSIGNAL, None).map_err(Into::into)
}

impl Transport for Unix {
    fn kind(&self) -> TransportKind {
        KIND
    }

    fn max_message(&self) -> usize {
        self.max
    }

    fn send(&mut self, msg: &[u8]) -> Result<(), Error> {
        let stream = &self.stream;
        write_frame(KIND, self.max, msg, |iov| send_nosignal(stream, iov))
    }

    fn recv(&mut self, buf: &mut Vec<u8>) -> Result<(), Error> {
        let mut stream = &self.stream;
        read_frame_ahead(KIND, self.max, buf, &mut self.ahead, |dst| stream.read(dst))
    }
}

//! Two anonymous pipes, one per direction.
//!
//! Protocol: each message is a 4-byte little-endian length followed by the payload, written
//! with one `writev(2)` where the pipe has room (partial writes are continued). The reader
//! reads the header, validates it against `max_message`, then reads exactly that many bytes.
//! Wait strategy: the kernel's; `read` and `write` block. A message larger than the pipe's
//! capacity (64 KiB by default, see pipe(7)) simply streams through it.
//!
//! Peer gone: `read` returns 0 once every copy of the writing end is closed; `write` fails
//! with `EPIPE` once every copy of the reading end is closed (see the module notes on
//! `SIGPIPE` in [`super`]).

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;

use nix::fcntl::OFlag;

use super::{Error, ReadAhead, Transport, TransportKind, read_frame_ahead, write_frame};

const KIND: TransportKind = TransportKind::Pipe;

/// One endpoint of a pipe pair: reads one pipe, writes the other.
#[derive(Debug)]
pub struct Pipe {
    rx: File,
    tx: File,
    max: usize,
    /// What the last read took past the end of its frame.
    ahead: ReadAhead,
}

impl Pipe {
    /// Creates two connected endpoints.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if the process is out of descriptors.
    pub fn pair(max_message: usize) -> Result<(Pipe, Pipe), Error> {
        let (a_rx, b_tx) =
            nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| Error::io(KIND, "pipe2", e))?;
        let (b_rx, a_tx) =
            nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| Error::io(KIND, "pipe2", e))?;
        Ok((
            Pipe::from_fds(a_rx, a_tx, max_message),
            Pipe::from_fds(b_rx, b_tx, max_message),
        ))
    }

    /// Wraps the reading end of one pipe and the writing end of another, for example
    /// descriptors inherited across `exec`.
    pub fn from_fds(read: OwnedFd, write: OwnedFd, max_message: usize) -> Pipe {
        Pipe {
            rx: File::from(read),
            tx: File::from(write),
            max: max_message,
            ahead: ReadAhead::new(),
        }
    }
}

impl Transport for Pipe {
    fn kind(&self) -> TransportKind {
        KIND
    }

    fn max_message(&self) -> usize {
        self.max
    }

    fn send(&mut self, msg: &[u8]) -> Result<(), Error> {
        let tx = &mut self.tx;
        write_frame(KIND, self.max, msg, |iov| tx.write_vectored(iov))
    }

    fn recv(&mut self, buf: &mut Vec<u8>) -> Result<(), Error> {
        let rx = &mut self.rx;
        read_frame_ahead(KIND, self.max, buf, &mut self.ahead, |dst| rx.read(dst))
    }
}

//! The in-process baseline: crossbeam channels, usable between threads only.
//!
//! Protocol: each direction is a bounded crossbeam channel of `Vec<u8>` (the "array" flavor,
//! crossbeam-channel `src/flavors/array.rs`: a ring of slots with stamps, spinning then
//! parking), plus an unbounded return channel through which the receiver hands back the
//! buffer it swapped out, so steady-state traffic allocates nothing: `send` copies the message
//! into a recycled buffer, `recv` swaps it with the caller's buffer. Peer gone: crossbeam
//! reports disconnection once the other endpoint is dropped and the channel is drained.
//!
//! [`Transport::supports_processes`] is `false`: after `fork` each process would hold a
//! private copy of the channel.

use crossbeam_channel::{Receiver, Sender, bounded, unbounded};

use super::{Error, Transport, TransportKind, check_send};

const KIND: TransportKind = TransportKind::Channel;

/// Messages in flight per direction before `send` blocks, like a pipe's buffer.
const CAPACITY: usize = 64;

/// One endpoint of an in-process channel pair.
#[derive(Debug)]
pub struct Channel {
    tx: Sender<Vec<u8>>,
    rx: Receiver<Vec<u8>>,
    /// Buffers the peer has finished with, to refill on `send`.
    spare_rx: Receiver<Vec<u8>>,
    /// Where this endpoint returns the buffers it swapped out on `recv`.
    spare_tx: Sender<Vec<u8>>,
    max: usize,
}

impl Channel {
    /// Creates two connected endpoints.
    pub fn pair(max_message: usize) -> (Channel, Channel) {
        let (a_tx, b_rx) = bounded(CAPACITY);
        let (b_tx, a_rx) = bounded(CAPACITY);
        let (a_spare_tx, b_spare_rx) = unbounded();
        let (b_spare_tx, a_spare_rx) = unbounded();
        (
            Channel {
                tx: a_tx,
                rx: a_rx,
                spare_rx: a_spare_rx,
                spare_tx: a_spare_tx,
                max: max_message,
            },
            Channel {
                tx: b_tx,
                rx: b_rx,
                spare_rx: b_spare_rx,
                spare_tx: b_spare_tx,
                max: max_message,
            },
        )
    }
}

impl Transport for Channel {
    fn kind(&self) -> TransportKind {
        KIND
    }

    fn max_message(&self) -> usize {
        self.max
    }

    fn send(&mut self, msg: &[u8]) -> Result<(), Error> {
        check_send(KIND, self.max, msg.len())?;
        // A recycled buffer if the peer returned one, else a new one (the first few sends).
        let mut frame = self.spare_rx.try_recv().unwrap_or_default();
        frame.clear();
        frame.extend_from_slice(msg);
        self.tx
            .send(frame)
            .map_err(|_| Error::PeerGone { kind: KIND })
    }

    fn recv(&mut self, buf: &mut Vec<u8>) -> Result<(), Error> {
        let mut frame = self.rx.recv().map_err(|_| Error::PeerGone { kind: KIND })?;
        std::mem::swap(buf, &mut frame);
        // The peer may be gone already; then the buffer is simply freed.
        let _ = self.spare_tx.send(frame);
        Ok(())
    }
}

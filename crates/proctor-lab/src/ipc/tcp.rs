//! TCP on the loopback interface (127.0.0.1 only, ephemeral port, `TCP_NODELAY`).
//!
//! Set-up: [`Tcp::pair`] listens on `127.0.0.1:0`, connects, and accepts, checking that the
//! accepted peer is our own connecting socket (another local process could race us to the
//! port). The listener is closed before `pair` returns. **Connect time is not part of any
//! `send`**: the pair is connected at creation.
//!
//! Protocol: 4-byte little-endian length, then the payload, sent with one `sendmsg(2)` with
//! `MSG_NOSIGNAL`; `TCP_NODELAY` disables Nagle's algorithm so a small frame leaves at once
//! instead of waiting for the previous one's ACK (tcp(7)). The reader validates the header
//! against `max_message` before reading the payload. Wait strategy: the kernel's; calls
//! block. Peer gone: `recv` returns 0, or `sendmsg` fails with `EPIPE`/`ECONNRESET`.

use std::io::Read;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};

use super::unix::send_nosignal;
use super::{Error, ReadAhead, Transport, TransportKind, read_frame_ahead, write_frame};

const KIND: TransportKind = TransportKind::Tcp;

/// One endpoint of a loopback TCP connection.
#[derive(Debug)]
pub struct Tcp {
    stream: TcpStream,
    max: usize,
    /// What the last read took past the end of its frame.
    ahead: ReadAhead,
}

impl Tcp {
    /// Creates two connected endpoints on 127.0.0.1.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if listening, connecting or accepting fails.
    pub fn pair(max_message: usize) -> Result<(Tcp, Tcp), Error> {
        let io = |op| move |e| Error::io(KIND, op, e);
        let listener =
            TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).map_err(io("bind"))?;
        let addr = listener.local_addr().map_err(io("getsockname"))?;
        let client = TcpStream::connect(addr).map_err(io("connect"))?;
        let client_addr = client.local_addr().map_err(io("getsockname"))?;
        let server = loop {
            let (stream, peer) = listener.accept().map_err(io("accept"))?;
            if peer == client_addr {
                break stream;
            }
            // A stranger connected first: drop it and keep waiting for our own socket.
        };
        let a = Tcp::from_stream(client, max_message)?;
        let b = Tcp::from_stream(server, max_message)?;
        Ok((a, b))
    }

    /// Wraps a connected stream and sets `TCP_NODELAY` on it.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if `TCP_NODELAY` cannot be set.
    pub fn from_stream(stream: TcpStream, max_message: usize) -> Result<Tcp, Error> {
        stream
            .set_nodelay(true)
            .map_err(|e| Error::io(KIND, "setsockopt(TCP_NODELAY)", e))?;
        Ok(Tcp {
            stream,
            max: max_message,
            ahead: ReadAhead::new(),
        })
    }
}

impl Transport for Tcp {
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

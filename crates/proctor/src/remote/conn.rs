//! One connection between the pool and an agent or a remote worker: plain TCP, or TLS 1.3
//! over it (rustls) when the pool asks for encryption.
//!
//! With TLS the pool makes a self-signed certificate for itself at `build()` and hands its
//! SHA-256 fingerprint to each agent with the secret (through the environment or stdin, as
//! the secret goes); an agent accepts that certificate and no other, so no certificate
//! authority is needed and nobody in between can pose as the pool. The HMAC handshake of
//! `proto.rs` then runs inside TLS, which proves the agent too.
//!
//! Without TLS ([`crate::Remote::insecure_plaintext`]) a connection is *sealed* after its
//! handshake: what each side writes travels in records of at most [`MAX_RECORD`] bytes,
//! `[length: u32 LE][payload][tag: 32 bytes]`, where the tag is HMAC-SHA-256 over the
//! record's sequence number (counted per direction from 0), its length and its payload,
//! under that direction's key from the handshake (see `proto::SessionKeys`). A record
//! changed, injected, replayed, reordered or dropped fails the check of the next tag, and
//! the connection ends with `InvalidData`. Anyone on the path still reads the payloads.
//!
//! Both directions of a connection share one TLS session, so reading and writing go through
//! one `Conn` (behind a lock where two threads use it); the socket itself stays blocking,
//! and a reader that must not wait uses [`Conn::read_available`], which asks the kernel with
//! `MSG_DONTWAIT`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use sha2::Digest;

use super::proto::KEY_LEN;

/// The name in the pool's certificate (agents check the fingerprint, not the name).
const NAME: &str = "proctor-pool";

/// The largest payload of a sealed record.
pub(crate) const MAX_RECORD: usize = 64 << 10;
/// Bytes of a sealed record's length and tag.
const RECORD_LEN: usize = 4;
const TAG_LEN: usize = 32;

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// A connection, plain or encrypted.
pub(crate) struct Conn {
    sock: TcpStream,
    tls: Option<Box<rustls::Connection>>,
    /// The record layer of a connection without TLS, once its handshake is done.
    sealed: Option<Box<Sealed>>,
    /// What masks the frame secret in the pool's hello (see `proto::Hello`).
    frame_mask: u64,
}

/// One plaintext connection's sealed records (see the module's documentation).
struct Sealed {
    send: HmacSha256,
    send_seq: u64,
    recv: HmacSha256,
    recv_seq: u64,
    /// Bytes read from the socket and not yet a whole record.
    raw: Vec<u8>,
    /// A checked record's payload, and how much of it was handed out.
    plain: Vec<u8>,
    at: usize,
    /// A record being written.
    out: Vec<u8>,
}

fn forged(why: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, why.to_string())
}

impl Sealed {
    fn new(keys: &super::proto::SessionKeys) -> Sealed {
        let key = |k: &[u8; KEY_LEN]| {
            <HmacSha256 as hmac::KeyInit>::new_from_slice(k).expect("HMAC takes any key length")
        };
        Sealed {
            send: key(&keys.send),
            send_seq: 0,
            recv: key(&keys.recv),
            recv_seq: 0,
            raw: Vec::new(),
            plain: Vec::new(),
            at: 0,
            out: Vec::new(),
        }
    }

    fn tag(mac: &HmacSha256, seq: u64, len: &[u8], payload: &[u8]) -> HmacSha256 {
        use hmac::Mac;
        let mut m = mac.clone();
        m.update(&seq.to_le_bytes());
        m.update(len);
        m.update(payload);
        m
    }

    /// Writes `buf` as records.
    fn write_all(&mut self, sock: &mut TcpStream, buf: &[u8]) -> std::io::Result<()> {
        use hmac::Mac;
        for chunk in buf.chunks(MAX_RECORD) {
            let len = (chunk.len() as u32).to_le_bytes();
            let tag = Sealed::tag(&self.send, self.send_seq, &len, chunk)
                .finalize()
                .into_bytes();
            self.send_seq += 1;
            self.out.clear();
            self.out.extend_from_slice(&len);
            self.out.extend_from_slice(chunk);
            self.out.extend_from_slice(&tag);
            sock.write_all(&self.out)?;
        }
        Ok(())
    }

    /// The bytes the record at the front of `raw` needs in all, once its length is there:
    /// a length past [`MAX_RECORD`] is an error before anything more is read.
    fn whole(&self) -> std::io::Result<Option<usize>> {
        let Some(prefix) = self.raw.get(..RECORD_LEN) else {
            return Ok(None);
        };
        let len = u32::from_le_bytes(prefix.try_into().expect("4 bytes")) as usize;
        if len > MAX_RECORD {
            return Err(forged(&format!(
                "a {len}-byte record is past the {MAX_RECORD}-byte limit (someone in between?)"
            )));
        }
        Ok(Some(RECORD_LEN + len + TAG_LEN))
    }

    /// Checks the record at the front of `raw`, if it is whole, and makes its payload the
    /// one handed out. True if it did.
    fn open_record(&mut self) -> std::io::Result<bool> {
        use hmac::Mac;
        let Some(whole) = self.whole()? else {
            return Ok(false);
        };
        if self.raw.len() < whole {
            return Ok(false);
        }
        let (len, rest) = self.raw[..whole].split_at(RECORD_LEN);
        let (payload, tag) = rest.split_at(rest.len() - TAG_LEN);
        Sealed::tag(&self.recv, self.recv_seq, len, payload)
            .verify_slice(tag)
            .map_err(|_| {
                forged("a record failed its authentication check (changed or injected on the way)")
            })?;
        self.recv_seq += 1;
        self.plain.clear();
        self.plain.extend_from_slice(payload);
        self.at = 0;
        self.raw.drain(..whole);
        Ok(true)
    }

    /// Hands out checked payload into `buf`, reading records from `sock` as needed: `Ok(0)`
    /// at the connection's end; what `sock` says (`WouldBlock`, say) if it has nothing yet.
    fn read(&mut self, sock: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            if self.at < self.plain.len() {
                let n = buf.len().min(self.plain.len() - self.at);
                buf[..n].copy_from_slice(&self.plain[self.at..self.at + n]);
                self.at += n;
                return Ok(n);
            }
            if self.open_record()? {
                continue;
            }
            // Read what the socket has, up to the end of the record (whose length was
            // checked above) and a little more.
            let want = self
                .whole()?
                .unwrap_or(RECORD_LEN)
                .max(self.raw.len() + 4096);
            let have = self.raw.len();
            self.raw.resize(want, 0);
            let got = sock.read(&mut self.raw[have..]);
            self.raw.truncate(have + *got.as_ref().unwrap_or(&0));
            if got? == 0 {
                return Ok(0);
            }
        }
    }

    fn has_buffered(&self) -> bool {
        self.at < self.plain.len() || matches!(self.whole(), Ok(Some(w)) if self.raw.len() >= w)
    }
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn")
            .field("sock", &self.sock)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

fn tls_error(e: rustls::Error) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, format!("TLS: {e}"))
}

/// Reads from a socket without waiting (`recv` with `MSG_DONTWAIT`).
struct DontWait<'a>(&'a TcpStream);

impl Read for DontWait<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        use nix::sys::socket::{MsgFlags, recv};
        recv(self.0.as_raw_fd(), buf, MsgFlags::MSG_DONTWAIT).map_err(std::io::Error::from)
    }
}

impl Conn {
    pub(crate) fn plain(sock: TcpStream) -> Conn {
        Conn {
            sock,
            tls: None,
            sealed: None,
            frame_mask: 0,
        }
    }

    /// After the handshake (`pool_side`: made by the pool): a connection without TLS goes
    /// on in sealed records under `keys` (one with TLS needs none: TLS authenticates every
    /// byte already).
    pub(crate) fn seal(&mut self, keys: &super::proto::SessionKeys, pool_side: bool) {
        self.frame_mask = keys.frame_mask(pool_side);
        if self.tls.is_none() {
            self.sealed = Some(Box::new(Sealed::new(keys)));
        }
    }

    /// What masks the frame secret in the pool's hello on this connection.
    pub(crate) fn frame_mask(&self) -> u64 {
        self.frame_mask
    }

    /// The pool's side of a TLS connection; the handshake completes on first use.
    pub(crate) fn server(
        sock: TcpStream,
        config: &Arc<rustls::ServerConfig>,
    ) -> std::io::Result<Conn> {
        let tls = rustls::ServerConnection::new(Arc::clone(config)).map_err(tls_error)?;
        Ok(Conn {
            sock,
            tls: Some(Box::new(tls.into())),
            sealed: None,
            frame_mask: 0,
        })
    }

    /// An agent's side of a TLS connection to the pool whose certificate has fingerprint
    /// `pin`.
    pub(crate) fn client(sock: TcpStream, pin: [u8; KEY_LEN]) -> std::io::Result<Conn> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(tls_error)?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Pinned { pin, provider }))
            .with_no_client_auth();
        let name = ServerName::try_from(NAME).expect("a valid DNS name");
        let tls = rustls::ClientConnection::new(Arc::new(config), name).map_err(tls_error)?;
        Ok(Conn {
            sock,
            tls: Some(Box::new(tls.into())),
            sealed: None,
            frame_mask: 0,
        })
    }

    /// The socket (for its options, `poll` and `shutdown`).
    pub(crate) fn socket(&self) -> &TcpStream {
        &self.sock
    }

    /// Sends what TLS has queued (a blocking socket: it waits for room).
    fn flush_tls(&mut self) -> std::io::Result<()> {
        if let Some(tls) = self.tls.as_mut() {
            while tls.wants_write() {
                tls.write_tls(&mut self.sock)?;
            }
        }
        Ok(())
    }

    /// Reads what has arrived, without waiting: `WouldBlock` if nothing has, `Ok(0)` at the
    /// end of the connection.
    pub(crate) fn read_available(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if let Some(sealed) = self.sealed.as_mut() {
            return sealed.read(&mut DontWait(&self.sock), buf);
        }
        let Some(tls) = self.tls.as_mut() else {
            return DontWait(&self.sock).read(buf);
        };
        loop {
            match tls.reader().read(buf) {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                other => return other,
            }
            // No plaintext yet: take in what the socket has.
            if tls.read_tls(&mut DontWait(&self.sock))? == 0 {
                return Ok(0);
            }
            tls.process_new_packets().map_err(tls_error)?;
            while tls.wants_write() {
                tls.write_tls(&mut self.sock)?;
            }
        }
    }

    /// True if TLS holds plaintext already read from the socket (a `poll` on the socket
    /// would not see it).
    pub(crate) fn has_buffered(&mut self) -> bool {
        if let Some(sealed) = self.sealed.as_ref() {
            return sealed.has_buffered();
        }
        match self.tls.as_mut() {
            Some(tls) => tls
                .process_new_packets()
                .is_ok_and(|s| s.plaintext_bytes_to_read() > 0),
            None => false,
        }
    }
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if let Some(sealed) = self.sealed.as_mut() {
            return sealed.read(&mut self.sock, buf);
        }
        let Some(tls) = self.tls.as_mut() else {
            return self.sock.read(buf);
        };
        loop {
            match tls.reader().read(buf) {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                other => return other,
            }
            while tls.wants_write() {
                tls.write_tls(&mut self.sock)?;
            }
            if tls.read_tls(&mut self.sock)? == 0 {
                return Ok(0);
            }
            tls.process_new_packets().map_err(tls_error)?;
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.write_all(buf)?;
        Ok(buf.len())
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        if let Some(sealed) = self.sealed.as_mut() {
            return sealed.write_all(&mut self.sock, buf);
        }
        match self.tls.as_mut() {
            None => self.sock.write_all(buf),
            Some(tls) => {
                // rustls takes as much plaintext as its buffer limit allows (64 KiB), then
                // wants its records sent before it takes more: a large frame goes in
                // pieces.
                let mut rest = buf;
                while !rest.is_empty() {
                    let n = tls.writer().write(rest)?;
                    rest = &rest[n..];
                    if n == 0 && !tls.wants_write() {
                        return Err(std::io::ErrorKind::WriteZero.into());
                    }
                    while tls.wants_write() {
                        tls.write_tls(&mut self.sock)?;
                    }
                }
                Ok(())
            }
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.flush_tls()
    }
}

/// The pool's TLS identity: its server configuration and the fingerprint agents pin.
pub(crate) struct Identity {
    pub(crate) config: Arc<rustls::ServerConfig>,
    pub(crate) pin: [u8; KEY_LEN],
}

/// A fresh self-signed certificate and key for one pool.
pub(crate) fn identity() -> Result<Identity, String> {
    let made = rcgen::generate_simple_self_signed(vec![NAME.to_string()])
        .map_err(|e| format!("could not make the pool's TLS certificate: {e}"))?;
    let cert: CertificateDer<'static> = made.cert.der().clone();
    let pin: [u8; KEY_LEN] = sha2::Sha256::digest(cert.as_ref()).into();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(made.signing_key.serialize_der()));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .and_then(|b| b.with_no_client_auth().with_single_cert(vec![cert], key))
        .map_err(|e| format!("could not set up TLS: {e}"))?;
    Ok(Identity {
        config: Arc::new(config),
        pin,
    })
}

/// Accepts exactly the certificate whose SHA-256 is `pin` (the pool's own, self-signed),
/// and checks the handshake's signatures with it as usual.
#[derive(Debug)]
struct Pinned {
    pin: [u8; KEY_LEN],
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let seen: [u8; KEY_LEN] = sha2::Sha256::digest(end_entity.as_ref()).into();
        if seen == self.pin {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(
                "the pool's certificate is not the one it announced (someone in between?)".into(),
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Reads `buf` as a peer's sealed records (see `crate::__fuzz::decode_remote`): how many
/// payload bytes passed their checks before the first error or the end.
pub(crate) fn open_for_fuzz(buf: &[u8]) -> usize {
    let keys = super::proto::SessionKeys {
        send: [1; KEY_LEN],
        recv: [2; KEY_LEN],
    };
    let mut sealed = Sealed::new(&keys);
    let (mut from, mut out, mut total) = (buf, [0u8; 4096], 0);
    while let Ok(n @ 1..) = sealed.read(&mut from, &mut out) {
        total += n;
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::remote::proto::SessionKeys;

    /// Two sealed ends of a loopback connection, and a raw handle on the first one's
    /// socket, to write as someone in between would.
    fn pair() -> (Conn, Conn, TcpStream) {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let a = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (b, _) = l.accept().unwrap();
        let raw = a.try_clone().unwrap();
        let (k1, k2) = ([1u8; KEY_LEN], [2u8; KEY_LEN]);
        let mut a = Conn::plain(a);
        a.seal(&SessionKeys { send: k1, recv: k2 }, true);
        let mut b = Conn::plain(b);
        b.seal(&SessionKeys { send: k2, recv: k1 }, false);
        (a, b, raw)
    }

    #[test]
    fn sealed_records_read_back_and_anything_else_is_refused() {
        let (mut a, mut b, mut raw) = pair();
        let big = vec![5u8; 3 * MAX_RECORD + 7];
        a.write_all(&big).unwrap();
        let mut back = vec![0u8; big.len()];
        b.read_exact(&mut back).unwrap();
        assert_eq!(back, big);
        // A record injected between two of the sender's fails its check.
        a.write_all(b"one").unwrap();
        raw.write_all(&[3, 0, 0, 0, b'x', b'y', b'z']).unwrap();
        raw.write_all(&[0u8; TAG_LEN]).unwrap();
        let mut three = [0u8; 3];
        b.read_exact(&mut three).unwrap();
        assert_eq!(&three, b"one");
        let e = b.read(&mut three).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidData);
        assert!(e.to_string().contains("authentication"), "{e}");
        // A length past the limit is refused before its bytes are awaited.
        let (_a, mut b, mut raw) = pair();
        raw.write_all(&[0, 0, 0, 0x40]).unwrap();
        let e = b.read(&mut three).unwrap_err();
        assert!(e.to_string().contains("limit"), "{e}");
    }
}

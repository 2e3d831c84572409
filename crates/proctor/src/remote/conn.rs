//! One connection between the pool and an agent or a remote worker: plain TCP, or TLS 1.3
//! over it (rustls) when the pool asks for encryption.
//!
//! With TLS the pool makes a self-signed certificate for itself at `build()` and hands its
//! SHA-256 fingerprint to each agent with the secret (through the environment or stdin, as
//! the secret goes); an agent accepts that certificate and no other, so no certificate
//! authority is needed and nobody in between can pose as the pool. The HMAC handshake of
//! `proto.rs` then runs inside TLS, which proves the agent too.
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

/// A connection, plain or encrypted.
pub(crate) struct Conn {
    sock: TcpStream,
    tls: Option<Box<rustls::Connection>>,
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
        Conn { sock, tls: None }
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
        match self.tls.as_mut() {
            None => self.sock.write_all(buf),
            Some(tls) => {
                tls.writer().write_all(buf)?;
                self.flush_tls()
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

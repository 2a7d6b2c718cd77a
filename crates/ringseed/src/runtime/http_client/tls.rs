//! The connection under an exchange: plain TCP for `http://`, TLS over it
//! for `https://` (rustls on ring, the Mozilla roots of `webpki-roots`
//! built in, so a hardened service needs no system certificate store).
//! The socket's timeouts stay the caller's: reads and writes of the TLS
//! stream go through the same `TcpStream`.

use std::io::{self, Read, Write};
use std::net::{IpAddr, TcpStream};
use std::sync::Arc;

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

pub(super) enum Transport {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
}

impl Transport {
    /// The socket, to set timeouts on.
    pub(super) fn tcp(&self) -> &TcpStream {
        match self {
            Transport::Plain(s) => s,
            Transport::Tls(t) => &t.sock,
        }
    }
}

impl Read for Transport {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Transport::Plain(s) => s.read(buf),
            // A server that closes without TLS's close_notify ends the
            // stream as far as HTTP is concerned (its framing, a length or
            // chunks, says whether the body is whole).
            Transport::Tls(t) => match t.read(buf) {
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(0),
                other => other,
            },
        }
    }
}

impl Write for Transport {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Transport::Plain(s) => s.write(buf),
            Transport::Tls(t) => t.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Transport::Plain(s) => s.flush(),
            Transport::Tls(t) => t.flush(),
        }
    }
}

#[cfg(test)]
thread_local! {
    /// Tests only: one more root to trust (a test server's certificate).
    pub(super) static TEST_ROOT: std::cell::RefCell<Option<rustls::pki_types::CertificateDer<'static>>> =
        const { std::cell::RefCell::new(None) };
}

/// rustls's ring provider: ring has no post-quantum key exchange (rustls
/// marks its provider deprecated for that), but aws-lc-rs, which has, needs
/// cmake and a Go or NASM toolchain to build.
#[allow(deprecated)]
pub(super) fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn config() -> Result<Arc<ClientConfig>, String> {
    #[allow(unused_mut)]
    let mut roots = RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    #[cfg(test)]
    TEST_ROOT.with(|r| {
        if let Some(c) = r.borrow().clone() {
            let _ = roots.add(c);
        }
    });
    let c = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(c))
}

/// TLS over `stream` to `host` (checked against its certificate); the
/// handshake happens with the first write.
pub(super) fn wrap(stream: TcpStream, host: &str, ip: Option<IpAddr>) -> Result<Transport, String> {
    let name = match ip {
        Some(ip) => ServerName::IpAddress(ip.into()),
        None => ServerName::try_from(host.to_string()).map_err(|e| e.to_string())?,
    };
    let conn = ClientConnection::new(config()?, name).map_err(|e| e.to_string())?;
    Ok(Transport::Tls(Box::new(StreamOwned::new(conn, stream))))
}

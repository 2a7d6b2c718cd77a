//! One TCP connection of an exchange: connecting through the caller's
//! connector (at most `addresses_max` resolved addresses), and bounded reads
//! and writes under the per-step `io_timeout` and the exchange's deadline.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use super::url::Target;
use super::{Connector, HttpError, HttpLimits, LINE_EXCERPT_BYTES};
use crate::tracker::announce::sanitize_message;

/// The end of the whole exchange.
pub(super) struct Deadline {
    /// `None` when `total` is too far away for the clock: no end.
    pub(super) end: Option<Instant>,
    pub(super) total: Duration,
}

impl Deadline {
    /// What is left, or the total-timeout error.
    pub(super) fn left(&self, url: &str) -> Result<Duration, HttpError> {
        let Some(end) = self.end else {
            return Ok(Duration::MAX);
        };
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            Err(HttpError::TotalTimeout {
                url: url.to_string(),
                limit: self.total,
            })
        } else {
            Ok(left)
        }
    }
}

pub(super) fn connect_any(
    url: &str,
    target: &Target,
    connect: &Connector<'_>,
    limits: &HttpLimits,
    deadline: &Deadline,
) -> Result<TcpStream, HttpError> {
    let addrs: Vec<SocketAddr> = match target.ip {
        Some(ip) => vec![SocketAddr::new(ip, target.port)],
        None => (target.host.as_str(), target.port)
            .to_socket_addrs()
            .map_err(|source| HttpError::Resolve {
                url: url.to_string(),
                host: target.host.clone(),
                source,
            })?
            .take(limits.addresses_max.max(1))
            .collect(),
    };
    let mut last = None;
    for (i, addr) in addrs.iter().enumerate() {
        let left = deadline.left(url)?;
        match connect(*addr, limits.connect_timeout.min(left)) {
            Ok(stream) => return Ok(stream),
            Err(source) => last = Some((i + 1, *addr, source)),
        }
    }
    match last {
        Some((attempts, addr, source)) => Err(HttpError::Connect {
            url: url.to_string(),
            addr,
            attempts,
            source,
        }),
        None => Err(HttpError::NoAddress {
            url: url.to_string(),
            host: target.host.clone(),
        }),
    }
}

/// A socket with the exchange's timeouts applied to every read and write.
pub(super) struct Conn<'a> {
    pub(super) stream: super::tls::Transport,
    pub(super) url: &'a str,
    pub(super) io_timeout: Duration,
    pub(super) deadline: &'a Deadline,
    /// Read but not yet consumed.
    pub(super) buf: Vec<u8>,
    /// Start of the unconsumed bytes in `buf`.
    pub(super) pos: usize,
    /// Bytes received so far, for error evidence.
    pub(super) received: usize,
}

/// Shortest socket timeout set, so a zero `io_timeout` still means "fail fast".
const STEP_TIMEOUT_MIN: Duration = Duration::from_millis(1);
/// Bytes read from the socket at a time.
const READ_CHUNK_BYTES: usize = 16 * 1024;

impl Conn<'_> {
    /// The socket timeout for the next read or write (never zero, which the
    /// socket API refuses).
    fn step_timeout(&self) -> Result<Duration, HttpError> {
        Ok(self
            .io_timeout
            .min(self.deadline.left(self.url)?)
            .max(STEP_TIMEOUT_MIN))
    }

    fn timeout_error(&self, what: &'static str, step: Duration) -> HttpError {
        if step < self.io_timeout.max(STEP_TIMEOUT_MIN) {
            HttpError::TotalTimeout {
                url: self.url.to_string(),
                limit: self.deadline.total,
            }
        } else {
            HttpError::Timeout {
                url: self.url.to_string(),
                what,
                limit: self.io_timeout,
            }
        }
    }

    fn io_error(&self, what: &'static str, step: Duration, source: io::Error) -> HttpError {
        match source.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => self.timeout_error(what, step),
            _ => HttpError::Io {
                url: self.url.to_string(),
                what,
                source,
            },
        }
    }

    pub(super) fn write_all(&mut self, mut bytes: &[u8]) -> Result<(), HttpError> {
        while !bytes.is_empty() {
            let step = self.step_timeout()?;
            self.stream
                .tcp()
                .set_write_timeout(Some(step))
                .map_err(|e| self.io_error("setting the write timeout", step, e))?;
            match self.stream.write(bytes) {
                Ok(0) => {
                    return Err(HttpError::Io {
                        url: self.url.to_string(),
                        what: "writing the request",
                        source: io::ErrorKind::WriteZero.into(),
                    })
                }
                Ok(n) => bytes = bytes.get(n..).unwrap_or(&[]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.io_error("writing the request", step, e)),
            }
        }
        Ok(())
    }

    /// Read more bytes into `buf`; `Ok(false)` at end of stream.
    pub(super) fn fill(&mut self) -> Result<bool, HttpError> {
        if self.pos > 0 && self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        }
        let mut chunk = [0u8; READ_CHUNK_BYTES];
        loop {
            let step = self.step_timeout()?;
            self.stream
                .tcp()
                .set_read_timeout(Some(step))
                .map_err(|e| self.io_error("setting the read timeout", step, e))?;
            match self.stream.read(&mut chunk) {
                Ok(0) => return Ok(false),
                Ok(n) => {
                    self.buf.extend_from_slice(chunk.get(..n).unwrap_or(&[]));
                    self.received = self.received.saturating_add(n);
                    return Ok(true);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.io_error("reading the response", step, e)),
            }
        }
    }

    pub(super) fn pending(&self) -> &[u8] {
        self.buf.get(self.pos..).unwrap_or(&[])
    }

    fn eof_error(&self, during: &'static str) -> HttpError {
        HttpError::UnexpectedEof {
            url: self.url.to_string(),
            during,
            received: self.received,
        }
    }

    /// One CRLF-terminated line, without the CRLF. `budget` is decremented by
    /// the line's length; exceeding it gives `too_long`.
    pub(super) fn line(
        &mut self,
        budget: &mut usize,
        during: &'static str,
        too_long: impl Fn() -> HttpError,
    ) -> Result<Vec<u8>, HttpError> {
        let mut scanned = 0;
        loop {
            let pending = self.pending();
            if let Some(i) = pending
                .get(scanned..)
                .and_then(|p| p.iter().position(|&b| b == b'\n'))
            {
                let end = scanned + i;
                if end + 1 > *budget {
                    return Err(too_long());
                }
                let line = pending.get(..end).unwrap_or(&[]);
                let Some(line) = line.strip_suffix(b"\r") else {
                    return Err(HttpError::BadHeader {
                        url: self.url.to_string(),
                        line: excerpt(line),
                        reason: "line ends in a bare LF (CRLF required)",
                    });
                };
                let line = line.to_vec();
                *budget -= end + 1;
                self.pos += end + 1;
                return Ok(line);
            }
            scanned = pending.len();
            if scanned > *budget {
                return Err(too_long());
            }
            if !self.fill()? {
                return Err(self.eof_error(during));
            }
        }
    }

    /// Exactly `n` bytes appended to `out`.
    pub(super) fn exact(
        &mut self,
        mut n: usize,
        out: &mut Vec<u8>,
        during: &'static str,
    ) -> Result<(), HttpError> {
        while n > 0 {
            if self.pending().is_empty() && !self.fill()? {
                return Err(self.eof_error(during));
            }
            let pending = self.pending();
            let take = n.min(pending.len());
            out.extend_from_slice(pending.get(..take).unwrap_or(&[]));
            self.pos += take;
            n -= take;
        }
        Ok(())
    }
}

pub(super) fn excerpt(bytes: &[u8]) -> String {
    sanitize_message(bytes.get(..LINE_EXCERPT_BYTES).unwrap_or(bytes))
}

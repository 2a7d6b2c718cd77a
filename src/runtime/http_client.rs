//! A small blocking HTTP/1.1 client for tracker announces and scrapes.
//!
//! Boundary: this file owns the sockets and the clock for one `GET` over plain
//! `http://` (URL parsing, name resolution, connect through the caller's
//! [`Connector`], request, bounded response reading, redirects). What the body
//! means is `crate::tracker::http`'s business; [`announce`] and [`scrape`] glue
//! the two together. It blocks the calling thread, for at most
//! [`HttpLimits::total_timeout`] plus one name resolution (the system resolver
//! cannot be interrupted; at most [`HttpLimits::addresses_max`] addresses are
//! tried).
//!
//! Every limit is in [`HttpLimits`]: timeouts per connect, per socket read or
//! write, and for the whole exchange including redirects; bytes of header and
//! of body; number of redirects. `https://` is refused with a clear error for
//! now, and so is any compressed response (we ask for `identity`).

use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv6Addr, SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use crate::info_hash::InfoHash;
use crate::tracker::announce::sanitize_message;
use crate::tracker::http::{
    announce_url, parse_announce_response, parse_scrape_response, scrape_request_url,
    ScrapeResponse, BODY_BYTES_MAX, URL_BYTES_MAX,
};
use crate::tracker::{AnnounceRequest, AnnounceResponse, TrackerError};

/// Opens every TCP connection this client makes: the engine passes one that
/// binds the socket to its chosen interface; [`default_connect`] is plain.
pub type Connector<'a> = dyn Fn(SocketAddr, Duration) -> io::Result<TcpStream> + 'a;

/// The plain connector: `TcpStream::connect_timeout`.
pub fn default_connect(addr: SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
    TcpStream::connect_timeout(&addr, timeout)
}

/// `User-Agent` we send.
pub const USER_AGENT: &str = concat!("ringseed/", env!("CARGO_PKG_VERSION"));
/// Most header lines in one response (status line excluded).
pub const HEADER_LINES_MAX: usize = 100;
/// Most bytes in one chunk-size line (`1a2b;ext=...\r\n`).
pub const CHUNK_LINE_BYTES_MAX: usize = 1024;
/// Most hex digits in a chunk size (enough for any `u64`).
pub const CHUNK_SIZE_DIGITS_MAX: usize = 16;
/// Bytes of an unexpected body quoted in an error.
pub const BODY_EXCERPT_BYTES: usize = 200;
/// Bytes of a bad status or header line quoted in an error.
pub const LINE_EXCERPT_BYTES: usize = 200;

/// Bounds for one [`http_get`], redirects included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpLimits {
    /// For each TCP connect (also cut by what is left of `total_timeout`).
    pub connect_timeout: Duration,
    /// For each socket read or write to make progress.
    pub io_timeout: Duration,
    /// For the whole exchange: connects, redirects, reads (name resolution
    /// excepted, see the module header).
    pub total_timeout: Duration,
    /// Status line plus headers (and chunked trailers), in bytes.
    pub header_bytes_max: usize,
    /// Decoded body, in bytes.
    pub body_bytes_max: usize,
    /// Redirects followed before giving up.
    pub redirects_max: u32,
    /// Resolved addresses tried per host, in order.
    pub addresses_max: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            connect_timeout: Duration::from_secs(10),
            io_timeout: Duration::from_secs(15),
            total_timeout: Duration::from_secs(30),
            header_bytes_max: 16 * 1024,
            body_bytes_max: BODY_BYTES_MAX,
            redirects_max: 3,
            addresses_max: 4,
        }
    }
}

/// A final (non-redirect, or redirect without a usable target) response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    pub status: u16,
    pub body: Vec<u8>,
}

/// Why a GET failed, with the URL it was for and the limit or OS error.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("https trackers are not supported yet: {url:?}")]
    HttpsUnsupported { url: String },
    #[error("URL {url:?}: only http:// is supported")]
    UnsupportedScheme { url: String },
    #[error("URL is {length} bytes, more than the limit of {limit}")]
    UrlTooLong { length: usize, limit: usize },
    #[error("URL {url:?}: {reason}")]
    BadUrl { url: String, reason: &'static str },
    #[error("resolving {host:?} for {url:?}: {source}")]
    Resolve {
        url: String,
        host: String,
        source: io::Error,
    },
    #[error("resolving {host:?} for {url:?}: no addresses")]
    NoAddress { url: String, host: String },
    #[error("connecting to {addr} for {url:?} ({attempts} addresses tried): {source}")]
    Connect {
        url: String,
        addr: SocketAddr,
        attempts: usize,
        source: io::Error,
    },
    #[error("{url:?}: {what}: no progress within {limit:?}")]
    Timeout {
        url: String,
        what: &'static str,
        limit: Duration,
    },
    #[error("{url:?}: exchange took longer than the total limit of {limit:?}")]
    TotalTimeout { url: String, limit: Duration },
    #[error("{url:?}: {what}: {source}")]
    Io {
        url: String,
        what: &'static str,
        source: io::Error,
    },
    #[error("{url:?}: response headers exceed the limit of {limit} bytes")]
    HeaderTooLarge { url: String, limit: usize },
    #[error("{url:?}: more than {limit} header lines")]
    TooManyHeaders { url: String, limit: usize },
    #[error("{url:?}: connection closed {during} after {received} bytes")]
    UnexpectedEof {
        url: String,
        during: &'static str,
        received: usize,
    },
    #[error("{url:?}: bad status line {line:?}")]
    BadStatusLine { url: String, line: String },
    #[error("{url:?}: interim status {status} is not supported")]
    InterimStatus { url: String, status: u16 },
    #[error("{url:?}: bad header line {line:?}: {reason}")]
    BadHeader {
        url: String,
        line: String,
        reason: &'static str,
    },
    #[error("{url:?}: bad Content-Length {value:?}")]
    BadContentLength { url: String, value: String },
    #[error("{url:?}: Transfer-Encoding {value:?} is not supported (only chunked)")]
    UnsupportedTransferEncoding { url: String, value: String },
    #[error("{url:?}: Content-Encoding {value:?} refused (we asked for identity)")]
    UnsupportedContentEncoding { url: String, value: String },
    #[error("{url:?}: bad chunked body: {reason}")]
    BadChunk { url: String, reason: &'static str },
    #[error("{url:?}: body exceeds the limit of {limit} bytes (at least {length})")]
    BodyTooLarge {
        url: String,
        length: u64,
        limit: usize,
    },
    #[error("{url:?}: redirect {status} without a Location header")]
    RedirectWithoutLocation { url: String, status: u16 },
    #[error("{url:?}: redirect {status} to {location:?}: {reason}")]
    BadRedirect {
        url: String,
        status: u16,
        location: String,
        reason: &'static str,
    },
    #[error("{url:?}: more than {limit} redirects")]
    TooManyRedirects { url: String, limit: u32 },
}

/// Why an announce or scrape failed. A tracker's `failure reason` arrives as
/// `Tracker(TrackerError::Failure(words))`, in the tracker's own words.
#[derive(Debug, thiserror::Error)]
pub enum AnnounceError {
    #[error(transparent)]
    Tracker(#[from] TrackerError),
    #[error(transparent)]
    Http(#[from] HttpError),
    #[error("{url:?}: HTTP status {status}; body starts {body_start:?}")]
    Status {
        url: String,
        status: u16,
        /// The first [`BODY_EXCERPT_BYTES`] of the body, control characters replaced.
        body_start: String,
    },
}

/// Announce `req` to the HTTP tracker at `base_url`.
pub fn announce(
    base_url: &str,
    req: &AnnounceRequest,
    connect: &Connector<'_>,
    limits: &HttpLimits,
) -> Result<AnnounceResponse, AnnounceError> {
    let url = announce_url(base_url, req)?;
    let body = tracker_get(&url, connect, limits)?;
    Ok(parse_announce_response(&body)?)
}

/// Scrape (BEP 48) `hashes` from the tracker whose announce URL is `announce_url`.
pub fn scrape(
    announce_url: &str,
    hashes: &[InfoHash],
    connect: &Connector<'_>,
    limits: &HttpLimits,
) -> Result<ScrapeResponse, AnnounceError> {
    let url = scrape_request_url(announce_url, hashes)?;
    let body = tracker_get(&url, connect, limits)?;
    Ok(parse_scrape_response(&body)?)
}

/// GET for a tracker: 200 gives the body; any other status is an error, unless
/// the body is a bencoded `failure reason`, which wins (the tracker's words).
fn tracker_get(
    url: &str,
    connect: &Connector<'_>,
    limits: &HttpLimits,
) -> Result<Vec<u8>, AnnounceError> {
    let response = http_get(url, connect, limits)?;
    if response.status == 200 {
        return Ok(response.body);
    }
    if let Err(TrackerError::Failure(words)) = parse_announce_response(&response.body) {
        return Err(TrackerError::Failure(words).into());
    }
    let excerpt = response
        .body
        .get(..BODY_EXCERPT_BYTES)
        .unwrap_or(&response.body);
    Err(AnnounceError::Status {
        url: url.to_string(),
        status: response.status,
        body_start: sanitize_message(excerpt),
    })
}

/// One GET of an `http://` URL, following up to `limits.redirects_max`
/// redirects (301, 302, 303, 307, 308; all as GET) to other `http://` URLs.
pub fn http_get(
    url: &str,
    connect: &Connector<'_>,
    limits: &HttpLimits,
) -> Result<HttpResponse, HttpError> {
    let deadline = Deadline {
        end: Instant::now().checked_add(limits.total_timeout),
        total: limits.total_timeout,
    };
    let mut current = url.to_string();
    let mut redirects = 0u32;
    loop {
        let target = parse_url(&current)?;
        let outcome = get_once(&current, &target, connect, limits, &deadline)?;
        match outcome {
            Outcome::Final(response) => return Ok(response),
            Outcome::Redirect { status, location } => {
                if redirects >= limits.redirects_max {
                    return Err(HttpError::TooManyRedirects {
                        url: url.to_string(),
                        limit: limits.redirects_max,
                    });
                }
                redirects += 1;
                current = resolve_location(&current, &target, status, &location)?;
            }
        }
    }
}

/// Where an `http://` URL points.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Target {
    /// As written in the URL (IPv6 without brackets).
    host: String,
    /// Set when the host is an IP literal: no resolution.
    ip: Option<IpAddr>,
    port: u16,
    /// Path and query, starting with `/`; no fragment.
    path: String,
}

impl Target {
    fn host_header(&self) -> String {
        let host = match self.ip {
            Some(IpAddr::V6(_)) => format!("[{}]", self.host),
            _ => self.host.clone(),
        };
        if self.port == 80 {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }
}

fn bad_url(url: &str, reason: &'static str) -> HttpError {
    HttpError::BadUrl {
        url: url.to_string(),
        reason,
    }
}

/// Strip a scheme case-insensitively.
fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    if head.eq_ignore_ascii_case(prefix) {
        s.get(prefix.len()..)
    } else {
        None
    }
}

fn parse_url(url: &str) -> Result<Target, HttpError> {
    if url.len() > URL_BYTES_MAX {
        return Err(HttpError::UrlTooLong {
            length: url.len(),
            limit: URL_BYTES_MAX,
        });
    }
    if url.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Err(bad_url(url, "space or control character"));
    }
    if strip_prefix_ci(url, "https://").is_some() {
        return Err(HttpError::HttpsUnsupported {
            url: url.to_string(),
        });
    }
    let rest = strip_prefix_ci(url, "http://").ok_or_else(|| HttpError::UnsupportedScheme {
        url: url.to_string(),
    })?;
    let rest = rest.split('#').next().unwrap_or("");
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    if authority.contains('@') {
        return Err(bad_url(url, "user information is not supported"));
    }
    let (host, ip, port_text) = if let Some(after) = authority.strip_prefix('[') {
        let close = after
            .find(']')
            .ok_or_else(|| bad_url(url, "unclosed '[' in host"))?;
        let (literal, tail) = after.split_at(close);
        let v6: Ipv6Addr = literal
            .parse()
            .map_err(|_| bad_url(url, "bad IPv6 literal"))?;
        let tail = tail.get(1..).unwrap_or("");
        let port_text = match tail.strip_prefix(':') {
            Some(p) => Some(p),
            None if tail.is_empty() => None,
            None => return Err(bad_url(url, "junk after IPv6 literal")),
        };
        (literal.to_string(), Some(IpAddr::V6(v6)), port_text)
    } else {
        let (host, port_text) = match authority.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        };
        if host.is_empty() {
            return Err(bad_url(url, "no host"));
        }
        if !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_')
        {
            return Err(bad_url(url, "host has characters outside [A-Za-z0-9.-_]"));
        }
        let ip = host.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4);
        (host.to_string(), ip, port_text)
    };
    let port = match port_text {
        None => 80,
        Some(p) => {
            if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad_url(url, "bad port"));
            }
            match p.parse::<u16>() {
                Ok(n) if n != 0 => n,
                _ => return Err(bad_url(url, "port out of range 1..65535")),
            }
        }
    };
    let mut request_target = String::with_capacity(path.len() + 1);
    if !path.starts_with('/') {
        request_target.push('/');
    }
    // The request line is ASCII: bytes beyond it are percent-encoded.
    for c in path.chars() {
        if c.is_ascii() {
            request_target.push(c);
        } else {
            let mut utf8 = [0u8; 4];
            for b in c.encode_utf8(&mut utf8).bytes() {
                request_target.push_str(&format!("%{b:02X}"));
            }
        }
    }
    Ok(Target {
        host,
        ip,
        port,
        path: request_target,
    })
}

/// The next URL from a `Location`: an absolute `http://` URL, or an absolute
/// path on the same host.
fn resolve_location(
    url: &str,
    target: &Target,
    status: u16,
    location: &str,
) -> Result<String, HttpError> {
    let bad = |reason| HttpError::BadRedirect {
        url: url.to_string(),
        status,
        location: location.to_string(),
        reason,
    };
    if strip_prefix_ci(location, "http://").is_some() {
        return Ok(location.to_string());
    }
    if strip_prefix_ci(location, "https://").is_some() {
        return Err(bad("https trackers are not supported yet"));
    }
    if location.starts_with('/') && !location.starts_with("//") {
        let host = match target.ip {
            Some(IpAddr::V6(_)) => format!("[{}]", target.host),
            _ => target.host.clone(),
        };
        return Ok(format!("http://{host}:{}{location}", target.port));
    }
    Err(bad("only http:// URLs and absolute paths are followed"))
}

/// The end of the whole exchange.
struct Deadline {
    /// `None` when `total` is too far away for the clock: no end.
    end: Option<Instant>,
    total: Duration,
}

impl Deadline {
    /// What is left, or the total-timeout error.
    fn left(&self, url: &str) -> Result<Duration, HttpError> {
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

enum Outcome {
    Final(HttpResponse),
    Redirect { status: u16, location: String },
}

fn connect_any(
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
struct Conn<'a> {
    stream: TcpStream,
    url: &'a str,
    io_timeout: Duration,
    deadline: &'a Deadline,
    /// Read but not yet consumed.
    buf: Vec<u8>,
    /// Start of the unconsumed bytes in `buf`.
    pos: usize,
    /// Bytes received so far, for error evidence.
    received: usize,
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

    fn write_all(&mut self, mut bytes: &[u8]) -> Result<(), HttpError> {
        while !bytes.is_empty() {
            let step = self.step_timeout()?;
            self.stream
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
    fn fill(&mut self) -> Result<bool, HttpError> {
        if self.pos > 0 && self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        }
        let mut chunk = [0u8; READ_CHUNK_BYTES];
        loop {
            let step = self.step_timeout()?;
            self.stream
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

    fn pending(&self) -> &[u8] {
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
    fn line(
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
    fn exact(
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

fn excerpt(bytes: &[u8]) -> String {
    sanitize_message(bytes.get(..LINE_EXCERPT_BYTES).unwrap_or(bytes))
}

/// The headers we act on.
#[derive(Default)]
struct Headers {
    content_length: Option<u64>,
    chunked: bool,
    location: Option<String>,
}

fn get_once(
    url: &str,
    target: &Target,
    connect: &Connector<'_>,
    limits: &HttpLimits,
    deadline: &Deadline,
) -> Result<Outcome, HttpError> {
    let stream = connect_any(url, target, connect, limits, deadline)?;
    let mut conn = Conn {
        stream,
        url,
        io_timeout: limits.io_timeout,
        deadline,
        buf: Vec::new(),
        pos: 0,
        received: 0,
    };
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: {USER_AGENT}\r\n\
         Accept-Encoding: identity\r\nConnection: close\r\n\r\n",
        target.path,
        target.host_header()
    );
    conn.write_all(request.as_bytes())?;

    let mut budget = limits.header_bytes_max;
    let header_too_large = || HttpError::HeaderTooLarge {
        url: url.to_string(),
        limit: limits.header_bytes_max,
    };
    let status_line = conn.line(&mut budget, "reading the status line", header_too_large)?;
    let status = parse_status_line(url, &status_line)?;
    let headers = read_headers(&mut conn, url, &mut budget, limits)?;

    if matches!(status, 301 | 302 | 303 | 307 | 308) {
        let location = headers.location.ok_or(HttpError::RedirectWithoutLocation {
            url: url.to_string(),
            status,
        })?;
        return Ok(Outcome::Redirect { status, location });
    }
    let body = if status == 204 || status == 304 {
        Vec::new()
    } else if headers.chunked {
        read_chunked(&mut conn, url, &mut budget, limits)?
    } else if let Some(length) = headers.content_length {
        let n = usize::try_from(length)
            .ok()
            .filter(|&n| n <= limits.body_bytes_max)
            .ok_or(HttpError::BodyTooLarge {
                url: url.to_string(),
                length,
                limit: limits.body_bytes_max,
            })?;
        let mut body = Vec::with_capacity(n);
        conn.exact(n, &mut body, "reading the body")?;
        body
    } else {
        read_to_eof(&mut conn, url, limits)?
    };
    Ok(Outcome::Final(HttpResponse { status, body }))
}

/// `HTTP/1.x NNN reason`.
fn parse_status_line(url: &str, line: &[u8]) -> Result<u16, HttpError> {
    let bad = || HttpError::BadStatusLine {
        url: url.to_string(),
        line: excerpt(line),
    };
    let rest = line
        .strip_prefix(b"HTTP/1.1 ")
        .or_else(|| line.strip_prefix(b"HTTP/1.0 "))
        .ok_or_else(bad)?;
    let code = rest.get(..3).ok_or_else(bad)?;
    if !code.iter().all(u8::is_ascii_digit) {
        return Err(bad());
    }
    match rest.get(3) {
        None | Some(b' ') => {}
        Some(_) => return Err(bad()),
    }
    let status = code
        .iter()
        .fold(0u16, |acc, &d| acc * 10 + u16::from(d - b'0'));
    if !(100..=599).contains(&status) {
        return Err(bad());
    }
    if status < 200 {
        return Err(HttpError::InterimStatus {
            url: url.to_string(),
            status,
        });
    }
    Ok(status)
}

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn read_headers(
    conn: &mut Conn<'_>,
    url: &str,
    budget: &mut usize,
    limits: &HttpLimits,
) -> Result<Headers, HttpError> {
    let mut headers = Headers::default();
    let header_too_large = || HttpError::HeaderTooLarge {
        url: url.to_string(),
        limit: limits.header_bytes_max,
    };
    for _ in 0..=HEADER_LINES_MAX {
        let line = conn.line(budget, "reading the headers", header_too_large)?;
        if line.is_empty() {
            return Ok(headers);
        }
        let bad = |reason| HttpError::BadHeader {
            url: url.to_string(),
            line: excerpt(&line),
            reason,
        };
        let colon = line
            .iter()
            .position(|&b| b == b':')
            .ok_or_else(|| bad("no colon"))?;
        let (name, value) = line.split_at(colon);
        if name.is_empty() || !name.iter().all(|&b| is_token_byte(b)) {
            return Err(bad("name is not a token (or the line is folded)"));
        }
        let value = value.get(1..).unwrap_or(&[]).trim_ascii();
        if value.iter().any(|&b| b < b' ' && b != b'\t' || b == 0x7f) {
            return Err(bad("control character in value"));
        }
        let value_text = String::from_utf8_lossy(value).into_owned();
        if name.eq_ignore_ascii_case(b"content-length") {
            let bad_length = || HttpError::BadContentLength {
                url: url.to_string(),
                value: excerpt(value),
            };
            if value.is_empty() || value.len() > 19 || !value.iter().all(u8::is_ascii_digit) {
                return Err(bad_length());
            }
            let n: u64 = value_text.parse().map_err(|_| bad_length())?;
            if headers.content_length.is_some_and(|old| old != n) {
                return Err(bad_length());
            }
            headers.content_length = Some(n);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            if value.eq_ignore_ascii_case(b"chunked") && !headers.chunked {
                headers.chunked = true;
            } else if !value.eq_ignore_ascii_case(b"identity") {
                return Err(HttpError::UnsupportedTransferEncoding {
                    url: url.to_string(),
                    value: excerpt(value),
                });
            }
        } else if name.eq_ignore_ascii_case(b"content-encoding") {
            if !value.eq_ignore_ascii_case(b"identity") {
                return Err(HttpError::UnsupportedContentEncoding {
                    url: url.to_string(),
                    value: excerpt(value),
                });
            }
        } else if name.eq_ignore_ascii_case(b"location") {
            headers.location = Some(value_text);
        }
    }
    Err(HttpError::TooManyHeaders {
        url: url.to_string(),
        limit: HEADER_LINES_MAX,
    })
}

fn read_chunked(
    conn: &mut Conn<'_>,
    url: &str,
    header_budget: &mut usize,
    limits: &HttpLimits,
) -> Result<Vec<u8>, HttpError> {
    let bad = |reason| HttpError::BadChunk {
        url: url.to_string(),
        reason,
    };
    let mut body = Vec::new();
    loop {
        let mut line_budget = CHUNK_LINE_BYTES_MAX;
        let line = conn.line(&mut line_budget, "reading a chunk size", || {
            bad("chunk-size line too long")
        })?;
        let size_part = line
            .split(|&b| b == b';')
            .next()
            .unwrap_or(&[])
            .trim_ascii();
        if size_part.is_empty() || size_part.len() > CHUNK_SIZE_DIGITS_MAX {
            return Err(bad("chunk size is empty or has too many digits"));
        }
        let mut size: u64 = 0;
        for &b in size_part {
            let digit = char::from(b)
                .to_digit(16)
                .ok_or_else(|| bad("chunk size is not hexadecimal"))?;
            size = size
                .checked_mul(16)
                .and_then(|s| s.checked_add(u64::from(digit)))
                .ok_or_else(|| bad("chunk size overflows"))?;
        }
        if size == 0 {
            break;
        }
        let total = (body.len() as u64).saturating_add(size);
        let n = usize::try_from(size)
            .ok()
            .filter(|_| total <= limits.body_bytes_max as u64)
            .ok_or(HttpError::BodyTooLarge {
                url: url.to_string(),
                length: total,
                limit: limits.body_bytes_max,
            })?;
        conn.exact(n, &mut body, "reading a chunk")?;
        let mut crlf = Vec::with_capacity(2);
        conn.exact(2, &mut crlf, "reading a chunk's CRLF")?;
        if crlf != b"\r\n" {
            return Err(bad("chunk data not followed by CRLF"));
        }
    }
    // Trailers, counted against what is left of the header budget.
    let header_too_large = || HttpError::HeaderTooLarge {
        url: url.to_string(),
        limit: limits.header_bytes_max,
    };
    for _ in 0..=HEADER_LINES_MAX {
        let line = conn.line(header_budget, "reading the trailers", header_too_large)?;
        if line.is_empty() {
            return Ok(body);
        }
    }
    Err(HttpError::TooManyHeaders {
        url: url.to_string(),
        limit: HEADER_LINES_MAX,
    })
}

fn read_to_eof(conn: &mut Conn<'_>, url: &str, limits: &HttpLimits) -> Result<Vec<u8>, HttpError> {
    let mut body = conn.pending().to_vec();
    conn.pos = conn.buf.len();
    loop {
        if body.len() > limits.body_bytes_max {
            return Err(HttpError::BodyTooLarge {
                url: url.to_string(),
                length: body.len() as u64,
                limit: limits.body_bytes_max,
            });
        }
        if !conn.fill()? {
            return Ok(body);
        }
        body.extend_from_slice(conn.pending());
        conn.pos = conn.buf.len();
    }
}

#[cfg(test)]
mod tests;

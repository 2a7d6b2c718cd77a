//! A small blocking HTTP/1.1 client for tracker announces and scrapes.
//!
//! Boundary: this module owns the sockets and the clock for one `GET` over
//! plain `http://`, connecting only through the caller's [`Connector`]. Here:
//! the limits, the redirect loop and the tracker glue; `url` parses URLs and
//! `Location`s, `conn` connects and does bounded reads and writes, `response`
//! writes the request and reads status line, headers and body. What the body
//! means is `crate::tracker::http`'s business; [`announce`] and [`scrape`] glue
//! the two together. It blocks the calling thread, for at most
//! [`HttpLimits::total_timeout`] plus one name resolution (the system resolver
//! cannot be interrupted; at most [`HttpLimits::addresses_max`] addresses are
//! tried).
//!
//! Every limit is in [`HttpLimits`]: timeouts per connect, per socket read or
//! write, and for the whole exchange including redirects; bytes of header and
//! of body; number of redirects. `https://` goes over TLS (`tls`: rustls,
//! the Mozilla roots built in); a compressed response is refused (we ask
//! for `identity`).

mod conn;
mod error;
mod response;
#[cfg(test)]
mod tests;
mod tls;
mod url;

use std::io;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::info_hash::InfoHash;
use crate::tracker::announce::sanitize_message;
use crate::tracker::http::{
    announce_url, parse_announce_response, parse_scrape_response, scrape_request_url,
    ScrapeResponse, BODY_BYTES_MAX,
};
use crate::tracker::{AnnounceRequest, AnnounceResponse, TrackerError};
use conn::Deadline;
pub use error::{AnnounceError, HttpError};
use response::{get_once, Outcome};
use url::{parse_url, resolve_location};

/// Opens every TCP connection this client makes: the engine passes one that
/// binds the socket to its chosen interface; [`default_connect`] is plain.
pub type Connector<'a> = dyn Fn(SocketAddr, Duration) -> io::Result<TcpStream> + 'a;

/// The plain connector: `TcpStream::connect_timeout`.
pub fn default_connect(addr: SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
    TcpStream::connect_timeout(&addr, timeout)
}

/// A connector that opens every socket through [`crate::runtime::sockets`],
/// bound as `opts` says (interface, local address), so tracker traffic follows
/// the same binding as peer traffic.
pub fn bound_connector(
    opts: crate::runtime::sockets::BindOptions,
) -> impl Fn(SocketAddr, Duration) -> io::Result<TcpStream> {
    move |addr, timeout| {
        crate::runtime::sockets::tcp_connect(addr, &opts, Some(timeout))
            .map_err(|e| io::Error::other(e.to_string()))
    }
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

/// One GET of an `http://` or `https://` URL, following up to
/// `limits.redirects_max` redirects (301, 302, 303, 307, 308; all as GET).
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

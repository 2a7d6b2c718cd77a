//! `HttpError` and `AnnounceError`: every way a tracker GET can fail, with the
//! URL it was for and the limit, status or OS error that stopped it. The
//! URL is kept whole in the fields; the messages show it through
//! [`redact_url`] (passkeys and query values hidden).

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use crate::tracker::{redact_url, TrackerError};

/// Why a GET failed, with the URL it was for and the limit or OS error.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("URL {u:?}: only http:// and https:// are supported", u = redact_url(.url))]
    UnsupportedScheme { url: String },
    #[error("{u:?}: cannot set up TLS: {why}", u = redact_url(.url))]
    Tls { url: String, why: String },
    #[error("URL is {length} bytes, more than the limit of {limit}")]
    UrlTooLong { length: usize, limit: usize },
    #[error("URL {u:?}: {reason}", u = redact_url(.url))]
    BadUrl { url: String, reason: &'static str },
    #[error("resolving {host:?} for {u:?}: {source}", u = redact_url(.url))]
    Resolve {
        url: String,
        host: String,
        source: io::Error,
    },
    #[error("resolving {host:?} for {u:?}: no addresses", u = redact_url(.url))]
    NoAddress { url: String, host: String },
    #[error("connecting to {addr} for {u:?} ({attempts} addresses tried): {source}", u = redact_url(.url))]
    Connect {
        url: String,
        addr: SocketAddr,
        attempts: usize,
        source: io::Error,
    },
    #[error("{u:?}: {what}: no progress within {limit:?}", u = redact_url(.url))]
    Timeout {
        url: String,
        what: &'static str,
        limit: Duration,
    },
    #[error("{u:?}: exchange took longer than the total limit of {limit:?}", u = redact_url(.url))]
    TotalTimeout { url: String, limit: Duration },
    #[error("{u:?}: {what}: {source}", u = redact_url(.url))]
    Io {
        url: String,
        what: &'static str,
        source: io::Error,
    },
    #[error("{u:?}: response headers exceed the limit of {limit} bytes", u = redact_url(.url))]
    HeaderTooLarge { url: String, limit: usize },
    #[error("{u:?}: more than {limit} header lines", u = redact_url(.url))]
    TooManyHeaders { url: String, limit: usize },
    #[error("{u:?}: connection closed {during} after {received} bytes", u = redact_url(.url))]
    UnexpectedEof {
        url: String,
        during: &'static str,
        received: usize,
    },
    #[error("{u:?}: bad status line {line:?}", u = redact_url(.url))]
    BadStatusLine { url: String, line: String },
    #[error("{u:?}: interim status {status} is not supported", u = redact_url(.url))]
    InterimStatus { url: String, status: u16 },
    #[error("{u:?}: bad header line {line:?}: {reason}", u = redact_url(.url))]
    BadHeader {
        url: String,
        line: String,
        reason: &'static str,
    },
    #[error("{u:?}: bad Content-Length {value:?}", u = redact_url(.url))]
    BadContentLength { url: String, value: String },
    #[error("{u:?}: Transfer-Encoding {value:?} is not supported (only chunked)", u = redact_url(.url))]
    UnsupportedTransferEncoding { url: String, value: String },
    #[error("{u:?}: Content-Encoding {value:?} refused (we asked for identity)", u = redact_url(.url))]
    UnsupportedContentEncoding { url: String, value: String },
    #[error("{u:?}: bad chunked body: {reason}", u = redact_url(.url))]
    BadChunk { url: String, reason: &'static str },
    #[error("{u:?}: body exceeds the limit of {limit} bytes (at least {length})", u = redact_url(.url))]
    BodyTooLarge {
        url: String,
        length: u64,
        limit: usize,
    },
    #[error("{u:?}: redirect {status} without a Location header", u = redact_url(.url))]
    RedirectWithoutLocation { url: String, status: u16 },
    #[error("{u:?}: redirect {status} to {loc:?}: {reason}", u = redact_url(.url), loc = redact_url(.location))]
    BadRedirect {
        url: String,
        status: u16,
        location: String,
        reason: &'static str,
    },
    #[error("{u:?}: more than {limit} redirects", u = redact_url(.url))]
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
    #[error("{u:?}: HTTP status {status}; body starts {body_start:?}", u = redact_url(.url))]
    Status {
        url: String,
        status: u16,
        /// The first [`super::BODY_EXCERPT_BYTES`] of the body, control characters replaced.
        body_start: String,
    },
}

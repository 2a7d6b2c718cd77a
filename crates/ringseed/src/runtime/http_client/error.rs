//! `HttpError` and `AnnounceError`: every way a tracker GET can fail, with the
//! URL it was for and the limit, status or OS error that stopped it.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use crate::tracker::TrackerError;

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
        /// The first [`super::BODY_EXCERPT_BYTES`] of the body, control characters replaced.
        body_start: String,
    },
}

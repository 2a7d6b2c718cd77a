//! `TrackerError`: every way building a tracker request or reading a tracker's
//! answer can fail, with the evidence (what was expected, what was found, where).

use std::time::Duration;

use crate::bencode::DecodeError;

/// Why a tracker request could not be built or its answer could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrackerError {
    /// The tracker refused the request; the text is the tracker's own words
    /// (control characters replaced, cut at [`super::MESSAGE_BYTES_MAX`]).
    #[error("tracker refused the request: {0}")]
    Failure(String),

    #[error("tracker URL {url:?} is not http:// or https://")]
    UnsupportedScheme { url: String },
    #[error("tracker URL {url:?} has no host after the scheme")]
    MissingHost { url: String },
    #[error("tracker URL is {length} bytes, more than the limit of {limit}")]
    UrlTooLong { length: usize, limit: usize },
    #[error("tracker URL {url:?} has a space or control character at byte {offset}")]
    UrlBadChar { url: String, offset: usize },
    #[error(
        "scrape is not supported for {url:?}: its last path segment does not \
         start with \"announce\" (BEP 48)"
    )]
    ScrapeNotSupported { url: String },

    #[error("tracker response is {length} bytes, more than the limit of {limit}")]
    BodyTooLarge { length: usize, limit: usize },
    #[error("tracker response is not bencode: {0}")]
    Bencode(#[from] DecodeError),
    #[error("tracker response: expected a dictionary at the top level, found a {found}")]
    NotADictionary { found: &'static str },
    #[error("tracker response lacks the required key {key:?}")]
    MissingKey { key: &'static str },
    #[error("tracker response key {key:?} (byte {offset}): expected {expected}, found {found}")]
    WrongType {
        key: &'static str,
        /// Byte offset of the value in the response.
        offset: usize,
        expected: &'static str,
        found: String,
    },
    #[error(
        "tracker response key {key:?} (byte {offset}): {length} bytes of compact \
         peers is not a multiple of {unit}"
    )]
    CompactLength {
        key: &'static str,
        /// Byte offset of the peer bytes in the response (body or datagram).
        offset: usize,
        length: usize,
        unit: usize,
    },

    #[error("UDP {what}: {length} bytes, expected at least {min}")]
    DatagramTooShort {
        what: &'static str,
        length: usize,
        min: usize,
    },
    #[error("UDP {what}: expected action {expected}, found {found}")]
    UnexpectedAction {
        what: &'static str,
        expected: u32,
        found: u32,
    },
    #[error(
        "UDP response: transaction id {found:#010x} does not match the request's {expected:#010x}"
    )]
    TransactionMismatch { expected: u32, found: u32 },
    #[error("scrape: {count} info-hashes, expected 1 to {limit} in one request")]
    ScrapeHashCount { count: usize, limit: usize },
    #[error("UDP tracker did not answer after {attempts} attempts over {waited:?}")]
    Timeout { attempts: u32, waited: Duration },
}

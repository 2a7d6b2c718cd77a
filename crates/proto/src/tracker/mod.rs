//! Tracker protocols as sans-IO codecs: HTTP (BEP 3, compact peers BEP 23,
//! IPv6 peers BEP 7, scrape BEP 48) and UDP (BEP 15).
//!
//! Boundary: bytes and values in, bytes and values out. No sockets, no clock
//! (times come in as arguments), no randomness of its own (transaction ids and
//! keys come in as arguments). The HTTP client and the UDP sockets live in
//! `runtime`, which feeds this module.
//!
//! - [`announce`]: the transport-neutral request and answer, and the interval
//!   clamp ([`INTERVAL_FLOOR`] 1 min to [`INTERVAL_CEILING`] 6 h);
//! - [`http`]: announce and scrape URLs, announce and scrape bodies;
//! - [`udp`]: BEP 15 datagrams; [`UdpTrackerSession`]: the BEP 15 exchange
//!   (connect, request, 15·2ⁿ s retries, 60 s connection ids) driven by the
//!   caller's clock and socket;
//! - [`redact`]: tracker URLs (and messages quoting them) with passkeys and
//!   other query values hidden, for logs and errors.
//!
//! Peers from one answer are bounded by [`PEERS_PER_RESPONSE_MAX`], never port
//! 0, kept in the tracker's order; duplicates are not removed here (the peer
//! manager owns that), and peer ids in dictionary peer lists are not kept.

pub mod announce;
mod error;
pub mod http;
mod peers;
pub mod redact;
pub mod udp;
mod udp_session;

#[cfg(test)]
mod fuzz_tests;

pub use announce::{
    clamp_interval, AnnounceRequest, AnnounceResponse, Event, ScrapeStats, INTERVAL_CEILING,
    INTERVAL_FLOOR, MESSAGE_BYTES_MAX, PEERS_PER_RESPONSE_MAX,
};
pub use error::TrackerError;
pub use peers::{COMPACT_V4_BYTES, COMPACT_V6_BYTES};
pub use redact::{redact_url, scrub, Redacted};
pub use udp_session::{
    retry_wait, Step, UdpOperation, UdpOutcome, UdpTrackerSession, CONNECTION_ID_TTL, RETRIES_MAX,
    RETRY_BASE,
};

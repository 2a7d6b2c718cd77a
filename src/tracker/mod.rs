//! Tracker protocols as sans-IO codecs: HTTP (BEP 3, compact peers BEP 23,
//! IPv6 peers BEP 7, scrape BEP 48) and UDP (BEP 15).
//!
//! Boundary: bytes and values in, bytes and values out. No sockets, no clock
//! (times come in as arguments), no randomness of its own (transaction ids and
//! keys come in as arguments). The HTTP client and the UDP sockets live in
//! `runtime`, which feeds this module.

pub mod announce;
mod error;
pub mod http;
mod peers;
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
pub use udp_session::{Step, UdpOperation, UdpOutcome, UdpTrackerSession};

//! What an announce says and what a tracker answers, independent of transport:
//! [`AnnounceRequest`], [`AnnounceResponse`], [`ScrapeStats`], and the policy
//! that bounds the intervals a tracker may ask for.
//!
//! Interval policy, decided on purpose: a tracker's `interval` is clamped to
//! [[`INTERVAL_FLOOR`], [`INTERVAL_CEILING`]] (1 minute to 6 hours) so a hostile
//! or broken tracker can make us announce neither every second nor never. Its
//! `min interval` (the least time it allows between announces, even forced
//! ones) is honoured but clamped the same way. [`AnnounceResponse::next_announce_in`]
//! is the larger of the two.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use crate::InfoHash;

/// Shortest announce interval we accept from a tracker.
pub const INTERVAL_FLOOR: Duration = Duration::from_secs(60);
/// Longest announce interval we accept from a tracker.
pub const INTERVAL_CEILING: Duration = Duration::from_secs(6 * 60 * 60);
/// Most peers kept from one announce response (IPv4 and IPv6 together); the
/// rest are counted in [`AnnounceResponse::peers_over_limit`].
pub const PEERS_PER_RESPONSE_MAX: usize = 5_000;
/// Longest tracker text (failure reason, warning) kept, in bytes.
pub const MESSAGE_BYTES_MAX: usize = 1024;

/// The `event` of an announce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Event {
    Started,
    Completed,
    Stopped,
}

impl Event {
    /// The word in an HTTP announce (`event=started`).
    pub fn as_str(self) -> &'static str {
        match self {
            Event::Started => "started",
            Event::Completed => "completed",
            Event::Stopped => "stopped",
        }
    }

    /// The code in a UDP announce (BEP 15): none 0, completed 1, started 2,
    /// stopped 3.
    pub fn udp_code(self) -> u32 {
        match self {
            Event::Completed => 1,
            Event::Started => 2,
            Event::Stopped => 3,
        }
    }
}

/// One announce, as the engine means it; the HTTP and UDP codecs write it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnnounceRequest {
    pub info_hash: InfoHash,
    pub peer_id: [u8; 20],
    /// Our listening port.
    pub port: u16,
    /// Bytes sent to peers since the `started` event.
    pub uploaded: u64,
    /// Bytes received from peers since the `started` event.
    pub downloaded: u64,
    /// Bytes still missing.
    pub left: u64,
    /// `None` for a regular periodic announce.
    pub event: Option<Event>,
    /// Peers wanted; `None` lets the tracker choose (UDP writes -1).
    pub numwant: Option<u32>,
    /// A random value the caller picks once per session, so the tracker can
    /// recognise us across IP changes.
    pub key: Option<u32>,
    /// Ask for compact peers (BEP 23). HTTP only.
    pub compact: bool,
    /// Ask the tracker to leave out peer ids. HTTP only.
    pub no_peer_id: bool,
    /// The `tracker id` the tracker gave in an earlier answer. HTTP only.
    pub tracker_id: Option<String>,
    /// Our address as we want the tracker to see it (UDP: IPv4 only).
    pub ip: Option<IpAddr>,
}

impl AnnounceRequest {
    /// A regular announce with nothing transferred or missing yet: compact
    /// peers, no event, the tracker's choice of peer count. Callers set the
    /// rest with struct-update syntax.
    pub fn new(info_hash: InfoHash, peer_id: [u8; 20], port: u16) -> Self {
        AnnounceRequest {
            info_hash,
            peer_id,
            port,
            uploaded: 0,
            downloaded: 0,
            left: 0,
            event: None,
            numwant: None,
            key: None,
            compact: true,
            no_peer_id: false,
            tracker_id: None,
            ip: None,
        }
    }
}

/// What a tracker answered to an announce (HTTP or UDP).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AnnounceResponse {
    /// The tracker's `warning message`, sanitised (HTTP only).
    pub warning: Option<String>,
    /// The regular announce interval, clamped (see the module header).
    pub interval: Duration,
    /// The tracker's `min interval`, clamped (HTTP only).
    pub min_interval: Option<Duration>,
    /// To be sent back in later announces (HTTP only).
    pub tracker_id: Option<String>,
    /// Seeders, if the tracker said and the number was sane.
    pub complete: Option<u32>,
    /// Leechers, if the tracker said and the number was sane.
    pub incomplete: Option<u32>,
    /// Peers, IPv4 and IPv6, in the order given, at most
    /// [`PEERS_PER_RESPONSE_MAX`]; never port 0.
    pub peers: Vec<SocketAddr>,
    /// Peer entries left out because they were unusable (port 0, a hostname
    /// instead of an address, a malformed dictionary entry).
    pub peers_skipped: usize,
    /// Usable peers left out because of [`PEERS_PER_RESPONSE_MAX`].
    pub peers_over_limit: usize,
}

impl AnnounceResponse {
    /// How long to wait before the next regular announce: the interval, but
    /// never less than the tracker's minimum.
    pub fn next_announce_in(&self) -> Duration {
        match self.min_interval {
            Some(min) => self.interval.max(min),
            None => self.interval,
        }
    }
}

/// One torrent's numbers in a scrape answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ScrapeStats {
    /// Seeders.
    pub complete: u32,
    /// Completed downloads ever recorded.
    pub downloaded: u32,
    /// Leechers.
    pub incomplete: u32,
}

/// A tracker's interval in seconds, clamped to
/// [[`INTERVAL_FLOOR`], [`INTERVAL_CEILING`]]; negative values clamp to the floor.
pub fn clamp_interval(seconds: i64) -> Duration {
    let secs = u64::try_from(seconds).unwrap_or(0);
    Duration::from_secs(secs).clamp(INTERVAL_FLOOR, INTERVAL_CEILING)
}

/// Tracker text made safe to show: lossy UTF-8, control characters (terminal
/// escapes included) replaced by U+FFFD, cut to at most [`MESSAGE_BYTES_MAX`]
/// bytes of input.
pub fn sanitize_message(bytes: &[u8]) -> String {
    let cut = bytes.get(..MESSAGE_BYTES_MAX).unwrap_or(bytes);
    String::from_utf8_lossy(cut)
        .chars()
        .map(|c| if c.is_control() { '\u{fffd}' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interval_clamps_to_floor_and_ceiling() {
        assert_eq!(clamp_interval(1), INTERVAL_FLOOR);
        assert_eq!(clamp_interval(0), INTERVAL_FLOOR);
        assert_eq!(clamp_interval(-5), INTERVAL_FLOOR);
        assert_eq!(clamp_interval(1800), Duration::from_secs(1800));
        assert_eq!(clamp_interval(i64::MAX), INTERVAL_CEILING);
        assert_eq!(clamp_interval(6 * 3600 + 1), INTERVAL_CEILING);
    }

    #[test]
    fn next_announce_honours_min_interval() {
        let mut r = AnnounceResponse {
            interval: Duration::from_secs(120),
            ..Default::default()
        };
        assert_eq!(r.next_announce_in(), Duration::from_secs(120));
        r.min_interval = Some(Duration::from_secs(900));
        assert_eq!(r.next_announce_in(), Duration::from_secs(900));
        r.min_interval = Some(Duration::from_secs(60));
        assert_eq!(r.next_announce_in(), Duration::from_secs(120));
    }

    #[test]
    fn event_words_and_codes() {
        assert_eq!(Event::Started.as_str(), "started");
        assert_eq!(Event::Completed.as_str(), "completed");
        assert_eq!(Event::Stopped.as_str(), "stopped");
        assert_eq!(Event::Completed.udp_code(), 1);
        assert_eq!(Event::Started.udp_code(), 2);
        assert_eq!(Event::Stopped.udp_code(), 3);
    }

    #[test]
    fn messages_are_sanitised_and_cut() {
        assert_eq!(sanitize_message(b"bad \x1b[31mred"), "bad \u{fffd}[31mred");
        assert_eq!(sanitize_message(b"caf\xc3\xa9"), "café");
        assert_eq!(sanitize_message(b"\xff"), "\u{fffd}");
        let long = vec![b'a'; MESSAGE_BYTES_MAX * 3];
        assert_eq!(sanitize_message(&long).len(), MESSAGE_BYTES_MAX);
    }
}

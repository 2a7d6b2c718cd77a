//! `EngineSettings`: every tunable of the torrent engine, with its unit,
//! default and the reason for it.

use std::time::Duration;

use thiserror::Error;

use super::peer_list::RetryPolicy;
use crate::peer::PeerConfig;
use crate::upload_slots::SlotSettings;

/// Most peers one torrent may be configured for. All of a torrent's peers
/// live on its shard, so this is at most a shard's connections (the
/// runtime asserts it). 10,000: a very popular torrent on a seedbox.
pub const PEERS_PER_TORRENT_LIMIT: usize = 10_000;
/// Most known (not connected) addresses one torrent may keep.
pub const PEER_ADDRESSES_LIMIT: usize = 100_000;

/// The torrent engine's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineSettings {
    /// Per-connection protocol settings.
    pub peer: PeerConfig,
    /// Upload slots (the choker).
    pub slots: SlotSettings,
    /// Connected peers per torrent, incoming and outgoing together.
    /// Default 200: libtorrent's `connections_limit` spread over a few
    /// torrents; enough to saturate a seedbox link per torrent.
    pub peers_per_torrent_max: usize,
    /// Outgoing connection attempts in flight per torrent. Default 16: a
    /// burst after an announce, without a SYN flood.
    pub connects_in_flight_max: usize,
    /// Known addresses kept per torrent for later connects (the peer
    /// list). Default 2,000.
    pub peer_addresses_max: usize,
    /// Failures in a row (a dial that failed, a connection that moved no
    /// block) after which an address is forgotten; addresses the user gave
    /// are kept and dialled every `peer_retry_delay_max` instead. Default
    /// 3, libtorrent's `max_failcount`: a peer that is gone is tried three
    /// times, and a tracker may list it again.
    pub peer_connect_failures_max: u32,
    /// Wait before dialling an address again after its first failure, or
    /// after a connection that moved blocks ended; doubles with each
    /// further failure. Default 10 s: a peer that starts a few seconds after
    /// us is reached soon, and a dead one costs one SYN per 10 s at most
    /// (libtorrent waits 60 s, `min_reconnect_time`).
    pub peer_retry_delay_min: Duration,
    /// Longest wait between dials of one address. Default 5 min (about
    /// libtorrent's (`max_failcount` + 1) × `min_reconnect_time`).
    pub peer_retry_delay_max: Duration,
    /// Requests kept outstanding per peer, as seconds of its download rate
    /// (libtorrent's `request_queue_time` is 3 s).
    pub request_queue_time: Duration,
    /// Fewest requests outstanding per unchoked peer, whatever its rate.
    /// Default 16 (256 KiB): enough to fill a loopback or LAN pipe before
    /// the rate estimate catches up.
    pub requests_per_peer_min: usize,
    /// `numwant` in announces. Default 200.
    pub announce_numwant: u32,
    /// First retry delay after a failed announce; doubles up to
    /// `announce_retry_max`.
    pub announce_retry_min: Duration,
    /// Longest retry delay after failed announces.
    pub announce_retry_max: Duration,
    /// Bad pieces a peer may take part in before it is banned (a peer that
    /// alone sent a bad piece, or whose block is proven bad by a later good
    /// copy, is banned at once). Default 3.
    pub hash_failures_max: u32,
    /// Pieces whose failed blocks are remembered to find the sender of bad
    /// data when a good copy arrives. Default 64.
    pub failed_pieces_remembered_max: usize,
    /// Downloaded bytes held in memory per torrent: pieces being assembled
    /// plus verified pieces whose writes have not completed. Past it, no new
    /// requests go out until writes catch up, so a slow disk slows the
    /// download instead of filling memory. Default 64 MiB.
    pub download_memory_max_bytes: u64,
    /// Send watermark per peer, as time at the peer's upload rate: blocks
    /// read from disk or queued for sending at once (libtorrent keeps about
    /// 1.5 s). Capped by `peer.reads_in_flight_max`.
    pub send_watermark_time: Duration,
    /// Smallest send watermark, in blocks. Default 16 (256 KiB): a new or
    /// slow peer still has a few blocks in flight.
    pub send_watermark_min_blocks: u32,
    /// Interval of the engine's housekeeping tick (rates, timeouts,
    /// connects). Default 1 s.
    pub tick_interval: Duration,
}

impl Default for EngineSettings {
    fn default() -> Self {
        Self {
            peer: PeerConfig::default(),
            slots: SlotSettings::default(),
            peers_per_torrent_max: 200,
            connects_in_flight_max: 16,
            peer_addresses_max: 2_000,
            peer_connect_failures_max: 3,
            peer_retry_delay_min: Duration::from_secs(10),
            peer_retry_delay_max: Duration::from_secs(5 * 60),
            request_queue_time: Duration::from_secs(3),
            requests_per_peer_min: 16,
            announce_numwant: 200,
            announce_retry_min: Duration::from_secs(15),
            announce_retry_max: Duration::from_secs(30 * 60),
            hash_failures_max: 3,
            failed_pieces_remembered_max: 64,
            tick_interval: Duration::from_secs(1),
            download_memory_max_bytes: 64 * 1024 * 1024,
            send_watermark_time: Duration::from_millis(1500),
            send_watermark_min_blocks: 16,
        }
    }
}

/// A setting out of its range.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("setting {name} = {value} is out of range: expected {min} to {max}")]
pub struct SettingError {
    pub name: &'static str,
    pub value: u64,
    pub min: u64,
    pub max: u64,
}

fn check(name: &'static str, value: u64, min: u64, max: u64) -> Result<(), SettingError> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(SettingError {
            name,
            value,
            min,
            max,
        })
    }
}

impl EngineSettings {
    /// The peer list's retry policy.
    pub fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy {
            addresses_max: self.peer_addresses_max,
            failures_max: self.peer_connect_failures_max,
            retry_delay_min: self.peer_retry_delay_min,
            retry_delay_max: self.peer_retry_delay_max,
        }
    }

    /// Checks every range this struct owns (the peer settings check their own).
    pub fn validate(&self) -> Result<(), SettingError> {
        check(
            "peers_per_torrent_max",
            self.peers_per_torrent_max as u64,
            1,
            PEERS_PER_TORRENT_LIMIT as u64,
        )?;
        check(
            "connects_in_flight_max",
            self.connects_in_flight_max as u64,
            1,
            1_000,
        )?;
        check(
            "peer_addresses_max",
            self.peer_addresses_max as u64,
            1,
            PEER_ADDRESSES_LIMIT as u64,
        )?;
        check(
            "peer_connect_failures_max",
            u64::from(self.peer_connect_failures_max),
            1,
            1_000,
        )?;
        check(
            "peer_retry_delay_min (ms)",
            self.peer_retry_delay_min.as_millis() as u64,
            100,
            3_600_000,
        )?;
        check(
            "peer_retry_delay_max (ms)",
            self.peer_retry_delay_max.as_millis() as u64,
            self.peer_retry_delay_min.as_millis() as u64,
            86_400_000,
        )?;
        check(
            "requests_per_peer_min",
            self.requests_per_peer_min as u64,
            1,
            4_096,
        )?;
        check(
            "request_queue_time (ms)",
            self.request_queue_time.as_millis() as u64,
            100,
            60_000,
        )?;
        check(
            "announce_numwant",
            u64::from(self.announce_numwant),
            0,
            1_000,
        )?;
        check(
            "hash_failures_max",
            u64::from(self.hash_failures_max),
            1,
            1_000,
        )?;
        check(
            "failed_pieces_remembered_max",
            self.failed_pieces_remembered_max as u64,
            0,
            10_000,
        )?;
        check(
            "download_memory_max_bytes",
            self.download_memory_max_bytes,
            1024 * 1024,
            1 << 40,
        )?;
        check(
            "send_watermark_time (ms)",
            self.send_watermark_time.as_millis() as u64,
            10,
            60_000,
        )?;
        check(
            "send_watermark_min_blocks",
            u64::from(self.send_watermark_min_blocks),
            1,
            4_096,
        )?;
        check(
            "tick_interval (ms)",
            self.tick_interval.as_millis() as u64,
            10,
            10_000,
        )?;
        Ok(())
    }
}

//! `PeerConfig`: every tunable of one peer connection, with its unit, its
//! default and the reason for the default.
//!
//! Boundary: plain data plus [`PeerConfig::validate`]; the connection reads
//! it, never changes it.

use std::time::Duration;

use super::connection::ACTIONS_PER_MESSAGE_MAX;
use super::shape::TorrentShape;
use crate::torrent::BLOCK_BYTES;
use crate::wire::decoder::BLOCK_BYTES_MAX_DEFAULT;
use crate::wire::Limits;

/// Largest `block_bytes_max` accepted, in bytes: the decoder's
/// [`BLOCK_BYTES_MAX_LIMIT`](crate::wire::decoder::BLOCK_BYTES_MAX_LIMIT)
/// (128 KiB), so every valid configuration decodes within
/// [`Limits::LARGEST`] and keeps within its receive bound.
pub use crate::wire::decoder::BLOCK_BYTES_MAX_LIMIT;
/// Longest client name sent in the extension handshake, in bytes: the
/// longest the extension handshake keeps from a peer
/// ([`wire::extension::CLIENT_NAME_BYTES_MAX`](crate::wire::extension::CLIENT_NAME_BYTES_MAX)),
/// so what we send is what a peer like us reads back.
pub use crate::wire::extension::CLIENT_NAME_BYTES_MAX;

/// Default [`PeerConfig::handshake_timeout`]: 10 s.
pub const HANDSHAKE_TIMEOUT_DEFAULT: Duration = Duration::from_secs(10);
/// Default [`PeerConfig::inactivity_timeout`]: 120 s.
pub const INACTIVITY_TIMEOUT_DEFAULT: Duration = Duration::from_secs(120);
/// Default [`PeerConfig::keepalive_interval`]: 60 s.
pub const KEEPALIVE_INTERVAL_DEFAULT: Duration = Duration::from_secs(60);
/// Default [`PeerConfig::requests_queued_max`]: 250 requests.
pub const REQUESTS_QUEUED_MAX_DEFAULT: u32 = 250;
/// Default [`PeerConfig::reads_in_flight_max`]: 64 blocks.
pub const READS_IN_FLIGHT_MAX_DEFAULT: u32 = 64;
/// Default [`PeerConfig::actions_max`]: 64 actions.
pub const ACTIONS_MAX_DEFAULT: u32 = 64;
/// Default [`PeerConfig::requests_out_max`].
pub const REQUESTS_OUT_MAX_DEFAULT: u32 = 250;
/// Largest `requests_out_max` accepted.
pub const REQUESTS_OUT_MAX_LIMIT: u32 = 2048;
/// Default [`PeerConfig::request_timeout`].
pub const REQUEST_TIMEOUT_DEFAULT: Duration = Duration::from_secs(30);

/// Largest `requests_queued_max` accepted, in requests: 4096 × 16 KiB is
/// 64 MiB of promised upload per peer, far past any sane pipeline.
pub const REQUESTS_QUEUED_MAX_LIMIT: u32 = 4096;
/// Largest `actions_max` accepted, in actions.
pub const ACTIONS_MAX_LIMIT: u32 = 65_536;
/// Fewest `actions_max` accepted: one input message may queue up to
/// [`ACTIONS_PER_MESSAGE_MAX`](super::connection::ACTIONS_PER_MESSAGE_MAX)
/// actions, and the queue must hold at least that.
pub const ACTIONS_MAX_MIN: u32 = 8;
/// Smallest `block_bytes_max` accepted, in bytes: the blocks we request are
/// [`BLOCK_BYTES`] long, and the decoder must accept the piece messages that
/// answer them.
pub const BLOCK_BYTES_MAX_MIN: u32 = BLOCK_BYTES;

// One message may queue `ACTIONS_PER_MESSAGE_MAX` actions: the smallest
// action queue must hold them, or a single message could overflow it.
const _: () = assert!(ACTIONS_MAX_MIN as usize >= ACTIONS_PER_MESSAGE_MAX);
// The default action queue is a valid one.
const _: () =
    assert!(ACTIONS_MAX_MIN <= ACTIONS_MAX_DEFAULT && ACTIONS_MAX_DEFAULT <= ACTIONS_MAX_LIMIT);
// The default block size is a valid one.
const _: () = assert!(
    BLOCK_BYTES_MAX_MIN <= BLOCK_BYTES_MAX_DEFAULT
        && BLOCK_BYTES_MAX_DEFAULT <= BLOCK_BYTES_MAX_LIMIT
);
// The send watermark's ceiling and the requests held are valid by default.
const _: () = assert!(
    READS_IN_FLIGHT_MAX_DEFAULT <= REQUESTS_QUEUED_MAX_LIMIT
        && REQUESTS_QUEUED_MAX_DEFAULT <= REQUESTS_QUEUED_MAX_LIMIT
        && REQUESTS_OUT_MAX_DEFAULT <= REQUESTS_OUT_MAX_LIMIT
);

/// The tunables of one peer connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerConfig {
    /// Time from the connection's creation until the peer's whole handshake
    /// must have arrived. Default 10 s: a live peer answers in one round trip;
    /// a silent socket should free its slot quickly (libtorrent uses 10 s too).
    pub handshake_timeout: Duration,
    /// Time without a single byte from the peer after which it is dropped.
    /// Default 120 s: peers send a keep-alive every one to two minutes, and
    /// 120 s is what libtorrent and most clients use.
    pub inactivity_timeout: Duration,
    /// Time of our own silence after which we send a keep-alive. Must be
    /// shorter than `inactivity_timeout`. Default 60 s: half the common 120 s
    /// peer timeout, so one lost or late keep-alive does not get us dropped.
    pub keepalive_interval: Duration,
    /// Most requests from the peer held at once, in requests: those waiting
    /// plus those handed to the engine and not yet sent. It is also the
    /// `reqq` we advertise in the extension handshake. Default 250, like
    /// libtorrent's `max_allowed_in_request_queue`: enough pipelining for a
    /// fast peer on a long link (250 × 16 KiB = 4 MiB in flight).
    pub requests_queued_max: u32,
    /// Ceiling of the send watermark, in blocks: most blocks of one peer
    /// read from disk or being read, and not yet sent. The rest wait in the
    /// queue, where a cancel can still remove them. The engine sets the
    /// actual watermark (`set_read_window`) to about 1.5 s of the peer's
    /// rate, starting at 16 blocks. Default 64 (1 MiB): 5 Gbit/s peers fit,
    /// and a slow peer never pins more than its rate's worth of buffers.
    pub reads_in_flight_max: u32,
    /// Largest block a peer may request, in bytes. Default 16 KiB: what
    /// every client requests, and what BEP 3 says to use.
    pub block_bytes_max: u32,
    /// Size of the action queue at which `receive` stops decoding and
    /// returns, in actions, so the engine drains before more is read. Default
    /// 64: many messages per call, little memory per connection. (`set_choke`
    /// may go past it by the requests it rejects; see the connection docs.)
    pub actions_max: u32,
    /// Set the BEP 10 extension protocol bit and send an extension handshake.
    /// Default on: nearly every client speaks it, and it carries `reqq`.
    pub extension_protocol: bool,
    /// Set the BEP 6 fast extension bit. Default on: it gives explicit
    /// rejects instead of silently dropped requests, and `HaveAll`.
    pub fast_extension: bool,
    /// Set the BEP 5 DHT bit. Default off: ringseed has no DHT yet.
    pub dht: bool,
    /// Client name sent as `v` in the extension handshake (at most
    /// [`CLIENT_NAME_BYTES_MAX`] bytes). Default `ringseed/<version>`.
    pub client_name: String,
    /// Close a connection where both sides have every piece: neither can give
    /// the other anything. Default on: a seedbox's slots are for leechers.
    pub disconnect_seeds: bool,
    /// Most of our requests outstanding at the peer, in blocks (the peer's
    /// own `reqq` lowers it). Default 250 (4 MiB): a fast peer on a long
    /// link needs a few seconds of data in flight.
    pub requests_out_max: u32,
    /// Time with requests outstanding and no block from the peer after
    /// which our requests are taken back (cancelled, given to other peers)
    /// and the peer counts as snubbed until a block arrives. Default 30 s.
    pub request_timeout: Duration,
}

impl Default for PeerConfig {
    fn default() -> Self {
        PeerConfig {
            handshake_timeout: HANDSHAKE_TIMEOUT_DEFAULT,
            inactivity_timeout: INACTIVITY_TIMEOUT_DEFAULT,
            keepalive_interval: KEEPALIVE_INTERVAL_DEFAULT,
            requests_queued_max: REQUESTS_QUEUED_MAX_DEFAULT,
            reads_in_flight_max: READS_IN_FLIGHT_MAX_DEFAULT,
            block_bytes_max: BLOCK_BYTES_MAX_DEFAULT,
            actions_max: ACTIONS_MAX_DEFAULT,
            extension_protocol: true,
            fast_extension: true,
            dht: false,
            client_name: concat!("ringseed/", env!("CARGO_PKG_VERSION")).to_string(),
            disconnect_seeds: true,
            requests_out_max: REQUESTS_OUT_MAX_DEFAULT,
            request_timeout: REQUEST_TIMEOUT_DEFAULT,
        }
    }
}

/// Why a configuration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("{field} is 0, expected more")]
    Zero { field: &'static str },
    #[error("{field} is {value}, over the limit of {limit}")]
    TooLarge {
        field: &'static str,
        value: u64,
        limit: u64,
    },
    #[error("actions_max is {value}, expected at least {minimum}")]
    ActionsTooFew { value: u32, minimum: u32 },
    #[error(
        "block_bytes_max is {value} bytes, expected at least {minimum} (the blocks we request)"
    )]
    BlockTooSmall { value: u32, minimum: u32 },
    #[error(
        "keepalive_interval {keepalive:?} is not shorter than inactivity_timeout {inactivity:?}"
    )]
    KeepaliveNotShorter {
        keepalive: Duration,
        inactivity: Duration,
    },
}

impl PeerConfig {
    /// Checks every field against its limits.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (field, d) in [
            ("handshake_timeout", self.handshake_timeout),
            ("inactivity_timeout", self.inactivity_timeout),
            ("keepalive_interval", self.keepalive_interval),
            ("request_timeout", self.request_timeout),
        ] {
            if d.is_zero() {
                return Err(ConfigError::Zero { field });
            }
        }
        if self.keepalive_interval >= self.inactivity_timeout {
            return Err(ConfigError::KeepaliveNotShorter {
                keepalive: self.keepalive_interval,
                inactivity: self.inactivity_timeout,
            });
        }
        for (field, value, limit) in [
            (
                "requests_queued_max",
                self.requests_queued_max,
                REQUESTS_QUEUED_MAX_LIMIT,
            ),
            (
                "reads_in_flight_max",
                self.reads_in_flight_max,
                REQUESTS_QUEUED_MAX_LIMIT,
            ),
            (
                "block_bytes_max",
                self.block_bytes_max,
                BLOCK_BYTES_MAX_LIMIT,
            ),
            ("actions_max", self.actions_max, ACTIONS_MAX_LIMIT),
            (
                "requests_out_max",
                self.requests_out_max,
                REQUESTS_OUT_MAX_LIMIT,
            ),
        ] {
            if value == 0 {
                return Err(ConfigError::Zero { field });
            }
            if value > limit {
                return Err(ConfigError::TooLarge {
                    field,
                    value: value.into(),
                    limit: limit.into(),
                });
            }
        }
        if self.block_bytes_max < BLOCK_BYTES_MAX_MIN {
            return Err(ConfigError::BlockTooSmall {
                value: self.block_bytes_max,
                minimum: BLOCK_BYTES_MAX_MIN,
            });
        }
        if self.actions_max < ACTIONS_MAX_MIN {
            return Err(ConfigError::ActionsTooFew {
                value: self.actions_max,
                minimum: ACTIONS_MAX_MIN,
            });
        }
        if self.client_name.len() > CLIENT_NAME_BYTES_MAX {
            return Err(ConfigError::TooLarge {
                field: "client_name",
                value: self.client_name.len() as u64,
                limit: CLIENT_NAME_BYTES_MAX as u64,
            });
        }
        Ok(())
    }

    /// The decoder limits of a connection with this configuration to a
    /// torrent of `shape`. The connection decodes with them and the engine
    /// bounds its receive buffer by them, so the two cannot disagree.
    pub fn wire_limits(&self, shape: &TorrentShape) -> Limits {
        Limits {
            block_bytes_max: self.block_bytes_max,
            ..Limits::for_pieces(shape.pieces())
        }
    }

    /// Most bytes a connection with this configuration to a torrent of
    /// `shape` may keep received and not yet consumed: room for the largest
    /// message its decoder accepts (the bitfield, for a torrent of more than
    /// 524,288 pieces) and one receive, at least
    /// [`RECEIVE_BUFFER_BYTES_MIN`](crate::limits::RECEIVE_BUFFER_BYTES_MIN).
    /// For a valid configuration it is at most
    /// [`RECEIVE_BUFFER_BYTES_MAX`](crate::limits::RECEIVE_BUFFER_BYTES_MAX).
    pub fn receive_buffer_bytes_max(&self, shape: &TorrentShape) -> usize {
        self.wire_limits(shape).receive_buffer_bytes_max()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid() {
        assert_eq!(PeerConfig::default().validate(), Ok(()));
        assert!(PeerConfig::default().client_name.starts_with("ringseed/"));
    }

    #[test]
    fn every_refusal() {
        let bad = |f: fn(&mut PeerConfig)| {
            let mut c = PeerConfig::default();
            f(&mut c);
            c.validate().unwrap_err()
        };
        assert_eq!(
            bad(|c| c.handshake_timeout = Duration::ZERO),
            ConfigError::Zero {
                field: "handshake_timeout"
            }
        );
        assert!(matches!(
            bad(|c| c.keepalive_interval = Duration::from_secs(120)),
            ConfigError::KeepaliveNotShorter { .. }
        ));
        assert_eq!(
            bad(|c| c.requests_queued_max = 0),
            ConfigError::Zero {
                field: "requests_queued_max"
            }
        );
        assert_eq!(
            bad(|c| c.requests_queued_max = 5000),
            ConfigError::TooLarge {
                field: "requests_queued_max",
                value: 5000,
                limit: 4096
            }
        );
        assert!(matches!(
            bad(|c| c.block_bytes_max = 1 << 20),
            ConfigError::TooLarge {
                field: "block_bytes_max",
                ..
            }
        ));
        assert_eq!(
            bad(|c| c.actions_max = 3),
            ConfigError::ActionsTooFew {
                value: 3,
                minimum: 8
            }
        );
        assert!(matches!(
            bad(|c| c.client_name = "x".repeat(200)),
            ConfigError::TooLarge {
                field: "client_name",
                ..
            }
        ));
        assert_eq!(
            bad(|c| c.block_bytes_max = 1024),
            ConfigError::BlockTooSmall {
                value: 1024,
                minimum: 16 * 1024
            }
        );
        let e = bad(|c| c.reads_in_flight_max = 0);
        assert_eq!(e.to_string(), "reads_in_flight_max is 0, expected more");
    }

    /// The receive bound follows the decoder's limits: the floor for an
    /// ordinary torrent, room for the bitfield of a large one, and never
    /// more than the global bound for any valid configuration.
    #[test]
    fn receive_bound_follows_the_decoder_limits() {
        use crate::limits::{
            bitfield_message_bytes, PIECES_PER_TORRENT_MAX, RECEIVE_BUFFER_BYTES_MAX,
            RECEIVE_BUFFER_BYTES_MIN, RECEIVE_CHUNK_BYTES_MAX,
        };
        use crate::InfoHash;
        let shape =
            |pieces: u64| TorrentShape::new(InfoHash([1; 20]), 16384, pieces * 16384).unwrap();
        let c = PeerConfig::default();
        assert_eq!(
            c.receive_buffer_bytes_max(&shape(1)),
            RECEIVE_BUFFER_BYTES_MIN
        );
        assert_eq!(
            c.receive_buffer_bytes_max(&shape(1_000_000)),
            RECEIVE_BUFFER_BYTES_MIN
        );
        let largest = shape(PIECES_PER_TORRENT_MAX);
        assert_eq!(
            c.receive_buffer_bytes_max(&largest),
            bitfield_message_bytes(PIECES_PER_TORRENT_MAX) as usize + RECEIVE_CHUNK_BYTES_MAX
        );
        let limits = c.wire_limits(&largest);
        assert_eq!(limits.pieces, Some(PIECES_PER_TORRENT_MAX as u32));
        assert_eq!(limits.block_bytes_max, c.block_bytes_max);
        for block in [
            BLOCK_BYTES_MAX_MIN,
            BLOCK_BYTES_MAX_DEFAULT,
            BLOCK_BYTES_MAX_LIMIT,
        ] {
            for pieces in [1, 8 * 64 * 1024, PIECES_PER_TORRENT_MAX] {
                let c = PeerConfig {
                    block_bytes_max: block,
                    ..PeerConfig::default()
                };
                assert_eq!(c.validate(), Ok(()));
                let bound = c.receive_buffer_bytes_max(&shape(pieces));
                let message = 4 + c.wire_limits(&shape(pieces)).message_bytes_max() as usize;
                assert!(
                    bound >= message + RECEIVE_CHUNK_BYTES_MAX,
                    "{block} {pieces}"
                );
                assert!(bound <= RECEIVE_BUFFER_BYTES_MAX, "{block} {pieces}");
            }
        }
    }
}

//! `PeerError`: why a connection was ended, with the evidence. Any of these
//! ends the one connection it came from and nothing else.

use std::time::Duration;

use super::config::ConfigError;
use super::shape::ShapeError;
use crate::wire::{ExtensionHandshakeError, HandshakeError, WireError};
use crate::InfoHash;

/// Why a peer connection was ended.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeerError {
    #[error("bad handshake: {0}")]
    Handshake(#[from] HandshakeError),
    #[error("handshake names torrent {found}, expected {expected}")]
    InfoHashMismatch { expected: InfoHash, found: InfoHash },
    #[error("peer sent our own peer id: connected to ourselves")]
    ConnectedToSelf,
    #[error("bad message: {0}")]
    Wire(#[from] WireError),
    #[error("bad extension handshake: {0}")]
    ExtensionHandshake(#[from] ExtensionHandshakeError),
    #[error("{message} message from a peer without the fast extension negotiated (BEP 6)")]
    FastNotNegotiated { message: &'static str },
    #[error("{message} for piece {piece}, but the torrent has {pieces} pieces")]
    PieceOutOfRange {
        message: &'static str,
        piece: u32,
        pieces: u32,
    },
    #[error("{message} for {length} bytes at offset {offset} of piece {piece}, which has {piece_size} bytes")]
    BlockOutOfPiece {
        message: &'static str,
        piece: u32,
        offset: u32,
        length: u32,
        piece_size: u64,
    },
    #[error("peer has {queued} requests outstanding and sent another, over the limit of {limit}")]
    TooManyRequests { queued: u32, limit: u32 },
    #[error("no handshake after {waited:?}, limit {limit:?}")]
    HandshakeTimeout { waited: Duration, limit: Duration },
    #[error("nothing received for {silent:?}, limit {limit:?}")]
    Inactive { silent: Duration, limit: Duration },
    #[error("the connection is already closed")]
    Closed,
}

/// Why a connection could not be set up (the caller's mistake, not the
/// peer's).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SetupError {
    #[error("bad peer config: {0}")]
    Config(#[from] ConfigError),
    #[error("bad torrent shape: {0}")]
    Shape(#[from] ShapeError),
    #[error("our bitfield covers {found} pieces, expected {expected}")]
    BitfieldSize { expected: u32, found: u32 },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_carry_the_evidence() {
        let e = PeerError::InfoHashMismatch {
            expected: InfoHash([0xab; 20]),
            found: InfoHash([0xcd; 20]),
        };
        let s = e.to_string();
        assert!(s.contains(&"ab".repeat(20)) && s.contains(&"cd".repeat(20)));
        let e = PeerError::BlockOutOfPiece {
            message: "request",
            piece: 2,
            offset: 16384,
            length: 16384,
            piece_size: 20000,
        };
        assert_eq!(
            e.to_string(),
            "request for 16384 bytes at offset 16384 of piece 2, which has 20000 bytes"
        );
        let e = PeerError::TooManyRequests {
            queued: 250,
            limit: 250,
        };
        assert!(e.to_string().contains("250"));
        let e = SetupError::BitfieldSize {
            expected: 3,
            found: 4,
        };
        assert_eq!(e.to_string(), "our bitfield covers 4 pieces, expected 3");
    }
}

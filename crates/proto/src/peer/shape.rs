//! `TorrentShape`: what a connection must know about its torrent to check a
//! peer's messages: the info-hash, the piece count and the piece sizes.
//!
//! Boundary: a small copyable value built from a [`Layout`] (or from raw
//! numbers in tests); the connection never sees files.

use crate::limits::PIECES_PER_TORRENT_MAX;
use crate::storage::Layout;
use crate::InfoHash;

/// Why a torrent shape was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShapeError {
    #[error("piece length is 0 bytes, expected at least 1")]
    PieceLengthZero,
    #[error("{total_length} bytes in pieces of {piece_length} bytes make {count} pieces, over the limit of {limit}")]
    TooManyPieces {
        total_length: u64,
        piece_length: u64,
        count: u64,
        limit: u64,
    },
}

/// The torrent as one connection sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TorrentShape {
    info_hash: InfoHash,
    piece_length: u64,
    total_length: u64,
    pieces: u32,
}

impl TorrentShape {
    /// A torrent of `total_length` bytes cut in pieces of `piece_length`
    /// bytes (the last one may be shorter).
    pub fn new(
        info_hash: InfoHash,
        piece_length: u64,
        total_length: u64,
    ) -> Result<TorrentShape, ShapeError> {
        if piece_length == 0 {
            return Err(ShapeError::PieceLengthZero);
        }
        let count = total_length.div_ceil(piece_length);
        let pieces = u32::try_from(count)
            .ok()
            .filter(|_| count <= PIECES_PER_TORRENT_MAX)
            .ok_or(ShapeError::TooManyPieces {
                total_length,
                piece_length,
                count,
                limit: PIECES_PER_TORRENT_MAX,
            })?;
        Ok(TorrentShape {
            info_hash,
            piece_length,
            total_length,
            pieces,
        })
    }

    /// The shape of a torrent whose layout is already built (and so already
    /// checked).
    pub fn from_layout(info_hash: InfoHash, layout: &Layout) -> TorrentShape {
        TorrentShape {
            info_hash,
            piece_length: layout.piece_length(),
            total_length: layout.total_length(),
            pieces: layout.num_pieces(),
        }
    }

    pub fn info_hash(&self) -> InfoHash {
        self.info_hash
    }

    /// Number of pieces.
    pub fn pieces(&self) -> u32 {
        self.pieces
    }

    /// Nominal piece length in bytes.
    pub fn piece_length(&self) -> u64 {
        self.piece_length
    }

    /// Size of `piece` in bytes (the last may be shorter), `None` out of range.
    pub fn piece_size(&self, piece: u32) -> Option<u64> {
        if piece >= self.pieces {
            return None;
        }
        let start = u64::from(piece) * self.piece_length;
        Some((self.total_length - start).min(self.piece_length))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::FileExtent;

    #[test]
    fn piece_sizes() {
        let s = TorrentShape::new(InfoHash([1; 20]), 16384, 40000).unwrap();
        assert_eq!(s.pieces(), 3);
        assert_eq!(s.piece_size(0), Some(16384));
        assert_eq!(s.piece_size(2), Some(40000 - 32768));
        assert_eq!(s.piece_size(3), None);
        assert_eq!(s.piece_size(u32::MAX), None);
        let empty = TorrentShape::new(InfoHash([1; 20]), 16384, 0).unwrap();
        assert_eq!(empty.pieces(), 0);
        assert_eq!(empty.piece_size(0), None);
    }

    #[test]
    fn refuses_bad_shapes() {
        assert_eq!(
            TorrentShape::new(InfoHash([1; 20]), 0, 10),
            Err(ShapeError::PieceLengthZero)
        );
        let e = TorrentShape::new(InfoHash([1; 20]), 1, u64::MAX).unwrap_err();
        assert!(matches!(e, ShapeError::TooManyPieces { .. }));
        assert!(e.to_string().contains(&PIECES_PER_TORRENT_MAX.to_string()));
    }

    #[test]
    fn from_layout_matches() {
        let layout = Layout::new(
            32768,
            &[FileExtent {
                length: 100_000,
                pad: false,
            }],
        )
        .unwrap();
        let s = TorrentShape::from_layout(InfoHash([2; 20]), &layout);
        assert_eq!(s.pieces(), layout.num_pieces());
        for p in 0..s.pieces() {
            assert_eq!(s.piece_size(p), layout.piece_size(p));
        }
    }
}

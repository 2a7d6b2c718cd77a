//! Piece and block geometry of one torrent: how many pieces, how long each
//! piece is (the last may be short), and how a piece splits into 16 KiB
//! blocks (the last block of a piece may be short). Pure arithmetic over the
//! total length and the piece length, validated against crate limits.

use thiserror::Error;

use crate::limits::{PIECES_PER_TORRENT_MAX, PIECE_LENGTH_BYTES_MAX};

/// Length of a request block, in bytes (the wire's de facto standard).
pub const BLOCK_BYTES: u32 = 16 * 1024;

/// Why a geometry was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum GeometryError {
    #[error("piece length is 0")]
    ZeroPieceLength,
    #[error("piece length {piece_length} bytes is over the limit of {max} bytes")]
    PieceTooLong { piece_length: u64, max: u64 },
    #[error("total length is 0")]
    ZeroTotalLength,
    #[error("{pieces} pieces is over the limit of {max} pieces")]
    TooManyPieces { pieces: u64, max: u64 },
}

/// A block of a piece: what a `request`, `piece` or `cancel` message names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlockRequest {
    pub piece: u32,
    /// Byte offset inside the piece, a multiple of [`BLOCK_BYTES`].
    pub offset: u32,
    /// Length in bytes: [`BLOCK_BYTES`], or less for a piece's last block.
    pub length: u32,
}

/// Sizes of a torrent's pieces and blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    total_length: u64,
    piece_length: u32,
    pieces: u32,
}

impl Geometry {
    /// Geometry for `total_length` bytes cut in pieces of `piece_length` bytes.
    pub fn new(total_length: u64, piece_length: u64) -> Result<Self, GeometryError> {
        if piece_length == 0 {
            return Err(GeometryError::ZeroPieceLength);
        }
        if piece_length > PIECE_LENGTH_BYTES_MAX {
            return Err(GeometryError::PieceTooLong {
                piece_length,
                max: PIECE_LENGTH_BYTES_MAX,
            });
        }
        if total_length == 0 {
            return Err(GeometryError::ZeroTotalLength);
        }
        let pieces = total_length.div_ceil(piece_length);
        if pieces > PIECES_PER_TORRENT_MAX {
            return Err(GeometryError::TooManyPieces {
                pieces,
                max: PIECES_PER_TORRENT_MAX,
            });
        }
        // Both fit: PIECE_LENGTH_BYTES_MAX and PIECES_PER_TORRENT_MAX are below 2^32.
        Ok(Self {
            total_length,
            piece_length: piece_length as u32,
            pieces: pieces as u32,
        })
    }

    /// Total bytes of the torrent.
    pub fn total_length(&self) -> u64 {
        self.total_length
    }

    /// Nominal piece length in bytes.
    pub fn piece_length(&self) -> u32 {
        self.piece_length
    }

    /// Number of pieces.
    pub fn pieces(&self) -> u32 {
        self.pieces
    }

    /// Length of piece `piece` in bytes; 0 when out of range.
    pub fn piece_size(&self, piece: u32) -> u32 {
        if piece >= self.pieces {
            return 0;
        }
        let start = u64::from(piece) * u64::from(self.piece_length);
        (self.total_length - start).min(u64::from(self.piece_length)) as u32
    }

    /// Number of blocks in piece `piece`; 0 when out of range.
    pub fn blocks_in_piece(&self, piece: u32) -> u32 {
        self.piece_size(piece).div_ceil(BLOCK_BYTES)
    }

    /// Total number of blocks in the torrent.
    pub fn total_blocks(&self) -> u64 {
        let full = u64::from(self.pieces - 1) * u64::from(self.piece_length.div_ceil(BLOCK_BYTES));
        full + u64::from(self.blocks_in_piece(self.pieces - 1))
    }

    /// Block `block` of piece `piece`, or `None` when either is out of range.
    pub fn block(&self, piece: u32, block: u32) -> Option<BlockRequest> {
        let size = self.piece_size(piece);
        let offset = block.checked_mul(BLOCK_BYTES)?;
        if offset >= size {
            return None;
        }
        Some(BlockRequest {
            piece,
            offset,
            length: (size - offset).min(BLOCK_BYTES),
        })
    }

    /// Index of the block `req` names inside its piece, if `req` is exactly
    /// one of the piece's blocks (aligned offset, exact length).
    pub fn block_index(&self, req: &BlockRequest) -> Option<u32> {
        if req.offset % BLOCK_BYTES != 0 {
            return None;
        }
        let index = req.offset / BLOCK_BYTES;
        (self.block(req.piece, index)? == *req).then_some(index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_bad_sizes() {
        assert_eq!(Geometry::new(10, 0), Err(GeometryError::ZeroPieceLength));
        assert_eq!(Geometry::new(0, 16384), Err(GeometryError::ZeroTotalLength));
        assert!(matches!(
            Geometry::new(10, PIECE_LENGTH_BYTES_MAX + 1),
            Err(GeometryError::PieceTooLong { .. })
        ));
        assert!(matches!(
            Geometry::new(PIECES_PER_TORRENT_MAX + 1, 1),
            Err(GeometryError::TooManyPieces { .. })
        ));
        assert!(Geometry::new(PIECES_PER_TORRENT_MAX, 1).is_ok());
        assert!(Geometry::new(u64::MAX, PIECE_LENGTH_BYTES_MAX).is_err());
    }

    #[test]
    fn piece_of_40000_bytes_has_a_short_third_block() {
        let g = Geometry::new(100_000, 40_000).unwrap();
        assert_eq!(g.pieces(), 3);
        assert_eq!(g.blocks_in_piece(0), 3);
        let lens: Vec<u32> = (0..3).map(|b| g.block(0, b).unwrap().length).collect();
        assert_eq!(lens, vec![16384, 16384, 7232]);
        assert_eq!(g.block(0, 3), None);
        // Last piece: 20000 bytes = 16384 + 3616.
        assert_eq!(g.piece_size(2), 20_000);
        assert_eq!(g.blocks_in_piece(2), 2);
        assert_eq!(g.block(2, 1).unwrap().length, 3616);
        assert_eq!(g.total_blocks(), 8);
        assert_eq!(g.piece_size(3), 0);
        assert_eq!(g.blocks_in_piece(3), 0);
    }

    #[test]
    fn block_index_needs_an_exact_block() {
        let g = Geometry::new(100_000, 40_000).unwrap();
        let b = g.block(1, 2).unwrap();
        assert_eq!(g.block_index(&b), Some(2));
        assert_eq!(g.block_index(&BlockRequest { length: 16384, ..b }), None);
        assert_eq!(g.block_index(&BlockRequest { offset: 1, ..b }), None);
        assert_eq!(g.block_index(&BlockRequest { piece: 9, ..b }), None);
        let huge = BlockRequest {
            piece: 0,
            offset: u32::MAX - u32::MAX % BLOCK_BYTES,
            length: 1,
        };
        assert_eq!(g.block_index(&huge), None);
    }

    #[test]
    fn exact_multiple_has_no_short_piece() {
        let g = Geometry::new(4 * 32768, 32768).unwrap();
        assert_eq!(g.pieces(), 4);
        assert_eq!(g.piece_size(3), 32768);
        assert_eq!(g.total_blocks(), 8);
    }
}

//! `PieceBuffers`: the blocks of pieces being downloaded, assembled in
//! memory until the piece is complete, hashed and written; and the memory of
//! failed pieces that finds who sent bad data.
//!
//! A piece is written to disk only after its SHA-1 matched, so the disk
//! never holds unverified bytes of a piece we claim to have, and a bad piece
//! costs no disk traffic. Memory: at most one buffer per piece in progress;
//! the picker bounds pieces in progress by the requests outstanding (peers
//! x requests per peer), and [`PieceBuffers::bytes`] reports the total.
//!
//! Finding the bad peer ("smart ban"): when a piece fails its check, the
//! SHA-1 of every block is kept with the peer that sent it. When the same
//! piece later passes, each remembered block is compared with the good
//! one: a sender whose block differed sent bad data and is named. At most
//! `remembered_max` failed pieces are kept (oldest dropped first).

use std::collections::{HashMap, VecDeque};

use thiserror::Error;

use crate::hash::sha1;
use crate::torrent::{PeerKey, BLOCK_BYTES};

/// Why a block could not be stored.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum PieceBufferError {
    #[error("block at offset {offset} of {length} bytes does not fit piece {piece} of {piece_size} bytes")]
    OutOfPiece {
        piece: u32,
        offset: u32,
        length: usize,
        piece_size: u32,
    },
}

#[derive(Debug)]
struct PieceBuf {
    data: Vec<u8>,
    /// Sender of each block, by block index.
    senders: Vec<Option<PeerKey>>,
}

/// A complete piece taken out for hashing.
#[derive(Debug)]
pub struct AssembledPiece {
    pub piece: u32,
    pub data: Vec<u8>,
    pub senders: Vec<Option<PeerKey>>,
}

#[derive(Debug)]
struct FailedPiece {
    piece: u32,
    /// (block index, sender, SHA-1 of what it sent).
    blocks: Vec<(u32, PeerKey, [u8; 20])>,
}

/// Assembly buffers of one torrent.
#[derive(Debug, Default)]
pub struct PieceBuffers {
    bufs: HashMap<u32, PieceBuf>,
    bytes: u64,
    failed: VecDeque<FailedPiece>,
    remembered_max: usize,
}

impl PieceBuffers {
    pub fn new(remembered_max: usize) -> Self {
        Self {
            remembered_max,
            ..Self::default()
        }
    }

    /// Bytes held in assembly buffers.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Pieces being assembled.
    pub fn len(&self) -> usize {
        self.bufs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bufs.is_empty()
    }

    /// Copies one received block into its piece's buffer (made on first use).
    pub fn store(
        &mut self,
        piece: u32,
        piece_size: u32,
        offset: u32,
        block: &[u8],
        sender: PeerKey,
    ) -> Result<(), PieceBufferError> {
        let end = (offset as usize).checked_add(block.len());
        let fits = end.is_some_and(|e| e <= piece_size as usize) && offset % BLOCK_BYTES == 0;
        if !fits {
            return Err(PieceBufferError::OutOfPiece {
                piece,
                offset,
                length: block.len(),
                piece_size,
            });
        }
        let bytes = &mut self.bytes;
        let buf = self.bufs.entry(piece).or_insert_with(|| {
            *bytes += u64::from(piece_size);
            PieceBuf {
                data: vec![0; piece_size as usize],
                senders: vec![None; piece_size.div_ceil(BLOCK_BYTES) as usize],
            }
        });
        let start = offset as usize;
        if let Some(dst) = buf.data.get_mut(start..start + block.len()) {
            dst.copy_from_slice(block);
        }
        if let Some(s) = buf.senders.get_mut((offset / BLOCK_BYTES) as usize) {
            *s = Some(sender);
        }
        Ok(())
    }

    /// Takes a piece's buffer out (to hash and write it).
    pub fn take(&mut self, piece: u32) -> Option<AssembledPiece> {
        let b = self.bufs.remove(&piece)?;
        self.bytes = self.bytes.saturating_sub(b.data.len() as u64);
        Some(AssembledPiece {
            piece,
            data: b.data,
            senders: b.senders,
        })
    }

    /// Drops a piece's buffer (its blocks went back to the picker).
    pub fn discard(&mut self, piece: u32) {
        if let Some(b) = self.bufs.remove(&piece) {
            self.bytes = self.bytes.saturating_sub(b.data.len() as u64);
        }
    }

    /// Remembers a piece that failed its check, block by block.
    pub fn remember_failure(&mut self, failed: &AssembledPiece) {
        if self.remembered_max == 0 {
            return;
        }
        let blocks = block_hashes(&failed.data, &failed.senders);
        // A piece that failed twice keeps the newest evidence only.
        self.failed.retain(|f| f.piece != failed.piece);
        while self.failed.len() >= self.remembered_max {
            self.failed.pop_front();
        }
        self.failed.push_back(FailedPiece {
            piece: failed.piece,
            blocks,
        });
    }

    /// `peer` is gone: its slot may soon name another peer, so no block
    /// keeps its name (a block's bytes stay: they are checked with their
    /// piece, and a block of nobody's blames nobody).
    pub fn peer_gone(&mut self, peer: PeerKey) {
        for b in self.bufs.values_mut() {
            for s in b.senders.iter_mut().filter(|s| **s == Some(peer)) {
                *s = None;
            }
        }
        for f in self.failed.iter_mut() {
            f.blocks.retain(|(_, p, _)| *p != peer);
        }
    }

    /// The piece passed its check with `good` bytes: returns the senders of
    /// remembered blocks that differed (ascending, no repeats), and forgets
    /// the piece.
    pub fn proven_bad(&mut self, piece: u32, good: &[u8]) -> Vec<PeerKey> {
        let Some(i) = self.failed.iter().position(|f| f.piece == piece) else {
            return Vec::new();
        };
        let Some(f) = self.failed.remove(i) else {
            return Vec::new();
        };
        let mut bad: Vec<PeerKey> = f
            .blocks
            .iter()
            .filter(|(block, _, hash)| {
                let start = *block as usize * BLOCK_BYTES as usize;
                let end = (start + BLOCK_BYTES as usize).min(good.len());
                good.get(start..end).is_some_and(|b| sha1(b) != *hash)
            })
            .map(|(_, peer, _)| *peer)
            .collect();
        bad.sort_unstable();
        bad.dedup();
        bad
    }
}

fn block_hashes(data: &[u8], senders: &[Option<PeerKey>]) -> Vec<(u32, PeerKey, [u8; 20])> {
    data.chunks(BLOCK_BYTES as usize)
        .zip(senders)
        .enumerate()
        .filter_map(|(i, (block, sender))| sender.map(|p| (i as u32, p, sha1(block))))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A slot freed by a banned peer is soon another peer's: nothing it sent
    /// may be held against the newcomer.
    #[test]
    fn a_gone_peer_leaves_no_name_behind() {
        let mut pb = PieceBuffers::new(4);
        let size = (2 * B) as u32;
        pb.store(5, size, 0, &[7; B], PeerKey(3)).unwrap();
        pb.remember_failure(&AssembledPiece {
            piece: 9,
            data: vec![1; 2 * B],
            senders: vec![Some(PeerKey(3)), Some(PeerKey(4))],
        });
        pb.peer_gone(PeerKey(3));
        pb.store(5, size, B as u32, &[8; B], PeerKey(3)).unwrap();
        let p = pb.take(5).unwrap();
        assert_eq!(p.senders, vec![None, Some(PeerKey(3))]);
        // The good copy differs in both blocks; only the peer still known is named.
        assert_eq!(pb.proven_bad(9, &[2; 2 * B]), vec![PeerKey(4)]);
    }

    const B: usize = BLOCK_BYTES as usize;

    #[test]
    fn stores_blocks_and_takes_the_piece() {
        let mut pb = PieceBuffers::new(4);
        let size = (2 * B + 100) as u32;
        pb.store(3, size, 0, &[1; B], PeerKey(1)).unwrap();
        pb.store(3, size, (2 * B) as u32, &[3; 100], PeerKey(2))
            .unwrap();
        pb.store(3, size, B as u32, &[2; B], PeerKey(1)).unwrap();
        assert_eq!(pb.bytes(), u64::from(size));
        let p = pb.take(3).unwrap();
        assert_eq!(p.data.len(), size as usize);
        assert_eq!(p.data[B - 1], 1);
        assert_eq!(p.data[B], 2);
        assert_eq!(p.data[2 * B + 99], 3);
        assert_eq!(
            p.senders,
            vec![Some(PeerKey(1)), Some(PeerKey(1)), Some(PeerKey(2))]
        );
        assert_eq!(pb.bytes(), 0);
        assert!(pb.take(3).is_none());
    }

    #[test]
    fn refuses_blocks_outside_the_piece() {
        let mut pb = PieceBuffers::new(4);
        let e = pb.store(0, 100, 0, &[0; 101], PeerKey(0)).unwrap_err();
        assert!(matches!(e, PieceBufferError::OutOfPiece { piece: 0, .. }));
        assert!(pb.store(0, 100, 1, &[0; 10], PeerKey(0)).is_err());
        assert!(pb.store(0, 100, u32::MAX, &[0; 10], PeerKey(0)).is_err());
        assert!(pb.is_empty());
    }

    #[test]
    fn finds_the_sender_of_a_bad_block_once_a_good_copy_arrives() {
        let mut pb = PieceBuffers::new(4);
        let good = vec![7u8; 2 * B];
        let mut bad = good.clone();
        bad[B + 5] ^= 1;
        pb.remember_failure(&AssembledPiece {
            piece: 9,
            data: bad,
            senders: vec![Some(PeerKey(1)), Some(PeerKey(2))],
        });
        assert!(pb.proven_bad(8, &good).is_empty());
        assert_eq!(pb.proven_bad(9, &good), vec![PeerKey(2)]);
        // Forgotten after use.
        assert!(pb.proven_bad(9, &good).is_empty());
    }

    #[test]
    fn remembers_a_bounded_number_of_failures() {
        let mut pb = PieceBuffers::new(2);
        for piece in 0..3 {
            pb.remember_failure(&AssembledPiece {
                piece,
                data: vec![1; B],
                senders: vec![Some(PeerKey(piece))],
            });
        }
        let good = vec![0u8; B];
        assert!(pb.proven_bad(0, &good).is_empty(), "oldest dropped");
        assert_eq!(pb.proven_bad(1, &good), vec![PeerKey(1)]);
        assert_eq!(pb.proven_bad(2, &good), vec![PeerKey(2)]);
        let mut none = PieceBuffers::new(0);
        none.remember_failure(&AssembledPiece {
            piece: 0,
            data: vec![1; B],
            senders: vec![Some(PeerKey(0))],
        });
        assert!(none.proven_bad(0, &good).is_empty());
    }
}

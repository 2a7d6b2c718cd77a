//! Block states of one piece in progress: each block is free, requested (from
//! up to [`REQUESTERS_MAX`] peers), received (from one peer), or written to
//! disk. Keeps per-state counts so that "is it complete", "has it free
//! blocks" and "who contributed" are cheap. Knows nothing about other pieces.

use super::requesters::{PeerKey, Requesters, REQUESTERS_MAX};

/// State of one block of a piece in progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockState {
    Free,
    Requested(Requesters),
    Received(PeerKey),
    Written(PeerKey),
}

/// What receiving a block did to its state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Receipt {
    /// First copy; these other peers still have it requested.
    New { cancel: Requesters },
    /// Already received or written.
    Duplicate,
    /// Not requested from this peer (free, or requested from others only).
    Unexpected,
}

/// One piece being downloaded.
#[derive(Debug, Clone)]
pub struct PartialPiece {
    piece: u32,
    blocks: Vec<BlockState>,
    free: u32,
    requested: u32,
    received: u32,
    written: u32,
    /// No block before this index is free.
    free_hint: u32,
}

impl PartialPiece {
    /// Piece `piece` with `blocks` free blocks, reusing `storage`'s allocation.
    pub fn new(piece: u32, blocks: u32, mut storage: Vec<BlockState>) -> Self {
        storage.clear();
        storage.resize(blocks as usize, BlockState::Free);
        Self {
            piece,
            blocks: storage,
            free: blocks,
            requested: 0,
            received: 0,
            written: 0,
            free_hint: 0,
        }
    }

    /// Gives back the block storage for reuse.
    pub fn into_storage(self) -> Vec<BlockState> {
        self.blocks
    }

    pub fn piece(&self) -> u32 {
        self.piece
    }
    pub fn block_count(&self) -> u32 {
        self.blocks.len() as u32
    }
    pub fn free(&self) -> u32 {
        self.free
    }
    pub fn requested(&self) -> u32 {
        self.requested
    }
    /// Blocks received or written.
    pub fn received(&self) -> u32 {
        self.received
    }
    pub fn written(&self) -> u32 {
        self.written
    }
    /// Every block received or written.
    pub fn is_complete(&self) -> bool {
        self.received == self.block_count()
    }
    /// Every block free (nothing requested or received).
    pub fn is_untouched(&self) -> bool {
        self.free == self.block_count()
    }

    /// State of block `block`.
    pub fn state(&self, block: u32) -> Option<BlockState> {
        self.blocks.get(block as usize).copied()
    }

    /// Requests the next free block from `peer`; returns its index.
    pub fn request_next_free(&mut self, peer: PeerKey) -> Option<u32> {
        let start = self.free_hint as usize;
        let rel = self
            .blocks
            .get(start..)?
            .iter()
            .position(|s| *s == BlockState::Free)?;
        let index = start + rel;
        self.blocks[index] = BlockState::Requested(Requesters::one(peer));
        self.free -= 1;
        self.requested += 1;
        self.free_hint = index as u32 + 1;
        Some(index as u32)
    }

    /// Adds `peer` as an extra requester of a requested block (endgame).
    /// False when the block is not requested, already requested from `peer`,
    /// or has `limit` (at most [`REQUESTERS_MAX`]) requesters.
    pub fn request_duplicate(&mut self, block: u32, peer: PeerKey, limit: usize) -> bool {
        match self.blocks.get_mut(block as usize) {
            Some(BlockState::Requested(r)) if r.len() < limit.min(REQUESTERS_MAX) => r.insert(peer),
            _ => false,
        }
    }

    fn mark_free(&mut self, index: usize) {
        self.blocks[index] = BlockState::Free;
        self.free += 1;
        self.free_hint = self.free_hint.min(index as u32);
    }

    /// Removes `peer`'s request of `block`. Returns `(removed, became_free)`.
    pub fn cancel(&mut self, block: u32, peer: PeerKey) -> (bool, bool) {
        let index = block as usize;
        let Some(BlockState::Requested(r)) = self.blocks.get_mut(index) else {
            return (false, false);
        };
        if !r.remove(peer) {
            return (false, false);
        }
        if r.is_empty() {
            self.requested -= 1;
            self.mark_free(index);
            return (true, true);
        }
        (true, false)
    }

    /// Removes every request from `peer`; returns `(removed, became_free)` counts.
    pub fn drop_peer(&mut self, peer: PeerKey) -> (u32, u32) {
        let (mut removed, mut freed) = (0, 0);
        for index in 0..self.blocks.len() {
            if let BlockState::Requested(r) = &mut self.blocks[index] {
                if r.remove(peer) {
                    removed += 1;
                    if r.is_empty() {
                        self.requested -= 1;
                        self.mark_free(index);
                        freed += 1;
                    }
                }
            }
        }
        (removed, freed)
    }

    /// `peer` delivered `block`.
    pub fn receive(&mut self, block: u32, peer: PeerKey) -> Receipt {
        let Some(state) = self.blocks.get_mut(block as usize) else {
            return Receipt::Unexpected;
        };
        match *state {
            BlockState::Received(_) | BlockState::Written(_) => Receipt::Duplicate,
            BlockState::Free => Receipt::Unexpected,
            BlockState::Requested(mut r) => {
                if !r.remove(peer) {
                    return Receipt::Unexpected;
                }
                *state = BlockState::Received(peer);
                self.requested -= 1;
                self.received += 1;
                Receipt::New { cancel: r }
            }
        }
    }

    /// Marks a received block as written to disk; false unless it was received.
    pub fn write(&mut self, block: u32) -> bool {
        match self.blocks.get_mut(block as usize) {
            Some(state @ BlockState::Received(_)) => {
                if let BlockState::Received(p) = *state {
                    *state = BlockState::Written(p);
                }
                self.written += 1;
                true
            }
            _ => false,
        }
    }

    /// Peers that delivered blocks, ascending, without repeats.
    pub fn contributors(&self) -> Vec<PeerKey> {
        let mut peers: Vec<PeerKey> = self
            .blocks
            .iter()
            .filter_map(|s| match s {
                BlockState::Received(p) | BlockState::Written(p) => Some(*p),
                _ => None,
            })
            .collect();
        peers.sort_unstable();
        peers.dedup();
        peers
    }

    /// Indices of blocks requested and not full, for endgame duplicates.
    pub fn requested_blocks(&self) -> impl Iterator<Item = (u32, &Requesters)> + '_ {
        self.blocks.iter().enumerate().filter_map(|(i, s)| match s {
            BlockState::Requested(r) => Some((i as u32, r)),
            _ => None,
        })
    }

    /// Checks that the counts match the block states.
    pub fn check_invariants(&self) -> Result<(), String> {
        let (mut free, mut requested, mut received, mut written) = (0u32, 0u32, 0u32, 0u32);
        for (i, s) in self.blocks.iter().enumerate() {
            match s {
                BlockState::Free => {
                    if (i as u32) < self.free_hint {
                        return Err(format!("piece {}: free block {i} before hint", self.piece));
                    }
                    free += 1;
                }
                BlockState::Requested(r) => {
                    if r.is_empty() {
                        return Err(format!(
                            "piece {}: block {i} requested by nobody",
                            self.piece
                        ));
                    }
                    requested += 1;
                }
                BlockState::Received(_) => received += 1,
                BlockState::Written(_) => {
                    received += 1;
                    written += 1;
                }
            }
        }
        if (free, requested, received, written)
            != (self.free, self.requested, self.received, self.written)
        {
            return Err(format!(
                "piece {}: counts {:?} differ from blocks {:?}",
                self.piece,
                (self.free, self.requested, self.received, self.written),
                (free, requested, received, written)
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: PeerKey = PeerKey(1);
    const B: PeerKey = PeerKey(2);

    #[test]
    fn request_receive_write() {
        let mut p = PartialPiece::new(7, 3, Vec::new());
        assert_eq!(p.request_next_free(A), Some(0));
        assert_eq!(p.request_next_free(B), Some(1));
        assert_eq!(p.request_next_free(A), Some(2));
        assert_eq!(p.request_next_free(A), None);
        assert_eq!(p.receive(1, A), Receipt::Unexpected);
        assert!(matches!(p.receive(1, B), Receipt::New { cancel } if cancel.is_empty()));
        assert_eq!(p.receive(1, B), Receipt::Duplicate);
        assert!(p.write(1));
        assert!(!p.write(1));
        assert!(!p.write(0));
        p.check_invariants().unwrap();
        assert_eq!(
            (p.free(), p.requested(), p.received(), p.written()),
            (0, 2, 1, 1)
        );
    }

    #[test]
    fn cancel_and_drop_free_blocks() {
        let mut p = PartialPiece::new(0, 4, Vec::new());
        for _ in 0..3 {
            p.request_next_free(A);
        }
        assert!(p.request_duplicate(0, B, 2));
        assert!(!p.request_duplicate(0, B, 2));
        assert!(!p.request_duplicate(3, B, 2));
        assert_eq!(p.cancel(1, A), (true, true));
        assert_eq!(p.cancel(1, A), (false, false));
        assert_eq!(p.drop_peer(A), (2, 1));
        assert!(matches!(p.state(0), Some(BlockState::Requested(r)) if r.as_slice() == [B]));
        p.check_invariants().unwrap();
        assert_eq!(p.request_next_free(A), Some(1));
        assert_eq!(p.free(), 2);
    }

    #[test]
    fn duplicate_receipt_reports_other_requesters() {
        let mut p = PartialPiece::new(0, 1, Vec::new());
        p.request_next_free(A);
        p.request_duplicate(0, B, 3);
        match p.receive(0, B) {
            Receipt::New { cancel } => assert_eq!(cancel.as_slice(), &[A]),
            other => panic!("unexpected {other:?}"),
        }
        assert!(p.is_complete());
        assert_eq!(p.contributors(), vec![B]);
        assert_eq!(p.receive(5, A), Receipt::Unexpected);
    }
}

//! Rarest-first piece picker: decides which blocks to request from which peer.
//!
//! It tracks, per piece, how many connected peers have it (seeds are one
//! shared counter, so a seed's have-all costs O(1)), which pieces we have,
//! and the block states of pieces in progress. It does no IO and reads no
//! clock; randomness comes from a caller's [`Rng`].
//!
//! Picking order for one peer ([`PiecePicker::pick_blocks`]):
//! 1. free blocks of pieces already in progress that the peer has (so pieces
//!    complete instead of many pieces staying half done);
//! 2. new pieces the peer has, rarest first (lowest availability bucket
//!    first), ties broken by a random starting point inside each bucket (the
//!    initial order inside buckets is also shuffled);
//! 3. endgame only (every missing block is requested): blocks already
//!    requested from other peers, up to [`ENDGAME_REQUESTERS_MAX`] requesters
//!    per block; [`PiecePicker::block_received`] then names the peers whose
//!    duplicate requests to cancel.
//!
//! Complexity: phase 1 is O(open pieces in progress + blocks taken); phase 2
//! is O(pieces examined): it walks the availability buckets from the rarest
//! and stops once `count` blocks are picked, skipping pieces the peer lacks or
//! that are already in progress, never touching pieces we have (they live
//! outside the buckets). A peer with few pieces can make phase 2 walk many
//! missing pieces; that bound is O(missing pieces). Pieces no non-seed peer
//! has (availability bucket 0) are skipped for non-seed peers: this relies on
//! every peer's bitfield being registered with `peer_bitfield`/`peer_has`.
//! Phase 3 is O(blocks of pieces in progress). Availability updates are O(1)
//! per piece; a piece becoming ours is O(availability levels). Memory is about
//! 17 bytes per piece plus the block states of pieces in progress.

use thiserror::Error;

use super::availability::{AvailabilityError, RarityOrder, AVAILABILITY_MAX};
use super::bitfield::{Bitfield, BitfieldError};
use super::geometry::{BlockRequest, Geometry};
use super::in_progress::InProgress;
use super::partial::Receipt;
use super::requesters::{PeerKey, Requesters, REQUESTERS_MAX};
use crate::rng::Rng;

/// Most block requests one `pick_blocks` call returns.
pub const PICK_BLOCKS_MAX: usize = 4096;
/// Most peers a block is requested from at once in endgame.
pub const ENDGAME_REQUESTERS_MAX: usize = REQUESTERS_MAX;
/// Most seeds counted at once.
pub const SEEDS_MAX: u32 = AVAILABILITY_MAX;

/// Why a picker call was refused. Each carries what was expected and found.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PickerError {
    #[error("peer bitfield has {found} bits, the torrent has {expected} pieces")]
    BitfieldLength { expected: usize, found: usize },
    #[error(transparent)]
    Bitfield(#[from] BitfieldError),
    #[error(transparent)]
    Availability(#[from] AvailabilityError),
    #[error("piece {piece} is outside a torrent of {pieces} pieces")]
    PieceOutOfRange { piece: u32, pieces: u32 },
    #[error("{block:?} is not a block of this torrent")]
    BadBlock { block: BlockRequest },
    #[error("piece {piece} is not complete: {received} of {blocks} blocks in")]
    NotComplete {
        piece: u32,
        received: u32,
        blocks: u32,
    },
    #[error("piece {piece} is already ours")]
    AlreadyHave { piece: u32 },
    #[error("the peer's bitfield lacks piece {piece} it announced")]
    PeerLacksPiece { piece: u32 },
    #[error("already {max} seeds counted")]
    TooManySeeds { max: u32 },
    #[error("no seed is counted, none can leave")]
    NoSeeds,
}

/// An internal invariant of the picker does not hold (a bug, never input).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("piece picker invariant broken: {what}")]
pub struct InvariantError {
    pub what: String,
}

/// What a received block meant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockOutcome {
    /// First copy, recorded. `cancel` lists other peers that had the block
    /// requested too (endgame): send them `cancel` messages. Their requests
    /// are already dropped from the picker.
    New { cancel: Requesters },
    /// We already had this block (or its whole piece).
    Duplicate,
    /// Not requested from this peer; not recorded.
    Unexpected,
}

/// The piece picker of one torrent.
#[derive(Debug, Clone)]
pub struct PiecePicker {
    geometry: Geometry,
    rarity: RarityOrder,
    have: Bitfield,
    seeds: u32,
    in_progress: InProgress,
    /// Free blocks over all missing pieces (untouched pieces count fully).
    free_blocks: u64,
}

impl PiecePicker {
    /// A picker with no pieces and no peers; `rng` shuffles tie order.
    pub fn new(geometry: Geometry, rng: &mut Rng) -> Result<Self, PickerError> {
        let pieces = geometry.pieces();
        Ok(Self {
            geometry,
            rarity: RarityOrder::new(pieces, rng),
            have: Bitfield::new(pieces as usize)?,
            seeds: 0,
            in_progress: InProgress::new(pieces),
            free_blocks: geometry.total_blocks(),
        })
    }

    /// The torrent's geometry.
    pub fn geometry(&self) -> &Geometry {
        &self.geometry
    }

    /// The pieces we have (verified).
    pub fn have(&self) -> &Bitfield {
        &self.have
    }

    /// Whether every piece is ours.
    pub fn is_finished(&self) -> bool {
        self.have.all()
    }

    /// Whether every missing block is requested (duplicates allowed).
    pub fn is_endgame(&self) -> bool {
        self.free_blocks == 0 && !self.is_finished()
    }

    /// Free blocks left over all missing pieces.
    pub fn free_blocks(&self) -> u64 {
        self.free_blocks
    }

    /// Number of pieces in progress.
    pub fn pieces_in_progress(&self) -> usize {
        self.in_progress.len()
    }

    /// Number of seeds counted.
    pub fn seeds(&self) -> u32 {
        self.seeds
    }

    /// How many connected peers have `piece` (seeds included).
    pub fn availability(&self, piece: u32) -> u32 {
        self.rarity.count(piece) + self.seeds
    }

    /// Whether all blocks of `piece` are received (or written).
    pub fn piece_complete(&self, piece: u32) -> bool {
        self.in_progress.get(piece).is_some_and(|p| p.is_complete())
    }

    fn check_piece(&self, piece: u32) -> Result<(), PickerError> {
        if piece < self.geometry.pieces() {
            Ok(())
        } else {
            Err(PickerError::PieceOutOfRange {
                piece,
                pieces: self.geometry.pieces(),
            })
        }
    }

    fn check_len(&self, bits: &Bitfield) -> Result<(), PickerError> {
        let expected = self.geometry.pieces() as usize;
        if bits.len() == expected {
            Ok(())
        } else {
            Err(PickerError::BitfieldLength {
                expected,
                found: bits.len(),
            })
        }
    }

    fn block_index(&self, block: &BlockRequest) -> Result<u32, PickerError> {
        self.geometry
            .block_index(block)
            .ok_or(PickerError::BadBlock { block: *block })
    }

    // ---- availability -------------------------------------------------

    /// A peer announced `piece` (a `have` message); `peer_now` is its
    /// bitfield with that bit already set. When that makes the peer a seed,
    /// its per-piece counts are folded into the seed counter (O(pieces), once
    /// per peer), so that [`peer_lost`](Self::peer_lost) of a full bitfield
    /// always means "one seed fewer".
    pub fn peer_has(&mut self, piece: u32, peer_now: &Bitfield) -> Result<(), PickerError> {
        self.check_len(peer_now)?;
        self.check_piece(piece)?;
        if !peer_now.get(piece as usize) {
            return Err(PickerError::PeerLacksPiece { piece });
        }
        if !peer_now.all() {
            self.rarity.increment(piece)?;
            return Ok(());
        }
        if self.seeds >= SEEDS_MAX {
            return Err(PickerError::TooManySeeds { max: SEEDS_MAX });
        }
        let pieces = self.geometry.pieces();
        if let Some(p) = (0..pieces).find(|&p| p != piece && self.rarity.count(p) == 0) {
            return Err(AvailabilityError::Underflow { piece: p }.into());
        }
        for p in (0..pieces).filter(|&p| p != piece) {
            self.rarity.decrement(p)?;
        }
        self.seeds += 1;
        Ok(())
    }

    /// A seed joined (`have_all`, or a full bitfield): O(1).
    pub fn peer_has_all(&mut self) -> Result<(), PickerError> {
        if self.seeds >= SEEDS_MAX {
            return Err(PickerError::TooManySeeds { max: SEEDS_MAX });
        }
        self.seeds += 1;
        Ok(())
    }

    /// A peer joined with bitfield `bits`: O(set bits), O(1) for a full one.
    /// On error nothing is changed.
    pub fn peer_bitfield(&mut self, bits: &Bitfield) -> Result<(), PickerError> {
        self.check_len(bits)?;
        if bits.all() {
            return self.peer_has_all();
        }
        self.count_bits(bits, true)
    }

    /// A peer with bitfield `bits` left (its requests are freed separately by
    /// [`peer_disconnected`](Self::peer_disconnected)). On error nothing is changed.
    pub fn peer_lost(&mut self, bits: &Bitfield) -> Result<(), PickerError> {
        self.check_len(bits)?;
        if bits.all() {
            if self.seeds == 0 {
                return Err(PickerError::NoSeeds);
            }
            self.seeds -= 1;
            return Ok(());
        }
        self.count_bits(bits, false)
    }

    /// Adds (`up`) or removes one to the availability of every piece in
    /// `bits`; on error, undoes what it did, so nothing is changed.
    fn count_bits(&mut self, bits: &Bitfield, up: bool) -> Result<(), PickerError> {
        let step = |rarity: &mut RarityOrder, piece: usize, up: bool| {
            if up {
                rarity.increment(piece as u32)
            } else {
                rarity.decrement(piece as u32)
            }
        };
        for (done, piece) in bits.iter_ones().enumerate() {
            if let Err(e) = step(&mut self.rarity, piece, up) {
                for undo in bits.iter_ones().take(done) {
                    step(&mut self.rarity, undo, !up)?;
                }
                return Err(e.into());
            }
        }
        Ok(())
    }

    // ---- our pieces ---------------------------------------------------

    /// Records `piece` as ours without downloading it (e.g. resume data);
    /// any progress on it is dropped. Returns whether it was new.
    pub fn mark_have(&mut self, piece: u32) -> Result<bool, PickerError> {
        self.check_piece(piece)?;
        if self.have.get(piece as usize) {
            return Ok(false);
        }
        let free = match self.in_progress.get(piece) {
            Some(p) => u64::from(p.free()),
            None => u64::from(self.geometry.blocks_in_piece(piece)),
        };
        debug_assert!(
            self.free_blocks >= free,
            "free block count below a piece's free blocks"
        );
        self.free_blocks -= free;
        self.in_progress.remove(piece);
        self.have.set(piece as usize)?;
        self.rarity.mark_have(piece)?;
        Ok(true)
    }

    // ---- picking ------------------------------------------------------

    /// Takes up to `want` free blocks of the piece in `slot` for `peer`, and
    /// takes them off the `free_blocks` count.
    fn take_free(
        in_progress: &mut InProgress,
        free_blocks: &mut u64,
        geometry: &Geometry,
        slot: usize,
        peer: PeerKey,
        want: usize,
        out: &mut Vec<BlockRequest>,
    ) -> usize {
        let Some(partial) = in_progress.at_mut(slot) else {
            return 0;
        };
        let piece = partial.piece();
        let mut taken = 0;
        while taken < want {
            let Some(block) = partial.request_next_free(peer) else {
                break;
            };
            if let Some(req) = geometry.block(piece, block) {
                out.push(req);
            }
            taken += 1;
        }
        in_progress.refresh_open(slot);
        debug_assert!(
            *free_blocks >= taken as u64,
            "free block count below blocks taken"
        );
        *free_blocks = free_blocks.saturating_sub(taken as u64);
        taken
    }

    /// Appends to `out` up to `count` (at most [`PICK_BLOCKS_MAX`]) new block
    /// requests for `peer`, whose bitfield is `peer_has`, and records them as
    /// requested. Returns how many were added. See the module header for the
    /// order and the cost.
    pub fn pick_blocks(
        &mut self,
        peer: PeerKey,
        peer_has: &Bitfield,
        count: usize,
        out: &mut Vec<BlockRequest>,
        rng: &mut Rng,
    ) -> Result<usize, PickerError> {
        self.check_len(peer_has)?;
        let want = count.min(PICK_BLOCKS_MAX);
        let mut picked = 0;
        let out_before = out.len();

        // 1. Finish pieces in progress.
        let mut i = 0;
        while picked < want {
            let Some(&slot) = self.in_progress.open().get(i) else {
                break;
            };
            let slot = slot as usize;
            let piece = self
                .in_progress
                .all()
                .get(slot)
                .map_or(u32::MAX, |p| p.piece());
            if peer_has.get(piece as usize) {
                picked += Self::take_free(
                    &mut self.in_progress,
                    &mut self.free_blocks,
                    &self.geometry,
                    slot,
                    peer,
                    want - picked,
                    out,
                );
                if !self.in_progress.is_open(slot) {
                    // Removed from the open list: position `i` now holds another slot.
                    continue;
                }
            }
            i += 1;
        }

        // 2. Rarest first over new pieces.
        let first_level = if peer_has.all() { 0 } else { 1 };
        if picked < want && self.free_blocks > 0 {
            'levels: for level in first_level..self.rarity.levels() {
                let bucket = self.rarity.bucket(level);
                let n = bucket.len();
                if n == 0 {
                    continue;
                }
                let start = rng.below_usize(n);
                for k in 0..n {
                    let at = if start + k >= n {
                        start + k - n
                    } else {
                        start + k
                    };
                    let piece = bucket[at];
                    if !peer_has.get(piece as usize) || self.in_progress.contains(piece) {
                        continue;
                    }
                    let blocks = self.geometry.blocks_in_piece(piece);
                    let slot = self.in_progress.start(piece, blocks);
                    picked += Self::take_free(
                        &mut self.in_progress,
                        &mut self.free_blocks,
                        &self.geometry,
                        slot,
                        peer,
                        want - picked,
                        out,
                    );
                    if picked >= want {
                        break 'levels;
                    }
                }
            }
        }

        // 3. Endgame: duplicate requests of blocks others are fetching.
        if picked < want && self.is_endgame() {
            let n = self.in_progress.len();
            let start = rng.below_usize(n);
            'pieces: for k in 0..n {
                let slot = (start + k) % n;
                let Some(partial) = self.in_progress.at_mut(slot) else {
                    continue;
                };
                let piece = partial.piece();
                if !peer_has.get(piece as usize) {
                    continue;
                }
                for block in 0..partial.block_count() {
                    if picked >= want {
                        break 'pieces;
                    }
                    if partial.request_duplicate(block, peer, ENDGAME_REQUESTERS_MAX) {
                        if let Some(req) = self.geometry.block(piece, block) {
                            out.push(req);
                        }
                        picked += 1;
                    }
                }
            }
        }
        debug_assert!(picked <= want && out.len() == out_before + picked);
        Ok(picked)
    }

    // ---- block events -------------------------------------------------

    /// `peer` delivered `block`.
    pub fn block_received(
        &mut self,
        peer: PeerKey,
        block: &BlockRequest,
    ) -> Result<BlockOutcome, PickerError> {
        let index = self.block_index(block)?;
        if self.have.get(block.piece as usize) {
            return Ok(BlockOutcome::Duplicate);
        }
        let Some(slot) = self.in_progress.slot(block.piece) else {
            return Ok(BlockOutcome::Unexpected);
        };
        let Some(partial) = self.in_progress.at_mut(slot) else {
            return Ok(BlockOutcome::Unexpected);
        };
        Ok(match partial.receive(index, peer) {
            Receipt::New { cancel } => BlockOutcome::New { cancel },
            Receipt::Duplicate => BlockOutcome::Duplicate,
            Receipt::Unexpected => BlockOutcome::Unexpected,
        })
    }

    /// A received block reached the disk; returns false unless it was received.
    pub fn block_written(&mut self, block: &BlockRequest) -> Result<bool, PickerError> {
        let index = self.block_index(block)?;
        let Some(slot) = self.in_progress.slot(block.piece) else {
            return Ok(false);
        };
        Ok(self
            .in_progress
            .at_mut(slot)
            .is_some_and(|p| p.write(index)))
    }

    /// After blocks of `slot` became free: drop the piece if nothing is left
    /// on it, else reopen it.
    fn after_free(&mut self, slot: usize) -> bool {
        match self.in_progress.all().get(slot) {
            Some(p) if p.is_untouched() => {
                let piece = p.piece();
                self.in_progress.remove(piece);
                true
            }
            _ => {
                self.in_progress.refresh_open(slot);
                false
            }
        }
    }

    /// `peer`'s request of `block` was cancelled (or rejected, or timed out).
    /// Returns whether such a request existed.
    pub fn request_cancelled(
        &mut self,
        peer: PeerKey,
        block: &BlockRequest,
    ) -> Result<bool, PickerError> {
        let index = self.block_index(block)?;
        let Some(slot) = self.in_progress.slot(block.piece) else {
            return Ok(false);
        };
        let Some(partial) = self.in_progress.at_mut(slot) else {
            return Ok(false);
        };
        let (removed, freed) = partial.cancel(index, peer);
        if freed {
            self.free_blocks += 1;
            self.after_free(slot);
        }
        Ok(removed)
    }

    /// `peer` is gone: all its requests are dropped, blocks nobody else
    /// requested become free. Returns how many requests were dropped.
    /// O(blocks of pieces in progress).
    pub fn peer_disconnected(&mut self, peer: PeerKey) -> usize {
        let mut removed_total = 0;
        let mut slot = 0;
        while let Some(partial) = self.in_progress.at_mut(slot) {
            let (removed, freed) = partial.drop_peer(peer);
            removed_total += removed as usize;
            self.free_blocks += u64::from(freed);
            if freed > 0 && self.after_free(slot) {
                // The last slot moved into `slot`; look at it next.
                continue;
            }
            slot += 1;
        }
        debug_assert!(self
            .in_progress
            .all()
            .iter()
            .all(|p| p.requested_blocks().all(|(_, r)| !r.contains(peer))));
        removed_total
    }

    /// The hash check of a complete `piece` finished. On success the piece is
    /// ours; on failure every block goes back to free and the peers that
    /// sent its blocks are returned (ascending, no repeats) so the engine can
    /// track or ban them. Success returns an empty list.
    pub fn piece_verified(&mut self, piece: u32, ok: bool) -> Result<Vec<PeerKey>, PickerError> {
        self.check_piece(piece)?;
        if self.have.get(piece as usize) {
            return Err(PickerError::AlreadyHave { piece });
        }
        let blocks = self.geometry.blocks_in_piece(piece);
        let received = self.in_progress.get(piece).map_or(0, |p| p.received());
        if received != blocks {
            return Err(PickerError::NotComplete {
                piece,
                received,
                blocks,
            });
        }
        if ok {
            self.in_progress.remove(piece);
            self.have.set(piece as usize)?;
            self.rarity.mark_have(piece)?;
            return Ok(Vec::new());
        }
        let contributors = self
            .in_progress
            .get(piece)
            .map(|p| p.contributors())
            .unwrap_or_default();
        self.in_progress.remove(piece);
        self.free_blocks += u64::from(blocks);
        Ok(contributors)
    }

    /// Checks every internal invariant (O(pieces + blocks in progress));
    /// describes the first one broken. For tests and debugging.
    pub fn check_invariants(&self) -> Result<(), InvariantError> {
        self.first_broken_invariant()
            .map_err(|what| InvariantError { what })
    }

    fn first_broken_invariant(&self) -> Result<(), String> {
        self.rarity.check_invariants()?;
        self.in_progress.check_invariants()?;
        let mut free = 0u64;
        for piece in 0..self.geometry.pieces() {
            let have = self.have.get(piece as usize);
            if have != self.rarity.is_have(piece) {
                return Err(format!("piece {piece}: have bit and order disagree"));
            }
            match (have, self.in_progress.get(piece)) {
                (true, Some(_)) => return Err(format!("piece {piece} is ours and in progress")),
                (true, None) => {}
                (false, Some(p)) => {
                    if p.block_count() != self.geometry.blocks_in_piece(piece) {
                        return Err(format!("piece {piece}: wrong block count"));
                    }
                    if p.is_untouched() {
                        return Err(format!("piece {piece}: in progress but untouched"));
                    }
                    free += u64::from(p.free());
                }
                (false, None) => free += u64::from(self.geometry.blocks_in_piece(piece)),
            }
        }
        if free != self.free_blocks {
            return Err(format!(
                "free blocks counted {} but are {free}",
                self.free_blocks
            ));
        }
        for p in self.in_progress.all() {
            for (block, r) in p.requested_blocks() {
                if r.len() > ENDGAME_REQUESTERS_MAX {
                    return Err(format!(
                        "piece {} block {block}: too many requesters",
                        p.piece()
                    ));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::torrent::geometry::BLOCK_BYTES;

    const A: PeerKey = PeerKey(1);
    const B: PeerKey = PeerKey(2);
    const C: PeerKey = PeerKey(3);
    const D: PeerKey = PeerKey(4);

    fn picker(total: u64, piece_length: u64, seed: u64) -> (PiecePicker, Rng) {
        let mut rng = Rng::new(seed);
        let g = Geometry::new(total, piece_length).unwrap();
        (PiecePicker::new(g, &mut rng).unwrap(), rng)
    }

    fn bits(len: usize, ones: &[usize]) -> Bitfield {
        let mut b = Bitfield::new(len).unwrap();
        for &i in ones {
            b.set(i).unwrap();
        }
        b
    }

    fn pick(
        p: &mut PiecePicker,
        peer: PeerKey,
        has: &Bitfield,
        count: usize,
        rng: &mut Rng,
    ) -> Vec<BlockRequest> {
        let mut out = Vec::new();
        let n = p.pick_blocks(peer, has, count, &mut out, rng).unwrap();
        assert_eq!(n, out.len());
        p.check_invariants().unwrap();
        out
    }

    #[test]
    fn picks_the_rarest_piece_first() {
        // 10 one-block pieces; piece 3 is on one peer, piece 5 on two, the rest on three.
        let (mut p, mut rng) = picker(10 * 16384, 16384, 11);
        let all_but_9: Vec<usize> = (0..9).collect();
        let p1 = bits(10, &all_but_9);
        let p2 = bits(10, &[0, 1, 2, 4, 5, 6, 7, 8]);
        let p3 = bits(10, &[0, 1, 2, 4, 6, 7, 8, 9]);
        for b in [&p1, &p2, &p3] {
            p.peer_bitfield(b).unwrap();
        }
        assert_eq!(p.availability(3), 1);
        assert_eq!(p.availability(5), 2);
        assert_eq!(p.availability(0), 3);
        let first = pick(&mut p, A, &p1, 1, &mut rng);
        assert_eq!(first[0].piece, 3);
        let second = pick(&mut p, A, &p1, 1, &mut rng);
        assert_eq!(second[0].piece, 5);
        // Never a piece the peer lacks: p3 lacks 3 and 5 (taken anyway) and has 9 (rarer than 0..8).
        let third = pick(&mut p, C, &p3, 1, &mut rng);
        assert_eq!(third[0].piece, 9);
    }

    #[test]
    fn ties_are_random_but_deterministic_per_seed() {
        let mut firsts = Vec::new();
        for seed in 1..=12u64 {
            println!("tie-break seed {seed}");
            let run = |seed| {
                let (mut p, mut rng) = picker(101 * 16384, 16384, seed);
                let has = bits(101, &(0..100).collect::<Vec<_>>());
                p.peer_bitfield(&has).unwrap();
                pick(&mut p, A, &has, 1, &mut rng)[0].piece
            };
            let a = run(seed);
            assert_eq!(a, run(seed), "seed {seed} must repeat");
            firsts.push(a);
        }
        firsts.sort();
        firsts.dedup();
        assert!(firsts.len() >= 6, "ties not spread: {firsts:?}");
    }

    #[test]
    fn non_seed_peer_skips_pieces_only_seeds_have() {
        // A seed plus one partial peer: the partial peer's piece is the only
        // one in bucket 1, so it is found without walking bucket 0.
        let (mut p, mut rng) = picker(50 * 16384, 16384, 5);
        p.peer_has_all().unwrap();
        let partial = bits(50, &[42]);
        p.peer_bitfield(&partial).unwrap();
        assert_eq!(p.availability(42), 2);
        assert_eq!(p.availability(0), 1);
        let got = pick(&mut p, B, &partial, 4, &mut rng);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].piece, 42);
        // The seed gets the rarest: any piece of bucket 0.
        let seed_bits = Bitfield::full(50).unwrap();
        let got = pick(&mut p, A, &seed_bits, 2, &mut rng);
        assert!(got.iter().all(|r| r.piece != 42));
    }

    #[test]
    fn partial_pieces_are_finished_first() {
        // 5 pieces of 4 blocks. A has only piece 4 and starts it.
        let (mut p, mut rng) = picker(5 * 4 * 16384, 4 * 16384, 3);
        let a_bits = bits(5, &[4]);
        let seed_bits = Bitfield::full(5).unwrap();
        p.peer_bitfield(&a_bits).unwrap();
        p.peer_has_all().unwrap();
        let a_got = pick(&mut p, A, &a_bits, 2, &mut rng);
        assert_eq!(
            a_got
                .iter()
                .map(|r| (r.piece, r.offset))
                .collect::<Vec<_>>(),
            vec![(4, 0), (4, 16384)]
        );
        // The seed would rather take a rarer piece, but finishes piece 4 first.
        let b_got = pick(&mut p, B, &seed_bits, 3, &mut rng);
        assert_eq!(
            b_got[0],
            BlockRequest {
                piece: 4,
                offset: 2 * 16384,
                length: 16384
            }
        );
        assert_eq!(b_got[1].piece, 4);
        assert_ne!(b_got[2].piece, 4);
        assert_eq!(p.pieces_in_progress(), 2);
        // Nothing is requested twice outside endgame.
        let mut all: Vec<BlockRequest> = a_got.into_iter().chain(b_got).collect();
        all.extend(pick(&mut p, C, &seed_bits, 15, &mut rng));
        let n = all.len();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), n);
        assert_eq!(n, 20);
        assert!(p.is_endgame());
    }

    #[test]
    fn endgame_duplicates_are_bounded_and_cancelled_on_receipt() {
        let (mut p, mut rng) = picker(2 * 16384, 2 * 16384, 9);
        let full = Bitfield::full(1).unwrap();
        for _ in 0..4 {
            p.peer_has_all().unwrap();
        }
        assert!(!p.is_endgame());
        assert_eq!(pick(&mut p, A, &full, 10, &mut rng).len(), 2);
        assert!(p.is_endgame());
        // A gets nothing more: it already requested both blocks.
        assert!(pick(&mut p, A, &full, 10, &mut rng).is_empty());
        assert_eq!(pick(&mut p, B, &full, 10, &mut rng).len(), 2);
        assert_eq!(pick(&mut p, C, &full, 10, &mut rng).len(), 2);
        assert!(
            pick(&mut p, D, &full, 10, &mut rng).is_empty(),
            "3 requesters at most"
        );
        let b0 = p.geometry().block(0, 0).unwrap();
        let b1 = p.geometry().block(0, 1).unwrap();
        match p.block_received(A, &b0).unwrap() {
            BlockOutcome::New { cancel } => assert_eq!(cancel.as_slice(), &[B, C]),
            other => panic!("expected New, got {other:?}"),
        }
        assert_eq!(p.block_received(B, &b0).unwrap(), BlockOutcome::Duplicate);
        assert!(!p.piece_complete(0));
        // B's request of block 1 is cancelled; C delivers it.
        assert_eq!(p.request_cancelled(B, &b1), Ok(true));
        assert_eq!(p.request_cancelled(B, &b1), Ok(false));
        match p.block_received(C, &b1).unwrap() {
            BlockOutcome::New { cancel } => assert_eq!(cancel.as_slice(), &[A]),
            other => panic!("expected New, got {other:?}"),
        }
        assert!(p.piece_complete(0));
        p.check_invariants().unwrap();
        assert_eq!(p.piece_verified(0, true), Ok(vec![]));
        assert!(p.is_finished());
        assert!(!p.is_endgame());
        assert_eq!(p.block_received(C, &b1).unwrap(), BlockOutcome::Duplicate);
        assert!(pick(&mut p, D, &full, 10, &mut rng).is_empty());
        p.check_invariants().unwrap();
    }

    #[test]
    fn failed_verification_frees_blocks_and_names_senders() {
        let (mut p, mut rng) = picker(3 * 16384, 3 * 16384, 4);
        let full = Bitfield::full(1).unwrap();
        p.peer_has_all().unwrap();
        let a = pick(&mut p, A, &full, 2, &mut rng);
        let b = pick(&mut p, B, &full, 1, &mut rng);
        assert_eq!((a.len(), b.len()), (2, 1));
        assert_eq!(
            p.piece_verified(0, false),
            Err(PickerError::NotComplete {
                piece: 0,
                received: 0,
                blocks: 3
            })
        );
        for r in &a {
            assert!(matches!(
                p.block_received(A, r),
                Ok(BlockOutcome::New { .. })
            ));
        }
        assert!(matches!(
            p.block_received(B, &b[0]),
            Ok(BlockOutcome::New { .. })
        ));
        assert_eq!(p.block_written(&b[0]), Ok(true));
        assert!(p.piece_complete(0));
        assert_eq!(p.piece_verified(0, false), Ok(vec![A, B]));
        p.check_invariants().unwrap();
        assert_eq!(p.free_blocks(), 3);
        assert_eq!(p.pieces_in_progress(), 0);
        assert!(!p.piece_complete(0));
        // The piece can be fetched again, from someone else.
        let again = pick(&mut p, C, &full, 10, &mut rng);
        assert_eq!(again.len(), 3);
        for r in &again {
            p.block_received(C, r).unwrap();
        }
        assert_eq!(p.piece_verified(0, true), Ok(vec![]));
        assert_eq!(
            p.piece_verified(0, true),
            Err(PickerError::AlreadyHave { piece: 0 })
        );
        assert_eq!(
            p.piece_verified(1, true),
            Err(PickerError::PieceOutOfRange {
                piece: 1,
                pieces: 1
            })
        );
        p.check_invariants().unwrap();
    }

    #[test]
    fn disconnect_frees_the_peers_requests() {
        let (mut p, mut rng) = picker(4 * 2 * 16384, 2 * 16384, 8);
        let full = Bitfield::full(4).unwrap();
        p.peer_has_all().unwrap();
        let a = pick(&mut p, A, &full, 5, &mut rng);
        assert_eq!(a.len(), 5);
        assert_eq!(p.free_blocks(), 3);
        // One block arrives; that piece stays in progress after A leaves.
        p.block_received(A, &a[0]).unwrap();
        assert_eq!(p.peer_disconnected(A), 4);
        assert_eq!(p.peer_disconnected(A), 0);
        p.check_invariants().unwrap();
        assert_eq!(p.free_blocks(), 7);
        assert_eq!(p.pieces_in_progress(), 1);
        // B finishes the half-done piece first.
        let b = pick(&mut p, B, &full, 1, &mut rng);
        assert_eq!(b[0].piece, a[0].piece);
        assert_eq!(p.block_received(A, &b[0]), Ok(BlockOutcome::Unexpected));
    }

    #[test]
    fn last_piece_and_blocks_are_short() {
        // 100000 bytes in pieces of 40000: blocks 16384+16384+7232 twice, then 16384+3616.
        let (mut p, mut rng) = picker(100_000, 40_000, 2);
        let full = Bitfield::full(3).unwrap();
        p.peer_has_all().unwrap();
        let mut got = pick(&mut p, A, &full, 100, &mut rng);
        got.sort();
        let shape: Vec<(u32, u32, u32)> =
            got.iter().map(|r| (r.piece, r.offset, r.length)).collect();
        assert_eq!(
            shape,
            vec![
                (0, 0, 16384),
                (0, 16384, 16384),
                (0, 32768, 7232),
                (1, 0, 16384),
                (1, 16384, 16384),
                (1, 32768, 7232),
                (2, 0, 16384),
                (2, 16384, 3616),
            ]
        );
        assert_eq!(
            got.iter().map(|r| u64::from(r.length)).sum::<u64>(),
            100_000
        );
        // A block of the wrong length is refused with the evidence.
        let bad = BlockRequest {
            piece: 2,
            offset: 16384,
            length: BLOCK_BYTES,
        };
        assert_eq!(
            p.block_received(A, &bad),
            Err(PickerError::BadBlock { block: bad })
        );
        assert!(p.request_cancelled(A, &bad).is_err());
        assert!(p.block_written(&bad).is_err());
    }

    #[test]
    fn availability_bookkeeping_and_errors() {
        let (mut p, _) = picker(4 * 16384, 16384, 1);
        let mut peer = bits(4, &[1]);
        p.peer_bitfield(&peer).unwrap();
        assert_eq!(
            p.peer_bitfield(&bits(5, &[])),
            Err(PickerError::BitfieldLength {
                expected: 4,
                found: 5
            })
        );
        assert_eq!(
            p.peer_has(2, &peer),
            Err(PickerError::PeerLacksPiece { piece: 2 })
        );
        assert!(matches!(
            p.peer_has(9, &peer),
            Err(PickerError::PieceOutOfRange { .. })
        ));
        for i in [0, 2] {
            peer.set(i).unwrap();
            p.peer_has(i as u32, &peer).unwrap();
        }
        assert_eq!((p.availability(0), p.availability(3), p.seeds()), (1, 0, 0));
        // Its last piece makes it a seed: counts fold into the seed counter.
        peer.set(3).unwrap();
        p.peer_has(3, &peer).unwrap();
        assert_eq!(p.seeds(), 1);
        assert!((0..4).all(|i| p.availability(i) == 1));
        p.check_invariants().unwrap();
        p.peer_lost(&peer).unwrap();
        assert_eq!(p.seeds(), 0);
        assert_eq!(p.peer_lost(&peer), Err(PickerError::NoSeeds));
        // Losing a peer never counted is refused and changes nothing.
        let other = bits(4, &[0, 2]);
        p.peer_bitfield(&bits(4, &[0])).unwrap();
        assert_eq!(
            p.peer_lost(&other),
            Err(PickerError::Availability(AvailabilityError::Underflow {
                piece: 2
            }))
        );
        assert_eq!(p.availability(0), 1);
        p.check_invariants().unwrap();
    }

    #[test]
    fn pieces_we_have_are_never_picked() {
        let (mut p, mut rng) = picker(6 * 16384, 16384, 6);
        let full = Bitfield::full(6).unwrap();
        p.peer_has_all().unwrap();
        let first = pick(&mut p, A, &full, 1, &mut rng);
        for piece in 0..6 {
            assert!(p.mark_have(piece).unwrap());
            if piece != 5 {
                assert!(!pick(&mut p, B, &full, 10, &mut rng)
                    .iter()
                    .any(|r| r.piece <= piece));
                p.peer_disconnected(B);
            }
        }
        assert_eq!(p.mark_have(0), Ok(false));
        assert!(p.is_finished());
        assert_eq!(p.free_blocks(), 0);
        assert!(pick(&mut p, B, &full, 10, &mut rng).is_empty());
        assert_eq!(p.block_received(A, &first[0]), Ok(BlockOutcome::Duplicate));
        p.check_invariants().unwrap();
    }

    /// A few virtual peers with random bitfields (one of them sends bad data
    /// and is banned), loop until every piece is verified, bounded.
    #[test]
    fn simulated_download_completes_every_piece_once() {
        for seed in [0x5EED_2026u64, 1, 2, 3, 4, 5, 6, 7] {
            simulate(seed);
        }
    }

    fn simulate(seed: u64) {
        const PIECES: usize = 60;
        const ROUNDS_MAX: usize = 5_000;
        println!("simulation seed {seed:#x}");
        let mut rng = Rng::new(seed);
        let g = Geometry::new(PIECES as u64 * 40_000 - 12_345, 40_000).unwrap();
        let mut p = PiecePicker::new(g, &mut rng).unwrap();
        let bad = PeerKey(3);
        let mut peers: Vec<(PeerKey, Bitfield, Vec<BlockRequest>, bool)> = (0..6u32)
            .map(|i| {
                let mut b = Bitfield::new(PIECES).unwrap();
                for piece in 0..PIECES {
                    if rng.below(100) < 45 || i == 0 {
                        b.set(piece).unwrap();
                    }
                }
                (PeerKey(i), b, Vec::new(), true)
            })
            .collect();
        for (_, b, _, _) in &peers {
            p.peer_bitfield(b).unwrap();
        }
        let mut verified = vec![0u32; PIECES];
        let mut failures = 0;
        let mut saw_endgame = false;
        let mut rounds = 0;
        let mut reconnects = 0;
        while !p.is_finished() {
            rounds += 1;
            assert!(
                rounds <= ROUNDS_MAX,
                "no progress after {ROUNDS_MAX} rounds"
            );
            // Now and then a good peer drops (its requests are freed) and
            // comes back on the next round.
            for (key, has, queue, connected) in peers.iter_mut().skip(1) {
                if *key == bad {
                    continue;
                }
                if !*connected {
                    p.peer_bitfield(has).unwrap();
                    *connected = true;
                    reconnects += 1;
                } else if rng.below(100) < 3 {
                    *connected = false;
                    queue.clear();
                    p.peer_disconnected(*key);
                    p.peer_lost(has).unwrap();
                }
            }
            for k in 0..peers.len() {
                let (key, ref has, _, connected) = peers[k];
                if !connected {
                    continue;
                }
                let mut out = Vec::new();
                p.pick_blocks(key, has, 6, &mut out, &mut rng).unwrap();
                saw_endgame |= p.is_endgame();
                peers[k].2.extend(out);
                // Deliver a random number of queued blocks, oldest first.
                let n = (rng.below(4) as usize).min(peers[k].2.len());
                let delivered: Vec<BlockRequest> = peers[k].2.drain(..n).collect();
                for block in delivered {
                    match p.block_received(key, &block).unwrap() {
                        BlockOutcome::New { cancel } => {
                            for other in cancel.iter() {
                                let q = &mut peers[other.0 as usize].2;
                                q.retain(|r| *r != block);
                                // The picker already dropped their requests.
                                assert_eq!(p.request_cancelled(other, &block), Ok(false));
                            }
                        }
                        BlockOutcome::Duplicate | BlockOutcome::Unexpected => {}
                    }
                    p.block_written(&block).unwrap();
                    if p.piece_complete(block.piece) {
                        let ok = p
                            .in_progress
                            .get(block.piece)
                            .is_some_and(|pp| !pp.contributors().contains(&bad));
                        let senders = p.piece_verified(block.piece, ok).unwrap();
                        if ok {
                            verified[block.piece as usize] += 1;
                        } else {
                            failures += 1;
                            assert!(senders.contains(&bad));
                            // Ban the bad peer after its first bad piece.
                            if peers[bad.0 as usize].3 {
                                peers[bad.0 as usize].3 = false;
                                peers[bad.0 as usize].2.clear();
                                p.peer_disconnected(bad);
                                p.peer_lost(&peers[bad.0 as usize].1).unwrap();
                            }
                        }
                    }
                }
            }
            p.check_invariants().unwrap();
        }
        println!("finished in {rounds} rounds, {failures} failed pieces, {reconnects} reconnects");
        assert!(
            verified.iter().all(|&v| v == 1),
            "verified counts {verified:?}"
        );
        assert!(saw_endgame);
        assert!(failures >= 1);
        assert!(p.have().all());
    }
}

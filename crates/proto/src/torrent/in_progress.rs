//! The set of pieces in progress: a dense list of [`PartialPiece`]s with an
//! index from piece number to slot, plus the "open" list of those that still
//! have free blocks (what the picker finishes first). Insert, remove and
//! open/close are O(1); block storage is recycled.

use super::partial::{BlockState, PartialPiece};

/// Marks "no slot" / "not in the open list".
const NONE: u32 = u32::MAX;
/// Most spare block-state buffers kept for reuse.
const SPARE_BUFFERS_MAX: usize = 64;

/// Pieces in progress, by piece number.
#[derive(Debug, Clone)]
pub struct InProgress {
    partials: Vec<PartialPiece>,
    /// Per piece: its slot in `partials`, or `NONE`.
    slot_of: Vec<u32>,
    /// Slots whose piece has free blocks.
    open: Vec<u32>,
    /// Per slot: its position in `open`, or `NONE`.
    open_pos: Vec<u32>,
    spare: Vec<Vec<BlockState>>,
}

impl InProgress {
    /// Empty, for a torrent of `pieces` pieces.
    pub fn new(pieces: u32) -> Self {
        Self {
            partials: Vec::new(),
            slot_of: vec![NONE; pieces as usize],
            open: Vec::new(),
            open_pos: Vec::new(),
            spare: Vec::new(),
        }
    }

    /// Number of pieces in progress.
    pub fn len(&self) -> usize {
        self.partials.len()
    }

    /// Whether no piece is in progress.
    pub fn is_empty(&self) -> bool {
        self.partials.is_empty()
    }

    /// Slot of `piece`, if in progress.
    pub fn slot(&self, piece: u32) -> Option<usize> {
        match self.slot_of.get(piece as usize) {
            Some(&s) if s != NONE => Some(s as usize),
            _ => None,
        }
    }

    /// Whether `piece` is in progress.
    pub fn contains(&self, piece: u32) -> bool {
        self.slot(piece).is_some()
    }

    /// The piece in progress `piece`.
    pub fn get(&self, piece: u32) -> Option<&PartialPiece> {
        self.partials.get(self.slot(piece)?)
    }

    /// All pieces in progress.
    pub fn all(&self) -> &[PartialPiece] {
        &self.partials
    }

    /// The piece in `slot`.
    pub fn at_mut(&mut self, slot: usize) -> Option<&mut PartialPiece> {
        self.partials.get_mut(slot)
    }

    /// Slots with free blocks.
    pub fn open(&self) -> &[u32] {
        &self.open
    }

    /// Whether `slot` is in the open list.
    pub fn is_open(&self, slot: usize) -> bool {
        self.open_pos.get(slot).is_some_and(|&p| p != NONE)
    }

    /// Starts `piece` with `blocks` free blocks; returns its slot (the
    /// existing one when already in progress).
    pub fn start(&mut self, piece: u32, blocks: u32) -> usize {
        if let Some(slot) = self.slot(piece) {
            return slot;
        }
        let storage = self.spare.pop().unwrap_or_default();
        let slot = self.partials.len();
        self.partials
            .push(PartialPiece::new(piece, blocks, storage));
        self.open_pos.push(NONE);
        if let Some(s) = self.slot_of.get_mut(piece as usize) {
            *s = slot as u32;
        }
        self.refresh_open(slot);
        slot
    }

    /// Puts `slot` in or out of the open list to match its free blocks.
    pub fn refresh_open(&mut self, slot: usize) {
        let Some(p) = self.partials.get(slot) else {
            return;
        };
        let want = p.free() > 0;
        let is = self.is_open(slot);
        if want && !is {
            self.open_pos[slot] = self.open.len() as u32;
            self.open.push(slot as u32);
        } else if !want && is {
            let at = self.open_pos[slot] as usize;
            self.open.swap_remove(at);
            if let Some(&moved) = self.open.get(at) {
                self.open_pos[moved as usize] = at as u32;
            }
            self.open_pos[slot] = NONE;
        }
    }

    /// Stops tracking `piece`; its block states are discarded.
    pub fn remove(&mut self, piece: u32) {
        let Some(slot) = self.slot(piece) else {
            return;
        };
        // Take it off the open list, then move the last slot into its place.
        let at = self.open_pos[slot];
        if at != NONE {
            let at = at as usize;
            self.open.swap_remove(at);
            if let Some(&moved) = self.open.get(at) {
                self.open_pos[moved as usize] = at as u32;
            }
        }
        let last = self.partials.len() - 1;
        let removed = self.partials.swap_remove(slot);
        self.open_pos.swap_remove(slot);
        if slot != last {
            let moved_piece = self.partials[slot].piece();
            self.slot_of[moved_piece as usize] = slot as u32;
            let at = self.open_pos[slot];
            if at != NONE {
                self.open[at as usize] = slot as u32;
            }
        }
        self.slot_of[piece as usize] = NONE;
        if self.spare.len() < SPARE_BUFFERS_MAX {
            self.spare.push(removed.into_storage());
        }
    }

    /// Checks slot indexes and the open list against the partials.
    pub fn check_invariants(&self) -> Result<(), String> {
        if self.open_pos.len() != self.partials.len() {
            return Err("open_pos length differs".into());
        }
        for (slot, p) in self.partials.iter().enumerate() {
            p.check_invariants()?;
            if self.slot(p.piece()) != Some(slot) {
                return Err(format!("slot_of piece {} is not {slot}", p.piece()));
            }
            if (p.free() > 0) != self.is_open(slot) {
                return Err(format!("piece {} open state wrong", p.piece()));
            }
        }
        for (i, &slot) in self.open.iter().enumerate() {
            if self.open_pos.get(slot as usize) != Some(&(i as u32)) {
                return Err(format!("open[{i}] = {slot} not indexed back"));
            }
        }
        let indexed = self.slot_of.iter().filter(|&&s| s != NONE).count();
        if indexed != self.partials.len() {
            return Err(format!(
                "{indexed} pieces indexed, {} in progress",
                self.partials.len()
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::torrent::requesters::PeerKey;

    #[test]
    fn start_close_remove_keep_indexes() {
        let mut ip = InProgress::new(10);
        let a = ip.start(3, 2);
        let b = ip.start(5, 1);
        let c = ip.start(7, 2);
        assert_eq!(ip.start(5, 1), b);
        assert_eq!(ip.open().len(), 3);
        ip.at_mut(b).unwrap().request_next_free(PeerKey(1));
        ip.refresh_open(b);
        assert!(!ip.is_open(b));
        ip.check_invariants().unwrap();
        ip.remove(3);
        ip.check_invariants().unwrap();
        assert!(!ip.contains(3));
        assert_eq!(ip.get(7).map(|p| p.piece()), Some(7));
        ip.remove(5);
        ip.remove(5);
        ip.check_invariants().unwrap();
        assert_eq!(ip.len(), 1);
        ip.remove(7);
        assert!(ip.is_empty());
        ip.check_invariants().unwrap();
        let _ = (a, c);
    }
}

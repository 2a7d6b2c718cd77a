//! Pieces ordered by availability (how many connected, non-seed peers have
//! them), for rarest-first picking without sorting or scanning.
//!
//! Layout: one array `order` holds every piece. Missing pieces come first,
//! grouped in buckets of equal availability, ascending (bucket `a` is
//! `order[starts[a]..starts[a + 1]]`); pieces we have sit in a final region
//! after the last bucket, unordered. `pos[p]` is where piece `p` sits.
//! Moving a piece one level up or down is one swap with the edge of its bucket
//! and one boundary move: O(1). Moving a piece to the "have" region cascades
//! through the levels above it: O(levels), done once per piece. Seeds are not
//! counted here (they add the same to every piece and do not change order).

use thiserror::Error;

use crate::rng::Rng;

/// Most non-seed peers that may report one piece (availability is a count of peers).
pub const AVAILABILITY_MAX: u32 = 65_535;

/// Why an availability change was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AvailabilityError {
    #[error("piece {piece} is outside a torrent of {pieces} pieces")]
    PieceOutOfRange { piece: u32, pieces: u32 },
    #[error("piece {piece} already has the most peers counted ({max})")]
    Overflow { piece: u32, max: u32 },
    #[error("piece {piece} has no peer counted to remove")]
    Underflow { piece: u32 },
}

/// Availability counts and the bucketed order of missing pieces.
#[derive(Debug, Clone)]
pub struct RarityOrder {
    order: Vec<u32>,
    pos: Vec<u32>,
    count: Vec<u32>,
    have: Vec<bool>,
    /// `starts[a]` is where bucket `a` begins; the last entry is where the
    /// "have" region begins. Always at least 2 entries (bucket 0 and the region).
    starts: Vec<u32>,
}

impl RarityOrder {
    /// `pieces` missing pieces, all at availability 0, in an order shuffled by `rng`.
    pub fn new(pieces: u32, rng: &mut Rng) -> Self {
        let mut order: Vec<u32> = (0..pieces).collect();
        // Fisher-Yates shuffle so that ties start out in random order.
        for i in (1..order.len()).rev() {
            let j = rng.below_usize(i + 1);
            order.swap(i, j);
        }
        let mut pos = vec![0u32; pieces as usize];
        for (i, &p) in order.iter().enumerate() {
            pos[p as usize] = i as u32;
        }
        Self {
            order,
            pos,
            count: vec![0; pieces as usize],
            have: vec![false; pieces as usize],
            starts: vec![0, pieces],
        }
    }

    /// Number of pieces.
    pub fn pieces(&self) -> u32 {
        self.order.len() as u32
    }

    /// Non-seed peers counted for `piece` (0 when out of range).
    pub fn count(&self, piece: u32) -> u32 {
        self.count.get(piece as usize).copied().unwrap_or(0)
    }

    /// Number of availability levels (buckets), the highest count seen plus one.
    pub fn levels(&self) -> usize {
        self.starts.len() - 1
    }

    /// The missing pieces with exactly `level` non-seed peers, in bucket order.
    pub fn bucket(&self, level: usize) -> &[u32] {
        match (self.starts.get(level), self.starts.get(level + 1)) {
            (Some(&s), Some(&e)) if level + 1 < self.starts.len() => {
                self.order.get(s as usize..e as usize).unwrap_or(&[])
            }
            _ => &[],
        }
    }

    fn check(&self, piece: u32) -> Result<usize, AvailabilityError> {
        if (piece as usize) < self.count.len() {
            Ok(piece as usize)
        } else {
            Err(AvailabilityError::PieceOutOfRange {
                piece,
                pieces: self.pieces(),
            })
        }
    }

    fn swap_positions(&mut self, i: usize, j: usize) {
        if i == j {
            return;
        }
        self.order.swap(i, j);
        let (a, b) = (self.order[i], self.order[j]);
        self.pos[a as usize] = i as u32;
        self.pos[b as usize] = j as u32;
    }

    /// One more peer has `piece`.
    pub fn increment(&mut self, piece: u32) -> Result<(), AvailabilityError> {
        let p = self.check(piece)?;
        let level = self.count[p];
        if level >= AVAILABILITY_MAX {
            return Err(AvailabilityError::Overflow {
                piece,
                max: AVAILABILITY_MAX,
            });
        }
        self.count[p] = level + 1;
        if self.have[p] {
            return Ok(());
        }
        let level = level as usize;
        if level + 2 == self.starts.len() {
            // Open an empty bucket just before the "have" region.
            let region = self.starts[level + 1];
            self.starts.push(region);
        }
        // Swap to the end of bucket `level`, then shrink that bucket by one:
        // the piece becomes the first of bucket `level + 1`.
        let last = self.starts[level + 1] as usize - 1;
        self.swap_positions(self.pos[p] as usize, last);
        self.starts[level + 1] -= 1;
        debug_assert_eq!(
            self.pos[p],
            self.starts[level + 1],
            "piece {piece} not first of its new bucket"
        );
        Ok(())
    }

    /// One peer that had `piece` is gone.
    pub fn decrement(&mut self, piece: u32) -> Result<(), AvailabilityError> {
        let p = self.check(piece)?;
        let level = self.count[p];
        if level == 0 {
            return Err(AvailabilityError::Underflow { piece });
        }
        self.count[p] = level - 1;
        if self.have[p] {
            return Ok(());
        }
        // Swap to the start of bucket `level`, then grow bucket `level - 1` by one.
        let level = level as usize;
        let first = self.starts[level] as usize;
        self.swap_positions(self.pos[p] as usize, first);
        self.starts[level] += 1;
        debug_assert_eq!(
            self.pos[p] + 1,
            self.starts[level],
            "piece {piece} not last of its new bucket"
        );
        Ok(())
    }

    /// Whether `piece` is in the "have" region.
    pub fn is_have(&self, piece: u32) -> bool {
        self.have.get(piece as usize).copied().unwrap_or(false)
    }

    /// Moves `piece` out of the buckets into the "have" region; O(levels above it).
    /// Returns whether it moved (false when it was already there).
    pub fn mark_have(&mut self, piece: u32) -> Result<bool, AvailabilityError> {
        let p = self.check(piece)?;
        if self.have[p] {
            return Ok(false);
        }
        let top = self.starts.len() - 1;
        for level in self.count[p] as usize..top {
            let last = self.starts[level + 1] as usize - 1;
            self.swap_positions(self.pos[p] as usize, last);
            self.starts[level + 1] -= 1;
        }
        debug_assert!(
            self.pos[p] >= self.starts[top],
            "piece {piece} not in the have region"
        );
        self.have[p] = true;
        Ok(true)
    }

    /// Verifies every structural invariant; describes the first broken one.
    pub fn check_invariants(&self) -> Result<(), String> {
        let n = self.order.len();
        if self.pos.len() != n || self.count.len() != n || self.have.len() != n {
            return Err("array lengths differ".into());
        }
        if self.starts.first() != Some(&0) || self.starts.len() < 2 {
            return Err(format!("bad starts {:?}", self.starts));
        }
        if self.starts.windows(2).any(|w| w[0] > w[1]) || self.starts.last() > Some(&(n as u32)) {
            return Err(format!("starts not ascending: {:?}", self.starts));
        }
        for (i, &p) in self.order.iter().enumerate() {
            if self.pos.get(p as usize) != Some(&(i as u32)) {
                return Err(format!("pos of piece {p} is not {i}"));
            }
        }
        let region = *self.starts.last().unwrap_or(&0) as usize;
        for level in 0..self.levels() {
            for &p in self.bucket(level) {
                if self.have[p as usize] || self.count[p as usize] as usize != level {
                    return Err(format!("piece {p} misplaced in bucket {level}"));
                }
            }
        }
        for &p in &self.order[region..] {
            if !self.have[p as usize] {
                return Err(format!("missing piece {p} in the have region"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(n: u32) -> RarityOrder {
        RarityOrder::new(n, &mut Rng::new(1))
    }

    #[test]
    fn moves_keep_buckets_sorted() {
        let mut o = order(6);
        o.increment(2).unwrap();
        o.increment(2).unwrap();
        o.increment(4).unwrap();
        o.check_invariants().unwrap();
        assert_eq!(o.bucket(2), &[2]);
        assert_eq!(o.bucket(1), &[4]);
        assert_eq!(o.bucket(0).len(), 4);
        o.decrement(2).unwrap();
        o.check_invariants().unwrap();
        let mut b1 = o.bucket(1).to_vec();
        b1.sort();
        assert_eq!(b1, vec![2, 4]);
        assert!(o.bucket(2).is_empty());
        assert!(o.bucket(99).is_empty());
    }

    #[test]
    fn have_region_takes_pieces_out_of_buckets() {
        let mut o = order(5);
        for _ in 0..3 {
            o.increment(1).unwrap();
        }
        o.increment(0).unwrap();
        assert_eq!(o.mark_have(0), Ok(true));
        assert_eq!(o.mark_have(0), Ok(false));
        o.check_invariants().unwrap();
        assert!(o.bucket(1).is_empty());
        // Counts still move for pieces we have, without reordering.
        o.increment(0).unwrap();
        o.decrement(0).unwrap();
        o.decrement(0).unwrap();
        assert_eq!(o.count(0), 0);
        o.mark_have(3).unwrap();
        o.check_invariants().unwrap();
        assert_eq!(o.bucket(3), &[1]);
        assert_eq!(o.bucket(0).len(), 2);
    }

    #[test]
    fn errors_carry_the_piece() {
        let mut o = order(3);
        assert_eq!(
            o.increment(3),
            Err(AvailabilityError::PieceOutOfRange {
                piece: 3,
                pieces: 3
            })
        );
        assert_eq!(
            o.decrement(1),
            Err(AvailabilityError::Underflow { piece: 1 })
        );
        assert!(o.mark_have(7).is_err());
        for _ in 0..AVAILABILITY_MAX {
            o.increment(0).unwrap();
        }
        assert_eq!(
            o.increment(0),
            Err(AvailabilityError::Overflow {
                piece: 0,
                max: AVAILABILITY_MAX
            })
        );
        o.check_invariants().unwrap();
    }
}

//! `PieceOrder`: the order in which one synthetic leecher asks for pieces, a
//! seeded random permutation of the piece indices. Against a swarm where
//! every peer holds the same pieces, rarest-first degenerates to a random
//! order that differs from peer to peer; this is that order, reproducible
//! from its seed.
//!
//! Boundary: pure; a seed in, piece indices out.

use ringseed::limits::PIECES_PER_TORRENT_MAX;
use ringseed::rng::Rng;

/// Why an order cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OrderError {
    #[error("{pieces} pieces is out of range: expected 1 to {max}")]
    Pieces { pieces: u32, max: u64 },
}

/// A shuffled list of piece indices, walked once per round; a new round
/// reshuffles.
#[derive(Debug, Clone)]
pub struct PieceOrder {
    order: Vec<u32>,
    position: usize,
    rounds: u64,
    rng: Rng,
}

impl PieceOrder {
    /// Every piece of `0..pieces` once, in an order drawn from `seed`.
    pub fn new(pieces: u32, seed: u64) -> Result<PieceOrder, OrderError> {
        if pieces == 0 || u64::from(pieces) > PIECES_PER_TORRENT_MAX {
            return Err(OrderError::Pieces {
                pieces,
                max: PIECES_PER_TORRENT_MAX,
            });
        }
        let mut o = PieceOrder {
            order: (0..pieces).collect(),
            position: 0,
            rounds: 0,
            rng: Rng::new(seed),
        };
        o.shuffle();
        Ok(o)
    }

    fn shuffle(&mut self) {
        // Fisher-Yates: each permutation equally likely.
        for i in (1..self.order.len()).rev() {
            let j = self.rng.below_usize(i + 1);
            self.order.swap(i, j);
        }
    }

    /// The next piece of this round; `None` once every piece was handed out.
    pub fn next_piece(&mut self) -> Option<u32> {
        let p = self.order.get(self.position).copied()?;
        self.position += 1;
        Some(p)
    }

    /// Starts another round over every piece, in a fresh order.
    pub fn restart(&mut self) {
        self.shuffle();
        self.position = 0;
        self.rounds = self.rounds.saturating_add(1);
    }

    /// Rounds completed by [`restart`](Self::restart).
    pub fn rounds(&self) -> u64 {
        self.rounds
    }

    /// Pieces in one round.
    pub fn pieces(&self) -> u32 {
        self.order.len() as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round(o: &mut PieceOrder) -> Vec<u32> {
        let mut v = Vec::new();
        for _ in 0..=o.pieces() {
            match o.next_piece() {
                Some(p) => v.push(p),
                None => break,
            }
        }
        v
    }

    #[test]
    fn a_round_is_a_permutation() {
        let mut o = PieceOrder::new(100, 7).unwrap();
        let mut v = round(&mut o);
        assert_eq!(v.len(), 100);
        assert_ne!(v, (0..100).collect::<Vec<_>>(), "shuffled");
        v.sort_unstable();
        assert_eq!(v, (0..100).collect::<Vec<_>>());
        assert_eq!(o.next_piece(), None);
    }

    #[test]
    fn same_seed_same_order_other_seed_other_order() {
        let a = round(&mut PieceOrder::new(50, 1).unwrap());
        let b = round(&mut PieceOrder::new(50, 1).unwrap());
        let c = round(&mut PieceOrder::new(50, 2).unwrap());
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn restart_gives_a_new_permutation() {
        let mut o = PieceOrder::new(64, 3).unwrap();
        let first = round(&mut o);
        o.restart();
        assert_eq!(o.rounds(), 1);
        let second = round(&mut o);
        assert_ne!(first, second);
        let mut s = second.clone();
        s.sort_unstable();
        assert_eq!(s, (0..64).collect::<Vec<_>>());
    }

    #[test]
    fn one_piece_and_bounds() {
        assert_eq!(round(&mut PieceOrder::new(1, 0).unwrap()), vec![0]);
        assert!(matches!(
            PieceOrder::new(0, 1),
            Err(OrderError::Pieces { pieces: 0, .. })
        ));
        let over = u32::try_from(PIECES_PER_TORRENT_MAX + 1).unwrap_or(u32::MAX);
        assert!(PieceOrder::new(over, 1).is_err());
    }
}

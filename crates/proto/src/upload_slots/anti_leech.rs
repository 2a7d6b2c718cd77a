//! Anti-leech, a seeding algorithm: favour peers just starting or nearly
//! done. A starter passes on what it gets to the many that lack it; a
//! finisher becomes a seed. A peer mid-way, collecting pieces, waits.
//!
//! Boundary: one pure score function over a candidate: a V over the share
//! of pieces held (1 at 0 % and 100 %, 0 at 50 %) in the high bits, the
//! rate we send it below, so among equals the fastest taker wins.

use super::candidate::{Round, SlotCandidate};

/// Bits of the rate part of the score.
const RATE_BITS: u32 = 40;
/// Resolution of the V: 2^20 steps from the middle to either end.
const V_BITS: u32 = 20;

/// The V part alone: 0 at half the pieces, `2^20` at none or all.
pub fn v_score(pieces_have: u32, pieces_total: u32) -> u64 {
    if pieces_total == 0 {
        return 1 << V_BITS;
    }
    let have = u64::from(pieces_have.min(pieces_total));
    let total = u64::from(pieces_total);
    let distance = (2 * have).abs_diff(total);
    (distance << V_BITS) / total
}

/// The rank score.
pub fn score(c: &SlotCandidate, round: &Round) -> u64 {
    let rate = c.rate_to_peer.min((1 << RATE_BITS) - 1);
    (v_score(c.pieces_have, round.pieces_total) << RATE_BITS) | rate
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn v_shape_over_share_held() {
        assert_eq!(v_score(0, 100), 1 << 20);
        assert_eq!(v_score(100, 100), 1 << 20);
        assert_eq!(v_score(50, 100), 0);
        assert!(v_score(5, 100) > v_score(20, 100));
        assert!(v_score(95, 100) > v_score(80, 100));
        assert_eq!(v_score(10, 100), v_score(90, 100));
        assert_eq!(v_score(500, 100), 1 << 20, "more than all is all");
        assert_eq!(v_score(0, 0), 1 << 20);
        assert_eq!(v_score(u32::MAX, u32::MAX), 1 << 20);
    }

    #[test]
    fn share_before_rate() {
        let round = Round::new(Duration::ZERO, true, 1, 100);
        let starter = SlotCandidate {
            pieces_have: 2,
            rate_to_peer: 1,
            ..SlotCandidate::default()
        };
        let middle = SlotCandidate {
            pieces_have: 50,
            rate_to_peer: u64::MAX,
            ..SlotCandidate::default()
        };
        assert!(score(&starter, &round) > score(&middle, &round));
        let faster_starter = SlotCandidate {
            rate_to_peer: 2,
            ..starter
        };
        assert!(score(&faster_starter, &round) > score(&starter, &round));
    }
}

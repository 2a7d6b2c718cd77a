//! Fastest-upload, a seeding algorithm: rank by what we sent each peer
//! over the rate window, so the slots go to the peers that take the most
//! and our upload link stays full.
//!
//! Boundary: one pure score function over a candidate.

use super::candidate::SlotCandidate;

/// The rank score: `rate_to_peer`.
pub fn score(c: &SlotCandidate) -> u64 {
    c.rate_to_peer
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_by_rate_to_peer_only() {
        let a = SlotCandidate {
            rate_to_peer: 10,
            rate_from_peer: 1_000,
            ..SlotCandidate::default()
        };
        let b = SlotCandidate {
            rate_to_peer: 11,
            ..SlotCandidate::default()
        };
        assert!(score(&b) > score(&a));
        assert_eq!(score(&a), 10);
    }
}

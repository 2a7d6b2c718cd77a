//! Round-robin, a seeding algorithm: slots are turns. A holder keeps its
//! slot until it has taken `round_robin_pieces` pieces' worth of bytes
//! and held it for `round_robin_turn_min`, or held it for
//! `round_robin_turn_max` whatever it took; then it ranks last and the
//! peer that has waited longest takes its place.
//!
//! Boundary: one pure score function over a candidate; the three tiers
//! are the top two bits of the score.

use super::candidate::{Round, SlotCandidate};
use super::settings::SlotSettings;

/// Below the tier bits.
const WITHIN_TIER: u64 = (1 << 62) - 1;
/// Holders whose turn goes on; fastest first.
const TIER_HOLDING: u64 = 2 << 62;
/// Waiting peers; longest wait first.
const TIER_WAITING: u64 = 1 << 62;
// Holders whose turn is over: tier 0, fastest first.

/// Whether an unchoked peer's turn is over.
pub fn turn_over(c: &SlotCandidate, round: &Round, settings: &SlotSettings) -> bool {
    let held = c.in_state_for(round.now);
    let quota = u64::from(settings.round_robin_pieces).saturating_mul(round.piece_length);
    held >= settings.round_robin_turn_max
        || (held >= settings.round_robin_turn_min && c.bytes_sent_since_unchoke >= quota)
}

/// The rank score.
pub fn score(c: &SlotCandidate, round: &Round, settings: &SlotSettings) -> u64 {
    if !c.unchoked {
        let waited = u64::try_from(c.in_state_for(round.now).as_millis()).unwrap_or(u64::MAX);
        return TIER_WAITING | waited.min(WITHIN_TIER);
    }
    let rate = c.rate_to_peer.min(WITHIN_TIER);
    if turn_over(c, round, settings) {
        rate
    } else {
        TIER_HOLDING | rate
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn holders_then_longest_waiting_then_finished_turns() {
        let settings = SlotSettings::default();
        let round = Round::new(S(1000), true, 1000, 50);
        let holder = SlotCandidate {
            unchoked: true,
            choke_changed_at: S(990),
            bytes_sent_since_unchoke: 1_000_000,
            rate_to_peer: 5,
            ..SlotCandidate::default()
        };
        // Quota taken but under a minute: keeps the slot.
        assert!(!turn_over(&holder, &round, &settings));
        // Over a minute but under the quota: keeps the slot.
        let slow = SlotCandidate {
            choke_changed_at: S(900),
            bytes_sent_since_unchoke: 9_999,
            ..holder
        };
        assert!(!turn_over(&slow, &round, &settings));
        // Both: done.
        let done = SlotCandidate {
            bytes_sent_since_unchoke: 10_000,
            ..slow
        };
        assert!(turn_over(&done, &round, &settings));
        // Longest turn: done whatever it took.
        let stuck = SlotCandidate {
            choke_changed_at: S(700),
            bytes_sent_since_unchoke: 0,
            ..holder
        };
        assert!(turn_over(&stuck, &round, &settings));
        let long_wait = SlotCandidate {
            choke_changed_at: S(100),
            ..SlotCandidate::default()
        };
        let short_wait = SlotCandidate {
            choke_changed_at: S(900),
            ..SlotCandidate::default()
        };
        let s = |c: &SlotCandidate| score(c, &round, &settings);
        assert!(s(&holder) > s(&long_wait));
        assert!(s(&slow) > s(&long_wait));
        assert!(s(&long_wait) > s(&short_wait));
        assert!(s(&short_wait) > s(&done));
        assert!(s(&short_wait) > s(&stuck));
        // Saturating: huge rates and waits stay in their tier.
        let huge = SlotCandidate {
            rate_to_peer: u64::MAX,
            ..done
        };
        assert!(s(&short_wait) > s(&huge));
        let ancient = SlotCandidate {
            choke_changed_at: Duration::ZERO,
            ..SlotCandidate::default()
        };
        assert!(s(&holder) > score(&ancient, &Round::new(Duration::MAX, true, 1, 1), &settings));
    }
}

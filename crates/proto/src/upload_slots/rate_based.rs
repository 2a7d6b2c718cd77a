//! The rate-based slot count: for fast links, where a fixed 4 slots
//! would leave the upload idle. Each round, the upload rates of the
//! unchoked peers are taken fastest first; the count is one more than the
//! number of them that each beat a threshold that starts at
//! `rate_based_threshold_start` and rises by `rate_based_threshold_step`
//! per slot. So a slot is added while the slowest unchoked peer is still
//! above a rising bar (the link has room), and slots are dropped when the
//! peers slow down (the link is full).
//!
//! Boundary: pure; uses a caller-owned scratch of rates (no allocation
//! once it has grown), O(n) selection plus a sort of at most
//! `rate_based_slots_max` rates.

use super::candidate::SlotCandidate;
use super::settings::SlotSettings;

/// The slot count for this round, `1..=rate_based_slots_max`.
pub fn slot_count(
    candidates: &[SlotCandidate],
    settings: &SlotSettings,
    scratch: &mut Vec<u64>,
) -> usize {
    let max = settings.rate_based_slots_max.max(1);
    scratch.clear();
    scratch.extend(
        candidates
            .iter()
            .filter(|c| c.unchoked)
            .map(|c| c.rate_to_peer),
    );
    let top = max.min(scratch.len());
    if top == 0 {
        return 1;
    }
    if top < scratch.len() {
        scratch.select_nth_unstable_by(top - 1, |a, b| b.cmp(a));
    }
    let Some(fastest) = scratch.get_mut(..top) else {
        return 1;
    };
    fastest.sort_unstable_by(|a, b| b.cmp(a));
    let mut threshold = settings.rate_based_threshold_start;
    let mut above = 0;
    for &rate in fastest.iter() {
        if rate <= threshold {
            break;
        }
        above += 1;
        threshold = threshold.saturating_add(settings.rate_based_threshold_step);
    }
    (above + 1).min(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unchoked(rates: &[u64]) -> Vec<SlotCandidate> {
        rates
            .iter()
            .map(|&rate_to_peer| SlotCandidate {
                unchoked: true,
                rate_to_peer,
                ..SlotCandidate::default()
            })
            .collect()
    }

    #[test]
    fn grows_while_the_slowest_beats_a_rising_threshold() {
        let s = SlotSettings {
            rate_based_threshold_start: 100,
            rate_based_threshold_step: 100,
            rate_based_slots_max: 5,
            ..SlotSettings::default()
        };
        let mut scratch = Vec::new();
        // Nobody unchoked: one slot to start with.
        assert_eq!(slot_count(&[], &s, &mut scratch), 1);
        // 101 > 100, 201 > 200, 250 <= 300: two above, three slots.
        assert_eq!(slot_count(&unchoked(&[250, 101, 201]), &s, &mut scratch), 3);
        // Everyone slow: back to one.
        assert_eq!(slot_count(&unchoked(&[50, 60, 70]), &s, &mut scratch), 1);
        // Capped at the maximum.
        let fast = unchoked(&[1 << 30; 50]);
        assert_eq!(slot_count(&fast, &s, &mut scratch), 5);
        // Choked peers do not count.
        let mut mixed = unchoked(&[1000, 1000]);
        mixed.push(SlotCandidate {
            rate_to_peer: 10_000,
            ..SlotCandidate::default()
        });
        assert_eq!(slot_count(&mixed, &s, &mut scratch), 3);
        // A zero step keeps the threshold flat.
        let flat = SlotSettings {
            rate_based_threshold_step: 0,
            ..s
        };
        assert_eq!(
            slot_count(&unchoked(&[101, 101, 101]), &flat, &mut scratch),
            4
        );
    }
}

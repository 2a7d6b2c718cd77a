//! Tit-for-tat, the downloading algorithm: rank by what each peer gave us
//! over the rate window, so our slots go to the peers that reciprocate.
//! A snubbed peer (asked, sent nothing for `snub_time`) ranks below every
//! other, even one that gave nothing yet.
//!
//! Boundary: one pure score function over a candidate.

use std::time::Duration;

use super::candidate::SlotCandidate;

/// The rank score: `rate_from_peer + 1`, or 0 when snubbed.
pub fn score(c: &SlotCandidate, now: Duration, snub_time: Duration) -> u64 {
    if c.is_snubbed(now, snub_time) {
        0
    } else {
        c.rate_from_peer.saturating_add(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_from_peer_ranks_and_snub_drops_to_zero() {
        let now = Duration::from_secs(1000);
        let snub = Duration::from_secs(60);
        let mut c = SlotCandidate {
            rate_from_peer: 500,
            rate_to_peer: 9_999,
            ..SlotCandidate::default()
        };
        assert_eq!(score(&c, now, snub), 501);
        c.rate_from_peer = u64::MAX;
        assert_eq!(score(&c, now, snub), u64::MAX);
        c.waiting_since = Some(now - snub);
        assert_eq!(score(&c, now, snub), 0);
        c.waiting_since = Some(now - Duration::from_secs(59));
        assert_eq!(score(&c, now, snub), u64::MAX);
        let idle = SlotCandidate::default();
        assert_eq!(
            score(&idle, now, snub),
            1,
            "a silent unsnubbed peer beats a snubbed one"
        );
    }
}

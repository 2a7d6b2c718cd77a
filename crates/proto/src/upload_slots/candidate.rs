//! [`SlotCandidate`] (one connected peer, as plain facts) and [`Round`]
//! (what holds for every candidate of one rechoke).
//!
//! Boundary: plain data filled in by the engine; the allocator only reads
//! it. Times are on the caller's clock, the same as `Round::now`.

use std::time::Duration;

/// One connected peer as the allocator sees it. `peer` is the engine's id
/// for the connection and should be unique among the candidates of one
/// call (a duplicate is harmless but may be listed twice in the output).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SlotCandidate {
    pub peer: u64,
    /// The peer wants pieces from us. Only interested peers are unchoked.
    pub interested: bool,
    /// Bytes per second the peer gave us over the rate window.
    pub rate_from_peer: u64,
    /// Bytes per second we sent the peer over the rate window.
    pub rate_to_peer: u64,
    /// While we ask the peer for blocks (requests outstanding, or we are
    /// interested and it unchoked us): since when it has sent none (its last
    /// block, or when we started asking, whichever is later). `None` while
    /// we ask for nothing. Past `snub_time`, the peer is snubbed.
    pub waiting_since: Option<Duration>,
    /// We have the peer unchoked now.
    pub unchoked: bool,
    /// When we last choked or unchoked the peer (its connection time if
    /// never): the start of its current turn, or of its wait.
    pub choke_changed_at: Duration,
    /// Bytes we sent the peer since its current unchoke (0 while choked).
    pub bytes_sent_since_unchoke: u64,
    /// Pieces the peer has, of `Round::pieces_total`.
    pub pieces_have: u32,
    /// Higher priorities rank before lower ones in every algorithm
    /// (default 0). Optimistic draws ignore it.
    pub priority: u8,
    /// When the connection was made.
    pub connected_at: Duration,
}

/// What is the same for every candidate of one rechoke.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Round {
    pub now: Duration,
    /// We have every piece we want: seeding algorithms rank; otherwise
    /// tit-for-tat.
    pub seeding: bool,
    /// Cap on regular slots from the global budget (`None`: none). Never
    /// lowers the count below 1 while any peer is interested.
    pub quota: Option<usize>,
    /// Bytes per piece (round-robin's quota is counted in pieces).
    pub piece_length: u64,
    /// Pieces in the torrent (anti-leech scores by share held).
    pub pieces_total: u32,
}

impl Round {
    /// A round at `now` with no quota, for a torrent of `pieces_total`
    /// pieces of `piece_length` bytes.
    pub fn new(now: Duration, seeding: bool, piece_length: u64, pieces_total: u32) -> Self {
        Self {
            now,
            seeding,
            quota: None,
            piece_length,
            pieces_total,
        }
    }
}

impl SlotCandidate {
    /// Whether the peer is snubbed at `now`: we asked and it sent nothing
    /// for `snub_time` or longer.
    pub fn is_snubbed(&self, now: Duration, snub_time: Duration) -> bool {
        self.waiting_since
            .is_some_and(|t| now.saturating_sub(t) >= snub_time)
    }

    /// Whether the peer is a newcomer for optimistic draws: connected less
    /// than `window` before `now` (one that connected "after" `now` counts
    /// as new), or never unchoked by us yet (still choked since it
    /// connected), so it has had no first pieces from us.
    pub fn is_newcomer(&self, now: Duration, window: Duration) -> bool {
        let never_unchoked = !self.unchoked && self.choke_changed_at <= self.connected_at;
        never_unchoked || now.saturating_sub(self.connected_at) < window
    }

    /// How long the peer has held its slot (unchoked) or waited (choked).
    pub fn in_state_for(&self, now: Duration) -> Duration {
        now.saturating_sub(self.choke_changed_at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn snubbed_only_after_snub_time_while_asking() {
        let mut c = SlotCandidate::default();
        assert!(!c.is_snubbed(S(1000), S(60)));
        c.waiting_since = Some(S(100));
        assert!(!c.is_snubbed(S(159), S(60)));
        assert!(c.is_snubbed(S(160), S(60)));
        // A clock behind the fact is not a snub.
        assert!(!c.is_snubbed(S(50), S(60)));
    }

    #[test]
    fn newcomer_and_state_age() {
        let c = SlotCandidate {
            connected_at: S(100),
            choke_changed_at: S(150),
            ..SlotCandidate::default()
        };
        assert!(c.is_newcomer(S(219), S(120)));
        assert!(!c.is_newcomer(S(220), S(120)));
        assert!(c.is_newcomer(S(10), S(120)));
        assert!(!c.is_newcomer(S(100), Duration::ZERO));
        // Never unchoked since it connected: a newcomer however old.
        let waiting = SlotCandidate {
            choke_changed_at: S(100),
            ..c
        };
        assert!(waiting.is_newcomer(S(10_000), S(120)));
        let holding = SlotCandidate {
            unchoked: true,
            ..waiting
        };
        assert!(!holding.is_newcomer(S(10_000), S(120)));
        assert_eq!(c.in_state_for(S(160)), S(10));
        assert_eq!(c.in_state_for(S(0)), Duration::ZERO);
        let r = Round::new(S(5), true, 16384, 10);
        assert_eq!(r.quota, None);
    }
}

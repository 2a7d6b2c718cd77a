//! Upload slots, first version: which interested peers of one torrent we
//! unchoke, and when to decide again (issue 3, point 6).
//!
//! Boundary: pure policy. The engine hands in one [`SlotCandidate`] per
//! connected peer (with rates it measured, e.g. with
//! [`RateMeter`](crate::peer::rate::RateMeter)) and a caller-given `now`;
//! [`UploadSlots::rechoke`] writes back the peers to unchoke. Everything
//! about the choice lives behind this one type, so a later allocator can
//! replace it without touching the engine.
//!
//! The rules:
//! - Peers that are not interested are never chosen.
//! - `slots` regular slots go to the best-ranked interested peers. Seeding:
//!   by `rate_to_peer` (the fastest takers get the bandwidth). Downloading:
//!   by `rate_from_peer` (reciprocation), snubbed peers after every
//!   unsnubbed one. Ties are broken at random anew on every rechoke, so
//!   equal peers (say, all at 0 B/s when seeding starts) take turns.
//! - `optimistic` extra slots go to random interested peers that did not get
//!   a regular slot. They are drawn again every `optimistic_interval`; in
//!   between, an optimistic peer keeps its slot while it stays interested,
//!   connected and outside the regular slots, and a freed slot is redrawn at
//!   once. A peer connected within [`NEWCOMER_WINDOW`] is
//!   [`NEWCOMER_WEIGHT`] times as likely to be drawn, so newcomers (with no
//!   pieces to trade yet) get their first pieces quickly.

use std::cmp::Reverse;
use std::time::Duration;

use crate::rng::Rng;

/// Default [`SlotSettings::slots`]: 4 regular slots (the number most
/// clients use per torrent).
pub const SLOTS_DEFAULT: usize = 4;
/// Default [`SlotSettings::optimistic`]: 1 optimistic slot.
pub const OPTIMISTIC_DEFAULT: usize = 1;
/// Default [`SlotSettings::rechoke_interval`]: 10 s (BEP 3's suggestion).
pub const RECHOKE_INTERVAL_DEFAULT: Duration = Duration::from_secs(10);
/// Default [`SlotSettings::optimistic_interval`]: 30 s (three rechokes).
pub const OPTIMISTIC_INTERVAL_DEFAULT: Duration = Duration::from_secs(30);

/// Most regular slots accepted.
pub const SLOTS_MAX: usize = 10_000;
/// Most optimistic slots accepted. Kept small: keeping optimistic peers
/// between draws costs `optimistic` × candidates comparisons per rechoke.
pub const OPTIMISTIC_MAX: usize = 100;
/// Shortest `rechoke_interval` accepted: 1 s. Rates are measured over
/// seconds; rechoking faster only churns.
pub const RECHOKE_INTERVAL_MIN: Duration = Duration::from_secs(1);
/// Longest `rechoke_interval` and `optimistic_interval` accepted: 1 hour.
pub const INTERVAL_MAX: Duration = Duration::from_secs(3600);
/// Most candidates considered per rechoke; those past it in the slice are
/// ignored (never chosen). Far above any per-torrent connection limit.
pub const CANDIDATES_MAX: usize = 100_000;
/// How long after connecting a peer counts as a newcomer: 2 minutes.
pub const NEWCOMER_WINDOW: Duration = Duration::from_secs(120);
/// How many times as likely a newcomer is to win an optimistic draw.
pub const NEWCOMER_WEIGHT: u64 = 3;

/// The tunables of the choker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotSettings {
    /// Regular unchoke slots, `0..=SLOTS_MAX`. 0 means only the optimistic
    /// slots unchoke anyone.
    pub slots: usize,
    /// Extra slots for random peers, `0..=OPTIMISTIC_MAX`. `slots` and
    /// `optimistic` may not both be 0 (nobody could ever download).
    pub optimistic: usize,
    /// Time between rechokes, `RECHOKE_INTERVAL_MIN..=INTERVAL_MAX`.
    pub rechoke_interval: Duration,
    /// Time between optimistic draws, `rechoke_interval..=INTERVAL_MAX`.
    pub optimistic_interval: Duration,
}

impl Default for SlotSettings {
    fn default() -> Self {
        Self {
            slots: SLOTS_DEFAULT,
            optimistic: OPTIMISTIC_DEFAULT,
            rechoke_interval: RECHOKE_INTERVAL_DEFAULT,
            optimistic_interval: OPTIMISTIC_INTERVAL_DEFAULT,
        }
    }
}

/// Why [`SlotSettings`] were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SlotsError {
    #[error("slots is {found}, at most {max} allowed")]
    TooManySlots { found: usize, max: usize },
    #[error("optimistic is {found}, at most {max} allowed")]
    TooManyOptimistic { found: usize, max: usize },
    #[error("slots and optimistic are both 0: no peer could ever be unchoked")]
    NoSlots,
    #[error("rechoke_interval is {found:?}, expected {min:?} to {max:?}")]
    RechokeInterval {
        found: Duration,
        min: Duration,
        max: Duration,
    },
    #[error(
        "optimistic_interval is {found:?}, expected {min:?} (the rechoke_interval) to {max:?}"
    )]
    OptimisticInterval {
        found: Duration,
        min: Duration,
        max: Duration,
    },
}

impl SlotSettings {
    /// Checks every field against its limit.
    pub fn validate(&self) -> Result<(), SlotsError> {
        if self.slots > SLOTS_MAX {
            return Err(SlotsError::TooManySlots {
                found: self.slots,
                max: SLOTS_MAX,
            });
        }
        if self.optimistic > OPTIMISTIC_MAX {
            return Err(SlotsError::TooManyOptimistic {
                found: self.optimistic,
                max: OPTIMISTIC_MAX,
            });
        }
        if self.slots == 0 && self.optimistic == 0 {
            return Err(SlotsError::NoSlots);
        }
        if !(RECHOKE_INTERVAL_MIN..=INTERVAL_MAX).contains(&self.rechoke_interval) {
            return Err(SlotsError::RechokeInterval {
                found: self.rechoke_interval,
                min: RECHOKE_INTERVAL_MIN,
                max: INTERVAL_MAX,
            });
        }
        if !(self.rechoke_interval..=INTERVAL_MAX).contains(&self.optimistic_interval) {
            return Err(SlotsError::OptimisticInterval {
                found: self.optimistic_interval,
                min: self.rechoke_interval,
                max: INTERVAL_MAX,
            });
        }
        Ok(())
    }
}

/// One connected peer as the choker sees it. `peer` is the engine's id for
/// the connection and should be unique among the candidates of one call (a
/// duplicated id is harmless, but may then be listed twice in the output).
#[derive(Clone, Copy, Debug)]
pub struct SlotCandidate {
    pub peer: u64,
    /// The peer wants pieces from us.
    pub interested: bool,
    /// Bytes per second the peer gave us lately.
    pub rate_from_peer: u64,
    /// Bytes per second we sent the peer lately.
    pub rate_to_peer: u64,
    /// The peer has sent us nothing for a while although we asked.
    pub snubbed: bool,
    /// When the connection was made (same clock as `now`).
    pub connected_at: Duration,
}

/// One interested candidate during a rechoke: its rank key and its place in
/// the caller's slice.
#[derive(Clone, Copy, Debug)]
struct Ranked {
    /// Higher ranks first: the rate (+1, 0 for snubbed) in the high 64 bits,
    /// a random tie-breaker in the low 64 bits.
    key: u128,
    index: usize,
}

/// The choker of one torrent: remembers the optimistic peers and when to
/// rechoke next.
#[derive(Debug, Clone)]
pub struct UploadSlots {
    settings: SlotSettings,
    rng: Rng,
    next_rechoke: Duration,
    next_optimistic: Duration,
    /// Peers holding an optimistic slot, at most `settings.optimistic`.
    optimistic: Vec<u64>,
    /// Reused on every rechoke; grows to the largest candidate count seen.
    scratch: Vec<Ranked>,
}

impl UploadSlots {
    /// A choker with validated `settings`; `seed` seeds its random choices
    /// (tie-breaking and optimistic draws). The first rechoke is due at once.
    pub fn new(settings: SlotSettings, seed: u64) -> Result<Self, SlotsError> {
        settings.validate()?;
        Ok(Self {
            optimistic: Vec::with_capacity(settings.optimistic),
            settings,
            rng: Rng::new(seed),
            next_rechoke: Duration::ZERO,
            next_optimistic: Duration::ZERO,
            scratch: Vec::new(),
        })
    }

    /// The settings in force.
    pub fn settings(&self) -> &SlotSettings {
        &self.settings
    }

    /// When [`UploadSlots::rechoke`] should next run. Calling it earlier
    /// (say, when a peer becomes interested) is allowed; it moves this on.
    pub fn next_rechoke(&self) -> Duration {
        self.next_rechoke
    }

    /// The peers holding an optimistic slot after the last rechoke.
    pub fn optimistic_peers(&self) -> &[u64] {
        &self.optimistic
    }

    /// Chooses who is unchoked. `seeding`: rank by `rate_to_peer` (fastest
    /// takers), else by `rate_from_peer` (reciprocation; snubbed peers rank
    /// last). Plus `optimistic` extra slots for random interested peers not
    /// already chosen, drawn again every `optimistic_interval` (kept in
    /// between while still interested and connected), newcomers
    /// [`NEWCOMER_WEIGHT`] times as likely. Writes the chosen peers into
    /// `unchoked` (cleared first): the regular ones first, best first, then
    /// the optimistic ones. Peers that are not interested are never chosen.
    /// At most `slots + optimistic` peers; only the first [`CANDIDATES_MAX`]
    /// candidates are considered.
    pub fn rechoke(
        &mut self,
        now: Duration,
        seeding: bool,
        candidates: &[SlotCandidate],
        unchoked: &mut Vec<u64>,
    ) {
        unchoked.clear();
        self.next_rechoke = now.saturating_add(self.settings.rechoke_interval);
        let redraw = now >= self.next_optimistic;
        if redraw {
            self.optimistic.clear();
            self.next_optimistic = now.saturating_add(self.settings.optimistic_interval);
        }

        let considered = candidates.get(..CANDIDATES_MAX).unwrap_or(candidates);
        self.scratch.clear();
        for (index, c) in considered.iter().enumerate() {
            if !c.interested {
                continue;
            }
            let rate = if seeding {
                c.rate_to_peer.saturating_add(1)
            } else if c.snubbed {
                0
            } else {
                c.rate_from_peer.saturating_add(1)
            };
            let key = (u128::from(rate) << 64) | u128::from(self.rng.next_u64());
            self.scratch.push(Ranked { key, index });
        }

        // Regular slots: the `slots` highest keys, best first.
        let regular = self.settings.slots.min(self.scratch.len());
        if regular > 0 {
            if regular < self.scratch.len() {
                self.scratch
                    .select_nth_unstable_by_key(regular - 1, |r| Reverse(r.key));
            }
            if let Some(top) = self.scratch.get_mut(..regular) {
                top.sort_unstable_by_key(|r| Reverse(r.key));
                unchoked.extend(
                    top.iter()
                        .filter_map(|r| considered.get(r.index))
                        .map(|c| c.peer),
                );
            }
        }

        self.choose_optimistic(now, considered, regular, unchoked);
    }

    /// Fills the optimistic slots from `scratch[regular..]` (the interested
    /// peers without a regular slot): keeps the current holders found there,
    /// then draws the rest, weighted towards newcomers.
    fn choose_optimistic(
        &mut self,
        now: Duration,
        considered: &[SlotCandidate],
        regular: usize,
        unchoked: &mut Vec<u64>,
    ) {
        let peer_of = |r: &Ranked| considered.get(r.index).map(|c| c.peer);
        // Move the holders still in the pool to its front; drop the others.
        let mut front = regular;
        for i in regular..self.scratch.len() {
            let Some(peer) = self.scratch.get(i).and_then(peer_of) else {
                continue;
            };
            if self.optimistic.contains(&peer) && !unchoked.contains(&peer) {
                self.scratch.swap(front, i);
                front += 1;
                unchoked.push(peer);
            }
        }
        self.optimistic.clear();
        if let Some(kept) = self.scratch.get(regular..front) {
            self.optimistic.extend(
                kept.iter()
                    .filter_map(peer_of)
                    .take(self.settings.optimistic),
            );
        }
        // Draw the free slots from scratch[front..], without replacement.
        let weight = |r: &Ranked| match considered.get(r.index) {
            Some(c) if now.saturating_sub(c.connected_at) < NEWCOMER_WINDOW => NEWCOMER_WEIGHT,
            Some(_) => 1,
            None => 0,
        };
        let mut total: u64 = self
            .scratch
            .get(front..)
            .map_or(0, |pool| pool.iter().map(weight).sum());
        while self.optimistic.len() < self.settings.optimistic && total > 0 {
            let mut target = self.rng.below(total);
            let mut picked = None;
            for i in front..self.scratch.len() {
                let Some(r) = self.scratch.get(i) else { break };
                let w = weight(r);
                if target < w {
                    picked = Some((i, w));
                    break;
                }
                target -= w;
            }
            let Some((i, w)) = picked else { break };
            self.scratch.swap(front, i);
            total -= w;
            if let Some(peer) = self.scratch.get(front).and_then(peer_of) {
                if push_unique(unchoked, peer) {
                    self.optimistic.push(peer);
                }
            }
            front += 1;
        }
    }
}

/// Appends `peer` unless it is already listed (only duplicate candidates
/// can cause that). Returns whether it was appended.
fn push_unique(unchoked: &mut Vec<u64>, peer: u64) -> bool {
    if unchoked.contains(&peer) {
        return false;
    }
    unchoked.push(peer);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: Duration = Duration::from_secs(60);

    fn cand(peer: u64, from: u64, to: u64) -> SlotCandidate {
        SlotCandidate {
            peer,
            interested: true,
            rate_from_peer: from,
            rate_to_peer: to,
            snubbed: false,
            connected_at: Duration::ZERO,
        }
    }

    fn settings(slots: usize, optimistic: usize) -> SlotSettings {
        SlotSettings {
            slots,
            optimistic,
            ..SlotSettings::default()
        }
    }

    fn slots(slots: usize, optimistic: usize) -> UploadSlots {
        match UploadSlots::new(settings(slots, optimistic), 7) {
            Ok(s) => s,
            Err(e) => panic!("settings refused: {e}"),
        }
    }

    #[test]
    fn defaults_are_valid() {
        let s = SlotSettings::default();
        assert_eq!(s.slots, 4);
        assert_eq!(s.optimistic, 1);
        assert_eq!(s.rechoke_interval, Duration::from_secs(10));
        assert_eq!(s.optimistic_interval, Duration::from_secs(30));
        assert_eq!(s.validate(), Ok(()));
    }

    #[test]
    fn every_bad_setting_is_refused() {
        let bad = |f: &dyn Fn(&mut SlotSettings)| {
            let mut s = SlotSettings::default();
            f(&mut s);
            UploadSlots::new(s, 1).err()
        };
        assert_eq!(
            bad(&|s| s.slots = SLOTS_MAX + 1),
            Some(SlotsError::TooManySlots {
                found: SLOTS_MAX + 1,
                max: SLOTS_MAX
            })
        );
        assert_eq!(
            bad(&|s| s.optimistic = OPTIMISTIC_MAX + 1),
            Some(SlotsError::TooManyOptimistic {
                found: OPTIMISTIC_MAX + 1,
                max: OPTIMISTIC_MAX
            })
        );
        assert_eq!(
            bad(&|s| {
                s.slots = 0;
                s.optimistic = 0;
            }),
            Some(SlotsError::NoSlots)
        );
        assert!(matches!(
            bad(&|s| s.rechoke_interval = Duration::from_millis(999)),
            Some(SlotsError::RechokeInterval { .. })
        ));
        assert!(matches!(
            bad(&|s| {
                s.rechoke_interval = INTERVAL_MAX + Duration::from_secs(1);
                s.optimistic_interval = INTERVAL_MAX + Duration::from_secs(1);
            }),
            Some(SlotsError::RechokeInterval { .. })
        ));
        assert_eq!(
            bad(&|s| s.optimistic_interval = Duration::from_secs(9)),
            Some(SlotsError::OptimisticInterval {
                found: Duration::from_secs(9),
                min: Duration::from_secs(10),
                max: INTERVAL_MAX
            })
        );
        assert!(matches!(
            bad(&|s| s.optimistic_interval = INTERVAL_MAX + Duration::from_secs(1)),
            Some(SlotsError::OptimisticInterval { .. })
        ));
        // The edges themselves are fine.
        assert_eq!(bad(&|s| s.slots = SLOTS_MAX), None);
        assert_eq!(bad(&|s| s.slots = 0), None);
        assert_eq!(bad(&|s| s.optimistic = 0), None);
        assert_eq!(
            bad(&|s| {
                s.rechoke_interval = RECHOKE_INTERVAL_MIN;
                s.optimistic_interval = RECHOKE_INTERVAL_MIN;
            }),
            None
        );
    }

    #[test]
    fn seeding_ranks_by_rate_to_peer() {
        let mut s = slots(3, 0);
        // rate_from_peer would pick the opposite order.
        let cands: Vec<_> = (0..10).map(|i| cand(i, 1000 - i, i * 100)).collect();
        let mut out = Vec::new();
        s.rechoke(Duration::ZERO, true, &cands, &mut out);
        assert_eq!(out, vec![9, 8, 7]);
    }

    #[test]
    fn downloading_ranks_by_rate_from_peer_snubbed_last() {
        let mut s = slots(3, 0);
        let mut cands: Vec<_> = (0..10).map(|i| cand(i, i * 100, 1000 - i)).collect();
        // The two fastest givers are snubbed: even a 0 B/s unsnubbed peer
        // ranks above them.
        for c in cands.iter_mut().filter(|c| c.peer >= 8) {
            c.snubbed = true;
        }
        let mut out = Vec::new();
        s.rechoke(Duration::ZERO, false, &cands, &mut out);
        assert_eq!(out, vec![7, 6, 5]);
        // With only snubbed peers and one 0 B/s peer left, the 0 B/s one wins.
        let few = [cands[9], cands[8], cand(0, 0, 0)];
        s.rechoke(Duration::ZERO, false, &few, &mut out);
        assert_eq!(out.first(), Some(&0));
        assert_eq!(out.len(), 3);
    }

    #[test]
    fn uninterested_never_chosen_and_count_bounded() {
        let mut s = slots(4, 2);
        let mut cands: Vec<_> = (0..50).map(|i| cand(i, i, i)).collect();
        for c in cands.iter_mut().filter(|c| c.peer % 2 == 1) {
            c.interested = false;
        }
        let mut out = vec![999, 998];
        for round in 0..40u64 {
            let now = Duration::from_secs(round * 10);
            s.rechoke(now, round % 2 == 0, &cands, &mut out);
            assert_eq!(out.len(), 6, "round {round}: {out:?}");
            assert!(out.iter().all(|p| p % 2 == 0), "round {round}: {out:?}");
            let mut sorted = out.clone();
            sorted.sort_unstable();
            sorted.dedup();
            assert_eq!(sorted.len(), out.len(), "listed twice: {out:?}");
        }
        // Nobody interested: nobody unchoked.
        for c in cands.iter_mut() {
            c.interested = false;
        }
        s.rechoke(Duration::from_secs(1000), true, &cands, &mut out);
        assert!(out.is_empty());
        assert!(s.optimistic_peers().is_empty());
    }

    #[test]
    fn fewer_candidates_than_slots_all_unchoked() {
        let mut s = slots(4, 1);
        let cands = [cand(1, 0, 0), cand(2, 0, 0)];
        let mut out = Vec::new();
        s.rechoke(Duration::ZERO, true, &cands, &mut out);
        out.sort_unstable();
        assert_eq!(out, vec![1, 2]);
    }

    #[test]
    fn zero_slots_means_only_optimistic() {
        let mut s = slots(0, 1);
        let cands: Vec<_> = (0..10).map(|i| cand(i, i, i)).collect();
        let mut out = Vec::new();
        s.rechoke(Duration::ZERO, true, &cands, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out, s.optimistic_peers());
    }

    #[test]
    fn next_rechoke_follows_interval() {
        let mut s = slots(4, 1);
        assert_eq!(s.next_rechoke(), Duration::ZERO);
        let mut out = Vec::new();
        s.rechoke(Duration::from_secs(5), true, &[], &mut out);
        assert_eq!(s.next_rechoke(), Duration::from_secs(15));
        s.rechoke(Duration::MAX, true, &[], &mut out);
        assert_eq!(s.next_rechoke(), Duration::MAX);
    }

    #[test]
    fn optimistic_kept_between_rechokes_then_rotated() {
        let mut s = slots(1, 1);
        // Peer 0 takes the regular slot; 1..=20 share the optimistic one.
        let mut cands: Vec<_> = (0..21).map(|i| cand(i, 0, 0)).collect();
        if let Some(c) = cands.first_mut() {
            c.rate_to_peer = 1_000_000;
        }
        let mut out = Vec::new();
        let mut holders = Vec::new();
        for period in 0..30u64 {
            let start = period * 30;
            s.rechoke(Duration::from_secs(start), true, &cands, &mut out);
            let held = s.optimistic_peers().to_vec();
            assert_eq!(held.len(), 1);
            assert_eq!(out.first(), Some(&0));
            assert_eq!(out.get(1), held.first());
            // Two more rechokes within the interval keep it.
            for offset in [10, 20] {
                s.rechoke(Duration::from_secs(start + offset), true, &cands, &mut out);
                assert_eq!(s.optimistic_peers(), held.as_slice(), "period {period}");
            }
            holders.extend(held);
        }
        holders.sort_unstable();
        holders.dedup();
        // 30 draws among 20 peers: rotation reaches many of them.
        assert!(holders.len() >= 8, "only {holders:?} drawn");
    }

    #[test]
    fn optimistic_replaced_when_it_leaves_or_is_promoted() {
        let mut s = slots(1, 1);
        let mut cands: Vec<_> = (0..10).map(|i| cand(i, 0, 0)).collect();
        cands[0].rate_to_peer = 1_000_000;
        let mut out = Vec::new();
        s.rechoke(Duration::ZERO, true, &cands, &mut out);
        let held = s.optimistic_peers()[0];
        // It loses interest: a new one is drawn at the next rechoke.
        cands[held as usize].interested = false;
        s.rechoke(Duration::from_secs(10), true, &cands, &mut out);
        let second = s.optimistic_peers()[0];
        assert_ne!(second, held);
        assert!(!out.contains(&held));
        // It disconnects (no longer a candidate): replaced too.
        let remaining: Vec<_> = cands.iter().copied().filter(|c| c.peer != second).collect();
        s.rechoke(Duration::from_secs(20), true, &remaining, &mut out);
        let third = s.optimistic_peers()[0];
        assert_ne!(third, second);
        // It becomes the fastest taker: it moves to the regular slot and the
        // optimistic slot goes to someone else, listed once.
        let mut promoted = remaining.clone();
        for c in promoted.iter_mut() {
            c.rate_to_peer = if c.peer == third { 5_000_000 } else { 0 };
        }
        s.rechoke(Duration::from_secs(25), true, &promoted, &mut out);
        assert_eq!(out.first(), Some(&third));
        assert_eq!(out.len(), 2);
        assert_ne!(s.optimistic_peers()[0], third);
    }

    #[test]
    fn newcomers_are_three_times_as_likely() {
        let mut s = slots(0, 1);
        let mut out = Vec::new();
        let draws = 4000u64;
        let mut newcomer_wins = 0u64;
        for d in 0..draws {
            // One draw per optimistic interval. 10 old peers, and 10 (ids
            // 10..20) connected a minute before each draw.
            let now = Duration::from_secs(3600 + d * 30);
            let cands: Vec<_> = (0..20)
                .map(|i| SlotCandidate {
                    connected_at: if i < 10 { Duration::ZERO } else { now - MINUTE },
                    ..cand(i, 0, 0)
                })
                .collect();
            s.rechoke(now, true, &cands, &mut out);
            if out.first().is_some_and(|&p| p >= 10) {
                newcomer_wins += 1;
            }
        }
        // Expected share 30 / 40 = 0.75; without the bias it would be 0.5.
        let share = newcomer_wins as f64 / draws as f64;
        assert!((0.72..=0.78).contains(&share), "newcomer share {share}");
    }

    #[test]
    fn peer_connected_in_the_future_counts_as_newcomer() {
        let mut s = slots(0, 1);
        let cands = [SlotCandidate {
            connected_at: Duration::from_secs(99),
            ..cand(1, 0, 0)
        }];
        let mut out = Vec::new();
        s.rechoke(Duration::from_secs(1), true, &cands, &mut out);
        assert_eq!(out, vec![1]);
    }

    #[test]
    fn ties_rotate_between_rechokes() {
        let mut s = slots(2, 0);
        let cands: Vec<_> = (0..10).map(|i| cand(i, 0, 0)).collect();
        let mut out = Vec::new();
        let mut seen = [false; 10];
        for r in 0..50u64 {
            s.rechoke(Duration::from_secs(r * 10), true, &cands, &mut out);
            for &p in &out {
                seen[p as usize] = true;
            }
        }
        assert!(seen.iter().all(|&x| x), "{seen:?}");
    }

    #[test]
    fn stable_with_zero_and_ten_thousand_candidates() {
        let mut s = slots(SLOTS_MAX, OPTIMISTIC_MAX);
        let mut out = Vec::new();
        s.rechoke(Duration::ZERO, true, &[], &mut out);
        assert!(out.is_empty());
        let mut rng = Rng::new(3);
        let cands: Vec<_> = (0..10_000u64)
            .map(|i| SlotCandidate {
                interested: rng.below(4) != 0,
                snubbed: rng.below(8) == 0,
                connected_at: Duration::from_secs(rng.below(1000)),
                ..cand(i, rng.below(1 << 20), rng.below(1 << 20))
            })
            .collect();
        let interested = cands.iter().filter(|c| c.interested).count();
        for round in 0..5u64 {
            s.rechoke(
                Duration::from_secs(round * 10),
                round % 2 == 0,
                &cands,
                &mut out,
            );
            // Fewer interested than slots: every interested peer, once.
            assert_eq!(out.len(), interested);
        }
        // Default settings over 10,000: exactly 5, the top 4 by rate first.
        let mut d = slots(4, 1);
        d.rechoke(Duration::ZERO, true, &cands, &mut out);
        assert_eq!(out.len(), 5);
        let mut rates: Vec<_> = cands
            .iter()
            .filter(|c| c.interested)
            .map(|c| c.rate_to_peer)
            .collect();
        rates.sort_unstable_by(|a, b| b.cmp(a));
        let chosen: Vec<_> = out[..4]
            .iter()
            .map(|&p| cands[p as usize].rate_to_peer)
            .collect();
        assert_eq!(chosen, rates[..4]);
    }

    #[test]
    fn candidates_past_the_limit_are_ignored() {
        let mut s = slots(1, 0);
        let mut cands: Vec<_> = (0..CANDIDATES_MAX as u64 + 1)
            .map(|i| cand(i, 0, 1))
            .collect();
        if let Some(last) = cands.last_mut() {
            last.rate_to_peer = u64::MAX;
        }
        let mut out = Vec::new();
        s.rechoke(Duration::ZERO, true, &cands, &mut out);
        assert_eq!(out.len(), 1);
        assert_ne!(out[0], CANDIDATES_MAX as u64);
    }

    #[test]
    fn duplicate_ids_do_not_exceed_the_bound() {
        let mut s = slots(2, 1);
        let cands = [cand(5, 0, 9), cand(5, 0, 9), cand(5, 0, 1), cand(6, 0, 0)];
        let mut out = Vec::new();
        s.rechoke(Duration::ZERO, true, &cands, &mut out);
        assert!(out.len() <= 3);
        // The optimistic slot never repeats a regular peer.
        assert!(out[2..].iter().all(|p| !out[..2].contains(p)));
    }
}

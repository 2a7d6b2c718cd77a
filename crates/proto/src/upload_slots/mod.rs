//! The upload-slot allocator: which interested peers of one torrent we
//! unchoke, and when to decide again (issue 5).
//!
//! Boundary: pure policy over plain data. The engine fills one
//! [`SlotCandidate`] per connected peer into a reused `Vec` (rates it
//! measured, interest, snub facts, turn facts, pieces held, priority) and
//! calls [`UploadSlots::rechoke`] with a [`Round`] (the caller's `now`,
//! seeding or not, the global quota); the peers to unchoke come back in a
//! reused `Vec`. No sockets, no clock, and no allocation per round once
//! the scratch has grown to the candidate count. Each round is O(n):
//! scores in one pass, the regular slots by partial selection
//! ([`selection`]), the optimistic slots in one more pass ([`optimistic`]).
//!
//! The parts, one concept per file:
//! - [`settings`]: every tunable with unit, default, range and reason.
//! - [`candidate`]: the per-peer facts and the per-round facts.
//! - [`selection`]: rank keys and top-k selection.
//! - [`tit_for_tat`] (downloading), [`fastest_upload`], [`round_robin`],
//!   [`anti_leech`] (seeding): one score function each.
//! - [`optimistic`]: optimistic slots, newcomers weighted.
//! - [`rate_based`]: the slot count from upload rates.
//! - `sim` (tests only): a deterministic swarm in virtual time that
//!   drives this allocator.

pub mod anti_leech;
pub mod candidate;
pub mod fastest_upload;
pub mod optimistic;
pub mod rate_based;
pub mod round_robin;
pub mod selection;
pub mod settings;
pub mod tit_for_tat;

#[cfg(test)]
mod sim;
#[cfg(test)]
mod sim_tests;

use std::time::Duration;

pub use candidate::{Round, SlotCandidate};
pub use settings::{SeedChoking, SlotLimit, SlotSettings, SlotsError};

use crate::rng::Rng;
use optimistic::{Draw, Optimistic};
use selection::{index_of, key, select_top};

/// Most candidates considered per rechoke; those past it in the slice are
/// never chosen. Far above any per-torrent connection limit.
pub const CANDIDATES_MAX: usize = 100_000;

/// The allocator of one torrent: its settings, the optimistic holders,
/// the rate-based count, when to rechoke next, and its scratch.
#[derive(Debug, Clone)]
pub struct UploadSlots {
    settings: SlotSettings,
    rng: Rng,
    next_rechoke: Duration,
    optimistic: Optimistic,
    /// Rank keys of the interested candidates; grows to the largest
    /// candidate count seen, then is reused.
    keys: Vec<u128>,
    /// Rates for the rate-based count; reused likewise.
    rates: Vec<u64>,
    /// The rate-based slot count of the last round.
    rate_slots: usize,
}

impl UploadSlots {
    /// An allocator with validated `settings`; `seed` seeds its random
    /// choices (tie-breaking, optimistic draws). The first rechoke is due
    /// at once.
    pub fn new(settings: SlotSettings, seed: u64) -> Result<Self, SlotsError> {
        settings.validate()?;
        Ok(Self {
            settings,
            rng: Rng::new(seed),
            next_rechoke: Duration::ZERO,
            optimistic: Optimistic::new(),
            keys: Vec::new(),
            rates: Vec::new(),
            rate_slots: 1,
        })
    }

    /// The settings in force.
    pub fn settings(&self) -> &SlotSettings {
        &self.settings
    }

    /// When [`UploadSlots::rechoke`] should next run. Calling it earlier
    /// is allowed; it moves this on.
    pub fn next_rechoke(&self) -> Duration {
        self.next_rechoke
    }

    /// The peers holding an optimistic slot after the last round, sorted.
    pub fn optimistic_peers(&self) -> &[u64] {
        self.optimistic.holders()
    }

    /// Regular slots per torrent from the settings (the rate-based count
    /// as of the last round); `None`: unlimited.
    pub fn slot_limit(&self) -> Option<usize> {
        match self.settings.slots {
            SlotLimit::Fixed(n) => Some(n),
            SlotLimit::Unlimited => None,
            SlotLimit::RateBased => Some(self.rate_slots),
        }
    }

    /// Regular slots a round gives `interested` peers under `quota`: the
    /// slot limit, capped by the quota (never below 1), at most
    /// `interested`.
    pub fn regular_slots(&self, quota: Option<usize>, interested: usize) -> usize {
        regular_slots(self.slot_limit(), quota, interested)
    }

    /// The most peers unchoked at once under `quota`: regular plus
    /// optimistic slots (`usize::MAX`: unlimited). The engine may unchoke
    /// a newly interested peer between rounds while fewer are unchoked.
    pub fn room(&self, quota: Option<usize>) -> usize {
        match capped(self.slot_limit(), quota) {
            None => usize::MAX,
            Some(n) => n.saturating_add(self.settings.optimistic_for(Some(n))),
        }
    }

    /// Chooses who is unchoked this round. Writes the chosen peers into
    /// `unchoked` (cleared first): the regular ones first (best first
    /// unless unlimited), then the optimistic ones. Peers that are not
    /// interested are never chosen; only the first [`CANDIDATES_MAX`]
    /// candidates are considered.
    ///
    /// Regular slots go to the best-ranked interested peers: downloading,
    /// by tit-for-tat; seeding, by `seed_choking`. Equal ranks are broken
    /// at random anew each round, so equal peers take turns.
    pub fn rechoke(
        &mut self,
        round: &Round,
        candidates: &[SlotCandidate],
        unchoked: &mut Vec<u64>,
    ) {
        unchoked.clear();
        let now = round.now;
        self.next_rechoke = now.saturating_add(self.settings.rechoke_interval);
        let considered = candidates.get(..CANDIDATES_MAX).unwrap_or(candidates);
        if self.settings.slots == SlotLimit::RateBased {
            self.rate_slots = rate_based::slot_count(considered, &self.settings, &mut self.rates);
        }
        let limit = capped(self.slot_limit(), round.quota);

        self.keys.clear();
        self.keys.reserve(considered.len());
        for (index, c) in considered.iter().enumerate() {
            if !c.interested {
                continue;
            }
            let score = self.score(c, round);
            let tie = self.rng.next_u64();
            let flags = self.optimistic.flags(c, now, self.settings.newcomer_window);
            self.keys.push(key(c.priority, score, tie, flags, index));
        }
        let regular = regular_slots(limit, None, self.keys.len());
        select_top(&mut self.keys, regular, limit.is_some());
        let (chosen, pool) = self.keys.split_at_mut(regular);
        unchoked.extend(
            chosen
                .iter()
                .filter_map(|k| considered.get(index_of(*k)))
                .map(|c| c.peer),
        );
        let draw = Draw {
            now,
            interval: self.settings.optimistic_interval,
            count: self.settings.optimistic_for(limit),
            newcomer_window: self.settings.newcomer_window,
            newcomer_weight: self.settings.newcomer_weight,
        };
        self.optimistic
            .choose(draw, pool, considered, &mut self.rng, unchoked);
    }

    /// The candidate's rank score under the algorithm of this round.
    fn score(&self, c: &SlotCandidate, round: &Round) -> u64 {
        if !round.seeding {
            return tit_for_tat::score(c, round.now, self.settings.snub_time);
        }
        match self.settings.seed_choking {
            SeedChoking::FastestUpload => fastest_upload::score(c),
            SeedChoking::RoundRobin => round_robin::score(c, round, &self.settings),
            SeedChoking::AntiLeech => anti_leech::score(c, round),
        }
    }
}

/// The slot limit capped by the quota (a quota is at least 1).
fn capped(limit: Option<usize>, quota: Option<usize>) -> Option<usize> {
    match (limit, quota) {
        (None, None) => None,
        (l, q) => Some(
            l.unwrap_or(usize::MAX)
                .min(q.map_or(usize::MAX, |q| q.max(1))),
        ),
    }
}

fn regular_slots(limit: Option<usize>, quota: Option<usize>, interested: usize) -> usize {
    capped(limit, quota).unwrap_or(usize::MAX).min(interested)
}

#[cfg(test)]
mod tests;

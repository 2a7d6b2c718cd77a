//! [`SlotSettings`]: every tunable of the upload-slot allocator, each with
//! its unit, default, accepted range and the reason for the default.
//!
//! Boundary: plain data and its validation; no policy lives here.

use std::time::Duration;

/// Default regular slots per torrent: 4, the number most clients use.
pub const SLOTS_DEFAULT: usize = 4;
/// Most regular slots a fixed count may ask for.
pub const SLOTS_MAX: usize = 10_000;
/// Most optimistic slots accepted. Kept small: keeping optimistic holders
/// between draws costs a binary search among them per candidate.
pub const OPTIMISTIC_MAX: usize = 100;
/// One optimistic slot per this many regular slots (at least one).
pub const OPTIMISTIC_PER_SLOTS: usize = 5;
/// Default rechoke interval: 10 s (BEP 3's suggestion): long enough for
/// TCP to reach its rate after an unchoke, short enough to follow changes.
pub const RECHOKE_INTERVAL_DEFAULT: Duration = Duration::from_secs(10);
/// Default optimistic interval: 30 s (three rechokes), so an optimistic
/// peer has time to show what it gives back.
pub const OPTIMISTIC_INTERVAL_DEFAULT: Duration = Duration::from_secs(30);
/// Default rate window: 20 s, two rechoke rounds: a peer is judged on
/// what it did lately, smoothed over TCP's bursts.
pub const RATE_WINDOW_DEFAULT: Duration = Duration::from_secs(20);
/// Default snub time: 60 s without a block while we asked.
pub const SNUB_TIME_DEFAULT: Duration = Duration::from_secs(60);
/// Default newcomer window: 2 minutes after connecting.
pub const NEWCOMER_WINDOW_DEFAULT: Duration = Duration::from_secs(120);
/// Default newcomer weight in optimistic draws: 3 times as likely.
pub const NEWCOMER_WEIGHT_DEFAULT: u32 = 3;
/// Most newcomer weight accepted.
pub const NEWCOMER_WEIGHT_MAX: u32 = 1_000;
/// Default round-robin piece quota: 10 pieces' worth of bytes.
pub const ROUND_ROBIN_PIECES_DEFAULT: u32 = 10;
/// Most round-robin piece quota accepted.
pub const ROUND_ROBIN_PIECES_MAX: u32 = 100_000;
/// Default shortest round-robin turn: 1 minute.
pub const ROUND_ROBIN_TURN_MIN_DEFAULT: Duration = Duration::from_secs(60);
/// Default longest round-robin turn: 5 minutes.
pub const ROUND_ROBIN_TURN_MAX_DEFAULT: Duration = Duration::from_secs(300);
/// Default first threshold of the rate-based slot count: 10 KiB/s.
pub const RATE_BASED_THRESHOLD_START_DEFAULT: u64 = 10 * 1024;
/// Default rise of the rate-based threshold per slot: 10 KiB/s.
pub const RATE_BASED_THRESHOLD_STEP_DEFAULT: u64 = 10 * 1024;
/// Default most slots the rate-based count may reach: 100.
pub const RATE_BASED_SLOTS_MAX_DEFAULT: usize = 100;
/// Shortest rechoke interval accepted: 1 s. Rates are measured over
/// seconds; rechoking faster only churns.
pub const RECHOKE_INTERVAL_MIN: Duration = Duration::from_secs(1);
/// Longest interval of any kind accepted: 1 hour.
pub const INTERVAL_MAX: Duration = Duration::from_secs(3600);
/// Longest rate window accepted: 60 s (the rate meter's longest window).
pub const RATE_WINDOW_MAX: Duration = Duration::from_secs(60);

/// How many regular slots a torrent has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotLimit {
    /// A fixed count, `0..=SLOTS_MAX` (0: only optimistic slots unchoke).
    Fixed(usize),
    /// Every interested peer is unchoked (for fast links, where slots would
    /// only leave bandwidth unused). No optimistic slots are needed.
    Unlimited,
    /// Counted each round from the upload rates: one slot more than the
    /// number of unchoked peers, fastest first, that each beat a threshold
    /// rising by `rate_based_threshold_step` per slot.
    RateBased,
}

/// Who gets the regular slots while seeding (nothing to reciprocate).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeedChoking {
    /// The peers we upload to fastest: the bandwidth goes where it moves.
    FastestUpload,
    /// Turns: a peer that has had its slot for the piece quota and the
    /// shortest turn (or for the longest turn) makes room for the peer
    /// that has waited longest.
    RoundRobin,
    /// Peers just starting or nearly done first: they spread pieces
    /// (starters pass on what they get; finishers become seeds), while
    /// mid-way collectors wait.
    AntiLeech,
}

/// The allocator's tunables. Downloading always uses tit-for-tat (rank by
/// what each peer gave us); `seed_choking` picks the seeding algorithm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotSettings {
    /// Regular slots per torrent. Default `Fixed(4)`.
    pub slots: SlotLimit,
    /// Optimistic slots, `0..=OPTIMISTIC_MAX`; `None` (default): one per
    /// five regular slots, at least one (none with `Unlimited`).
    pub optimistic: Option<usize>,
    /// Seeding algorithm. Default `FastestUpload` (most bytes out).
    pub seed_choking: SeedChoking,
    /// Time between rechokes, `RECHOKE_INTERVAL_MIN..=INTERVAL_MAX`.
    pub rechoke_interval: Duration,
    /// Time between optimistic draws, `rechoke_interval..=INTERVAL_MAX`.
    pub optimistic_interval: Duration,
    /// Window of the per-peer rates the engine measures for ranking,
    /// 1 s to 60 s. Default 20 s.
    pub rate_window: Duration,
    /// A peer we ask for blocks that sends none for this long is snubbed:
    /// it loses its tit-for-tat rank. 1 s to 1 h; default 60 s.
    pub snub_time: Duration,
    /// How long after connecting a peer is a newcomer, 0 to 1 h; default
    /// 2 min (a newcomer has no pieces to trade: optimistic slots are its
    /// way in). A peer never unchoked since it connected also counts as a
    /// newcomer, however long ago it connected, until its first turn.
    pub newcomer_window: Duration,
    /// How many times as likely a newcomer is to win an optimistic draw,
    /// `1..=NEWCOMER_WEIGHT_MAX`. Default 3.
    pub newcomer_weight: u32,
    /// Round-robin: pieces' worth of bytes a peer takes before its turn
    /// may end, `1..=ROUND_ROBIN_PIECES_MAX`. Default 10: enough for the
    /// peer to trade with others before it is choked.
    pub round_robin_pieces: u32,
    /// Round-robin: shortest turn, 0 to 1 h. Default 60 s: TCP needs
    /// seconds to reach its rate, so shorter turns waste the start-up.
    pub round_robin_turn_min: Duration,
    /// Round-robin: longest turn, `round_robin_turn_min..=INTERVAL_MAX`,
    /// whatever the peer took. Default 5 min, so a slow peer cannot hold
    /// a slot for ever and every waiting peer gets a turn in bounded time.
    pub round_robin_turn_max: Duration,
    /// Rate-based count: the first threshold, bytes per second. Default
    /// 10 KiB/s.
    pub rate_based_threshold_start: u64,
    /// Rate-based count: the threshold rises by this per slot, bytes per
    /// second. Default 10 KiB/s: each extra slot must carry a little more
    /// than the one before, so slots grow only while the link has room.
    pub rate_based_threshold_step: u64,
    /// Rate-based count: most slots, `1..=SLOTS_MAX`. Default 100.
    pub rate_based_slots_max: usize,
}

impl Default for SlotSettings {
    fn default() -> Self {
        Self {
            slots: SlotLimit::Fixed(SLOTS_DEFAULT),
            optimistic: None,
            seed_choking: SeedChoking::FastestUpload,
            rechoke_interval: RECHOKE_INTERVAL_DEFAULT,
            optimistic_interval: OPTIMISTIC_INTERVAL_DEFAULT,
            rate_window: RATE_WINDOW_DEFAULT,
            snub_time: SNUB_TIME_DEFAULT,
            newcomer_window: NEWCOMER_WINDOW_DEFAULT,
            newcomer_weight: NEWCOMER_WEIGHT_DEFAULT,
            round_robin_pieces: ROUND_ROBIN_PIECES_DEFAULT,
            round_robin_turn_min: ROUND_ROBIN_TURN_MIN_DEFAULT,
            round_robin_turn_max: ROUND_ROBIN_TURN_MAX_DEFAULT,
            rate_based_threshold_start: RATE_BASED_THRESHOLD_START_DEFAULT,
            rate_based_threshold_step: RATE_BASED_THRESHOLD_STEP_DEFAULT,
            rate_based_slots_max: RATE_BASED_SLOTS_MAX_DEFAULT,
        }
    }
}

/// Why [`SlotSettings`] were refused: the setting, what was found and the
/// range accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SlotsError {
    #[error("{name} is {found}, expected {min} to {max}")]
    OutOfRange {
        name: &'static str,
        found: u64,
        min: u64,
        max: u64,
    },
    #[error("{name} is {found:?}, expected {min:?} to {max:?}")]
    Interval {
        name: &'static str,
        found: Duration,
        min: Duration,
        max: Duration,
    },
    #[error("0 regular and 0 optimistic slots: no peer could ever be unchoked")]
    NoSlots,
}

fn count(name: &'static str, found: u64, min: u64, max: u64) -> Result<(), SlotsError> {
    if (min..=max).contains(&found) {
        return Ok(());
    }
    Err(SlotsError::OutOfRange {
        name,
        found,
        min,
        max,
    })
}

fn interval(
    name: &'static str,
    found: Duration,
    min: Duration,
    max: Duration,
) -> Result<(), SlotsError> {
    if (min..=max).contains(&found) {
        return Ok(());
    }
    Err(SlotsError::Interval {
        name,
        found,
        min,
        max,
    })
}

impl SlotSettings {
    /// Checks every field against its range.
    pub fn validate(&self) -> Result<(), SlotsError> {
        if let SlotLimit::Fixed(n) = self.slots {
            count("slots", n as u64, 0, SLOTS_MAX as u64)?;
        }
        if let Some(n) = self.optimistic {
            count("optimistic", n as u64, 0, OPTIMISTIC_MAX as u64)?;
        }
        if self.slots == SlotLimit::Fixed(0) && self.optimistic == Some(0) {
            return Err(SlotsError::NoSlots);
        }
        interval(
            "rechoke_interval",
            self.rechoke_interval,
            RECHOKE_INTERVAL_MIN,
            INTERVAL_MAX,
        )?;
        interval(
            "optimistic_interval",
            self.optimistic_interval,
            self.rechoke_interval,
            INTERVAL_MAX,
        )?;
        interval(
            "rate_window",
            self.rate_window,
            Duration::from_secs(1),
            RATE_WINDOW_MAX,
        )?;
        interval(
            "snub_time",
            self.snub_time,
            Duration::from_secs(1),
            INTERVAL_MAX,
        )?;
        interval(
            "newcomer_window",
            self.newcomer_window,
            Duration::ZERO,
            INTERVAL_MAX,
        )?;
        count(
            "newcomer_weight",
            u64::from(self.newcomer_weight),
            1,
            u64::from(NEWCOMER_WEIGHT_MAX),
        )?;
        count(
            "round_robin_pieces",
            u64::from(self.round_robin_pieces),
            1,
            u64::from(ROUND_ROBIN_PIECES_MAX),
        )?;
        interval(
            "round_robin_turn_min",
            self.round_robin_turn_min,
            Duration::ZERO,
            INTERVAL_MAX,
        )?;
        interval(
            "round_robin_turn_max",
            self.round_robin_turn_max,
            self.round_robin_turn_min,
            INTERVAL_MAX,
        )?;
        count(
            "rate_based_threshold_start",
            self.rate_based_threshold_start,
            0,
            1 << 40,
        )?;
        count(
            "rate_based_threshold_step",
            self.rate_based_threshold_step,
            0,
            1 << 40,
        )?;
        count(
            "rate_based_slots_max",
            self.rate_based_slots_max as u64,
            1,
            SLOTS_MAX as u64,
        )?;
        Ok(())
    }

    /// Optimistic slots for `regular` configured regular slots (`None`:
    /// unlimited): the setting, or one per [`OPTIMISTIC_PER_SLOTS`], at
    /// least one; none when every interested peer is unchoked anyway.
    pub fn optimistic_for(&self, regular: Option<usize>) -> usize {
        match (self.optimistic, regular) {
            (_, None) => 0,
            (Some(n), _) => n.min(OPTIMISTIC_MAX),
            (None, Some(r)) => (r / OPTIMISTIC_PER_SLOTS).clamp(1, OPTIMISTIC_MAX),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_as_documented() {
        let s = SlotSettings::default();
        assert_eq!(s.slots, SlotLimit::Fixed(4));
        assert_eq!(s.optimistic, None);
        assert_eq!(s.optimistic_for(Some(4)), 1);
        assert_eq!(s.optimistic_for(Some(20)), 4);
        assert_eq!(s.optimistic_for(Some(0)), 1);
        assert_eq!(s.optimistic_for(None), 0);
        assert_eq!(s.optimistic_for(Some(SLOTS_MAX)), OPTIMISTIC_MAX);
        assert_eq!(s.rechoke_interval, Duration::from_secs(10));
        assert_eq!(s.optimistic_interval, Duration::from_secs(30));
        assert_eq!(s.rate_window, Duration::from_secs(20));
        assert_eq!(s.snub_time, Duration::from_secs(60));
        assert_eq!(s.newcomer_weight, 3);
        assert_eq!(s.validate(), Ok(()));
        let fixed = SlotSettings {
            optimistic: Some(7),
            ..s
        };
        assert_eq!(fixed.optimistic_for(Some(4)), 7);
    }

    #[test]
    fn every_bad_setting_is_refused_with_its_name() {
        let name_of = |f: &dyn Fn(&mut SlotSettings)| {
            let mut s = SlotSettings::default();
            f(&mut s);
            match s.validate() {
                Ok(()) => "ok",
                Err(SlotsError::OutOfRange { name, .. } | SlotsError::Interval { name, .. }) => {
                    name
                }
                Err(SlotsError::NoSlots) => "no slots",
            }
        };
        let second = Duration::from_secs(1);
        assert_eq!(
            name_of(&|s| s.slots = SlotLimit::Fixed(SLOTS_MAX + 1)),
            "slots"
        );
        assert_eq!(
            name_of(&|s| s.optimistic = Some(OPTIMISTIC_MAX + 1)),
            "optimistic"
        );
        assert_eq!(
            name_of(&|s| {
                s.slots = SlotLimit::Fixed(0);
                s.optimistic = Some(0);
            }),
            "no slots"
        );
        assert_eq!(
            name_of(&|s| s.rechoke_interval = Duration::from_millis(999)),
            "rechoke_interval"
        );
        assert_eq!(
            name_of(&|s| s.optimistic_interval = Duration::from_secs(9)),
            "optimistic_interval"
        );
        assert_eq!(
            name_of(&|s| s.rate_window = RATE_WINDOW_MAX + second),
            "rate_window"
        );
        assert_eq!(name_of(&|s| s.snub_time = Duration::ZERO), "snub_time");
        assert_eq!(
            name_of(&|s| s.newcomer_window = INTERVAL_MAX + second),
            "newcomer_window"
        );
        assert_eq!(name_of(&|s| s.newcomer_weight = 0), "newcomer_weight");
        assert_eq!(name_of(&|s| s.round_robin_pieces = 0), "round_robin_pieces");
        assert_eq!(
            name_of(&|s| s.round_robin_turn_min = INTERVAL_MAX + second),
            "round_robin_turn_min"
        );
        assert_eq!(
            name_of(&|s| s.round_robin_turn_max = Duration::from_secs(59)),
            "round_robin_turn_max"
        );
        assert_eq!(
            name_of(&|s| s.rate_based_threshold_start = (1 << 40) + 1),
            "rate_based_threshold_start"
        );
        assert_eq!(
            name_of(&|s| s.rate_based_threshold_step = (1 << 40) + 1),
            "rate_based_threshold_step"
        );
        assert_eq!(
            name_of(&|s| s.rate_based_slots_max = 0),
            "rate_based_slots_max"
        );
        // Edges are fine.
        assert_eq!(name_of(&|s| s.slots = SlotLimit::Fixed(SLOTS_MAX)), "ok");
        assert_eq!(name_of(&|s| s.slots = SlotLimit::Fixed(0)), "ok");
        assert_eq!(name_of(&|s| s.slots = SlotLimit::Unlimited), "ok");
        assert_eq!(name_of(&|s| s.optimistic = Some(0)), "ok");
        assert_eq!(
            name_of(&|s| {
                s.rechoke_interval = RECHOKE_INTERVAL_MIN;
                s.optimistic_interval = RECHOKE_INTERVAL_MIN;
            }),
            "ok"
        );
        let err = SlotsError::OutOfRange {
            name: "slots",
            found: 1,
            min: 2,
            max: 3,
        };
        assert_eq!(err.to_string(), "slots is 1, expected 2 to 3");
    }
}

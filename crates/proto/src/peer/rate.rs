//! `RateMeter`: a transfer rate in bytes per second over a sliding window of
//! one-second buckets.
//!
//! Boundary: pure arithmetic on a fixed-size array; the caller gives `now`
//! (time since any fixed origin, the same origin for every call) and never
//! pays for an allocation. The upload-slot choker reads these rates; the
//! engine feeds them as blocks go out and come in.

use std::time::Duration;

/// Most buckets (and so the longest window) a meter keeps, in 1 s buckets.
pub const WINDOW_BUCKETS_MAX: usize = 60;
/// Fewest buckets a meter keeps: one second.
pub const WINDOW_BUCKETS_MIN: usize = 1;
/// Default window: 5 s, long enough to smooth the bursts of block-sized
/// transfers, short enough that a choker sees a peer slow down within one
/// rechoke round (10 s).
pub const WINDOW_DEFAULT: Duration = Duration::from_secs(5);

/// Bytes per second over the last `window` seconds.
///
/// Bucket `i` holds the bytes of the wall second `s` with `s % buckets == i`,
/// for the seconds `head - buckets + 1 ..= head`; older seconds are cleared
/// as time moves on. A meter starts at its first [`RateMeter::add`]; until
/// the window has passed, the rate is averaged over the time since then (at
/// least 1 s), so a new peer's first burst is not spread over a window it
/// has not lived through, nor over a fraction of a second.
#[derive(Debug, Clone)]
pub struct RateMeter {
    buckets: [u64; WINDOW_BUCKETS_MAX],
    /// Buckets in use, `WINDOW_BUCKETS_MIN..=WINDOW_BUCKETS_MAX`.
    len: usize,
    /// The newest second held in the buckets.
    head: u64,
    /// Time of the first `add`; `None` before it.
    start: Option<Duration>,
    total: u64,
}

impl Default for RateMeter {
    /// A meter over [`WINDOW_DEFAULT`] (5 s).
    fn default() -> Self {
        Self::new(WINDOW_DEFAULT)
    }
}

impl RateMeter {
    /// A meter over `window`, rounded up to whole seconds and clamped to
    /// `WINDOW_BUCKETS_MIN..=WINDOW_BUCKETS_MAX` seconds (1 s to 60 s).
    pub fn new(window: Duration) -> Self {
        let secs = window
            .as_secs()
            .saturating_add(u64::from(window.subsec_nanos() > 0));
        let len = usize::try_from(secs)
            .unwrap_or(WINDOW_BUCKETS_MAX)
            .clamp(WINDOW_BUCKETS_MIN, WINDOW_BUCKETS_MAX);
        Self {
            buckets: [0; WINDOW_BUCKETS_MAX],
            len,
            head: 0,
            start: None,
            total: 0,
        }
    }

    /// The window this meter averages over.
    pub fn window(&self) -> Duration {
        Duration::from_secs(self.len as u64)
    }

    /// Counts `bytes` transferred at `now`. A `now` older than the window
    /// (time going backwards, or a late report) still counts in
    /// [`RateMeter::total`] but not in the rate.
    pub fn add(&mut self, now: Duration, bytes: u64) {
        self.total = self.total.saturating_add(bytes);
        let second = now.as_secs();
        match self.start {
            None => {
                self.start = Some(now);
                self.head = second;
            }
            Some(start) if now < start => self.start = Some(now),
            Some(_) => {}
        }
        if second > self.head {
            let stale = second - self.head;
            if stale >= self.len as u64 {
                self.buckets = [0; WINDOW_BUCKETS_MAX];
            } else {
                for s in self.head + 1..=second {
                    let slot = self.slot(s);
                    if let Some(b) = self.buckets.get_mut(slot) {
                        *b = 0;
                    }
                }
            }
            self.head = second;
        }
        if self.head - second < self.len as u64 {
            let slot = self.slot(second);
            if let Some(b) = self.buckets.get_mut(slot) {
                *b = b.saturating_add(bytes);
            }
        }
    }

    /// Bytes per second at `now`: the bytes of the seconds
    /// `now - window + 1 ..= now` divided by the time they span (the
    /// finished seconds plus the elapsed part of the current one), or by the
    /// time since the first `add` when that is shorter; never by less than
    /// 1 s. 0 before the first `add`.
    pub fn rate(&self, now: Duration) -> u64 {
        let Some(start) = self.start else {
            return 0;
        };
        let second = now.as_secs();
        let len = self.len as u64;
        // Seconds in both the window ending at `now` and the buckets held.
        let low = second
            .saturating_sub(len - 1)
            .max(self.head.saturating_sub(len - 1));
        let high = second.min(self.head);
        let mut bytes: u128 = 0;
        if low <= high {
            for s in low..=high {
                if let Some(b) = self.buckets.get(self.slot(s)) {
                    bytes += u128::from(*b);
                }
            }
        }
        let span =
            Duration::from_secs(len - 1) + Duration::from_nanos(u64::from(now.subsec_nanos()));
        let lived = now.saturating_sub(start);
        let divisor = span.min(lived).max(Duration::from_secs(1));
        let rate = bytes * 1_000_000_000 / divisor.as_nanos().max(1);
        u64::try_from(rate).unwrap_or(u64::MAX)
    }

    /// Every byte ever added (saturating at `u64::MAX`).
    pub fn total(&self) -> u64 {
        self.total
    }

    fn slot(&self, second: u64) -> usize {
        (second % self.len as u64) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    #[test]
    fn empty_meter_reads_zero() {
        let m = RateMeter::default();
        assert_eq!(m.rate(secs(100.0)), 0);
        assert_eq!(m.total(), 0);
        assert_eq!(m.window(), Duration::from_secs(5));
    }

    #[test]
    fn window_is_rounded_up_and_clamped() {
        assert_eq!(RateMeter::new(Duration::ZERO).window(), secs(1.0));
        assert_eq!(RateMeter::new(secs(2.5)).window(), secs(3.0));
        assert_eq!(RateMeter::new(secs(60.0)).window(), secs(60.0));
        assert_eq!(RateMeter::new(secs(61.0)).window(), secs(60.0));
        assert_eq!(RateMeter::new(Duration::MAX).window(), secs(60.0));
    }

    #[test]
    fn steady_rate_is_measured() {
        let mut m = RateMeter::default();
        // 1000 bytes every 100 ms for 20 s: 10_000 B/s.
        for tick in 0..200u64 {
            m.add(Duration::from_millis(tick * 100), 1000);
        }
        let r = m.rate(Duration::from_millis(19_950));
        assert!((9_500..=10_500).contains(&r), "rate {r}");
        assert_eq!(m.total(), 200_000);
    }

    #[test]
    fn young_meter_uses_its_age_but_at_least_one_second() {
        let mut m = RateMeter::default();
        m.add(secs(100.0), 4000);
        // 0.2 s old: divided by 1 s, not by 0.2 s (20_000 B/s) nor 5 s.
        assert_eq!(m.rate(secs(100.2)), 4000);
        // 2 s old: divided by 2 s, not by the 5 s window.
        assert_eq!(m.rate(secs(102.0)), 2000);
    }

    #[test]
    fn old_bytes_leave_the_window() {
        let mut m = RateMeter::new(secs(3.0));
        m.add(secs(10.0), 3000);
        assert_eq!(m.rate(secs(11.5)), 2000);
        assert_eq!(m.rate(secs(13.5)), 0);
        m.add(secs(20.0), 0);
        assert_eq!(m.rate(secs(20.5)), 0);
        assert_eq!(m.total(), 3000);
    }

    #[test]
    fn rate_decays_without_adds() {
        let mut m = RateMeter::default();
        for s in 0..10u64 {
            m.add(Duration::from_secs(s), 5000);
        }
        let full = m.rate(secs(9.999));
        assert!((4_900..=5_100).contains(&full), "rate {full}");
        // No add since second 9: seconds 10 and 11 are empty in the window.
        let later = m.rate(secs(11.999));
        assert!(later < full && later > 0, "later {later} full {full}");
        assert_eq!(m.rate(secs(15.0)), 0);
    }

    #[test]
    fn buckets_are_reused_after_wrapping() {
        let mut m = RateMeter::new(secs(2.0));
        m.add(secs(0.5), 1000);
        m.add(secs(1.5), 1000);
        m.add(secs(2.5), 7000);
        // Window at 2.5 s: seconds 1 and 2 over 1.5 s.
        assert_eq!(m.rate(secs(2.5)), 8000 * 2 / 3);
    }

    #[test]
    fn late_and_backwards_adds_do_not_panic_or_inflate() {
        let mut m = RateMeter::new(secs(2.0));
        m.add(secs(10.0), 1000);
        m.add(secs(9.5), 500); // within the window: counted
        m.add(secs(1.0), 1_000_000); // long before: total only
        assert_eq!(m.total(), 1_001_500);
        assert!(m.rate(secs(10.5)) <= 1500);
        // Querying before the newest bucket sees only what is in range.
        assert!(m.rate(secs(9.5)) <= 1500);
        assert_eq!(m.rate(Duration::ZERO), 0);
    }

    #[test]
    fn huge_values_saturate() {
        let mut m = RateMeter::default();
        m.add(secs(1.0), u64::MAX);
        m.add(secs(1.0), u64::MAX);
        assert_eq!(m.total(), u64::MAX);
        assert_eq!(m.rate(secs(1.0)), u64::MAX);
        m.add(Duration::MAX, 1);
        assert_eq!(m.rate(Duration::MAX), 0);
    }
}

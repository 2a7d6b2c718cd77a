//! A fixed-size latency histogram for the load generator: request-to-piece
//! times recorded in nanoseconds into log-linear buckets, merged across
//! threads, and read back as percentiles. Pure: durations in, durations out;
//! it allocates once, in [`Histogram::new`].
//!
//! Bucket layout: values below [`EXACT_BELOW_NS`] each have their own bucket;
//! above that every power of two is split into [`SUB_BUCKETS`] equal
//! buckets, so a bucket is at most 1/64 of its lower bound wide. A
//! percentile is reported as its bucket's midpoint (kept within the
//! recorded min and max), off by at most 0.8% from the true sample, well
//! inside the 2% the report promises, from 1 ns up to [`RANGE_MAX`].

use std::time::Duration;

/// Buckets per power of two above the exact range (6 bits of mantissa).
pub const SUB_BUCKETS: usize = 64;
const SUB_BITS: u32 = SUB_BUCKETS.trailing_zeros();
/// Values below this many nanoseconds are kept exactly, one bucket each.
pub const EXACT_BELOW_NS: u64 = 2 * SUB_BUCKETS as u64;
const EXACT_BITS: u32 = EXACT_BELOW_NS.trailing_zeros();
/// Highest power of two covered: values up to 2^37 - 1 ns (about 137 s,
/// above the 100 s a request may take) are in range.
const TOP_BITS: u32 = 37;
/// The largest duration kept with the stated error, in nanoseconds; longer
/// ones go into the top bucket and are counted by [`Histogram::over_range`].
pub const RANGE_MAX_NS: u64 = (1 << TOP_BITS) - 1;
/// [`RANGE_MAX_NS`] as a duration.
pub const RANGE_MAX: Duration = Duration::from_nanos(RANGE_MAX_NS);
/// Number of buckets.
pub const BUCKETS: usize = EXACT_BELOW_NS as usize + (TOP_BITS - EXACT_BITS) as usize * SUB_BUCKETS;

/// Counts of durations in log-linear buckets, with the exact minimum and
/// maximum seen.
#[derive(Clone, PartialEq, Eq)]
pub struct Histogram {
    counts: Box<[u64; BUCKETS]>,
    count: u64,
    over_range: u64,
    min_ns: u64,
    max_ns: u64,
}

impl std::fmt::Debug for Histogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Histogram")
            .field("count", &self.count)
            .field("over_range", &self.over_range)
            .field("min_ns", &self.min_ns)
            .field("max_ns", &self.max_ns)
            .finish_non_exhaustive()
    }
}

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

/// The bucket of a value in nanoseconds (values past the range land in the
/// top bucket).
fn bucket_of(ns: u64) -> usize {
    let v = ns.min(RANGE_MAX_NS);
    if v < EXACT_BELOW_NS {
        return v as usize;
    }
    // v >= 2^EXACT_BITS, so its top bit is at EXACT_BITS..TOP_BITS.
    let top = 63 - v.leading_zeros();
    let shift = top - SUB_BITS;
    let mantissa = ((v >> shift) as usize) & (SUB_BUCKETS - 1);
    EXACT_BELOW_NS as usize + (top - EXACT_BITS) as usize * SUB_BUCKETS + mantissa
}

/// The lowest value and the width of bucket `index`, in nanoseconds.
fn bucket_bounds(index: usize) -> (u64, u64) {
    if index < EXACT_BELOW_NS as usize {
        return (index as u64, 1);
    }
    let above = index - EXACT_BELOW_NS as usize;
    let top = EXACT_BITS + (above / SUB_BUCKETS) as u32;
    let mantissa = (above % SUB_BUCKETS) as u64;
    let shift = top - SUB_BITS;
    (((SUB_BUCKETS as u64) + mantissa) << shift, 1 << shift)
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl Histogram {
    /// An empty histogram (its one allocation: [`BUCKETS`] counters).
    pub fn new() -> Self {
        Self {
            counts: Box::new([0; BUCKETS]),
            count: 0,
            over_range: 0,
            min_ns: u64::MAX,
            max_ns: 0,
        }
    }

    /// Records one duration.
    pub fn record(&mut self, d: Duration) {
        let ns = nanos(d);
        if let Some(c) = self.counts.get_mut(bucket_of(ns)) {
            *c = c.saturating_add(1);
        }
        self.count = self.count.saturating_add(1);
        if ns > RANGE_MAX_NS {
            self.over_range = self.over_range.saturating_add(1);
        }
        self.min_ns = self.min_ns.min(ns);
        self.max_ns = self.max_ns.max(ns);
    }

    /// Adds every sample of `other` into this one.
    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(other.counts.iter()) {
            *a = a.saturating_add(*b);
        }
        self.count = self.count.saturating_add(other.count);
        self.over_range = self.over_range.saturating_add(other.over_range);
        self.min_ns = self.min_ns.min(other.min_ns);
        self.max_ns = self.max_ns.max(other.max_ns);
    }

    /// Number of durations recorded.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Number of durations longer than [`RANGE_MAX`] (counted in the top
    /// bucket, so percentiles that fall there read as at most the max).
    pub fn over_range(&self) -> u64 {
        self.over_range
    }

    /// The longest duration recorded, exactly; `None` when empty.
    pub fn max(&self) -> Option<Duration> {
        (self.count > 0).then(|| Duration::from_nanos(self.max_ns))
    }

    /// The shortest duration recorded, exactly; `None` when empty.
    pub fn min(&self) -> Option<Duration> {
        (self.count > 0).then(|| Duration::from_nanos(self.min_ns))
    }

    /// The `p`th percentile (`p` from 0 to 100): the smallest recorded value
    /// with at least `p`% of the samples at or below it (rank
    /// `ceil(p/100 * count)`, at least 1), given as its bucket's midpoint
    /// kept within the recorded min and max. `None` when empty or when `p`
    /// is not a number from 0 to 100.
    pub fn percentile(&self, p: f64) -> Option<Duration> {
        if self.count == 0 || !(0.0..=100.0).contains(&p) {
            return None;
        }
        let rank = ((p / 100.0) * self.count as f64).ceil();
        // The float rank is at most count; clamp against rounding.
        let rank = (rank as u64).clamp(1, self.count);
        let mut seen = 0u64;
        for (index, &c) in self.counts.iter().enumerate() {
            seen = seen.saturating_add(c);
            if seen >= rank {
                let (low, width) = bucket_bounds(index);
                let mid = low.saturating_add(width / 2);
                let value = mid.clamp(self.min_ns, self.max_ns);
                return Some(Duration::from_nanos(value));
            }
        }
        // Counts add up to `count`, so the loop returns; the max is right if not.
        self.max()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringseed::rng::Rng;

    #[test]
    fn layout_constants() {
        assert_eq!(EXACT_BELOW_NS, 128);
        assert_eq!(BUCKETS, 128 + 30 * 64);
        assert_eq!(bucket_of(0), 0);
        assert_eq!(bucket_of(127), 127);
        assert_eq!(bucket_of(128), 128);
        assert_eq!(bucket_of(129), 128);
        assert_eq!(bucket_of(130), 129);
        assert_eq!(bucket_of(RANGE_MAX_NS), BUCKETS - 1);
        assert_eq!(bucket_of(u64::MAX), BUCKETS - 1);
        assert!(RANGE_MAX > Duration::from_secs(100));
        // Buckets tile the range: each starts where the last one ended, and
        // every value maps into the bucket whose bounds hold it.
        let mut next = 0u64;
        for i in 0..BUCKETS {
            let (low, width) = bucket_bounds(i);
            assert_eq!(low, next, "bucket {i}");
            assert_eq!(bucket_of(low), i);
            assert_eq!(bucket_of(low + width - 1), i);
            if low >= EXACT_BELOW_NS {
                // At most 1/64 of the lower bound wide.
                assert!(width * 64 <= low, "bucket {i}");
            }
            next = low + width;
        }
        assert_eq!(next, RANGE_MAX_NS + 1);
    }

    #[test]
    fn empty_and_bad_percentiles() {
        let mut h = Histogram::new();
        assert_eq!(h.count(), 0);
        assert_eq!(h.percentile(50.0), None);
        assert_eq!(h.max(), None);
        assert_eq!(h.min(), None);
        h.record(Duration::from_micros(5));
        for bad in [-0.1, 100.1, f64::NAN, f64::INFINITY] {
            assert_eq!(h.percentile(bad), None, "p {bad}");
        }
        assert_eq!(h.percentile(0.0), Some(Duration::from_micros(5)));
        assert_eq!(h.percentile(100.0), Some(Duration::from_micros(5)));
        assert_eq!(Histogram::default().count(), 0);
    }

    #[test]
    fn small_values_are_exact() {
        let mut h = Histogram::new();
        for ns in 1..=100u64 {
            h.record(Duration::from_nanos(ns));
        }
        assert_eq!(h.percentile(50.0), Some(Duration::from_nanos(50)));
        assert_eq!(h.percentile(99.0), Some(Duration::from_nanos(99)));
        assert_eq!(h.percentile(1.0), Some(Duration::from_nanos(1)));
        assert_eq!(h.min(), Some(Duration::from_nanos(1)));
        assert_eq!(h.max(), Some(Duration::from_nanos(100)));
    }

    /// Checks percentiles against a sorted reference within 2%.
    fn check_against_reference(samples: &[u64]) {
        let mut h = Histogram::new();
        for &ns in samples {
            h.record(Duration::from_nanos(ns));
        }
        let mut sorted = samples.to_vec();
        sorted.sort_unstable();
        let n = sorted.len() as u64;
        assert_eq!(h.count(), n);
        for p in [0.0, 1.0, 10.0, 25.0, 50.0, 75.0, 90.0, 99.0, 99.9, 100.0] {
            let rank = ((p / 100.0 * n as f64).ceil() as u64).clamp(1, n);
            let want = sorted[(rank - 1) as usize] as f64;
            let got = h.percentile(p).unwrap().as_nanos() as f64;
            let err = (got - want).abs() / want;
            assert!(err <= 0.02, "p{p}: got {got} want {want} err {err}");
            // The midpoint rule actually does better than the promise.
            assert!(err <= 0.008, "p{p}: got {got} want {want} err {err}");
        }
        assert_eq!(h.max().unwrap().as_nanos() as u64, sorted[sorted.len() - 1]);
        assert_eq!(h.min().unwrap().as_nanos() as u64, sorted[0]);
    }

    #[test]
    fn percentiles_match_a_sorted_reference() {
        let mut rng = Rng::new(2024);
        // Log-uniform from 1 µs to 100 s.
        let log_uniform: Vec<u64> = (0..20_000)
            .map(|_| {
                let exp = 3.0 + 8.0 * (rng.below(1_000_000) as f64 / 1_000_000.0);
                10f64.powf(exp) as u64
            })
            .collect();
        check_against_reference(&log_uniform);
        // Clustered around 2 ms with a tail.
        let clustered: Vec<u64> = (0..5_000)
            .map(|i| {
                if i % 100 == 0 {
                    50_000_000 + rng.below(50_000_000)
                } else {
                    2_000_000 + rng.below(200_000)
                }
            })
            .collect();
        check_against_reference(&clustered);
        check_against_reference(&[1_000, 100_000_000_000]);
        check_against_reference(&[7_777_777]);
    }

    #[test]
    fn merge_equals_recording_everything_in_one() {
        let mut rng = Rng::new(5);
        let mut all = Histogram::new();
        let mut parts = [Histogram::new(), Histogram::new(), Histogram::new()];
        for i in 0..3_000usize {
            let d = Duration::from_nanos(1_000 + rng.below(1_000_000_000));
            all.record(d);
            parts[i % 3].record(d);
        }
        let mut merged = Histogram::new();
        for p in &parts {
            merged.merge(p);
        }
        assert_eq!(merged, all);
        assert_eq!(merged.percentile(99.0), all.percentile(99.0));
        // Merging an empty one changes nothing, including min and max.
        let before = merged.clone();
        merged.merge(&Histogram::new());
        assert_eq!(merged, before);
        let mut empty = Histogram::new();
        empty.merge(&before);
        assert_eq!(empty, before);
    }

    #[test]
    fn over_range_goes_to_the_top_bucket() {
        let mut h = Histogram::new();
        h.record(Duration::from_secs(1));
        h.record(Duration::from_secs(500));
        h.record(Duration::MAX);
        assert_eq!(h.count(), 3);
        assert_eq!(h.over_range(), 2);
        assert_eq!(h.max(), Some(Duration::from_nanos(u64::MAX)));
        let p100 = h.percentile(100.0).unwrap();
        assert!(p100 <= Duration::from_nanos(u64::MAX) && p100 >= RANGE_MAX / 2);
        let p10 = h.percentile(10.0).unwrap();
        assert!(p10.abs_diff(Duration::from_secs(1)) <= Duration::from_millis(8));
        let dbg = format!("{h:?}");
        assert!(dbg.contains("count: 3"), "{dbg}");
    }
}

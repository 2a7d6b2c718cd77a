//! The load generator's report: plain measurements in (bytes and active time
//! per peer, a latency histogram, CPU and memory of the seeder and of the
//! load generator), the figures issue 4 asks for out (goodput, per-peer
//! fairness with Jain's index, latency p50/p99, CPU-seconds per GiB, peak
//! RSS), as an aligned table or as JSON. Pure: no clock, no /proc (the
//! runtime reads those and hands the numbers in).
//!
//! Units: MB is 10^6 bytes (goodput and rates); GiB is 2^30 bytes (CPU cost).

use std::time::Duration;

use serde_json::{json, Value};

use super::histogram::Histogram;

/// Bytes in a MB, for rates.
pub const MB_BYTES: f64 = 1_000_000.0;
/// Bytes in a GiB, for CPU cost.
pub const GIB_BYTES: f64 = (1u64 << 30) as f64;
/// Bytes in a MiB, for memory sizes in the table.
const MIB_BYTES: f64 = (1u64 << 20) as f64;
/// Width of the label column of the table, in characters.
const LABEL_WIDTH: usize = 24;

/// What one synthetic peer did: verified payload bytes received, and how
/// long it was active (connected and interested).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PeerSample {
    pub bytes: u64,
    pub active: Duration,
}

impl PeerSample {
    /// The peer's rate in bytes per second; 0 when it was never active.
    pub fn rate(&self) -> f64 {
        let secs = self.active.as_secs_f64();
        if secs > 0.0 {
            self.bytes as f64 / secs
        } else {
            0.0
        }
    }
}

/// A rate that is a finite, non-negative number (anything else counts as 0).
fn clean(rate: f64) -> f64 {
    if rate.is_finite() && rate > 0.0 {
        rate
    } else {
        0.0
    }
}

/// Jain's fairness index of `rates`: (Σx)² / (n·Σx²), from 1/n (one peer
/// gets everything) to 1 (all equal). Defined as 1 when there are no rates
/// or all are zero (nobody is favoured). Negative or non-finite rates count
/// as 0.
pub fn jain_index(rates: &[f64]) -> f64 {
    let (sum, sum_sq) = rates.iter().fold((0.0f64, 0.0f64), |(s, q), &r| {
        let r = clean(r);
        (s + r, q + r * r)
    });
    if rates.is_empty() || sum_sq <= 0.0 {
        return 1.0;
    }
    let n = rates.len() as f64;
    // Rounding can push it a hair past 1 for equal rates.
    ((sum * sum) / (n * sum_sq)).min(1.0)
}

/// How evenly the rate was shared among peers, in bytes per second.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Fairness {
    pub peers: usize,
    /// Lowest, median (mean of the two middle ones for an even count) and
    /// highest per-peer rate; 0 when there are no peers.
    pub min: f64,
    pub median: f64,
    pub max: f64,
    /// [`jain_index`] of the rates.
    pub jain: f64,
}

impl Fairness {
    /// The fairness of `rates` (bytes per second; negative or non-finite
    /// ones count as 0).
    pub fn from_rates(rates: &[f64]) -> Fairness {
        let mut sorted: Vec<f64> = rates.iter().map(|&r| clean(r)).collect();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        let median = if n == 0 {
            0.0
        } else if n % 2 == 1 {
            sorted.get(n / 2).copied().unwrap_or(0.0)
        } else {
            let a = sorted.get(n / 2 - 1).copied().unwrap_or(0.0);
            let b = sorted.get(n / 2).copied().unwrap_or(0.0);
            (a + b) / 2.0
        };
        Fairness {
            peers: n,
            min: sorted.first().copied().unwrap_or(0.0),
            median,
            max: sorted.last().copied().unwrap_or(0.0),
            jain: jain_index(&sorted),
        }
    }

    /// The fairness of the peers' rates ([`PeerSample::rate`]).
    pub fn from_samples(samples: &[PeerSample]) -> Fairness {
        let rates: Vec<f64> = samples.iter().map(PeerSample::rate).collect();
        Self::from_rates(&rates)
    }
}

/// CPU time and memory of one process over the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ProcessUsage {
    /// CPU time in user mode during the run.
    pub user: Duration,
    /// CPU time in the kernel during the run.
    pub system: Duration,
    /// Peak resident set size, in bytes, when known.
    pub peak_rss_bytes: Option<u64>,
}

/// A process's CPU cost, also per GiB of verified payload.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct CpuCost {
    pub user_s: f64,
    pub system_s: f64,
    /// Seconds per GiB moved; `None` when no bytes were moved.
    pub user_s_per_gib: Option<f64>,
    pub system_s_per_gib: Option<f64>,
    pub peak_rss_bytes: Option<u64>,
}

impl CpuCost {
    /// The cost of `usage` for `bytes` of payload.
    pub fn new(usage: &ProcessUsage, bytes: u64) -> CpuCost {
        let gib = bytes as f64 / GIB_BYTES;
        let per_gib = |secs: f64| (bytes > 0).then(|| secs / gib);
        let user_s = usage.user.as_secs_f64();
        let system_s = usage.system.as_secs_f64();
        CpuCost {
            user_s,
            system_s,
            user_s_per_gib: per_gib(user_s),
            system_s_per_gib: per_gib(system_s),
            peak_rss_bytes: usage.peak_rss_bytes,
        }
    }
}

/// What the report is computed from.
#[derive(Debug, Clone, Default)]
pub struct ReportInput<'a> {
    /// Wall-clock time of the measured run.
    pub wall: Duration,
    /// One sample per synthetic peer (their bytes add up to the total).
    pub peers: &'a [PeerSample],
    /// Request-to-piece latencies of all peers.
    pub latency: Option<&'a Histogram>,
    /// The seeder's usage over the run, when its PID was given.
    pub seeder: Option<ProcessUsage>,
    /// The load generator's own usage over the run.
    pub loadgen: Option<ProcessUsage>,
}

/// The benchmark's figures.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Report {
    /// Verified payload bytes received by all peers.
    pub bytes: u64,
    pub wall: Duration,
    /// bytes / wall, in MB (10^6 bytes) per second; 0 for a zero wall time.
    pub goodput_mb_s: f64,
    /// Per-peer rates, in bytes per second.
    pub fairness: Fairness,
    /// Number of latency samples, and their 50th and 99th percentiles.
    pub latency_samples: u64,
    pub latency_p50: Option<Duration>,
    pub latency_p99: Option<Duration>,
    pub latency_max: Option<Duration>,
    pub seeder: Option<CpuCost>,
    pub loadgen: Option<CpuCost>,
}

fn opt_ms(d: Option<Duration>) -> Value {
    d.map_or(Value::Null, |d| json!(d.as_secs_f64() * 1000.0))
}

fn cost_json(c: &Option<CpuCost>) -> Value {
    match c {
        None => Value::Null,
        Some(c) => json!({
            "cpu_user_s": c.user_s,
            "cpu_system_s": c.system_s,
            "cpu_user_s_per_gib": c.user_s_per_gib,
            "cpu_system_s_per_gib": c.system_s_per_gib,
            "peak_rss_bytes": c.peak_rss_bytes,
        }),
    }
}

/// A duration for people: ns, µs, ms or s with three significant-ish digits.
fn human_duration(d: Duration) -> String {
    let ns = d.as_nanos();
    if ns < 1_000 {
        format!("{ns} ns")
    } else if ns < 1_000_000 {
        format!("{:.1} µs", ns as f64 / 1e3)
    } else if ns < 1_000_000_000 {
        format!("{:.2} ms", ns as f64 / 1e6)
    } else {
        format!("{:.3} s", d.as_secs_f64())
    }
}

fn row(out: &mut String, label: &str, value: &str) {
    out.push_str(&format!("{label:<LABEL_WIDTH$}{value}\n"));
}

fn cost_rows(out: &mut String, who: &str, cost: &Option<CpuCost>) {
    let label = format!("{who} CPU");
    match cost {
        None => row(out, &label, "not measured"),
        Some(c) => {
            let per = match (c.user_s_per_gib, c.system_s_per_gib) {
                (Some(u), Some(s)) => format!("  ({u:.3} + {s:.3} s/GiB)"),
                _ => String::new(),
            };
            row(
                out,
                &label,
                &format!("user {:.3} s  sys {:.3} s{per}", c.user_s, c.system_s),
            );
            if let Some(rss) = c.peak_rss_bytes {
                row(
                    out,
                    &format!("{who} peak RSS"),
                    &format!("{:.1} MiB", rss as f64 / MIB_BYTES),
                );
            }
        }
    }
}

impl Report {
    /// Computes the figures from the run's measurements.
    pub fn new(input: &ReportInput<'_>) -> Report {
        let bytes = input
            .peers
            .iter()
            .fold(0u64, |acc, p| acc.saturating_add(p.bytes));
        let secs = input.wall.as_secs_f64();
        let goodput_mb_s = if secs > 0.0 {
            bytes as f64 / MB_BYTES / secs
        } else {
            0.0
        };
        let latency = input.latency;
        Report {
            bytes,
            wall: input.wall,
            goodput_mb_s,
            fairness: Fairness::from_samples(input.peers),
            latency_samples: latency.map_or(0, Histogram::count),
            latency_p50: latency.and_then(|h| h.percentile(50.0)),
            latency_p99: latency.and_then(|h| h.percentile(99.0)),
            latency_max: latency.and_then(Histogram::max),
            seeder: input.seeder.as_ref().map(|u| CpuCost::new(u, bytes)),
            loadgen: input.loadgen.as_ref().map(|u| CpuCost::new(u, bytes)),
        }
    }

    /// The report as an aligned, human-readable table (one figure a line).
    pub fn to_table(&self) -> String {
        let mut out = String::new();
        row(&mut out, "peers", &self.fairness.peers.to_string());
        row(
            &mut out,
            "wall time",
            &format!("{:.3} s", self.wall.as_secs_f64()),
        );
        row(
            &mut out,
            "payload verified",
            &format!(
                "{} B ({:.3} GiB)",
                self.bytes,
                self.bytes as f64 / GIB_BYTES
            ),
        );
        row(
            &mut out,
            "goodput",
            &format!("{:.1} MB/s", self.goodput_mb_s),
        );
        let f = &self.fairness;
        let rates = if f.peers == 0 {
            "no peers".to_string()
        } else {
            format!(
                "min {:.3}  median {:.3}  max {:.3}",
                f.min / MB_BYTES,
                f.median / MB_BYTES,
                f.max / MB_BYTES
            )
        };
        row(&mut out, "per-peer rate (MB/s)", &rates);
        row(&mut out, "fairness (Jain)", &format!("{:.4}", f.jain));
        let latency = match (self.latency_p50, self.latency_p99) {
            (Some(p50), Some(p99)) => format!(
                "p50 {}  p99 {}  max {}  ({} samples)",
                human_duration(p50),
                human_duration(p99),
                self.latency_max.map_or("-".to_string(), human_duration),
                self.latency_samples
            ),
            _ => "no samples".to_string(),
        };
        row(&mut out, "request-to-piece", &latency);
        cost_rows(&mut out, "seeder", &self.seeder);
        cost_rows(&mut out, "load generator", &self.loadgen);
        out
    }

    /// The report as JSON: rates in MB/s, times in seconds or milliseconds
    /// (named in each key), sizes in bytes; `null` for what was not measured.
    pub fn to_json(&self) -> Value {
        let f = &self.fairness;
        json!({
            "bytes": self.bytes,
            "wall_s": self.wall.as_secs_f64(),
            "goodput_mb_per_s": self.goodput_mb_s,
            "peers": {
                "count": f.peers,
                "rate_min_mb_per_s": f.min / MB_BYTES,
                "rate_median_mb_per_s": f.median / MB_BYTES,
                "rate_max_mb_per_s": f.max / MB_BYTES,
                "jain_index": f.jain,
            },
            "latency": {
                "samples": self.latency_samples,
                "p50_ms": opt_ms(self.latency_p50),
                "p99_ms": opt_ms(self.latency_p99),
                "max_ms": opt_ms(self.latency_max),
            },
            "seeder": cost_json(&self.seeder),
            "loadgen": cost_json(&self.loadgen),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-9 * b.abs().max(1.0)
    }

    #[test]
    fn peer_rate() {
        let p = PeerSample {
            bytes: 3_000_000,
            active: Duration::from_millis(1500),
        };
        assert!(close(p.rate(), 2_000_000.0));
        assert_eq!(
            PeerSample {
                bytes: 5,
                active: Duration::ZERO
            }
            .rate(),
            0.0
        );
        assert_eq!(PeerSample::default().rate(), 0.0);
    }

    #[test]
    fn jain_known_values() {
        assert_eq!(jain_index(&[]), 1.0);
        assert_eq!(jain_index(&[0.0, 0.0, 0.0]), 1.0);
        assert_eq!(jain_index(&[5.0; 7]), 1.0);
        assert!(close(jain_index(&[0.1; 10_000]), 1.0));
        for n in [1usize, 2, 4, 10, 1000] {
            let mut rates = vec![0.0; n];
            rates[n / 2] = 42.0;
            assert!(close(jain_index(&rates), 1.0 / n as f64), "n {n}");
        }
        // Two peers at 1 and 3: 16 / (2 * 10) = 0.8.
        assert!(close(jain_index(&[1.0, 3.0]), 0.8));
        // Bad values count as zero.
        assert!(close(
            jain_index(&[1.0, f64::NAN, -3.0, f64::INFINITY]),
            0.25
        ));
    }

    #[test]
    fn fairness_stats() {
        let f = Fairness::from_rates(&[4.0, 1.0, 3.0]);
        assert_eq!((f.peers, f.min, f.median, f.max), (3, 1.0, 3.0, 4.0));
        assert!(close(f.jain, 64.0 / (3.0 * 26.0)));
        let f = Fairness::from_rates(&[4.0, 1.0, 3.0, 2.0]);
        assert_eq!((f.min, f.median, f.max), (1.0, 2.5, 4.0));
        let f = Fairness::from_rates(&[]);
        assert_eq!(
            (f.peers, f.min, f.median, f.max, f.jain),
            (0, 0.0, 0.0, 0.0, 1.0)
        );
        let f = Fairness::from_rates(&[f64::NAN, 2.0]);
        assert_eq!((f.min, f.median, f.max), (0.0, 1.0, 2.0));
        let f = Fairness::from_samples(&[
            PeerSample {
                bytes: 1_000,
                active: Duration::from_secs(1),
            },
            PeerSample {
                bytes: 1_000,
                active: Duration::from_secs(2),
            },
        ]);
        assert_eq!((f.min, f.max), (500.0, 1000.0));
    }

    #[test]
    fn cpu_cost_per_gib() {
        let usage = ProcessUsage {
            user: Duration::from_millis(1500),
            system: Duration::from_millis(500),
            peak_rss_bytes: Some(123),
        };
        let c = CpuCost::new(&usage, 2 << 30);
        assert!(close(c.user_s, 1.5) && close(c.system_s, 0.5));
        assert!(close(c.user_s_per_gib.unwrap(), 0.75));
        assert!(close(c.system_s_per_gib.unwrap(), 0.25));
        assert_eq!(c.peak_rss_bytes, Some(123));
        let none = CpuCost::new(&usage, 0);
        assert_eq!((none.user_s_per_gib, none.system_s_per_gib), (None, None));
    }

    fn sample_report() -> (Report, Histogram) {
        let peers = [
            PeerSample {
                bytes: 1 << 30,
                active: Duration::from_secs(10),
            },
            PeerSample {
                bytes: 1 << 30,
                active: Duration::from_secs(5),
            },
        ];
        let mut h = Histogram::new();
        for ms in 1..=100u64 {
            h.record(Duration::from_millis(ms));
        }
        let r = Report::new(&ReportInput {
            wall: Duration::from_secs(10),
            peers: &peers,
            latency: Some(&h),
            seeder: Some(ProcessUsage {
                user: Duration::from_secs(2),
                system: Duration::from_secs(4),
                peak_rss_bytes: Some(64 << 20),
            }),
            loadgen: Some(ProcessUsage {
                user: Duration::from_secs(1),
                system: Duration::from_secs(1),
                peak_rss_bytes: None,
            }),
        });
        (r, h)
    }

    #[test]
    fn report_figures() {
        let (r, h) = sample_report();
        assert_eq!(r.bytes, 2 << 30);
        assert!(close(r.goodput_mb_s, (2u64 << 30) as f64 / 1e6 / 10.0));
        assert_eq!(r.fairness.peers, 2);
        assert!(close(r.fairness.jain, 0.9));
        assert_eq!(r.latency_samples, 100);
        assert_eq!(r.latency_p50, h.percentile(50.0));
        assert_eq!(r.latency_p99, h.percentile(99.0));
        let p99 = r.latency_p99.unwrap().as_secs_f64();
        assert!((p99 - 0.099).abs() < 0.099 * 0.02, "{p99}");
        let s = r.seeder.unwrap();
        assert!(close(s.user_s_per_gib.unwrap(), 1.0));
        assert!(close(s.system_s_per_gib.unwrap(), 2.0));
        assert!(close(r.loadgen.unwrap().user_s_per_gib.unwrap(), 0.5));
        // Nothing measured: zero goodput, no latency, no CPU figures.
        let empty = Report::new(&ReportInput::default());
        assert_eq!(empty.goodput_mb_s, 0.0);
        assert_eq!(empty.latency_p50, None);
        assert_eq!(empty.seeder, None);
        assert_eq!(empty.fairness.jain, 1.0);
    }

    #[test]
    fn table_is_aligned_and_complete() {
        let (r, _) = sample_report();
        let t = r.to_table();
        for needle in [
            "peers",
            "goodput",
            "214.7 MB/s",
            "min 107.374  median 161.061  max 214.748",
            "0.9000",
            "p50 ",
            "p99 ",
            "(100 samples)",
            "(1.000 + 2.000 s/GiB)",
            "seeder peak RSS",
            "64.0 MiB",
            "load generator CPU",
            "2.000 GiB",
        ] {
            assert!(t.contains(needle), "{needle:?} missing from\n{t}");
        }
        // Every value starts in the same column.
        for line in t.lines() {
            assert!(line.len() > LABEL_WIDTH, "{line:?}");
            let (label, value) = line.split_at(LABEL_WIDTH);
            assert!(label.ends_with(' '), "{line:?}");
            assert!(!value.starts_with(' '), "{line:?}");
        }
        let empty = Report::new(&ReportInput::default()).to_table();
        assert!(empty.contains("no peers"), "{empty}");
        assert!(empty.contains("no samples"), "{empty}");
        assert!(
            empty.contains("seeder CPU              not measured"),
            "{empty}"
        );
    }

    #[test]
    fn json_shape() {
        let (r, _) = sample_report();
        let j = r.to_json();
        assert_eq!(j["bytes"], json!(2u64 << 30));
        assert!(close(j["wall_s"].as_f64().unwrap(), 10.0));
        assert!(close(
            j["goodput_mb_per_s"].as_f64().unwrap(),
            r.goodput_mb_s
        ));
        assert_eq!(j["peers"]["count"], json!(2));
        assert!(close(j["peers"]["jain_index"].as_f64().unwrap(), 0.9));
        assert!(close(
            j["peers"]["rate_max_mb_per_s"].as_f64().unwrap(),
            (1u64 << 30) as f64 / 5.0 / 1e6
        ));
        assert_eq!(j["latency"]["samples"], json!(100));
        let p50 = j["latency"]["p50_ms"].as_f64().unwrap();
        assert!((p50 - 50.0).abs() < 1.0, "{p50}");
        assert!(close(j["seeder"]["cpu_system_s"].as_f64().unwrap(), 4.0));
        assert!(close(
            j["seeder"]["cpu_user_s_per_gib"].as_f64().unwrap(),
            1.0
        ));
        assert_eq!(j["seeder"]["peak_rss_bytes"], json!(64u64 << 20));
        assert_eq!(j["loadgen"]["peak_rss_bytes"], Value::Null);
        let e = Report::new(&ReportInput::default()).to_json();
        assert_eq!(e["seeder"], Value::Null);
        assert_eq!(e["latency"]["p99_ms"], Value::Null);
        assert_eq!(e["peers"]["count"], json!(0));
    }

    #[test]
    fn human_durations() {
        assert_eq!(human_duration(Duration::from_nanos(999)), "999 ns");
        assert_eq!(human_duration(Duration::from_micros(12)), "12.0 µs");
        assert_eq!(human_duration(Duration::from_micros(1500)), "1.50 ms");
        assert_eq!(human_duration(Duration::from_millis(2500)), "2.500 s");
    }
}

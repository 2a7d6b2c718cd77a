//! Which path a shard sends cached blocks to plaintext peers on: the read
//! path (read into a pool buffer, send from it: two kernel copies, two
//! io_uring ops) or the splice path (`splice.rs`: no copy, a few syscalls
//! on the shard per job). Neither is cheaper everywhere: measured on
//! loopback, splicing took 1.3x to 1.9x less CPU per byte than copying
//! with libtorrent and aria2c leechers, and 1.2x to 1.5x more with the
//! bench's own load generator as the receiver under BBR, where TCP's
//! spurious tail-loss probes and paced sending cost more on the splice
//! path (under cubic it moved 1.6-1.9x the bytes there at the same or
//! half the CPU per byte; docs/benchmarks.md). So in
//! `auto` mode the shard measures: after [`WARMUP`] on the copy path it
//! runs each path for [`PROBE_WINDOW`], compares its own CPU time per byte
//! sent, keeps the cheaper for [`HOLD_FIRST`] (twice as long after each
//! round, up to [`HOLD`]), then measures again.
//!
//! Policy only: the shard feeds it the time, its thread's CPU time and the
//! bytes it has sent, and asks which path to take (no IO here).

use std::time::Duration;

/// How long each path runs while it is measured, settling included.
pub const PROBE_WINDOW: Duration = Duration::from_millis(1000);
/// The first part of each probe window is not measured: bytes handed to
/// the sockets just after a switch were largely paid for (or not yet) by
/// the path before, as socket buffers fill and drain.
pub const PROBE_SETTLE: Duration = Duration::from_millis(300);
const _: () = assert!(PROBE_SETTLE.as_millis() * 2 <= PROBE_WINDOW.as_millis());
/// How long the cheaper path is kept before both are measured again, at
/// most: the first hold lasts [`HOLD_FIRST`], each next one twice as long
/// up to this.
pub const HOLD: Duration = Duration::from_secs(30);
/// The first hold: a round measured while peers were still ramping up
/// (both paths cost about the same then) is soon measured again.
pub const HOLD_FIRST: Duration = Duration::from_secs(4);
/// Copy, the path a shard starts on, runs this long with traffic (at least
/// [`PROBE_BYTES_MIN`] sent in it) before the first round of probes:
/// connections ramp up first.
pub const WARMUP: Duration = Duration::from_secs(2);
/// Bytes a probe window must carry to count (below it the traffic is too
/// small for the path to matter, and the window starts over).
pub const PROBE_BYTES_MIN: u64 = 16 * 1024 * 1024;
/// A path must be this much cheaper (per mille) to replace the one held.
pub const SWITCH_MARGIN_PER_MILLE: u64 = 50;

/// What the operator asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SendPathMode {
    /// Read into a buffer, send from it, always (the default: see
    /// docs/benchmarks.md, "The splice send path", for why not `Auto`).
    #[default]
    Copy,
    /// Splice whatever the splice path can take.
    Splice,
    /// Measure both and keep the cheaper.
    Auto,
}

impl std::str::FromStr for SendPathMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "copy" => Ok(SendPathMode::Copy),
            "splice" => Ok(SendPathMode::Splice),
            "auto" => Ok(SendPathMode::Auto),
            _ => Err(format!("send path must be copy, splice or auto, not {s:?}")),
        }
    }
}

/// One of the two paths.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Path {
    Copy,
    Splice,
}

impl Path {
    fn other(self) -> Path {
        match self {
            Path::Copy => Path::Splice,
            Path::Splice => Path::Copy,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum State {
    /// Always this path.
    Fixed(Path),
    /// Measuring `path` since `since`, from these counters; `first` is the
    /// other path's cost (CPU ns per MB, 1e6 bytes) when it was
    /// measured just before.
    Probe {
        path: Path,
        since: Duration,
        /// Past `PROBE_SETTLE`: `cpu0` and `bytes0` are where measuring
        /// started.
        settled: bool,
        cpu0: Duration,
        bytes0: u64,
        first: Option<u64>,
        /// The path held before this round of probes (kept on a tie).
        held: Path,
    },
    /// Keeping `path` until `until`.
    Hold { path: Path, until: Duration },
    /// On the copy path until `until`, counting bytes from `bytes0`.
    Warmup { until: Duration, bytes0: u64 },
}

/// The send-path chooser of one shard.
#[derive(Debug, Clone)]
pub struct SendPathTuner {
    state: State,
    /// Rounds of probes that chose splice and copy (for reports and tests).
    pub chose: [u32; 2],
}

impl SendPathTuner {
    /// The hold after `rounds` rounds of probes.
    fn hold(rounds: u32) -> Duration {
        HOLD_FIRST
            .saturating_mul(
                1u32.checked_shl(rounds.saturating_sub(1))
                    .unwrap_or(u32::MAX),
            )
            .min(HOLD)
    }
}

impl SendPathTuner {
    /// `splice_usable`: the shard has what the splice path needs (kernel,
    /// pipes). `now`, `cpu`, `bytes`: the clock, the thread's CPU time and
    /// the bytes sent so far.
    pub fn new(
        mode: SendPathMode,
        splice_usable: bool,
        now: Duration,
        cpu: Duration,
        bytes: u64,
    ) -> SendPathTuner {
        let state = match (mode, splice_usable) {
            (SendPathMode::Copy, _) | (_, false) => State::Fixed(Path::Copy),
            (SendPathMode::Splice, true) => State::Fixed(Path::Splice),
            // Copy first: the path the shard had before splicing existed.
            (SendPathMode::Auto, true) => State::Warmup {
                until: now + WARMUP,
                bytes0: bytes,
            },
        };
        let _ = cpu;
        SendPathTuner {
            state,
            chose: [0; 2],
        }
    }

    /// Whether jobs may take the splice path now.
    pub fn splice(&self) -> bool {
        let path = match self.state {
            State::Fixed(p) | State::Probe { path: p, .. } | State::Hold { path: p, .. } => p,
            State::Warmup { .. } => Path::Copy,
        };
        path == Path::Splice
    }

    /// When [`SendPathTuner::on_tick`] wants to run next (`Duration::MAX`:
    /// never).
    pub fn next_at(&self) -> Duration {
        match self.state {
            State::Fixed(_) => Duration::MAX,
            State::Probe {
                since,
                settled: false,
                ..
            } => since + PROBE_SETTLE,
            State::Probe { since, .. } => since + PROBE_WINDOW,
            State::Hold { until, .. } | State::Warmup { until, .. } => until,
        }
    }

    /// Moves on once `next_at` has come; returns the choice when a round of
    /// probes ended (for the log).
    pub fn on_tick(&mut self, now: Duration, cpu: Duration, bytes: u64) -> Option<Choice> {
        if now < self.next_at() {
            return None;
        }
        let mut choice = None;
        self.state = match self.state {
            State::Fixed(p) => State::Fixed(p),
            State::Warmup { bytes0, .. } if bytes.saturating_sub(bytes0) < PROBE_BYTES_MIN => {
                // No traffic yet: the warm-up starts over.
                State::Warmup {
                    until: now + WARMUP,
                    bytes0: bytes,
                }
            }
            State::Warmup { .. } => State::Probe {
                path: Path::Splice,
                since: now,
                settled: false,
                cpu0: cpu,
                bytes0: bytes,
                first: None,
                held: Path::Copy,
            },
            State::Hold { path, .. } => State::Probe {
                path: path.other(),
                since: now,
                settled: false,
                cpu0: cpu,
                bytes0: bytes,
                first: None,
                held: path,
            },
            State::Probe {
                path,
                since,
                settled: false,
                first,
                held,
                ..
            } => State::Probe {
                path,
                since,
                settled: true,
                cpu0: cpu,
                bytes0: bytes,
                first,
                held,
            },
            State::Probe {
                path,
                cpu0,
                bytes0,
                first,
                held,
                ..
            } => {
                let moved = bytes.saturating_sub(bytes0);
                if moved < PROBE_BYTES_MIN {
                    // Too little traffic to tell: measure this path again.
                    State::Probe {
                        path,
                        since: now,
                        settled: false,
                        cpu0: cpu,
                        bytes0: bytes,
                        first,
                        held,
                    }
                } else {
                    let spent = cpu.saturating_sub(cpu0).as_nanos();
                    let cost = u64::try_from(spent.saturating_mul(1_000_000) / u128::from(moved))
                        .unwrap_or(u64::MAX);
                    match first {
                        None => State::Probe {
                            path: path.other(),
                            since: now,
                            settled: false,
                            cpu0: cpu,
                            bytes0: bytes,
                            first: Some(cost),
                            held,
                        },
                        Some(other_cost) => {
                            let best = choose(path, cost, path.other(), other_cost, held);
                            self.chose[usize::from(best == Path::Copy)] += 1;
                            let (splice, copy) = match path {
                                Path::Splice => (cost, other_cost),
                                Path::Copy => (other_cost, cost),
                            };
                            choice = Some(Choice {
                                splice_ns_per_mb: splice,
                                copy_ns_per_mb: copy,
                                path: best,
                            });
                            State::Hold {
                                path: best,
                                until: now + Self::hold(self.chose[0] + self.chose[1]),
                            }
                        }
                    }
                }
            }
        };
        choice
    }
}

/// What a round of probes found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Choice {
    /// CPU nanoseconds per MB sent (1e6 bytes) on each path.
    pub splice_ns_per_mb: u64,
    pub copy_ns_per_mb: u64,
    pub path: Path,
}

/// The cheaper of two measured paths; the one held before wins unless the
/// other is cheaper by more than the margin.
fn choose(a: Path, a_cost: u64, b: Path, b_cost: u64, held: Path) -> Path {
    let (held_cost, other, other_cost) = if a == held {
        (a_cost, b, b_cost)
    } else {
        (b_cost, a, a_cost)
    };
    let margin = held_cost / 1000 * SWITCH_MARGIN_PER_MILLE;
    if other_cost.saturating_add(margin) < held_cost {
        other
    } else {
        held
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1024 * 1024;
    const STEP: Duration = Duration::from_millis(100);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Drives a tuner whose splice path costs `splice_ns` and copy path
    /// `copy_ns` of CPU per MiB, at `mib` MiB per 100 ms step, for `steps`
    /// steps; returns the path taken in each.
    fn drive(
        t: &mut SendPathTuner,
        splice_ns: u64,
        copy_ns: u64,
        mib: u64,
        steps: u32,
    ) -> Vec<Path> {
        let (mut now, mut cpu, mut bytes) = (Duration::ZERO, Duration::ZERO, 0u64);
        let mut seen = Vec::new();
        for _ in 0..steps {
            let path = if t.splice() { Path::Splice } else { Path::Copy };
            seen.push(path);
            let per_mib = if path == Path::Splice {
                splice_ns
            } else {
                copy_ns
            };
            now += STEP;
            cpu += Duration::from_nanos(per_mib * mib);
            bytes += mib * MIB;
            t.on_tick(now, cpu, bytes);
        }
        seen
    }

    #[test]
    fn auto_keeps_the_cheaper_path_and_measures_again_after_the_hold() {
        let step_ms = STEP.as_millis() as usize;
        let warmup = WARMUP.as_millis() as usize / step_ms;
        let window = PROBE_WINDOW.as_millis() as usize / step_ms;
        let steps = 3000; // 300 s
        let mut t = SendPathTuner::new(SendPathMode::Auto, true, ms(0), ms(0), 0);
        assert!(!t.splice(), "copy first");
        let seen = drive(&mut t, 300_000, 600_000, 20, steps);
        assert!(seen[..warmup].iter().all(|p| *p == Path::Copy), "{seen:?}");
        assert!(seen[warmup..warmup + window]
            .iter()
            .all(|p| *p == Path::Splice));
        assert!(seen[warmup + window..warmup + 2 * window]
            .iter()
            .all(|p| *p == Path::Copy));
        assert_eq!(seen[warmup + 2 * window], Path::Splice, "splice chosen");
        // Rounds end at 4, 10, 20, 38 s, then every 32 s (hold and probes):
        // 12 in 300 s.
        assert_eq!(t.chose, [12, 0]);
        let copies = seen.iter().filter(|p| **p == Path::Copy).count();
        assert_eq!(copies, warmup + 12 * window);
        let mut t = SendPathTuner::new(SendPathMode::Auto, true, ms(0), ms(0), 0);
        let seen = drive(&mut t, 700_000, 400_000, 20, steps);
        assert_eq!(t.chose, [0, 12]);
        let splices = seen.iter().filter(|p| **p == Path::Splice).count();
        assert_eq!(splices, 12 * window, "one probe window of splice per round");
    }

    #[test]
    fn holds_double_up_to_the_longest() {
        assert_eq!(SendPathTuner::hold(1), HOLD_FIRST);
        assert_eq!(SendPathTuner::hold(2), HOLD_FIRST * 2);
        assert_eq!(SendPathTuner::hold(3), HOLD_FIRST * 4);
        assert_eq!(SendPathTuner::hold(4), HOLD);
        assert_eq!(SendPathTuner::hold(1000), HOLD);
    }

    #[test]
    fn a_small_difference_keeps_the_path_held() {
        assert_eq!(
            choose(Path::Splice, 980, Path::Copy, 1000, Path::Copy),
            Path::Copy
        );
        assert_eq!(
            choose(Path::Splice, 900, Path::Copy, 1000, Path::Copy),
            Path::Splice
        );
        assert_eq!(
            choose(Path::Copy, 980, Path::Splice, 1000, Path::Splice),
            Path::Splice
        );
    }

    #[test]
    fn too_little_traffic_measures_the_same_path_again() {
        let mut t = SendPathTuner::new(SendPathMode::Auto, true, ms(0), ms(0), 0);
        assert_eq!(t.next_at(), WARMUP);
        // No traffic in the warm-up: it starts over.
        t.on_tick(WARMUP, ms(1), MIB);
        assert!(!t.splice());
        assert_eq!(t.next_at(), WARMUP * 2);
        let w = WARMUP * 2;
        t.on_tick(w, ms(1), 100 * MIB);
        assert!(t.splice(), "splice measured first");
        assert_eq!(t.next_at(), w + PROBE_SETTLE);
        t.on_tick(w + PROBE_SETTLE, ms(1), 101 * MIB);
        assert_eq!(t.next_at(), w + PROBE_WINDOW, "settled, measuring");
        t.on_tick(w + PROBE_WINDOW, ms(2), 102 * MIB);
        assert!(t.splice(), "still measuring splice");
        assert_eq!(t.next_at(), w + PROBE_WINDOW + PROBE_SETTLE, "a new window");
        t.on_tick(w + PROBE_WINDOW + PROBE_SETTLE, ms(3), 103 * MIB);
        t.on_tick(w + PROBE_WINDOW * 2, ms(100), 303 * MIB);
        assert!(!t.splice(), "then copy");
    }

    #[test]
    fn fixed_modes_and_a_kernel_without_the_splice_path_never_change() {
        for (mode, usable, splice) in [
            (SendPathMode::Copy, true, false),
            (SendPathMode::Splice, true, true),
            (SendPathMode::Auto, false, false),
            (SendPathMode::Splice, false, false),
        ] {
            let mut t = SendPathTuner::new(mode, usable, ms(0), ms(0), 0);
            assert_eq!(t.next_at(), Duration::MAX);
            t.on_tick(Duration::from_secs(3600), ms(10), 1 << 40);
            assert_eq!(t.splice(), splice, "{mode:?} usable={usable}");
        }
    }

    #[test]
    fn modes_parse() {
        assert_eq!("auto".parse(), Ok(SendPathMode::Auto));
        assert_eq!("copy".parse(), Ok(SendPathMode::Copy));
        assert_eq!("splice".parse(), Ok(SendPathMode::Splice));
        assert!("zero".parse::<SendPathMode>().is_err());
    }
}

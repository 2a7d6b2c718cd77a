//! The shard's peer log: lines about peers (dropped, banned, refused) and
//! tracker failures go to the log (`tracing`), at most `LOG_LINES_MAX` per
//! `LOG_WINDOW`, so a hostile flood cannot fill it; the rest are counted and
//! the count is logged when the window ends.
//!
//! Levels: `info` for what peers do to us (dropped for breaking the
//! protocol, refused), `warn` for what an operator may have to act on (a
//! tracker that fails, a peer banned for sending bad data).

use std::time::Duration;

/// Peer log lines per shard per `LOG_WINDOW`.
pub const LOG_LINES_MAX: u32 = 50;
pub const LOG_WINDOW: Duration = Duration::from_secs(10);

/// A rate-limited log.
#[derive(Debug)]
pub struct PeerLog {
    shard: usize,
    window_start: Duration,
    lines: u32,
    dropped: u64,
}

impl PeerLog {
    pub fn new(shard: usize, now: Duration) -> Self {
        Self {
            shard,
            window_start: now,
            lines: 0,
            dropped: 0,
        }
    }

    /// Logs `line` at `info` unless this window's lines are spent. Returns
    /// whether it was printed.
    pub fn line(&mut self, now: Duration, line: String) -> bool {
        self.at(now, tracing::Level::INFO, line)
    }

    /// As [`PeerLog::line`], at `warn`.
    pub fn warn(&mut self, now: Duration, line: String) -> bool {
        self.at(now, tracing::Level::WARN, line)
    }

    fn at(&mut self, now: Duration, level: tracing::Level, line: String) -> bool {
        if let Some(dropped) = self.roll(now) {
            tracing::info!(
                "{dropped} more peer and tracker lines left out (at most {LOG_LINES_MAX} \
                 per {} s per shard; shard {})",
                LOG_WINDOW.as_secs(),
                self.shard
            );
        }
        if self.lines < LOG_LINES_MAX {
            self.lines += 1;
            if level == tracing::Level::WARN {
                tracing::warn!("{line}");
            } else {
                tracing::info!("{line}");
            }
            true
        } else {
            self.dropped += 1;
            false
        }
    }

    /// Starts a new window when the last one ended; returns the lines the
    /// old one left out, if any.
    fn roll(&mut self, now: Duration) -> Option<u64> {
        if now.saturating_sub(self.window_start) < LOG_WINDOW {
            return None;
        }
        let dropped = std::mem::take(&mut self.dropped);
        self.window_start = now;
        self.lines = 0;
        (dropped > 0).then_some(dropped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_is_cut_to_the_window_and_counted() {
        let mut log = PeerLog::new(0, Duration::ZERO);
        let printed = (0..LOG_LINES_MAX + 30)
            .filter(|i| log.line(Duration::from_millis(u64::from(*i)), format!("line {i}")))
            .count();
        assert_eq!(printed, LOG_LINES_MAX as usize);
        assert_eq!(log.dropped, 30);
        // The next window prints again and reports what was left out.
        assert_eq!(log.roll(LOG_WINDOW + Duration::from_secs(1)), Some(30));
        assert!(log.line(LOG_WINDOW + Duration::from_secs(1), "again".into()));
        assert_eq!(log.roll(LOG_WINDOW * 3), None);
    }
}

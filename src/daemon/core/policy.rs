//! The daemon's policies as plain functions over plain data: which
//! torrents the queue lets run, and which torrents reached a share limit.
//! No session, no clock reads: the core gathers the facts, calls these,
//! and applies the answer.

use crate::daemon::config::{QueueConfig, ShareConfig};
use crate::daemon::record::{Limit, ShareLimits};

/// One torrent as the queue sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueItem {
    /// The user wants it running (not stopped).
    pub started: bool,
    /// Runs whatever the queue says, and takes no place.
    pub forced: bool,
    /// Every piece had: it uploads; else it downloads.
    pub complete: bool,
    /// Being checked (or waiting for a check, or moving): takes no place,
    /// and is left as it is.
    pub busy: bool,
    /// Slower than the thresholds for long enough: with `ignore_slow`, it
    /// runs without taking a place.
    pub slow: bool,
}

/// Whether each torrent should run, in the order given (the queue order:
/// earlier torrents get places first). Torrents not started never run;
/// forced and busy ones always "run" (the core leaves busy ones alone).
pub fn queue_plan(items: &[QueueItem], cfg: &QueueConfig) -> Vec<bool> {
    let mut downloads = 0usize;
    let mut uploads = 0usize;
    let mut total = 0usize;
    let under = |n: usize, max: Option<usize>| max.is_none_or(|m| n < m);
    items
        .iter()
        .map(|t| {
            if !t.started {
                return false;
            }
            if !cfg.enabled || t.forced || t.busy {
                return true;
            }
            let free_ride = cfg.ignore_slow && t.slow;
            let (count, max) = if t.complete {
                (&mut uploads, cfg.max_active_uploads)
            } else {
                (&mut downloads, cfg.max_active_downloads)
            };
            if free_ride {
                return true;
            }
            if under(*count, max) && under(total, cfg.max_active_torrents) {
                *count += 1;
                total += 1;
                true
            } else {
                false
            }
        })
        .collect()
}

/// A seeding torrent's numbers, for the share limits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ShareFacts {
    pub uploaded: u64,
    pub downloaded: u64,
    pub total_length: u64,
    pub seeding_time_s: u64,
}

/// qBittorrent's ratio: uploaded over downloaded, or over the size when
/// less than 1 % of it was downloaded (a torrent added complete).
pub fn ratio(f: &ShareFacts) -> f64 {
    let base = if f.downloaded.saturating_mul(100) < f.total_length {
        f.total_length
    } else {
        f.downloaded
    };
    if base == 0 {
        return 0.0;
    }
    f.uploaded as f64 / base as f64
}

/// Which limit a seeding torrent reached, if any (`"ratio 2.00"`,
/// `"seeding time 60 min"`), its own limits taking precedence over the
/// global ones.
pub fn share_limit_reached(
    f: &ShareFacts,
    own: &ShareLimits,
    global: &ShareConfig,
) -> Option<String> {
    let ratio_max = match own.ratio {
        Limit::Global => global.ratio_limit,
        Limit::Unlimited => None,
        Limit::Value(v) => Some(v),
    };
    let time_max = match own.seeding_time_s {
        Limit::Global => global.seeding_time_limit_s,
        Limit::Unlimited => None,
        Limit::Value(v) => Some(v),
    };
    if let Some(max) = ratio_max {
        if ratio(f) >= max {
            return Some(format!("ratio {:.2} (limit {max:.2})", ratio(f)));
        }
    }
    if let Some(max) = time_max {
        if f.seeding_time_s >= max {
            return Some(format!(
                "seeding time {} min (limit {} min)",
                f.seeding_time_s / 60,
                max / 60
            ));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::config::DaemonConfig;

    fn item(complete: bool) -> QueueItem {
        QueueItem {
            started: true,
            forced: false,
            complete,
            busy: false,
            slow: false,
        }
    }

    fn cfg(down: Option<usize>, up: Option<usize>, total: Option<usize>) -> QueueConfig {
        QueueConfig {
            max_active_downloads: down,
            max_active_uploads: up,
            max_active_torrents: total,
            ..DaemonConfig::default().queue
        }
    }

    #[test]
    fn places_go_in_queue_order_per_kind_and_in_total() {
        let items = [
            item(false),
            item(false),
            item(true),
            item(false),
            item(true),
        ];
        assert_eq!(
            queue_plan(&items, &cfg(Some(2), Some(1), None)),
            [true, true, true, false, false]
        );
        assert_eq!(
            queue_plan(&items, &cfg(Some(2), Some(2), Some(2))),
            [true, true, false, false, false]
        );
        assert_eq!(
            queue_plan(&items, &cfg(None, None, None)),
            [true; 5].to_vec()
        );
        let mut off = cfg(Some(0), Some(0), Some(0));
        off.enabled = false;
        assert_eq!(queue_plan(&items, &off), [true; 5].to_vec());
    }

    #[test]
    fn stopped_never_run_forced_and_busy_and_slow_take_no_place() {
        let mut items = [item(false); 4];
        items[0].started = false;
        items[1].forced = true;
        items[2].busy = true;
        let c = cfg(Some(1), Some(1), Some(1));
        assert_eq!(queue_plan(&items, &c), [false, true, true, true]);
        let mut slow = [item(false), item(false), item(false)];
        slow[0].slow = true;
        assert_eq!(queue_plan(&slow, &c), [true, true, false]);
        let mut keep = c;
        keep.ignore_slow = false;
        assert_eq!(queue_plan(&slow, &keep), [true, false, false]);
    }

    #[test]
    fn ratio_is_over_the_size_when_little_was_downloaded() {
        let f = |up, down| ShareFacts {
            uploaded: up,
            downloaded: down,
            total_length: 1000,
            seeding_time_s: 0,
        };
        assert_eq!(ratio(&f(2000, 0)), 2.0);
        assert_eq!(ratio(&f(2000, 5)), 2.0);
        assert_eq!(ratio(&f(2000, 500)), 4.0);
        assert_eq!(
            ratio(&ShareFacts {
                total_length: 0,
                ..f(5, 0)
            }),
            0.0
        );
    }

    #[test]
    fn own_limits_beat_the_global_ones() {
        let f = ShareFacts {
            uploaded: 3000,
            downloaded: 1000,
            total_length: 1000,
            seeding_time_s: 7200,
        };
        let global = ShareConfig {
            ratio_limit: Some(2.0),
            ..ShareConfig::default()
        };
        let own = ShareLimits::default();
        assert!(share_limit_reached(&f, &own, &global).is_some_and(|s| s.starts_with("ratio 3.00")));
        let unlimited = ShareLimits {
            ratio: Limit::Unlimited,
            ..ShareLimits::default()
        };
        assert_eq!(share_limit_reached(&f, &unlimited, &global), None);
        let higher = ShareLimits {
            ratio: Limit::Value(5.0),
            ..ShareLimits::default()
        };
        assert_eq!(share_limit_reached(&f, &higher, &global), None);
        let time = ShareLimits {
            ratio: Limit::Unlimited,
            seeding_time_s: Limit::Value(3600),
        };
        assert!(share_limit_reached(&f, &time, &global)
            .is_some_and(|s| s.starts_with("seeding time 120 min")));
        assert_eq!(share_limit_reached(&f, &own, &ShareConfig::default()), None);
    }
}

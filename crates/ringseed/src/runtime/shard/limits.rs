//! A shard's side of the rate limits and the global slot budget: the
//! settings ([`LimitsConfig`]), its upload and download [`Limiter`]s, and
//! the round in which it reports its demand on the [`QuotaBoard`], reads
//! everyone's, and sets its share of the global budgets: the global
//! buckets' rates, and its torrents' slot quotas (its slot share split by
//! their `slot_demand`). The queues of peers waiting for tokens live in the
//! shard (they hold its IO types); the policy is in `rate_limit` and
//! `slot_quota`.

use std::time::Duration;

use super::quota_board::QuotaBoard;
use crate::engine::Torrent;
use crate::rate_limit::Limiter;
use crate::slot_quota::{shard_quota, split, GlobalBudget, ShardDemand};

/// How often a shard reports its demand and takes its share. Short, so a
/// shard whose torrents get busy gets its share soon; each round is a few
/// atomic loads and one split per budget.
pub const QUOTA_ROUND: Duration = Duration::from_millis(200);

/// Rate limits and the global slot budget. Every rate in bytes per second,
/// 0 = unlimited (no bucket, no cost); slots 0 = no global cap.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LimitsConfig {
    /// All torrents' upload together (shared among shards by demand).
    pub upload_rate: u64,
    /// All torrents' download together (shared among shards by demand).
    pub download_rate: u64,
    /// Each torrent's upload.
    pub torrent_upload_rate: u64,
    /// Each torrent's download.
    pub torrent_download_rate: u64,
    /// Regular upload slots of all torrents together.
    pub upload_slots: u64,
}

impl LimitsConfig {
    fn budget(&self) -> GlobalBudget {
        GlobalBudget {
            upload_slots: self.upload_slots,
            upload_rate: self.upload_rate,
            download_rate: self.download_rate,
        }
    }
}

/// One shard's limiters and its place on the board.
pub struct ShardLimits {
    budget: GlobalBudget,
    board: QuotaBoard,
    index: usize,
    pub up: Limiter,
    pub down: Limiter,
    next_round: Duration,
}

impl ShardLimits {
    /// Before the first round each shard takes an equal share of the
    /// global rates.
    /// Torrents get their own buckets as they start (`set_torrent_rate`).
    pub fn new(
        config: &LimitsConfig,
        board: QuotaBoard,
        index: usize,
        now: Duration,
    ) -> ShardLimits {
        let shards = board.shards().max(1) as u64;
        let share = |rate: u64| if rate == 0 { 0 } else { (rate / shards).max(1) };
        ShardLimits {
            budget: config.budget(),
            index,
            up: Limiter::new(share(config.upload_rate), 0, 0, now),
            down: Limiter::new(share(config.download_rate), 0, 0, now),
            board,
            next_round: now,
        }
    }

    /// New global limits at run time: the global buckets are made again
    /// (an equal share until the next round); the per-torrent buckets are
    /// set by the shard, torrent by torrent.
    pub fn apply(&mut self, config: &LimitsConfig, now: Duration) {
        let fresh = ShardLimits::new(config, self.board.clone(), self.index, now);
        self.budget = fresh.budget;
        self.up.replace_global(fresh.up);
        self.down.replace_global(fresh.down);
        self.next_round = now;
    }

    /// Nothing global to share: no round is needed.
    pub fn has_global(&self) -> bool {
        !self.budget.is_unlimited()
    }

    /// Whether a round is due at `now`.
    pub fn due(&self, now: Duration) -> bool {
        self.has_global() && now >= self.next_round
    }

    /// Runs a round if one is due: report this shard's demand, read
    /// everyone's, apply its shares to the global buckets and to
    /// `torrents`' slot quotas (split by their slot demand).
    pub fn round(&mut self, now: Duration, torrents: &mut [&mut Torrent]) {
        if !self.due(now) {
            return;
        }
        self.next_round = now + QUOTA_ROUND;
        let demands: Vec<u64> = torrents.iter().map(|t| t.slot_demand() as u64).collect();
        let downloading = torrents
            .iter()
            .filter(|t| !t.is_finished())
            .map(|t| t.stats().peers as u64)
            .sum::<u64>();
        let mine = ShardDemand {
            upload: demands.iter().sum::<u64>().min(u64::from(u32::MAX)) as u32,
            download: downloading.min(u64::from(u32::MAX)) as u32,
        };
        self.board.publish(self.index, mine);
        let quota = shard_quota(&self.budget, &self.board.read(), self.index);
        if let Some(rate) = quota.upload_rate {
            self.up.set_global_rate(now, rate.max(1));
        }
        if let Some(rate) = quota.download_rate {
            self.down.set_global_rate(now, rate.max(1));
        }
        if let Some(slots) = quota.upload_slots {
            for (t, q) in torrents.iter_mut().zip(split(slots, &demands)) {
                t.set_slot_quota(Some(q as usize));
            }
        }
    }

    /// Makes the next round due now (a torrent started: it takes its share
    /// of the global slots before any peer can be unchoked without one).
    pub fn round_due_now(&mut self, now: Duration) {
        self.next_round = self.next_round.min(now);
    }

    /// When the next round is due (`None`: never).
    pub fn next_round(&self) -> Option<Duration> {
        self.has_global().then_some(self.next_round)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{EngineSettings, TorrentSetup};
    use crate::info_hash::InfoHash;
    use crate::torrent::Bitfield;

    /// A seeding torrent of 4 pieces with no peers.
    fn torrent(n: u8) -> Torrent {
        let mut have = Bitfield::new(4).unwrap();
        for i in 0..4 {
            have.set(i).unwrap();
        }
        let setup = TorrentSetup {
            info_hash: InfoHash([n; 20]),
            piece_length: 16 * 1024,
            total_length: 64 * 1024,
            piece_hashes: vec![[0u8; 20]; 4].into(),
            have,
            peer_id: [1; 20],
            listen_port: 6881,
            listen_addrs: Vec::new(),
            has_trackers: false,
            download: false,
            rng_seed: u64::from(n),
            metadata: None,
            pex: false,
        };
        Torrent::new(setup, EngineSettings::default(), Duration::ZERO).unwrap()
    }

    #[test]
    fn a_round_splits_the_shards_slots_among_its_torrents() {
        let config = LimitsConfig {
            upload_slots: 10,
            ..LimitsConfig::default()
        };
        let (mut a, mut b) = (torrent(1), torrent(2));
        assert_eq!(a.slot_quota(), None);
        let board = QuotaBoard::new(1);
        let mut l = ShardLimits::new(&config, board.clone(), 0, Duration::ZERO);
        assert!(l.due(Duration::ZERO));
        l.round(Duration::ZERO, &mut [&mut a, &mut b]);
        // Nobody asks: the one shard takes all 10, its two torrents 5 each.
        assert_eq!(a.slot_quota(), Some(5));
        assert_eq!(b.slot_quota(), Some(5));
        assert_eq!(board.read()[0], ShardDemand::default());
        assert!(!l.due(Duration::from_millis(100)));
    }

    #[test]
    fn a_shard_without_demand_gets_no_slots_while_another_asks() {
        let config = LimitsConfig {
            upload_slots: 10,
            ..LimitsConfig::default()
        };
        let board = QuotaBoard::new(2);
        board.publish(
            1,
            ShardDemand {
                upload: 5,
                download: 0,
            },
        );
        let mut a = torrent(1);
        let mut l = ShardLimits::new(&config, board, 0, Duration::ZERO);
        l.round(Duration::ZERO, &mut [&mut a]);
        // A quota of 0 is a floor of 1 in the torrent once a peer asks.
        assert_eq!(a.slot_quota(), Some(0));
    }

    #[test]
    fn unlimited_config_has_no_buckets_and_no_rounds() {
        let l = ShardLimits::new(
            &LimitsConfig::default(),
            QuotaBoard::new(2),
            0,
            Duration::ZERO,
        );
        assert!(l.up.is_unlimited());
        assert!(l.down.is_unlimited());
        assert!(!l.has_global());
        assert_eq!(l.next_round(), None);
    }

    #[test]
    fn global_rates_start_split_equally_among_shards() {
        let config = LimitsConfig {
            upload_rate: 4_000_000,
            download_rate: 1_000_000,
            torrent_upload_rate: 500_000,
            ..LimitsConfig::default()
        };
        let mut l = ShardLimits::new(&config, QuotaBoard::new(4), 1, Duration::ZERO);
        assert_eq!(l.up.global_rate(), Some(1_000_000));
        assert_eq!(l.down.global_rate(), Some(250_000));
        assert!(l.up.is_limited(1));
        // New limits at run time: off, then on again.
        l.apply(&LimitsConfig::default(), Duration::ZERO);
        assert!(!l.has_global() && l.up.is_unlimited());
        l.apply(&config, Duration::ZERO);
        assert_eq!(l.up.global_rate(), Some(1_000_000));
        assert!(l.has_global());
        assert_eq!(l.next_round(), Some(Duration::ZERO));
    }

    #[test]
    fn a_round_with_no_torrents_takes_a_share_of_an_idle_board() {
        let config = LimitsConfig {
            upload_rate: 3_000_000,
            ..LimitsConfig::default()
        };
        let board = QuotaBoard::new(2);
        board.publish(
            1,
            ShardDemand {
                upload: 5,
                download: 0,
            },
        );
        let mut l = ShardLimits::new(&config, board, 0, Duration::ZERO);
        l.round(Duration::ZERO, &mut []);
        // Shard 0 reports no demand; shard 1 wants 5: shard 0 keeps the
        // floor of 1 byte/s.
        assert_eq!(l.up.global_rate(), Some(1));
        assert_eq!(l.next_round(), Some(QUOTA_ROUND));
        // Not due yet: nothing changes.
        l.round(Duration::from_millis(10), &mut []);
        assert_eq!(l.next_round(), Some(QUOTA_ROUND));
    }
}

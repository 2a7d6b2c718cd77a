//! `QuotaBoard`: how shards share the global budgets without a lock. One
//! atomic cell per shard, written only by that shard (its packed
//! [`ShardDemand`]); every shard reads all cells each round and computes
//! its own share with the pure `slot_quota::shard_quota`, so all shards
//! agree up to one round's staleness.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::slot_quota::ShardDemand;

/// The shared cells; cheap to clone (one `Arc`).
#[derive(Debug, Clone)]
pub struct QuotaBoard {
    cells: Arc<[AtomicU64]>,
}

impl QuotaBoard {
    /// A board for `shards` shards, every demand zero.
    pub fn new(shards: usize) -> QuotaBoard {
        QuotaBoard {
            cells: (0..shards).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    pub fn shards(&self) -> usize {
        self.cells.len()
    }

    /// Shard `shard` reports its demand (a shard past the board is ignored).
    pub fn publish(&self, shard: usize, demand: ShardDemand) {
        if let Some(c) = self.cells.get(shard) {
            // Relaxed: each cell is one self-contained value, and a round
            // late is fine.
            c.store(demand.pack(), Ordering::Relaxed);
        }
    }

    /// Every shard's latest report, by shard index.
    pub fn read(&self) -> Vec<ShardDemand> {
        self.cells
            .iter()
            .map(|c| ShardDemand::unpack(c.load(Ordering::Relaxed)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_shard_sees_every_report() {
        let board = QuotaBoard::new(3);
        let other = board.clone();
        assert_eq!(board.shards(), 3);
        board.publish(
            1,
            ShardDemand {
                upload: 4,
                download: 2,
            },
        );
        other.publish(9, ShardDemand::default());
        let seen = other.read();
        assert_eq!(seen.len(), 3);
        assert_eq!(seen[0], ShardDemand::default());
        assert_eq!(seen[1].upload, 4);
        assert_eq!(seen[1].download, 2);
    }

    #[test]
    fn reports_from_threads_are_seen() {
        let board = QuotaBoard::new(4);
        let handles: Vec<_> = (0..4)
            .map(|i| {
                let b = board.clone();
                std::thread::spawn(move || {
                    b.publish(
                        i,
                        ShardDemand {
                            upload: i as u32 + 1,
                            download: 0,
                        },
                    )
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        let ups: Vec<u32> = board.read().iter().map(|d| d.upload).collect();
        assert_eq!(ups, vec![1, 2, 3, 4]);
    }
}

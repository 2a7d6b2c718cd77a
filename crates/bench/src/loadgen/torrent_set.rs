//! A leech run over several torrents (issue 4): which payload seed each
//! torrent was made from, how the synthetic peers are spread over the
//! torrents, and the per-torrent totals of a run.
//!
//! Rules (documented in docs/swarm_bench.md):
//! - `make-torrent --count T --payload-seed S` makes torrents named
//!   [`bench_name`]`(S + i, size)` for i in 0..T, so a torrent's payload seed
//!   is read back from its name ([`seed_from_name`]); a torrent whose name
//!   has another form uses the base seed plus its index in the order given
//!   ([`payload_seed`]). The caller checks the result against the torrent's
//!   piece hashes.
//! - Peer `i` of K downloads torrent `i % T` ([`torrent_of_peer`]): every
//!   torrent gets `K / T` or `K / T + 1` peers, and consecutive peers (which
//!   the driver puts on different threads) go to different torrents.
//!
//! Pure: names, numbers and counts in, values out.

use thiserror::Error;

/// Most torrents one leech run (or one `make-torrent --count`) handles.
pub const TORRENTS_MAX: usize = 10_000;
/// Prefix of the names `make-torrent` gives its torrents.
pub const NAME_PREFIX: &str = "ringseed-bench-";

/// Why a set of torrents or a peer spread was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TorrentSetError {
    #[error("{found} torrents is out of range: expected 1 to {max}")]
    TorrentCount { found: usize, max: usize },
    #[error("{peers} peers for {torrents} torrents: every torrent needs at least one peer")]
    TooFewPeers { peers: u64, torrents: usize },
    #[error("{peers} peers is over the limit of {max}")]
    TooManyPeers { peers: u64, max: u64 },
    #[error("give either a total peer count or a count per torrent, not both")]
    PeersTwice,
    #[error("payload seeds {base} + {count} overflow 64 bits")]
    SeedOverflow { base: u64, count: usize },
}

/// The name `make-torrent` gives the payload of `seed` and `size` bytes.
pub fn bench_name(seed: u64, size: u64) -> String {
    format!("{NAME_PREFIX}{seed}-{size}")
}

/// The payload seed in a [`bench_name`] whose size part is `total_length`;
/// `None` for any other name.
pub fn seed_from_name(name: &str, total_length: u64) -> Option<u64> {
    let rest = name.strip_prefix(NAME_PREFIX)?;
    let (seed, size) = rest.split_once('-')?;
    let plain = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !plain(seed) || !plain(size) {
        return None;
    }
    (size.parse::<u64>().ok()? == total_length).then_some(())?;
    seed.parse().ok()
}

/// The payload seed of torrent `index` (its place in the order given):
/// from its name when [`seed_from_name`] reads one, else `base + index`
/// (`None` when that overflows).
pub fn payload_seed(name: &str, total_length: u64, base: u64, index: usize) -> Option<u64> {
    seed_from_name(name, total_length).or_else(|| base.checked_add(u64::try_from(index).ok()?))
}

/// The seeds `S, S + 1, ..., S + count - 1` of `make-torrent --count`,
/// after checking `count` (1 to [`TORRENTS_MAX`]) and overflow.
pub fn make_seeds(base: u64, count: usize) -> Result<Vec<u64>, TorrentSetError> {
    check_count(count)?;
    let last = u64::try_from(count - 1)
        .ok()
        .and_then(|c| base.checked_add(c));
    if last.is_none() {
        return Err(TorrentSetError::SeedOverflow { base, count });
    }
    Ok((0..count as u64).map(|i| base + i).collect())
}

/// Checks a torrent count: 1 to [`TORRENTS_MAX`].
pub fn check_count(torrents: usize) -> Result<(), TorrentSetError> {
    if (1..=TORRENTS_MAX).contains(&torrents) {
        Ok(())
    } else {
        Err(TorrentSetError::TorrentCount {
            found: torrents,
            max: TORRENTS_MAX,
        })
    }
}

/// The total peer count from `--peers K` (the total) or
/// `--peers-per-torrent N` (K = N x torrents); neither: one per torrent.
/// At least one peer per torrent and at most `peers_max` in all.
pub fn total_peers(
    torrents: usize,
    peers: Option<u32>,
    per_torrent: Option<u32>,
    peers_max: u32,
) -> Result<u32, TorrentSetError> {
    check_count(torrents)?;
    let t = torrents as u64;
    let k: u64 = match (peers, per_torrent) {
        (Some(_), Some(_)) => return Err(TorrentSetError::PeersTwice),
        (Some(k), None) => k.into(),
        (None, Some(n)) => u64::from(n).saturating_mul(t),
        (None, None) => t,
    };
    if k > u64::from(peers_max) {
        return Err(TorrentSetError::TooManyPeers {
            peers: k,
            max: peers_max.into(),
        });
    }
    if k < t {
        return Err(TorrentSetError::TooFewPeers { peers: k, torrents });
    }
    u32::try_from(k).map_err(|_| TorrentSetError::TooManyPeers {
        peers: k,
        max: peers_max.into(),
    })
}

/// The torrent peer `peer` downloads, of `torrents` (0 when there are none).
pub fn torrent_of_peer(peer: u32, torrents: usize) -> usize {
    match u32::try_from(torrents) {
        Ok(t) if t > 0 => (peer % t) as usize,
        _ => 0,
    }
}

/// What one torrent's peers did in a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TorrentTotals {
    pub peers: u32,
    pub peers_connected: u32,
    /// Payload bytes received (checked and unchecked).
    pub bytes: u64,
    pub blocks_bad: u64,
}

/// One peer's figures, as [`totals`] takes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerFigures {
    pub torrent: usize,
    pub connected: bool,
    pub bytes: u64,
    pub blocks_bad: u64,
}

/// The per-torrent totals of `torrents` torrents; peers naming a torrent
/// past the last are not counted.
pub fn totals(torrents: usize, peers: impl IntoIterator<Item = PeerFigures>) -> Vec<TorrentTotals> {
    let mut out = vec![TorrentTotals::default(); torrents.min(TORRENTS_MAX)];
    for p in peers {
        if let Some(t) = out.get_mut(p.torrent) {
            t.peers += 1;
            t.peers_connected += u32::from(p.connected);
            t.bytes = t.bytes.saturating_add(p.bytes);
            t.blocks_bad = t.blocks_bad.saturating_add(p.blocks_bad);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_give_back_their_seed() {
        assert_eq!(bench_name(7, 1024), "ringseed-bench-7-1024");
        assert_eq!(seed_from_name(&bench_name(7, 1024), 1024), Some(7));
        assert_eq!(seed_from_name(&bench_name(u64::MAX, 5), 5), Some(u64::MAX));
        // Another size, another form, or junk: no seed.
        assert_eq!(seed_from_name("ringseed-bench-7-1024", 2048), None);
        for bad in [
            "t",
            "ringseed-bench-",
            "ringseed-bench-7",
            "ringseed-bench--1024",
            "ringseed-bench-7-",
            "ringseed-bench-+7-1024",
            "ringseed-bench-7-1024-x",
            "ringseed-bench-x-1024",
            "ringseed-bench-99999999999999999999-1024",
            "other-7-1024",
        ] {
            assert_eq!(seed_from_name(bad, 1024), None, "{bad}");
        }
    }

    #[test]
    fn seeds_come_from_the_name_else_base_plus_index() {
        assert_eq!(payload_seed("ringseed-bench-9-100", 100, 1, 5), Some(9));
        assert_eq!(payload_seed("custom", 100, 1, 5), Some(6));
        assert_eq!(payload_seed("custom", 100, u64::MAX, 0), Some(u64::MAX));
        assert_eq!(payload_seed("custom", 100, u64::MAX, 1), None);
    }

    #[test]
    fn make_seeds_counts_up_and_is_bounded() {
        assert_eq!(make_seeds(7, 3), Ok(vec![7, 8, 9]));
        assert_eq!(make_seeds(u64::MAX, 1), Ok(vec![u64::MAX]));
        assert_eq!(
            make_seeds(u64::MAX, 2),
            Err(TorrentSetError::SeedOverflow {
                base: u64::MAX,
                count: 2
            })
        );
        assert!(matches!(
            make_seeds(1, 0),
            Err(TorrentSetError::TorrentCount { found: 0, .. })
        ));
        assert!(matches!(
            make_seeds(1, TORRENTS_MAX + 1),
            Err(TorrentSetError::TorrentCount { .. })
        ));
        assert_eq!(
            make_seeds(1, TORRENTS_MAX).map(|v| v.len()),
            Ok(TORRENTS_MAX)
        );
    }

    #[test]
    fn peer_totals_from_either_option() {
        assert_eq!(total_peers(1, None, None, 100), Ok(1));
        assert_eq!(total_peers(4, None, None, 100), Ok(4));
        assert_eq!(total_peers(4, Some(10), None, 100), Ok(10));
        assert_eq!(total_peers(4, None, Some(10), 100), Ok(40));
        assert_eq!(
            total_peers(4, Some(10), Some(1), 100),
            Err(TorrentSetError::PeersTwice)
        );
        assert_eq!(
            total_peers(4, Some(3), None, 100),
            Err(TorrentSetError::TooFewPeers {
                peers: 3,
                torrents: 4
            })
        );
        assert_eq!(
            total_peers(4, None, Some(0), 100),
            Err(TorrentSetError::TooFewPeers {
                peers: 0,
                torrents: 4
            })
        );
        assert_eq!(
            total_peers(4, None, Some(26), 100),
            Err(TorrentSetError::TooManyPeers {
                peers: 104,
                max: 100
            })
        );
        assert!(matches!(
            total_peers(2, None, Some(u32::MAX), u32::MAX),
            Err(TorrentSetError::TooManyPeers { .. })
        ));
        assert!(matches!(
            total_peers(0, Some(1), None, 100),
            Err(TorrentSetError::TorrentCount { .. })
        ));
    }

    #[test]
    fn peers_spread_evenly_round_robin() {
        for (k, t) in [(10u32, 3usize), (256, 16), (2000, 200), (7, 7), (5, 1)] {
            let mut counts = vec![0u32; t];
            for i in 0..k {
                counts[torrent_of_peer(i, t)] += 1;
            }
            let (lo, hi) = (k / t as u32, k.div_ceil(t as u32));
            assert!(counts.iter().all(|c| (lo..=hi).contains(c)), "{k} {t}");
        }
        assert_eq!(torrent_of_peer(5, 3), 2);
        assert_eq!(torrent_of_peer(5, 0), 0);
    }

    #[test]
    fn totals_add_up_per_torrent() {
        let p = |torrent, connected, bytes, blocks_bad| PeerFigures {
            torrent,
            connected,
            bytes,
            blocks_bad,
        };
        let t = totals(
            2,
            [
                p(0, true, 10, 0),
                p(1, false, 0, 0),
                p(0, true, 5, 1),
                p(7, true, 99, 9),
            ],
        );
        assert_eq!(
            t,
            vec![
                TorrentTotals {
                    peers: 2,
                    peers_connected: 2,
                    bytes: 15,
                    blocks_bad: 1
                },
                TorrentTotals {
                    peers: 1,
                    peers_connected: 0,
                    bytes: 0,
                    blocks_bad: 0
                },
            ]
        );
    }
}

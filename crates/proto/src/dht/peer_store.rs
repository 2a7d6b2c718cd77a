//! The peers other nodes announced to us (`announce_peer`), handed out in
//! `get_peers` answers.
//!
//! Boundary: memory only; the caller passes `now` and an [`Rng`].
//!
//! Rules, decided on purpose:
//! - at most [`PEER_STORE_HASHES_MAX`] info-hashes and
//!   [`PEER_STORE_PEERS_PER_HASH_MAX`] peers per hash; a new hash when full
//!   is refused (announcers retry; the store does not churn under a flood),
//!   a new peer for a full hash replaces the entry that expires first;
//! - an entry expires [`PEER_TTL`] after its last announce;
//! - an answer carries at most [`PEERS_PER_ANSWER_MAX`] peers, chosen at
//!   random when there are more (so one UDP datagram fits them).

use std::collections::HashMap;
use std::net::SocketAddrV4;
use std::time::Duration;

use crate::rng::Rng;
use crate::InfoHash;

/// How long an announced peer is kept.
pub const PEER_TTL: Duration = Duration::from_secs(30 * 60);
/// Most info-hashes stored.
pub const PEER_STORE_HASHES_MAX: usize = 2_000;
/// Most peers stored per info-hash.
pub const PEER_STORE_PEERS_PER_HASH_MAX: usize = 200;
/// Most peers in one `get_peers` answer (8 bytes each in bencode).
pub const PEERS_PER_ANSWER_MAX: usize = 50;

const _: () = assert!(PEERS_PER_ANSWER_MAX <= PEER_STORE_PEERS_PER_HASH_MAX);
const _: () = assert!(PEERS_PER_ANSWER_MAX * 8 < super::krpc::DATAGRAM_LEN_MAX / 2);

/// Bounds of one store (defaults: the constants above).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerStoreLimits {
    pub hashes_max: usize,
    pub peers_per_hash_max: usize,
}

impl Default for PeerStoreLimits {
    fn default() -> Self {
        PeerStoreLimits {
            hashes_max: PEER_STORE_HASHES_MAX,
            peers_per_hash_max: PEER_STORE_PEERS_PER_HASH_MAX,
        }
    }
}

/// Announced peers by info-hash, each with its expiry time.
#[derive(Debug, Clone, Default)]
pub struct PeerStore {
    limits: PeerStoreLimits,
    peers: HashMap<InfoHash, Vec<(SocketAddrV4, Duration)>>,
}

impl PeerStore {
    pub fn new(limits: PeerStoreLimits) -> PeerStore {
        PeerStore {
            limits,
            peers: HashMap::new(),
        }
    }

    /// Records `peer` for `info_hash`; false when the store refused it (full).
    pub fn announce(&mut self, now: Duration, info_hash: InfoHash, peer: SocketAddrV4) -> bool {
        let expires = now + PEER_TTL;
        if !self.peers.contains_key(&info_hash) && self.peers.len() >= self.limits.hashes_max {
            self.expire(now);
            if self.peers.len() >= self.limits.hashes_max {
                return false;
            }
        }
        let list = self.peers.entry(info_hash).or_default();
        if let Some(e) = list.iter_mut().find(|(a, _)| *a == peer) {
            e.1 = expires;
            return true;
        }
        if list.len() >= self.limits.peers_per_hash_max {
            list.retain(|(_, exp)| *exp > now);
        }
        if list.len() >= self.limits.peers_per_hash_max {
            if let Some(oldest) = list
                .iter()
                .enumerate()
                .min_by_key(|(_, (_, exp))| *exp)
                .map(|(i, _)| i)
            {
                list.swap_remove(oldest);
            }
        }
        list.push((peer, expires));
        true
    }

    /// Up to [`PEERS_PER_ANSWER_MAX`] live peers for `info_hash`.
    pub fn peers(&self, now: Duration, info_hash: &InfoHash, rng: &mut Rng) -> Vec<SocketAddrV4> {
        let Some(list) = self.peers.get(info_hash) else {
            return Vec::new();
        };
        let mut live: Vec<SocketAddrV4> = list
            .iter()
            .filter(|(_, exp)| *exp > now)
            .map(|(a, _)| *a)
            .collect();
        // Partial Fisher-Yates: the first PEERS_PER_ANSWER_MAX become a random pick.
        let n = live.len();
        for i in 0..n.min(PEERS_PER_ANSWER_MAX) {
            let j = i + rng.below_usize(n - i);
            live.swap(i, j);
        }
        live.truncate(PEERS_PER_ANSWER_MAX);
        live
    }

    /// Drops expired entries and hashes left empty.
    pub fn expire(&mut self, now: Duration) {
        self.peers.retain(|_, list| {
            list.retain(|(_, exp)| *exp > now);
            !list.is_empty()
        });
    }

    /// Info-hashes stored.
    pub fn hashes(&self) -> usize {
        self.peers.len()
    }

    /// Peers stored, all hashes together.
    pub fn peer_count(&self) -> usize {
        self.peers.values().map(Vec::len).sum()
    }
}

//! The session's table of torrents: which id names which info-hash, on
//! which shard, with which save directory. Ids are handed out here (a slot
//! and a generation), before the shard hears of the torrent, and given back
//! only once the shard has let it go, so an id never names two torrents.
//! It also places a new torrent ([`Registry::place`]): on the shard with the
//! fewest torrents, so that torrents split evenly over the shards whatever
//! their info-hashes (each shard then learns the owner of every torrent
//! through `Control::Known` and routes incoming connections by it).
//! Control-plane state: the shards never read it.

use std::collections::HashMap;
use std::path::PathBuf;

use super::settings::TORRENTS_MAX;
use super::types::TorrentId;
use crate::slab::{Slab, SlabError};
use crate::InfoHash;

#[derive(Debug, Clone)]
struct Known {
    info_hash: InfoHash,
    shard: usize,
    save_dir: PathBuf,
}

/// Why an id was not handed out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReserveError {
    Duplicate(TorrentId),
    Full(usize),
}

/// Ids in use.
#[derive(Debug)]
pub struct Registry {
    slab: Slab<TorrentId, Known>,
    by_hash: HashMap<InfoHash, TorrentId>,
    /// Torrents per shard (grown to the highest shard seen).
    per_shard: Vec<usize>,
}

impl Default for Registry {
    fn default() -> Self {
        Registry {
            slab: Slab::new(TORRENTS_MAX),
            by_hash: HashMap::new(),
            per_shard: Vec::new(),
        }
    }
}

impl Registry {
    /// The shard for a new torrent among `shards`: one with the fewest
    /// torrents; of those, the one its info-hash names
    /// (`shard::shard_of`) when it is among them, else the lowest. A
    /// placement by hash alone splits them like coin flips (200 torrents
    /// over 2 shards: one shard's count is 100 +- 7 at one standard deviation).
    pub fn place(&self, info_hash: &InfoHash, shards: usize) -> usize {
        let shards = shards.max(1);
        let count = |s: usize| self.per_shard.get(s).copied().unwrap_or(0);
        let fewest = (0..shards).map(count).min().unwrap_or(0);
        let by_hash = crate::runtime::shard::shard_of(info_hash, shards);
        if count(by_hash) == fewest {
            return by_hash;
        }
        (0..shards).find(|&s| count(s) == fewest).unwrap_or(by_hash)
    }

    /// Torrents placed on `shard`.
    pub fn torrents_on(&self, shard: usize) -> usize {
        self.per_shard.get(shard).copied().unwrap_or(0)
    }

    /// A new id for a torrent on `shard`; refused when its info-hash is in
    /// the session already.
    pub fn reserve(
        &mut self,
        info_hash: InfoHash,
        shard: usize,
        save_dir: PathBuf,
    ) -> Result<TorrentId, ReserveError> {
        if let Some(&id) = self.by_hash.get(&info_hash) {
            return Err(ReserveError::Duplicate(id));
        }
        let id = self
            .slab
            .insert(Known {
                info_hash,
                shard,
                save_dir,
            })
            .map_err(|e| match e {
                SlabError::Full { len } => ReserveError::Full(len),
                _ => ReserveError::Full(self.slab.len()),
            })?;
        self.by_hash.insert(info_hash, id);
        if self.per_shard.len() <= shard {
            self.per_shard.resize(shard + 1, 0);
        }
        if let Some(n) = self.per_shard.get_mut(shard) {
            *n += 1;
        }
        Ok(id)
    }

    /// Gives an id back (the shard let the torrent go, or never took it);
    /// returns its save directory.
    pub fn release(&mut self, id: TorrentId) -> Option<PathBuf> {
        let k = self.slab.remove(id)?;
        self.by_hash.remove(&k.info_hash);
        if let Some(n) = self.per_shard.get_mut(k.shard) {
            *n = n.saturating_sub(1);
        }
        Some(k.save_dir)
    }

    pub fn info_hash(&self, id: TorrentId) -> Option<InfoHash> {
        self.slab.get(id).map(|k| k.info_hash)
    }

    pub fn shard_of(&self, id: TorrentId) -> Option<usize> {
        self.slab.get(id).map(|k| k.shard)
    }

    pub fn by_hash(&self, info_hash: &InfoHash) -> Option<TorrentId> {
        self.by_hash.get(info_hash).copied()
    }

    pub fn ids(&self) -> Vec<TorrentId> {
        self.slab.keys()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_info_hash_has_one_id_and_a_released_id_is_not_reused() {
        let mut r = Registry::default();
        let a = r.reserve(InfoHash([1; 20]), 0, "/a".into()).unwrap();
        assert_eq!(
            r.reserve(InfoHash([1; 20]), 0, "/b".into()),
            Err(ReserveError::Duplicate(a))
        );
        assert_eq!(r.shard_of(a), Some(0));
        assert_eq!(r.release(a), Some(PathBuf::from("/a")));
        assert_eq!(r.shard_of(a), None);
        let b = r.reserve(InfoHash([1; 20]), 1, "/b".into()).unwrap();
        assert_eq!(b.slot, a.slot);
        assert_ne!(b, a);
        assert_eq!(r.by_hash(&InfoHash([1; 20])), Some(b));
        assert_eq!(r.ids(), vec![b]);
        assert_eq!((r.torrents_on(0), r.torrents_on(1)), (0, 1));
    }

    #[test]
    fn torrents_are_placed_on_the_shard_with_the_fewest() {
        let mut r = Registry::default();
        // Info-hashes that all name shard 0 by hash still alternate.
        let hashes: Vec<InfoHash> = (0..=255u8)
            .map(|b| InfoHash([b; 20]))
            .filter(|h| crate::runtime::shard::shard_of(h, 2) == 0)
            .take(6)
            .collect();
        assert_eq!(hashes.len(), 6);
        let mut placed = Vec::new();
        for h in &hashes {
            let s = r.place(h, 2);
            placed.push(s);
            r.reserve(*h, s, "/d".into()).unwrap();
        }
        assert_eq!(placed, vec![0, 1, 0, 1, 0, 1]);
        // A tie goes to the hash's shard.
        let other = (0..=255u8)
            .map(|b| InfoHash([b; 20]))
            .find(|h| crate::runtime::shard::shard_of(h, 2) == 1 && !hashes.contains(h))
            .unwrap();
        assert_eq!(r.place(&other, 2), 1);
        // Releasing evens the counts again.
        let first = r.by_hash(&hashes[0]).unwrap();
        r.release(first);
        assert_eq!(r.place(&other, 2), 0);
        assert_eq!(r.place(&other, 1), 0);
    }
}

//! The session's table of torrents: which id names which info-hash, on
//! which shard, with which save directory. Ids are handed out here (a slot
//! and a generation), before the shard hears of the torrent, and given back
//! only once the shard has let it go, so an id never names two torrents.
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
}

impl Default for Registry {
    fn default() -> Self {
        Registry {
            slab: Slab::new(TORRENTS_MAX),
            by_hash: HashMap::new(),
        }
    }
}

impl Registry {
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
        Ok(id)
    }

    /// Gives an id back (the shard let the torrent go, or never took it);
    /// returns its save directory.
    pub fn release(&mut self, id: TorrentId) -> Option<PathBuf> {
        let k = self.slab.remove(id)?;
        self.by_hash.remove(&k.info_hash);
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
    }
}

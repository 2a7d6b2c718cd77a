//! The state database: SQLite (WAL) in the state directory, written on a
//! thread of its own. STUB: written in the store helper's branch; the API
//! below is the contract.

use std::path::{Path, PathBuf};
use std::time::Duration;

use ringseed::InfoHash;
use thiserror::Error;

use super::command::Category;
use super::record::TorrentRecord;

/// The database file in the state directory.
pub const DB_FILE: &str = "ringseed.db";

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("state database {}: {message}", path.display())]
    Db { path: PathBuf, message: String },
    #[error("the state database thread is gone")]
    Gone,
    #[error("the state database is behind ({0} saves waiting)")]
    Full(usize),
}

/// One torrent's numbers for a periodic save.
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    pub info_hash: InfoHash,
    pub uploaded: u64,
    pub downloaded: u64,
    pub seeding_time_s: u64,
    pub active_time_s: u64,
    pub completed_at: Option<i64>,
    /// Pieces newly had: the store syncs these files to disk (fdatasync),
    /// stamps them (size, mtime), then commits the bits with the stamps.
    pub pieces: Option<PiecesUpdate>,
}

/// A torrent's had pieces and its files, to sync then record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PiecesUpdate {
    /// Bitfield bytes (BEP 3 order).
    pub bits: Vec<u8>,
    /// Every file of the torrent in order; `None` for pad files.
    pub files: Vec<Option<PathBuf>>,
}

/// What `open` read back.
pub struct Loaded {
    pub store: Store,
    pub torrents: Vec<TorrentRecord>,
    pub categories: Vec<Category>,
}

/// The handle of the store thread.
pub struct Store {}

impl Store {
    /// Opens (creating) the database in `dir`, locks the directory against
    /// a second daemon, and reads everything back.
    pub fn open(_dir: &Path) -> Result<Loaded, StoreError> {
        Ok(Loaded {
            store: Store {},
            torrents: Vec::new(),
            categories: Vec::new(),
        })
    }

    /// Inserts or replaces a torrent; returns once committed durably.
    pub fn put(&self, _rec: &TorrentRecord) -> Result<(), StoreError> {
        Ok(())
    }

    /// Forgets a torrent; returns once committed.
    pub fn remove(&self, _hash: InfoHash) -> Result<(), StoreError> {
        Ok(())
    }

    /// Queues a periodic save; never blocks (a full queue is `Full`).
    pub fn save_progress(&self, _batch: Vec<Progress>) -> Result<(), StoreError> {
        Ok(())
    }

    pub fn put_category(&self, _c: &Category) -> Result<(), StoreError> {
        Ok(())
    }

    pub fn remove_category(&self, _name: &str) -> Result<(), StoreError> {
        Ok(())
    }

    /// Waits until everything queued before is committed.
    pub fn flush(&self, _timeout: Duration) -> Result<(), StoreError> {
        Ok(())
    }

    /// Flushes, then ends the thread.
    pub fn close(self) {}
}

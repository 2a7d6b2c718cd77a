//! A shard's torrents: each one's entry (files, engine, phase, totals),
//! filed under the id the session gave it, and the info-hash routing table.
//!
//! A torrent's life in a shard ([`Phase`]):
//!
//! ```text
//!   add ──> Checking ──checked──> Active <──resume── Paused
//!    │          │                  │  ▲                ▲
//!    └─known────┼──────────────────┘  │                │
//!               │                     │      Draining(next) ──> Paused / Checking / gone
//!               └──failed──> Error    └─pause, recheck, remove─┘
//! ```
//!
//! Only `Active` and `Draining` have an engine (`run`). Draining closes the
//! peers and waits until no disk op names the torrent (`io_ops`), so its
//! files are never closed under a read or a write; then it becomes what
//! `next` says.

use std::cell::Cell;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::conn::ConnId;
use crate::engine::{PeerId, Torrent, TorrentStats};
use crate::info_hash::InfoHash;
use crate::metainfo::Metainfo;
use crate::runtime::checker::{missing_names, CheckProgress};
use crate::runtime::disk::TorrentStorage;
use crate::runtime::session::control::{Removed, Reply};
use crate::runtime::session::settings::TORRENTS_MAX;
use crate::runtime::session::types::{
    Mode, TorrentId, TorrentLimits, TorrentSnapshot, TorrentState,
};
use crate::slab::{Slab, SlabError};
use crate::torrent::Bitfield;

/// Most peer addresses kept for a torrent that is not running yet.
pub const WAITING_PEERS_MAX: usize = 2_000;

/// What a draining torrent becomes once no op names it.
pub enum Next {
    /// Paused, or running again if resumed meanwhile (`Entry::paused`).
    Pause,
    /// Checked again, then as before.
    Recheck,
    /// Gone; the answer goes to `reply`.
    Remove { reply: Reply<Removed> },
}

/// Where a torrent is in its life.
pub enum Phase {
    Checking,
    Active,
    Paused,
    Draining(Next),
    Error,
}

/// A running torrent: its engine and the connection of each of its peers.
pub struct Running {
    pub torrent: Torrent,
    pub conn_of: HashMap<PeerId, ConnId>,
}

/// One torrent of the shard.
pub struct Entry {
    pub id: TorrentId,
    pub info_hash: InfoHash,
    /// Its name and trackers are read from here (not copied per entry).
    pub metainfo: Arc<Metainfo>,
    pub save_dir: PathBuf,
    pub mode: Mode,
    pub phase: Phase,
    /// The engine, while active or draining (boxed: a paused or checking
    /// torrent does not carry its 2 KB).
    pub run: Option<Box<Running>>,
    /// The files; `None` until the first check opened them.
    pub storage: Option<TorrentStorage>,
    /// Pieces verified on disk while no engine runs (the engine keeps its
    /// own while it runs).
    pub have: Bitfield,
    /// The user asked for it paused (applies after a check or a drain).
    pub paused: bool,
    pub limits: TorrentLimits,
    /// Addresses to dial once it runs.
    pub waiting_peers: Vec<SocketAddr>,
    /// Counts of earlier sessions (given at add).
    pub uploaded_before: u64,
    pub downloaded_before: u64,
    /// Counts of earlier engines of this session (before a pause or a
    /// recheck).
    pub uploaded_here: u64,
    pub downloaded_here: u64,
    pub hash_failures_here: u64,
    /// Disk ops in flight (reads and writes) that name the torrent.
    pub io_ops: u32,
    /// Checks that gave a result (the pieces were replaced, not only
    /// added to): the high half of [`Entry::pieces_version`].
    pub checks_done: u32,
    pub check: Option<Arc<CheckProgress>>,
    pub error: Option<String>,
}

impl Entry {
    /// The torrent's name (from its metainfo).
    pub fn name(&self) -> &str {
        &self.metainfo.info.name
    }

    /// The torrent's tracker tiers (from its metainfo).
    pub fn trackers(&self) -> &[Vec<String>] {
        &self.metainfo.trackers
    }

    pub fn is_active(&self) -> bool {
        matches!(self.phase, Phase::Active)
    }

    pub fn is_draining(&self) -> bool {
        matches!(self.phase, Phase::Draining(_))
    }

    /// Bytes moved in this session: engines gone and the running one.
    pub fn session_totals(&self) -> (u64, u64) {
        let s = self.engine_stats();
        (
            self.uploaded_here + s.map_or(0, |s| s.uploaded),
            self.downloaded_here + s.map_or(0, |s| s.downloaded),
        )
    }

    fn engine_stats(&self) -> Option<TorrentStats> {
        self.run.as_ref().map(|r| r.torrent.stats())
    }

    /// The pieces verified and written: the engine's while it runs, else
    /// the entry's (while checking: those from before the check).
    pub fn pieces(&self) -> &Bitfield {
        self.run.as_ref().map_or(&self.have, |r| r.torrent.have())
    }

    /// Changes whenever [`Entry::pieces`] does: checks done in the high
    /// half, the count of pieces in the low. Between two checks the set
    /// only grows (a piece, once written, is never dropped), so the count
    /// names it.
    pub fn pieces_version(&self) -> u64 {
        (u64::from(self.checks_done) << 32) | self.pieces().count_ones() as u64
    }

    /// Folds the engine's counts and pieces into the entry and drops it.
    pub fn retire_engine(&mut self) -> Option<Box<Running>> {
        let run = self.run.take()?;
        let s = run.torrent.stats();
        self.uploaded_here += s.uploaded;
        self.downloaded_here += s.downloaded;
        self.hash_failures_here += s.hash_failures;
        self.have = run.torrent.have().clone();
        Some(run)
    }

    pub fn state(&self) -> TorrentState {
        match &self.phase {
            Phase::Checking => match self.check.as_ref().and_then(|c| c.pieces_checked()) {
                Some(pieces_checked) => TorrentState::Checking { pieces_checked },
                None => TorrentState::CheckQueued,
            },
            Phase::Active => {
                let finished = self.run.as_ref().is_some_and(|r| r.torrent.is_finished());
                if finished || self.mode == Mode::Seed {
                    TorrentState::Seeding
                } else {
                    TorrentState::Downloading
                }
            }
            Phase::Paused => TorrentState::Paused,
            Phase::Draining(_) => TorrentState::Stopping,
            Phase::Error => TorrentState::Error,
        }
    }

    pub fn snapshot(&self) -> TorrentSnapshot {
        let info = &self.metainfo.info;
        let geometry_bytes = |have: &Bitfield| -> u64 {
            let pl = info.piece_length;
            let last = info.total_length - pl * (info.pieces.len() as u64).saturating_sub(1);
            have.iter_ones()
                .map(|i| if i + 1 == info.pieces.len() { last } else { pl })
                .sum()
        };
        let mut s = TorrentSnapshot {
            id: self.id,
            info_hash: self.info_hash,
            name: self.name().to_owned(),
            save_dir: self.save_dir.clone(),
            mode: self.mode,
            state: self.state(),
            pieces_have: self.have.count_ones() as u32,
            pieces: info.pieces.len() as u32,
            total_length: info.total_length,
            bytes_left: info.total_length.saturating_sub(geometry_bytes(&self.have)),
            uploaded: self.uploaded_before + self.uploaded_here,
            downloaded: self.downloaded_before + self.downloaded_here,
            rate_up: 0,
            rate_down: 0,
            peers: 0,
            seeds: 0,
            unchoked: 0,
            hash_failures: self.hash_failures_here,
            limits: self.limits,
            tracker_error: None,
            error: self.error.clone(),
            missing_files: self
                .storage
                .as_ref()
                .map(|st| missing_names(&self.metainfo, st.missing_files()))
                .unwrap_or_default(),
        };
        if let Some(r) = self.run.as_ref() {
            s.add_engine(&r.torrent.stats());
            s.tracker_error = r.torrent.tracker_error().map(str::to_owned);
        }
        s
    }
}

/// The shard's torrents by id, and by info-hash for routing. Entries are
/// boxed: ids are the session's, so a shard's slab has a slot for every
/// torrent of the session (the other shards' ones empty), and an empty slot
/// then costs a pointer, not a whole entry.
pub struct Torrents {
    slab: Slab<TorrentId, Box<Entry>>,
    by_hash: HashMap<InfoHash, TorrentId>,
    /// The earliest tick of an active engine as last scanned (`Some(None)`:
    /// none active); `None`: scan again. An engine's next tick moves only
    /// when it ticks or is created, both through a `&mut self` method
    /// here, and every such method forgets the cache: an idle shard with
    /// thousands of torrents then scans them once per tick round, not on
    /// every turn of its loop.
    tick_cache: Cell<Option<Option<Duration>>>,
}

impl Default for Torrents {
    fn default() -> Self {
        Torrents {
            slab: Slab::new(TORRENTS_MAX),
            by_hash: HashMap::new(),
            tick_cache: Cell::new(None),
        }
    }
}

impl Torrents {
    pub fn len(&self) -> usize {
        self.slab.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slab.is_empty()
    }

    /// Files `entry` under its id; its info-hash must be new here.
    pub fn insert(&mut self, entry: Entry) -> Result<(), SlabError> {
        self.tick_cache.set(None);
        let (id, hash) = (entry.id, entry.info_hash);
        if self.by_hash.contains_key(&hash) {
            return Err(SlabError::SlotTaken { slot: id.slot });
        }
        self.slab.insert_at(id, Box::new(entry))?;
        self.by_hash.insert(hash, id);
        Ok(())
    }

    pub fn remove(&mut self, id: TorrentId) -> Option<Entry> {
        self.tick_cache.set(None);
        let e = self.slab.remove(id)?;
        self.by_hash.remove(&e.info_hash);
        Some(*e)
    }

    pub fn get(&self, id: TorrentId) -> Option<&Entry> {
        self.slab.get(id).map(|e| &**e)
    }

    pub fn get_mut(&mut self, id: TorrentId) -> Option<&mut Entry> {
        self.tick_cache.set(None);
        self.slab.get_mut(id).map(|e| &mut **e)
    }

    pub fn by_hash(&self, hash: &InfoHash) -> Option<TorrentId> {
        self.by_hash.get(hash).copied()
    }

    /// The engine of a running (active or draining) torrent.
    pub fn running(&self, id: TorrentId) -> Option<&Running> {
        self.slab.get(id)?.run.as_deref()
    }

    pub fn running_mut(&mut self, id: TorrentId) -> Option<&mut Running> {
        self.tick_cache.set(None);
        self.slab.get_mut(id)?.run.as_deref_mut()
    }

    pub fn engine_mut(&mut self, id: TorrentId) -> Option<&mut Torrent> {
        self.running_mut(id).map(|r| &mut r.torrent)
    }

    /// The torrent's name, for messages ("?" once it is gone).
    pub fn name(&self, id: TorrentId) -> String {
        self.get(id)
            .map_or_else(|| "?".to_owned(), |e| e.name().to_owned())
    }

    pub fn ids(&self) -> Vec<TorrentId> {
        self.slab.keys()
    }

    pub fn iter(&self) -> impl Iterator<Item = (TorrentId, &Entry)> + '_ {
        self.slab.iter().map(|(id, e)| (id, &**e))
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = (TorrentId, &mut Entry)> + '_ {
        self.tick_cache.set(None);
        self.slab.iter_mut().map(|(id, e)| (id, &mut **e))
    }

    /// Every active engine (for the quota round).
    pub fn engines_mut(&mut self) -> Vec<&mut Torrent> {
        self.tick_cache.set(None);
        self.slab
            .iter_mut()
            .filter(|(_, e)| e.is_active())
            .filter_map(|(_, e)| e.run.as_mut().map(|r| &mut r.torrent))
            .collect()
    }

    /// The earliest tick of an active engine.
    pub fn next_tick(&self) -> Option<Duration> {
        if let Some(cached) = self.tick_cache.get() {
            return cached;
        }
        let next = self
            .slab
            .iter()
            .filter(|(_, e)| e.is_active())
            .filter_map(|(_, e)| e.run.as_ref().map(|r| r.torrent.next_tick()))
            .min();
        self.tick_cache.set(Some(next));
        next
    }

    /// Active torrents whose tick is due at `now`.
    pub fn due(&self, now: Duration) -> Vec<TorrentId> {
        if self.next_tick().is_none_or(|t| now < t) {
            return Vec::new();
        }
        self.slab
            .iter()
            .filter(|(_, e)| e.is_active())
            .filter(|(_, e)| e.run.as_ref().is_some_and(|r| now >= r.torrent.next_tick()))
            .map(|(id, _)| id)
            .collect()
    }
}

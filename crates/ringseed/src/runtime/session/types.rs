//! The plain data the session hands in and out: torrent ids, what to add,
//! per-torrent limits, snapshots and events. No behaviour beyond formatting
//! and small derived numbers.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use crate::engine::TorrentStats;
use crate::metainfo::Metainfo;
use crate::slab::SlabKey;
use crate::torrent::Bitfield;
use crate::InfoHash;

/// Names one torrent of a session: a slot and its generation. An id stays
/// valid until the torrent is removed; after that it names nothing, even
/// when a new torrent takes the slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TorrentId {
    pub slot: u32,
    pub generation: u32,
}

impl SlabKey for TorrentId {
    fn from_parts(slot: u32, generation: u32) -> Self {
        TorrentId { slot, generation }
    }
    fn slot(&self) -> u32 {
        self.slot
    }
    fn generation(&self) -> u32 {
        self.generation
    }
}

impl TorrentId {
    /// The id as one number (tracker job tokens).
    pub fn to_u64(self) -> u64 {
        (u64::from(self.slot) << 32) | u64::from(self.generation)
    }

    pub fn from_u64(v: u64) -> Self {
        TorrentId {
            slot: (v >> 32) as u32,
            generation: v as u32,
        }
    }
}

impl fmt::Display for TorrentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}.{}", self.slot, self.generation)
    }
}

/// What a torrent does with the pieces it lacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Only serve the pieces on disk (files opened read-only).
    Seed,
    /// Download what is missing (files created and opened read-write),
    /// then seed.
    Download,
}

/// Where the pieces we have come from when a torrent is added.
#[derive(Debug, Clone)]
pub enum Have {
    /// Hash the data on the checker pool first (the torrent is "checking"
    /// meanwhile).
    Check,
    /// Trust this bitfield (resume data the caller verified): serve at
    /// once.
    Known(Bitfield),
    /// Trust the pieces of `known` that are not in `check`, and hash only
    /// the pieces in `check` on the checker pool (the others are not read
    /// at all); the result is the trusted ones plus those of `check` that
    /// match. For resume data whose files partly changed (a file's size or
    /// mtime differs from the last save: its pieces go in `check`). The
    /// torrent is "checking" meanwhile, as for [`Have::Check`], and its
    /// files are opened by the checker. A trusted piece that touches a file
    /// not on disk is checked too (so dropped), whatever `check` says.
    /// Both bitfields have one bit per piece.
    Partial { known: Bitfield, check: Bitfield },
}

/// Per-torrent rate limits, bytes per second. `None`: the session's
/// default for every torrent; `Some(0)`: unlimited for this one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TorrentLimits {
    pub upload_rate: Option<u64>,
    pub download_rate: Option<u64>,
}

/// A torrent to add.
#[derive(Debug, Clone)]
pub struct AddTorrent {
    pub metainfo: Arc<Metainfo>,
    /// The save directory: a multi-file torrent's files are in
    /// `save_dir/<name>/...`, a single file is `save_dir/<name>`.
    pub save_dir: PathBuf,
    pub mode: Mode,
    pub have: Have,
    /// Start paused (checked, if asked, but not serving).
    pub paused: bool,
    /// Addresses to dial once it runs.
    pub peers: Vec<SocketAddr>,
    pub limits: TorrentLimits,
    /// Bytes moved in earlier sessions, added to this session's counts in
    /// snapshots.
    pub uploaded_before: u64,
    pub downloaded_before: u64,
}

impl AddTorrent {
    /// A torrent to check, then seed or download, with no limits of its own.
    pub fn new(metainfo: Arc<Metainfo>, save_dir: PathBuf, mode: Mode) -> Self {
        AddTorrent {
            metainfo,
            save_dir,
            mode,
            have: Have::Check,
            paused: false,
            peers: Vec::new(),
            limits: TorrentLimits::default(),
            uploaded_before: 0,
            downloaded_before: 0,
        }
    }
}

/// What a torrent is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TorrentState {
    /// Waiting for the checker pool.
    CheckQueued,
    /// Being checked: `pieces_checked` of the torrent's pieces so far.
    Checking { pieces_checked: u32 },
    /// Downloading (connected or looking for peers).
    Downloading,
    /// Every piece on disk; serving.
    Seeding,
    /// Stopped by the user (or added paused): no peers, no announces.
    Paused,
    /// Closing its peers and waiting for its disk ops before it pauses,
    /// is checked again, or is removed.
    Stopping,
    /// Stopped by an error (see [`TorrentSnapshot::error`]).
    Error,
}

impl TorrentState {
    pub fn name(&self) -> &'static str {
        match self {
            TorrentState::CheckQueued => "check queued",
            TorrentState::Checking { .. } => "checking",
            TorrentState::Downloading => "downloading",
            TorrentState::Seeding => "seeding",
            TorrentState::Paused => "paused",
            TorrentState::Stopping => "stopping",
            TorrentState::Error => "error",
        }
    }

    /// Checked, or being checked.
    pub fn is_checking(&self) -> bool {
        matches!(
            self,
            TorrentState::CheckQueued | TorrentState::Checking { .. }
        )
    }
}

/// One torrent's numbers at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TorrentSnapshot {
    pub id: TorrentId,
    pub info_hash: InfoHash,
    pub name: String,
    pub save_dir: PathBuf,
    pub mode: Mode,
    pub state: TorrentState,
    /// Pieces verified on disk, of `pieces`.
    pub pieces_have: u32,
    pub pieces: u32,
    pub total_length: u64,
    pub bytes_left: u64,
    /// Payload bytes, earlier sessions included.
    pub uploaded: u64,
    pub downloaded: u64,
    /// Bytes per second, over the engine's rate window.
    pub rate_up: u64,
    pub rate_down: u64,
    pub peers: usize,
    /// Of `peers`, those that have every piece.
    pub seeds: usize,
    pub unchoked: usize,
    pub hash_failures: u64,
    pub limits: TorrentLimits,
    /// The last tracker failure, until a tracker answers.
    pub tracker_error: Option<String>,
    /// Why the torrent stopped (state `Error`).
    pub error: Option<String>,
    /// Files of a seeding torrent that were not on disk when it was
    /// checked, as the torrent names them (`name/dir/file`): their pieces
    /// are not served ("missing files" in qBittorrent). Empty while
    /// downloading (missing files are created) and before the first check.
    pub missing_files: Vec<String>,
}

impl TorrentSnapshot {
    /// Share of the pieces verified on disk, 0.0 to 1.0.
    pub fn progress(&self) -> f64 {
        if self.pieces == 0 {
            return 0.0;
        }
        f64::from(self.pieces_have) / f64::from(self.pieces)
    }

    pub fn is_complete(&self) -> bool {
        self.pieces > 0 && self.pieces_have == self.pieces
    }

    /// Adds the engine's counts of the running instance.
    pub(crate) fn add_engine(&mut self, s: &TorrentStats) {
        self.pieces_have = s.pieces_have;
        self.bytes_left = s.bytes_left;
        self.uploaded += s.uploaded;
        self.downloaded += s.downloaded;
        self.rate_up = s.rate_up;
        self.rate_down = s.rate_down;
        self.peers = s.peers;
        self.seeds = s.seeds;
        self.unchoked = s.unchoked;
        self.hash_failures += s.hash_failures;
    }
}

/// Something that happened, reported on the session's bounded event
/// channel. Events are news: the state itself is always in a snapshot, so
/// a reader that falls behind (the channel full) loses news, never state;
/// the session counts what was dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A data check finished: the torrent serves (or stays paused).
    Checked {
        id: TorrentId,
        pieces_have: u32,
        pieces: u32,
    },
    /// Every piece is downloaded, verified and written.
    Finished { id: TorrentId },
    /// The torrent stopped on an error (files missing, a failed write).
    Error { id: TorrentId, error: String },
    /// A tracker answered (`Ok`: peers received) or every tracker failed.
    Tracker {
        id: TorrentId,
        result: Result<usize, String>,
    },
    /// The torrent is gone (its id names nothing from now on).
    Removed { id: TorrentId },
    /// A shard stopped on an error; the session cannot go on.
    ShardFailed { shard: usize, error: String },
    /// A magnet's info dictionary arrived from peers and matched its
    /// info-hash (see `Session::fetch_metadata`): add the torrent with it.
    Metadata {
        info_hash: crate::InfoHash,
        info: std::sync::Arc<[u8]>,
        /// Peers the fetch met: dial them first.
        peers: Vec<SocketAddr>,
    },
}

/// What a stopped session did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StopReport {
    /// Connections moved from the shard that accepted them to the owner.
    pub handoffs: u64,
    /// Block bytes sent to peers in this session, all torrents.
    pub uploaded: u64,
    /// Bytes of verified pieces downloaded in this session, all torrents.
    pub downloaded: u64,
    /// Blocks sent down the splice path (file -> pipe -> socket).
    pub spliced_blocks: u64,
}

impl StopReport {
    pub fn add(&mut self, other: &StopReport) {
        self.handoffs += other.handoffs;
        self.uploaded += other.uploaded;
        self.downloaded += other.downloaded;
        self.spliced_blocks += other.spliced_blocks;
    }
}

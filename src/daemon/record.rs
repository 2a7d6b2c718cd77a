//! What the daemon keeps about each torrent: the plain data the store
//! writes and reads back, the core holds, and the control interfaces
//! (`ringseed ctl`, later the Web API) show. No behaviour beyond small
//! derived values; no IO.

use std::collections::BTreeSet;
use std::path::PathBuf;

use ringseed::InfoHash;

/// Most tags on one torrent.
pub const TAGS_PER_TORRENT_MAX: usize = 64;
/// Longest tag or category name, in bytes.
pub const NAME_BYTES_MAX: usize = 255;

/// Where a torrent's metadata came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The .torrent file's bytes, as given.
    Torrent(Vec<u8>),
    /// A magnet URI: no metadata yet. The core fetches it, then keeps
    /// the .torrent made from it instead.
    Magnet(String),
}

/// Whether the user wants the torrent running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wanted {
    /// Started: it runs when the queue gives it a place (or it is forced).
    Started,
    /// Stopped by the user or by a share limit.
    Stopped,
}

impl Wanted {
    pub fn as_str(self) -> &'static str {
        match self {
            Wanted::Started => "started",
            Wanted::Stopped => "stopped",
        }
    }

    pub fn parse(s: &str) -> Option<Wanted> {
        match s {
            "started" => Some(Wanted::Started),
            "stopped" => Some(Wanted::Stopped),
            _ => None,
        }
    }
}

/// One share limit of a torrent, as qBittorrent has them.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Limit<T> {
    /// Use the global value from the configuration.
    #[default]
    Global,
    /// No limit for this torrent.
    Unlimited,
    /// This torrent's own limit.
    Value(T),
}

/// When a seeding torrent has given enough.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ShareLimits {
    /// Uploaded / size (qBittorrent divides by the downloaded bytes when
    /// larger than zero, else by the size).
    pub ratio: Limit<f64>,
    /// Seconds spent seeding (complete and running).
    pub seeding_time_s: Limit<u64>,
}

/// Per-torrent rate limits, bytes per second; 0 = unlimited, `None` = the
/// configured per-torrent default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RateLimits {
    pub upload: Option<u64>,
    pub download: Option<u64>,
}

/// A file's size and modification time at the last save, to tell at
/// start whether the file changed since.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStamp {
    /// `None`: the file did not exist.
    pub size: Option<u64>,
    /// Nanoseconds since the epoch (0 when missing).
    pub mtime_ns: i64,
}

/// Everything the daemon keeps about one torrent.
#[derive(Debug, Clone, PartialEq)]
pub struct TorrentRecord {
    /// The v1 info-hash: the key.
    pub info_hash: InfoHash,
    pub name: String,
    pub source: Source,
    /// The save directory (a multi-file torrent's files are in
    /// `save_path/<name>/...`).
    pub save_path: PathBuf,
    /// "" for none.
    pub category: String,
    pub tags: BTreeSet<String>,
    pub wanted: Wanted,
    /// Runs whatever the queue says (qBittorrent's "force start").
    pub force_start: bool,
    pub share_limits: ShareLimits,
    pub rate_limits: RateLimits,
    /// Unix seconds.
    pub added_at: i64,
    /// Unix seconds; `None` until every piece is had.
    pub completed_at: Option<i64>,
    /// Payload bytes over the torrent's whole life.
    pub uploaded: u64,
    pub downloaded: u64,
    /// Seconds complete and running; seconds running at all.
    pub seeding_time_s: u64,
    pub active_time_s: u64,
    /// The pieces verified and durably on disk (bitfield bytes, BEP 3
    /// order); `None`: never checked (check at start).
    pub pieces: Option<Vec<u8>>,
    /// One stamp per file of the torrent (pad files included, in order),
    /// taken when `pieces` was saved; empty when `pieces` is `None`.
    pub file_stamps: Vec<FileStamp>,
    /// A move of the data to this directory was started and has not
    /// finished: at start, the move is done again (it is idempotent).
    pub moving_to: Option<PathBuf>,
}

//! What clients (`ringseed ctl`, the watch folder, later the Web API) ask
//! of the daemon's core, and how it answers. Each command carries its own
//! reply channel (room for one answer); the core answers every command it
//! takes, with a value or a [`CommandError`] naming what was wrong.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;

use crossbeam_channel::Sender;
use ringseed::InfoHash;
use thiserror::Error;

use ringseed::metainfo::Metainfo;

use super::config::{ConfigPatch, DaemonConfig};
use super::record::{RateLimits, ShareLimits, Source, TorrentRecord};

/// Commands waiting for the core: a client that finds the queue full gets
/// [`CommandError::Busy`].
pub const COMMAND_QUEUE_MAX: usize = 256;

/// Where one answer goes.
pub type Reply<T> = Sender<Result<T, CommandError>>;

/// Which torrents a command is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    All,
    Hashes(Vec<InfoHash>),
}

impl Selector {
    /// Whether the torrent `hash` is among those selected.
    pub fn includes(&self, hash: &InfoHash) -> bool {
        match self {
            Selector::All => true,
            Selector::Hashes(h) => h.contains(hash),
        }
    }
}

/// A torrent to add.
#[derive(Debug, Clone, PartialEq)]
pub struct AddRequest {
    pub source: Source,
    /// `None`: the category's save path, else the default download dir.
    pub save_path: Option<PathBuf>,
    pub category: String,
    pub tags: BTreeSet<String>,
    /// Added stopped.
    pub stopped: bool,
    pub share_limits: ShareLimits,
    pub rate_limits: RateLimits,
    /// Trust the data: mark every piece had without a check (cross-seed's
    /// "skip hash check"); the data is still checked if a file's size is
    /// wrong.
    pub skip_check: bool,
}

/// A torrent as clients see it: the record and what it is doing now.
#[derive(Debug, Clone, PartialEq)]
pub struct TorrentView {
    pub record: TorrentRecord,
    /// `downloading`, `seeding`, `checking`, `check queued`, `stopped`,
    /// `queued`, `moving`, `missing files`, `error`.
    pub state: String,
    /// 0.0 to 1.0.
    pub progress: f64,
    /// Pieces verified on disk now, of `piece_count`.
    pub pieces_have: u32,
    pub piece_count: u32,
    pub total_length: u64,
    pub bytes_left: u64,
    pub rate_up: u64,
    pub rate_down: u64,
    pub peers: usize,
    /// Of `peers`, those that have every piece.
    pub seeds: usize,
    /// The error or the missing files, when there are.
    pub message: Option<String>,
    /// The parsed .torrent (`None`: a magnet without metadata yet).
    pub metainfo: Option<Arc<Metainfo>>,
    /// The last tracker failure, until a tracker answers.
    pub tracker_error: Option<String>,
    /// Running in the session (not stopped, queued or moving).
    pub running: bool,
    /// Its place in the queue, 1 first; 0 when it is not waiting for one
    /// (qBittorrent's `priority`).
    pub queue_position: u64,
    /// Payload bytes since the daemon started.
    pub uploaded_session: u64,
    pub downloaded_session: u64,
    /// Unix seconds of the last payload byte moved (0: never).
    pub last_activity: i64,
}

/// A category: a name and its save path (`None`: the default download
/// dir).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Category {
    pub name: String,
    pub save_path: Option<PathBuf>,
}

/// Where [`Command::QueueMove`] puts torrents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueMove {
    Top,
    Bottom,
    Up,
    Down,
}

/// The running configuration and what it resolves to.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigView {
    pub config: DaemonConfig,
    /// The default save path now.
    pub download_dir: PathBuf,
    /// The peer addresses the session listens on.
    pub listen: Vec<std::net::SocketAddr>,
    /// The DHT's good nodes now (0 when it is off).
    pub dht_nodes: usize,
}

/// The engine's figures `/metrics` shows.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EngineFigures {
    /// Event-loop turns of each shard since the start.
    pub shard_turns: Vec<u64>,
    /// Session events dropped because the core fell behind.
    pub events_dropped: u64,
}

/// A request to the core.
#[derive(Debug)]
pub enum Command {
    /// Answers once the torrent is durably recorded (it survives kill -9
    /// from then on).
    Add {
        add: Box<AddRequest>,
        reply: Reply<InfoHash>,
    },
    List {
        reply: Reply<Vec<TorrentView>>,
    },
    /// Stop (pause) torrents; answers how many changed.
    Stop {
        which: Selector,
        reply: Reply<usize>,
    },
    Start {
        which: Selector,
        reply: Reply<usize>,
    },
    ForceStart {
        which: Selector,
        on: bool,
        reply: Reply<usize>,
    },
    Recheck {
        which: Selector,
        reply: Reply<usize>,
    },
    Reannounce {
        which: Selector,
        reply: Reply<usize>,
    },
    /// "" removes the category. The category must exist.
    SetCategory {
        which: Selector,
        category: String,
        reply: Reply<usize>,
    },
    AddTags {
        which: Selector,
        tags: BTreeSet<String>,
        reply: Reply<usize>,
    },
    RemoveTags {
        which: Selector,
        tags: BTreeSet<String>,
        reply: Reply<usize>,
    },
    SetShareLimits {
        which: Selector,
        limits: ShareLimits,
        reply: Reply<usize>,
    },
    SetRateLimits {
        which: Selector,
        limits: RateLimits,
        reply: Reply<usize>,
    },
    /// Moves the data to `dir` (the new save path); answers when the move
    /// has started (it is recorded first, so an interrupted move is done
    /// again at the next start).
    Move {
        which: Selector,
        dir: PathBuf,
        reply: Reply<usize>,
    },
    Remove {
        which: Selector,
        delete_files: bool,
        reply: Reply<usize>,
    },
    Categories {
        reply: Reply<Vec<Category>>,
    },
    /// Creates or edits a category.
    SetCategoryDef {
        category: Category,
        reply: Reply<()>,
    },
    RemoveCategories {
        names: Vec<String>,
        reply: Reply<usize>,
    },
    /// One torrent, with the numbers of the last policy tick (at most a
    /// second old; `List` takes fresh ones for every torrent, which a
    /// single-torrent request need not pay for). `queue_position` is 0.
    Get {
        hash: InfoHash,
        reply: Reply<TorrentView>,
    },
    /// The pieces verified on disk now (bitfield bytes, BEP 3 order).
    Pieces {
        hash: InfoHash,
        reply: Reply<Vec<u8>>,
    },
    /// The torrent's connected peers.
    Peers {
        hash: InfoHash,
        reply: Reply<Vec<ringseed::engine::PeerInfo>>,
    },
    /// The .torrent file's bytes as added.
    Export {
        hash: InfoHash,
        reply: Reply<Vec<u8>>,
    },
    /// Changes the name clients see (not the files').
    Rename {
        hash: InfoHash,
        name: String,
        reply: Reply<()>,
    },
    /// Moves torrents in the queue.
    QueueMove {
        which: Selector,
        to: QueueMove,
        reply: Reply<usize>,
    },
    Config {
        reply: Reply<ConfigView>,
    },
    /// The engine's own figures, for `/metrics`.
    EngineFigures {
        reply: Reply<EngineFigures>,
    },
    /// Changes settings at run time (the Web API's preferences): kept in
    /// the state database and applied over the file from then on, at every
    /// start and SIGHUP. Answers the changes made, as the SIGHUP log line
    /// words them.
    SetConfig {
        patch: ConfigPatch,
        reply: Reply<Vec<String>>,
    },
    /// Keeps a small value of the Web API's (its tag list) in the state
    /// database; answers once committed.
    PutValue {
        key: String,
        value: Vec<u8>,
        reply: Reply<()>,
    },
}

/// Why a command was refused.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum CommandError {
    #[error("no torrent with info-hash {0}")]
    UnknownTorrent(InfoHash),
    #[error("torrent {name} ({hash}) is already added")]
    Duplicate { name: String, hash: InfoHash },
    #[error("no category {0:?} (create it first)")]
    UnknownCategory(String),
    #[error("{0}")]
    Invalid(String),
    #[error("the daemon is busy ({0} commands waiting); try again")]
    Busy(usize),
    #[error("the daemon is stopping")]
    Stopping,
    #[error("the state database failed: {0}")]
    Store(String),
    #[error("the engine refused: {0}")]
    Engine(String),
}

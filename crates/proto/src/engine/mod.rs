//! The torrent engine, sans-IO: what one torrent does with its peers,
//! pieces, choker and trackers, given events and a `now`. The shards in
//! `runtime/` carry its outputs out over sockets and files.
//!
//! - [`settings`]: every tunable, with unit, default and reason.
//! - [`torrent`]: [`Torrent`], one torrent's swarm state machine.
//! - [`piece_buffers`]: assembly of downloaded pieces; finding bad senders.
//! - [`announce`]: when to announce, with which event.
//! - [`peer_list`]: the addresses a torrent knows, their sources, failures
//!   and when each may be dialled again.

pub mod announce;
pub mod peer_list;
pub mod pex;
pub mod piece_buffers;
pub mod settings;
pub mod torrent;

pub use peer_list::{PeerSource, Retry};
pub use settings::{EngineSettings, SettingError};
pub use torrent::{
    AddPeerError, CloseReason, Output, PeerId, PeerInfo, Torrent, TorrentError, TorrentSetup,
    TorrentStats,
};

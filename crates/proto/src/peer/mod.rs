//! The per-peer protocol state of one connection, sans-IO, seeding side
//! first: bytes and a `now` go in, [`Action`]s come out.
//!
//! Boundary: no socket, no file, no clock. The engine (in `runtime/`, later)
//! feeds received bytes to [`PeerConnection::receive`], calls
//! [`PeerConnection::on_timer`] at [`PeerConnection::next_timeout`], drains
//! [`PeerConnection::poll_action`], and reads blocks from disk when asked.
//!
//! - [`config`]: every tunable, with its unit, default and reason.
//! - [`shape`]: the torrent as a connection sees it (info-hash, piece sizes).
//! - [`pieces`]: a plain bitfield for either side's pieces, local on purpose
//!   so the engine can later swap in the picker's type.
//! - [`action`]: what the connection asks the engine to do.
//! - [`error`]: why a connection ends ([`PeerError`]) or cannot start.
//! - [`connection`]: the state machine itself.

pub mod action;
pub mod config;
pub mod connection;
pub mod error;
pub mod pieces;
pub mod rate;
pub mod shape;

pub use action::{Action, DisconnectReason, PeerHave, SendMessage};
pub use config::{ConfigError, PeerConfig};
pub use connection::{Direction, PeerConnection, PeerCounters};
pub use error::{PeerError, SetupError};
pub use pieces::PieceBits;
pub use shape::{ShapeError, TorrentShape};

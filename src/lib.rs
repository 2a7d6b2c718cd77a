//! ringseed: a BitTorrent seedbox engine on io_uring, thread-per-core.
//!
//! The library holds the protocol and format logic as plain, IO-free code
//! (`bencode`, `metainfo`, `magnet`, `storage`, `hash`) and the IO layer in
//! `runtime`. Only `runtime/` and the binary touch files, sockets, io_uring or
//! the clock.

pub mod bencode;
pub mod engine;
pub mod hash;
pub mod info_hash;
pub mod limits;
pub mod loadgen;
pub mod magnet;
pub mod metainfo;
pub mod peer;
pub mod rate_limit;
pub mod rng;
pub mod runtime;
pub mod slot_quota;
pub mod storage;
pub mod torrent;
pub mod tracker;
pub mod upload_slots;
pub mod wire;

pub use info_hash::InfoHash;

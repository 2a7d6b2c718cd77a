//! ringseed: a BitTorrent seedbox engine on io_uring, thread-per-core.
//!
//! Two crates make the engine. `ringseed-proto` holds the protocol and
//! format logic as plain, IO-free code; it is re-exported here module by
//! module, so `ringseed::wire`, `ringseed::engine` and the rest name it.
//! This crate adds `runtime`: everything that touches files, sockets,
//! io_uring, threads or the clock. The command line and the swarm bench are
//! crates of their own on top.

pub use ringseed_proto::{
    bencode, dht, engine, hash, info_hash, limits, lsd, magnet, metainfo, mse, peer, rate_limit,
    rng, slab, slot_quota, storage, torrent, tracker, upload_slots, wire, InfoHash,
};

pub mod runtime;

//! ringseed-proto: the sans-IO half of ringseed: formats, codecs and state
//! machines that take bytes, values and a caller's `now`, and return values,
//! actions or typed errors.
//!
//! Boundary: nothing here opens a file or a socket, starts a thread, reads
//! the clock or touches io_uring. The crate has no dependency that could
//! (see `Cargo.toml`), and `tests/layering.rs` fails the build's tests when
//! a module reaches for `std::fs`, `std::net` sockets, `std::thread`,
//! `Instant`/`SystemTime` or `std::process`. The runtime (the `ringseed`
//! crate) drives these machines.

pub mod bencode;
pub mod dht;
pub mod engine;
pub mod hash;
pub mod info_hash;
pub mod limits;
pub mod lsd;
pub mod magnet;
pub mod metainfo;
pub mod mse;
pub mod peer;
pub mod rate_limit;
pub mod rng;
pub mod slab;
pub mod slot_quota;
pub mod storage;
pub mod torrent;
pub mod tracker;
pub mod upload_slots;
pub mod wire;

pub use info_hash::InfoHash;

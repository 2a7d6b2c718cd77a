//! The IO layer: io_uring rings, disk reads, directory walks. Everything that
//! touches the kernel lives here; the format and protocol code elsewhere in the
//! crate stays pure.

pub mod checker;
pub mod dht_worker;
pub mod disk;
pub mod event_loop;
pub mod fd_cache;
pub mod fs_walk;
pub mod hash_batch;
pub mod http_client;
pub mod lsd_worker;
pub mod metadata_fetch;
pub mod piece_hash;
pub mod session;
pub mod shard;
pub mod signals;
pub mod sockets;
pub mod tracker_worker;
pub mod uring;
pub mod waker;

pub use piece_hash::{
    available_threads, hash_pieces, hash_pieces_in, hash_pieces_until, DiskFile, HashError,
    HashOptions, HashStats, PieceError, PieceResult,
};
pub use uring::{check_usable, UringError};

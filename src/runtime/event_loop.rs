//! The per-shard io_uring event loop. (Being written.)

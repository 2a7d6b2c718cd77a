//! The torrent engine, sans-IO: one torrent's peers, picker and choker.
//! (Being written.)

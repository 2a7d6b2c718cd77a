//! Per-torrent logic: bitfields and the piece picker. (Being written.)

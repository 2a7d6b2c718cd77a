//! Hard limits, each named with its unit. Inputs beyond them are refused with an
//! error that names the limit; nothing grows without bound.

/// Deepest nesting of bencoded lists and dictionaries accepted.
pub const BENCODE_DEPTH_MAX: usize = 100;
/// Most bencode tokens (values) decoded from one buffer.
pub const BENCODE_TOKENS_MAX: usize = 4_000_000;
/// Largest .torrent file read, in bytes.
pub const TORRENT_FILE_BYTES_MAX: u64 = 64 * 1024 * 1024;
/// Largest piece length accepted, in bytes. libtorrent 2.0 loads torrents with
/// pieces just under 512 MiB (its test corpus has one), so we do too; readers
/// hash such pieces in bounded chunks, never with a piece-sized buffer.
pub const PIECE_LENGTH_BYTES_MAX: u64 = 512 * 1024 * 1024;
/// Most files in one torrent.
pub const FILES_PER_TORRENT_MAX: usize = 1_000_000;
/// Most pieces in one torrent.
pub const PIECES_PER_TORRENT_MAX: u64 = 10_000_000;
/// Longest file path inside a torrent, in path components.
pub const PATH_COMPONENTS_MAX: usize = 64;
/// Longest single path component kept, in bytes (longer ones are truncated, as libtorrent does).
pub const PATH_COMPONENT_BYTES_MAX: usize = 240;
/// Longest magnet URI accepted, in bytes.
pub const MAGNET_URI_BYTES_MAX: usize = 64 * 1024;
/// Most trackers, web seeds or peers kept from one magnet URI.
pub const MAGNET_LIST_ITEMS_MAX: usize = 256;

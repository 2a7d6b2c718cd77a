//! Why a .torrent file was refused.

use crate::bencode::DecodeError;

/// A .torrent file that cannot be loaded, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetainfoError {
    #[error("not a valid .torrent file: {0}")]
    Bencode(#[from] DecodeError),
    #[error("not a valid .torrent file: the top level is a {found}, expected a dictionary")]
    NotADictionary { found: &'static str },
    #[error("missing or invalid 'info' dictionary")]
    MissingInfo,
    #[error("'{key}' is missing")]
    Missing { key: &'static str },
    #[error("'{key}' is a {found}, expected {expected}")]
    WrongType {
        key: String,
        expected: &'static str,
        found: &'static str,
    },
    #[error("this is a BitTorrent v2-only torrent; v2 is not supported yet (only v1 and hybrid torrents)")]
    V2Only,
    #[error("unsupported 'meta version' {0} (supported: 1, and 2 in hybrid torrents)")]
    UnsupportedMetaVersion(i64),
    #[error("invalid 'piece length' {0}: expected a positive number of bytes")]
    PieceLengthNotPositive(i64),
    #[error("'piece length' {length} is over the limit of {limit} bytes")]
    PieceLengthTooLarge { length: u64, limit: u64 },
    #[error("hybrid torrent: 'piece length' {0} must be a power of two of at least 16384")]
    HybridPieceLength(u64),
    #[error("'pieces' is {0} bytes long, expected a multiple of 20")]
    PiecesNotMultipleOf20(usize),
    #[error("'pieces' holds {found} hashes, but {total_length} bytes in pieces of {piece_length} make {expected}")]
    PieceCountMismatch {
        found: usize,
        expected: u64,
        total_length: u64,
        piece_length: u64,
    },
    #[error("{count} pieces is over the limit of {limit}")]
    TooManyPieces { count: u64, limit: u64 },
    #[error("file {index}: invalid length {length}, expected zero or more bytes")]
    NegativeFileLength { index: usize, length: i64 },
    #[error("the files' total size overflows 64 bits")]
    TotalLengthOverflow,
    #[error("the torrent has no data (total size 0)")]
    EmptyTorrent,
    #[error("'files' is empty: a torrent needs at least one file")]
    NoFiles,
    #[error("{count} files is over the limit of {limit}")]
    TooManyFiles { count: usize, limit: usize },
    #[error("file {index}: 'path' is missing")]
    MissingPath { index: usize },
    #[error("file {index}: 'path' is an empty list, expected at least one component (only a pad file may go without)")]
    EmptyPath { index: usize },
    #[error("file {index}: path has {count} components, over the limit of {limit}")]
    PathTooDeep {
        index: usize,
        count: usize,
        limit: usize,
    },
    #[error("hybrid torrent: the v1 and v2 file lists do not match: {0}")]
    HybridMismatch(String),
    #[error("hybrid torrent: invalid v2 'file tree': {0}")]
    HybridFileTree(String),
}

//! Metainfo (.torrent files, BEP 3, v1): reading with every check, and building.
//!
//! Reading ([`Metainfo::from_bytes`]) accepts what libtorrent 2.0 loads and
//! refuses what it refuses (the test in `tests/corpus.rs` holds it to
//! libtorrent's own test torrents). File paths are sanitized on the way in
//! ([`path`]), so a loaded torrent can never name a place outside its save
//! directory. Building ([`TorrentBuilder`]) writes canonical bencode.

mod build;
mod error;
mod hybrid;
mod parse;
pub mod path;

pub use build::{auto_piece_length, BuildError, NewFile, TorrentBuilder};
pub use error::MetainfoError;

use std::path::PathBuf;

use crate::storage::FileExtent;
use crate::InfoHash;

/// A loaded .torrent file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metainfo {
    pub info: Info,
    /// SHA-1 of the info dictionary's exact bytes.
    pub info_hash: InfoHash,
    /// Tracker tiers (BEP 12); `announce` alone becomes one tier of one URL.
    pub trackers: Vec<Vec<String>>,
    /// Web seeds (BEP 19 `url-list`).
    pub url_list: Vec<String>,
    pub comment: Option<String>,
    pub created_by: Option<String>,
    /// Seconds since the Unix epoch.
    pub creation_date: Option<i64>,
    /// True when the info dictionary also carries v2 metadata (a hybrid torrent,
    /// read as v1).
    pub hybrid: bool,
    /// The info dictionary's exact bytes: what BEP 9 serves to peers that
    /// ask for the metadata (shared, never copied per peer).
    pub info_bytes: std::sync::Arc<[u8]>,
}

/// The info dictionary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Info {
    /// The torrent's name, sanitized (a single path component).
    pub name: String,
    /// Bytes per piece (the last piece may be shorter).
    pub piece_length: u64,
    /// One SHA-1 per piece.
    pub pieces: Vec<[u8; 20]>,
    /// Files in torrent order. A single-file torrent has one file whose path is
    /// the name.
    pub files: Vec<FileEntry>,
    /// True for a multi-file torrent: files live under a folder named `name`.
    pub multi_file: bool,
    /// BEP 27.
    pub private: bool,
    /// `source` (private trackers use it to make info-hashes unique).
    pub source: Option<String>,
    /// Sum of all file lengths, pad files included.
    pub total_length: u64,
}

/// One file of a torrent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEntry {
    /// Sanitized path components below the save directory (for a multi-file
    /// torrent, the first component is the torrent's name). Never empty, never
    /// `..` or `.`, never absolute, no separators or NUL inside a component.
    pub path: Vec<String>,
    pub length: u64,
    /// Offset of the file's first byte in the torrent's byte stream.
    pub offset: u64,
    pub attr: FileAttr,
    /// BEP 47 `symlink path`, sanitized, relative to the torrent's root.
    pub symlink_target: Option<Vec<String>>,
}

/// BEP 47 file attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FileAttr {
    pub pad: bool,
    pub executable: bool,
    pub hidden: bool,
    pub symlink: bool,
}

impl Info {
    /// Number of pieces.
    pub fn num_pieces(&self) -> u64 {
        self.pieces.len() as u64
    }

    /// Size of piece `index` in bytes (the last one may be short), or `None` if
    /// there is no such piece.
    pub fn piece_size(&self, index: u64) -> Option<u64> {
        let start = index.checked_mul(self.piece_length)?;
        if index >= self.num_pieces() {
            return None;
        }
        Some(
            self.piece_length
                .min(self.total_length.saturating_sub(start)),
        )
    }

    /// The files as the storage layout sees them.
    pub fn extents(&self) -> Vec<FileExtent> {
        self.files
            .iter()
            .map(|f| FileExtent {
                length: f.length,
                pad: f.attr.pad,
            })
            .collect()
    }
}

impl FileEntry {
    /// The file's place below the save directory. Safe to join: every
    /// component was sanitized when the torrent was read.
    pub fn relative_path(&self) -> PathBuf {
        self.path.iter().collect()
    }

    /// The path with `/` between components, for display.
    pub fn display_path(&self) -> String {
        self.path.join("/")
    }
}

//! Building a .torrent file from a file list and piece hashes. The output is
//! canonical bencode, so the same inputs always give the same info-hash.

use std::collections::BTreeMap;

use super::path::sanitize_component;
use crate::bencode::OwnedValue;
use crate::limits::{FILES_PER_TORRENT_MAX, PIECE_LENGTH_BYTES_MAX};
use crate::storage::FileExtent;

/// Smallest piece length `create` chooses or accepts, in bytes (BitTorrent's
/// block size: a smaller piece cannot be requested whole).
pub const PIECE_LENGTH_MIN_BYTES: u64 = 16 * 1024;
/// Largest piece length chosen automatically, in bytes.
pub const AUTO_PIECE_LENGTH_MAX_BYTES: u64 = 16 * 1024 * 1024;
/// The automatic choice aims for at most this many pieces.
pub const AUTO_PIECES_TARGET: u64 = 1500;

/// One file to put in a new torrent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewFile {
    /// Path components below the torrent's root folder (empty for the single
    /// file of a single-file torrent).
    pub path: Vec<String>,
    pub length: u64,
}

/// What a new torrent holds. `files` are written in the order given; callers
/// sort them (see `ringseed create`) so that a tree always gives one info-hash.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TorrentBuilder {
    pub name: String,
    pub files: Vec<NewFile>,
    pub single_file: bool,
    pub piece_length: u64,
    /// Tracker tiers; the first URL of the first tier is also `announce`.
    pub trackers: Vec<Vec<String>>,
    pub private: bool,
    pub comment: Option<String>,
    pub source: Option<String>,
    pub created_by: Option<String>,
    /// Seconds since the Unix epoch; `None` leaves the date out.
    pub creation_date: Option<i64>,
    pub url_list: Vec<String>,
}

/// Why a torrent could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    #[error("the torrent name {0:?} is not a usable file name")]
    BadName(String),
    #[error("file {index}: path component {component:?} is not usable (empty, '.', '..', or holds a separator or control character)")]
    BadPathComponent { index: usize, component: String },
    #[error("a multi-file torrent needs a path for every file (file {0} has none)")]
    EmptyPath(usize),
    #[error("a single-file torrent has exactly one file with an empty path, found {0} files")]
    SingleFileShape(usize),
    #[error("no files to put in the torrent")]
    NoFiles,
    #[error("{count} files is over the limit of {limit}")]
    TooManyFiles { count: usize, limit: usize },
    #[error("the files hold no data (total size 0): a torrent needs at least one byte")]
    Empty,
    #[error("the files' total size overflows 64 bits")]
    TotalOverflow,
    #[error("piece length {length} is out of range: expected {min} to {max} bytes")]
    PieceLength { length: u64, min: u64, max: u64 },
    #[error("{given} piece hashes given, but the data makes {expected} pieces")]
    PieceCount { given: usize, expected: u64 },
}

/// The automatic piece length for `total` bytes: the smallest power of two
/// from 16 KiB to 16 MiB that keeps the piece count at most 1500.
pub fn auto_piece_length(total: u64) -> u64 {
    let mut length = PIECE_LENGTH_MIN_BYTES;
    while length < AUTO_PIECE_LENGTH_MAX_BYTES && total.div_ceil(length) > AUTO_PIECES_TARGET {
        length *= 2;
    }
    length
}

fn check_component(index: usize, c: &str) -> Result<(), BuildError> {
    if sanitize_component(c.as_bytes()).as_deref() == Some(c) {
        Ok(())
    } else {
        Err(BuildError::BadPathComponent {
            index,
            component: c.to_string(),
        })
    }
}

impl TorrentBuilder {
    /// The files as the storage layout sees them (no pad files are added).
    pub fn extents(&self) -> Vec<FileExtent> {
        self.files
            .iter()
            .map(|f| FileExtent {
                length: f.length,
                pad: false,
            })
            .collect()
    }

    /// Total bytes of data.
    pub fn total_length(&self) -> Result<u64, BuildError> {
        // Bencode integers are i64, so the total must fit there too.
        self.files.iter().try_fold(0u64, |acc, f| {
            acc.checked_add(f.length)
                .filter(|&t| i64::try_from(t).is_ok())
                .ok_or(BuildError::TotalOverflow)
        })
    }

    /// Checks the shape and returns the number of pieces the data makes.
    pub fn validate(&self) -> Result<u64, BuildError> {
        if sanitize_component(self.name.as_bytes()).as_deref() != Some(self.name.as_str()) {
            return Err(BuildError::BadName(self.name.clone()));
        }
        if self.files.is_empty() {
            return Err(BuildError::NoFiles);
        }
        if self.files.len() > FILES_PER_TORRENT_MAX {
            return Err(BuildError::TooManyFiles {
                count: self.files.len(),
                limit: FILES_PER_TORRENT_MAX,
            });
        }
        if self.single_file {
            if self.files.len() != 1 || !self.files[0].path.is_empty() {
                return Err(BuildError::SingleFileShape(self.files.len()));
            }
        } else {
            for (index, f) in self.files.iter().enumerate() {
                if f.path.is_empty() {
                    return Err(BuildError::EmptyPath(index));
                }
                for c in &f.path {
                    check_component(index, c)?;
                }
            }
        }
        if !(PIECE_LENGTH_MIN_BYTES..=PIECE_LENGTH_BYTES_MAX).contains(&self.piece_length) {
            return Err(BuildError::PieceLength {
                length: self.piece_length,
                min: PIECE_LENGTH_MIN_BYTES,
                max: PIECE_LENGTH_BYTES_MAX,
            });
        }
        let total = self.total_length()?;
        if total == 0 {
            return Err(BuildError::Empty);
        }
        Ok(total.div_ceil(self.piece_length))
    }

    /// The bencoded info dictionary (its SHA-1 is the info-hash).
    pub fn info_bytes(&self, pieces: &[[u8; 20]]) -> Result<Vec<u8>, BuildError> {
        let expected = self.validate()?;
        if pieces.len() as u64 != expected {
            return Err(BuildError::PieceCount {
                given: pieces.len(),
                expected,
            });
        }
        let mut info = BTreeMap::new();
        info.insert(b"name".to_vec(), OwnedValue::str(&self.name));
        info.insert(
            b"piece length".to_vec(),
            OwnedValue::Int(int(self.piece_length)),
        );
        info.insert(b"pieces".to_vec(), OwnedValue::Bytes(pieces.concat()));
        if self.private {
            info.insert(b"private".to_vec(), OwnedValue::Int(1));
        }
        if let Some(source) = &self.source {
            info.insert(b"source".to_vec(), OwnedValue::str(source));
        }
        if self.single_file {
            info.insert(
                b"length".to_vec(),
                OwnedValue::Int(int(self.files[0].length)),
            );
        } else {
            let files = self
                .files
                .iter()
                .map(|f| {
                    let mut d = BTreeMap::new();
                    d.insert(b"length".to_vec(), OwnedValue::Int(int(f.length)));
                    d.insert(
                        b"path".to_vec(),
                        OwnedValue::List(f.path.iter().map(|c| OwnedValue::str(c)).collect()),
                    );
                    OwnedValue::Dict(d)
                })
                .collect();
            info.insert(b"files".to_vec(), OwnedValue::List(files));
        }
        Ok(OwnedValue::Dict(info).encode())
    }

    /// The whole .torrent file.
    pub fn build(&self, pieces: &[[u8; 20]]) -> Result<Vec<u8>, BuildError> {
        let info = self.info_bytes(pieces)?;
        let mut top = BTreeMap::new();
        let tiers: Vec<Vec<String>> = self
            .trackers
            .iter()
            .map(|t| t.iter().filter(|u| !u.trim().is_empty()).cloned().collect())
            .filter(|t: &Vec<String>| !t.is_empty())
            .collect();
        if let Some(first) = tiers.first().and_then(|t| t.first()) {
            top.insert(b"announce".to_vec(), OwnedValue::str(first));
        }
        if tiers.len() > 1 || tiers.first().is_some_and(|t| t.len() > 1) {
            top.insert(
                b"announce-list".to_vec(),
                OwnedValue::List(
                    tiers
                        .iter()
                        .map(|t| OwnedValue::List(t.iter().map(|u| OwnedValue::str(u)).collect()))
                        .collect(),
                ),
            );
        }
        if let Some(c) = &self.comment {
            top.insert(b"comment".to_vec(), OwnedValue::str(c));
        }
        if let Some(c) = &self.created_by {
            top.insert(b"created by".to_vec(), OwnedValue::str(c));
        }
        if let Some(d) = self.creation_date {
            top.insert(b"creation date".to_vec(), OwnedValue::Int(d));
        }
        if !self.url_list.is_empty() {
            top.insert(
                b"url-list".to_vec(),
                OwnedValue::List(self.url_list.iter().map(|u| OwnedValue::str(u)).collect()),
            );
        }
        // The info dictionary goes in as the exact bytes hashed above; "info"
        // sorts between "creation date" and "url-list", so it is spliced in
        // by hand to keep the whole file canonical.
        let mut out = Vec::with_capacity(info.len() + 256);
        out.push(b'd');
        let mut info_written = false;
        for (k, v) in &top {
            if !info_written && k.as_slice() > &b"info"[..] {
                write_info(&mut out, &info);
                info_written = true;
            }
            OwnedValue::Bytes(k.clone()).encode_into(&mut crate::bencode::Encoder::new(&mut out));
            v.encode_into(&mut crate::bencode::Encoder::new(&mut out));
        }
        if !info_written {
            write_info(&mut out, &info);
        }
        out.push(b'e');
        Ok(out)
    }
}

fn write_info(out: &mut Vec<u8>, info: &[u8]) {
    out.extend_from_slice(b"4:info");
    out.extend_from_slice(info);
}

/// `validate` has checked that every length fits in i64 (the total does).
fn int(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metainfo::Metainfo;

    fn multi() -> TorrentBuilder {
        TorrentBuilder {
            name: "tree".into(),
            files: vec![
                NewFile {
                    path: vec!["a".into(), "x.bin".into()],
                    length: 20_000,
                },
                NewFile {
                    path: vec!["empty".into()],
                    length: 0,
                },
                NewFile {
                    path: vec!["z".into()],
                    length: 13_000,
                },
            ],
            single_file: false,
            piece_length: 16384,
            trackers: vec![
                vec!["http://127.0.0.1:6969/announce".into()],
                vec!["udp://127.0.0.1:6969".into()],
            ],
            private: true,
            comment: Some("hello".into()),
            source: Some("SRC".into()),
            created_by: Some("ringseed/test".into()),
            creation_date: Some(1_700_000_000),
            url_list: vec!["http://127.0.0.1/ws/".into()],
        }
    }

    #[test]
    fn auto_piece_length_grows_with_size() {
        assert_eq!(auto_piece_length(1), 16384);
        assert_eq!(auto_piece_length(1500 * 16384), 16384);
        assert_eq!(auto_piece_length(1500 * 16384 + 1), 32768);
        assert_eq!(auto_piece_length(4 << 30), 4 << 20);
        assert_eq!(auto_piece_length(u64::MAX), 16 << 20);
    }

    #[test]
    fn built_torrent_reads_back() {
        let b = multi();
        let n = b.validate().unwrap();
        assert_eq!(n, 3);
        let pieces = vec![[1u8; 20], [2u8; 20], [3u8; 20]];
        let bytes = b.build(&pieces).unwrap();
        let m = Metainfo::from_bytes(&bytes).unwrap();
        assert_eq!(m.info.name, "tree");
        assert_eq!(m.info.total_length, 33_000);
        assert_eq!(m.info.pieces, pieces);
        assert!(m.info.private);
        assert!(m.info.multi_file);
        assert_eq!(m.info.source.as_deref(), Some("SRC"));
        assert_eq!(m.info.files[0].path, vec!["tree", "a", "x.bin"]);
        assert_eq!(m.info.files[2].offset, 20_000);
        assert_eq!(m.trackers.len(), 2);
        assert_eq!(m.comment.as_deref(), Some("hello"));
        assert_eq!(m.creation_date, Some(1_700_000_000));
        assert_eq!(m.url_list, vec!["http://127.0.0.1/ws/"]);
        // Canonical: re-encoding the decoded file gives the same bytes.
        let v = crate::bencode::decode(&bytes).unwrap();
        assert_eq!(OwnedValue::from(&v).encode(), bytes);
        // The info-hash is over the info bytes the builder made.
        assert_eq!(
            m.info_hash,
            crate::InfoHash::of_info_bytes(&b.info_bytes(&pieces).unwrap())
        );
    }

    #[test]
    fn single_file_and_no_trackers() {
        let b = TorrentBuilder {
            name: "one.bin".into(),
            files: vec![NewFile {
                path: vec![],
                length: 5,
            }],
            single_file: true,
            piece_length: 16384,
            ..Default::default()
        };
        let bytes = b.build(&[[9u8; 20]]).unwrap();
        assert!(!bytes.windows(8).any(|w| w == b"announce"));
        let m = Metainfo::from_bytes(&bytes).unwrap();
        assert!(!m.info.multi_file);
        assert_eq!(m.info.files[0].path, vec!["one.bin"]);
        assert_eq!(m.creation_date, None);
    }

    #[test]
    fn refuses_bad_shapes() {
        let mut b = multi();
        b.name = "..".into();
        assert_eq!(b.validate(), Err(BuildError::BadName("..".into())));
        let mut b = multi();
        b.files[0].path = vec!["a/b".into()];
        assert!(matches!(
            b.validate(),
            Err(BuildError::BadPathComponent { index: 0, .. })
        ));
        let mut b = multi();
        b.files[1].path.clear();
        assert_eq!(b.validate(), Err(BuildError::EmptyPath(1)));
        let mut b = multi();
        b.piece_length = 1000;
        assert!(matches!(b.validate(), Err(BuildError::PieceLength { .. })));
        let mut b = multi();
        b.files.iter_mut().for_each(|f| f.length = 0);
        assert_eq!(b.validate(), Err(BuildError::Empty));
        let mut b = multi();
        b.files.clear();
        assert_eq!(b.validate(), Err(BuildError::NoFiles));
        let mut b = multi();
        b.files[0].length = u64::MAX;
        assert_eq!(b.validate(), Err(BuildError::TotalOverflow));
        assert_eq!(
            multi().build(&[[0u8; 20]]),
            Err(BuildError::PieceCount {
                given: 1,
                expected: 3
            })
        );
    }
}

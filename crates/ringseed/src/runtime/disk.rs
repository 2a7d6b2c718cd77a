//! `TorrentStorage`: one torrent's files on disk, opened once, and the
//! mapping of pieces and blocks to file runs.
//!
//! Seeding opens every file read-only and refuses to start if one is
//! missing; downloading creates the folders and files under the save
//! directory (sparse, at their full length) and opens them read-write.
//! Paths come from the metainfo, already sanitized (no `..`, no absolute
//! paths), and are joined under the save directory, so nothing is written
//! outside it. Pad files (BEP 47) are never on disk: their bytes are zeros.
//! Reads and writes themselves go through the shard's io_uring; this module
//! only opens, maps, syncs and closes.

use std::fs::{self, File, OpenOptions};
use std::os::fd::{AsRawFd, RawFd};
use std::path::{Path, PathBuf};

use thiserror::Error;

use super::piece_hash::DiskFile;
use crate::metainfo::Metainfo;
use crate::storage::{FileSpan, Layout, LayoutError};

/// Most files of one torrent kept open (each holds an fd).
pub const OPEN_FILES_PER_TORRENT_MAX: usize = 4_096;

/// Why a torrent's files could not be opened.
#[derive(Debug, Error)]
pub enum DiskError {
    #[error(transparent)]
    Layout(#[from] LayoutError),
    #[error("cannot {op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the torrent has {files} files; at most {limit} can be open at once")]
    TooManyFiles { files: usize, limit: usize },
    #[error("{} is {found} bytes, larger than the {expected} bytes the torrent says", path.display())]
    TooLong {
        path: PathBuf,
        found: u64,
        expected: u64,
    },
}

/// The files of `m` under `save_dir`, as the hashing reader takes them
/// (pad files have no path: they read as zeros).
pub fn disk_files(m: &Metainfo, save_dir: &Path) -> Vec<DiskFile> {
    m.info
        .files
        .iter()
        .map(|f| DiskFile {
            path: (!f.attr.pad).then(|| save_dir.join(f.relative_path())),
            length: f.length,
        })
        .collect()
}

/// One torrent's open files.
#[derive(Debug)]
pub struct TorrentStorage {
    layout: Layout,
    /// By file index; `None` for pad files.
    files: Vec<Option<File>>,
    paths: Vec<Option<PathBuf>>,
    writable: bool,
}

impl TorrentStorage {
    /// Opens the torrent's files under `save_dir`: read-only, or created
    /// and read-write when `writable`.
    pub fn open(m: &Metainfo, save_dir: &Path, writable: bool) -> Result<Self, DiskError> {
        let layout = Layout::new(m.info.piece_length, &m.info.extents())?;
        let real = m.info.files.iter().filter(|f| !f.attr.pad).count();
        if real > OPEN_FILES_PER_TORRENT_MAX {
            return Err(DiskError::TooManyFiles {
                files: real,
                limit: OPEN_FILES_PER_TORRENT_MAX,
            });
        }
        let mut files = Vec::with_capacity(m.info.files.len());
        let mut paths = Vec::with_capacity(m.info.files.len());
        for f in &m.info.files {
            if f.attr.pad {
                files.push(None);
                paths.push(None);
                continue;
            }
            let path = save_dir.join(f.relative_path());
            let io = |op: &'static str| {
                let path = path.clone();
                move |source| DiskError::Io { op, path, source }
            };
            let file = if writable {
                if let Some(parent) = path.parent() {
                    fs::create_dir_all(parent).map_err(io("create the folder of"))?;
                }
                let file = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create(true)
                    .truncate(false)
                    .open(&path)
                    .map_err(io("open for writing"))?;
                let len = file.metadata().map_err(io("stat"))?.len();
                if len > f.length {
                    return Err(DiskError::TooLong {
                        path,
                        found: len,
                        expected: f.length,
                    });
                }
                if len < f.length {
                    file.set_len(f.length).map_err(io("extend"))?;
                }
                file
            } else {
                File::open(&path).map_err(io("open"))?
            };
            files.push(Some(file));
            paths.push(Some(path));
        }
        Ok(Self {
            layout,
            files,
            paths,
            writable,
        })
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The fd of file `index` (`None` for pad files and bad indexes).
    pub fn fd(&self, index: usize) -> Option<RawFd> {
        self.files.get(index)?.as_ref().map(|f| f.as_raw_fd())
    }

    /// The path of file `index`, for messages.
    pub fn path(&self, index: usize) -> Option<&Path> {
        self.paths.get(index)?.as_deref()
    }

    /// The file runs of a block.
    pub fn block_spans(
        &self,
        piece: u32,
        offset: u32,
        length: u32,
    ) -> Result<Vec<FileSpan>, LayoutError> {
        Ok(self
            .layout
            .block_spans(piece, offset.into(), length.into())?
            .collect())
    }

    /// The file runs of a whole piece.
    pub fn piece_spans(&self, piece: u32) -> Vec<FileSpan> {
        self.layout.piece_spans(piece).collect()
    }

    /// Flushes written files to disk (at shutdown and on completion).
    pub fn sync(&self) -> Result<(), DiskError> {
        if !self.writable {
            return Ok(());
        }
        for (f, p) in self.files.iter().zip(&self.paths) {
            if let (Some(f), Some(p)) = (f, p) {
                f.sync_data().map_err(|source| DiskError::Io {
                    op: "sync",
                    path: p.clone(),
                    source,
                })?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metainfo::{NewFile, TorrentBuilder};

    fn torrent() -> Metainfo {
        let b = TorrentBuilder {
            name: "t".into(),
            files: vec![
                NewFile {
                    path: vec!["a".into(), "one.bin".into()],
                    length: 40_000,
                },
                NewFile {
                    path: vec!["two.bin".into()],
                    length: 30_000,
                },
            ],
            piece_length: 16_384,
            ..TorrentBuilder::default()
        };
        let pieces = vec![[0u8; 20]; 5];
        Metainfo::from_bytes(&b.build(&pieces).unwrap()).unwrap()
    }

    #[test]
    fn creates_files_at_full_length_and_maps_blocks() {
        let m = torrent();
        let dir = tempfile::tempdir().unwrap();
        let s = TorrentStorage::open(&m, dir.path(), true).unwrap();
        let one = dir.path().join("t/a/one.bin");
        assert_eq!(fs::metadata(&one).unwrap().len(), 40_000);
        assert_eq!(
            fs::metadata(dir.path().join("t/two.bin")).unwrap().len(),
            30_000
        );
        // Piece 2 (32768..49152) crosses from one.bin into two.bin.
        let spans = s.block_spans(2, 0, 16_384).unwrap();
        assert_eq!(spans.len(), 2);
        assert_eq!(spans[0].length, 40_000 - 32_768);
        assert_eq!(spans[1].file_offset, 0);
        assert!(s.fd(spans[1].file_index).is_some());
        assert!(s.block_spans(2, 16_000, 16_384).is_err());
        s.sync().unwrap();
    }

    #[test]
    fn seeding_refuses_missing_files_and_download_refuses_longer_ones() {
        let m = torrent();
        let dir = tempfile::tempdir().unwrap();
        let e = TorrentStorage::open(&m, dir.path(), false).unwrap_err();
        assert!(e.to_string().contains("cannot open"), "{e}");
        fs::create_dir_all(dir.path().join("t")).unwrap();
        fs::write(dir.path().join("t/two.bin"), vec![0u8; 30_001]).unwrap();
        let e = TorrentStorage::open(&m, dir.path(), true).unwrap_err();
        assert!(matches!(e, DiskError::TooLong { .. }), "{e}");
    }
}

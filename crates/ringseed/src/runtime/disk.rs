//! `TorrentStorage`: one torrent's files on disk, opened once, and the
//! mapping of pieces and blocks to file runs.
//!
//! Seeding opens every file read-only and never creates, extends or
//! truncates one; a file that is not there is left unopened and listed as
//! missing (its pieces cannot be good, so they are never served: the
//! torrent seeds what is there, as qBittorrent shows "missing files").
//! Downloading creates the folders and files under the save directory
//! (sparse, at their full length) and opens them read-write.
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

/// The open error of a file that is not there: no such file, or a path
/// component that is not a folder.
fn is_not_there(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ENOTDIR)
}

/// What is on disk for one file of a torrent, beside what the torrent says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileOnDisk {
    /// Index in the torrent's file list.
    pub index: usize,
    /// Where it is looked for (under the save directory).
    pub path: PathBuf,
    /// Its length in the torrent, bytes.
    pub expected: u64,
    /// Its length on disk, bytes; `None` when there is no regular file
    /// there (missing, a folder in its place, or unreadable metadata).
    pub actual: Option<u64>,
}

impl FileOnDisk {
    /// On disk at the length the torrent says.
    pub fn size_ok(&self) -> bool {
        self.actual == Some(self.expected)
    }
}

/// Looks at each (non-pad) file of `m` under `save_dir`: there or not, and
/// its length. Reads metadata only; creates nothing.
pub fn files_on_disk(m: &Metainfo, save_dir: &Path) -> Vec<FileOnDisk> {
    m.info
        .files
        .iter()
        .enumerate()
        .filter(|(_, f)| !f.attr.pad)
        .map(|(index, f)| {
            let path = save_dir.join(f.relative_path());
            let actual = fs::metadata(&path)
                .ok()
                .filter(|md| md.is_file())
                .map(|md| md.len());
            FileOnDisk {
                index,
                path,
                expected: f.length,
                actual,
            }
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
    /// Indexes of the files that were not there when opened read-only.
    missing: Vec<usize>,
    writable: bool,
}

impl TorrentStorage {
    /// Opens the torrent's files under `save_dir`: read-only, or created
    /// and read-write when `writable`. Read-only, a file that is not there
    /// (or whose folder is not) is left unopened and listed in
    /// [`TorrentStorage::missing_files`]; any other failure is an error.
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
        let mut missing = Vec::new();
        for (index, f) in m.info.files.iter().enumerate() {
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
                match File::open(&path) {
                    Ok(file) => file,
                    Err(e) if is_not_there(&e) => {
                        missing.push(index);
                        files.push(None);
                        paths.push(Some(path));
                        continue;
                    }
                    Err(e) => return Err(io("open")(e)),
                }
            };
            files.push(Some(file));
            paths.push(Some(path));
        }
        Ok(Self {
            layout,
            files,
            paths,
            missing,
            writable,
        })
    }

    /// Indexes (in the torrent's file list) of the files that were not on
    /// disk when the storage was opened read-only; empty when writable.
    pub fn missing_files(&self) -> &[usize] {
        &self.missing
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
    fn seeding_lists_missing_files_and_creates_nothing() {
        let m = torrent();
        let dir = tempfile::tempdir().unwrap();
        let s = TorrentStorage::open(&m, dir.path(), false).unwrap();
        assert_eq!(s.missing_files(), &[0, 1]);
        assert!(s.fd(0).is_none() && s.fd(1).is_none());
        assert!(!dir.path().join("t").exists(), "seeding created a folder");
        fs::create_dir_all(dir.path().join("t")).unwrap();
        fs::write(dir.path().join("t/two.bin"), vec![0u8; 10]).unwrap();
        let s = TorrentStorage::open(&m, dir.path(), false).unwrap();
        assert_eq!(s.missing_files(), &[0]);
        assert!(s.fd(1).is_some());
        assert!(!dir.path().join("t/a").exists(), "seeding created a folder");
        assert_eq!(
            fs::metadata(dir.path().join("t/two.bin")).unwrap().len(),
            10
        );
        // A file where a folder should be: its files are missing too.
        fs::write(dir.path().join("t/a"), b"x").unwrap();
        let s = TorrentStorage::open(&m, dir.path(), false).unwrap();
        assert_eq!(s.missing_files(), &[0]);
    }

    #[test]
    fn files_on_disk_reports_lengths() {
        let m = torrent();
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("t")).unwrap();
        fs::write(dir.path().join("t/two.bin"), vec![0u8; 30_001]).unwrap();
        let f = files_on_disk(&m, dir.path());
        assert_eq!(f.len(), 2);
        assert_eq!((f[0].expected, f[0].actual), (40_000, None));
        assert_eq!((f[1].expected, f[1].actual), (30_000, Some(30_001)));
        assert!(!f[1].size_ok());
        assert_eq!(f[1].path, dir.path().join("t/two.bin"));
    }

    #[test]
    fn download_refuses_longer_files() {
        let m = torrent();
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("t")).unwrap();
        fs::write(dir.path().join("t/two.bin"), vec![0u8; 30_001]).unwrap();
        let e = TorrentStorage::open(&m, dir.path(), true).unwrap_err();
        assert!(matches!(e, DiskError::TooLong { .. }), "{e}");
    }
}
